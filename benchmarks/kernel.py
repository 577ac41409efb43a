"""blockdist's kernel as its tasks run it, against one ``np.matmul`` of the same product.

    python benchmarks/kernel.py [--quick] [--rows R]

Two kinds of cases, one BLAS thread each (as in a Dask worker thread), timed alternately with
``np.matmul(A, B, out=…)`` on the same operands, the fastest of each kept:

* **panels**: C (m×n) += A (m×k) · B (k×n) from one copied panel of each, through
  ``blockdist.worker.kernel.accumulate`` with the planner's row block (the tune file's
  ``kernel_rows`` or ``--rows``): what a task does with compressed or small chunks;
* **mapped chunks**: a 4096² C tile accumulated from chunk blocks of edge 512, 1024 or 2048
  (each its own array, as each mapped chunk file is), block by block over two chunks of k:
  what a task does with raw chunk files, and where small chunks cost BLAS time.

Writes ``benchmarks/results/kernel.json`` (read by ``report.py`` into ``summary.md``).
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

import numpy as np  # noqa: E402

from blockdist.runtime import tune, tunefile  # noqa: E402
from blockdist.worker.kernel import accumulate  # noqa: E402

CASES = [  # (m, k, n): square tiles at the default panel depth, a wide tile, a deep panel
    (1024, 1024, 1024),
    (2048, 1024, 2048),
    (4096, 1024, 4096),
    (2048, 2048, 4096),
]
DTYPES = ["float32", "float64", "complex64", "complex128"]
#: Mapped-chunk cases: the C tile's edge, and the chunk edges of A and B.
TILE, EDGES = 4096, (512, 1024, 2048)


def compare_blocks(tile: int, edge: int, dtype: str, *, repeats: int, budget: float) -> dict:
    """A ``tile``² C tile += A·B from ``edge``² chunk blocks over two chunks of k, against one
    ``np.matmul`` of the whole product: GFLOP per CPU-second of each and their ratio."""
    kind = np.dtype(dtype)
    rng = np.random.default_rng(0)
    blocks, depth = tile // edge, 2 * edge
    a = [[rng.standard_normal((edge, edge)).astype(kind) for _ in range(2)] for _ in range(blocks)]
    b = [[rng.standard_normal((edge, edge)).astype(kind) for _ in range(blocks)] for _ in range(2)]
    whole_a, whole_b = np.block(a), np.block(b)
    c, out = np.zeros((tile, tile), dtype=kind), np.empty((tile, tile), dtype=kind)

    def blockwise() -> None:
        for p in range(2):
            for i in range(blocks):
                for j in range(blocks):
                    accumulate(c[i * edge : (i + 1) * edge, j * edge : (j + 1) * edge], a[i][p], b[p][j])

    calls = {"kernel": blockwise, "matmul": lambda: np.matmul(whole_a, whole_b, out=out)}
    best = {name: float("inf") for name in calls}
    spent = 0.0
    for _ in range(repeats):
        for name, call in calls.items():
            wall, cpu = tune.timed(call)
            best[name], spent = min(best[name], cpu), spent + wall
        if spent > budget:
            break
    flops = 2 * tile * tile * depth * (4 if kind.kind == "c" else 1)
    return {"m": tile, "k": depth, "n": tile, "rows": edge, "dtype": kind.name, "kind": "mapped chunks",
            "kernel_gflops": flops / best["kernel"] / 1e9, "matmul_gflops": flops / best["matmul"] / 1e9,
            "ratio": best["matmul"] / best["kernel"],
            "label": f"{tile}² tile from {edge}² chunks, k {depth} {kind.name}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer cases and repeats")
    parser.add_argument("--rows", type=int, help="kernel row block (default: the planner's)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "kernel.json")
    args = parser.parse_args(argv)
    model = tunefile.load_model()
    rows = args.rows or model.kernel_rows
    cases = CASES[:3] if args.quick else CASES
    repeats = 3 if args.quick else args.repeats
    results = []
    start = time.perf_counter()
    print(f"kernel rows {rows} ({tunefile.describe()}); 1 BLAS thread")
    with tune.blas_threads(1):
        for m, k, n in cases:
            for dtype in DTYPES:
                # Complex products cost 4 real ones: shrink k to keep each case about as long.
                depth = k // 2 if dtype.startswith("complex") else k
                case = tune.compare_kernel(m, depth, n, rows, dtype, repeats=repeats,
                                           budget=6 if args.quick else 15)
                case["label"] = f"{m}×{depth}·{depth}×{n} {dtype}"
                case["kind"] = "panels"
                results.append(case)
                _print(case)
        for edge in EDGES:
            for dtype in ("float64", "float32"):
                case = compare_blocks(TILE, edge, dtype, repeats=repeats, budget=6 if args.quick else 15)
                results.append(case)
                _print(case)
    document = {
        "rows": rows,
        "model_source": tunefile.describe(),
        "cpu": tunefile.cpu_name(),
        "blas": tune.blas_name(),
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


def _print(case: dict) -> None:
    print(f"  {case['label']:<44} kernel {case['kernel_gflops']:6.1f}  np.matmul "
          f"{case['matmul_gflops']:6.1f} GFLOP/s  ratio {case['ratio']:.3f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
