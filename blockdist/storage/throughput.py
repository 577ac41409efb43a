"""How fast one thread reads and writes an uncompressed local Zarr array (for ``blockdist tune``)."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable

import numpy as np
import zarr


def _best_seconds(run: Callable[[], object], repeats: int, budget: float) -> float:
    """The fastest wall time of ``repeats`` calls (fewer if ``budget`` seconds run out)."""
    best, spent = float("inf"), 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        took = time.perf_counter() - start
        best, spent = min(best, took), spent + took
        if spent > budget:
            break
    return best


def measure_io(size: int = 4096, chunk: int = 1024, *, folder: str | None = None) -> dict[str, float]:
    """Read and write rates of one thread on an uncompressed local Zarr array (bytes/s)."""
    tmp = tempfile.mkdtemp(prefix="blockdist-tune-", dir=folder)
    try:
        data = np.random.default_rng(0).standard_normal((size, chunk * 2))
        array = zarr.create_array(f"{tmp}/x.zarr", shape=data.shape, chunks=(chunk, chunk), dtype="float64",
                                  compressors=None, fill_value=0)
        write = _best_seconds(lambda: array.__setitem__((slice(None), slice(None)), data), 3, 10)
        read = _best_seconds(lambda: array[:, :], 3, 10)
        return {"read_bytes_per_second": data.nbytes / read, "write_bytes_per_second": data.nbytes / write}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
