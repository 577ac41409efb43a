"""Choose how to split C = A·B into tasks (pure: standard library only).

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
  ``s`` pieces; the ``s`` partial tiles are summed by a tree of reduce tasks.

Tiles are unions of whole storage chunks of A (rows) and B (columns), and the output is
chunked so that each of its chunks belongs to one tile: reads are aligned and no two tasks
write the same chunk. A's and B's panels follow their own k-chunks, so chunk grids that do
not line up along k are each read once.

The planner scores every candidate tile shape with a small cost model
(:class:`MachineModel`) — compute, reads and writes per task, waves of tasks over the
cluster's threads — among those whose projected memory (:mod:`blockdist.memory`) fits the
per-task budget, and keeps the cheapest.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field, fields

from .errors import MemoryBudgetError, ShapeError
from .memory import WORKER_BASELINE, TaskMemory, task_memory
from .units import format_size


@dataclass(frozen=True, slots=True)
class MatrixLayout:
    """What the planner needs to know of one stored matrix."""

    shape: tuple[int, int]
    chunks: tuple[int, int]  #: the unit of reading: the shard shape where there are shards
    itemsize: int
    dtype: str = "float64"
    #: How tasks read it: ``mapped`` (local raw chunk files, which BLAS reads in place, one
    #: chunk deep), ``local`` (chunks decoded into panel buffers) or ``object`` (fetched from
    #: object storage, then decoded).
    source: str = "local"


@dataclass(frozen=True, slots=True)
class MachineModel:
    """Rates the cost model weighs tile shapes with; ``blockdist tune`` may measure better ones.

    The defaults were measured on a 2-core AMD EPYC (Zen 3, OpenBLAS Haswell kernels): see
    ``benchmarks/``. :func:`blockdist.tune.load_model` replaces them with a tune file's.
    """

    flops_per_thread: float = 36e9  #: sustained single-thread BLAS rate (float64)
    read_bytes_per_second: float = 1.0e9  #: one task reading and decoding local chunks
    #: One task mapping page-cached chunk files (page tables only: BLAS reads them in place).
    mapped_read_bytes_per_second: float = 8.0e9
    #: One task fetching chunks from object storage (280 MB/s measured from a loopback S3).
    object_read_bytes_per_second: float = 0.25e9
    write_bytes_per_second: float = 1.0e9  #: one task encoding and writing chunks
    task_overhead_seconds: float = 0.02  #: scheduling and opening the arrays, per task
    #: k-depth a copied panel aims for (rounded to whole chunks). 512 was fastest on 512²
    #: chunks (6144³, 2 workers, three rounds: 6.9-7.5 s, against 7.2-7.8 s for 1024 and
    #: 7.2-8.2 s for 2048): a panel one chunk deep is read with one ``preadv`` a chunk.
    panel_depth: int = 512
    #: Rows of the kernel's product block (see kernel.py): BLAS packs B once per call, so tall
    #: blocks are faster; the planner uses fewer rows only when memory is short.
    kernel_rows: int = 2048
    reduce_fan_in: int = 4  #: partial tiles summed by one split-k reduce task
    #: Kernel efficiency is ``rows / (rows + pack_rows)``: the rows at which B's packing per
    #: BLAS call costs as much as the product itself (about 20 measured; tune measures rows).
    pack_rows: float = 20.0
    transfer_bytes_per_second: float = 1.0e9  #: a partial tile moving between workers (split-k)
    #: Mapped blocks below this edge make chunk-by-chunk BLAS calls slower than copying the
    #: chunks into panels (512² chunks, 6144³ on 2 workers: 6.9-7.8 s copied, 7.8-8.1 s
    #: mapped); such a matrix is copied unless memory is too short for the copy's buffers.
    mapped_block_min_edge: int = 1024
    #: Share of BLAS's rate the planner expects from chunk-by-chunk calls on smaller blocks.
    small_block_efficiency: float = 0.9

    def read_rate(self, source: str) -> float:
        """Bytes per second one task reads from a matrix of this :attr:`MatrixLayout.source`."""
        return {"mapped": self.mapped_read_bytes_per_second,
                "object": self.object_read_bytes_per_second}.get(source, self.read_bytes_per_second)


@dataclass(frozen=True, slots=True)
class Plan:
    """How C = A·B will be computed: tiles, tasks, memory and I/O. Made by :func:`make_plan`."""

    a: MatrixLayout
    b: MatrixLayout
    dtype: str  #: the result dtype (numpy's promotion of A's and B's)
    itemsize: int
    strategy: str  #: "stream" or "split-k"
    reason: str  #: why this strategy and tile shape
    tile_rows: int
    tile_cols: int
    a_panel_depth: int  #: k-depth of A's panels (whole chunks of A)
    b_panel_depth: int  #: k-depth of B's panels (whole chunks of B)
    k_splits: int  #: pieces of k per tile (1 when streaming)
    out_chunks: tuple[int, int]
    kernel_rows: int  #: rows of the kernel's product block
    workers: int
    threads: int  #: threads per worker
    memory_per_worker: int
    task_budget: int  #: bytes one task may use
    memory: TaskMemory  #: projected peak of one task, term by term
    reduce_fan_in: int = 4
    #: A·Aᵀ or Aᵀ·A: only tiles on and above the diagonal are computed; each also writes its
    #: mirror image below it.
    symmetric: bool = False
    model: MachineModel = field(default_factory=MachineModel, repr=False)
    #: Tasks map A's (B's) chunk files and multiply them in place, a chunk deep (see tasks.py).
    a_mapped: bool = False
    b_mapped: bool = False

    # --- sizes -------------------------------------------------------------------------
    @property
    def m(self) -> int:
        return self.a.shape[0]

    @property
    def k(self) -> int:
        return self.a.shape[1]

    @property
    def n(self) -> int:
        return self.b.shape[1]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.m, self.n)

    @property
    def row_edges(self) -> list[int]:
        return _edges(self.m, self.tile_rows)

    @property
    def col_edges(self) -> list[int]:
        return _edges(self.n, self.tile_cols)

    @property
    def k_edges(self) -> list[int]:
        return split_edges(self.k, self.k_splits, self.a.chunks[1])

    @property
    def tile_grid(self) -> tuple[int, int]:
        return (len(self.row_edges) - 1, len(self.col_edges) - 1)

    @property
    def tiles(self) -> int:
        """Tiles computed (for a symmetric product, those on and above the diagonal)."""
        rows, cols = self.tile_grid
        return rows * (rows + 1) // 2 if self.symmetric else rows * cols

    @property
    def tasks(self) -> int:
        """Block-product tasks plus reduce tasks."""
        return self.tiles * (self.k_splits + reduce_task_count(self.k_splits, self.reduce_fan_in))

    @property
    def flops(self) -> int:
        """The product's nominal work, 2mnk (GFLOP/s figures use it)."""
        return 2 * self.m * self.n * self.k

    @property
    def flops_computed(self) -> int:
        """The work the tasks do: about half of :attr:`flops` for a symmetric product."""
        if not self.symmetric:
            return self.flops
        rows = [hi - lo for lo, hi in zip(self.row_edges, self.row_edges[1:])]
        return 2 * self.k * sum(r * c for i, r in enumerate(rows) for c in rows[i:])

    # --- I/O ---------------------------------------------------------------------------
    @property
    def bytes_read(self) -> int:
        """Bytes read from storage: every task reads whole chunks of its panels."""
        rows, cols = self.tile_grid
        edges = self.k_edges
        a_k = sum(_aligned_length(lo, hi, self.a.chunks[1], self.k) for lo, hi in zip(edges, edges[1:]))
        b_k = sum(_aligned_length(lo, hi, self.b.chunks[0], self.k) for lo, hi in zip(edges, edges[1:]))
        if self.symmetric:  # row band i is read by tiles (i, i..T-1); column band j by (0..j, j)
            sizes = [hi - lo for lo, hi in zip(self.row_edges, self.row_edges[1:])]
            a_rows = sum(size * (rows - i) for i, size in enumerate(sizes))
            b_cols = sum(size * (j + 1) for j, size in enumerate(sizes))
            return a_rows * a_k * self.a.itemsize + b_cols * b_k * self.b.itemsize
        return self.m * cols * a_k * self.a.itemsize + self.n * rows * b_k * self.b.itemsize

    @property
    def bytes_written(self) -> int:
        return self.m * self.n * self.itemsize

    @property
    def io_lower_bound(self) -> int:
        """Bytes any schedule must read: max(2mnk/√M + mn, mk + kn), M the task budget in elements."""
        budget_elements = max(1, self.task_budget // self.itemsize)
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
        return -(-(self.tiles * self.k_splits) // self.slots)

    @property
    def transfer_bytes(self) -> int:
        """Bytes of partial tiles moved between tasks by split-k reduces (0 when streaming)."""
        if self.k_splits == 1:
            return 0
        return self.tiles * (self.k_splits - 1) * self.tile_rows * self.tile_cols * self.itemsize

    @property
    def traffic_per_worker(self) -> int:
        """Bytes the busiest worker moves: its tasks' reads and writes, and its share of partials.

        Tasks are about equal, and a worker runs ``threads × waves`` of them at most.
        """
        units = self.tiles * self.k_splits
        per_unit = (self.bytes_read + self.bytes_written + self.transfer_bytes) / units
        return int(per_unit * min(units, self.threads * self.waves))

    @property
    def traffic_lower_bound_per_worker(self) -> int:
        """Bytes some worker must move under any schedule on this cluster.

        With ``P`` = workers × threads processors of ``M`` elements each (the task budget),
        some processor moves at least ``min(2mnk/(P√M) + M, 3·(mnk/P)^(2/3))`` elements
        (Kwasniewski et al., "Red-blue pebbling revisited", SC'19, the parallel bound behind
        COSMA); a worker hosts ``threads`` processors. Capped by what one worker could need at
        most: all of A, B and C.
        """
        p = self.slots
        budget = max(1, self.task_budget // self.itemsize)
        work = self.m * self.n * self.k
        memory_bound = 2 * work / (p * math.sqrt(budget)) + budget
        independent = 3 * (work / p) ** (2 / 3)
        everything = self.m * self.k + self.k * self.n + self.m * self.n
        per_processor = min(memory_bound, independent, everything)
        return int(min(self.threads * per_processor, everything) * self.itemsize)

    @property
    def traffic_ratio(self) -> float:
        return self.traffic_per_worker / max(1, self.traffic_lower_bound_per_worker)

    # --- reports -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        """A JSON-ready description (for manifests and benchmark records)."""
        out = asdict(self)
        out.pop("model")
        out.update(
            shape=list(self.shape), tiles=self.tiles, tasks=self.tasks, flops=self.flops,
            bytes_read=self.bytes_read, bytes_written=self.bytes_written,
            io_lower_bound=self.io_lower_bound, memory_total=self.memory.total,
            traffic_per_worker=self.traffic_per_worker,
            traffic_lower_bound_per_worker=self.traffic_lower_bound_per_worker,
        )
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Plan:
        """Rebuild a plan from :meth:`to_dict` (as stored in a job manifest)."""
        names = {f.name for f in fields(cls)} - {"model"}  # derived figures are recomputed
        values = {k: v for k, v in data.items() if k in names}
        values["a"] = MatrixLayout(**{**data["a"], "shape": tuple(data["a"]["shape"]),
                                      "chunks": tuple(data["a"]["chunks"])})
        values["b"] = MatrixLayout(**{**data["b"], "shape": tuple(data["b"]["shape"]),
                                      "chunks": tuple(data["b"]["chunks"])})
        values["out_chunks"] = tuple(data["out_chunks"])
        values["memory"] = TaskMemory(**data["memory"])
        return cls(**values)

    def summary(self) -> str:
        rows, cols = self.tile_grid
        a, b = self.a, self.b
        lines = [
            f"C ({self.m}×{self.n} {self.dtype}) = A ({a.shape[0]}×{a.shape[1]} {a.dtype}, chunks "
            f"{a.chunks[0]}×{a.chunks[1]}) · B ({b.shape[0]}×{b.shape[1]} {b.dtype}, chunks "
            f"{b.chunks[0]}×{b.chunks[1]})",
            f"  strategy  {self.strategy}: {self.reason}",
            f"  tiles     {self.tile_rows}×{self.tile_cols} → {rows}×{cols} = {self.tiles} tile(s)"
            + (f" × {self.k_splits} k-ranges" if self.k_splits > 1 else "")
            + f"; {self.tasks} tasks; k-panels {self.a_panel_depth} (A{', mapped' * self.a_mapped}) / "
            f"{self.b_panel_depth} (B{', mapped' * self.b_mapped})",
            f"  cluster   {self.workers} worker(s) × {self.threads} thread(s), "
            f"{format_size(self.memory_per_worker)} per worker",
            f"  memory    {format_size(self.memory.total)} per task of a "
            f"{format_size(self.task_budget)} budget: {self.memory.describe()}",
            f"  reads     {format_size(self.bytes_read)} = {self.io_ratio:.2f} × the lower bound "
            f"{format_size(self.io_lower_bound)}",
            f"  writes    {format_size(self.bytes_written)} in chunks of "
            f"{self.out_chunks[0]}×{self.out_chunks[1]}",
            f"  traffic   {format_size(self.traffic_per_worker)} per worker (reads, writes"
            + (", partials" if self.k_splits > 1 else "") + f") = {self.traffic_ratio:.2f} × the "
            f"parallel lower bound {format_size(self.traffic_lower_bound_per_worker)}; "
            f"{self.waves} wave(s) of tasks over {self.slots} thread(s)",
            f"  work      {self.flops / 1e9:,.1f} GFLOP",
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Plan {self.summary()}>"

    def _repr_html_(self) -> str:
        import html

        rows = [line.strip().split(None, 1) for line in self.summary().splitlines()[1:]]
        cells = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
            f"{html.escape(v)}</td></tr>" for k, v in rows
        )
        title = html.escape(self.summary().splitlines()[0])
        return f"<table><caption style='text-align:left'><b>blockdist plan</b>: {title}</caption>{cells}</table>"


# --- helpers ---------------------------------------------------------------------------
def _edges(length: int, step: int) -> list[int]:
    """Boundaries of ``range(length)`` cut every ``step``.

    >>> _edges(10, 4)
    [0, 4, 8, 10]
    """
    return list(range(0, length, step)) + [length]


def _aligned_length(lo: int, hi: int, chunk: int, length: int) -> int:
    """Elements of whole chunks touched when reading ``[lo, hi)``."""
    return min(length, -(-hi // chunk) * chunk) - (lo // chunk) * chunk


def split_edges(length: int, pieces: int, align: int) -> list[int]:
    """Cut ``range(length)`` in about ``pieces`` near-equal parts at multiples of ``align``.

    >>> split_edges(5000, 1, 700), split_edges(12, 2, 3), split_edges(12, 4, 5)
    ([0, 5000], [0, 6, 12], [0, 5, 10, 12])
    """
    inner = {round(length * i / pieces / align) * align for i in range(1, pieces)}
    return [0, *sorted(c for c in inner if 0 < c < length), length]


def reduce_task_count(parts: int, fan_in: int) -> int:
    """Reduce tasks a tree of the given fan-in needs to sum ``parts`` partial tiles.

    >>> reduce_task_count(1, 4), reduce_task_count(4, 4), reduce_task_count(5, 4), reduce_task_count(16, 4)
    (0, 1, 3, 5)
    """
    tasks = 0
    while parts > 1:
        parts = -(-parts // fan_in)
        tasks += parts
    return tasks


def _candidate_sizes(length: int, chunk: int) -> list[int]:
    """Tile sizes to try along one axis: multiples of the chunk, including near-even splits."""
    chunks = -(-length // chunk)
    multiples = set(range(1, min(chunks, 16) + 1))
    multiples |= {-(-chunks // parts) for parts in range(1, min(chunks, 64) + 1)}
    step = 16
    while step < chunks:
        multiples.add(step)
        step = int(step * 1.25) + 1
    return sorted({min(length, q * chunk) for q in multiples})


def mapping_options(a: MatrixLayout, b: MatrixLayout, tm: int, tn: int,
                    model: MachineModel | None = None) -> list[tuple[bool, bool, float]]:
    """Ways tasks may read A and B for ``tm × tn`` tiles: ``(map A, map B, kernel efficiency)``.

    A matrix that can be mapped is, when its chunks are big or a panel of it is one chunk
    across; one cut into smaller blocks is copied into panels instead (first
    option), and mapping it stays an option at a lower kernel rate, for when memory is too
    short for a copy's buffers.

    >>> big = MatrixLayout((8192, 8192), (2048, 2048), 8, source="mapped")
    >>> small = MatrixLayout((8192, 8192), (512, 512), 8, source="mapped")
    >>> mapping_options(big, big, 4096, 8192)
    [(True, True, 1.0)]
    >>> mapping_options(small, big, 2048, 4096)
    [(False, True, 1.0), (True, True, 0.9)]
    """
    model = model or MachineModel()

    def choices(layout: MatrixLayout, blocks: int) -> list[tuple[bool, float]]:
        if layout.source != "mapped":
            return [(False, 1.0)]
        if blocks == 1 or min(layout.chunks) >= model.mapped_block_min_edge:
            return [(True, 1.0)]
        return [(False, 1.0), (True, model.small_block_efficiency)]

    a_choices = choices(a, -(-tm // a.chunks[0]))
    b_choices = choices(b, -(-tn // b.chunks[1]))
    options = [(ma, mb, ea * eb) for (ma, ea), (mb, eb) in itertools.product(a_choices, b_choices)]
    return sorted(options, key=lambda option: -option[2])


def _panel_depth(target: int, chunk: int, k: int) -> int:
    return min(k, max(chunk, round(target / chunk) * chunk))


# --- the planner -----------------------------------------------------------------------
def make_plan(
    a: MatrixLayout,
    b: MatrixLayout,
    *,
    dtype: str,
    itemsize: int,
    workers: int,
    threads: int,
    memory_per_worker: int,
    model: MachineModel | None = None,
    symmetric: bool = False,
    blas_kernel: bool | None = None,
) -> Plan:
    """Plan C = A·B for ``workers × threads`` task slots with ``memory_per_worker`` bytes each.

    ``symmetric`` plans a product known to be symmetric (A·Aᵀ): square tiles, and only those
    on and above the diagonal. ``blas_kernel`` says the kernel adds into C through BLAS,
    with no scratch block (by default: for floating-point and complex results).

    >>> a = MatrixLayout((4096, 4096), (512, 512), 8)
    >>> p = make_plan(a, a, dtype="float64", itemsize=8, workers=2, threads=1,
    ...               memory_per_worker=2 * 2**30)
    >>> p.strategy, p.tiles >= 2, p.memory.total <= p.task_budget
    ('stream', True, True)
    """
    model = model or MachineModel()
    if blas_kernel is None:
        blas_kernel = dtype.startswith(("float", "complex"))
    check_shapes(a.shape, b.shape)
    if workers < 1 or threads < 1:
        raise ValueError(f"workers and threads must be at least 1, got {workers} and {threads}")
    m, k = a.shape
    n = b.shape[1]
    row_chunk, col_chunk = min(a.chunks[0], m), min(b.chunks[1], n)
    a_kchunk, b_kchunk = min(a.chunks[1], k), min(b.chunks[0], k)
    task_budget = (memory_per_worker - WORKER_BASELINE) // threads
    slots = workers * threads
    if symmetric and (m != n or row_chunk != col_chunk):
        raise ValueError(f"a symmetric product needs a square result with square chunks, got {m}×{n} "
                         f"in chunks of {row_chunk}×{col_chunk}")

    def memory_for(tm: int, tn: int, da: int, db: int, partials: int, rows: int,
                   a_mapped: bool = False, b_mapped: bool = False) -> TaskMemory:
        return task_memory(
            tm, tn, da, db, itemsize=itemsize, a_itemsize=a.itemsize, b_itemsize=b.itemsize,
            a_chunks=(row_chunk, a_kchunk), b_chunks=(b_kchunk, col_chunk),
            scratch_rows=0 if blas_kernel else min(tm, rows), partial_tiles=partials,
            a_mapped=a_mapped, b_mapped=b_mapped,
        )

    row_options = _kernel_row_options(model.kernel_rows)
    smallest = memory_for(row_chunk, col_chunk, a_kchunk, b_kchunk, 0, row_options[-1])
    if smallest.total > task_budget:
        needed = smallest.total * threads + WORKER_BASELINE
        raise MemoryBudgetError(
            f"a memory budget of {format_size(memory_per_worker)} per worker is too small: with "
            f"{threads} thread(s) per worker and {format_size(WORKER_BASELINE)} for the worker "
            f"itself, a task may use {format_size(max(task_budget, 0))}, but the smallest task "
            f"(one {row_chunk}×{col_chunk} output chunk, k-panels of one chunk) needs "
            f"{format_size(smallest.total)} ({smallest.describe()}). Give at least "
            f"{format_size(needed)} per worker (--memory), or store the inputs with smaller chunks."
        )

    best: tuple[float, int, tuple[int, int, int, int, int, int, TaskMemory, bool, bool]] | None = None
    for tm in _candidate_sizes(m, row_chunk):
        for tn in [tm] if symmetric else _candidate_sizes(n, col_chunk):
            if tm * tn * itemsize > task_budget:
                continue  # the C tile alone does not fit
            tiles = _tile_count(m, n, tm, tn, symmetric)
            splits = [1]
            if tiles < slots and k > a_kchunk:
                most = -(-k // a_kchunk)
                wanted = -(-slots // tiles)
                splits += [s for s in (wanted, 2 * wanted) if 1 < s <= most]
            for s, (a_mapped, b_mapped, blocks_efficiency) in itertools.product(
                    splits, mapping_options(a, b, tm, tn, model)):
                partials = min(s, model.reduce_fan_in) if s > 1 else 0
                k_piece = -(-k // s)
                # A mapped operand's panels are one chunk deep: its chunk files are the panels.
                depths = [(a_kchunk if a_mapped else _panel_depth(model.panel_depth, a_kchunk, k_piece),
                           b_kchunk if b_mapped else _panel_depth(model.panel_depth, b_kchunk, k_piece)),
                          (a_kchunk, b_kchunk)]
                # The tallest kernel block that fits, then the deepest panels: a short block
                # costs BLAS time (see MachineModel.pack_rows); a shallow panel costs little.
                fitting = next(
                    ((da, db, rows, memory) for rows in row_options for da, db in depths
                     if (memory := memory_for(tm, tn, da, db, partials, rows, a_mapped, b_mapped)).total
                     <= task_budget),
                    None,
                )
                if fitting is None:
                    continue
                da, db, rows, memory = fitting
                seconds = _estimate_seconds(m, n, k, tm, tn, s, slots, a, b, itemsize, model,
                                            min(rows, tm), symmetric, (a_mapped, b_mapped), blocks_efficiency)
                candidate = (seconds, -tm * tn, (tm, tn, da, db, s, min(rows, tm), memory, a_mapped, b_mapped))
                if best is None or candidate[:2] < best[:2]:
                    best = candidate
    assert best is not None, "the smallest task fits, so some candidate does"
    tm, tn, da, db, s, rows, memory, a_mapped, b_mapped = best[2]
    tiles = _tile_count(m, n, tm, tn, symmetric)
    if s > 1:
        strategy = "split-k"
        reason = (
            f"{tiles} output tile(s) for {slots} threads, so k is cut in {s} ranges whose partial "
            f"tiles a tree of fan-in {model.reduce_fan_in} sums"
        )
    else:
        strategy = "stream"
        reason = f"{tiles} output tile(s) for {slots} threads, each streaming all of k"
    if symmetric:
        reason += "; symmetric: only tiles on and above the diagonal, mirrored below it"
    return Plan(
        a=a, b=b, dtype=dtype, itemsize=itemsize, strategy=strategy, reason=reason,
        tile_rows=tm, tile_cols=tn, a_panel_depth=da, b_panel_depth=db, k_splits=s,
        out_chunks=(row_chunk, col_chunk), kernel_rows=rows,
        workers=workers, threads=threads, memory_per_worker=memory_per_worker,
        task_budget=task_budget, memory=memory, reduce_fan_in=model.reduce_fan_in, model=model,
        symmetric=symmetric, a_mapped=a_mapped, b_mapped=b_mapped,
    )


def _tile_count(m: int, n: int, tm: int, tn: int, symmetric: bool) -> int:
    rows, cols = -(-m // tm), -(-n // tn)
    return rows * (rows + 1) // 2 if symmetric else rows * cols


#: The shortest kernel block the planner falls back to when memory is short.
MIN_KERNEL_ROWS = 64


def _kernel_row_options(preferred: int) -> list[int]:
    """Kernel row blocks to try, tallest first: the preferred one, then halves of it.

    >>> _kernel_row_options(2048)
    [2048, 1024, 512, 256, 128, 64]
    """
    options = [max(1, preferred)]
    while options[-1] // 2 >= MIN_KERNEL_ROWS:
        options.append(options[-1] // 2)
    return options


def kernel_efficiency(rows: int, model: MachineModel) -> float:
    """Share of BLAS's rate the kernel keeps with ``rows``-row blocks (B is packed per call).

    >>> round(kernel_efficiency(2048, MachineModel()), 3), round(kernel_efficiency(64, MachineModel()), 3)
    (0.99, 0.762)
    """
    return rows / (rows + model.pack_rows)


def _estimate_seconds(
    m: int, n: int, k: int, tm: int, tn: int, splits: int, slots: int,
    a: MatrixLayout, b: MatrixLayout, itemsize: int, model: MachineModel, rows: int | None = None,
    symmetric: bool = False, mapped: tuple[bool, bool] = (False, False), blocks_efficiency: float = 1.0,
) -> float:
    """Wall time of the plan under the cost model: waves of equal tasks over the slots.

    A task computes at the kernel's rate for its row block, and reads its panels at the read
    rate: the reader thread overlaps the kernel, but on a worker with one core per thread it
    takes that core's time, so the two add up. A split-k tile then moves and sums its partials.
    """
    tm, tn = min(tm, m), min(tn, n)
    tiles = _tile_count(m, n, tm, tn, symmetric)
    units = tiles * splits
    waves = -(-units // slots)
    k_piece = k / splits
    efficiency = kernel_efficiency(min(rows or model.kernel_rows, tm), model) * blocks_efficiency
    per_task = (
        2 * tm * tn * k_piece / model.flops_per_thread / efficiency
        + tm * k_piece * a.itemsize / model.read_rate("mapped" if mapped[0] else a.source)
        + k_piece * tn * b.itemsize / model.read_rate("mapped" if mapped[1] else b.source)
        + model.task_overhead_seconds
    )
    tile_bytes = tm * tn * itemsize
    write = tile_bytes / model.write_bytes_per_second
    reduce = 0.0
    if splits > 1:
        levels = math.ceil(math.log(splits, model.reduce_fan_in))
        fan_in = min(splits, model.reduce_fan_in)
        # Each level moves fan_in - 1 partials to the reducing task and sums fan_in of them;
        # the tiles' reduces share the slots.
        per_level = ((fan_in - 1) * tile_bytes / model.transfer_bytes_per_second
                     + fan_in * tile_bytes / model.read_bytes_per_second + model.task_overhead_seconds)
        reduce = levels * per_level * -(-tiles // slots)
    return waves * (per_task + write) + reduce


#: Chunk edge assumed by :func:`plan_for_shape` when no chunks are given (128 MiB of float64).
DEFAULT_CHUNK = 4096


def shape_layouts(
    m: int, n: int, k: int, *, dtype: str = "float64",
    chunks: int | tuple[int, ...] | None = None,
) -> tuple[MatrixLayout, MatrixLayout]:
    """Layouts of A (m×k) and B (k×n) for planning from shapes alone (no arrays needed).

    ``chunks`` is one edge for every dimension, ``(cm, ck)`` (B's chunks are then
    ``(ck, cm)``), or ``(cm, ck, cn)``; by default :data:`DEFAULT_CHUNK`, capped by each size.

    >>> a, b = shape_layouts(10_000, 300, 50_000, chunks=(1000, 2000, 500))
    >>> a.chunks, b.chunks
    ((1000, 2000), (2000, 300))
    """
    import numpy as np

    if chunks is None:
        cm = ck = cn = DEFAULT_CHUNK
    elif isinstance(chunks, int):
        cm = ck = cn = chunks
    elif len(chunks) == 2:
        cm, ck = chunks
        cn = cm
    elif len(chunks) == 3:
        cm, ck, cn = chunks
    else:
        raise ValueError(f"chunks must be one size, (cm, ck) or (cm, ck, cn); got {chunks!r}")
    if min(m, n, k) < 1 or min(cm, ck, cn) < 1:
        raise ShapeError(f"sizes and chunks must be at least 1; got shape {m}×{n}×{k}, chunks {cm, ck, cn}")
    item = np.dtype(dtype)
    a = MatrixLayout((m, k), (min(cm, m), min(ck, k)), item.itemsize, item.name)
    b = MatrixLayout((k, n), (min(ck, k), min(cn, n)), item.itemsize, item.name)
    return a, b


def plan_for_shape(
    m: int, n: int, k: int, *, workers: int, threads: int, memory_per_worker: int,
    dtype: str = "float64", chunks: int | tuple[int, ...] | None = None,
    model: MachineModel | None = None,
) -> Plan:
    """Plan C (m×n) = A (m×k) · B (k×n) for a cluster one may not have, from sizes alone.

    >>> p = plan_for_shape(10**6, 10**6, 10**6, workers=1024, threads=1, memory_per_worker=64 * 10**9)
    >>> p.tiles >= 1024, p.tasks == p.tiles, p.traffic_ratio >= 1
    (True, True, True)
    """
    a, b = shape_layouts(m, n, k, dtype=dtype, chunks=chunks)
    return make_plan(a, b, dtype=a.dtype, itemsize=a.itemsize, workers=workers, threads=threads,
                     memory_per_worker=memory_per_worker, model=model)


def check_matrix(name: str, shape: tuple[int, ...]) -> None:
    """Refuse an operand that is not a non-empty 2-D matrix, naming it and its shape."""
    if len(shape) != 2:
        raise ShapeError(
            f"{name} has {len(shape)} dimension(s) (shape {tuple(shape)}); blockdist multiplies 2-D matrices"
        )
    if min(shape) < 1:
        raise ShapeError(f"{name} is empty (shape {tuple(shape)}); every dimension must be ≥ 1")


def check_shapes(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> None:
    """Refuse operands that cannot be multiplied, naming both shapes."""
    check_matrix("A", a_shape)
    check_matrix("B", b_shape)
    if a_shape[1] != b_shape[0]:
        raise ShapeError(
            f"inner dimensions differ: A is {a_shape[0]}×{a_shape[1]} and B is "
            f"{b_shape[0]}×{b_shape[1]}; A's columns ({a_shape[1]}) must equal B's rows ({b_shape[0]})"
        )
