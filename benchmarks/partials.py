"""Split-k partial tiles held in worker memory against staged in scratch Zarr, in one run.

For each case (a one-tile product the planner splits over k on 2 workers), local files and a
loopback S3 server (moto, in its own process), blockdist runs the product twice with each of
``partials="memory"`` and ``partials="storage"``: once undisturbed, once with a worker killed
(SIGKILL) as soon as it has finished a partial tile (in memory, the partial is lost with it). Each run gets a fresh cluster of 2
worker processes × 1 thread; the figures are wall time, peak RSS per worker (VmHWM), bytes
staged to scratch storage, bytes moved between workers (their transfer logs), partial tasks
finished (the scheduler's transitions; a task killed mid-run is not one), and a check of a corner against numpy::

    python benchmarks/partials.py [--quick] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
import zarr  # noqa: E402
from run import Watch, _warm, bench_cluster  # noqa: E402  (benchmarks/run.py)
from s3_read import BUCKET, options, start_moto  # noqa: E402

import blockdist  # noqa: E402
from blockdist.planning.units import parse_size  # noqa: E402
from blockdist.storage import locate  # noqa: E402

CASES = {  # name: (m, n, k, chunk, where)
    "local 4096×4096×16384": (4096, 4096, 16384, 1024, "local"),
    "local 2048×2048×65536": (2048, 2048, 65536, 1024, "local"),
    "S3 2048×2048×16384": (2048, 2048, 16384, 1024, "s3"),
}
QUICK = {"local 2048×2048×8192": (2048, 2048, 8192, 512, "local"), "S3 1024×1024×8192": (1024, 1024, 8192, 512, "s3")}


def write_inputs(where: str, m: int, n: int, k: int, chunk: int, data: Path, endpoint: str | None
                 ) -> tuple[str, str, np.ndarray, np.ndarray, dict[str, Any] | None]:
    rng = np.random.default_rng(7)
    a = rng.standard_normal((m, k))
    b = rng.standard_normal((k, n))
    if where == "local":
        paths = [str(data / f"{m}x{n}x{k}-{name}.zarr") for name in ("a", "b")]
        for path, values in zip(paths, (a, b), strict=True):
            zarr.create_array(store=path, data=values, chunks=(chunk, chunk), compressors=None, overwrite=True)
        return paths[0], paths[1], a, b, None
    opts = options(endpoint, "obstore")
    urls = [f"s3://{BUCKET}/{m}x{n}x{k}/{name}.zarr" for name in ("a", "b")]
    for url, values in zip(urls, (a, b), strict=True):
        zarr.create_array(locate(url, storage_options=opts).store, data=values, chunks=(chunk, chunk),
                          compressors=None, overwrite=True)
    return urls[0], urls[1], a, b, opts


def _partials_run(dask_scheduler: Any) -> int:
    return sum(1 for entry in dask_scheduler.transition_log
               if str(entry[0]).startswith("blockdist-partial") and entry[2] == "memory")


def _received(dask_worker: Any) -> int:
    return sum(entry["total"] for entry in dask_worker.transfer_incoming_log)


def _finished_partial_holders(dask_scheduler: Any) -> list[str]:
    """Workers holding the result of a finished partial task (its tile, or only its figures)."""
    return sorted({ws.address for key, ts in dask_scheduler.tasks.items()
                   if str(key).startswith("blockdist-partial") and ts.state == "memory" for ws in ts.who_has})


def one_run(a: str, b: str, out: str, opts: dict[str, Any] | None, partials: str, kill: bool,
            expected: np.ndarray, memory: int) -> dict[str, Any]:
    with bench_cluster(memory) as client:
        pids_by_address = client.run(_warm)
        pids = list(pids_by_address.values())
        killed: list[float] = []
        with Watch(pids) as watch:
            start = time.perf_counter()
            job = blockdist.submit(a, b, out, client=client, overwrite=True, partials=partials,
                                   storage_options=opts)

            def killer() -> None:  # the worker that has just finished a partial: in memory, it is lost
                while not job.done():
                    holders = client.run_on_scheduler(_finished_partial_holders)
                    if holders:
                        os.kill(pids_by_address[holders[0]], signal.SIGKILL)
                        killed.append(time.perf_counter() - start)
                        return
                    time.sleep(0.02)

            thread = threading.Thread(target=killer, daemon=True)
            if kill:
                thread.start()
            result = job.result()
            seconds = time.perf_counter() - start
            thread.join(timeout=5) if kill else None
        corner = np.asarray(result[:64, :64])
        error = float(np.abs(corner - expected).max() / max(1e-300, np.abs(expected).max()))
        return {
            "partials": partials, "killed_worker": kill, "killed_at_s": killed[0] if killed else None,
            "seconds": round(seconds, 3), "k_splits": job.plan.k_splits, "tile": [job.plan.tile_rows, job.plan.tile_cols],
            "gflops": round(job.plan.flops / seconds / 1e9, 2),
            "peak_rss_per_worker": [watch.peak.get(p, 0) for p in pids],
            "bytes_staged": job.stats.bytes_staged, "partials_reused": job.stats.partials_reused,
            "bytes_between_workers": int(sum(client.run(_received).values())),
            "partial_tasks_run": int(client.run_on_scheduler(_partials_run)),
            "bytes_read": job.stats.bytes_read, "relative_error_corner": error,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small cases, about a minute")
    parser.add_argument("--data", type=Path, default=Path("/tmp/blockdist-partials-bench"))
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--memory", default="4GB", help="memory limit per worker")
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    memory = parse_size(args.memory)
    report: dict[str, Any] = {"load_average_start": os.getloadavg(), "cpus": os.cpu_count(), "cases": {}}
    moto, endpoint = start_moto()
    try:
        from boto3 import client as boto_client

        opts = options(endpoint, "obstore")
        boto_client("s3", endpoint_url=endpoint, aws_access_key_id=opts["access_key_id"],
                    aws_secret_access_key=opts["secret_access_key"], region_name=opts["region"]).create_bucket(Bucket=BUCKET)
        for name, (m, n, k, chunk, where) in (QUICK if args.quick else CASES).items():
            a, b, a_values, b_values, opts = write_inputs(where, m, n, k, chunk, args.data, endpoint)
            expected = a_values[:64] @ b_values[:, :64]
            out = str(args.data / f"{m}x{n}x{k}-c.zarr") if where == "local" else f"s3://{BUCKET}/{m}x{n}x{k}/c.zarr"
            runs = []
            for kill in (False, True):
                for partials in (("memory", "storage") if not kill else ("storage", "memory")):
                    record = one_run(a, b, out, opts, partials, kill, expected, memory)
                    print(name, json.dumps({key: record[key] for key in (
                        "partials", "killed_worker", "killed_at_s", "seconds", "partials_reused", "k_splits", "peak_rss_per_worker", "bytes_staged",
                        "bytes_between_workers", "partial_tasks_run", "relative_error_corner")}), flush=True)
                    runs.append(record)
            report["cases"][name] = runs
    finally:
        moto.kill()
    report["load_average_end"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / ("partials-quick.json" if args.quick else "partials.json")).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
