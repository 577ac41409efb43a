"""Randomized SVD: ``blockdist.svd`` against ``dask.array.linalg.svd_compressed`` on the same
Zarr input (low rank plus noise, zstd), the same cluster (2 worker processes × 1 thread), the
same rank, oversampling and power iterations, in one run; numpy's singular values and vectors
of the same matrix (from AᵀA, summed band by band) are the reference for the error::

    python benchmarks/svd.py [--rows 40000] [--cols 4000] [--chunk 2000] [--rank 10] [--name svd-kept-40000]

blockdist keeps A on the workers where it fits (the plan's memory line, recorded) and streams it
otherwise; where it keeps A, the streamed run (``keep_a=False``) is measured beside it.

Figures: wall time, peak RSS of each worker and of this process (VmHWM, reset before each
run, and 20 ms samples), the bytes blockdist read, the worst relative error of the singular
values, ‖UᵀU − I‖ and the worst |cosine| deficit between each computed right singular vector
and numpy's, and the load average before each run. Writes ``results/NAME.json`` and ``.md``
(NAME ``svd-MxN-MEMGiB`` unless ``--name``); a peer that fails (a worker killed at its memory
limit, or past ``--timeout``) is reported as failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import zarr  # noqa: E402
from run import Watch, _warm, bench_cluster  # noqa: E402  (benchmarks/run.py)

import blockdist  # noqa: E402


def write_input(path: Path, m: int, n: int, chunk: int, true_rank: int) -> None:
    """Low rank (geometrically decaying) plus noise, written a band of rows at a time."""
    rng = np.random.default_rng(11)
    right = rng.standard_normal((true_rank, n)) * np.geomspace(100, 1, true_rank)[:, None]
    array = zarr.create_array(store=str(path), shape=(m, n), chunks=(chunk, chunk), dtype="f8", overwrite=True)
    for lo in range(0, m, chunk):
        rows = min(chunk, m - lo)
        array[lo : lo + rows] = rng.standard_normal((rows, true_rank)) @ right + 0.1 * rng.standard_normal((rows, n))


def reference(path: Path, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """A's singular values and right singular vectors by numpy, exactly (to rounding) for the
    leading ones: the eigen-decomposition of AᵀA, summed over bands of rows (A is never whole here)."""
    array = zarr.open_array(path)
    gram = np.zeros((array.shape[1], array.shape[1]))
    for lo in range(0, array.shape[0], chunk):
        band = array[lo : lo + chunk]
        gram += band.T @ band
    values, vectors = np.linalg.eigh(gram)
    order = np.argsort(values)[::-1]
    return np.sqrt(np.maximum(values[order], 0)), vectors[:, order].T


def errors(s: np.ndarray, u: np.ndarray, vt: np.ndarray, exact_s: np.ndarray, exact_vt: np.ndarray) -> dict[str, float]:
    k = len(s)
    return {"max_relative_error_s": float(np.max(np.abs(s - exact_s[:k]) / exact_s[:k])),
            "orthogonality_u": float(np.abs(u.T @ u - np.eye(k)).max()),
            "max_cosine_deficit_v": float(np.max(1 - np.abs(np.sum(vt * exact_vt[:k], axis=1))))}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=40000)
    parser.add_argument("--cols", type=int, default=4000)
    parser.add_argument("--chunk", type=int, default=2000)
    parser.add_argument("--rank", type=int, default=10)
    parser.add_argument("--true-rank", type=int, default=20)
    parser.add_argument("--oversample", type=int, default=10)
    parser.add_argument("--power-iters", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--worker-memory", type=float, default=8.0, help="each worker's memory limit, GiB")
    parser.add_argument("--timeout", type=float, default=600, help="seconds a peer may take before it counts as failed")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--name", help="the results' file name, without .json/.md (default svd-MxN-MEMGiB)")
    return parser.parse_args()


def table_rows(best: dict[str, dict[str, Any]]) -> list[str]:
    """One row of the results' table a tool: its best run, or how it failed."""
    lines = []
    for tool, row in best.items():
        read = f"{row['bytes_read'] / 2**30:.2f} GiB" if row.get("bytes_read") else "–"
        head = f"| {tool} | {{}} | {row['load_before']:.2f} | {read} | "
        if row["error"]:
            lines.append(head.format(f"failed after {row['seconds']:.1f} s ({row['error'][:90]})")
                         + f"{max(row['peak_rss_per_worker'] or [0]) / 2**20:.0f} MiB | "
                         f"{row['peak_rss_here'] / 2**20:.0f} MiB | – | – | – |")
            continue
        lines.append(head.format(f"{row['seconds']:.2f}") + f"{max(row['peak_rss_per_worker']) / 2**20:.0f} MiB | "
                     f"{row['peak_rss_here'] / 2**20:.0f} MiB | "
                     f"{row['max_relative_error_s']:.1e} | {row['orthogonality_u']:.1e} | "
                     f"{row['max_cosine_deficit_v']:.1e} |")
    return lines


def measure_all(client: Any, tools: dict[str, Any], figures: dict[str, Any], repeats: int,
                exact: tuple[np.ndarray, np.ndarray]) -> dict[str, list[dict[str, Any]]]:
    """Every tool ``repeats`` times in turn: its time, memory, the load before it, the figures
    it reported and its errors against ``exact`` (numpy's s and Vᵀ)."""
    runs: dict[str, list[dict[str, Any]]] = {}
    me = psutil.Process()
    for _ in range(repeats):
        for name, tool in tools.items():
            figures.clear()
            load_before = os.getloadavg()[0]
            rss_before = me.memory_info().rss
            pids = list(client.run(_warm).values())  # a worker killed for its memory has a new pid
            error = None
            with Watch([*pids, os.getpid()]) as watch:
                try:
                    s, u, vt = tool()
                except Exception as failure:  # noqa: BLE001 - a peer that fails is a result too
                    error = f"{type(failure).__name__}: {str(failure)[:200]}"
            seconds = time.perf_counter() - watch.start
            row = {"seconds": seconds, "peak_rss_per_worker": [watch.peak.get(p, 0) for p in pids],
                   "peak_rss_here": watch.peak.get(os.getpid(), 0), "rss_here_before": rss_before,
                   "load_before": load_before, **figures,
                   "error": error, **({} if error else errors(s, u, vt, *exact))}
            if error:
                runs.setdefault(name, []).append(row)
                print(f"  {name}: failed after {seconds:.1f} s: {error}", flush=True)
                continue
            runs.setdefault(name, []).append(row)
            print(f"  {name}: {seconds:.2f} s, peak/worker "
                  f"{max(row['peak_rss_per_worker']) / 2**20:.0f} MiB, s error {row['max_relative_error_s']:.1e}",
                  flush=True)
    return runs


def main() -> None:
    args = arguments()
    load = os.getloadavg()
    print(f"load average at the start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="blockdist-svd-"))
    m, n, k = args.rows, args.cols, args.rank
    a_path = folder / "a.zarr"
    write_input(a_path, m, n, args.chunk, args.true_rank)
    start = time.perf_counter()
    exact_s, exact_vt = reference(a_path, args.chunk)
    numpy_seconds = time.perf_counter() - start
    print(f"A {m}×{n} float64 ({m * n * 8 / 2**30:.2f} GiB), numpy's reference {numpy_seconds:.1f} s", flush=True)
    with bench_cluster(int(args.worker_memory * 2**30)) as client:
        import dask.array as da

        from blockdist.planning.sketch import SketchParameters
        from blockdist.runtime.request import Options
        from blockdist.runtime.svd import run_sketch

        figures: dict[str, Any] = {}  #: what the last blockdist run reported

        def blockdist_run(keep_a: bool | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            result = run_sketch(a_path, folder / "u.zarr", SketchParameters("svd", k, args.oversample, args.power_iters,
                                                                            1, keep_a),
                                Options(client=client, overwrite=True))
            figures.update(bytes_read=result.bytes_read, a_bytes_read=result.a_bytes_read,
                           memory=result.plan.keep.summary() if result.plan.keep is not None else None)
            return result.s, result.u[:], result.vt

        def dask_run() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            from distributed import wait

            x = da.from_zarr(str(a_path))
            u, s, v = da.linalg.svd_compressed(x, k, n_power_iter=args.power_iters, n_oversamples=args.oversample,
                                               seed=1, compute=False)
            futures = client.compute([u, s, v])
            done = wait(futures, timeout=args.timeout, return_when="ALL_COMPLETED")
            if done.not_done:
                client.cancel(futures)
                raise TimeoutError(f"not finished in {args.timeout} s")
            u, s, v = client.gather(futures)
            return s, u, v

        tools = {"blockdist.svd": blockdist_run, "dask.array.linalg.svd_compressed": dask_run}
        planned = blockdist.plan_svd(a_path, k, oversample=args.oversample, power_iters=args.power_iters,
                                     memory=int(args.worker_memory * 2**30), workers=2, threads=1)
        if planned.kept:  # the streamed run beside the kept one
            tools = {"blockdist.svd": blockdist_run, "blockdist.svd (keep_a=False)": lambda: blockdist_run(False),
                     "dask.array.linalg.svd_compressed": dask_run}
        runs = measure_all(client, tools, figures, args.repeats, (exact_s, exact_vt))
    end_load = os.getloadavg()
    best = {name: min(rows, key=lambda r: (r["error"] is not None, r["seconds"])) for name, rows in runs.items()}
    result = {"shape": [m, n], "chunk": args.chunk, "rank": k, "true_rank": args.true_rank,
              "oversample": args.oversample, "power_iters": args.power_iters, "numpy_reference_seconds": numpy_seconds, "worker_memory_gib": args.worker_memory,
              "load_average_start": load, "load_average_end": end_load, "runs": runs, "best": best}
    args.out.mkdir(parents=True, exist_ok=True)
    name = args.name or f"svd-{m}x{n}-{args.worker_memory:g}GiB"
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2))
    lines = [f"# Randomized SVD of a {m}×{n} float64 Zarr array (chunks {args.chunk}², zstd; "
             f"{m * n * 8 / 2**30:.2f} GiB), rank {k}, oversample {args.oversample}, {args.power_iters} power iterations",
             "", f"`python benchmarks/svd.py --rows {m} --cols {n} --chunk {args.chunk} --rank {k} --worker-memory {args.worker_memory:g}"
             f"{f' --repeats {args.repeats}' if args.repeats != 2 else ''}{f' --name {args.name}' if args.name else ''}`; load average "
             f"{load[0]:.2f} at the start, {end_load[0]:.2f} at the end; 2 workers × 1 thread, "
             f"{args.worker_memory:g} GiB each; best of {args.repeats} by time; numpy's reference (eigen-decomposition "
             f"of AᵀA summed over bands of rows) took {numpy_seconds:.1f} s.", "",
             f"blockdist's plan for this cluster: {planned.keep.summary() if planned.keep else '–'}.", "",
             "| tool | s | load before | read | peak RSS / worker | peak RSS here | max rel. error of s | ‖UᵀU−I‖ | "
             "1−|cos| of V |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += table_rows(best)
    (args.out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
