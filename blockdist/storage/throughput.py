"""How fast one thread reads and writes local Zarr arrays, and decodes compressed ones (for ``blockdist tune``)."""

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


def measure_decode(size: int = 4096, chunk: int = 1024, *, folder: str | None = None) -> dict[str, float]:
    """Decoded bytes a CPU-second of zstd and blosc-lz4 chunks read as tasks read them (bytes/s)."""
    from zarr.codecs import BloscCodec, ZstdCodec

    from .counting import open_counted
    from .encoded import EncodedChunks
    from .refs import locate

    tmp = tempfile.mkdtemp(prefix="blockdist-tune-", dir=folder)
    rates = {}
    try:
        data = np.random.default_rng(0).standard_normal((size, chunk * 2))
        out = np.empty_like(data)
        for name, codec in (("zstd", ZstdCodec()), ("blosc", BloscCodec(cname="lz4", shuffle="shuffle"))):
            path = f"{tmp}/{name}.zarr"
            zarr.create_array(path, shape=data.shape, chunks=(chunk, chunk), dtype="float64", compressors=codec,
                              fill_value=0)[:] = data
            ref = locate(path)
            array, store = open_counted(ref)
            direct = EncodedChunks.open(ref, array, store, data.dtype, False)
            assert direct is not None
            selection = (slice(0, size), slice(0, chunk * 2))

            def read() -> None:
                start = time.process_time()
                direct.read(selection, out)
                spent.append(time.process_time() - start)

            spent: list[float] = []
            _best_seconds(read, 3, 10)
            rates[f"{name}_read_bytes_per_second"] = data.nbytes / min(spent)
        return rates
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
