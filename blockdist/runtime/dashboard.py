"""A ``/blockdist`` page on the Dask dashboard: each job's tile grid filling in, live.

:class:`DashboardPage` is a scheduler plugin. Registered by a job's client (once per
scheduler), it adds two routes to the scheduler's web server — ``/blockdist`` (the page) and
``/blockdist/jobs.json`` (what the page draws) — and a "blockdist" entry to the dashboard's
More… menu. It learns of a job from the event its client logs as the job starts (the plan's
summary and grid, the work of each tile, the reads planned and their bound) and follows the
progress its tasks send (:data:`~blockdist.worker.progress.TOPIC`), so it shows the same
work-done figures as :meth:`blockdist.Job.snapshot`, for every client's jobs.
"""

from __future__ import annotations

import json
import time
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

from ..worker.progress import TOPIC

#: Events a job's client logs: the job begins (its plan) and ends (its status).
JOB_TOPIC = "blockdist-job"
#: Jobs the page remembers after they end.
KEEP_ENDED = 20


def job_event(token: str, plan: Any, done: set[int] | frozenset[int]) -> dict[str, Any]:
    """What the page needs to know of a starting job (no secret: names, sizes, figures)."""
    grid = plan.grid
    return {"kind": "start", "job": token, "summary": plan.summary(), "product": plan.product or "A·B",
            "shape": list(plan.shape), "out_chunks": list(plan.out_chunks), "row_edges": list(grid.row_edges), "col_edges": list(grid.col_edges),
            "tile_flops": {str(k): v for k, v in plan.tile_flops().items()}, "done": sorted(done),
            "bytes_read_planned": plan.bytes_read, "io_lower_bound": plan.io_lower_bound,
            "predicted_seconds": plan.predicted_seconds}


class DashboardPage(SchedulerPlugin):
    """The scheduler's record of blockdist jobs, served as the ``/blockdist`` page."""

    name = "blockdist-dashboard"
    idempotent = True

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}

    async def start(self, scheduler: Any) -> None:
        application = getattr(scheduler, "http_application", None)
        if application is None:
            return
        from tornado.web import RequestHandler

        page = self

        class Page(RequestHandler):
            def get(self) -> None:
                self.set_header("Content-Type", "text/html; charset=utf-8")
                self.write(PAGE)

        class Jobs(RequestHandler):
            def get(self) -> None:
                self.set_header("Content-Type", "application/json")
                self.set_header("Cache-Control", "no-store")
                self.write(json.dumps(page.state()))

        application.add_handlers(r".*", [(r"/blockdist/?", Page), (r"/blockdist/jobs\.json", Jobs)])
        # Rules added later come after the dashboard's own; move ours first so they are found.
        rules = application.default_router.rules
        ours = [rule for rule in rules if getattr(rule.matcher, "_path", None) is None
                and "blockdist" in str(getattr(rule.matcher, "regex", ""))]
        for rule in ours:
            rules.remove(rule)
            rules.insert(0, rule)
        try:
            from distributed.dashboard.scheduler import template_variables

            plots = template_variables(scheduler)["plots"]
            if not any(p["url"] == "blockdist" for p in plots):
                plots.append({"url": "blockdist", "name": "blockdist"})
        except Exception:  # noqa: BLE001 - no dashboard (bokeh absent): the routes still answer
            pass

    def log_event(self, topic: str, msg: Any) -> None:
        if not isinstance(msg, dict):
            return
        if topic == JOB_TOPIC:
            self._job_event(msg)
        elif topic == TOPIC and msg.get("job") in self.jobs:
            job = self.jobs[msg["job"]]
            job["tasks"][str(msg.get("task") or msg.get("tile"))] = {
                "tile": msg["tile"], "flops": msg["flops"], "bytes_read": msg.get("bytes_read", 0),
                "worker": msg.get("worker", "")}
            job["updated"] = time.time()

    def _job_event(self, msg: dict[str, Any]) -> None:
        token = msg.get("job")
        if msg.get("kind") == "start":
            self.jobs[token] = {**msg, "tasks": {}, "status": "running", "started": time.time(),
                                "updated": time.time(), "tiles_finished": list(msg.get("done", []))}
            ended = [t for t, j in self.jobs.items() if j["status"] != "running"]
            for old in ended[: max(0, len(ended) - KEEP_ENDED)]:
                del self.jobs[old]
        elif token in self.jobs:
            job = self.jobs[token]
            if msg.get("kind") == "tile":
                job["tiles_finished"].append(msg["tile"])
            elif msg.get("kind") == "end":
                job["status"] = msg.get("status", "ended")
                job["seconds"] = msg.get("seconds")
            job["updated"] = time.time()

    def state(self) -> dict[str, Any]:
        """Every job the page knows, with each tile's done share and the job's rates."""
        jobs = []
        for token, job in self.jobs.items():
            flops = {int(k): v for k, v in job["tile_flops"].items()}
            finished = set(job["tiles_finished"])
            fractions = {t: 1.0 for t in finished}
            workers: dict[str, float] = {}
            for task in job["tasks"].values():
                tile = task["tile"]
                workers[task["worker"]] = workers.get(task["worker"], 0.0) + task["flops"]
                if tile not in finished and tile in flops:
                    fractions[tile] = min(1.0, fractions.get(tile, 0.0) + task["flops"] / max(1, flops[tile]))
            done = sum(flops[t] * f for t, f in fractions.items() if t in flops)
            total = max(1, sum(flops.values()))
            running = job["status"] == "running"
            elapsed = (time.time() if running else job["updated"]) - job["started"]
            bytes_read = sum(task["bytes_read"] for task in job["tasks"].values())
            jobs.append({
                "job": token, "status": job["status"], "product": job["product"], "summary": job["summary"],
                "shape": job["shape"], "out_chunks": job["out_chunks"], "row_edges": job["row_edges"], "col_edges": job["col_edges"],
                "computed": sorted(flops), "tile_fractions": {str(t): f for t, f in fractions.items()},
                "fraction_done": 1.0 if job["status"] == "complete" else done / total,
                "gflops_per_second": done / max(elapsed, 1e-9) / 1e9, "seconds": elapsed,
                "bytes_read": bytes_read, "bytes_read_planned": job["bytes_read_planned"],
                "io_lower_bound": job["io_lower_bound"], "predicted_seconds": job["predicted_seconds"],
                "worker_gflop": {w: f / 1e9 for w, f in workers.items() if w},
            })
        return {"time": time.time(), "jobs": jobs}


def register(client: Any) -> bool:
    """Register the page with ``client``'s scheduler (once); False where it cannot be."""
    try:
        client.register_plugin(DashboardPage())
        return True
    except Exception:  # noqa: BLE001 - a scheduler without blockdist installed: jobs run without the page
        return False


PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>blockdist jobs</title>
<style>
body{font-family:sans-serif;margin:1.5em;color:#222}
.job{border-top:1px solid #ccc;padding:1em 0;display:flex;gap:2em;align-items:flex-start}
pre{font-size:11px;background:#f6f6f6;padding:.5em;max-width:60em;overflow:auto}
td{padding:0 .8em 0 0} .bar{width:20em;height:.8em;background:#eee} .bar div{height:100%;background:#2e8b57}
</style></head>
<body><h2>blockdist jobs</h2><p id="empty">No blockdist job has run on this cluster yet.</p><div id="jobs"></div>
<script>
function fmt(b){const u=['B','KiB','MiB','GiB','TiB'];let i=0;while(b>=1024&&i<4){b/=1024;i++}return b.toFixed(1)+' '+u[i]}
function grid(j){
  const m=j.shape[0],n=j.shape[1],s=260/Math.max(m,n),W=Math.max(24,n*s),H=Math.max(24,m*s);
  let out=`<svg class="tiles" width="${W+2}" height="${H+2}" viewBox="-1 -1 ${W+2} ${H+2}">`+
    `<rect x="0" y="0" width="${W}" height="${H}" fill="#f4f4f4"/>`;
  const r=j.row_edges,c=j.col_edges,cols=c.length-1,computed=new Set(j.computed);
  for(let a=0;a<r.length-1;a++)for(let b=0;b<cols;b++){
    const t=a*cols+b,f=j.tile_fractions[String(t)]||0;
    const x=c[b]/n*W,y=r[a]/m*H,w=(c[b+1]-c[b])/n*W,h=(r[a+1]-r[a])/m*H;
    const fill=computed.has(t)?(f>0?`fill="#2e8b57" fill-opacity="${(0.15+0.85*f).toFixed(2)}"`:'fill="none"'):'fill="#ddd"';
    out+=`<rect class="tile" data-tile="${t}" data-done="${f.toFixed(4)}" x="${x}" y="${y}" width="${w}" height="${h}" ${fill} stroke="#222" stroke-width="1"><title>tile ${t}: ${(100*f).toFixed(1)}%</title></rect>`;
  }
  const [cr,cc]=j.out_chunks;
  if(m/cr<=64)for(let y=cr;y<m;y+=cr)out+=`<line x1="0" y1="${y/m*H}" x2="${W}" y2="${y/m*H}" stroke="#999" stroke-width="0.5"/>`;
  if(n/cc<=64)for(let x=cc;x<n;x+=cc)out+=`<line x1="${x/n*W}" y1="0" x2="${x/n*W}" y2="${H}" stroke="#999" stroke-width="0.5"/>`;
  return out+'</svg>';
}
function esc(s){return String(s).replace(/[&<>]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;'}[c]))}
async function refresh(){
  try{
    const state=await (await fetch(location.pathname.replace(/\\/?$/,'/')+'jobs.json',{cache:'no-store'})).json();
    document.getElementById('empty').style.display=state.jobs.length?'none':'block';
    document.getElementById('jobs').innerHTML=state.jobs.slice().reverse().map(j=>`
      <div class="job" data-job="${j.job}"><div>${grid(j)}</div><div>
      <b>${esc(j.product)}</b> — job ${j.job}, <span class="status">${j.status}</span>
      <div class="bar"><div style="width:${(100*j.fraction_done).toFixed(1)}%"></div></div>
      <table>
      <tr><td>done</td><td class="fraction">${(100*j.fraction_done).toFixed(1)} % of the work</td></tr>
      <tr><td>rate</td><td class="rate">${j.gflops_per_second.toFixed(1)} GFLOP/s over ${j.seconds.toFixed(1)} s (predicted ${j.predicted_seconds.toFixed(1)} s)</td></tr>
      <tr><td>reads</td><td class="reads">${fmt(j.bytes_read)} of ${fmt(j.bytes_read_planned)} planned; bound ${fmt(j.io_lower_bound)}</td></tr>
      <tr><td>workers</td><td>${Object.entries(j.worker_gflop).map(([w,g])=>esc(w)+': '+g.toFixed(0)+' GFLOP').join('<br>')}</td></tr>
      </table><pre>${esc(j.summary)}</pre></div></div>`).join('');
  }catch(e){}
}
refresh();setInterval(refresh,500);
</script></body></html>
"""
