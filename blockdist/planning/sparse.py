"""Zero blocks cost nothing: the work and reads of a product whose operands have absent chunks (pure).

Where an operand's fill value is 0 and some of its read units (chunks, or shards) are not
stored (:attr:`~.layout.MatrixLayout.zero_blocks`), a block product with an absent block is
zero. A task then reads a chunk only where it meets a stored block of the other operand, and
multiplies only the present pairs. Along k the product is cut at both operands' chunk edges
(and the k-split's) into *segments*; in a segment, A's row chunk ``r`` and B's column chunk
``c`` make a present pair where both are stored::

    work(tile I×J, k-piece p) = 2 · Σ_{s ∈ p} len(s) · (Σ_{r∈I} rows(r)·A[r, a(s)]) · (Σ_{c∈J} cols(c)·B[b(s), c])

which is one small matrix product per k-piece over the tiles' row and column sums (the
chunk grids never enter it whole). Worked example: A 4096² block-diagonal in 512² chunks
(8 of 64 stored), B dense in 512² chunks, tiles of 1024²: each tile meets 2 of A's stored
blocks, so it does 2 · 2·512·512·1024 flops instead of 2·1024·4096·1024 — an eighth, the share of A stored.

:func:`panel_runs` says, for one task, which stretches of each panel its task reads: the
same rule, so that what the plan counts is what the tasks do.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from .grid import TileGrid, edges
from .layout import MatrixLayout

#: Stretches of a panel a task reads, as ``(lo, hi)`` offsets along the tile's rows (A) or columns (B).
Runs = tuple[tuple[int, int], ...]


def has_zero_blocks(a: MatrixLayout, b: MatrixLayout) -> bool:
    """Whether some block products of op(A)·op(B) are zero for want of a stored block."""
    return a.zero_blocks is not None or b.zero_blocks is not None


class TileWork(NamedTuple):
    """The present work of every tile and k-piece of one cut: arrays of ``(pieces, tile rows, tile cols)``."""

    flops: np.ndarray  #: nominal flops of the present pairs (2 a multiply-add)
    a_bytes: np.ndarray  #: bytes of A's chunks a task reads
    b_bytes: np.ndarray  #: bytes of B's chunks a task reads

    def tile_flops(self) -> np.ndarray:
        """Present flops by tile, all k-pieces summed."""
        return self.flops.sum(axis=0)


def _presence(layout: MatrixLayout) -> np.ndarray:
    grid = layout.zero_blocks
    if grid is not None:
        return grid
    return np.ones(tuple(-(-s // c) for s, c in zip(layout.shape, layout.chunks, strict=True)), dtype=bool)


def _sizes(length: int, chunk: int) -> np.ndarray:
    return np.diff(np.array(edges(length, chunk), dtype=np.float64))


def _group_starts(length: int, chunk: int, tile: int) -> np.ndarray:
    """The first chunk of each tile (tiles are whole chunks, the last may be short)."""
    return np.array([start // chunk for start in range(0, length, tile)], dtype=np.intp)


class _Segments(NamedTuple):
    length: np.ndarray  #: elements of k in each segment
    a_chunk: np.ndarray  #: A's k-chunk each lies in
    b_chunk: np.ndarray  #: B's k-chunk each lies in
    piece: np.ndarray  #: the k-piece each lies in


def _segments(k: int, a_kchunk: int, b_kchunk: int, k_edges: tuple[int, ...]) -> _Segments:
    cuts = np.array(sorted(set(edges(k, a_kchunk)) | set(edges(k, b_kchunk)) | set(k_edges)), dtype=np.int64)
    lo = cuts[:-1]
    return _Segments(np.diff(cuts).astype(np.float64), lo // a_kchunk, lo // b_kchunk,
                     np.searchsorted(np.array(k_edges), lo, side="right") - 1)


@functools.lru_cache(maxsize=64)
def tile_work(a: MatrixLayout, b: MatrixLayout, tile_rows: int, tile_cols: int, k_edges: tuple[int, ...]) -> TileWork:
    """The present work and reads of every tile and k-piece (``k_edges`` cut k) of op(A)·op(B).

    >>> eye = MatrixLayout((4, 4), (1, 1), 8, stored=_diagonal(4))
    >>> dense = MatrixLayout((4, 4), (1, 1), 8)
    >>> work = tile_work(eye, dense, 2, 4, (0, 4))
    >>> work.tile_flops().tolist(), work.a_bytes[0].tolist(), work.b_bytes[0].tolist()
    ([[16.0], [16.0]], [[16.0], [16.0]], [[64.0], [64.0]])
    """
    (m, k), (_, n) = a.shape, b.shape
    (cm, cka), (ckb, cn) = a.chunks, b.chunks
    pa, pb = _presence(a).astype(np.float64), _presence(b).astype(np.float64)
    rows, cols = _sizes(m, cm), _sizes(n, cn)
    a_rows = np.add.reduceat(rows[:, None] * pa, _group_starts(m, cm, tile_rows), axis=0)  # tiles × A k-chunks
    b_cols = np.add.reduceat(pb * cols[None, :], _group_starts(n, cn, tile_cols), axis=1)  # B k-chunks × tiles
    a_chunk_bytes = a_rows * _sizes(k, cka)[None, :] * a.itemsize
    b_chunk_bytes = b_cols * _sizes(k, ckb)[:, None] * b.itemsize
    seg = _segments(k, cka, ckb, k_edges)
    pieces = len(k_edges) - 1
    shape = (pieces, a_rows.shape[0], b_cols.shape[1])
    flops, a_bytes, b_bytes = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for p in range(pieces):
        inside = seg.piece == p
        a_seg, b_seg = a_rows[:, seg.a_chunk[inside]], b_cols[seg.b_chunk[inside], :]  # tiles × S, S × tiles
        flops[p] = 2 * (a_seg * seg.length[inside]) @ b_seg
        a_onehot = np.zeros((int(inside.sum()), a_rows.shape[1]))
        a_onehot[np.arange(a_onehot.shape[0]), seg.a_chunk[inside]] = 1
        b_onehot = np.zeros((int(inside.sum()), b_cols.shape[0]))
        b_onehot[np.arange(b_onehot.shape[0]), seg.b_chunk[inside]] = 1
        a_needed = (a_onehot.T @ (b_seg > 0)) > 0  # A k-chunk × tile column: B has a stored block there
        b_needed = ((a_seg > 0) @ b_onehot) > 0  # tile row × B k-chunk
        a_bytes[p] = a_chunk_bytes @ a_needed
        b_bytes[p] = b_needed @ b_chunk_bytes
    return TileWork(flops, a_bytes, b_bytes)


def _diagonal(n: int):  # noqa: ANN202 - a doctest's fixture
    from .presence import ChunkPresence, StoredChunks

    return StoredChunks(ChunkPresence.of(np.eye(n, dtype=bool)), n, n * n)


def _runs_of(flags: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> Runs:
    """Maximal stretches of consecutive chunks flagged, as element offsets."""
    runs: list[tuple[int, int]] = []
    for index in np.flatnonzero(flags):
        lo, hi = int(starts[index]), int(ends[index])
        if runs and runs[-1][1] == lo:
            runs[-1] = (runs[-1][0], hi)
        else:
            runs.append((lo, hi))
    return tuple(runs)


def _chunk_bounds(lo: int, hi: int, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The chunks ``[lo, hi)`` covers: their indices and bounds relative to ``lo``."""
    index = np.arange(lo // chunk, -(-hi // chunk))
    return index, np.maximum(index * chunk, lo) - lo, np.minimum((index + 1) * chunk, hi) - lo


def stored_runs(present: np.ndarray | None, lo: int, hi: int, unit: int) -> Runs:
    """The stretches of ``[lo, hi)`` along a line of read units ``unit`` long (``present``: a bool
    for each unit of the line; ``None``: every unit is to be read) that lie in stored units, as
    offsets from ``lo``.

    >>> stored_runs(np.array([True, True, False, True]), 1, 8, 2), stored_runs(None, 1, 8, 2)
    (((0, 3), (5, 7)), ((0, 7),))
    """
    if present is None:
        return ((0, hi - lo),)
    index, starts, ends = _chunk_bounds(lo, hi, unit)
    return _runs_of(present[index], starts, ends)


def panel_runs(a: MatrixLayout, b: MatrixLayout, span: tuple[tuple[int, int], tuple[int, int]],
               a_edges: list[int], b_edges: list[int]) -> tuple[tuple[Runs, ...], tuple[Runs, ...]]:
    """For a task over ``span`` (its rows and columns of C) whose A and B panels are cut at
    ``a_edges`` and ``b_edges`` along k (each panel inside one chunk), the stretches of each
    panel to read: stored chunks that meet a stored block of the other operand.

    >>> eye = MatrixLayout((4, 4), (1, 1), 8, stored=_diagonal(4))
    >>> dense = MatrixLayout((4, 4), (1, 1), 8)
    >>> panel_runs(eye, dense, ((0, 2), (0, 4)), [0, 1, 2, 3, 4], [0, 1, 2, 3, 4])
    ((((0, 1),), ((1, 2),), (), ()), (((0, 4),), ((0, 4),), (), ()))
    """
    (rows, cols) = span
    pa, pb = _presence(a), _presence(b)
    r_index, r_lo, r_hi = _chunk_bounds(*rows, a.chunks[0])
    c_index, c_lo, c_hi = _chunk_bounds(*cols, b.chunks[1])
    a_blocks = pa[r_index]  # tile's row chunks × A k-chunks
    b_blocks = pb[:, c_index]  # B k-chunks × tile's column chunks
    a_any, b_any = a_blocks.any(axis=0), b_blocks.any(axis=1)

    def along(lo: int, hi: int, chunk: int) -> slice:  # the k-chunks [lo, hi) touches (one, for a panel a chunk deep)
        return slice(lo // chunk, -(-hi // chunk))

    a_runs = tuple(_runs_of(a_blocks[:, along(lo, hi, a.chunks[1])].any(axis=1)
                            & b_any[along(lo, hi, b.chunks[0])].any(), r_lo, r_hi)
                   for lo, hi in zip(a_edges, a_edges[1:]))
    b_runs = tuple(_runs_of(b_blocks[along(lo, hi, b.chunks[0])].any(axis=0)
                            & a_any[along(lo, hi, a.chunks[1])].any(), c_lo, c_hi)
                   for lo, hi in zip(b_edges, b_edges[1:]))
    return a_runs, b_runs


class PresentWork(NamedTuple):
    """What the tasks of one plan do where blocks are absent: by computed tile number."""

    tile_flops: dict[int, int]  #: flops of each computed tile (a syrk diagonal tile: its half and diagonal)
    pieces: dict[int, tuple[int, ...]]  #: the k-pieces of each tile with present work (none: an empty tile)
    bytes_read: dict[int, int]  #: bytes each tile's tasks read, all pieces
    #: each (tile, k-piece) task with present work: its flops and the bytes it reads of A and of B
    piece_work: dict[tuple[int, int], tuple[float, int, int]]


@functools.lru_cache(maxsize=64)
def present_work(a: MatrixLayout, b: MatrixLayout, grid: TileGrid, k_edges: tuple[int, ...], syrk: bool) -> PresentWork:
    """The present work of every computed tile of ``grid`` (k cut at ``k_edges``); ``syrk``: a
    symmetric product whose diagonal tiles syrk computes from A's panels alone, at half the flops.

    >>> eye = MatrixLayout((4, 4), (1, 1), 8, stored=_diagonal(4))
    >>> work = present_work(eye, eye.transposed(), TileGrid.cut(4, 4, 2, 2), (0, 4), False)
    >>> work.tile_flops, work.pieces[1]
    ({0: 4, 1: 0, 2: 0, 3: 4}, ())
    """
    tile_rows = grid.row_edges[1] - grid.row_edges[0]
    tile_cols = grid.col_edges[1] - grid.col_edges[0]
    work = tile_work(a, b, tile_rows, tile_cols, k_edges)
    flops, pieces, read, piece_work = {}, {}, {}, {}
    for tile in grid.tiles():
        square = syrk and tile.rows == tile.cols
        rows = tile.rows[1] - tile.rows[0]
        done = work.flops[:, tile.i, tile.j]
        share = (rows + 1) / (2 * rows) if square else 1.0  # syrk: the upper half and the diagonal
        flops[tile.number] = int(round(float(done.sum()) * share))
        pieces[tile.number] = tuple(int(p) for p in np.flatnonzero(done > 0))
        for p in pieces[tile.number]:
            b_part = 0 if square else int(work.b_bytes[p, tile.i, tile.j])  # syrk reads A's panels alone
            piece_work[tile.number, p] = (float(done[p]) * share, int(work.a_bytes[p, tile.i, tile.j]), b_part)
        read[tile.number] = sum(sum(piece_work[tile.number, p][1:]) for p in pieces[tile.number])
    return PresentWork(flops, pieces, read, piece_work)
