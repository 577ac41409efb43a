"""The worker layout's own ceilings: what the cluster's shape allows before blockdist does anything.

    python benchmarks/ceilings.py      # prints both, per dtype and per codec

* **Layout rate**: ``processes`` processes (the benchmark cluster's workers), each with one BLAS
  thread, running ``np.matmul`` of ``edge``² operands at the same moment; the rate is their flops
  over the span from the first start to the last end, best of ``runs``. Beside ``reference.py``'s
  one process on every core it says what the layout itself costs.
* **Decode rate**: decoded bytes a CPU-second of zstd and blosc-lz4 chunks of standard-normal
  values, as the benchmark's inputs hold, read the way tasks read them: ``blockdist tune``'s own
  measurement (:func:`blockdist.storage.throughput.measure_decode`).

``run.py`` measures both at the start of a run; ``report.py`` sets every blockdist figure against
them (``% layout``) and adds the decode time of the plan's bytes to the floor of compressed rows.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np
from reference import operands  # benchmarks/reference.py

EDGE = 4096


def _one_thread_matmuls(dtype: str, edge: int, runs: int, barrier: Any, spans: Any) -> None:
    import threadpoolctl

    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        a, b = operands(dtype, edge)
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


#: The codec names of the benchmark's scenarios, and measure_decode's names for them.
DECODE_RATES = {"zstd": "zstd_read_bytes_per_second", "blosc-lz4": "blosc_read_bytes_per_second"}


def decode_rates(codecs: tuple[str, ...]) -> dict[str, Any]:
    """Decoded GB/s a CPU-second for each of ``codecs`` (none measured if none is asked for)."""
    from blockdist.storage.throughput import measure_decode

    if not codecs:
        return {}
    measured = measure_decode(size=2048)
    return {c: {"codec": c, "best_gb_per_s": measured[DECODE_RATES[c]] / 1e9} for c in codecs}


def ceilings(dtypes: tuple[str, ...], codecs: tuple[str, ...], edge: int = EDGE, runs: int = 5,
             processes: int = 2) -> dict[str, Any]:
    return {"load_average": os.getloadavg(),
            "layout": {d: layout_rate(d, edge, runs, processes) for d in dtypes},
            "decode": decode_rates(codecs)}


if __name__ == "__main__":
    from reference import DTYPES

    print(json.dumps(ceilings(DTYPES, tuple(DECODE_RATES)), indent=2))
