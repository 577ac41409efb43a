"""Top-k similarity on the workers: rank each tile of S = Q·Cᵀ, merge, write the best k.

A tile task computes its tile of S exactly as a product's task does (:func:`.tasks.accumulate_tile`),
then keeps, for each row, the ``k`` columns with the largest scores as global corpus rows
(:class:`Candidates`, tm × min(k, tn)); the tile itself is dropped. A split-k tile sums its
partials first (:func:`select_sum`, the root of the product's reduction tree). Merges combine
the candidates of a row block from every column tile, a few at a time; the root writes the
block's rows of ``indices`` and ``scores`` (:func:`write_best`)::

    topk_tile (i, 0)   topk_tile (i, 1)   …   topk_tile (i, J)      S tiles, ranked, not stored
         └───── merge ──────┘                   │                   fan_in at a time
                    └──────── write_best ───────┘                   rows of indices, scores

Order: scores descending; equal scores by the lower corpus row (numpy's stable argsort of
−S). NaN scores rank below every number. Results are new arrays: Dask may hand a task's
result to a retried task, so nothing is changed in place.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..planning.topk import select_rows
from ..storage import ArrayRef, write_tile
from .progress import digest
from .spec import Range, TileTask
from .stats import TaskStats
from .tasks import accumulate_tile, sum_partials


class Candidates(NamedTuple):
    """The best columns of some rows of S, best first."""

    indices: np.ndarray  #: rows × c, int64 corpus rows
    scores: np.ndarray  #: rows × c, the result dtype
    stats: TaskStats  #: of the tasks that computed them


@dataclass(frozen=True, slots=True)
class TopkOutput:
    """Where a merged block of rows goes."""

    indices: ArrayRef
    scores: ArrayRef
    rows: Range


def _descending(scores: np.ndarray) -> np.ndarray:
    """A key that sorts ascending as ``scores`` descend (``~x`` for integers: no overflow)."""
    return ~scores if scores.dtype.kind in "iu" else -scores


def best(indices: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` of each row by score descending, then index ascending.

    >>> best(np.array([[5, 2, 9, 1]]), np.array([[1.0, 3.0, 3.0, 0.5]]), 3)
    (array([[2, 9, 5]]), array([[3., 3., 1.]]))
    """
    order = np.lexsort((indices, _descending(scores)), axis=-1)[:, :k]
    return np.take_along_axis(indices, order, axis=1), np.take_along_axis(scores, order, axis=1)


def _chosen(block: np.ndarray, kept: int) -> np.ndarray:
    """The columns of each row's ``kept`` largest values, ties at the threshold to the lower
    column, in column order (``kept`` < the block's columns): exact, by a partition of each row."""
    cols = block.shape[1]
    if block.dtype.kind == "f":
        nan = np.isnan(block)
        if nan.any():  # NaN ranks below every number, -inf too: a whole sort of these rows
            position = np.broadcast_to(np.arange(cols), block.shape)
            order = np.lexsort((position, np.where(nan, 0, -block), nan), axis=1)[:, :kept]
            return np.sort(order, axis=1)
    threshold = np.partition(block, cols - kept, axis=1)[:, cols - kept : cols - kept + 1]
    above = block > threshold
    level = block == threshold
    need = kept - above.sum(axis=1, keepdims=True)
    keep = above | (level & (np.cumsum(level, axis=1, dtype=np.int32) <= need))
    return np.nonzero(keep)[1].reshape(-1, kept)


#: Groups of columns per kept column whose maxima bound a row's k-th largest value from below.
GROUPS_PER_KEPT = 8


def _screened(block: np.ndarray, kept: int, col0: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Each row's best ``kept``, found among the values at least a bound: the ``kept``-th largest
    of the maxima of ``GROUPS_PER_KEPT × kept`` groups of columns is at most the row's
    ``kept``-th largest value, so every value the answer needs (ties included) is at or above
    it, and few others are. Two passes over the block instead of a partition of each row;
    ``None`` where the bound keeps too many values (or too few: NaN), for :func:`_chosen`."""
    rows, cols = block.shape
    groups = min(cols, GROUPS_PER_KEPT * kept)
    starts = (np.arange(groups) * cols) // groups
    maxima = np.fmax.reduceat(block, starts, axis=1) if block.dtype.kind == "f" else \
        np.maximum.reduceat(block, starts, axis=1)
    bound = np.partition(maxima, groups - kept, axis=1)[:, groups - kept : groups - kept + 1]
    row, col = np.nonzero(block >= bound)
    counts = np.bincount(row, minlength=rows)
    widest = int(counts.max(initial=0))
    if counts.min() < kept or widest > max(4 * GROUPS_PER_KEPT * kept, cols // 8):
        return None
    low = -np.inf if block.dtype.kind == "f" else np.iinfo(block.dtype).min
    scores = np.full((rows, widest), low, dtype=block.dtype)
    indices = np.full((rows, widest), np.iinfo(np.int64).max, dtype=np.int64)
    place = np.arange(len(row)) - np.repeat(np.cumsum(counts) - counts, counts)
    scores[row, place] = block[row, col]
    indices[row, place] = col + col0
    return best(indices, scores, kept)


def select(tile: np.ndarray, col0: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's best ``min(k, columns)`` columns of ``tile`` as corpus rows (offset ``col0``),
    best first, ranked a few rows at a time (:func:`~blockdist.planning.topk.select_rows`).

    >>> tile = np.array([[1.0, 4.0, 4.0, 2.0], [0.0, -1.0, 3.0, 3.0]])
    >>> select(tile, 10, 2)
    (array([[11, 12],
           [12, 13]]), array([[4., 4.],
           [3., 3.]]))
    """
    rows, cols = tile.shape
    kept = min(k, cols)
    indices = np.empty((rows, kept), dtype=np.int64)
    scores = np.empty((rows, kept), dtype=tile.dtype)
    step = select_rows(rows, cols, tile.dtype.itemsize)
    for lo in range(0, rows, step):
        block = tile[lo : lo + step]
        found = _screened(block, kept, col0) if kept * GROUPS_PER_KEPT < cols else None
        if found is None:
            columns = np.broadcast_to(np.arange(cols), block.shape) if kept == cols else _chosen(block, kept)
            found = best(columns + col0, np.take_along_axis(block, columns, axis=1), kept)
        indices[lo : lo + step], scores[lo : lo + step] = found
    return indices, scores


def _ranked(tile: np.ndarray, col0: int, k: int, stats: TaskStats) -> Candidates:
    start = time.perf_counter()
    indices, scores = select(tile, col0, k)
    seconds = time.perf_counter() - start
    digest("top-k", seconds, "seconds")
    return Candidates(indices, scores, stats.plus(compute_seconds=seconds))


def topk_tile(task: TileTask, k: int) -> Candidates:
    """Compute the task's tile of S and keep its best ``k`` a row."""
    tile, stats = accumulate_tile(task)
    return _ranked(tile, task.cols[0], k, stats)


def select_sum(k: int, col0: int, *parts: tuple[np.ndarray, TaskStats]) -> Candidates:
    """Split-k: the root of a tile's (or band's) reduction tree sums its partials, then ranks them."""
    tile, stats = sum_partials(*parts)
    return _ranked(tile, col0, k, stats)


def take_rows(part: Candidates, lo: int, hi: int, first: bool) -> Candidates:
    """Rows ``[lo, hi)`` of a tile's candidates, for the merge of that row block; the figures
    go with the first block only."""
    return Candidates(part.indices[lo:hi], part.scores[lo:hi], part.stats if first else TaskStats())


def stack_rows(*parts: Candidates) -> Candidates:
    """A split-k tile's candidates from those of its reduce bands, top to bottom."""
    stats = TaskStats()
    for part in parts:
        stats = stats + part.stats
    return Candidates(np.concatenate([p.indices for p in parts]), np.concatenate([p.scores for p in parts]),
                      stats)


def merge(k: int, *parts: Candidates) -> Candidates:
    """The best ``k`` a row of candidates from several column tiles (same rows)."""
    stats = TaskStats()
    for part in parts:
        stats = stats + part.stats
    if len(parts) == 1 and parts[0].indices.shape[1] <= k:
        return Candidates(parts[0].indices, parts[0].scores, stats)
    indices, scores = best(np.concatenate([p.indices for p in parts], axis=1),
                           np.concatenate([p.scores for p in parts], axis=1), k)
    return Candidates(indices, scores, stats)


def write_best(output: TopkOutput, k: int, *parts: Candidates) -> TaskStats:
    """The root of a row block's merge: merge the last candidates and write their rows."""
    start = time.perf_counter()
    merged = merge(k, *parts)
    if merged.indices.shape != (output.rows[1] - output.rows[0], k):
        raise ValueError(f"rows {output.rows[0]}:{output.rows[1]} merged to {merged.indices.shape}, not "
                         f"{output.rows[1] - output.rows[0]}×{k}")  # a graph that lost a column tile
    cols = (0, k)
    written = write_tile(output.indices, output.rows, cols, merged.indices)
    written += write_tile(output.scores, output.rows, cols, merged.scores)
    seconds = time.perf_counter() - start
    digest("write", seconds, "seconds")
    digest("write", written, "bytes")
    return merged.stats.plus(bytes_written=written, write_seconds=seconds)
