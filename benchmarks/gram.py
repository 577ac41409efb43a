"""Symmetric products: blockdist.gram against the plain product and dask.array's ``x @ x.T``.

Usage (from the repository root)::

    python benchmarks/gram.py [--rows 8192] [--cols 2048] [--chunk 512]

Writes X (uncompressed, local disk), then on one local cluster of 2 worker processes × 1
thread runs, interleaved and in one run: blockdist's plain product X·Xᵀ (``transpose_b``),
``blockdist.gram`` (tiles on and above the diagonal only, mirrored), and dask.array's
``x @ x.T`` stored to Zarr. Prints a table and writes ``benchmarks/results/gram.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8192)
    parser.add_argument("--cols", type=int, default=2048)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "gram.json")
    args = parser.parse_args()

    import dask
    import dask.array as da
    import zarr
    from distributed import Client, LocalCluster

    import blockdist
    from blockdist.storage.random import random_matrix

    folder = Path(tempfile.mkdtemp(prefix="blockdist-gram-"))
    try:
        random_matrix(folder / "x.zarr", (args.rows, args.cols), (args.chunk, args.chunk), seed=1)
        flops = 2 * args.rows * args.rows * args.cols
        times: dict[str, list[float]] = {"blockdist matmul X·Xᵀ": [], "blockdist gram": [], "dask x @ x.T": []}
        with dask.config.set({"distributed.worker.memory.spill": False, "distributed.worker.memory.target": False}), \
                LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address="127.0.0.1:0",
                             memory_limit="6GiB") as cluster, Client(cluster) as client:
            for _ in range(args.repeat):
                start = time.perf_counter()
                blockdist.matmul(folder / "x.zarr", folder / "x.zarr", folder / "plain.zarr", client=client,
                                 transpose_b=True, overwrite=True)
                times["blockdist matmul X·Xᵀ"].append(time.perf_counter() - start)

                start = time.perf_counter()
                blockdist.gram(folder / "x.zarr", folder / "gram.zarr", client=client, overwrite=True)
                times["blockdist gram"].append(time.perf_counter() - start)

                start = time.perf_counter()
                x = da.from_zarr(str(folder / "x.zarr"))
                target = zarr.create_array(store=str(folder / "dask.zarr"), shape=(args.rows, args.rows),
                                           chunks=(args.chunk, args.chunk), dtype="float64", compressors=None,
                                           overwrite=True)
                (x @ x.T).store(target, lock=False)
                times["dask x @ x.T"].append(time.perf_counter() - start)
            sample = np.s_[:: max(1, args.rows // 64), :: max(1, args.rows // 64)]
            reference = zarr.open_array(str(folder / "dask.zarr"))[sample]
            for name in ("plain", "gram"):
                got = zarr.open_array(str(folder / f"{name}.zarr"))[sample]
                np.testing.assert_allclose(got, reference, rtol=1e-9, atol=1e-9 * np.abs(reference).max())
        best = {name: min(values) for name, values in times.items()}
        base = best["blockdist matmul X·Xᵀ"]
        rows = [{"run": name, "seconds": best[name], "gflops_nominal": flops / best[name] / 1e9,
                 "vs_plain": best[name] / base, "times": times[name]} for name in times]
        print(f"X {args.rows}×{args.cols} float64, chunks {args.chunk}², 2 workers × 1 thread; "
              f"X·Xᵀ = {flops / 1e9:.0f} GFLOP nominal; best of {args.repeat}")
        print(f"{'run':24} {'seconds':>8} {'GFLOP/s':>8} {'× plain':>8}")
        for row in rows:
            print(f"{row['run']:24} {row['seconds']:8.2f} {row['gflops_nominal']:8.1f} {row['vs_plain']:8.2f}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"rows": args.rows, "cols": args.cols, "chunk": args.chunk,
                                        "results": rows}, indent=2))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
