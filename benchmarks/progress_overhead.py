"""What reporting progress from inside tasks costs, in one run.

1. The same product (default 8192³ float64, chunks 1024², 2 workers × 1 thread) with
   progress events on (``blockdist.progress-interval`` 0.25 s) and off (0), rounds
   alternating: wall time, and the seconds the tasks themselves spent counting and sending
   (``TaskStats.progress_seconds``) against their compute seconds.
2. The kernel's row blocks that make progress smooth: one BLAS thread, C (4096×4096) += A
   (4096×1024)·B (1024×4096) as one call against two calls of 2048 rows, best of five each.

    python benchmarks/progress_overhead.py [--size 8192] [--chunk 1024] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import dask  # noqa: E402
import numpy as np  # noqa: E402
import threadpoolctl  # noqa: E402

import blockdist  # noqa: E402


def product_runs(size: int, chunk: int, rounds: int, folder: Path) -> list[dict]:
    a, b = folder / "a.zarr", folder / "b.zarr"
    blockdist.random_matrix(a, (size, size), (chunk, chunk), seed=1, overwrite=True)
    blockdist.random_matrix(b, (size, size), (chunk, chunk), seed=2, overwrite=True)
    runs = []
    for round_ in range(rounds):
        for interval in ((0.25, 0.0) if round_ % 2 == 0 else (0.0, 0.25)):
            with dask.config.set({"blockdist.progress-interval": interval}):
                result = blockdist.run(a, b, folder / "c.zarr", workers=2, threads=1, overwrite=True)
            stats = result.stats
            runs.append({"progress_interval": interval, "seconds": round(result.seconds, 3),
                         "gflops": round(result.gflops, 2), "progress_seconds": stats.progress_seconds,
                         "compute_seconds": stats.compute_seconds,
                         "progress_share_of_compute": stats.progress_seconds / stats.compute_seconds})
            print(json.dumps(runs[-1]), flush=True)
    return runs


def kernel_split(repeats: int = 5) -> dict:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4096, 1024)), rng.standard_normal((1024, 4096))
    c = np.zeros((4096, 4096))
    one, two = [], []
    with threadpoolctl.threadpool_limits(1, "blas"):
        for _ in range(repeats):
            start = time.perf_counter()
            c += a @ b
            one.append(time.perf_counter() - start)
            start = time.perf_counter()
            c[:2048] += a[:2048] @ b
            c[2048:] += a[2048:] @ b
            two.append(time.perf_counter() - start)
    return {"one_call_seconds": min(one), "two_row_blocks_seconds": min(two),
            "ratio": min(two) / min(one)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "progress-overhead.json")
    args = parser.parse_args()
    report = {"load_average_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="blockdist-progress-") as folder:
        report["runs"] = product_runs(args.size, args.chunk, args.rounds, Path(folder))
    report["kernel_split"] = kernel_split()
    print(json.dumps(report["kernel_split"]))
    report["load_average_end"] = os.getloadavg()
    args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
