"""The cost model: the wall time a candidate plan would take (pure).

A task computes at the kernel's rate for its row block and reads its panels at the read rate
of each operand's source (a diagonal tile of a symmetric product: half the flops, by syrk, and
A's panels alone). The reader thread overlaps the kernel, but on a worker with one core
per thread it takes that core's time, so the two add up. Tasks run in waves over the slots; a
split-k tile then moves and sums its partials, level by level of the reduction tree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from .grid import tile_count
from .layout import MatrixLayout, ProductSizes
from .model import ClusterShape, MachineModel


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

    @property
    def row_chunk(self) -> int:
        return min(self.a.chunks[0], self.m)

    @property
    def col_chunk(self) -> int:
        return min(self.b.chunks[1], self.n)

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


def estimate_seconds(problem: Problem, shape: TaskShape) -> float:
    """Wall time of the plan under the cost model: waves of equal tasks over the slots."""
    model = problem.model
    tm, tn = min(shape.tile_rows, problem.m), min(shape.tile_cols, problem.n)
    tiles = tile_count(problem.m, problem.n, tm, tn, problem.symmetric)
    waves = -(-(tiles * shape.splits) // problem.cluster.slots)
    k_piece = problem.k / shape.splits
    efficiency = kernel_efficiency(min(shape.kernel_rows, tm), model) * shape.blocks_efficiency
    compute = 2 * tm * tn * k_piece / model.flops_per_thread / efficiency
    read_a = tm * k_piece * problem.a.itemsize / model.read_rate(problem.a, shape.a_mapped)
    read_b = k_piece * tn * problem.b.itemsize / model.read_rate(problem.b, shape.b_mapped)
    per_task = compute + read_a + read_b + model.task_overhead_seconds
    if problem.symmetric and problem.blas_kernel:  # diagonal tiles: syrk at half the flops, A read alone
        diagonal = -(-problem.m // tm)
        per_diagonal = compute * (tm + 1) / (2 * tm) + read_a + model.task_overhead_seconds
        per_task = (per_diagonal * diagonal + per_task * (tiles - diagonal)) / tiles
    tile_bytes = tm * tn * problem.itemsize
    write = tile_bytes / model.write_bytes_per_second
    reduce = 0.0
    if shape.splits > 1:
        levels = math.ceil(math.log(shape.splits, model.reduce_fan_in))
        fan_in = min(shape.splits, model.reduce_fan_in)
        # Each level moves fan_in - 1 partials to the reducing task and sums fan_in of them;
        # the tiles' reduces share the slots.
        per_level = ((fan_in - 1) * tile_bytes / model.transfer_bytes_per_second
                     + fan_in * tile_bytes / model.read_bytes_per_second + model.task_overhead_seconds)
        reduce = levels * per_level * -(-tiles // problem.cluster.slots)
    return waves * (per_task + write) + reduce
