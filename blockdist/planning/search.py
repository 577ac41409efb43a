"""Choose how to split C = A·B into tasks: the candidate search (pure).

Every tile shape made of whole chunks is a candidate (:func:`candidate_sizes` along each
axis), with k split when there are fewer tiles than threads, and each way of reading the
operands (:meth:`MachineModel.mapping_choices`). A candidate is kept only if its projected
memory (:mod:`blockdist.planning.memory`) fits the per-task budget with the tallest kernel
block and deepest panels that fit; the cost model (:mod:`blockdist.planning.cost`) prices each,
and of those within ``traffic_slack`` of the fastest the one whose busiest worker moves
least wins (:func:`choose`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from ..errors import MemoryBudgetError, PlanError
from .cost import Problem, TaskShape, estimate_seconds, estimate_traffic, working_tiles
from .grid import tile_count
from .layout import MatrixLayout, check_inner, shape_layouts
from .memory import WORKER_BASELINE, PanelRead, TaskMemory, task_memory
from .model import ClusterShape, MachineModel
from .plan import OperandPlan, Plan, Strategy
from .units import format_size

#: The shortest kernel block the planner falls back to when memory is short.
MIN_KERNEL_ROWS = 64


class Candidate(NamedTuple):
    """A way to run the product that fits the budget, and what the cost model says of it."""

    seconds: float
    shape: TaskShape
    a_depth: int
    b_depth: int
    memory: TaskMemory
    traffic: float  #: bytes the busiest worker moves

    def key(self) -> tuple[float, int]:
        return self.seconds, -self.shape.tile_rows * self.shape.tile_cols


def choose(candidates: list[Candidate], slack: float) -> Candidate:
    """The candidate that moves least among those within ``slack`` of the fastest; the faster,
    then the larger tile, of equals."""
    fastest = min(c.seconds for c in candidates)
    near = [c for c in candidates if c.seconds <= fastest * (1 + slack)]
    return min(near, key=lambda c: (round(c.traffic), *c.key()))


def candidate_sizes(length: int, chunk: int) -> list[int]:
    """Tile sizes to try along one axis: multiples of the chunk, including near-even splits.

    >>> candidate_sizes(10, 4)
    [4, 8, 10]
    """
    chunks = -(-length // chunk)
    multiples = set(range(1, min(chunks, 16) + 1))
    multiples |= {-(-chunks // parts) for parts in range(1, min(chunks, 64) + 1)}
    step = 16
    while step < chunks:
        multiples.add(step)
        step = int(step * 1.25) + 1
    return sorted({min(length, q * chunk) for q in multiples})


def kernel_row_options(preferred: int) -> list[int]:
    """Kernel row blocks to try, tallest first: the preferred one, then halves of it.

    >>> kernel_row_options(2048)
    [2048, 1024, 512, 256, 128, 64]
    """
    options = [max(1, preferred)]
    while options[-1] // 2 >= MIN_KERNEL_ROWS:
        options.append(options[-1] // 2)
    return options


def panel_depth(target: int, chunk: int, k: int) -> int:
    """A panel depth near ``target`` in whole chunks, within ``k``."""
    return min(k, max(chunk, round(target / chunk) * chunk))


def task_budget(cluster: ClusterShape) -> int:
    """Bytes one task may use: the worker's memory less its baseline, shared by its threads."""
    return (cluster.memory_per_worker - WORKER_BASELINE) // cluster.threads


def _memory(problem: Problem, shape: TaskShape, depths: tuple[int, int]) -> TaskMemory:
    a = PanelRead(depths[0], (problem.row_chunk, problem.a_kchunk), problem.a.itemsize, shape.a_mapped)
    b = PanelRead(depths[1], (problem.b_kchunk, problem.col_chunk), problem.b.itemsize, shape.b_mapped)
    partials = 0.0
    if shape.splits > 1:  # a band's reduce: the pieces it sums at once and their sum, on top of a held partial
        bands = problem.bands(shape)
        partials = (min(shape.splits, problem.model.reduce_fan_in) + 1) / bands
    return task_memory((shape.tile_rows, shape.tile_cols), a, b, itemsize=problem.itemsize,
                       scratch_rows=0 if problem.blas_kernel else min(shape.tile_rows, shape.kernel_rows),
                       partial_tiles=partials)


def _check_smallest_fits(problem: Problem, budget: int) -> None:
    """Refuse a budget too small for one output chunk with k-panels of one chunk, with the numbers."""
    rows = kernel_row_options(problem.model.kernel_rows)[-1]
    shape = TaskShape(problem.row_chunk, problem.col_chunk, 1, rows)
    smallest = _memory(problem, shape, (problem.a_kchunk, problem.b_kchunk))
    if smallest.total <= budget:
        return
    cluster = problem.cluster
    needed = smallest.total * cluster.threads + WORKER_BASELINE
    raise MemoryBudgetError(
        f"a memory budget of {format_size(cluster.memory_per_worker)} per worker is too small: with "
        f"{cluster.threads} thread(s) per worker and {format_size(WORKER_BASELINE)} for the worker "
        f"itself, a task may use {format_size(max(budget, 0))}, but the smallest task "
        f"(one {problem.row_chunk}×{problem.col_chunk} output chunk, k-panels of one chunk) needs "
        f"{format_size(smallest.total)} ({smallest.describe()}). Give at least "
        f"{format_size(needed)} per worker (--memory), or store the inputs with smaller chunks."
    )


def _splits(problem: Problem, tiles: int) -> list[int]:
    """Ways to cut k for this many tiles: not at all, or into enough ranges to fill the slots
    once, twice or three times (large resident tiles over a k-split grid move less than many
    thin tiles each streaming all of k)."""
    slots = problem.cluster.slots
    if tiles == 0 or tiles >= slots or problem.k <= problem.a_kchunk:  # 0: every block product absent
        return [1]
    most = -(-problem.k // problem.a_kchunk)
    return [1, *sorted({s for s in (-(-w * slots // tiles) for w in (1, 2, 3)) if 1 < s <= most})]


def _fitting(problem: Problem, shape: TaskShape, budget: int) -> Candidate | None:
    """The candidate of this cut with the tallest kernel block, then the deepest panels, that fit."""
    model, k_piece = problem.model, -(-problem.k // shape.splits)
    # A mapped operand's panels are one chunk deep: its chunk files are the panels. So are both
    # operands' where blocks are absent: a panel then skips exactly the chunks that are.
    one_chunk = (shape.a_mapped or problem.zero_blocks, shape.b_mapped or problem.zero_blocks)
    preferred = (problem.a_kchunk if one_chunk[0] else panel_depth(model.panel_depth, problem.a_kchunk, k_piece),
                 problem.b_kchunk if one_chunk[1] else panel_depth(model.panel_depth, problem.b_kchunk, k_piece))
    for rows in kernel_row_options(model.kernel_rows):
        for depths in (preferred, (problem.a_kchunk, problem.b_kchunk)):
            fitted = shape._replace(kernel_rows=rows)
            memory = _memory(problem, fitted, depths)
            if memory.total <= budget:
                fitted = fitted._replace(kernel_rows=min(rows, shape.tile_rows))
                return Candidate(estimate_seconds(problem, fitted), fitted, *depths, memory,
                                 estimate_traffic(problem, fitted))
    return None


def _candidates(problem: Problem, budget: int) -> Iterator[Candidate]:
    model = problem.model
    for tm in candidate_sizes(problem.m, problem.row_chunk):
        for tn in [tm] if problem.symmetric else candidate_sizes(problem.n, problem.col_chunk):
            if tm * tn * problem.itemsize > budget:
                continue  # the C tile alone does not fit
            a_ways = model.mapping_choices(problem.a.source, problem.a.chunks, -(-tm // problem.a.chunks[0]),
                                           problem.blas_kernel)
            b_ways = model.mapping_choices(problem.b.source, problem.b.chunks, -(-tn // problem.b.chunks[1]),
                                           problem.blas_kernel)
            ways = sorted(((ma, mb, ea * eb) for (ma, ea), (mb, eb) in itertools.product(a_ways, b_ways)),
                          key=lambda way: -way[2])
            tiles = working_tiles(problem, tm, tn)
            for splits, (a_mapped, b_mapped, efficiency) in itertools.product(_splits(problem, tiles), ways):
                shape = TaskShape(tm, tn, splits, model.kernel_rows, a_mapped, b_mapped, efficiency)
                candidate = _fitting(problem, shape, budget)
                if candidate is not None:
                    yield candidate


def _reason(problem: Problem, best: Candidate, fastest: float, fastest_traffic: float) -> str:
    shape, slots = best.shape, problem.cluster.slots
    tiles = tile_count(problem.m, problem.n, shape.tile_rows, shape.tile_cols, problem.symmetric)
    working = working_tiles(problem, shape.tile_rows, shape.tile_cols)
    if working < tiles:
        return _present_reason(problem, best, tiles, working)
    if shape.splits > 1:
        reason = (f"{tiles} output tile(s) for {slots} threads, so k is cut in {shape.splits} ranges whose "
                  f"partial tiles a reduce-scatter sums band by band")
    else:
        reason = f"{tiles} output tile(s) for {slots} threads, each streaming all of k"
    if best.seconds > fastest * 1.005:
        reason += (f"; {best.seconds / fastest - 1:.0%} slower than the fastest cut found, which moves "
                   f"{fastest_traffic / best.traffic:.2f}× the bytes per worker")
    if problem.symmetric:
        reason += "; symmetric: only tiles on and above the diagonal, mirrored below it"
    return reason


def _present_reason(problem: Problem, best: Candidate, tiles: int, working: int) -> str:
    shape, slots = best.shape, problem.cluster.slots
    reason = f"{working} of {tiles} output tile(s) have present block products, for {slots} threads"
    if shape.splits > 1:
        reason += f"; k is cut in {shape.splits} ranges, each computed only where it has present pairs"
    return reason + "; the others are absent (0) and cost nothing"


def make_plan(a: MatrixLayout, b: MatrixLayout, cluster: ClusterShape, *, dtype: str,
              model: MachineModel | None = None, symmetric: bool = False,
              blas_kernel: bool | None = None, free_out_rows: bool = True) -> Plan:
    """Plan C = A·B (``a`` and ``b`` the logical layouts of op(A) and op(B)) for ``cluster``.

    ``symmetric`` plans a product known to be symmetric (A·Aᵀ): square tiles, and only those
    on and above the diagonal. ``blas_kernel`` says the kernel adds into C through BLAS,
    with no scratch block (by default: for floating-point and complex results).
    ``free_out_rows`` lets a split-k plan cut the output's row chunks finer than A's, so
    that its reduce-scatter has a band for every k-range (False: the output's chunks are given).

    >>> a = MatrixLayout((4096, 4096), (512, 512), 8)
    >>> p = make_plan(a, a, ClusterShape(workers=2, threads=1, memory_per_worker=2 * 2**30), dtype="float64")
    >>> str(p.strategy), p.tiles >= 2, p.memory.total <= p.task_budget
    ('stream', True, True)
    """
    model = model or MachineModel()
    result = np.dtype(dtype)
    if blas_kernel is None:
        blas_kernel = result.kind in "fc"
    blas_kernel = blas_kernel and model.blas
    check_inner("A", a.shape, "B", b.shape)
    if cluster.workers < 1 or cluster.threads < 1:
        raise PlanError(f"workers and threads must be at least 1, got {cluster.workers} and {cluster.threads}")
    problem = Problem(a, b, result.itemsize, cluster, model, symmetric, blas_kernel, free_out_rows, result.name)
    if symmetric and (problem.m != problem.n or problem.row_chunk != problem.col_chunk):
        raise PlanError(f"a symmetric product needs a square result with square chunks, got "
                        f"{problem.m}×{problem.n} in chunks of {problem.row_chunk}×{problem.col_chunk}")
    budget = task_budget(cluster)
    _check_smallest_fits(problem, budget)
    candidates = list(_candidates(problem, budget))
    best = choose(candidates, model.traffic_slack)
    quickest = min(candidates, key=Candidate.key)
    shape = best.shape
    return Plan(
        a=OperandPlan(a, best.a_depth, shape.a_mapped), b=OperandPlan(b, best.b_depth, shape.b_mapped),
        dtype=result.name, itemsize=result.itemsize,
        strategy=Strategy.SPLIT_K if shape.splits > 1 else Strategy.STREAM, reason=_reason(problem, best, quickest.seconds, quickest.traffic),
        tile_rows=shape.tile_rows, tile_cols=shape.tile_cols, k_splits=shape.splits,
        out_chunks=(problem.out_rows(shape), problem.col_chunk), kernel_rows=shape.kernel_rows,
        workers=cluster.workers, threads=cluster.threads, memory_per_worker=cluster.memory_per_worker,
        task_budget=budget, memory=best.memory, reduce_fan_in=model.reduce_fan_in, symmetric=symmetric,
        blas_kernel=blas_kernel, blocks_efficiency=shape.blocks_efficiency, model=model,
    )


def plan_for_shape(m: int, n: int, k: int, cluster: ClusterShape, *, dtype: str = "float64",
                   chunks: int | tuple[int, ...] | None = None, model: MachineModel | None = None) -> Plan:
    """Plan C (m×n) = A (m×k) · B (k×n) for a cluster one may not have, from sizes alone.

    >>> p = plan_for_shape(10**6, 10**6, 10**6, ClusterShape(1024, 1, 64 * 10**9))
    >>> p.tiles * p.k_splits, p.k_splits, round(p.traffic_ratio, 2)  # a 16 × 16 × 4 grid of block products
    (1024, 4, 1.26)
    """
    a, b = shape_layouts(m, n, k, dtype=dtype, chunks=chunks)
    return make_plan(a, b, cluster, dtype=a.dtype, model=model)
