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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import JobFailedError
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
    """Rows ``rows`` of A, every column, decoded; and the bytes read for them."""

    rows: tuple[int, int]
    values: np.ndarray
    bytes_read: int


@dataclass(frozen=True)
class BlockSketch:
    """What :func:`block_times` found of the band it wrote: its Gram matrix, column sums and bytes."""

    gram: np.ndarray
    sums: np.ndarray
    bytes_read: int
    bytes_written: int


def load_rows(source: ArrayRef, rows: tuple[int, int], dtype: str) -> KeptBlock:
    """A[rows, :] as ``dtype``, read from storage (an absent chunk is A's fill value, as zarr and
    products read it)."""
    array, store = open_counted(source)
    wanted = np.dtype(dtype)
    block = np.empty((rows[1] - rows[0], array.shape[1]), dtype=wanted)
    direct = (ChunkFiles.open(source, array, store, wanted, True)
              or EncodedChunks.open(source, array, store, wanted, True))
    selection = (slice(*rows), slice(0, array.shape[1]))
    try:
        read_into(array, selection, block, direct)
    except Exception as error:
        raise JobFailedError(f"reading {source}: {name_bad_chunk(array, selection, error)}") from error
    return KeptBlock(rows, block, store.bytes_read)


def kept_bytes_read(block: KeptBlock) -> int:
    """The bytes its load read (gathered once, when the run ends)."""
    return block.bytes_read


def block_times(block: KeptBlock, x: ArrayRef, width: int, target: ArrayRef) -> BlockSketch:
    """Y_b = A_b·X written to ``target[rows]``; Y_bᵀY_b and 1ᵀY_b returned (the orthonormalisation's first sums)."""
    n = block.values.shape[1]
    xs, read = read_block(x, (0, n), (0, width), block.values.dtype)
    y = block.values @ xs
    written = write_tile(target, block.rows, (0, width), y)
    return BlockSketch(y.T @ y, y.sum(axis=0), read, written)


def block_transposed_times(block: KeptBlock, q: ArrayRef, width: int) -> tuple[np.ndarray, int]:
    """A_bᵀ·Q[rows] (n×width), Q's band read from storage; and the bytes read."""
    band, read = read_block(q, block.rows, (0, width), block.values.dtype)
    return block.values.T @ band, read


def block_column_stats(block: KeptBlock) -> tuple[np.ndarray, float, int]:
    """A_b's column sums and sum of squares (PCA's mean and total variance); nothing read."""
    return block.values.sum(axis=0), float(np.vdot(block.values, block.values).real), 0


def add_parts(*parts: tuple) -> tuple:
    """Parts summed item by item: (array, number, …) tuples of one shape (a node of the sum's tree)."""
    return tuple(sum(items[1:], items[0]) for items in zip(*parts))


__all__ = ["BlockSketch", "KeptBlock", "add_parts", "block_column_stats", "block_times", "block_transposed_times",
           "kept_bytes_read", "load_rows"]
