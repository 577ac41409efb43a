"""A randomized SVD or PCA checked and planned, or a failed one found resumable
(:func:`prepare_sketch`), before anything is written; :mod:`.svd` runs it.

A's shape and dtype, the rank, oversampling, power iterations and seed, and the output are
checked; the products with A are planned for the cluster. A resumed run must find the output's
workload record of the same workload, A as it was (its fingerprint), the same parameters (a seed
not given is the first run's) and what its finished passes left in the scratch group beside the
output (``.OUT.blockdist-svd/pass-N/``: :data:`KEPT`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import InputError, ResumeError
from ..planning import ClusterShape, MatrixLayout, make_plan
from ..planning.operation import logical
from ..planning.presence import StoredChunks
from ..planning.sketch import SketchParameters, SketchPlan, check_sketch, keep_decision
from ..planning.sparse import Runs, stored_runs
from ..storage import (
    ArrayRef,
    check_creatable,
    check_output_location,
    fingerprint,
    layout_of,
    locate,
    open_input,
    stored_attributes,
)
from ..storage.listing import list_stored
from ..storage.partials import scratch_beside
from .cluster import local_shape
from .lease import check_free
from .prepare import check_new_output, memory_budget
from .request import Options
from .workload import WorkloadRecord, read_record

SCRATCH_SUFFIX = ".blockdist-svd"
#: Rows of a band task: its band of a sketch stays under this many bytes.
BAND_BYTES = 64 * 2**20
#: What each pass over A leaves in the scratch group (``pass-N/NAME.zarr``) for the passes after it.
KEPT = {"means": ("mean", "squares"), "range": ("q1", "w1", "q_sums"), "back": ("x",),
        "forward": ("q1", "w1", "q_sums"), "project": ("bt",)}



@dataclass(frozen=True)
class Prepared:
    plan: SketchPlan
    parameters: SketchParameters  #: as asked, the seed drawn (or, resumed, the first run's)
    a: ArrayRef
    a_identity: dict[str, str]  #: A's name and fingerprint
    out: ArrayRef
    dtype: np.dtype  #: of the sketches and the results
    band_rows: int
    cluster: ClusterShape | None
    resumed: WorkloadRecord | None = None  #: the record of the run this one continues
    a_chunk_rows: int = 1  #: rows of A's chunks (shards): kept blocks are whole ones
    #: which of A's chunks (shards) the listing found stored, and its fill value
    a_stored: StoredChunks | None = None

    def a_zeros(self) -> np.ndarray | None:
        """A bool per read unit of A stored, where the absent ones are zeros its tasks skip
        (``None``: every unit is read, as where all are stored or the fill value is not 0)."""
        return self.a_stored.zero_grid() if self.a_stored is not None else None

    @property
    def finished_passes(self) -> int:
        return int(self.resumed.progress["done"]) if self.resumed is not None else 0


def _dtype(stored: np.dtype, kind: str, name: str) -> np.dtype:
    if stored.kind == "c":
        raise InputError(f"{kind}: {name} is complex ({stored}); the randomized SVD here takes real matrices")
    return np.dtype("float32") if stored == np.float32 else np.dtype("float64")


def prepare_sketch(a: Any, out: Any, parameters: SketchParameters, options: Options) -> Prepared:
    """Every check (A, the rank, the output; a resumed run's record and sketches) and the plan,
    before anything is written."""
    kind = parameters.kind
    if options.overwrite and options.resume:
        raise InputError(f"{kind}: overwrite and resume exclude each other: resume keeps the finished passes")
    a_ref = locate(a, storage_options=options.storage_options, role="a")
    array = open_input(a_ref)
    sketch = check_sketch(parameters, tuple(array.shape))
    dtype = _dtype(np.dtype(array.dtype), kind, str(a_ref))
    out_ref = locate(out, storage_options=options.storage_options, role="out")
    if options.resume:  # an array, not the input nor nested with it; that it can be resumed is checked below
        check_creatable(out_ref)
        check_output_location(out_ref, [a_ref], overwrite=True)
    else:
        check_new_output(out_ref, [a_ref], options.overwrite)
    check_free(out_ref, options.force)
    budget = memory_budget(options.resolved("memory"))
    cluster = local_shape(options.workers, options.threads, budget) if options.client is None else None
    m, n = array.shape
    pieces, stored = list_stored(a_ref, array)  # one listing: the fingerprint's and the zero blocks'
    layout = layout_of(array, a_ref, np.dtype("float64"), stored)
    band_rows = _band_rows(m, layout.chunks[0], sketch, dtype.itemsize)
    plan_cluster = cluster or local_shape(None, None, budget)
    forward = _plan(layout, MatrixLayout((n, sketch), (layout.chunks[1], sketch), 8), plan_cluster, options)
    backward = _plan(logical(layout, True), MatrixLayout((m, sketch), (band_rows, sketch), 8), plan_cluster,
                     options)
    plan = SketchPlan(kind, (m, n), parameters.rank, parameters.oversample, parameters.power_iters, sketch,
                      _stored_bytes(array), 8, forward, backward)
    identity = {"name": a_ref.name, "fingerprint": fingerprint(a_ref, array, pieces)}
    prepared = Prepared(plan, parameters, a_ref, identity, out_ref, dtype, band_rows, cluster,
                        a_chunk_rows=layout.chunks[0], a_stored=stored)
    if cluster is not None:  # a local cluster, its shape known now (a given one's, once connected)
        prepared = decide_keep(prepared, cluster)
    if options.resume:
        return _resumable(prepared, options)
    drawn = np.random.SeedSequence().entropy if parameters.seed is None else parameters.seed
    return replace(prepared, parameters=replace(parameters, seed=int(drawn)))  # type: ignore[call-overload]


def _resumable(prepared: Prepared, options: Options) -> Prepared:
    """The run this one continues, if it can: the same workload, A as it was, the same
    parameters (a seed not given is the first run's), and the finished passes' sketches there."""
    out, kind, asked = prepared.out, prepared.parameters.kind, prepared.parameters
    record = read_record(stored_attributes(out))
    if record is None or record.workload not in ("svd", "pca"):
        raise ResumeError(f"cannot resume {out}: it holds no randomized SVD or PCA of blockdist's (no "
                          "workload record), so there is nothing to resume; run without --resume")
    if record.workload != kind or record.complete or "done" not in record.progress:
        why = (f"it holds a {record.workload}, not a {kind}" if record.workload != kind else "it is complete"
               if record.complete else "its record, from an older blockdist, counts no passes")
        raise ResumeError(f"cannot resume {out}: {why}; run with --overwrite to compute it again")
    stored_a = record.inputs.get("a", {})
    if stored_a.get("fingerprint") != prepared.a_identity["fingerprint"]:
        raise ResumeError(f"cannot resume {out}: it was computed from A = {stored_a.get('name')}, and "
                          f"{prepared.a_identity['name']} is not that array as it was (its metadata or "
                          "chunks differ); use --overwrite to start again")
    wanted = {"rank": asked.rank, "oversample": asked.oversample, "power_iters": asked.power_iters,
              **({"seed": asked.seed} if asked.seed is not None else {})}
    differ = [f"{name} = {record.parameters.get(name)!r} (not {value!r})" for name, value in wanted.items()
              if record.parameters.get(name) != value]
    if differ:
        raise ResumeError(f"cannot resume {out}: it was started with {', '.join(differ)}; resume with the "
                          "same parameters, or use --overwrite to start again")
    resumed = replace(prepared, parameters=replace(asked, seed=record.parameters.get("seed")), resumed=record)
    gone = [name for name in kept_names(resumed)
            if stored_attributes(scratch_array(out, options.storage_options, name)) is None]
    if gone:
        raise ResumeError(f"cannot resume {out}: what its finished passes left is gone from "
                          f"{scratch_beside(out, SCRATCH_SUFFIX)[0]} ({gone[0]}); run with --overwrite")
    return resumed


def decide_keep(prepared: Prepared, cluster: ClusterShape) -> Prepared:
    """``prepared`` with its plan saying whether A is kept on ``cluster``'s workers; ``keep_a=True``
    where A cannot fit is refused, with the numbers."""
    plan, asked = prepared.plan, prepared.parameters.keep_a
    decision = keep_decision(asked, plan.shape, prepared.a_chunk_rows, plan.sketch, cluster)  # type: ignore[arg-type]
    if asked and not decision.fits:
        raise InputError(decision.refusal(plan.kind))
    return replace(prepared, plan=replace(plan, keep=decision))


def passes(plan: SketchPlan) -> list[tuple[str, int]]:
    """The passes over A in order, each (what it computes, its power iteration): PCA's column
    means, the range sketch, a product each way per power iteration, the projection.

    >>> [name for name, _ in passes(SketchPlan("pca", (9, 9), 2, 1, 1, 3, 0, 8, None, None))]
    ['means', 'range', 'back', 'forward', 'project']
    """
    iterations = [(name, i) for i in range(1, plan.power_iters + 1) for name in ("back", "forward")]
    return [("means", 0)] * (plan.kind == "pca") + [("range", 0), *iterations, ("project", 0)]


def kept_names(prepared: Prepared) -> list[str]:
    """The scratch arrays a resumed run reads: what its last finished pass left, with PCA's means
    and, after the projection, the last sketch's Q₁ and W₁ (U is written from them)."""
    done, steps = prepared.finished_passes, passes(prepared.plan)
    if not done:
        return []
    numbers = {done} | ({1} if prepared.plan.kind == "pca" else set())
    if steps[done - 1][0] == "project":
        numbers.add(done - 1)
    return [f"pass-{number}/{name}" for number in sorted(numbers) for name in KEPT[steps[number - 1][0]]]


def scratch_array(out: ArrayRef, storage_options: Any, name: str) -> ArrayRef:
    """The array ``name`` in OUT's scratch group."""
    return locate(f"{scratch_beside(out, SCRATCH_SUFFIX)[0]}/{name}.zarr", storage_options=storage_options,
                  role="out")


def _stored_bytes(array: Any) -> int:
    """A's bytes as stored, from zarr's own count (decoded size where it cannot tell)."""
    try:
        stored = int(array.nbytes_stored())
        return stored if stored > 0 else int(array.nbytes)
    except Exception:  # noqa: BLE001 - a store that cannot list: the decoded size
        return int(array.nbytes)


def _plan(a: MatrixLayout, b: MatrixLayout, cluster: ClusterShape, options: Options) -> Any:
    from .tunefile import load_model

    return make_plan(a, b, cluster, dtype="float64", model=options.model or load_model())


def _band_rows(m: int, chunk_rows: int, width: int, itemsize: int) -> int:
    """Rows of a band task: whole chunk rows of A (the sketches' chunks), under BAND_BYTES."""
    per_chunk_row = max(1, chunk_rows) * width * max(itemsize, 8)
    return min(m, max(1, BAND_BYTES // per_chunk_row) * chunk_rows)


def stat_blocks(shape: tuple[int, int], unit: tuple[int, int], present: np.ndarray | None
                ) -> list[tuple[tuple[int, int], tuple[int, int], Runs | None]]:
    """The blocks of column statistics over A (``shape``, read units ``unit``): a read unit's
    rows by as many whole units' columns as :data:`BAND_BYTES` holds, each with the stretches of
    its columns in stored units where ``present`` (a bool per unit) says the absent ones are
    zeros (``None``: all read); a block with none stored is left out, its sums are 0.

    >>> stat_blocks((4, 4), (2, 2), np.array([[True, False], [False, False]]))
    [((0, 2), (0, 4), ((0, 2),))]
    >>> stat_blocks((2, 4), (2, 2), None)
    [((0, 2), (0, 4), None)]
    """
    (m, n), (chunk_rows, chunk_cols) = shape, unit
    cols = max(chunk_cols, (BAND_BYTES // (8 * chunk_rows)) // chunk_cols * chunk_cols)
    blocks = []
    for r in range(0, m, chunk_rows):
        for c in range(0, n, cols):
            span = (c, min(c + cols, n))
            runs = None if present is None else stored_runs(present[r // chunk_rows], *span, chunk_cols)
            if runs is None or runs:
                blocks.append(((r, min(r + chunk_rows, m)), span, runs))
    return blocks


__all__ = ["BAND_BYTES", "KEPT", "SCRATCH_SUFFIX", "Prepared", "decide_keep", "kept_names", "passes",
           "prepare_sketch", "scratch_array", "stat_blocks"]
