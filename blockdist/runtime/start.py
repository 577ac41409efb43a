"""Start a prepared product on a cluster, and the whole way from a request to a running job.

:func:`start` is the first step that writes: the output with its full metadata and manifest
(or, resuming or updating in place, the manifest of the existing one), the staging array
and tile markers of an in-place update, then the graph inside a ``blockdist-<token>`` span.
:func:`submit` runs :func:`~.prepare.check`, :func:`~.prepare.prepare` and :func:`start`
against the caller's cluster, a scheduler address, or a local cluster it starts and the job
shuts down when it ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from ..storage import (
    Array,
    create_output,
    create_scratch,
    locate,
    open_for_update,
    output_compressors,
    save_attributes,
)
from ..storage.interop import remove_scratch, scratch_folder
from ..storage.partials import remove_partials, stage_partials
from . import dashboard
from .cluster import connect, local_shape, shape_of
from .credentials import shared_credentials
from .graph import Graph
from .job import Job
from .lease import Lease
from .manifest import KEY
from .prepare import OutputMode, PreparedProduct, check, memory_budget, prepare
from .progress import ProgressLog
from .request import Options, Request

if TYPE_CHECKING:
    from distributed import Client

    from ..planning import ClusterShape


def _staging(prepared: PreparedProduct, array: Array) -> tuple[Graph, Callable[[], None]]:
    """The staging array and tile markers of an in-place update, beside the output; kept until
    the job completes so that a resumed job finds what was staged."""
    assert prepared.out.local_path is not None
    scratch = scratch_folder(prepared.out.local_path)
    stage, markers = scratch / "stage.zarr", scratch / "markers.zarr"
    create_scratch(stage, shape=array.shape, chunks=array.chunks, dtype=array.dtype)
    create_scratch(markers, shape=(prepared.plan.grid.numbers,), chunks=(1,), dtype="int8")
    graph = prepared.graph
    finish = replace(graph.finish, stage=locate(stage), markers=locate(markers))
    return replace(graph, finish=finish), lambda: (remove_scratch(stage), remove_scratch(markers))


def _staged_partials(prepared: PreparedProduct, graph: Graph) -> tuple[Graph, Callable[[], None] | None]:
    """With ``partials="storage"``, the scratch arrays of a split-k plan's partials beside the
    output: an interrupted job's are kept for its resume, others made anew."""
    plan = prepared.plan
    if plan.k_splits <= 1 or prepared.checked.request.options.resolved("partials") != "storage":
        return graph, None
    layout = {"tile_rows": plan.tile_rows, "tile_cols": plan.tile_cols, "k_edges": plan.k_edges,
              "shape": list(plan.shape), "dtype": plan.dtype}
    staged = stage_partials(prepared.out, splits=plan.k_splits, shape=plan.shape, chunks=plan.out_chunks,
                            dtype=plan.dtype, tiles=plan.grid.numbers, layout=layout,
                            keep=prepared.checked.mode is OutputMode.RESUME)
    return replace(graph, staged=staged), lambda: remove_partials(staged)


def _output(prepared: PreparedProduct) -> Array:
    """The output array, with this job's manifest in its attributes."""
    attributes = {KEY: prepared.manifest.to_json()}
    if prepared.checked.mode is OutputMode.NEW:
        plan = prepared.plan
        options = prepared.checked.request.options
        compressors = output_compressors(options.out_compressors, prepared.checked.operands.a_array)
        return create_output(prepared.out, shape=plan.shape, chunks=plan.out_chunks, dtype=plan.dtype,
                             overwrite=options.overwrite, attributes=attributes, shards=plan.out_shards,
                             compressors=compressors)
    array = open_for_update(prepared.out)
    assert array is not None, "checked: the output exists"
    return save_attributes(prepared.out, array, attributes)


def start(prepared: PreparedProduct, client: Client, owned: contextlib.ExitStack) -> Job:
    """Create the output and submit the graph; the job closes ``owned`` when it ends."""
    from distributed import span

    lease = Lease(prepared.out, prepared.token, prepared.plan.product or "A·B",
                  force=prepared.checked.request.options.force)
    owned.callback(lease.release)
    array = _output(prepared)
    graph, removals = prepared.graph, []
    if prepared.checked.in_place:
        graph, remove_stage = _staging(prepared, array)
        removals.append(remove_stage)
    graph, remove_partials_after = _staged_partials(prepared, graph)
    if remove_partials_after is not None:
        removals.append(remove_partials_after)
    owned.enter_context(shared_credentials(client, graph.refs(), prepared.token))
    progress = ProgressLog(prepared.token, prepared.plan.tile_flops(), prepared.manifest.done)
    progress.subscribe(client)  # before the first task can send
    if dashboard.register(client):
        client.log_event(dashboard.JOB_TOPIC, dashboard.job_event(prepared.token, prepared.plan, prepared.manifest.done))
    with span(f"blockdist-{prepared.token}"):
        futures = graph.submit(client, prepared.token, skip=prepared.manifest.done)

    def remove_scratch_arrays() -> None:
        for remove in removals:
            remove()

    return Job(prepared, array, client, futures, owned, remove_scratch_arrays if removals else None, progress,
               lease)


Prepared = TypeVar("Prepared")
Started = TypeVar("Started")


def start_on_cluster(checked: Any, options: Options, prepare_for: Callable[[ClusterShape], Prepared],
                     start_with: Callable[[Prepared, Client, contextlib.ExitStack], Started]) -> Started:
    """Plan a checked request for its cluster and start it there: a local cluster is planned for
    before any process starts, a given one once connected. The job closes what this opened
    (and discards what checking made); a failure before the start closes it at once."""
    owned = contextlib.ExitStack()
    owned.callback(checked.discard)
    try:
        budget = memory_budget(options.resolved("memory"))
        if options.client is None:
            local = local_shape(options.workers, options.threads, budget)
            prepared = prepare_for(local)
            client = owned.enter_context(connect(None, local, options.security))
        else:
            client = owned.enter_context(connect(options.client, None, options.security, options.connect_timeout))
            prepared = prepare_for(shape_of(client, budget))
        return start_with(prepared, client, owned)
    except BaseException:
        owned.close()
        raise


def submit(request: Request) -> Job:
    """Check, prepare and start ``request``, on a local cluster unless it names one."""
    checked = check(request)
    return start_on_cluster(checked, request.options, lambda cluster: prepare(checked, cluster), start)
