"""The in-task kernel: add a panel product into a resident C tile, ``C += op(A)·op(B)``.

BLAS's gemm does this in place (``beta = 1``) on strided views; :mod:`blockdist.worker.blas`
reaches scipy's, and every call here goes there first. Without it (no scipy, or a dtype
BLAS lacks) the kernel falls back to numpy, which has no ``beta``: it computes the product
of a block of rows into a scratch buffer and adds it into C in place. The buffer is
allocated once per task; nothing the size of the tile is allocated, copied or transposed
per panel::

    for each row block r of C:            scratch[:rows] = A[r, :] @ B      (BLAS, into scratch)
                                          C[r, :]       += scratch[:rows]   (in-place add)

The row block is there to bound the scratch's memory, not to fit a cache: BLAS packs all of
B for every call, so a block of ``rows`` rows keeps about ``rows / (rows + 20)`` of BLAS's
rate (measured with ``benchmarks/kernel.py``: 256 rows lose 5-10 %, a block of 2048 rows or
the whole tile stays within 2-5 % of one ``np.matmul``). The planner therefore uses tall
blocks (``MachineModel.kernel_rows``, measured by ``blockdist tune``) and shorter ones only
when memory is short.
"""

from __future__ import annotations

import numpy as np

from . import blas

#: Rows of the fallback's scratch block when the caller has none to lend.
FALLBACK_ROWS = 2048


def multiply(c: np.ndarray, a: np.ndarray, b: np.ndarray, *, conjugate_a: bool = False,
             conjugate_b: bool = False, use_blas: bool = True) -> None:
    """``c = op(a) @ op(b)``, op conjugating where asked.

    >>> c = np.empty((2, 2))
    >>> multiply(c, np.eye(2), np.full((2, 2), 3.0))
    >>> c.tolist()
    [[3.0, 3.0], [3.0, 3.0]]
    """
    if not (use_blas and blas.gemm(c, a, b, beta=0.0, conjugate_a=conjugate_a, conjugate_b=conjugate_b)):
        np.matmul(np.conjugate(a) if conjugate_a else a, np.conjugate(b) if conjugate_b else b, out=c)


def accumulate(c: np.ndarray, a: np.ndarray, b: np.ndarray, scratch: np.ndarray | None = None, *,
               conjugate_a: bool = False, conjugate_b: bool = False, use_blas: bool = True) -> None:
    """Add ``op(a) @ op(b)`` into ``c`` in place.

    ``c`` is ``(m, n)``, ``a`` ``(m, k)``, ``b`` ``(k, n)``. Through BLAS where it can; else
    one row block of ``scratch``'s height at a time (``scratch`` is ``(rows, n)`` with
    ``c``'s dtype and is overwritten; one is allocated if none is given).

    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.standard_normal((5, 3)), rng.standard_normal((3, 4))
    >>> c = np.ones((5, 4))
    >>> accumulate(c, a, b, np.empty((2, 4)))
    >>> bool(np.allclose(c, 1 + a @ b))
    True
    """
    if use_blas and blas.gemm(c, a, b, beta=1.0, conjugate_a=conjugate_a, conjugate_b=conjugate_b):
        return
    a = np.conjugate(a) if conjugate_a else a
    b = np.conjugate(b) if conjugate_b else b
    m = c.shape[0]
    if scratch is None or scratch.shape[1] != c.shape[1]:
        scratch = np.empty((max(1, min(FALLBACK_ROWS, m)), c.shape[1]), dtype=c.dtype)
    rows = scratch.shape[0]
    for start in range(0, m, rows):
        stop = min(start + rows, m)
        block = scratch[: stop - start]
        np.matmul(a[start:stop], b, out=block)
        np.add(c[start:stop], block, out=c[start:stop])


def scratch_for(tile_rows: int, tile_cols: int, kernel_rows: int, dtype: np.dtype) -> np.ndarray:
    """Allocate the kernel's product block once per task."""
    return np.empty((max(1, min(kernel_rows, tile_rows)), tile_cols), dtype=dtype)


def symmetrize(tile: np.ndarray, conjugate: bool, block: int = 512) -> None:
    """Copy a square tile's upper triangle onto its lower one (conjugated for a Hermitian tile).

    Block by block, so it needs no index arrays the size of the tile.

    >>> t = np.array([[1.0, 2.0], [9.0, 3.0]])
    >>> symmetrize(t, False)
    >>> t.tolist()
    [[1.0, 2.0], [2.0, 3.0]]
    """
    n = tile.shape[0]
    for r in range(0, n, block):
        rows = slice(r, min(r + block, n))
        for c in range(0, r, block):  # whole blocks below the diagonal
            cols = slice(c, min(c + block, n))
            tile[rows, cols] = np.conjugate(tile[cols, rows].T) if conjugate else tile[cols, rows].T
        square = tile[rows, rows]
        lower = np.tril_indices(square.shape[0], -1)
        square[lower] = (np.conjugate(square.T) if conjugate else square.T)[lower]
        if conjugate:
            square.imag[np.diag_indices(square.shape[0])] = 0
