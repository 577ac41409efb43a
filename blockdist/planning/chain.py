"""The order of a chain of products A₁·A₂·…·Aₙ (pure): numpy's ``multi_dot`` dynamic programme,
weighted by time rather than flops alone.

A product of an ``m×k`` and a ``k×n`` matrix costs its flops at the cluster's rate plus its
traffic at the storage rate: each operand read at least once, and the result written (and,
for an intermediate, read again by the next product). On the shapes where flops decide
(``MachineModel.flops_per_thread`` high against storage) the order is numpy's; where a thin
intermediate saves traffic it is preferred even at a few more flops.

Zero blocks cost nothing here as in a product's plan: where an input's fill value is 0 and
some of its chunks are not stored (its :class:`~.layout.MatrixLayout`'s listing), a product
that takes it is priced by its present block pairs' flops and the chunks it reads
(:func:`~.sparse.tile_work`); an intermediate counts as dense. A block-diagonal input of b
blocks makes its products b times cheaper, which can change the best order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .layout import MatrixLayout
from .model import ClusterShape, MachineModel
from .sparse import has_zero_blocks, tile_work


@dataclass(frozen=True)
class ChainPlan:
    """The cheapest order of a chain and what it costs against left to right."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, int], ...]
    split: tuple[tuple[int, ...], ...]  #: split[i][j]: where the best bracketing of i..j cuts
    seconds: float  #: predicted, in this order
    left_to_right_seconds: float
    flops: float  #: of the present block pairs (all of them where no input has zero blocks)
    left_to_right_flops: float

    def order(self, i: int = 0, j: int | None = None) -> str:
        """The bracketing, as people write it: ``(A·B)·C``."""
        j = len(self.names) - 1 if j is None else j
        if i == j:
            return self.names[i]
        k = self.split[i][j]
        left, right = self.order(i, k), self.order(k + 1, j)
        return f"{left if i == k else f'({left})'}·{right if k + 1 == j else f'({right})'}"

    def steps(self, i: int = 0, j: int | None = None) -> list[tuple[int, int, int]]:
        """The products in the order they run, as ``(i, k, j)``: (i..k)·(k+1..j), innermost first."""
        j = len(self.names) - 1 if j is None else j
        if i == j:
            return []
        k = self.split[i][j]
        return [*self.steps(i, k), *self.steps(k + 1, j), (i, k, j)]

    def summary(self) -> str:
        return (f"order         {self.order()}: {self.flops / 1e9:,.1f} GFLOP, predicted {self.seconds:.2f} s\n"
                f"left to right {self.left_to_right_flops / 1e9:,.1f} GFLOP, predicted "
                f"{self.left_to_right_seconds:.2f} s ({self.left_to_right_seconds / max(self.seconds, 1e-12):.2f}× "
                f"the chosen order)")


def product_work(a: MatrixLayout, b: MatrixLayout) -> tuple[float, float]:
    """The flops of a·b's present block pairs and the bytes of its operands read for them (each
    at least once; a chunk that meets no stored block of the other is not read).

    >>> dense = MatrixLayout((4, 4), (1, 1), 8)
    >>> eye = MatrixLayout((4, 4), (1, 1), 8, stored=_diagonal(4))
    >>> product_work(dense, dense), product_work(eye, dense)
    ((128.0, 256.0), (32.0, 160.0))
    """
    (m, k), n = a.shape, b.shape[1]
    if not has_zero_blocks(a, b):
        return 2.0 * m * k * n, float(m * k * a.itemsize + k * n * b.itemsize)
    work = tile_work(a, b, m, n, (0, k))  # one tile: every chunk read once, where it meets work
    return float(work.flops.sum()), float(work.a_bytes.sum() + work.b_bytes.sum())


def product_seconds(work: tuple[float, float], out_bytes: float, cluster: ClusterShape, model: MachineModel,
                    intermediate: bool) -> float:
    """One product's predicted seconds: its ``work`` (:func:`product_work`) flops over every
    slot, its reads and write over storage (an intermediate's write read again by the next)."""
    flops, read = work
    compute = flops / (model.flop_rate("float64") * cluster.slots)
    moved = read + out_bytes * (2 if intermediate else 1)
    return compute + moved / (model.read_bytes_per_second * cluster.workers)


def _diagonal(n: int):  # noqa: ANN202 - a doctest's fixture
    import numpy as np

    from .presence import ChunkPresence, StoredChunks

    return StoredChunks(ChunkPresence.of(np.eye(n, dtype=bool)), n, n * n)


class _Operands:
    """The chain's inputs as layouts, and what a product of two stretches of it costs."""

    def __init__(self, shapes: list[tuple[int, int]], itemsize: int, layouts: Sequence[MatrixLayout | None]) -> None:
        self.itemsize = itemsize
        self.inputs = [layout or MatrixLayout(shape, shape, itemsize) for shape, layout in zip(shapes, layouts,
                                                                                               strict=True)]
        self.dims = [shapes[0][0], *(s[1] for s in shapes)]

    def layout(self, i: int, j: int) -> MatrixLayout:
        """The product of inputs i..j: an input's own layout, or a dense intermediate."""
        shape = (self.dims[i], self.dims[j + 1])
        return self.inputs[i] if i == j else MatrixLayout(shape, shape, self.itemsize)

    def work(self, i: int, k: int, j: int) -> tuple[float, float]:
        return product_work(self.layout(i, k), self.layout(k + 1, j))

    def out_bytes(self, i: int, j: int) -> float:
        return float(self.dims[i] * self.dims[j + 1] * self.itemsize)


def plan_chain(names: list[str], shapes: list[tuple[int, int]], itemsize: int, cluster: ClusterShape,
               model: MachineModel | None = None, layouts: Sequence[MatrixLayout | None] | None = None) -> ChainPlan:
    """The cheapest bracketing of the chain (``shapes`` already checked to chain); ``layouts``:
    the inputs' own, where a listing found their stored chunks (``None``: each priced dense).

    >>> p = plan_chain(["A", "B", "C"], [(10, 100), (100, 5), (5, 50)], 8, ClusterShape(1, 1, 2**30))
    >>> p.order(), p.flops < p.left_to_right_flops or p.order() == "(A·B)·C"
    ('(A·B)·C', True)
    """
    model = model or MachineModel()
    count = len(shapes)
    operands = _Operands(shapes, itemsize, layouts or [None] * count)
    cost = [[0.0] * count for _ in range(count)]
    flops = [[0.0] * count for _ in range(count)]
    split = [[0] * count for _ in range(count)]
    for length in range(2, count + 1):
        for i in range(count - length + 1):
            j = i + length - 1
            last = i == 0 and j == count - 1
            best = None
            for k in range(i, j):
                work = operands.work(i, k, j)
                here = cost[i][k] + cost[k + 1][j] + product_seconds(work, operands.out_bytes(i, j), cluster, model,
                                                                     intermediate=not last)
                if best is None or here < best:
                    best, split[i][j] = here, k
                    flops[i][j] = flops[i][k] + flops[k + 1][j] + work[0]
            cost[i][j] = best or 0.0
    ltr_seconds = ltr_flops = 0.0
    for step in range(1, count):
        work = operands.work(0, step - 1, step)
        ltr_seconds += product_seconds(work, operands.out_bytes(0, step), cluster, model,
                                       intermediate=step < count - 1)
        ltr_flops += work[0]
    return ChainPlan(tuple(names), tuple(shapes), tuple(tuple(row) for row in split), cost[0][count - 1],
                     ltr_seconds, flops[0][count - 1], ltr_flops)
