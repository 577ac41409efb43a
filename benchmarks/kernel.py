"""``blockdist.kernel.accumulate`` against one ``np.matmul`` of the same operands.

    python benchmarks/kernel.py [--quick] [--rows R]

For each tile size and dtype, C (m×n) += A (m×k) · B (k×n) through the kernel, with the row
block the planner would use (the tune file's ``kernel_rows``, see ``blockdist tune``, or
``--rows``), against ``np.matmul(A, B, out=…)`` on the same operands: one BLAS thread, as in
a Dask worker thread. The two are timed alternately and the fastest of each is kept. Writes
``benchmarks/results/kernel.json`` (read by ``report.py`` into ``summary.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from blockdist.runtime import tune  # noqa: E402

CASES = [  # (m, k, n): square tiles at the default panel depth, a wide tile, a deep panel
    (1024, 1024, 1024),
    (2048, 1024, 2048),
    (4096, 1024, 4096),
    (2048, 2048, 4096),
]
DTYPES = ["float32", "float64", "complex64", "complex128"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer cases and repeats")
    parser.add_argument("--rows", type=int, help="kernel row block (default: the planner's)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "kernel.json")
    args = parser.parse_args(argv)
    model = tune.load_model()
    rows = args.rows or model.kernel_rows
    cases = CASES[:3] if args.quick else CASES
    repeats = 3 if args.quick else args.repeats
    results = []
    start = time.perf_counter()
    print(f"kernel rows {rows} ({tune.describe()}); 1 BLAS thread")
    with tune.blas_threads(1):
        for m, k, n in cases:
            for dtype in DTYPES:
                # Complex products cost 4 real ones: shrink k to keep each case about as long.
                depth = k // 2 if dtype.startswith("complex") else k
                case = tune.compare_kernel(m, depth, n, rows, dtype, repeats=repeats,
                                           budget=6 if args.quick else 15)
                case["label"] = f"{m}×{depth}·{depth}×{n} {dtype}"
                results.append(case)
                print(f"  {case['label']:<34} kernel {case['kernel_gflops']:6.1f}  np.matmul "
                      f"{case['matmul_gflops']:6.1f} GFLOP/s  ratio {case['ratio']:.3f}", flush=True)
    document = {
        "rows": rows,
        "model_source": tune.describe(),
        "cpu": tune._cpu_name(),
        "blas": tune._blas(),
        "env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ},
        "load_average": os.getloadavg(),
        "seconds": time.perf_counter() - start,
        "cases": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1))
    worst = min(results, key=lambda c: c["ratio"])
    print(f"worst ratio {worst['ratio']:.3f} ({worst['label']}); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
