"""Top-k similarity, planned (pure): the product's plan, and what keeping only the best k adds.

For queries Q (m×d) and a corpus C (n×d), the scores are S = Q·Cᵀ (m×n). S is planned as any
product (:func:`~blockdist.planning.make_plan`, ``transpose_b``), but never stored::

    tile task (i, j)      S[i-tile, j-tile] streamed as for a product, then its best k a row
                          (global corpus rows, ties to the lower row): tm × min(k, tn) candidates
    merge (i, band)       the candidates of all column tiles of row tile i, fan_in at a time,
                          the root writing rows of ``indices`` (int64) and ``scores`` (m×k)

A task's memory is the product's, plus the candidates it returns and the rows it selects
from at once; a merge holds ``fan_in`` candidate blocks, their concatenation, its sort order
and the result. Merges write blocks of :attr:`TopkPlan.merge_rows` rows (the output's row
chunk, a divisor of the tile rows, so no two tasks write one chunk), as many as the budget
holds. The output is m·k·(8 + s) bytes where the product would be m·n·s.

>>> from blockdist.planning import ClusterShape, MatrixLayout, make_plan
>>> q, ct = MatrixLayout((1000, 64), (250, 64), 8), MatrixLayout((64, 5000), (64, 1000), 8)
>>> plan = make_plan(q, ct, ClusterShape(2, 1, 2**30), dtype="float64")
>>> tp = plan_topk(plan, 10)
>>> tp.bytes_written, tp.product_bytes_written
(160000, 40000000)
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from ..errors import MemoryBudgetError
from .plan import Plan
from .units import format_size

#: Candidate blocks a merge combines at once (a tree over the column tiles when there are more).
MERGE_FAN_IN = 8
#: Bytes of one selection's workspace: a tile's rows are ranked this many bytes of scores at a time.
SELECT_BYTES = 32 * 2**20
#: Bytes of an index (int64).
INDEX = 8


def select_rows(tile_rows: int, tile_cols: int, itemsize: int) -> int:
    """Rows of a tile ranked at once: a partitioned copy, masks and counts of a quarter of the
    tile's bytes, and of :data:`SELECT_BYTES` at most.

    >>> select_rows(4096, 4096, 8), select_rows(100, 10, 8)
    (546, 13)
    """
    per_row = tile_cols * (itemsize + 7)  # partitioned copy, two masks, an int32 count, the kept mask
    most = min(SELECT_BYTES, tile_rows * tile_cols * itemsize // 4)
    return max(1, min(tile_rows, most // max(1, per_row)))


def merge_bytes(rows: int, k: int, fan_in: int, itemsize: int) -> int:
    """A merge of ``fan_in`` candidate blocks of ``rows × k``: its inputs, their concatenation,
    the sort order and the result."""
    pair = INDEX + itemsize
    return rows * k * ((2 * fan_in + 1) * pair + INDEX * fan_in)


@dataclass(frozen=True)
class TopkPlan:
    """The plan of a top-k job: the product's :class:`Plan` and the merge around it."""

    plan: Plan  #: of S = Q·Cᵀ, whose tiles are computed and ranked, never stored
    k: int
    budget: int  #: bytes one task may use
    merge_rows: int  #: rows of the output a merge writes: the output's row chunk
    fan_in: int  #: candidate blocks a merge combines at once

    @property
    def m(self) -> int:
        return self.plan.m

    @property
    def n(self) -> int:
        return self.plan.n

    @property
    def pair_bytes(self) -> int:
        """An index and a score."""
        return INDEX + self.plan.itemsize

    @property
    def candidates_bytes(self) -> int:
        """The candidates one tile task returns (its rows × min(k, its columns))."""
        return self.plan.tile_rows * min(self.k, self.plan.tile_cols) * self.pair_bytes

    @property
    def select_bytes(self) -> int:
        """The workspace of ranking a tile's rows."""
        p = self.plan
        return select_rows(p.tile_rows, p.tile_cols, p.itemsize) * p.tile_cols * (p.itemsize + 7)

    @property
    def tile_memory(self) -> int:
        """A tile task: the product's terms, then its candidates and the selection's workspace."""
        return self.plan.memory.total + self.candidates_bytes + self.select_bytes

    @property
    def merge_memory(self) -> int:
        return merge_bytes(self.merge_rows, self.k, self.fan_in, self.plan.itemsize)

    @property
    def column_tiles(self) -> int:
        return self.plan.grid.shape[1]

    @property
    def merge_levels(self) -> int:
        """Levels of each merge tree (1: one task merges all column tiles of a band)."""
        levels, parts = 1, self.column_tiles
        while parts > self.fan_in:
            parts, levels = -(-parts // self.fan_in), levels + 1
        return levels

    @property
    def merge_bands(self) -> int:
        """Blocks of rows merged and written, one merge tree each."""
        return -(-self.m // self.merge_rows)  # merge_rows divides the tile rows

    @property
    def waiting_bytes(self) -> int:
        """All candidates of all tiles, the most the cluster holds should no merge have run yet."""
        cols = self.plan.grid.col_edges
        return self.m * sum(min(self.k, hi - lo) for lo, hi in pairwise(cols)) * self.pair_bytes

    @property
    def bytes_read(self) -> int:
        return self.plan.bytes_read

    @property
    def bytes_written(self) -> int:
        """``indices`` and ``scores``, m×k each."""
        return self.m * self.k * self.pair_bytes

    @property
    def product_bytes_written(self) -> int:
        """What storing S would write (and then read back, to rank it)."""
        return self.plan.bytes_written

    @property
    def out_chunks(self) -> tuple[int, int]:
        return self.merge_rows, self.k

    def to_dict(self) -> dict:
        return {"k": self.k, "budget": self.budget, "merge_rows": self.merge_rows, "fan_in": self.fan_in,
                "tile_memory": self.tile_memory, "merge_memory": self.merge_memory,
                "candidates_bytes": self.candidates_bytes, "select_bytes": self.select_bytes,
                "waiting_bytes": self.waiting_bytes, "bytes_read": self.bytes_read,
                "bytes_written": self.bytes_written, "product_bytes_written": self.product_bytes_written,
                "merge_levels": self.merge_levels, "plan": self.plan.to_dict()}

    def summary(self) -> str:
        p = self.plan
        rows, cols = p.grid.shape
        saved = self.product_bytes_written / max(1, self.bytes_written)
        lines = [
            f"top-k ({self.m}×{self.k}): for each of {self.m} queries, the {self.k} of {self.n} corpus rows "
            f"with "
            f"the largest scores S = Q·Cᵀ ({self.m}×{self.n} {p.dtype}, computed tile by tile, never stored)",
            f"  tiles     {rows}×{cols} = {p.tiles} tile(s) of {p.tile_rows}×{p.tile_cols}, each ranked to "
            f"{min(self.k, p.tile_cols)} candidates a row (tasks as planned below)",
            f"  merges    {self.merge_bands} block(s) of {self.merge_rows} rows, each merging its {cols} "
            f"column "
            f"tile(s) {self.fan_in} at a time ({self.merge_levels} level(s)) and writing rows of indices "
            f"and scores",
            f"  memory    tile task {format_size(self.tile_memory)} (the product's "
            f"{format_size(p.memory.total)} "
            f"+ candidates {format_size(self.candidates_bytes)} + ranking {format_size(self.select_bytes)}); "
            f"merge task {format_size(self.merge_memory)}; of a {format_size(self.budget)} budget; "
            f"candidates "
            f"waiting for their merge: {format_size(self.waiting_bytes)} at most, over the cluster",
            f"  reads     {format_size(self.bytes_read)} (the product's)",
            f"  writes    {format_size(self.bytes_written)} (indices int64 + scores {p.dtype}, "
            f"{self.m}×{self.k}, in chunks of {self.merge_rows}×{self.k}); storing S would write "
            f"{format_size(self.product_bytes_written)}"
            f" ({saved:,.0f}×) and ranking it read that back",
            "product S:",
            "\n".join(f"  {line}" for line in p.summary().splitlines()),
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<TopkPlan {self.summary()}>"


def _merge_rows(tile_rows: int, most: int) -> int:
    """The largest divisor of ``tile_rows`` no larger than ``most`` (at least 1)."""
    if most >= tile_rows:
        return tile_rows
    for pieces in range(-(-tile_rows // max(1, most)), tile_rows + 1):
        if tile_rows % pieces == 0:
            return tile_rows // pieces
    return 1


def plan_topk(plan: Plan, k: int, budget: int | None = None, fan_in: int = MERGE_FAN_IN) -> TopkPlan:
    """The top-k plan around the product's ``plan``; ``budget`` (default: the plan's) bounds
    every task. Refuses a k whose smallest merge does not fit.

    >>> from blockdist.planning import ClusterShape, MatrixLayout, make_plan
    >>> q, ct = MatrixLayout((1000, 64), (250, 64), 8), MatrixLayout((64, 5000), (64, 1000), 8)
    >>> tp = plan_topk(make_plan(q, ct, ClusterShape(2, 1, 2**30), dtype="float64"), 10)
    >>> tp.merge_rows == tp.plan.tile_rows, tp.tile_memory <= tp.budget
    (True, True)
    """
    budget = plan.task_budget if budget is None else budget
    fan_in = max(2, min(fan_in, plan.grid.shape[1]))
    one_row = merge_bytes(1, k, fan_in, plan.itemsize)
    if one_row > budget:
        raise MemoryBudgetError(
            f"topk: k = {k} needs {format_size(one_row)} to merge even one row's candidates, and a task may "
            f"use {format_size(budget)}; give more memory or ask for a smaller k")
    return TopkPlan(plan, k, budget, _merge_rows(plan.tile_rows, budget // one_row), fan_in)


__all__ = ["MERGE_FAN_IN", "TopkPlan", "merge_bytes", "plan_topk", "select_rows"]
