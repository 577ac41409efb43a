"""The worker layout's own ceilings: what the cluster's shape allows before blockdist does anything.

    python benchmarks/ceilings.py      # prints both, per dtype and per codec

* **Layout rate**: ``processes`` processes (the benchmark cluster's workers), each with one BLAS
  thread, running ``np.matmul`` of ``edge``² operands at the same moment; the rate is their flops
  over the span from the first start to the last end, best of ``runs``. Beside ``reference.py``'s
  one process on every core it says what the layout itself costs.
* **Decode rate**: decoded bytes a second on one core for each codec, decoding a 1024² chunk of
  the same standard-normal values the benchmark's inputs hold, into a reused buffer, as the
  panel reader does (numcodecs ``decode(…, out=…)``).

``run.py`` measures both at the start of a run; ``report.py`` sets every blockdist figure against
them (``% layout``) and adds the decode time of the plan's bytes to the floor of compressed rows.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np

EDGE = 4096
CODECS = ("zstd", "blosc-lz4")


def _operands(dtype: str, edge: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((edge, edge)).astype(dtype)
    b = rng.standard_normal((edge, edge)).astype(dtype)
    if np.dtype(dtype).kind == "c":
        a, b = a + 1j * a[::-1], b + 1j * b[::-1]
    return a, b


def _one_thread_matmuls(dtype: str, edge: int, runs: int, barrier: Any, spans: Any) -> None:
    import threadpoolctl

    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        a, b = _operands(dtype, edge)
        out = np.empty((edge, edge), dtype=a.dtype)
        np.matmul(a[:512, :512], b[:512, :512])
        for _ in range(runs):
            barrier.wait()
            start = time.perf_counter()  # CLOCK_MONOTONIC: one clock for every process on Linux
            np.matmul(a, b, out=out)
            spans.put((start, time.perf_counter()))


def layout_rate(dtype: str, edge: int = EDGE, runs: int = 5, processes: int = 2) -> dict[str, Any]:
    """Best GFLOP/s (nominal 2·n³ each) of ``processes`` single-thread ``np.matmul`` runs at once."""
    from blockdist.runtime.tune import run_together

    got = run_together(_one_thread_matmuls, (dtype, edge, runs), processes, answers_each=runs)
    got.sort()
    rates = []
    for i in range(runs):  # the barrier releases run i of every process together
        group = got[i * processes:(i + 1) * processes]
        span = max(end for _, end in group) - min(start for start, _ in group)
        rates.append(processes * 2 * edge**3 / span / 1e9)
    return {"dtype": dtype, "edge": edge, "processes": processes, "best_gflops": max(rates), "gflops": rates}


def _codec(name: str) -> Any:
    from numcodecs import Zstd
    from numcodecs.blosc import SHUFFLE, Blosc

    # zarr 3's defaults for ZstdCodec() and BloscCodec(cname="lz4", shuffle="shuffle")
    return {"zstd": lambda: Zstd(level=0), "blosc-lz4": lambda: Blosc(cname="lz4", clevel=5, shuffle=SHUFFLE)}[name]()


def decode_rate(codec: str, dtype: str = "float64", chunk: int = 1024, runs: int = 20) -> dict[str, Any]:
    """Decoded GB/s on one core (best of ``runs``) and the compression ratio of one ``chunk``² chunk."""
    import threadpoolctl

    values = np.random.default_rng(1).standard_normal((chunk, chunk)).astype(dtype)
    compressor = _codec(codec)
    encoded = compressor.encode(values)
    out = np.empty_like(values)
    compressor.decode(encoded, out=out)
    assert np.array_equal(out, values)
    rates = []
    with threadpoolctl.threadpool_limits(1):
        for _ in range(runs):
            start = time.perf_counter()
            compressor.decode(encoded, out=out)
            rates.append(values.nbytes / (time.perf_counter() - start) / 1e9)
    return {"codec": codec, "dtype": dtype, "chunk": chunk, "best_gb_per_s": max(rates),
            "ratio": values.nbytes / len(encoded)}


def ceilings(dtypes: tuple[str, ...], codecs: tuple[str, ...], edge: int = EDGE, runs: int = 5,
             processes: int = 2) -> dict[str, Any]:
    return {"load_average": os.getloadavg(),
            "layout": {d: layout_rate(d, edge, runs, processes) for d in dtypes},
            "decode": {c: decode_rate(c) for c in codecs}}


if __name__ == "__main__":
    from reference import DTYPES

    print(json.dumps(ceilings(DTYPES, CODECS), indent=2))
