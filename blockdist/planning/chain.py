"""The order of a chain of products A₁·A₂·…·Aₙ (pure): numpy's ``multi_dot`` dynamic programme,
weighted by time rather than flops alone.

A product of an ``m×k`` and a ``k×n`` matrix costs its flops at the cluster's rate plus its
traffic at the storage rate: each operand read at least once, and the result written (and,
for an intermediate, read again by the next product). On the shapes where flops decide
(``MachineModel.flops_per_thread`` high against storage) the order is numpy's; where a thin
intermediate saves traffic it is preferred even at a few more flops.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import ClusterShape, MachineModel


@dataclass(frozen=True)
class ChainPlan:
    """The cheapest order of a chain and what it costs against left to right."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, int], ...]
    split: tuple[tuple[int, ...], ...]  #: split[i][j]: where the best bracketing of i..j cuts
    seconds: float  #: predicted, in this order
    left_to_right_seconds: float
    flops: float
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


def product_seconds(m: int, k: int, n: int, itemsize: int, cluster: ClusterShape, model: MachineModel,
                    intermediate: bool) -> float:
    """One product's predicted seconds: its flops over every slot, its reads and write over storage."""
    compute = 2.0 * m * k * n / (model.flop_rate("float64") * cluster.slots)
    moved = (m * k + k * n + m * n * (2 if intermediate else 1)) * itemsize
    return compute + moved / (model.read_bytes_per_second * cluster.workers)


def plan_chain(names: list[str], shapes: list[tuple[int, int]], itemsize: int, cluster: ClusterShape,
               model: MachineModel | None = None) -> ChainPlan:
    """The cheapest bracketing of the chain (``shapes`` already checked to chain).

    >>> p = plan_chain(["A", "B", "C"], [(10, 100), (100, 5), (5, 50)], 8, ClusterShape(1, 1, 2**30))
    >>> p.order(), p.flops < p.left_to_right_flops or p.order() == "(A·B)·C"
    ('(A·B)·C', True)
    """
    model = model or MachineModel()
    count = len(shapes)
    dims = [shapes[0][0], *(s[1] for s in shapes)]
    cost = [[0.0] * count for _ in range(count)]
    flops = [[0.0] * count for _ in range(count)]
    split = [[0] * count for _ in range(count)]
    for length in range(2, count + 1):
        for i in range(count - length + 1):
            j = i + length - 1
            last = i == 0 and j == count - 1
            best = None
            for k in range(i, j):
                here = cost[i][k] + cost[k + 1][j] + product_seconds(dims[i], dims[k + 1], dims[j + 1], itemsize,
                                                                     cluster, model, intermediate=not last)
                if best is None or here < best:
                    best, split[i][j] = here, k
                    flops[i][j] = flops[i][k] + flops[k + 1][j] + 2.0 * dims[i] * dims[k + 1] * dims[j + 1]
            cost[i][j] = best or 0.0
    ltr_seconds = ltr_flops = 0.0
    for step in range(1, count):
        ltr_seconds += product_seconds(dims[0], dims[step], dims[step + 1], itemsize, cluster, model,
                                       intermediate=step < count - 1)
        ltr_flops += 2.0 * dims[0] * dims[step] * dims[step + 1]
    return ChainPlan(tuple(names), tuple(shapes), tuple(tuple(row) for row in split), cost[0][count - 1],
                     ltr_seconds, flops[0][count - 1], ltr_flops)
