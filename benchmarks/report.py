"""Plots and a markdown summary from a ``benchmarks/run.py`` JSON file (and ``kernel.json``).

    python benchmarks/report.py benchmarks/results/results.json

writes ``gflops.png``, ``gflops_ratio.png``, ``memory.png``, ``memory_ratio.png``,
``bytes_read.png``, ``bytes_read_ratio.png`` and ``summary.md`` beside the JSON file
(prefixed with the JSON file's stem unless it is ``results``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TOOLS = ("numpy", "blockdist", "blockdist-cold", "dask", "dask-rechunked", "cubed")
COLORS = {"numpy": "#7f7f7f", "blockdist": "#1f77b4", "blockdist-cold": "#aec7e8", "dask": "#ff7f0e",
          "dask-rechunked": "#ffbb78", "cubed": "#2ca02c"}
MiB = 2**20
GiB = 2**30


def _operand(plan: dict, side: str) -> tuple[int, bool]:
    """(panel depth, mapped) of one operand, from a plan record of either format (0.1 kept them flat)."""
    if f"{side}_panel_depth" in plan:
        return plan[f"{side}_panel_depth"], bool(plan.get(f"{side}_mapped"))
    return plan[side]["panel_depth"], bool(plan[side].get("mapped"))


def best_runs(report: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """The fastest successful run of each tool in each scenario (or its failure)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for run in report["runs"]:
        slot = out.setdefault(run["scenario"], {})
        old = slot.get(run["tool"])
        if old is None or (run["ok"] and (not old["ok"] or run["seconds"] < old["seconds"])):
            slot[run["tool"]] = run
    return out


def machine_rate(report: dict[str, Any], scenario: str) -> float | None:
    """The machine's BLAS rate for this scenario's dtype: the best ``np.matmul`` of 4096² operands
    on every core at the start or end of the run (``reference.py``); in older reports, the best
    ``np.matmul`` of the scenario's own operands."""
    from reference import best  # benchmarks/reference.py

    dtype = _scenario(report, scenario).get("dtype", "float64")
    if report.get("reference"):
        return best(report["reference"], dtype)
    rates = [r["matmul_gflops"] for r in report["runs"]
             if r["scenario"] == scenario and r["tool"] == "numpy" and r["ok"]]
    return max(rates) if rates else None


def machine_cpu_rate(report: dict[str, Any], scenario: str) -> float | None:
    """The best ``np.matmul`` GFLOP per CPU-second in this scenario (its BLAS threads' time)."""
    rates = [r["matmul_gflop_per_cpu_second"] for r in report["runs"]
             if r["scenario"] == scenario and r["tool"] == "numpy" and r["ok"]
             and r.get("matmul_gflop_per_cpu_second")]
    return max(rates) if rates else None


def _scenario(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next((s for s in report["scenarios"] if s["name"] == name), {})


def layout_ceiling(report: dict[str, Any], scenario: str) -> float | None:
    """The worker layout's rate for this scenario's dtype: the cluster's processes, one BLAS thread
    each, running ``np.matmul`` at once (``ceilings.py``); ``None`` in reports from before it."""
    dtype = _scenario(report, scenario).get("dtype", "float64")
    rate = report.get("ceilings", {}).get("layout", {}).get(dtype)
    return rate["best_gflops"] if rate else None


def decode_seconds(report: dict[str, Any], scenario: str, decoded_bytes: float) -> float:
    """Seconds the workers' cores need to decode ``decoded_bytes`` of this scenario's codec at the
    measured rate a core (0 for uncompressed inputs)."""
    codec = _scenario(report, scenario).get("codec", "none")
    rate = report.get("ceilings", {}).get("decode", {}).get(codec)
    if not rate:
        return 0.0
    return decoded_bytes / (rate["best_gb_per_s"] * 1e9) / report["environment"]["workers"]


def work_share(report: dict[str, Any], scenario: str) -> float:
    """The share of the scenario's nominal flops (2·m·n·k) blockdist computes: half for Xᵀ·X,
    whose diagonal tile syrk computes at half gemm's flops (numpy's ``x.T @ x`` is syrk too)."""
    return 0.5 if _scenario(report, scenario).get("gram") else 1.0


def fresh_bytes(run: dict[str, Any]) -> int:
    """The fresh memory a run's workers touched at least once: each worker's peak RSS above its
    lowest sample (what it held before the job), and C's bytes, written into fresh page-cache pages."""
    lowest = [min(rss[i] for _, rss in run["rss_trace"]) for i in range(len(run["peak_rss"]))] \
        if run.get("rss_trace") else list(run["peak_rss"])
    taken = sum(max(0, peak - low) for peak, low in zip(run["peak_rss"], lowest, strict=True))
    return taken + run.get("store_bytes_written", 0)


def first_touch_seconds(report: dict[str, Any], run: dict[str, Any]) -> float:
    """Seconds the workers' cores need to touch a run's fresh memory at the measured first-touch
    rate (0 in reports from before it was measured)."""
    rate = report.get("ceilings", {}).get("first_touch")
    if not rate:
        return 0.0
    return fresh_bytes(run) / (rate["gb_per_s"] * 1e9) / report["environment"]["workers"]


def layout_floor(report: dict[str, Any], scenario: str, blockdist: dict[str, Any]) -> tuple[float, float, float]:
    """Seconds of this scenario's flops at the layout ceiling, of decoding the bytes blockdist's
    plan reads, and of the first touch of the fresh memory the run took, each at its measured rate."""
    flops = work_share(report, scenario) * _scenario(report, scenario)["flops"] / (layout_ceiling(report, scenario) * 1e9)
    return (flops, decode_seconds(report, scenario, blockdist.get("plan_bytes_read", 0)),
            first_touch_seconds(report, blockdist))


def layout_target(report: dict[str, Any], scenario: str) -> float:
    """Issue 28's share of the layout ceiling: 95 % on raw inputs, 90 % on compressed or sharded."""
    s = _scenario(report, scenario)
    return 0.95 if s.get("codec", "none") == "none" and not s.get("shards") else 0.90


def _size(n: float) -> str:
    return f"{n / GiB:.2f} GiB" if n >= GiB else f"{n / MiB:.0f} MiB"


def targets(report: dict[str, Any], kernel: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every target of issue 3 with its measured value and verdict."""
    best = best_runs(report)
    rows: list[dict[str, Any]] = []

    def add(name: str, value: str, limit: str, ok: bool | None, note: str = "") -> None:
        rows.append({"target": name, "measured": value, "limit": limit,
                     "verdict": "n/a" if ok is None else ("pass" if ok else "miss"), "note": note})

    scen = {s["name"]: s for s in report["scenarios"]}
    for name, runs in best.items():
        bd = runs.get("blockdist")
        rate = machine_rate(report, name)
        if bd is None:
            continue
        if not bd["ok"]:
            add(f"{name}: blockdist runs", "failed", "succeeds", False, bd.get("error", ""))
            continue
        if rate:
            share = bd["gflops"] / rate
            cpu_rate = machine_cpu_rate(report, name)
            note = ""
            if cpu_rate and bd.get("gflop_per_cpu_second"):
                note = (f"per CPU-second: {bd['gflop_per_cpu_second']:.1f} / {cpu_rate:.1f} = "
                        f"{bd['gflop_per_cpu_second'] / cpu_rate:.0%}")
            add(f"{name}: GFLOP/s vs np.matmul", f"{bd['gflops']:.1f} / {rate:.1f} = {share:.0%}", "(informative)",
                None, note)
        layout = layout_ceiling(report, name)
        if layout:
            goal = layout_target(report, name)
            flops, decode, touch = layout_floor(report, name, bd)
            floor = flops + decode + touch
            terms = " and ".join(t for t, seconds in (("decoding", decode), ("first touch", touch)) if seconds)
            done = bd["gflops"] * work_share(report, name)
            nominal = f" (work done; {bd['gflops']:.1f} nominal)" if done != bd["gflops"] else ""
            add(f"{name}: GFLOP/s vs the worker layout's ceiling", f"{done:.1f}{nominal} / {layout:.1f} = "
                f"{done / layout:.0%}", f"≥ {goal:.0%}", done / layout >= goal,
                f"floor with {terms} at the measured rates: {floor:.1f} s, blockdist {bd['seconds']:.1f} s = "
                f"{floor / bd['seconds']:.0%} of it" if terms else "")
        for peer, limit in {"square-small-chunks": {"dask": 0.25, "cubed": 0.25},
                            "square-big-chunks": {"dask": 0.7},
                            "inner-product": {"dask": 0.65}}.get(name, {}).items():
            other = runs.get(peer)
            if other is None:
                continue
            if not other["ok"]:  # nothing to compare with: not a pass
                add(f"{name}: time vs {peer}", f"{peer} failed ({str(other.get('error'))[:80]})", f"≤ {limit}", None)
                continue
            ratio = bd["seconds"] / other["seconds"]
            add(f"{name}: time vs {peer}", f"{bd['seconds']:.1f} s / {other['seconds']:.1f} s = {ratio:.2f}",
                f"≤ {limit}", ratio <= limit)
        budget = scen[name]["memory"]
        peak = max(bd["peak_rss"])
        add(f"{name}: peak RSS per worker", f"{_size(peak)} of {_size(budget)}", "≤ budget", peak <= budget,
            f"model projected {_size(bd['projected_worker_peak'])}")
        rechunked = runs.get("dask-rechunked")
        if rechunked is not None and rechunked["ok"]:
            add(f"{name}: time vs dask rechunked to blockdist's tiles",
                f"{bd['seconds']:.1f} s / {rechunked['seconds']:.1f} s = {bd['seconds'] / rechunked['seconds']:.2f}",
                "(informative)", None, f"dask blocks {rechunked.get('rechunked_to')}")
        for tool, run in runs.items():
            if not run["ok"]:
                continue
            ratio = run.get("error_vs_bound")
            add(f"{name}: {tool} result within rounding", "not checked: " + run.get("check_error", "?")
                if ratio is None else f"{ratio:.2g} × the bound", "≤ 1", ratio is not None and ratio <= 1)
        lost = bd.get("killed_workers")
        add(f"{name}: blockdist workers lost", "not recorded" if lost is None else str(len(lost)), "0",
            lost is not None and not lost)
        cold = runs.get("blockdist-cold")
        if cold is not None and cold["ok"]:
            inputs = scen[name]["input_bytes"]
            add(f"{name}: cold read, disk bytes / input bytes", f"{_size(cold['disk_bytes_read'])} / {_size(inputs)}"
                f" = {cold['disk_bytes_read'] / inputs:.2f}", "≥ 1 (every input byte came off the disk)",
                cold["disk_bytes_read"] >= inputs if cold.get("cold") else None,
                f"blockdist's own count: {_size(cold['store_bytes_read'])}"
                + ("" if cold.get("cold") else "; the page cache could not be dropped (not root)"))
        io = bd["store_bytes_read"] / bd["io_lower_bound"]
        add(f"{name}: bytes read vs lower bound", f"{_size(bd['store_bytes_read'])} / "
            f"{_size(bd['io_lower_bound'])} = {io:.2f}", "≤ 1.15", io <= 1.15)
    if kernel:
        worst = min(kernel["cases"], key=lambda c: c["ratio"])
        add("kernel vs one np.matmul (worst case)", f"{worst['ratio']:.0%} ({worst['label']})", "≥ 95 %",
            worst["ratio"] >= 0.95)
    return rows


def _blas_name(info: dict[str, Any]) -> str:
    return f"{info.get('internal_api', '?')} {info.get('version', '')} {info.get('architecture', '')}".strip()


def _reference_lines(report: dict[str, Any]) -> list[str]:
    """The machine's ceiling: measured BLAS rates (start, end of the run) and the cores' peak."""
    if not report.get("reference"):
        return []
    peak = report.get("peak", {})
    parts = []
    for dtype in report["reference"][0]["rates"]:
        rates = [f"{r['rates'][dtype]['best_gflops']:.1f}" for r in report["reference"] if dtype in r["rates"]]
        parts.append(f"{dtype} {' / '.join(rates)} GFLOP/s")
    loads = " / ".join(f"{r['load_average'][0]:.2f}" for r in report["reference"])
    edge = report["reference"][0]["rates"][next(iter(report["reference"][0]["rates"]))]["edge"]
    line = (f"Reference BLAS rate, best `np.matmul` of {edge}² operands on every core, start / end of the run: "
            f"{'; '.join(parts)} (load average {loads}).")
    if peak.get("float64_gflops"):
        line += (f" Theoretical peak: {peak['cores']} cores × {peak['dp_flops_per_cycle']} double-precision "
                 f"flops a cycle × {peak['clock_ghz']:.2f} GHz ({peak['clock_source']}) = "
                 f"{peak['float64_gflops']:.0f} GFLOP/s float64, {peak['float32_gflops']:.0f} float32.")
    return [line, "", *_ceiling_lines(report)]


def _ceiling_lines(report: dict[str, Any]) -> list[str]:
    found = report.get("ceilings")
    if not found:
        return []
    workers = report["environment"]["workers"]
    layout = "; ".join(f"{d} {r['best_gflops']:.1f} GFLOP/s" for d, r in found["layout"].items())
    line = (f"Worker layout ceiling, {workers} processes each running a one-thread `np.matmul` of the same "
            f"operands at once, best of {len(next(iter(found['layout'].values()))['gflops'])}: {layout} "
            f"(load average {found['load_average'][0]:.2f}). `% layout` compares with it.")
    if found.get("decode"):
        line += (" Decoded bytes a CPU-second, chunks read as tasks read them (`blockdist tune`'s measure): "
                 + "; ".join(f"{c} {r['best_gb_per_s']:.2f} GB/s" for c, r in found["decode"].items()) + ".")
    if found.get("first_touch"):
        line += (f" The first write to fresh memory costs {found['first_touch']['gb_per_s']:.2f} GB a CPU-second "
                 f"beyond a write to memory already held (`ceilings.py`, {_size(found['first_touch']['size'])}).")
    return [line, ""]


def _scenario_ceiling(report: dict[str, Any], s: dict[str, Any], bd: dict[str, Any] | None) -> str:
    layout = layout_ceiling(report, s["name"])
    if not layout:
        return ""
    text = f"; worker layout ceiling {layout:.1f} GFLOP/s (target {layout_target(report, s['name']):.0%} of it)"
    if bd and bd.get("ok"):
        flops, decode, touch = layout_floor(report, s["name"], bd)
        if decode:
            text += (f"; decoding the plan's {_size(bd['plan_bytes_read'])} ({s.get('codec')}) takes {decode:.1f} s "
                     f"on the workers' cores at the measured rate, beside {flops:.1f} s of flops at the layout ceiling")
        if touch:
            text += (f"; the first touch of the {_size(fresh_bytes(bd))} of fresh memory the workers took and C's "
                     f"page-cache pages takes {touch:.1f} s at the measured rate")
    return text


def write_summary(report: dict[str, Any], kernel: dict[str, Any] | None, path: Path) -> None:
    best = best_runs(report)
    env = report["environment"]
    lines = [
        "# blockdist benchmark summary",
        "",
        f"Scale `{report['scale']}`, {env['when']}, {env['cpu']}, {env['cores']} cores, "
        f"{env['memory'] / GiB:.0f} GiB; {env['workers']} workers × {env['threads_per_worker']} thread "
        f"(numpy: one process, {env['cores']} BLAS threads). Load average at start: "
        f"{', '.join(f'{x:.1f}' for x in env['load_average_at_start'])}. "
        f"BLAS: {', '.join(_blas_name(i) for i in env['blas'])}."
        + (f" Environment: {env['env']}." if env.get("env") else ""),
        "",
        "Each figure is the best of the rounds run. Seconds are one clock for every tool: from the call "
        "to the written result (reading, planning or building the graph, creating the output), the "
        "cluster's start left out. `% BLAS` compares with the machine's BLAS rate: the best `np.matmul` "
        "of 4096² operands of the scenario's dtype on every core, at the start and end of the same run "
        "(older reports: `np.matmul` of the scenario's own operands). Peak RSS is the largest worker's "
        "`VmHWM` during the run (numpy: the benchmark process). Bytes read: the worker processes' `rchar` "
        "(bytes through read system calls). blockdist maps local uncompressed chunk files instead of "
        "reading them, which `rchar` does not see: its figure is its store's own count of the chunk bytes "
        "it mapped or read (`rchar` in brackets); `blockdist-cold` runs it again after dropping the page "
        "cache, and its disk bytes (`/proc/PID/io` `read_bytes`, mapped pages included) measure the reads "
        "independently. `dask-rechunked` is dask.array with blockdist's tile edge as its block size. "
        "Error / bound: a 64×64 corner of C against numpy's float64 product, as a share of the elementwise "
        "rounding bound 2·γ_k·|A|·|B|.",
        "",
    ]
    lines += _reference_lines(report)
    for s in report["scenarios"]:
        runs = best.get(s["name"], {})
        rate = machine_rate(report, s["name"])
        lines += [
            f"## {s['name']}: {s.get('title') or ''} ({s['m']}×{s['k']} · {s['k']}×{s['n']}, chunks "
            f"{s['a_chunks'][0]}×{s['a_chunks'][1]} / {s['b_chunks'][0]}×{s['b_chunks'][1]})",
            "",
            f"{s['flops'] / 1e9:,.0f} GFLOP; inputs {_size(s['input_bytes'])}; memory limit "
            f"{_size(s['memory'])} per worker; BLAS rate ({s.get('dtype', 'float64')}): "
            + (f"{rate:.1f} GFLOP/s" if rate else "not measured")
            + (f", {machine_cpu_rate(report, s['name']):.1f} GFLOP per CPU-s"
               if machine_cpu_rate(report, s["name"]) else "")
            + _scenario_ceiling(report, s, runs.get("blockdist")),
            "",
            "| tool | seconds | GFLOP/s | % BLAS | % layout | GFLOP per CPU-s | peak RSS per worker | bytes read | "
            "× blockdist's lower bound | disk bytes | error / bound |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        layout = layout_ceiling(report, s["name"])
        bound = runs.get("blockdist", {}).get("io_lower_bound")
        for tool in TOOLS:
            r = runs.get(tool)
            if r is None:
                continue
            if not r["ok"]:
                lines.append(f"| {tool} | failed: {str(r.get('error'))[:90]} | | | | | | | | | |")
                continue
            read = _size(r["bytes_read"])
            if tool.startswith("blockdist"):
                read = f"{_size(r['store_bytes_read'])} ({read})"
            io = f"{(r.get('store_bytes_read') or r['bytes_read']) / bound:.2f}" if bound else ""
            share = f"{r['gflops'] / rate:.0%}" if rate else ""
            peak = " / ".join(_size(p) for p in r["peak_rss"])
            disk = _size(r.get("disk_bytes_read", 0)) + (" (cold)" if r.get("cold") else "")
            error = "" if r.get("error_vs_bound") is None else f"{r['error_vs_bound']:.2g}"
            per_cpu = f"{r['gflop_per_cpu_second']:.1f}" if r.get("gflop_per_cpu_second") else ""
            of_layout = f"{r['gflops'] / layout:.0%}" if layout else ""
            lines.append(f"| {tool} | {r['seconds']:.1f} | {r['gflops']:.1f} | {share} | {of_layout} | {per_cpu} | "
                         f"{peak} | {read} | {io} | {disk} | {error} |")
        bd = runs.get("blockdist")
        if bd and bd.get("ok"):
            plan = bd["plan"]
            stats = bd["task_stats"]
            operands = {side: _operand(plan, side) for side in ("a", "b")}
            mapped = [side.upper() for side, (_, is_mapped) in operands.items() if is_mapped]
            lines += [
                "",
                f"blockdist plan: {plan['strategy']}, tiles {plan['tile_rows']}×{plan['tile_cols']}, "
                f"{plan['tasks']} tasks, k-panels {operands['a'][0]}/{operands['b'][0]}, "
                f"mapped: {' and '.join(mapped) or 'neither'} "
                f"({_size(stats.get('bytes_mapped', 0))} of the bytes read), "
                f"kernel rows {plan['kernel_rows']}. Memory model: {_size(bd['projected_task_memory'])} per "
                f"task + {_size(bd['worker_baseline_model'])} worker baseline = "
                f"{_size(bd['projected_worker_peak'])} projected per worker; measured peak "
                f"{_size(max(bd['peak_rss']))}. In the tasks: compute {stats['compute_seconds']:.1f} s, "
                f"waiting for panels {stats['wait_seconds']:.1f} s, reading (overlapped) "
                f"{stats['read_seconds']:.1f} s (reading and decoding {_size(stats['bytes_read'])}), writing {stats.get('write_seconds', 0):.1f} s, summed over tasks.",
            ]
        lines.append("")
    if kernel:
        lines += ["## kernel: blockdist's kernel as tasks run it vs one `np.matmul` (1 BLAS thread)", "",
                  "Panels: `blockdist.worker.kernel.accumulate` on one copied panel of each operand, with the "
                  "planner's row block. Mapped chunks: a 4096² C tile accumulated block by block from chunk "
                  "blocks of the edge shown (each its own array, as mapped chunk files are).", "",
                  "| case | operands | dtype | row block / chunk edge | kernel GFLOP/s | np.matmul GFLOP/s | ratio |",
                  "|---|---|---|---:|---:|---:|---:|"]
        for c in kernel["cases"]:
            lines.append(f"| {c.get('kind', 'panels')} | {c['m']}×{c['k']} · {c['k']}×{c['n']} | {c['dtype']} | "
                         f"{c['rows']} | {c['kernel_gflops']:.1f} | {c['matmul_gflops']:.1f} | {c['ratio']:.0%} |")
        lines.append("")
    lines += ["## targets (issue 3)", "", "| target | measured | limit | verdict | note |",
              "|---|---|---|---|---|"]
    for t in targets(report, kernel):
        lines.append(f"| {t['target']} | {t['measured']} | {t['limit']} | {t['verdict']} | {t['note']} |")
    lines.append("")
    path.write_text("\n".join(lines))


def plots(report: dict[str, Any], out: Path, prefix: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best = best_runs(report)
    names = [s["name"] for s in report["scenarios"]]
    budgets = {s["name"]: s["memory"] for s in report["scenarios"]}
    written = []

    def bars(metric: str, ylabel: str, filename: str, title: str, ref=None, ref_label: str = "") -> None:
        fig, ax = plt.subplots(figsize=(9, 4.5))
        width = 0.8 / len(TOOLS)
        for t, tool in enumerate(TOOLS):
            xs, ys = [], []
            for i, name in enumerate(names):
                r = best.get(name, {}).get(tool)
                if r and r["ok"]:
                    value = metric_value(r, name, metric)
                    if value is not None:
                        xs.append(i + (t - (len(TOOLS) - 1) / 2) * width)
                        ys.append(value)
            ax.bar(xs, ys, width, label=tool, color=COLORS[tool])
        if ref is not None:
            for i, name in enumerate(names):
                y = ref(name)
                if y:
                    ax.hlines(y, i - 0.45, i + 0.45, colors="k", linestyles="--", linewidth=1,
                              label=ref_label if i == 0 else None)
        ax.set_xticks(range(len(names)), names)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"{prefix}{filename}"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    def metric_value(r: dict[str, Any], name: str, metric: str) -> float | None:
        rate = machine_rate(report, name)
        if metric == "gflops":
            return r["gflops"]
        if metric == "gflops_ratio":
            return r["gflops"] / rate if rate else None
        if metric == "memory":
            return max(r["peak_rss"]) / GiB
        if metric == "memory_ratio":
            return max(r["peak_rss"]) / budgets[name]
        bound = best.get(name, {}).get("blockdist", {}).get("io_lower_bound")
        read = r.get("store_bytes_read") or r["bytes_read"]
        if metric == "bytes_read":
            return read / GiB
        if metric == "bytes_read_ratio":
            return read / bound if bound else None
        raise ValueError(metric)

    scale = f" ({report['scale']} scale, {report['environment']['workers']} workers × 1 thread)"
    bars("gflops", "GFLOP/s", "gflops.png", "Speed" + scale, ref=lambda n: machine_rate(report, n),
         ref_label="np.matmul in memory")
    bars("gflops_ratio", "GFLOP/s ÷ np.matmul GFLOP/s", "gflops_ratio.png",
         "Speed as a share of np.matmul in the same run" + scale, ref=lambda n: 0.9, ref_label="90 % target")
    bars("memory", "GiB", "memory.png", "Peak RSS of the largest worker" + scale,
         ref=lambda n: budgets[n] / GiB, ref_label="memory limit per worker")
    bars("memory_ratio", "peak RSS ÷ memory limit", "memory_ratio.png",
         "Peak RSS per worker as a share of its limit (numpy: one process)" + scale, ref=lambda n: 1.0,
         ref_label="limit")
    bars("bytes_read", "GiB", "bytes_read.png", "Bytes read" + scale,
         ref=lambda n: (best.get(n, {}).get("blockdist", {}).get("io_lower_bound") or 0) / GiB,
         ref_label="I/O lower bound")
    bars("bytes_read_ratio", "bytes read ÷ lower bound", "bytes_read_ratio.png",
         "Bytes read as a multiple of the I/O lower bound" + scale, ref=lambda n: 1.15,
         ref_label="1.15 target")
    return written


def write_report(path: Path, out: Path | None = None) -> None:
    report = json.loads(Path(path).read_text())
    out = out or Path(path).parent
    kernel_path = out / "kernel.json"
    kernel = json.loads(kernel_path.read_text()) if kernel_path.exists() else None
    stem = Path(path).stem
    prefix = "" if stem == "results" else f"{stem}-"
    plots(report, out, prefix)
    write_summary(report, kernel, out / f"{prefix}summary.md")


if __name__ == "__main__":
    for arg in sys.argv[1:] or [str(Path(__file__).resolve().parent / "results" / "results.json")]:
        write_report(Path(arg))
