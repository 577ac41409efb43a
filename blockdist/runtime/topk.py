"""Top-k similarity as a job: for each row of Q (m×d), the k rows of C (n×d) with the largest
dot products, without ever storing the m×n product S = Q·Cᵀ.

::

    check_topk ──► plan_of ──────────────► prepare_topk ──► start_topk ──► TopkJob
    Q, C opened     S planned as a product   manifest,        group created, graph of tile,
    read-only, k,   (transpose_b), then the  graph of the     merge and write tasks submitted
    shapes, out     merges around it         product's tiles  (worker/topk.py)

Every check on the input runs before anything is written. The output is a Zarr v3 group
with ``indices`` (int64, m×k) and ``scores`` (m×k, the product's dtype), created with the
job's manifest in the attributes of the group and both arrays (status ``running``); rows are
written block by block as their merges finish, finished tiles are recorded as their blocks
are written, and ``topk.complete`` turns true only once every row is written. Candidates wait
in worker memory for their merge, so an interrupted job is not resumed: it starts again
(``overwrite``).
"""

from __future__ import annotations

import contextlib
import operator
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DtypeError, InputError, MemoryBudgetError, ShapeError
from ..planning import WORKER_BASELINE, ClusterShape, Plan, format_size, task_budget
from ..planning.grid import reduce_levels
from ..planning.topk import TopkPlan, plan_topk
from ..planning.writes import Region, WriteUnit, check_writes
from ..storage import ArrayRef, check_creatable, locate, open_input, output_compressors
from ..storage.groups import check_group_location, child, create_topk
from ..storage.interop import is_dask_array, remove_scratch
from ..worker.tasks import add_stats, partial_tile, sum_partials, take_band
from ..worker.topk import TopkOutput, merge, select_sum, stack_rows, take_rows, topk_tile, write_best
from . import dashboard, settings
from .cluster import local_shape
from .credentials import shared_credentials
from .graph import Graph
from .lease import Lease, check_free
from .manifest import KEY, Manifest
from .prepare import (
    Checked,
    OutputMode,
    PreparedProduct,
    _check_options,
    _graph,
    memory_budget,
    open_operands,
    plan_product,
)
from .progress import ProgressLog
from .request import Options, Request
from .topk_job import TOPK_KEY, TopkJob

if TYPE_CHECKING:
    from distributed import Client, Future




# --- check ---------------------------------------------------------------------------------
def _shape(x: Any, options: Options, role: str) -> tuple[int, ...]:
    if isinstance(x, np.ndarray) or is_dask_array(x) or hasattr(x, "shape"):
        return tuple(x.shape)
    return tuple(open_input(locate(x, storage_options=options.storage_options, role=role)).shape)


def _whole_number(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        try:
            return operator.index(k)
        except TypeError:
            raise InputError(f"topk: k must be a whole number, got {k!r}") from None
    return int(k)


def check_shapes(q_shape: tuple[int, ...], c_shape: tuple[int, ...], k: Any) -> int:
    """numpy's rules for ``Q @ C.T`` and 1 ≤ k ≤ n; returns k.

    >>> check_shapes((5, 8), (10, 8), 12)
    Traceback (most recent call last):
    ...
    blockdist.errors.InputError: topk: k = 12 but the corpus has only 10 rows; k must be between 1 and 10
    """
    for name, shape in (("queries", q_shape), ("corpus", c_shape)):
        if len(shape) != 2:
            raise ShapeError(f"topk: the {name} has {len(shape)} dimension(s) (shape {tuple(shape)}); topk "
                             f"takes 2-D matrices, queries m×d and a corpus n×d")
        if min(shape) < 1:
            raise ShapeError(f"topk: the {name} is empty (shape {tuple(shape)}); every dimension must be ≥ 1")
    if q_shape[1] != c_shape[1]:
        raise ShapeError(
            f"matmul: Input operand 1 has a mismatch in its core dimension 0, with gufunc signature "
            f"(n?,k),(k,m?)->(n?,m?) (size {c_shape[1]} is different from {q_shape[1]}): topk computes "
            f"queries · corpusᵀ, and the queries are {q_shape[0]}×{q_shape[1]}, the corpus "
            f"{c_shape[0]}×{c_shape[1]}; "
            "both need the same number of columns")
    k = _whole_number(k)
    n = c_shape[0]
    if k > n:
        raise InputError(f"topk: k = {k} but the corpus has only {n} row{'s' * (n != 1)}; k must be between "
                         f"1 and {n}")
    if k < 1:
        raise InputError(f"topk: k = {k}; k must be between 1 and {n}")
    return k


def check_topk(queries: Any, corpus: Any, k: Any, out: Any, options: Options) -> tuple[Checked, int]:
    """Every check of a top-k request that needs no cluster; nothing the user owns is written.
    ``out`` None: only planning."""
    if options.resume:
        raise InputError("topk: resume is not supported: a top-k job keeps its candidates in worker memory "
                         "until they are merged, so an interrupted one starts again; run it with --overwrite "
                         "(overwrite=True)")
    request = Request(queries, corpus, out, replace(options, transpose_b=True))
    _check_options(request)
    k = check_shapes(_shape(queries, options, "a"), _shape(corpus, options, "b"), k)
    out_ref = None if out is None else locate(out, storage_options=options.storage_options, role="out")
    if out_ref is not None:
        check_creatable(out_ref)
    operands = open_operands(request, out_ref)
    try:
        if operands.dtype.kind == "c":
            raise DtypeError(f"topk: the scores Q·Cᵀ would be {operands.dtype}; topk ranks real scores "
                             f"(integer or float inputs)")
        if out_ref is not None:
            check_group_location(out_ref, [operands.a, operands.b], overwrite=options.overwrite)
            check_free(out_ref, options.force)
            output_compressors(options.out_compressors, None)  # an unknown codec name is refused now
    except BaseException:
        remove_scratch(operands.scratch)
        raise
    return Checked(request, operands, out_ref, OutputMode.NEW), k


# --- plan ----------------------------------------------------------------------------------
def plan_of(checked: Checked, cluster: ClusterShape, k: int) -> TopkPlan:
    """S's plan with room for what top-k adds to a tile task (its candidates and the ranking's
    workspace): planned again for a smaller share of the budget while a tile task would not fit."""
    budget = task_budget(cluster)
    share = 1.0
    for _ in range(12):
        usable = int(budget * share)
        shape = replace(cluster, memory_per_worker=WORKER_BASELINE + usable * cluster.threads)
        try:
            product = _named(plan_product(checked, shape))
        except MemoryBudgetError:
            if share == 1.0:
                raise  # the product's own smallest task does not fit: its message says by how much
            break
        planned = plan_topk(product, k, budget)
        if planned.tile_memory <= budget:
            return planned
        share *= 0.95 * budget / planned.tile_memory
    raise MemoryBudgetError(
        f"topk: a tile task with k = {k} needs at least {format_size(planned.tile_memory)} (the product's "
        f"{format_size(planned.plan.memory.total)} + candidates {format_size(planned.candidates_bytes)} + "
        f"ranking "
        f"{format_size(planned.select_bytes)}), and a task may use {format_size(budget)}; give more memory "
        "(--memory) or ask for a smaller k")


def _named(plan: Plan) -> Plan:
    return replace(plan, a=replace(plan.a, name="Q"), b=replace(plan.b, name="Cᵀ"), product="Q·Cᵀ")


@dataclass(frozen=True)
class PreparedTopk:
    """A checked top-k request with its plans, manifest and the product's graph."""

    product: PreparedProduct  #: S's: checked request, plan, manifest, graph, token
    topk: TopkPlan

    @property
    def out(self) -> ArrayRef:
        return self.product.out

    @property
    def indices(self) -> ArrayRef:
        return child(self.out, "indices")

    @property
    def scores(self) -> ArrayRef:
        return child(self.out, "scores")


def prepare_topk(checked: Checked, cluster: ClusterShape, k: int) -> PreparedTopk:
    from uuid import uuid4

    planned = plan_of(checked, cluster, k)
    plan, token = planned.plan, uuid4().hex[:12]
    operands = checked.operands
    manifest = Manifest(token, operands.identity(True), operands.identity(False), plan,
                        operation={"topk": k, "transpose_b": True})
    graph = replace(_graph(checked, plan), job=token)
    return PreparedTopk(PreparedProduct(checked, plan, manifest, graph, token), planned)


# --- graph ---------------------------------------------------------------------------------
def _tree(client: Client, name: str, level: list[Future], fan_in: int, combine: Any, root: Any, *args: Any,
          retries: int) -> Future:
    """``combine`` ``level``'s pieces ``fan_in`` at a time; ``root(*args, *last)`` ends the tree."""
    *inner, _ = reduce_levels(len(level), fan_in) or [[]]
    for depth, groups in enumerate(inner):
        level = [client.submit(combine, *level[lo:hi], key=f"{name}-{depth}-{lo}", pure=False,
                               retries=retries) for lo, hi in groups]
    return client.submit(root, *args, *level, key=f"{name}-root", pure=False, retries=retries)


def _tile_candidates(client: Client, graph: Graph, token: str, k: int, retries: int
                     ) -> dict[tuple[int, int], Future]:
    """A future of each tile's candidates: ranked by its task, or by the roots of its split-k reduce."""
    plan, found = graph.plan, {}
    for tile, pieces in graph.tile_tasks():
        name = f"{token}-{tile.i}-{tile.j}"
        if len(pieces) == 1:
            found[tile.i, tile.j] = client.submit(topk_tile, pieces[0], k, key=f"blockdist-topk-{name}",
                                                  pure=False, retries=retries)
            continue
        partials = [client.submit(partial_tile, piece, key=f"blockdist-partial-{name}-{s}", pure=False,
                                  retries=retries) for s, piece in enumerate(pieces)]
        edges = plan.band_edges(tile)
        roots = []
        for band, (lo, hi) in enumerate(pairwise(edges)):
            cut = partials if len(edges) == 2 else [
                client.submit(take_band, part, lo, hi, band == 0, key=f"blockdist-band-{name}-{band}-{s}",
                              pure=False, retries=retries) for s, part in enumerate(partials)]
            roots.append(_tree(client, f"blockdist-reduce-{name}-{band}", cut, plan.reduce_fan_in,
                               sum_partials, select_sum, k, tile.cols[0], retries=retries))
        found[tile.i, tile.j] = roots[0] if len(roots) == 1 else client.submit(
            stack_rows, *roots, key=f"blockdist-reduce-{name}-rows", pure=False, retries=retries)
    return found


def submit_graph(client: Client, prepared: PreparedTopk) -> tuple[dict[Future, int], dict[int, list[int]]]:
    """Submit every task; returns the future of each row tile's written rows (its figures), by
    row tile, and the tile numbers of each row tile."""
    planned, graph, token = prepared.topk, prepared.product.graph, prepared.product.token
    plan, k, retries = planned.plan, planned.k, settings.get("retries")
    candidates = _tile_candidates(client, graph, token, k, retries)
    rows, cols = plan.grid.shape
    indices, scores = prepared.indices, prepared.scores
    futures: dict[Future, int] = {}
    for i in range(rows):
        r0 = plan.grid.row_edges[i]
        blocks = merge_blocks(planned, i)
        written = []
        for block, (lo, hi) in enumerate(blocks):
            parts = [candidates[i, j] for j in range(cols)]
            if len(blocks) > 1:
                parts = [client.submit(take_rows, part, lo - r0, hi - r0, block == 0,
                                       key=f"blockdist-rows-{token}-{i}-{j}-{block}", pure=False,
                                       retries=retries)
                         for j, part in enumerate(parts)]
            output = TopkOutput(indices, scores, (lo, hi))
            written.append(_tree(client, f"blockdist-merge-{token}-{i}-{block}", parts, planned.fan_in,
                                 _merger(k), write_best, output, k, retries=retries))
        done = written[0] if len(written) == 1 else client.submit(
            add_stats, *written, key=f"blockdist-merge-{token}-{i}-done", pure=False, retries=retries)
        futures[done] = i
    return futures, {i: [plan.grid.number(i, j) for j in range(cols)] for i in range(rows)}


def merge_blocks(planned: TopkPlan, i: int) -> list[tuple[int, int]]:
    """The rows of ``indices`` and ``scores`` each merge of row tile ``i`` writes."""
    r0, r1 = planned.plan.grid.row_edges[i], planned.plan.grid.row_edges[i + 1]
    return [(lo, min(lo + planned.merge_rows, r1)) for lo in range(r0, r1, planned.merge_rows)]


def check_merge_writes(prepared: PreparedTopk) -> None:
    """Refuse merges that would write part of a chunk of ``indices`` or ``scores``, or one chunk
    between two (:func:`~blockdist.planning.writes.check_writes`), as the arrays are stored."""
    planned = prepared.topk
    regions = [Region(f"the merge of rows {lo}:{hi}", (lo, hi), (0, planned.k))
               for i in range(planned.plan.grid.shape[0]) for lo, hi in merge_blocks(planned, i)]
    for ref in (prepared.indices, prepared.scores):
        array = open_input(ref)
        shards = tuple(array.shards) if array.shards else None
        check_writes(str(ref), WriteUnit(tuple(array.shape), tuple(array.chunks), shards), regions)  # type: ignore[arg-type]


def _merger(k: int) -> Any:
    from functools import partial

    return partial(merge, k)


def start_topk(prepared: PreparedTopk, client: Client, owned: contextlib.ExitStack) -> TopkJob:
    """Create the output group (the manifest first, status running) and submit the graph."""
    from distributed import span

    product = prepared.product
    options = product.checked.request.options
    lease = Lease(prepared.out, product.token, f"top-{prepared.topk.k} of Q·Cᵀ", force=options.force)
    owned.callback(lease.release)
    attributes = {KEY: product.manifest.to_json(), TOPK_KEY: {"k": prepared.topk.k, "complete": False,
                                                              "rows_written": 0, "rows": product.plan.m}}
    create_topk(prepared.out, rows=product.plan.m, k=prepared.topk.k, chunk_rows=prepared.topk.merge_rows,
                dtype=product.plan.dtype, overwrite=options.overwrite, attributes=attributes,
                compressors=output_compressors(options.out_compressors, product.checked.operands.a_array))
    check_merge_writes(prepared)
    graph = product.graph
    owned.enter_context(shared_credentials(client, [graph.a.ref, graph.b.ref, prepared.out, prepared.indices,
                                                    prepared.scores], product.token))
    progress = ProgressLog(product.token, product.plan.tile_flops())
    progress.subscribe(client)
    if dashboard.register(client):
        client.log_event(dashboard.JOB_TOPIC, dashboard.job_event(product.token, product.plan, set()))
    with span(f"blockdist-{product.token}"):
        futures, band_tiles = submit_graph(client, prepared)
    return TopkJob(prepared, client, futures, band_tiles, owned, progress, lease)


def submit_topk(queries: Any, corpus: Any, k: Any, out: Any, options: Options) -> TopkJob:
    """Check, plan and start a top-k job, on a local cluster unless the options name one."""
    from .start import start_on_cluster

    checked, k = check_topk(queries, corpus, k, out, options)
    return start_on_cluster(checked, options, lambda cluster: prepare_topk(checked, cluster, k), start_topk)


def plan_only(queries: Any, corpus: Any, k: Any, out: Any, options: Options) -> TopkPlan:
    """The plan :func:`submit_topk` would follow on a local cluster of these options (nothing runs)."""
    checked, k = check_topk(queries, corpus, k, out, options)
    try:
        return plan_of(checked, local_shape(options.workers, options.threads,
                                            memory_budget(options.resolved("memory"))), k)
    finally:
        checked.discard()


__all__ = ["PreparedTopk", "TopkJob", "check_shapes", "check_topk", "plan_of", "plan_only", "prepare_topk",
           "start_topk", "submit_graph", "submit_topk"]
