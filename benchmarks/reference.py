"""The machine's ceiling: the best of several ``np.matmul`` runs of 4096² operands on every core,
and the cores' theoretical peak read from the CPU.

    python benchmarks/reference.py      # prints both, per dtype

``run.py`` measures the reference at the start and at the end of a run and compares every
GFLOP/s figure with the best of the two (a loaded machine shows as a low reference, and as a
gap between the two).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

EDGE = 4096
DTYPES = ("float64", "float32", "complex64")


def operands(dtype: str, edge: int) -> tuple[np.ndarray, np.ndarray]:
    """Two seeded standard-normal ``edge``² operands of ``dtype`` (complex: both parts non-zero)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((edge, edge)).astype(dtype)
    b = rng.standard_normal((edge, edge)).astype(dtype)
    if np.dtype(dtype).kind == "c":
        a, b = a + 1j * a[::-1], b + 1j * b[::-1]
    return a, b


def blas_rate(dtype: str, edge: int = EDGE, runs: int = 5) -> dict[str, Any]:
    """Best and all GFLOP/s (nominal 2·n³, complex too) of ``np.matmul`` of two ``edge``² arrays."""
    import threadpoolctl

    a, b = operands(dtype, edge)
    out = np.empty((edge, edge), dtype=dtype)
    rates = []
    with threadpoolctl.threadpool_limits(os.cpu_count() or 1, user_api="blas"):
        np.matmul(a[:512, :512], b[:512, :512])  # BLAS's threads started
        for _ in range(runs):
            start = time.perf_counter()
            np.matmul(a, b, out=out)
            rates.append(2 * edge**3 / (time.perf_counter() - start) / 1e9)
    return {"dtype": dtype, "edge": edge, "best_gflops": max(rates), "gflops": rates}


def references(dtypes: tuple[str, ...] = DTYPES, edge: int = EDGE, runs: int = 5) -> dict[str, Any]:
    return {"load_average": os.getloadavg(), "rates": {d: blas_rate(d, edge, runs) for d in dtypes}}


def theoretical_peak() -> dict[str, Any]:
    """Cores × double-precision flops a cycle × the highest clock the CPU reports.

    Flops a cycle from the vector flags, taking two FMA units per core (Zen, Skylake and later):
    AVX-512 32, AVX2 with FMA 16, else 8 (SSE2). Single precision is twice that."""
    flags: set[str] = set()
    mhz: list[float] = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            elif line.startswith("cpu MHz"):
                mhz.append(float(line.split(":", 1)[1]))
    highest = None
    with contextlib.suppress(OSError, ValueError):
        highest = int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()) / 1e6
    clock = highest or (max(mhz) / 1e3 if mhz else None)
    per_cycle = 32 if "avx512f" in flags else 16 if {"avx2", "fma"} <= flags else 8
    cores = os.cpu_count() or 1
    float64 = cores * per_cycle * clock if clock else None
    return {"cores": cores, "dp_flops_per_cycle": per_cycle, "clock_ghz": clock,
            "clock_source": "cpuinfo_max_freq" if highest else "cpu MHz (now)",
            "float64_gflops": float64, "float32_gflops": 2 * float64 if float64 else None}


def best(reference_runs: list[dict[str, Any]], dtype: str) -> float | None:
    """The best rate for ``dtype`` over runs of :func:`references` (start and end of a run)."""
    rates = [r["rates"][dtype]["best_gflops"] for r in reference_runs if dtype in r.get("rates", {})]
    return max(rates) if rates else None


if __name__ == "__main__":
    print(json.dumps({"reference": references(), "peak": theoretical_peak()}, indent=2))
