"""A's row blocks kept in a worker's memory across a randomized SVD's passes, and the tasks
over them (:mod:`blockdist.runtime.svd_kept` submits them).

:func:`load_rows` reads a block of A (whole chunk rows, every column) from storage once, the
way a product's panels are read (chunk files copied, or decoded straight into the block); the
task carries A's reference and the rows, never data. The block stays on its worker while the
client holds the future, and each pass's tasks run where it is::

    A·X     block_times(block, X) ──► Y[rows] written; returns Y_bᵀY_b, 1ᵀY_b    (X read here)
    Aᵀ·Q    block_transposed_times(block, Q₁) ──► A_bᵀ·Q₁[rows]   ─┐ add_parts, a tree
    means   block_column_stats(block) ──► (1ᵀA_b, ‖A_b‖²)         ─┘ on the workers

X and Q₁ are small (n×l, m×l) and stored beside the output, so a task reads what it needs of
them from storage too.

Where A's fill value is 0 and some of its read units (chunks, or shards) are not stored, a
block keeps only the columns of its rows' stored units (:attr:`KeptBlock.columns`), read
unit row by unit row from the stored units alone; the other columns are zeros, so the
products skip them: a block-diagonal A of b blocks a side is read, kept and multiplied at
1/b of the dense cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import JobFailedError
from ..planning.sparse import Runs, stored_runs
from ..storage import (
    ArrayRef,
    ChunkFiles,
    EncodedChunks,
    name_bad_chunk,
    open_counted,
    read_block,
    read_into,
    write_tile,
)


@dataclass(frozen=True)
class KeptBlock:
    """Rows ``rows`` of A, decoded: every column, or where A's absent chunks are zeros, the
    stretches ``columns`` side by side (the rest are zeros); and what was read for them."""

    rows: tuple[int, int]
    values: np.ndarray
    bytes_read: int
    columns: Runs | None = None  #: A's columns ``values`` holds, in order (``None``: all of them)
    width: int = 0  #: A's columns
    absent_asked: int = 0  #: chunk keys asked of storage that are not stored

    def rows_of(self, x: np.ndarray) -> np.ndarray:
        """The rows of an n×l ``x`` that meet the kept columns (``x`` itself where all are kept)."""
        if self.columns is None:
            return x
        return np.concatenate([x[lo:hi] for lo, hi in self.columns]) if self.columns else x[:0]

    def spread(self, part: np.ndarray) -> np.ndarray:
        """A part over the kept columns (their rows, or their items) set into A's columns, zeros elsewhere."""
        if self.columns is None:
            return part
        whole = np.zeros((self.width, *part.shape[1:]), dtype=part.dtype)
        offset = 0
        for lo, hi in self.columns:
            whole[lo:hi] = part[offset : offset + hi - lo]
            offset += hi - lo
        return whole


@dataclass(frozen=True)
class BlockSketch:
    """What :func:`block_times` found of the band it wrote: its Gram matrix, column sums and bytes."""

    gram: np.ndarray
    sums: np.ndarray
    bytes_read: int
    bytes_written: int


def _read_part(array: Any, selection: tuple[slice, slice], out: np.ndarray, direct: Any, source: ArrayRef) -> None:
    """``array[selection]`` into ``out`` (through a buffer of its own where ``out`` is a strided view)."""
    target = out if out.flags.c_contiguous else np.empty(out.shape, dtype=out.dtype)
    try:
        read_into(array, selection, target, direct)
    except Exception as error:
        raise JobFailedError(f"reading {source}: {name_bad_chunk(array, selection, error)}") from error
    if target is not out:
        out[...] = target


def load_rows(source: ArrayRef, rows: tuple[int, int], dtype: str, present: np.ndarray | None = None) -> KeptBlock:
    """A[rows, :] as ``dtype``, read from storage (an absent chunk is A's fill value, as zarr and
    products read it); ``present``: a bool per read unit of these rows' units (rows) and A's
    columns' units, where the absent ones are zeros — only the stored units are read, and only
    the columns of some stored unit kept."""
    array, store = open_counted(source)
    wanted, n = np.dtype(dtype), array.shape[1]
    direct = (ChunkFiles.open(source, array, store, wanted, True)
              or EncodedChunks.open(source, array, store, wanted, True))
    if present is None:
        block = np.empty((rows[1] - rows[0], n), dtype=wanted)
        _read_part(array, (slice(*rows), slice(0, n)), block, direct, source)
        return KeptBlock(rows, block, store.bytes_read, width=n, absent_asked=len(store.missing))
    unit_rows, unit_cols = array.shards or array.chunks
    columns = stored_runs(present.any(axis=0), 0, n, unit_cols)
    starts = np.cumsum([0, *(hi - lo for lo, hi in columns)])  # each stretch's place in the block
    block = np.zeros((rows[1] - rows[0], int(starts[-1])), dtype=wanted)
    for line, r0 in zip(present, range(rows[0], rows[1], unit_rows), strict=False):
        r1 = min(r0 + unit_rows, rows[1])
        for lo, hi in stored_runs(line, 0, n, unit_cols):
            place = next(i for i, (c0, c1) in enumerate(columns) if c0 <= lo and hi <= c1)
            at = int(starts[place]) + lo - columns[place][0]
            _read_part(array, (slice(r0, r1), slice(lo, hi)), block[r0 - rows[0] : r1 - rows[0], at : at + hi - lo],
                       direct, source)
    return KeptBlock(rows, block, store.bytes_read, columns, n, len(store.missing))


def kept_reads(block: KeptBlock) -> tuple[int, int]:
    """The bytes its load read and the absent chunk keys it asked (gathered once, when the run ends)."""
    return block.bytes_read, block.absent_asked


def block_times(block: KeptBlock, x: ArrayRef, width: int, target: ArrayRef) -> BlockSketch:
    """Y_b = A_b·X written to ``target[rows]``; Y_bᵀY_b and 1ᵀY_b returned (the orthonormalisation's first sums)."""
    xs, read = read_block(x, (0, block.width), (0, width), block.values.dtype)
    y = block.values @ block.rows_of(xs)
    written = write_tile(target, block.rows, (0, width), y)
    return BlockSketch(y.T @ y, y.sum(axis=0), read, written)


def block_transposed_times(block: KeptBlock, q: ArrayRef, width: int) -> tuple[np.ndarray, int]:
    """A_bᵀ·Q[rows] (n×width), Q's band read from storage; and the bytes read."""
    band, read = read_block(q, block.rows, (0, width), block.values.dtype)
    return block.spread(block.values.T @ band), read


def block_column_stats(block: KeptBlock) -> tuple[np.ndarray, float, int]:
    """A_b's column sums and sum of squares (PCA's mean and total variance); nothing read."""
    return block.spread(block.values.sum(axis=0)), float(np.vdot(block.values, block.values).real), 0


def add_parts(*parts: tuple) -> tuple:
    """Parts summed item by item: (array, number, …) tuples of one shape (a node of the sum's tree)."""
    return tuple(sum(items[1:], items[0]) for items in zip(*parts))


__all__ = ["BlockSketch", "KeptBlock", "add_parts", "block_column_stats", "block_times", "block_transposed_times",
           "kept_reads", "load_rows"]
