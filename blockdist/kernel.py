"""The in-task kernel: accumulate a panel product into a resident C tile (numpy only).

numpy has no ``C += A·B`` (BLAS's beta = 1), so the kernel computes the product of a block
of rows into a scratch buffer and adds it into C in place. The buffer is allocated once per
task; nothing the size of the tile is allocated, copied or transposed per panel::

    for each row block r of C:            scratch[:rows] = A[r, :] @ B      (BLAS, into scratch)
                                          C[r, :]       += scratch[:rows]   (in-place add)

The row block is there to bound the scratch's memory, not to fit a cache: BLAS packs all of
B for every call, so a block of ``rows`` rows keeps about ``rows / (rows + 20)`` of BLAS's
rate (measured with ``benchmarks/kernel.py``: 256 rows lose 5-10 %, a block of 2048 rows or
the whole tile stays within 2-5 % of one ``np.matmul``). The planner therefore uses tall
blocks (``MachineModel.kernel_rows``, measured by ``blockdist tune``) and shorter ones only
when memory is short. A task writes its first panel product straight into C with
``np.matmul(..., out=c)``, so the add runs from the second panel on.

Every operand is a C-contiguous row range (A's rows may be a column-slice view with a
leading stride, which BLAS takes as it is), so no hidden copies happen.
"""

from __future__ import annotations

import numpy as np


def accumulate(c: np.ndarray, a: np.ndarray, b: np.ndarray, scratch: np.ndarray) -> None:
    """Add ``a @ b`` into ``c`` in place, one row block of ``scratch``'s height at a time.

    ``c`` is ``(m, n)``, ``a`` ``(m, k)``, ``b`` ``(k, n)``; ``scratch`` is ``(rows, n)``
    with ``c``'s dtype and is overwritten.

    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.standard_normal((5, 3)), rng.standard_normal((3, 4))
    >>> c = np.ones((5, 4))
    >>> accumulate(c, a, b, np.empty((2, 4)))
    >>> bool(np.allclose(c, 1 + a @ b))
    True
    """
    rows = scratch.shape[0]
    m = c.shape[0]
    for start in range(0, m, rows):
        stop = min(start + rows, m)
        block = scratch[: stop - start]
        np.matmul(a[start:stop], b, out=block)
        np.add(c[start:stop], block, out=c[start:stop])


def scratch_for(tile_rows: int, tile_cols: int, kernel_rows: int, dtype: np.dtype) -> np.ndarray:
    """Allocate the kernel's product block once per task."""
    return np.empty((max(1, min(kernel_rows, tile_rows)), tile_cols), dtype=dtype)


def cache_sizes() -> dict[int, int]:
    """Bytes of each cache level of CPU 0, read from sysfs (empty where unavailable)."""
    import glob

    sizes: dict[int, int] = {}
    for folder in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*"):
        try:
            with open(f"{folder}/level") as f:
                level = int(f.read())
            with open(f"{folder}/type") as f:
                if f.read().strip() == "Instruction":
                    continue
            with open(f"{folder}/size") as f:
                text = f.read().strip()
        except (OSError, ValueError):
            continue
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        sizes[level] = int(text.rstrip("KMG")) * scale
    return sizes
