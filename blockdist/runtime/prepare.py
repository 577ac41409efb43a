"""Check a request, then plan it: everything that can be decided before a cluster is needed.

::

    Request ──check()──► Checked ─────────prepare(cluster shape)─────► PreparedProduct ──start()──► Job
              inputs opened read-only,     the plan (once: the stored one     output created with
              shapes, dtypes, C0 and       on resume, if it still fits),      its manifest, staging
              the output checked, dask     the manifest, the task graph       arrays, graph submitted
              operands staged, resume                                         (runtime/start.py)
              and in-place decided

Nothing the user owns is written before :func:`~blockdist.runtime.start.start`: a bad input
is refused by :func:`check` or :func:`prepare` with the numbers, and at most a scratch copy of
a dask operand, beside the output, has been made (removed by :meth:`Checked.discard`).
"""

from __future__ import annotations

import enum
import math
import numbers
import os
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    InputError,
    MemoryBudgetError,
    MissingChunksError,
    OutputExistsError,
    ResumeError,
    ShapeError,
)
from ..planning import (
    ClusterShape,
    MatrixLayout,
    Operation,
    Plan,
    check_matrix,
    make_plan,
    parse_size,
    task_budget,
)
from ..planning.operation import (
    check_beta,
    check_c0,
    check_operands,
    describe,
    logical,
    result_dtype,
    too_few_dimensions,
    vector_views,
)
from ..planning.presence import StoredChunks
from ..planning.units import format_size
from ..planning.writes import WriteUnit
from ..storage import (
    Array,
    ArrayRef,
    check_creatable,
    check_output_location,
    fingerprint,
    layout_of,
    locate,
    open_input,
    output_compressors,
    stored_attributes,
)
from ..storage.interop import is_dask_array, operands_folder, remove_scratch, stage, stage_numpy, zarr_behind
from ..storage.listing import absent_keys, list_stored
from ..storage.vectors import viewed
from ..worker.blas import available as blas_available
from ..worker.spec import CheckSpec, Finish
from .graph import Graph, operand_spec
from .lease import check_free
from .manifest import Manifest, Status
from .request import Options, Request
from .workload import how_to_finish, unfinished

#: An array's stored pieces by key: size and modification time or ETag (:func:`~blockdist.storage.fingerprint.stored_pieces`)
Pieces = dict[str, tuple[int, str]]


class OutputMode(enum.StrEnum):
    """What becomes of the output; an update in place (:attr:`Checked.in_place`) may be either
    of the last two."""

    NEW = "new"  #: a new array (replacing an old one only with ``overwrite``)
    RESUME = "resume"  #: an interrupted job's output, finished where it stopped
    IN_PLACE = "in-place"  #: C0 is the output, updated tile by tile from the start


@dataclass(frozen=True)
class Operands:
    """The inputs, opened read-only and checked against each other."""

    a: ArrayRef
    b: ArrayRef
    a_array: Array
    b_array: Array
    dtype: np.dtype  #: the result's
    c0: ArrayRef | None = None
    c0_array: Array | None = None
    scratch: Path | None = None  #: where dask operands were staged
    out_view: str = ""  #: a product with a vector operand: how its result is stored (:mod:`~blockdist.storage.vectors`)
    #: A's and B's stored pieces as listed at check time (their fingerprints, and what the job
    #: compares with at its end), and the chunks they hold
    listings: tuple[Pieces, Pieces] | None = None
    stored: tuple[StoredChunks, StoredChunks] | None = None

    def identity(self, is_a: bool) -> dict[str, str]:
        ref, array = (self.a, self.a_array) if is_a else (self.b, self.b_array)
        pieces = self.listings[0 if is_a else 1] if self.listings is not None else None
        return {"name": ref.name, "fingerprint": fingerprint(ref, array, pieces)}


@dataclass(frozen=True)
class Checked:
    """A request whose inputs and output passed every check that needs no cluster."""

    request: Request
    operands: Operands
    out: ArrayRef | None
    mode: OutputMode
    previous: Manifest | None = None  #: the manifest being resumed

    @property
    def in_place(self) -> bool:
        """C0 is the output itself (started now or resumed): tiles go through the stage."""
        return self.out is not None and self.operands.c0 is not None and self.operands.c0 == self.out

    def discard(self) -> None:
        """Remove what checking made (the staged copies of dask operands)."""
        remove_scratch(self.operands.scratch)


@dataclass(frozen=True)
class PreparedProduct:
    """A checked request with its plan, manifest and graph: ready to start on a cluster."""

    checked: Checked
    plan: Plan
    manifest: Manifest
    graph: Graph
    token: str

    @property
    def out(self) -> ArrayRef:
        assert self.checked.out is not None
        return self.checked.out


def memory_budget(memory: int | str | None) -> int | None:
    if memory is None:
        return None
    try:
        return parse_size(memory)
    except ValueError as error:
        raise InputError(f"memory: {error}") from None


# --- check ---------------------------------------------------------------------------------
def _stored(value: Any, name: str, folder: Path | None) -> tuple[Any, Path | None]:
    """An operand as something stored: a path or Zarr array as it is, a dask operand's own Zarr
    array, or a scratch copy beside the output of a computed dask array or a numpy array."""
    if isinstance(value, (np.generic, numbers.Number)) or (isinstance(value, np.ndarray) and value.ndim == 0):
        raise too_few_dimensions(0 if name == "a" else 1)  # a scalar, as numpy's matmul refuses it
    in_memory = isinstance(value, np.ndarray)
    if not in_memory and not is_dask_array(value):
        return value, None
    backing = None if in_memory else zarr_behind(value)
    if backing is not None:
        return backing, None
    kind = "an in-memory numpy array" if in_memory else "a dask array"
    if folder is None:
        raise InputError(f"{kind} operand is staged to a scratch Zarr array beside the output, which must then be "
                         "a local path; store it to Zarr first")
    if in_memory and value.ndim not in (1, 2):
        check_matrix(name.upper(), tuple(value.shape))
    return (stage_numpy(value, folder, name) if in_memory else stage(value, folder, name)), folder


def open_operands(request: Request, out: ArrayRef | None) -> Operands:
    """Open and check A, B and C0 (staging dask operands): shapes after op(), dtypes, C0's role."""
    options, operation = request.options, request.operation
    folder = operands_folder(out.local_path) if out is not None and out.local_path is not None else None
    a, a_scratch = _stored(request.a, "a", folder)
    try:
        b, b_scratch = _stored(request.b, "b", folder)
    except BaseException:
        remove_scratch(a_scratch)
        raise
    scratch = a_scratch or b_scratch
    try:
        refs = [locate(x, storage_options=options.storage_options, role=role) for x, role in ((a, "a"), (b, "b"))]
        arrays = [open_input(ref) for ref in refs]
        views = vector_views(tuple(arrays[0].shape), tuple(arrays[1].shape), operation)
        refs = [replace(ref, view=view) for ref, view in zip(refs, views[:2], strict=True)]
        arrays = [viewed(array, view) for array, view in zip(arrays, views[:2], strict=True)]
        check_operands(tuple(arrays[0].shape), tuple(arrays[1].shape), np.dtype(arrays[0].dtype),
                       np.dtype(arrays[1].dtype), operation)
        check_beta(operation.beta, options.c is not None)
        c0 = (locate(options.c, storage_options=options.storage_options, role="out")
              if options.c is not None and operation.beta else None)
        c0, c0_array = _vector_c0(c0, views[2], operation)
        dtype = result_dtype(np.dtype(arrays[0].dtype), np.dtype(arrays[1].dtype),
                             np.dtype(c0_array.dtype) if c0_array is not None else None, operation)
        listings, stored = _listed(refs, arrays, options.require_all_chunks)
    except BaseException:
        remove_scratch(scratch)
        raise
    return Operands(refs[0], refs[1], arrays[0], arrays[1], dtype, c0, c0_array, scratch, views[2], listings, stored)


def _listed(refs: list[ArrayRef], arrays: list[Array], require_all: bool
            ) -> tuple[tuple[Pieces, Pieces], tuple[StoredChunks, StoredChunks]]:
    """A's and B's stored pieces and chunks (listed once for both when they are one array),
    refusing an unfinished blockdist output, whose absent chunks are tiles not yet written,
    and, with ``require_all``, any absent chunk."""
    listings: list[Pieces] = []
    stored: list[StoredChunks] = []
    for role, ref, array in zip("AB", refs, arrays, strict=True):
        attributes = array.attrs.asdict()
        job = unfinished(attributes)
        if job is not None:
            raise InputError(f"{role} = {ref}: {job}; its chunks not yet written are not zeros, so it is no input "
                             f"until it completes: {how_to_finish(attributes)}")
        if role == "B" and ref == refs[0] and ref.view == refs[0].view:
            listings.append(listings[0])
            stored.append(stored[0])
            continue
        pieces, chunks = list_stored(ref, array)
        listings.append(pieces)
        stored.append(chunks)
        if require_all and not stored[-1].complete:
            first = absent_keys(array, stored[-1])
            where = f"the first absent: {', '.join(first)}" if first else "the absent ones are inside its shards"
            raise MissingChunksError(f"{stored[-1].describe(f'{role} = {ref}')} ({where}); with --require-all-chunks "
                                     "(require_all_chunks=True) every chunk must be stored")
    return (listings[0], listings[1]), (stored[0], stored[1])


def _vector_c0(c0: ArrayRef | None, view: str, operation: Operation) -> tuple[ArrayRef | None, Array | None]:
    """C0 opened as the result is: a vector result's C0 is a vector of the same length."""
    if c0 is None:
        return None, None
    array = open_input(c0)
    if not view:
        return c0, array
    if len(array.shape) != (0 if view == "scalar" else 1):
        raise ShapeError(f"C0 ({c0}) has shape {tuple(array.shape)}, but this product of a vector has "
                         f"{'a 0-d' if view == 'scalar' else 'a 1-D'} result; give C0 that shape")
    return replace(c0, view=view), viewed(array, view)


def check_new_output(out: ArrayRef, inputs: list[ArrayRef], overwrite: bool) -> None:
    """A new output's place (not an input, new unless ``overwrite``); where it holds an unfinished
    job or workload, say that ``--resume`` finishes it."""
    check_creatable(out)
    try:
        check_output_location(out, inputs, overwrite=overwrite)
    except OutputExistsError as error:
        attributes = stored_attributes(out)
        job = unfinished(attributes)
        if job is not None:
            raise OutputExistsError(f"the output {out}: {job}; {how_to_finish(attributes)}") from None
        raise error


def _resumable(out: ArrayRef, operands: Operands, operation: Operation) -> Manifest:
    attributes = stored_attributes(out)
    if attributes is None:
        raise ResumeError(f"cannot resume {out}: it is not an existing Zarr array")
    manifest = Manifest.from_attributes(attributes, str(out))
    manifest.check_inputs(operands.identity(True), operands.identity(False), str(out))
    if manifest.operation and manifest.operation != operation.to_json():
        raise ResumeError(f"cannot resume {out}: it was started as {manifest.operation}, not "
                          f"{operation.to_json()}; use --overwrite to start again")
    return manifest


def _check_options(request: Request) -> None:
    options = request.options
    memory_budget(options.memory)
    for name in ("workers", "threads"):
        value = getattr(options, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InputError(f"{name} must be a whole number of at least 1, got {value!r}")
    if options.client is not None and (options.workers or options.threads):
        raise InputError("workers and threads size a local cluster; they cannot be given with a client")
    if options.overwrite and options.resume:
        raise InputError("overwrite and resume exclude each other: resume keeps the finished tiles")
    options.verify_trials  # noqa: B018 - refuses a bad value now
    for name in ("alpha", "beta"):
        value = getattr(options, name)
        if isinstance(value, bool) or not isinstance(value, (int, float, complex, np.number)):
            raise InputError(f"{name} must be a number, got {value!r}")
    for name in ("overwrite", "resume", "force", "allow_missing_chunks", "require_all_chunks", "transpose_a",
                 "transpose_b"):
        if not isinstance(getattr(options, name), (bool, np.bool_)):
            raise InputError(f"{name} must be True or False, got {getattr(options, name)!r}")
    partials = options.resolved("partials")
    if partials not in ("memory", "storage"):
        raise InputError(f"partials must be 'memory' or 'storage', got {partials!r}")


def _pair(name: str, value: object) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        rows, cols = (int(x) for x in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise InputError(f"{name} must be two sizes (rows, columns), got {value!r}") from None
    if min(rows, cols) < 1:
        raise InputError(f"{name} must be two sizes of at least 1, got {rows}×{cols}")
    return rows, cols


def _check_output_format(options: Options, existing: bool, like: Array) -> None:
    """Refuse output chunks, shards or a codec that cannot be (A's, for ``like-a``), with the numbers."""
    chunks, shards = _pair("out_chunks", options.out_chunks), _pair("out_shards", options.out_shards)
    if existing and (chunks or shards):
        raise InputError("out_chunks and out_shards (--out-chunks, --out-shards) shape a new output; this one "
                         "exists already (resumed, or updated in place) and keeps its own")
    if chunks and shards and (shards[0] % chunks[0] or shards[1] % chunks[1]):
        raise InputError(f"output shards of {shards[0]}×{shards[1]} are not whole chunks of {chunks[0]}×{chunks[1]}; "
                         "each side of a shard must be a multiple of the chunk's")
    # an unknown codec name, or a v2 compressor of A's with no v3 codec, is refused now
    output_compressors(options.out_compressors, None if existing else like)


def _output_mode(request: Request, operands: Operands, out: ArrayRef) -> tuple[OutputMode, Manifest | None]:
    """Check the output for this request: resumed, updated in place, or new."""
    options = request.options
    in_place = operands.c0 is not None and operands.c0 == out
    _check_output_format(options, existing=in_place or options.resume, like=operands.a_array)
    if in_place and out.local_path is None:
        raise InputError("an in-place update (C0 is the output) needs a local output for now; write the result "
                         "to a new array instead")
    if in_place and operands.out_view:
        raise InputError("an in-place update of a vector result (C0 is the output) is not supported; write the "
                         "result to a new array instead")
    if operands.out_view == "scalar" and options.out_shards:  # zarr 3.1 cannot write a sharded 0-d array
        raise InputError("the product of two vectors is a single number (a 0-d array), which has no shards; "
                         "drop out_shards (--out-shards)")
    if operands.c0_array is not None:
        a_op, b_op = check_operands(tuple(operands.a_array.shape), tuple(operands.b_array.shape),
                                    np.dtype(operands.a_array.dtype), np.dtype(operands.b_array.dtype),
                                    request.operation)
        check_c0((a_op[0], b_op[1]), tuple(operands.c0_array.shape), np.dtype(operands.c0_array.dtype),
                 operands.dtype, in_place, str(operands.c0))
    if options.resume:
        return OutputMode.RESUME, _resumable(out, operands, request.operation)
    if in_place:
        check_output_location(out, [operands.a, operands.b], overwrite=True)
        return OutputMode.IN_PLACE, None
    check_new_output(out, [operands.a, operands.b], options.overwrite)
    return OutputMode.NEW, None


def check(request: Request) -> Checked:
    """Every check of ``request`` that needs no cluster; nothing the user owns is written."""
    _check_options(request)
    options = request.options
    out = None if request.out is None else locate(request.out, storage_options=options.storage_options, role="out")
    operands = open_operands(request, out)
    if out is not None and operands.out_view:
        out = replace(out, view=operands.out_view)
    try:
        if out is not None:
            check_free(out, options.force)  # another job writing it now: refused before anything else
        mode, previous = _output_mode(request, operands, out) if out is not None else (OutputMode.NEW, None)
    except BaseException:
        remove_scratch(operands.scratch)
        raise
    return Checked(request, operands, out, mode, previous)


# --- plan ----------------------------------------------------------------------------------
def _aligned(layout: MatrixLayout, axis: int, chunk: int) -> MatrixLayout:
    """``layout`` with its chunks along ``axis`` widened to a multiple of ``chunk`` (an in-place
    update's tiles must own whole chunks of the array they update)."""
    chunks = list(layout.chunks)
    chunks[axis] = min(layout.shape[axis], math.lcm(chunks[axis], chunk))
    stored = layout.stored
    if stored is not None:  # a wide chunk is stored where any of the chunks it joins is
        factors = tuple(-(-new // old) for new, old in zip(chunks, layout.chunks, strict=True))
        stored = stored.coarsened(factors)  # type: ignore[arg-type]
    return replace(layout, chunks=tuple(chunks), stored=stored)  # type: ignore[arg-type]


def _write_unit(checked: Checked) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """The chunks and shards the output will have where they are fixed before planning: an
    in-place output's own, or the options' (None, None: the planner chooses the chunks)."""
    options = checked.request.options
    if checked.in_place:
        c0 = checked.operands.c0_array
        assert c0 is not None
        return tuple(c0.chunks), (tuple(c0.shards) if c0.shards else None)  # type: ignore[return-value]
    chunks, shards = options.out_chunks, options.out_shards
    return (tuple(chunks) if chunks else None), (tuple(shards) if shards else None)  # type: ignore[return-value]


def plan_product(checked: Checked, cluster: ClusterShape) -> Plan:
    """The plan of a checked request for this cluster (the tune file's rates unless a model is given)."""
    from .tunefile import load_model

    operands, operation = checked.operands, checked.request.operation
    stored = operands.stored or (None, None)
    a = logical(layout_of(operands.a_array, operands.a, operands.dtype, stored[0]), operation.transpose_a)
    b = logical(layout_of(operands.b_array, operands.b, operands.dtype, stored[1]), operation.transpose_b)
    options = checked.request.options
    chunks, shards = _write_unit(checked)
    unit = shards or chunks
    if unit is not None:  # tiles must own whole write units (shards, or chunks) of the output
        # a symmetric product's tiles are square and mirrored: whole units along both axes
        rows, cols = (math.lcm(*unit),) * 2 if operation.symmetric else unit
        a, b = _aligned(a, 0, rows), _aligned(b, 1, cols)
    model = options.model or load_model()
    try:
        plan = make_plan(a, b, cluster, dtype=operands.dtype.name, model=model, symmetric=operation.symmetric,
                         blas_kernel=blas_available(operands.dtype), free_out_rows=unit is None)
    except MemoryBudgetError as error:
        if unit is None:
            raise
        kind = "shards" if shards else "chunks"
        whose = "the output" + " (C0, updated in place)" * checked.in_place
        raise MemoryBudgetError(
            f"{error} A task's tile is also whole {kind} of {whose}, {unit[0]}×{unit[1]}, so the smallest "
            f"one here is {a.chunks[0]}×{b.chunks[1]}; smaller output {kind} fit too") from None
    a_name, b_name, product = describe(operation, np.dtype(operands.a_array.dtype), np.dtype(operands.b_array.dtype),
                                       (operands.a.view, operands.b.view))
    plan = replace(plan, a=replace(plan.a, name=a_name), b=replace(plan.b, name=b_name), product=product)
    if unit is not None:
        chunks = chunks or _chunks_inside(plan.out_chunks, shards)  # type: ignore[arg-type]
        plan = replace(plan, out_chunks=tuple(chunks), out_shards=shards)
    if plan.zero_blocks:  # a tile with no present product is 0, unless beta·C0 changes it
        unchanged = operation.beta == 0 or operands.c0 is None or (checked.in_place and operation.beta == 1)
        plan = replace(plan, writes_empty_tiles=not unchanged)
    return plan


def _chunks_inside(default: tuple[int, int], shards: tuple[int, int]) -> tuple[int, int]:
    """The default output chunks where they divide the shards, else the shards themselves."""
    return tuple(c if s % c == 0 else s for c, s in zip(default, shards, strict=True))  # type: ignore[return-value]


def _stored_plan(previous: Manifest, cluster: ClusterShape) -> Plan:
    """A resumed job's plan, if this cluster's tasks can hold it."""
    stored, budget = previous.plan, task_budget(cluster)
    if stored.memory.total > budget:
        raise ResumeError(
            f"cannot resume with this plan: its tasks need {format_size(stored.memory.total)} each, "
            f"and these workers give a task {format_size(max(budget, 0))}; give more --memory "
            "or use --overwrite to plan again"
        )
    return stored


def _graph(checked: Checked, plan: Plan) -> Graph:
    operands, operation, options = checked.operands, checked.request.operation, checked.request.options
    complex_a, complex_b = (np.dtype(x.dtype).kind == "c" for x in (operands.a_array, operands.b_array))
    a = operand_spec(operands.a, plan, True, transpose=operation.transpose_a,
                     conjugate=operation.transpose_a and complex_a)
    b = operand_spec(operands.b, plan, False, transpose=operation.transpose_b,
                     conjugate=operation.transpose_b and complex_b)
    in_place = checked.in_place
    finish = Finish(alpha=operation.alpha, beta=operation.beta, c0=None if in_place else operands.c0,
                    mirror=operation.symmetric, conjugate_mirror=operands.dtype.kind == "c")
    trials = options.verify_trials
    check_spec = CheckSpec(trials, int.from_bytes(os.urandom(4), "little")) if trials else None
    assert checked.out is not None
    return Graph(plan, a, b, checked.out, finish, check_spec, in_place=in_place,
                 partials_staged=options.resolved("partials") == "storage")


def _stored_unit(checked: Checked, plan: Plan) -> WriteUnit:
    """The output's storage objects: as the plan will create them, or as the existing array has them."""
    if checked.mode is OutputMode.NEW:
        return plan.write_unit
    array = checked.operands.c0_array if checked.in_place else open_input(checked.out)  # type: ignore[arg-type]
    assert array is not None
    return WriteUnit(plan.shape, tuple(array.chunks), tuple(array.shards) if array.shards else None)  # type: ignore[arg-type]


def prepare(checked: Checked, cluster: ClusterShape) -> PreparedProduct:
    """Plan a checked request (once) for ``cluster`` and make its manifest and graph."""
    previous = checked.previous
    plan = _stored_plan(previous, cluster) if previous is not None else plan_product(checked, cluster)
    token = uuid.uuid4().hex[:12]
    if previous is not None:
        manifest = replace(previous, token=token, status=Status.RUNNING, done=set(previous.done))
    else:
        operands = checked.operands
        # tiles with no present block product are done at once: the new output reads them as 0
        done = set() if plan.writes_empty_tiles else plan.empty_tiles
        manifest = Manifest(token, operands.identity(True), operands.identity(False), plan, done=done,
                            operation=checked.request.operation.to_json())
    unit = _stored_unit(checked, plan)
    graph = replace(_graph(checked, plan), job=token, write_unit=unit)
    graph.check_writes(unit)  # nothing is written yet: a plan losing writes stops here
    return PreparedProduct(checked, plan, manifest, graph, token)
