"""Top-k similarity as a job: for each row of Q (m×d), the k rows of C (n×d) with the largest
dot products, without ever storing the m×n product S = Q·Cᵀ.

::

    check_topk ──► plan_of ──────────────► prepare_topk ──► start_topk ──► TopkJob
    Q, C opened     S planned as a product   manifest,        group created, graph of tile,
    read-only, k,   (transpose_b), then the  graph of the     merge and write tasks submitted
    shapes, out     merges around it         product's tiles  (worker/topk.py)
    └──────────────── topk_prepare.py ─────────────────────┘  this module     topk_job.py

Every check on the input runs before anything is written. The output is a Zarr v3 group
with ``indices`` (int64, m×k) and ``scores`` (m×k, the product's dtype), created with the
job's manifest and workload record (:mod:`.workload`) in the attributes of the group and both
arrays (status ``running``); rows are written block by block as their merges finish, finished
tiles are recorded as their blocks are written, and the record's status turns ``complete``
only once every row is written. Candidates wait
in worker memory for their merge, so an interrupted job is not resumed: it starts again
(``overwrite``).
"""

from __future__ import annotations

import contextlib
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from ..planning.grid import reduce_levels
from ..planning.topk import TopkPlan
from ..planning.writes import Region, WriteUnit, check_writes
from ..storage import open_input, output_compressors
from ..storage.groups import create_topk
from ..worker.tasks import add_stats, partial_tile, sum_partials, take_band
from ..worker.topk import TopkOutput, merge, select_sum, stack_rows, take_rows, topk_tile, write_best
from . import dashboard, settings
from .credentials import shared_credentials
from .graph import Graph
from .lease import Lease
from .progress import ProgressLog
from .request import Options
from .topk_job import TopkJob, initial_attributes
from .topk_prepare import PreparedTopk, check_topk, prepare_topk

if TYPE_CHECKING:
    from distributed import Client, Future


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
    attributes = initial_attributes(product.manifest, prepared.topk.k)
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


__all__ = ["TopkJob", "start_topk", "submit_graph", "submit_topk"]
