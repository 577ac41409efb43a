"""The cost model: the wall time a candidate plan would take (pure).

A task computes at the kernel's rate for its row block and reads its panels at the read rate
of each operand's source (a diagonal tile of a symmetric product: half the flops, by syrk, and
A's panels alone). The reader thread overlaps the kernel, but on a worker with one core
per thread decoding takes that core's time, so the two add up; waiting for shared storage
(each task's share of its worker's link and of the store's aggregate) overlaps. Tasks run in
waves over the slots; a split-k tile then moves and sums its partials band by band
(:mod:`.traffic`).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import NamedTuple

from .grid import TileGrid, split_edges, tile_count
from .layout import MatrixLayout, ProductSizes
from .model import ClusterShape, MachineModel
from .sparse import PresentWork, has_zero_blocks, present_work
from .traffic import band_chunk_rows, busiest_worker_traffic, reduce_bands


@dataclass(frozen=True, slots=True)
class Problem(ProductSizes):
    """What stays fixed while the planner searches: the operands, the cluster, the model."""

    a: MatrixLayout  #: op(A)'s logical layout
    b: MatrixLayout  #: op(B)'s
    itemsize: int  #: of the result
    cluster: ClusterShape
    model: MachineModel
    symmetric: bool = False
    blas_kernel: bool = True  #: the kernel adds into C through BLAS (no scratch block)
    #: the planner may cut the output's row chunks finer than A's for a split-k reduce-scatter
    #: (False: the output's chunks are given, by the caller or an existing array)
    free_out_rows: bool = True
    dtype: str = "float64"  #: of the result

    @property
    def row_chunk(self) -> int:
        return min(self.a.chunks[0], self.m)

    @property
    def col_chunk(self) -> int:
        return min(self.b.chunks[1], self.n)

    def out_rows(self, shape: TaskShape) -> int:
        """Rows of the output's chunks under this cut (see :func:`~.traffic.band_chunk_rows`)."""
        if not self.free_out_rows or self.symmetric:
            return self.row_chunk
        return band_chunk_rows(shape.splits, min(shape.tile_rows, self.m), self.row_chunk)

    def bands(self, shape: TaskShape) -> int:
        return reduce_bands(shape.splits, min(shape.tile_rows, self.m), self.out_rows(shape))

    @property
    def zero_blocks(self) -> bool:
        """Whether absent blocks make some block products zero (:mod:`.sparse`)."""
        return has_zero_blocks(self.a, self.b)

    @property
    def a_kchunk(self) -> int:
        return min(self.a.chunks[1], self.k)

    @property
    def b_kchunk(self) -> int:
        return min(self.b.chunks[0], self.k)


class TaskShape(NamedTuple):
    """One way to cut the work: tile, k-split, kernel block and how each operand is read."""

    tile_rows: int
    tile_cols: int
    splits: int
    kernel_rows: int
    a_mapped: bool = False
    b_mapped: bool = False
    blocks_efficiency: float = 1.0  #: share of BLAS's rate left by chunk-by-chunk calls


def kernel_efficiency(rows: int, model: MachineModel) -> float:
    """Share of BLAS's rate the kernel keeps with ``rows``-row blocks (B is packed per call).

    >>> round(kernel_efficiency(2048, MachineModel()), 3), round(kernel_efficiency(64, MachineModel()), 3)
    (0.99, 0.762)
    """
    return rows / (rows + model.pack_rows)


def _tile_sizes(problem: Problem, shape: TaskShape) -> tuple[int, int, int]:
    tm, tn = min(shape.tile_rows, problem.m), min(shape.tile_cols, problem.n)
    return tm, tn, tile_count(problem.m, problem.n, tm, tn, problem.symmetric)


def task_reads(problem: Problem, shape: TaskShape) -> tuple[float, float]:
    """Bytes one block-product task reads of A and of B (a diagonal tile of a symmetric
    product by syrk: A's alone; the average over the tiles)."""
    tm, tn, tiles = _tile_sizes(problem, shape)
    k_piece = problem.k / shape.splits
    read_a, read_b = tm * k_piece * problem.a.itemsize, k_piece * tn * problem.b.itemsize
    if problem.symmetric and problem.blas_kernel:
        diagonal = -(-problem.m // tm)
        read_b *= (tiles - diagonal) / tiles
    return read_a, read_b


def _present(problem: Problem, shape: TaskShape) -> PresentWork:
    """The present work of this cut, where blocks are absent (:mod:`.sparse`)."""
    tm, tn = min(shape.tile_rows, problem.m), min(shape.tile_cols, problem.n)
    grid = TileGrid.cut(problem.m, problem.n, tm, tn, problem.symmetric)
    k_edges = tuple(split_edges(problem.k, shape.splits, problem.a.chunks[1]))
    return present_work(problem.a, problem.b, grid, k_edges, problem.symmetric and problem.blas_kernel)


def working_tiles(problem: Problem, tile_rows: int, tile_cols: int) -> int:
    """Tiles of this cut with work: every computed tile, or those with a present block product."""
    if not problem.zero_blocks:
        return tile_count(problem.m, problem.n, min(tile_rows, problem.m), min(tile_cols, problem.n),
                          problem.symmetric)
    work = _present(problem, TaskShape(tile_rows, tile_cols, 1, problem.model.kernel_rows))
    return sum(1 for pieces in work.pieces.values() if pieces)


def estimate_traffic(problem: Problem, shape: TaskShape) -> float:
    """Bytes the busiest worker moves under this cut (see :mod:`.traffic`)."""
    tm, tn, tiles = _tile_sizes(problem, shape)
    if problem.zero_blocks:  # tasks of present work only, each reading what it meets
        work = _present(problem, shape)
        units = max(1, sum(len(p) for p in work.pieces.values()))
        per_worker = min(units, problem.cluster.threads * -(-units // problem.cluster.slots))
        return busiest_worker_traffic(sum(work.bytes_read.values()) / units, tm * tn * problem.itemsize,
                                      shape.splits, problem.bands(shape), per_worker, problem.model.reduce_fan_in)
    units = tiles * shape.splits
    per_worker = min(units, problem.cluster.threads * -(-units // problem.cluster.slots))
    bands = problem.bands(shape)
    return busiest_worker_traffic(sum(task_reads(problem, shape)), tm * tn * problem.itemsize, shape.splits,
                                  bands, per_worker, problem.model.reduce_fan_in)


def estimate_seconds(problem: Problem, shape: TaskShape) -> float:
    """Wall time of the plan under the cost model: waves of equal tasks over the slots.

    Reading and decoding takes the task's core (it adds to the compute); waiting for shared
    storage does not (the reader thread waits while the kernel runs), so a task lasts the
    longer of the two. Where blocks are absent, tasks differ: :func:`_present_seconds`.
    """
    if problem.zero_blocks:
        return _present_seconds(problem, shape)
    model = problem.model
    tm, tn, tiles = _tile_sizes(problem, shape)
    waves = -(-(tiles * shape.splits) // problem.cluster.slots)
    k_piece = problem.k / shape.splits
    efficiency = kernel_efficiency(min(shape.kernel_rows, tm), model) * shape.blocks_efficiency
    compute = 2 * tm * tn * k_piece / model.flop_rate(problem.dtype) / efficiency
    bytes_a, bytes_b = task_reads(problem, shape)
    share = model.storage_share(problem.cluster)
    if problem.symmetric and problem.blas_kernel:  # diagonal tiles: syrk at half the flops
        diagonal = -(-problem.m // tm)
        compute *= (diagonal * (tm + 1) / (2 * tm) / model.square_efficiency + tiles - diagonal) / tiles
    busy = (compute + bytes_a / model.read_rate(problem.a, shape.a_mapped)
            + bytes_b / model.read_rate(problem.b, shape.b_mapped))
    per_task = max(busy, (bytes_a + bytes_b) / share) + model.task_overhead_seconds
    tile_bytes = tm * tn * problem.itemsize
    if shape.splits == 1:
        return waves * (per_task + tile_bytes / model.write_bytes_per_second)
    # The reduce-scatter: each band's pieces are summed by a tree of fan-in f; a reduce at
    # any level receives f - 1 pieces of 1/B of the tile and sums f (the root also writes its
    # band). The reduces of one level share the slots.
    bands = problem.bands(shape)
    piece, fan_in = tile_bytes / bands, model.reduce_fan_in
    per_reduce = ((fan_in - 1) * piece / model.transfer_bytes_per_second
                  + fan_in * piece / model.read_bytes_per_second + model.task_overhead_seconds)
    reduce, parts = piece / model.write_bytes_per_second, shape.splits
    while parts > 1:
        parts = -(-parts // fan_in)
        reduce += per_reduce * -(-(tiles * bands * parts) // problem.cluster.slots)
    return waves * per_task + reduce


def makespan(durations: list[float], slots: int) -> float:
    """The wall time of tasks handed out longest first, each to the slot free first (longest-first
    list scheduling, exact for the longest ``16 × slots``; the shorter rest fill the gaps evenly).

    >>> makespan([1.0] * 5, 2), makespan([4.0, 1.0, 1.0, 1.0, 1.0], 2)
    (3.0, 4.0)
    """
    ordered = sorted(durations, reverse=True)
    head, rest = ordered[: 16 * slots], ordered[16 * slots :]
    loads = [0.0] * min(slots, max(1, len(head)))
    for seconds in head:
        heapq.heappush(loads, heapq.heappop(loads) + seconds)
    if not rest:
        return max(loads)
    total = sum(loads) + sum(rest)
    return max(max(loads), total / slots + rest[0] * (1 - 1 / slots))


def _present_seconds(problem: Problem, shape: TaskShape) -> float:
    """:func:`estimate_seconds` where blocks are absent: a task per (tile, k-piece) with present
    work, each as long as its own flops and reads (:mod:`.sparse`), handed out longest first;
    tiles whose products are all absent cost nothing; a tile left with one piece streams it."""
    model, work = problem.model, _present(problem, shape)
    tm, tn = min(shape.tile_rows, problem.m), min(shape.tile_cols, problem.n)
    # blocks are as tall as a row chunk where the chunk grids cut them
    efficiency = kernel_efficiency(min(shape.kernel_rows, tm, problem.row_chunk), model) * shape.blocks_efficiency
    rate = model.flop_rate(problem.dtype) * efficiency
    share, tile_bytes = model.storage_share(problem.cluster), tm * tn * problem.itemsize
    rate_a, rate_b = model.read_rate(problem.a, shape.a_mapped), model.read_rate(problem.b, shape.b_mapped)
    durations, reduced = [], []
    for number, pieces in work.pieces.items():
        for p in pieces:
            flops, read_a, read_b = work.piece_work[number, p]
            busy = flops / rate + read_a / rate_a + read_b / rate_b
            write = tile_bytes / model.write_bytes_per_second if len(pieces) == 1 else 0.0
            durations.append(max(busy, (read_a + read_b) / share) + model.task_overhead_seconds + write)
        if len(pieces) > 1:
            reduced.append(len(pieces))
    seconds = makespan(durations, problem.cluster.slots)
    if reduced:  # the reduce-scatter of the split tiles, as estimate_seconds prices it, for the most pieces
        bands = problem.bands(shape)
        piece, fan_in = tile_bytes / bands, model.reduce_fan_in
        per_reduce = ((fan_in - 1) * piece / model.transfer_bytes_per_second
                      + fan_in * piece / model.read_bytes_per_second + model.task_overhead_seconds)
        seconds, parts = seconds + piece / model.write_bytes_per_second, max(reduced)
        while parts > 1:
            parts = -(-parts // fan_in)
            seconds += per_reduce * -(-(len(reduced) * bands * parts) // problem.cluster.slots)
    return seconds
