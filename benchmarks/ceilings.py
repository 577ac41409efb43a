"""The worker layout's own ceilings: what the cluster's shape allows before blockdist does anything.

    python benchmarks/ceilings.py      # prints both, per dtype and per codec

* **Layout rate**: ``processes`` processes (the benchmark cluster's workers), each with one BLAS
  thread, running ``np.matmul`` of ``edge``² operands at the same moment; the rate is their flops
  over the span from the first start to the last end, best of ``runs``. Beside ``reference.py``'s
  one process on every core it says what the layout itself costs.
* **Decode rate**: decoded bytes a CPU-second of zstd and blosc-lz4 chunks of standard-normal
  values, as the benchmark's inputs hold, read the way tasks read them: ``blockdist tune``'s own
  measurement (:func:`blockdist.storage.throughput.measure_decode`).

* **First-touch rate**: bytes a CPU-second that a process's first write to fresh memory costs
  beyond writing memory it already holds (``np.empty`` of 512 MiB, filled twice; numpy asks
  for huge pages). On a bare machine that is the kernel zeroing pages, several GB/s; in a VM
  that hands freed memory back to its host (free page reporting, as here) each fresh page is
  the host's fault too. Every tool pays it for the memory its workers take and for C's pages
  in the page cache; ``sleep`` seconds between runs let the kernel report what the last freed.

``run.py`` measures all three at the start of a run; ``report.py`` sets every blockdist figure
against them (``% layout``) and adds to the floor of each row the decode time of the plan's bytes
and the first touch of the memory the workers took and of C's bytes.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np
from reference import operands  # benchmarks/reference.py

EDGE = 4096
TOUCH_SIZE = 512 * 2**20  #: bytes of fresh memory first_touch_rate writes


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


def first_touch_rate(size: int = TOUCH_SIZE, runs: int = 3, sleep: float = 3.0) -> dict[str, Any]:
    """Fresh memory's first write against a second write of the same memory, in CPU-seconds:
    the median of ``runs`` of the bytes a CPU-second the difference costs (the median, not the
    best: a run whose memory the kernel had not yet handed back would flatter it)."""
    extra, first, again = [], [], []
    for _ in range(runs):
        time.sleep(sleep)
        t0 = time.process_time()
        memory = np.empty(size // 8)
        memory.fill(1.0)
        t1 = time.process_time()
        memory.fill(2.0)
        t2 = time.process_time()
        del memory
        first.append(t1 - t0)
        again.append(t2 - t1)
        extra.append(max((t1 - t0) - (t2 - t1), 1e-9))
    median = sorted(extra)[len(extra) // 2]
    return {"size": size, "gb_per_s": size / median / 1e9, "first_write_seconds": first,
            "resident_write_seconds": again}


def ceilings(dtypes: tuple[str, ...], codecs: tuple[str, ...], edge: int = EDGE, runs: int = 5,
             processes: int = 2, touch_size: int = TOUCH_SIZE, touch_sleep: float = 3.0) -> dict[str, Any]:
    return {"load_average": os.getloadavg(),
            "layout": {d: layout_rate(d, edge, runs, processes) for d in dtypes},
            "decode": decode_rates(codecs),
            "first_touch": first_touch_rate(touch_size, sleep=touch_sleep)}


if __name__ == "__main__":
    from reference import DTYPES

    print(json.dumps(ceilings(DTYPES, tuple(DECODE_RATES)), indent=2))
