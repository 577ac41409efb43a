"""Tasks over row bands of a tall, thin stored matrix, and column statistics of a big one.

Randomized SVD (:mod:`blockdist.runtime.svd`) keeps its m×l sketches in storage: each band of
rows is read, multiplied by a small l×l' matrix held in the task (and shifted by a row vector:
a centred sketch is never written), written, and its Gram matrix and column sums returned — so
orthonormalising a sketch costs a read and a write of it, never A. :func:`column_stats` gives
the column sums and the sum of squares of a block of A (PCA's mean and total variance).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..planning.sparse import Runs
from ..storage import ArrayRef, open_counted, read_block, write_tile


@dataclass(frozen=True)
class BandResult:
    """What one band task found: XᵀX and 1ᵀX of the band it wrote (or read), and the bytes moved."""

    gram: np.ndarray | None
    sums: np.ndarray | None
    bytes_read: int
    bytes_written: int


def transform_band(source: ArrayRef, rows: tuple[int, int], width: int, weights: np.ndarray | None,
                   shift: np.ndarray | None, target: ArrayRef | None, gram: bool, dtype: str) -> BandResult:
    """X = Y[rows] · weights − shift (Y's band itself without weights), written to ``target``
    when given; returns XᵀX (when ``gram``) and X's column sums."""
    band, read = read_block(source, rows, (0, width), np.dtype(dtype))
    x = band if weights is None else band @ weights
    if shift is not None:
        x -= shift[None, :]
    written = write_tile(target, rows, (0, x.shape[1]), np.ascontiguousarray(x)) if target is not None else 0
    return BandResult(x.T @ x if gram else None, x.sum(axis=0), read, written)


class ColumnStats(NamedTuple):
    """What :func:`column_stats` found of one block of A."""

    cols: tuple[int, int]
    sums: np.ndarray  #: of each column of the block
    squares: float  #: the block's sum of squares
    bytes_read: int
    absent_asked: int  #: chunk keys asked of storage that are not stored


def column_stats(source: ArrayRef, rows: tuple[int, int], cols: tuple[int, int], dtype: str,
                 runs: Runs | None = None) -> ColumnStats:
    """Column sums of ``source[rows, cols]`` and its sum of squares, reading only the stretches
    ``runs`` of the columns (offsets from ``cols[0]``; ``None``: all of them) — where the rest
    lie in absent chunks of zeros, which add nothing."""
    array, store = open_counted(source)
    sums, squares = np.zeros(cols[1] - cols[0], dtype=np.dtype(dtype)), 0.0
    for lo, hi in runs if runs is not None else ((0, cols[1] - cols[0]),):
        block = np.asarray(array[rows[0] : rows[1], cols[0] + lo : cols[0] + hi], dtype=np.dtype(dtype))
        sums[lo:hi] = block.sum(axis=0)
        squares += float(np.vdot(block, block).real)
    return ColumnStats(cols, sums, squares, store.bytes_read, len(store.missing))


__all__ = ["BandResult", "ColumnStats", "column_stats", "transform_band"]
