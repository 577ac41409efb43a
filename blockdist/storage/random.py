"""Write random matrices to Zarr chunk by chunk, in parallel, never whole in memory.

Each chunk draws from its own generator seeded by ``(seed, row, column)`` of the chunk, so
the matrix depends only on the seed, not on the order or number of threads.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import zarr

from ..errors import InputError
from ..planning import format_size
from ..planning.layout import numeric_dtype
from .arrays import check_output_location
from .refs import ArrayRef, locate


def _block(rng: np.random.Generator, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    if dtype.kind == "c":
        real = np.float32 if dtype.itemsize == 8 else np.float64
        block = np.empty(shape, dtype=dtype)
        block.real = rng.standard_normal(shape, dtype=real)
        block.imag = rng.standard_normal(shape, dtype=real)
        return block
    if dtype.kind == "f":
        native = np.float32 if dtype.itemsize <= 4 else np.float64
        return rng.standard_normal(shape, dtype=native).astype(dtype, copy=False)
    return rng.integers(-8, 9, size=shape, dtype=dtype)


def random_matrix(
    out: str | os.PathLike[str],
    shape: tuple[int, int],
    chunks: tuple[int, int],
    *,
    dtype: str | np.dtype = "float64",
    seed: int | None = None,
    overwrite: bool = False,
    storage_options: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    compressors: Any = None,
    shards: tuple[int, int] | None = None,
) -> zarr.Array:
    """Create ``out`` as a ``shape`` matrix of standard-normal values (small integers for int dtypes).

    ``compressors`` and ``shards`` are zarr's (uncompressed, unsharded by default).
    ``progress(done, total)`` is called as chunks (shards) are written. A local output whose
    disk cannot hold the matrix is refused before anything is written."""
    if len(shape) != 2 or min(shape) < 1:
        raise InputError(f"shape must be two positive sizes M,N; got {shape}")
    if len(chunks) != 2 or min(chunks) < 1:
        raise InputError(f"chunks must be two positive sizes CM,CN; got {chunks}")
    parsed = numeric_dtype(dtype)
    ref = locate(out, storage_options=storage_options, role="out")
    check_output_location(ref, [], overwrite=overwrite)
    _check_free_space(ref, math.prod(shape) * parsed.itemsize)
    array = zarr.create_array(store=ref.store, shape=shape, chunks=chunks, shards=shards, dtype=parsed,
                              compressors=compressors, fill_value=0, overwrite=overwrite,
                              config={"write_empty_chunks": True})
    chunks = shards or chunks  # whole shards are written at once
    entropy = np.random.SeedSequence(seed).entropy
    grid = [(i, j) for i in range(-(-shape[0] // chunks[0])) for j in range(-(-shape[1] // chunks[1]))]

    def write(index: tuple[int, int]) -> None:
        i, j = index
        rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=index))
        rows = slice(i * chunks[0], min(shape[0], (i + 1) * chunks[0]))
        cols = slice(j * chunks[1], min(shape[1], (j + 1) * chunks[1]))
        array[rows, cols] = _block(rng, (rows.stop - rows.start, cols.stop - cols.start), parsed)

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for done, _ in enumerate(pool.map(write, grid), start=1):
            if progress is not None:
                progress(done, len(grid))
    return array


def _check_free_space(ref: ArrayRef, needed: int) -> None:
    """Refuse a local matrix the disk cannot hold (an existing one it replaces counts as free)."""
    if ref.local_path is None:
        return
    place = ref.local_path
    while not place.exists():
        place = place.parent
    free = shutil.disk_usage(place).free
    if ref.local_path.exists():
        free += sum(f.stat().st_size for f in ref.local_path.rglob("*") if f.is_file())
    if needed > free:
        raise InputError(f"{ref} needs {format_size(needed)} and the disk it is on has {format_size(free)} free; "
                         "write it elsewhere, or make it smaller")
