"""A plan's record (:class:`PlanRecord`): how C = A·B will be computed, and every figure that follows from
it; :class:`~blockdist.planning.plan.Plan` adds how it prints.

::

          k-panels ─────────►                      tile (i, j) of C
        ┌────┬────┬────┬────┐      ┌────┬────┐      ┌────┬────┐
   tm { │ A  │ A  │ A  │ A  │  ·   │ B  │    │  →   │ C  │    │
        ├────┼────┼────┼────┤      ├────┤    │      ├────┼────┤
        │    │    │    │    │      │ B  │    │      │    │    │
        └────┴────┴────┴────┘      ├────┤    │      └────┴────┘
                                   │ B  │    │
                                   ├────┤    │       one task per tile: the C tile stays in
                                   │ B  │    │       memory while the task walks k, reading
                                   └────┴────┘       the next panel as it multiplies this one
                                     tn

* **stream** (output-stationary): one task per output tile of ``tm × tn``; each walks all
  of k and writes its tile once. Reads: ``m·n·k·(1/tm + 1/tn)`` elements; writes ``m·n``.
* **split-k**: when there are fewer tiles than threads, each tile's k range is cut into
  ``s`` pieces; the ``s`` partial tiles are summed band by band by a reduce-scatter
  (:mod:`.traffic`), so that big resident tiles over a k-split grid move less than many thin
  tiles each streaming all of k.

Tiles are unions of whole storage chunks of A (rows) and B (columns), and of whole storage
objects of the output (its shards, or chunks where it has none: :attr:`PlanRecord.write_unit`),
and split-k bands are cut on those objects' edges: reads are aligned and no two tasks write
the same object. A's and B's panels follow their own k-chunks, so chunk grids that do
not line up along k are each read once. :func:`blockdist.planning.search.make_plan` makes
plans; :mod:`blockdist.planning.report` prints them and :mod:`blockdist.planning.picture` draws
their tiles, both from the record alone.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, fields

from .bounds import worker_traffic_bound
from .cost import Problem, TaskShape, estimate_seconds
from .grid import Tile, TileGrid, aligned_length, reduce_task_count, split_edges
from .layout import MatrixLayout, ProductSizes, ReadSource
from .memory import TaskMemory
from .model import ClusterShape, MachineModel
from .sparse import PresentWork, has_zero_blocks, present_work, tile_work
from .traffic import busiest_worker_traffic, moved_between_workers, reduce_bands
from .writes import WriteUnit, band_alignment


class Strategy(enum.StrEnum):
    STREAM = "stream"  #: one task per tile, streaming all of k
    SPLIT_K = "split-k"  #: tasks per (tile, k-range), partial tiles summed by a tree


@dataclass(frozen=True, slots=True)
class OperandPlan:
    """One operand as the plan reads it: its logical layout, panel depth and read path."""

    layout: MatrixLayout  #: of op(X): shape and chunks as the product sees them
    panel_depth: int  #: k-depth of a panel (whole chunks of the operand)
    mapped: bool = False  #: tasks map its chunk files and BLAS multiplies them in place
    name: str = ""  #: op(X) as people read it: "A", "Bᵀ", "Xᴴ" (empty: "A" or "B")

    @property
    def shape(self) -> tuple[int, int]:
        return self.layout.shape

    @property
    def chunks(self) -> tuple[int, int]:
        return self.layout.chunks

    @property
    def itemsize(self) -> int:
        return self.layout.itemsize

    @property
    def dtype(self) -> str:
        return self.layout.dtype

    @property
    def source(self) -> ReadSource:
        return self.layout.source

    def to_dict(self) -> dict[str, object]:
        return {**self.layout.to_dict(), "panel_depth": self.panel_depth, "mapped": self.mapped, "name": self.name}

    @classmethod
    def from_dict(cls, data: dict) -> OperandPlan:
        return cls(MatrixLayout.from_dict(data), data["panel_depth"], data.get("mapped", False), data.get("name", ""))


@dataclass(frozen=True, slots=True)
class PlanRecord(ProductSizes):
    """How C = A·B will be computed: tiles, tasks, memory and I/O (the figures; a
    :class:`~blockdist.planning.plan.Plan` is this record that also prints)."""

    a: OperandPlan
    b: OperandPlan
    dtype: str  #: the result dtype (numpy's promotion of A's and B's)
    itemsize: int
    strategy: Strategy
    reason: str  #: why this strategy and tile shape
    tile_rows: int
    tile_cols: int
    k_splits: int  #: pieces of k per tile (1 when streaming)
    out_chunks: tuple[int, int]
    kernel_rows: int  #: rows of the kernel's product block
    workers: int
    threads: int  #: threads per worker
    memory_per_worker: int
    task_budget: int  #: bytes one task may use
    memory: TaskMemory  #: projected peak of one task, term by term
    reduce_fan_in: int = 2  #: pieces a split-k reduce sums at once (a tree when there are more)
    #: A·Aᵀ or Aᵀ·A: only tiles on and above the diagonal are computed; each also writes its
    #: mirror image below it.
    symmetric: bool = False
    blas_kernel: bool = True  #: tasks add into C through BLAS (False: numpy into a scratch block)
    product: str = ""  #: what C is, as people read it: "2·A·Bᵀ + 0.5·C0", "X·Xᵀ" (empty: "A·B")
    out_shards: tuple[int, int] | None = None  #: the output's shards (tiles are unions of them)
    #: share of BLAS's rate the planner expected of chunk-by-chunk calls on mapped chunks
    blocks_efficiency: float = 1.0
    #: where blocks are absent: tiles with no present block product still get a task, because
    #: their output is beta·C0 (else they are written as absent, 0)
    writes_empty_tiles: bool = False
    model: MachineModel = field(default_factory=MachineModel, repr=False, compare=False)

    # --- sizes -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return (self.m, self.n)

    @property
    def grid(self) -> TileGrid:
        return TileGrid.cut(self.m, self.n, self.tile_rows, self.tile_cols, self.symmetric)

    @property
    def k_edges(self) -> list[int]:
        return split_edges(self.k, self.k_splits, self.a.chunks[1])

    @property
    def tiles(self) -> int:
        """Tiles computed (for a symmetric product, those on and above the diagonal)."""
        return self.grid.computed

    @property
    def tasks(self) -> int:
        """Block-product tasks plus, for split-k, the band cuts, reduce trees and one gather per tile
        (where blocks are absent: for the k-pieces with present work, and none for an empty tile)."""

        def per_tile(s: int, bands: int) -> int:
            if s <= 1:
                return 1 if s == 1 or self.writes_empty_tiles else 0
            scatter = s * bands + 1 if bands > 1 else 0
            return s + scatter + bands * reduce_task_count(s, self.reduce_fan_in)

        if self.zero_blocks:
            pieces = self.present().pieces
            return sum(per_tile(len(pieces[t.number]), 1 if self.symmetric and t.rows == t.cols else self.reduce_bands)
                       for t in self.grid.tiles())
        # a diagonal tile of a symmetric product reduces in one band (its mirror spans them all)
        diagonal = self.grid.shape[0] if self.symmetric else 0
        s = self.k_splits
        return diagonal * per_tile(s, 1) + (self.tiles - diagonal) * per_tile(s, self.reduce_bands)

    # --- absent blocks -------------------------------------------------------------------
    @property
    def zero_blocks(self) -> bool:
        """Whether some block products are zero for want of a stored block (fill value 0): those
        are neither read nor computed, and a tile with none present is written as absent."""
        return has_zero_blocks(self.a.layout, self.b.layout)

    def present(self) -> PresentWork:
        """The present work of each tile (:func:`~.sparse.present_work`); only where :attr:`zero_blocks`."""
        return present_work(self.a.layout, self.b.layout, self.grid, tuple(self.k_edges), self.syrk_diagonals)

    def present_pieces(self, tile: Tile) -> list[int]:
        """The k-pieces of ``tile`` with present work (every one, where no block is absent)."""
        if not self.zero_blocks:
            return list(range(self.k_splits))
        return list(self.present().pieces[tile.number])

    def submission_order(self) -> list[Tile]:
        """The computed tiles in the order their tasks are submitted: by number, or where blocks
        are absent the most work first (Dask starts what was submitted first: longest first)."""
        tiles = list(self.grid.tiles())
        if self.zero_blocks:
            work = self.tile_flops()
            tiles.sort(key=lambda t: -work[t.number])
        return tiles

    @property
    def empty_tiles(self) -> set[int]:
        """Computed tiles with no present block product: 0, written as absent unless :attr:`writes_empty_tiles`."""
        if not self.zero_blocks:
            return set()
        return {number for number, pieces in self.present().pieces.items() if not pieces}

    @property
    def block_tasks(self) -> int:
        """Block-product tasks (tile, k-piece) with work to do."""
        if not self.zero_blocks:
            return self.tiles * self.k_splits
        return sum(len(p) for p in self.present().pieces.values())

    @property
    def flops(self) -> int:
        """The product's nominal work, 2mnk (GFLOP/s figures use it)."""
        return 2 * self.m * self.n * self.k

    @property
    def syrk_diagonals(self) -> bool:
        """Whether diagonal tiles are computed by syrk, from A's panels alone (symmetric, BLAS kernel)."""
        return self.symmetric and self.blas_kernel

    @property
    def flops_computed(self) -> int:
        """The work the tasks do: about half of :attr:`flops` for a symmetric product, whose
        diagonal tiles BLAS's syrk computes at half the flops of their gemm (``k·n·(n+1)``)."""
        return sum(self.tile_flops().values())

    def tile_flops(self) -> dict[int, int]:
        """The work of each computed tile, by number (see :attr:`flops_computed`): only the
        present block products where blocks are absent."""
        if self.zero_blocks:
            return dict(self.present().tile_flops)
        work = {}
        for t in self.grid.tiles():
            rows, cols = t.rows[1] - t.rows[0], t.cols[1] - t.cols[0]
            square = self.syrk_diagonals and t.rows == t.cols
            work[t.number] = self.k * rows * (rows + 1) if square else 2 * self.k * rows * cols
        return work

    # --- I/O ---------------------------------------------------------------------------
    @property
    def bytes_read(self) -> int:
        """Bytes read from storage: every task reads whole chunks of its panels (where blocks
        are absent, only the stored chunks that meet a stored block of the other operand)."""
        if self.zero_blocks:
            return sum(self.present().bytes_read.values())
        grid = self.grid
        rows, cols = grid.shape
        k_edges = self.k_edges
        pieces = list(zip(k_edges, k_edges[1:]))
        a_k = sum(aligned_length(lo, hi, self.a.chunks[1], self.k) for lo, hi in pieces)
        b_k = sum(aligned_length(lo, hi, self.b.chunks[0], self.k) for lo, hi in pieces)
        if self.symmetric:  # row band i is read by tiles (i, i..T-1); column band j by (0..j, j)
            sizes = [hi - lo for lo, hi in zip(grid.row_edges, grid.row_edges[1:])]
            a_rows = sum(size * (rows - i) for i, size in enumerate(sizes))
            # a diagonal tile that syrk computes reads its band once, as A
            b_cols = sum(size * (j if self.syrk_diagonals else j + 1) for j, size in enumerate(sizes))
            return a_rows * a_k * self.a.itemsize + b_cols * b_k * self.b.itemsize
        return self.m * cols * a_k * self.a.itemsize + self.n * rows * b_k * self.b.itemsize

    @property
    def bytes_written(self) -> int:
        """C, whole; where blocks are absent, without the tiles written as absent."""
        if not self.zero_blocks or self.writes_empty_tiles:
            return self.m * self.n * self.itemsize
        empty = self.empty_tiles
        area = sum((t.rows[1] - t.rows[0]) * (t.cols[1] - t.cols[0]) * (2 if self.symmetric and t.i != t.j else 1)
                   for t in self.grid.tiles() if t.number not in empty)
        return area * self.itemsize

    @property
    def io_lower_bound(self) -> int:
        """Bytes any schedule must read: max(2mnk/√M + mn, mk + kn), M the task budget in elements."""
        budget_elements = max(1, self.task_budget // self.itemsize)
        if self.zero_blocks:  # the same bound for the present multiply-adds, and each stored chunk that
            # meets a stored block of the other operand read once (what one task for all of C would read)
            whole = tile_work(self.a.layout, self.b.layout, self.m, self.n, (0, self.k))
            inputs = float(whole.a_bytes.sum() + whole.b_bytes.sum())
            hong_kung = self.flops_computed / math.sqrt(budget_elements)
            return int(max(hong_kung * self.itemsize, inputs, 1))
        hong_kung = 2 * self.m * self.n * self.k / math.sqrt(budget_elements) + self.m * self.n
        inputs = self.m * self.k * self.a.itemsize + self.k * self.n * self.b.itemsize
        return int(max(hong_kung * self.itemsize, inputs))

    @property
    def io_ratio(self) -> float:
        return self.bytes_read / self.io_lower_bound

    @property
    def slots(self) -> int:
        """Tasks that run at once: workers × threads."""
        return self.workers * self.threads

    @property
    def waves(self) -> int:
        """Rounds of block-product tasks over the slots (the busiest slot runs this many)."""
        return -(-self.block_tasks // self.slots)

    @property
    def write_unit(self) -> WriteUnit:
        """The output's storage objects (shards, or chunks where it has none): every task writes
        whole ones that no other task writes (:mod:`.writes`)."""
        return WriteUnit(self.shape, self.out_chunks, self.out_shards)

    @property
    def _band_rows(self) -> int:
        """Rows a band's edges fall on: whole write units (mirrored, in columns too)."""
        return band_alignment(self.write_unit.edges, self.symmetric)

    @property
    def reduce_bands(self) -> int:
        """Row bands of a split-k tile, each summed and written by its own reduce (1 when streaming)."""
        return reduce_bands(self.k_splits, self.tile_rows, self._band_rows)

    def band_edges(self, tile: Tile, *, whole: bool = False) -> list[int]:
        """Row offsets, within ``tile``, of the bands its reduce-scatter cuts, on write-unit
        edges. One band where a band could not be written alone: a diagonal tile of a symmetric
        product (its mirror lies across the bands), or ``whole`` (an in-place update: its stage
        and marker are the tile's)."""
        rows = tile.rows[1] - tile.rows[0]
        if whole or (self.symmetric and tile.rows == tile.cols):
            return [0, rows]
        return split_edges(rows, self.reduce_bands, self._band_rows)

    @property
    def transfer_bytes(self) -> int:
        """Bytes of partial tiles moved between workers by split-k reduces (0 when streaming)."""
        tile_bytes = self.tile_rows * self.tile_cols * self.itemsize
        if self.zero_blocks:
            return int(sum(moved_between_workers(1, tile_bytes, len(p)) for p in self.present().pieces.values()))
        return int(moved_between_workers(self.tiles, tile_bytes, self.k_splits))

    @property
    def traffic_per_worker(self) -> int:
        """Bytes the busiest worker moves: its tasks' reads and writes, and its share of partials.

        Tasks are about equal, and a worker runs ``threads × waves`` of them at most.
        """
        units = max(1, self.block_tasks)
        reads = self.bytes_read / units
        tile_bytes = self.tile_rows * self.tile_cols * self.itemsize
        tasks = min(units, self.threads * self.waves)
        return int(busiest_worker_traffic(reads, tile_bytes, self.k_splits, self.reduce_bands, tasks,
                                          self.reduce_fan_in))

    @property
    def predicted_seconds(self) -> float:
        """The cost model's wall time for this plan (:func:`~blockdist.planning.cost.estimate_seconds`)."""
        cluster = ClusterShape(self.workers, self.threads, self.memory_per_worker)
        problem = Problem(self.a.layout, self.b.layout, self.itemsize, cluster, self.model, self.symmetric,
                          self.blas_kernel, dtype=self.dtype)
        shape = TaskShape(self.tile_rows, self.tile_cols, self.k_splits, self.kernel_rows, self.a.mapped,
                          self.b.mapped, self.blocks_efficiency)
        return estimate_seconds(problem, shape)

    @property
    def traffic_lower_bound_per_worker(self) -> int:
        """Bytes some worker must move under any schedule on this cluster: the bound of
        :func:`~blockdist.planning.bounds.worker_traffic_bound` for a worker whose tasks hold
        ``threads`` task budgets of memory. Where blocks are absent, the bound of a dense product
        doing the same work (k scaled by the present share), which absent blocks may undercut."""
        memory_words = self.threads * max(1, self.task_budget // self.itemsize)
        k = self.k
        if self.zero_blocks:
            share = self.flops_computed / max(1, self.flops) * (2 if self.symmetric else 1)
            k = max(1, round(self.k * min(1.0, share)))
        words = worker_traffic_bound(self.m, self.n, k, self.workers, memory_words)
        return int(words * self.itemsize)

    @property
    def traffic_ratio(self) -> float:
        return self.traffic_per_worker / max(1, self.traffic_lower_bound_per_worker)

    # --- records -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        """A JSON-ready description (for manifests and benchmark records)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("model", "a", "b", "memory")}
        out.update(
            a=self.a.to_dict(), b=self.b.to_dict(), memory=self.memory.to_dict(), strategy=str(self.strategy),
            out_chunks=list(self.out_chunks), out_shards=list(self.out_shards) if self.out_shards else None,
            shape=list(self.shape), tiles=self.tiles, tasks=self.tasks,
            flops=self.flops, flops_computed=self.flops_computed, tiles_empty=len(self.empty_tiles),
            bytes_read=self.bytes_read, bytes_written=self.bytes_written,
            io_lower_bound=self.io_lower_bound, memory_total=self.memory.total,
            traffic_per_worker=self.traffic_per_worker,
            traffic_lower_bound_per_worker=self.traffic_lower_bound_per_worker,
            bytes_moved_between_workers=self.transfer_bytes, reduce_bands=self.reduce_bands,
            memory_per_task=self.memory.total, predicted_seconds=round(self.predicted_seconds, 3),
        )
        return out

    @classmethod
    def from_dict(cls, data: dict) -> PlanRecord:
        """Rebuild a plan from :meth:`to_dict` (as stored in a job manifest)."""
        names = {f.name for f in fields(cls)} - {"model"}  # derived figures are recomputed
        values = {k: v for k, v in data.items() if k in names}
        # Manifests of 0.1 kept the operands' panel depth and mapping beside the layouts.
        operands = {side: OperandPlan.from_dict({"panel_depth": data.get(f"{side}_panel_depth"),
                                                 "mapped": data.get(f"{side}_mapped", False), **data[side]})
                    for side in ("a", "b")}
        values.update(a=operands["a"], b=operands["b"],
                      strategy=Strategy(data["strategy"]), out_chunks=tuple(data["out_chunks"]),
                      out_shards=tuple(data["out_shards"]) if data.get("out_shards") else None,
                      memory=TaskMemory(**data["memory"]))
        return cls(**values)
