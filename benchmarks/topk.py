"""Top-k similarity: blockdist.topk against the plain product followed by argpartition, and numpy.

Usage (from the repository root)::

    python benchmarks/topk.py [--m 20000] [--n 50000] [--d 256] [--k 10] [--chunk 4096]

Writes Q (m×d) and C (n×d) (uncompressed, local disk), then on one local cluster of 2 worker
processes × 1 thread runs, in one run and on the same Zarr inputs:

* ``blockdist.topk``: S = Q·Cᵀ tile by tile, ranked in the tasks, never stored;
* the plain way: ``blockdist.matmul(Q, C, S, transpose_b=True)`` stores S (m×n), then S is read
  back in row blocks on the same workers, argpartitioned and sorted;
* numpy in memory (when S fits in a quarter of this machine's memory): ``Q @ C.T`` then
  argpartition, on the inputs already read (BLAS on every core).

Prints the load average at the start and the end, wall time, bytes written and read back, the
peak resident memory of each worker during each run (Linux: ``VmHWM``, reset by
``/proc/self/clear_refs`` before each run), checks that all agree, and writes
``benchmarks/results/topk.md`` and ``topk.json``.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402


def _reset_peak() -> None:
    """Let the worker's VmHWM start again from its current resident size (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")
    except OSError:
        pass


def _peak_rss() -> int | None:
    try:
        with open("/proc/self/status") as file:
            for line in file:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _rank_rows(path: str, lo: int, hi: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The plain way's second step: rows ``lo:hi`` of the stored S, best ``k`` a row."""
    import zarr

    block = zarr.open_array(path, mode="r")[lo:hi]
    part = np.argpartition(-block, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(block, part, axis=1)
    order = np.lexsort((part, -values), axis=1)
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(values, order, axis=1)


def _numpy_topk(q: np.ndarray, c: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    s = q @ c.T
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(s, part, axis=1)
    order = np.lexsort((part, -values), axis=1)
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(values, order, axis=1)


def _size(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if nbytes < 1024 or unit == "TiB":
            return f"{nbytes:.1f} {unit}" if unit != "B" else f"{nbytes:.0f} B"
        nbytes /= 1024
    return f"{nbytes} B"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=20000, help="queries (rows of Q)")
    parser.add_argument("--n", type=int, default=50000, help="corpus rows (rows of C)")
    parser.add_argument("--d", type=int, default=256, help="columns of Q and C")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--chunk", type=int, default=4096, help="row chunk of Q and C (columns: all of d)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory", default="6GiB", help="memory limit of each worker")
    parser.add_argument("--rank-rows", type=int, default=2048, help="rows of S each ranking task reads back")
    parser.add_argument("--data", type=Path, help="folder for the arrays (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "topk", help="results, without suffix")
    args = parser.parse_args()

    import psutil
    import zarr
    from distributed import Client, LocalCluster

    import blockdist
    from blockdist.storage.random import random_matrix

    load_start = os.getloadavg()
    print(f"load average at start: {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f} "
          f"({os.cpu_count()} cores)", flush=True)
    folder = args.data or Path(tempfile.mkdtemp(prefix="blockdist-topk-"))
    folder.mkdir(parents=True, exist_ok=True)
    m, n, d, k = args.m, args.n, args.d, args.k
    runs: list[dict] = []
    try:
        qp, cp = folder / "q.zarr", folder / "c.zarr"
        random_matrix(qp, (m, d), (min(args.chunk, m), d), seed=1, overwrite=True)
        random_matrix(cp, (n, d), (min(args.chunk, n), d), seed=2, overwrite=True)
        product_bytes = m * n * 8
        import dask

        with dask.config.set({"distributed.worker.memory.spill": False, "distributed.worker.memory.target": False}), \
                LocalCluster(n_workers=args.workers, threads_per_worker=1, host="127.0.0.1",
                             dashboard_address="127.0.0.1:0", memory_limit=args.memory) as cluster, \
                Client(cluster) as client:
            # Workers up and warm (imports, BLAS): a small top-k and a small product, not measured.
            random_matrix(folder / "wq.zarr", (256, d), (128, d), seed=3, overwrite=True)
            blockdist.topk(folder / "wq.zarr", folder / "wq.zarr", 2, folder / "w-top.zarr", client=client,
                           overwrite=True)
            blockdist.matmul(folder / "wq.zarr", folder / "wq.zarr", folder / "w-s.zarr", client=client,
                             transpose_b=True, overwrite=True)

            def measured(name: str, run) -> dict:
                client.run(_reset_peak)
                start = time.perf_counter()
                record = run()
                record["seconds"] = time.perf_counter() - start
                peaks = client.run(_peak_rss)
                record.update(run=name, peak_rss_per_worker=sorted(v for v in peaks.values() if v))
                runs.append(record)
                print(f"{name:34} {record['seconds']:8.2f} s, wrote {_size(record['bytes_written'])}, peak RSS "
                      f"per worker {', '.join(_size(p) for p in record['peak_rss_per_worker'])}", flush=True)
                return record

            def topk_run() -> dict:
                job = blockdist.submit_topk(qp, cp, k, folder / "top.zarr", client=client, overwrite=True)
                indices, scores = job.result()
                return {"bytes_written": job.stats.bytes_written, "bytes_read": job.stats.bytes_read,
                        "bytes_read_back": 0, "tiles": job.plan.tiles, "k_splits": job.plan.k_splits,
                        "tile": [job.plan.tile_rows, job.plan.tile_cols], "merge_rows": job.topk_plan.merge_rows,
                        "_result": (indices[:], scores[:])}

            def plain_run() -> dict:
                job = blockdist.submit(qp, cp, folder / "s.zarr", client=client, transpose_b=True, overwrite=True)
                job.result()
                path, step = str(folder / "s.zarr"), args.rank_rows
                futures = [client.submit(_rank_rows, path, lo, min(lo + step, m), k, pure=False)
                           for lo in range(0, m, step)]
                parts = client.gather(futures)
                indices = np.concatenate([p[0] for p in parts])
                scores = np.concatenate([p[1] for p in parts])
                return {"bytes_written": job.stats.bytes_written, "bytes_read": job.stats.bytes_read,
                        "bytes_read_back": product_bytes, "_result": (indices, scores)}

            measured("blockdist.topk", topk_run)
            measured("blockdist.matmul + argpartition", plain_run)
            shutil.rmtree(folder / "s.zarr", ignore_errors=True)

        if product_bytes * 4 <= psutil.virtual_memory().available:
            q, c = zarr.open_array(str(qp))[:], zarr.open_array(str(cp))[:]
            start = time.perf_counter()
            result = _numpy_topk(q, c, k)
            seconds = time.perf_counter() - start
            runs.append({"run": "numpy in memory (Q @ C.T, argpartition)", "seconds": seconds, "bytes_written": 0,
                         "bytes_read": 0, "bytes_read_back": 0, "peak_rss_per_worker": [], "_result": result})
            print(f"{runs[-1]['run']:34} {seconds:8.2f} s (inputs already in memory)", flush=True)
            del q, c
        else:
            print("numpy in memory: skipped, S does not fit in a quarter of the available memory")

        reference = runs[0]["_result"]
        for record in runs:
            indices, scores = record.pop("_result")
            record["scores_match"] = bool(np.allclose(scores, reference[1], rtol=1e-10, atol=1e-10))
            record["indices_match_share"] = float(np.mean(indices == reference[0]))
        load_end = os.getloadavg()
        print(f"load average at end: {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")
        report = {"m": m, "n": n, "d": d, "k": k, "chunk": args.chunk, "workers": args.workers,
                  "memory_per_worker": args.memory, "product_bytes": product_bytes, "load_average_start": load_start,
                  "load_average_end": load_end, "flops": 2 * m * n * d, "runs": runs}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(report, indent=2))
        base = runs[0]["seconds"]
        lines = [f"# Top-k similarity: Q {m}×{d} · C {n}×{d}ᵀ, k = {k}", "",
                 f"float64, row chunks {args.chunk}, {args.workers} workers × 1 thread ({args.memory} each); "
                 f"S would be {_size(product_bytes)}; {2 * m * n * d / 1e9:.0f} GFLOP. Load average at start "
                 f"{load_start[0]:.2f}, at end {load_end[0]:.2f} ({os.cpu_count()} cores). Command: "
                 f"`python benchmarks/topk.py --m {m} --n {n} --d {d} --k {k} --chunk {args.chunk}`", "",
                 "| run | seconds | × topk | written | S read back | peak RSS per worker | scores agree | indices agree |",
                 "|---|---:|---:|---:|---:|---|---|---:|"]
        for r in runs:
            peaks = ", ".join(_size(p) for p in r["peak_rss_per_worker"]) or "–"
            lines.append(f"| {r['run']} | {r['seconds']:.2f} | {r['seconds'] / base:.2f} | {_size(r['bytes_written'])} | "
                         f"{_size(r['bytes_read_back'])} | {peaks} | {r['scores_match']} | "
                         f"{r['indices_match_share']:.4%} |")
        args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
    finally:
        if args.data is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
