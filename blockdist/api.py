"""The Python API: :func:`plan` and :func:`matmul`.

Every check that can fail on the user's input runs before any task is submitted and before
anything is written: shapes, dtypes, the output location, the memory budget.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from distributed import Client, span

from .cluster import ClusterShape, connect, local_shape, shape_of
from .errors import InputError, OutputConflictError, OutputExistsError, ShapeError
from .freivalds import VerifyReport, verify_product
from .graph import TaskOptions, submit_plan
from .interop import Matrix, is_dask_array, open_matrix, remove_scratch, scratch_folder, stage, zarr_behind
from .job import Job
from .manifest import KEY, Manifest, ResumeError, fingerprint
from .memory import WORKER_BASELINE
from .operation import Operation, check_c0, check_operands, logical, result_dtype
from .plan import MachineModel, Plan, make_plan
from . import blas
from .store import ArrayRef, check_output_location, create_output, layout_of, locate, open_input
from .tasks import Finish, TaskStats
from .units import format_size, parse_size

ArrayLike = str | os.PathLike[str] | zarr.Array


@dataclass
class JobResult:
    """What a finished product reports."""

    array: zarr.Array
    plan: Plan
    seconds: float
    stats: TaskStats
    dashboard_link: str | None
    token: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def gflops(self) -> float:
        return self.plan.flops / self.seconds / 1e9


@dataclass(frozen=True)
class _Operands:
    a: ArrayRef
    b: ArrayRef
    a_array: zarr.Array
    b_array: zarr.Array
    dtype: np.dtype
    operation: Operation = Operation()
    c0: ArrayRef | None = None


def _open_operands(a: ArrayLike, b: ArrayLike, storage_options: dict[str, Any] | None,
                   operation: Operation = Operation(), c: ArrayLike | None = None) -> _Operands:
    a_ref = locate(a, storage_options=storage_options, role="a")
    b_ref = locate(b, storage_options=storage_options, role="b")
    a_array, b_array = open_input(a_ref), open_input(b_ref)
    a_op, b_op = check_operands(tuple(a_array.shape), tuple(b_array.shape), np.dtype(a_array.dtype),
                                np.dtype(b_array.dtype), operation)
    if operation.beta != 0 and c is None:
        raise InputError(f"beta is {operation.beta} but no C0 was given; pass c=… (--c PATH) or beta=0")
    c0_ref = locate(c, storage_options=storage_options, role="out") if c is not None and operation.beta else None
    c0_array = open_input(c0_ref) if c0_ref is not None else None
    dtype = result_dtype(np.dtype(a_array.dtype), np.dtype(b_array.dtype),
                         np.dtype(c0_array.dtype) if c0_array is not None else None, operation)
    return _Operands(a_ref, b_ref, a_array, b_array, dtype, operation, c0_ref)


def _plan_for(ops: _Operands, shape: ClusterShape, model: MachineModel | None) -> Plan:
    if model is None:  # the rates `blockdist tune` measured on this machine, else the defaults
        from .tune import load_model

        model = load_model()
    return make_plan(
        logical(layout_of(ops.a_array, ops.a, ops.dtype), ops.operation.transpose_a),
        logical(layout_of(ops.b_array, ops.b, ops.dtype), ops.operation.transpose_b), dtype=ops.dtype.name,
        itemsize=ops.dtype.itemsize, workers=shape.workers, threads=shape.threads,
        memory_per_worker=shape.memory_per_worker, model=model, symmetric=ops.operation.symmetric,
        blas_kernel=blas.available(ops.dtype),
    )


def _memory(memory: int | str | None) -> int | None:
    if memory is None:
        return None
    try:
        return parse_size(memory)
    except ValueError as error:
        raise InputError(f"memory: {error}") from None


def plan(
    a: ArrayLike, b: ArrayLike, *, memory: int | str | None = None,
    workers: int | None = None, threads: int | None = None,
    storage_options: dict[str, Any] | None = None, model: MachineModel | None = None,
) -> Plan:
    """Plan C = A·B without computing it.

    ``memory`` is the budget of each worker (bytes or a string such as ``"4GB"``); by default
    a local cluster's share of this machine's memory. ``workers`` and ``threads`` (per
    worker) default to a local cluster of one single-threaded worker per core. ``model``
    holds the rates the planner weighs tile shapes with (see :class:`MachineModel`).
    """
    ops = _open_operands(a, b, storage_options)
    return _plan_for(ops, local_shape(workers, threads, _memory(memory)), model)


def matmul(
    a: ArrayLike, b: ArrayLike, out: str | os.PathLike[str], *, client: Client | str | None = None,
    memory: int | str | None = None, overwrite: bool = False, resume: bool = False,
    workers: int | None = None, threads: int | None = None, security: object | None = None,
    storage_options: dict[str, Any] | None = None, model: MachineModel | None = None,
    verify: bool | int = False, allow_missing_chunks: bool = False,
    alpha: complex | float = 1.0, beta: complex | float = 0.0, c: ArrayLike | None = None,
    transpose_a: bool = False, transpose_b: bool = False,
) -> zarr.Array:
    """Compute C = alpha·op(A)·op(B) + beta·C0 into the Zarr array ``out`` and return it.

    ``a`` and ``b`` are paths or ``zarr.Array`` (or dask arrays); ``client`` is a
    ``distributed.Client`` or a scheduler address. Without one, a local cluster of ``workers``
    processes × ``threads`` is started and shut down. ``memory`` is the budget per worker.
    An existing ``out`` is replaced only with ``overwrite=True``; ``resume=True`` finishes an
    interrupted job, computing only the tiles its manifest does not list as done.
    ``storage_options`` configure the stores of URLs such as ``s3://bucket/a.zarr``.
    ``verify=True`` checks each tile with Freivalds' algorithm (see :func:`verify`).

    ``transpose_a``/``transpose_b`` use Aᵀ/Bᵀ (the conjugate transpose for complex), read
    from the stored layout; ``alpha`` scales the product; ``beta`` ≠ 0 adds ``beta·c``, where
    ``c`` may be the output itself (updated in place, tile by tile, safely across retries).
    """
    return submit(a, b, out, client=client, memory=memory, overwrite=overwrite, resume=resume,
                  workers=workers, threads=threads, security=security,
                  storage_options=storage_options, model=model, verify=verify,
                  allow_missing_chunks=allow_missing_chunks, alpha=alpha, beta=beta, c=c,
                  transpose_a=transpose_a, transpose_b=transpose_b).result()


def run(a: ArrayLike, b: ArrayLike, out: str | os.PathLike[str], *, on_start: Any = None,
        **options: Any) -> JobResult:
    """:func:`matmul`, returning the figures too (time, bytes, plan, dashboard link)."""
    job = submit(a, b, out, **options)
    if on_start is not None:
        on_start(job.plan, job.dashboard_link)
    array = job.result()
    return JobResult(array, job.plan, job.seconds, job.stats, job.dashboard_link, job.token,
                     {"verification": job.verification})


def open(where: ArrayLike, *, storage_options: dict[str, Any] | None = None) -> Matrix:  # noqa: A001
    """Open a stored matrix read-only; ``.to_dask()`` gives a dask array, ``.array`` the Zarr one."""
    return open_matrix(where, storage_options=storage_options)


def verify(
    a: ArrayLike, b: ArrayLike, c: ArrayLike, *, trials: int = 3, client: Client | str | None = None,
    workers: int | None = None, threads: int | None = None, memory: int | str | None = None,
    security: object | None = None, storage_options: dict[str, Any] | None = None, seed: int | None = None,
) -> VerifyReport:
    """Check C = A·B with Freivalds' algorithm (``trials`` random ±1 vectors, O(n²) work
    each); the report names every tile whose residual exceeds the rounding tolerance."""
    if trials < 1:
        raise InputError(f"trials must be at least 1, got {trials}")
    ops = _open_operands(a, b, storage_options)
    c_ref = locate(c, storage_options=storage_options, role="out")
    c_array = open_input(c_ref)
    m, n = ops.a_array.shape[0], ops.b_array.shape[1]
    if tuple(c_array.shape) != (m, n):
        raise ShapeError(f"C is {c_array.shape[0]}×{c_array.shape[1]} but A·B is {m}×{n}")
    local = local_shape(workers, threads, _memory(memory)) if client is None else None
    with connect(client, local, security) as dask_client:
        return verify_product(dask_client, ops.a, ops.b, c_ref, shape=(m, ops.a_array.shape[1], n),
                              dtype=np.dtype(c_array.dtype).name, chunks=tuple(c_array.chunks),
                              trials=trials, seed=seed)


def submit(
    a: ArrayLike, b: ArrayLike, out: str | os.PathLike[str], *, client: Client | str | None = None,
    memory: int | str | None = None, overwrite: bool = False, resume: bool = False,
    workers: int | None = None, threads: int | None = None, security: object | None = None,
    storage_options: dict[str, Any] | None = None, model: MachineModel | None = None,
    verify: bool | int = False, allow_missing_chunks: bool = False,
    alpha: complex | float = 1.0, beta: complex | float = 0.0, c: ArrayLike | None = None,
    transpose_a: bool = False, transpose_b: bool = False,
) -> Job:
    """Start C = alpha·op(A)·op(B) + beta·C0 and return a :class:`~blockdist.job.Job` at once
    (same options as :func:`matmul`). Every check on the input runs before this returns.

    ``verify=True`` (or a number of trials) checks each tile's product with Freivalds'
    algorithm from the panels its task already holds, so the check reads nothing again
    (resumed tiles are not re-checked). An input chunk that does not exist fails the job
    unless ``allow_missing_chunks`` (zarr skips writing chunks that hold only the fill value).
    """
    operation = Operation(transpose_a, transpose_b, alpha, beta)
    return _submit(a, b, out, operation, c, client=client, memory=memory, overwrite=overwrite, resume=resume,
                   workers=workers, threads=threads, security=security, storage_options=storage_options,
                   model=model, verify=verify, allow_missing_chunks=allow_missing_chunks)


def gram(x: ArrayLike, out: str | os.PathLike[str], *, transpose: bool = False, alpha: complex | float = 1.0,
         **options: Any) -> Job:
    """Start the symmetric product X·Xᵀ (or Xᵀ·X with ``transpose=True``; Xᴴ for complex X)
    and return its :class:`~blockdist.job.Job`. Only the tiles on and above the diagonal are
    computed, about half the work; each writes its mirror image below the diagonal too.
    Takes :func:`submit`'s options except ``c``, ``beta`` and the transposes."""
    for name in ("c", "beta", "transpose_a", "transpose_b"):
        if options.get(name):
            raise InputError(f"gram takes no {name}: it computes alpha·X·Xᵀ (or alpha·Xᵀ·X) only")
        options.pop(name, None)
    operation = Operation(transpose_a=transpose, transpose_b=not transpose, alpha=alpha, symmetric=True)
    return _submit(x, x, out, operation, None, **{**_SUBMIT_DEFAULTS, **options})


_SUBMIT_DEFAULTS: dict[str, Any] = {
    "client": None, "memory": None, "overwrite": False, "resume": False, "workers": None, "threads": None,
    "security": None, "storage_options": None, "model": None, "verify": False, "allow_missing_chunks": False,
}


def _submit(
    a: ArrayLike, b: ArrayLike, out: str | os.PathLike[str], operation: Operation, c: ArrayLike | None, *,
    client: Client | str | None, memory: int | str | None, overwrite: bool, resume: bool,
    workers: int | None, threads: int | None, security: object | None,
    storage_options: dict[str, Any] | None, model: MachineModel | None, verify: bool | int,
    allow_missing_chunks: bool,
) -> Job:
    budget = _memory(memory)
    if client is not None and (workers or threads):
        raise InputError("workers and threads size a local cluster; they cannot be given with a client")
    trials = (3 if verify is True else int(verify)) if verify else 0
    if overwrite and resume:
        raise InputError("overwrite and resume exclude each other: resume keeps the finished tiles")
    out_ref = locate(out, storage_options=storage_options, role="out")
    a, b, scratch = _from_dask(a, b, out_ref)
    try:
        ops = _open_operands(a, b, storage_options, operation, c)
    except BaseException:
        remove_scratch(scratch)
        raise
    in_place = ops.c0 is not None and ops.c0 == out_ref
    if in_place and out_ref.local_path is None:
        raise InputError("an in-place update (C0 is the output) needs a local output for now; "
                         "write the result to a new array instead")
    if ops.c0 is not None:
        c0_array = open_input(ops.c0)
        check_c0((ops.a_array.shape[1] if operation.transpose_a else ops.a_array.shape[0],
                  ops.b_array.shape[0] if operation.transpose_b else ops.b_array.shape[1]),
                 tuple(c0_array.shape), np.dtype(c0_array.dtype), ops.dtype, in_place, str(ops.c0))
        if in_place:  # tiles must own whole chunks of the array they update
            ops = _aligned_to(ops, tuple(c0_array.chunks))
    inputs = {"a": _identity(ops.a, ops.a_array), "b": _identity(ops.b, ops.b_array)}
    previous = _resumable(out_ref, ops, inputs, operation) if resume else None
    if previous is None:
        if in_place:
            check_output_location(out_ref, [ops.a, ops.b], overwrite=True)
        else:
            _check_new_output(out_ref, ops, overwrite)
    local = local_shape(workers, threads, budget) if client is None else None
    if local is not None:
        _check_fits(ops, local, model, previous)  # before starting any process
    owned = contextlib.ExitStack()
    owned.callback(remove_scratch, scratch)
    try:
        dask_client = owned.enter_context(connect(client, local, security))
        shape = local or shape_of(dask_client, budget)
        the_plan = _check_fits(ops, shape, model, previous)
        token = uuid.uuid4().hex[:12]
        if previous is not None:
            array, manifest = previous
            manifest.token, manifest.status = token, "running"
            array.update_attributes({KEY: manifest.to_json()})
        elif in_place:
            manifest = Manifest(token, inputs["a"], inputs["b"], the_plan, operation=operation.to_json())
            array = zarr.open_array(store=out_ref.store, mode="r+")
            array.update_attributes({KEY: manifest.to_json()})
        else:
            manifest = Manifest(token, inputs["a"], inputs["b"], the_plan, operation=operation.to_json())
            try:
                array = create_output(out_ref, shape=the_plan.shape, chunks=the_plan.out_chunks,
                                      dtype=the_plan.dtype, overwrite=overwrite,
                                      attributes={KEY: manifest.to_json()})
            except OSError as error:  # no task has run: this is still the user's input
                raise OutputConflictError(f"cannot create the output {out_ref}: {error.strerror or error}"
                                          ) from None
        finish = Finish(alpha=operation.alpha, beta=operation.beta, c0=None if in_place else ops.c0,
                        mirror=operation.symmetric, conjugate_mirror=ops.dtype.kind == "c")
        on_complete = None
        if in_place:
            assert out_ref.local_path is not None
            finish, on_complete = _staging(out_ref.local_path, array, the_plan, finish)
        with span(f"blockdist-{token}"):
            options = TaskOptions(
                allow_missing_chunks=allow_missing_chunks, verify_trials=trials,
                verify_seed=int.from_bytes(os.urandom(4), "little"), transpose_a=operation.transpose_a,
                transpose_b=operation.transpose_b,
                conjugate_a=operation.transpose_a and np.dtype(ops.a_array.dtype).kind == "c",
                conjugate_b=operation.transpose_b and np.dtype(ops.b_array.dtype).kind == "c",
                symmetric=operation.symmetric, finish=finish,
            )
            futures = submit_plan(dask_client, the_plan, ops.a, ops.b, out_ref, token, skip=manifest.done,
                                  options=options)
        return Job(plan=the_plan, token=token, out=out_ref, array=array, manifest=manifest,
                   client=dask_client, futures=futures, owned=owned, verify_trials=trials,
                   on_complete=on_complete)
    except BaseException:
        owned.close()
        raise


def _aligned_to(ops: _Operands, c0_chunks: tuple[int, ...]) -> _Operands:
    """Operands whose logical row and column chunks are multiples of C0's, so that each tile
    covers whole chunks of the array it updates in place."""
    return dataclasses.replace(
        ops,
        a_array=_Widened(ops.a_array, ops.operation.transpose_a, 0, c0_chunks[0]),  # type: ignore[arg-type]
        b_array=_Widened(ops.b_array, ops.operation.transpose_b, 1, c0_chunks[1]),  # type: ignore[arg-type]
    )


class _Widened:
    """An array's planning view whose chunks along one logical axis are widened to a multiple
    of another chunk size (reads stay aligned: the multiple is one of the array's own chunks)."""

    def __init__(self, array: zarr.Array, transpose: bool, axis: int, chunk: int) -> None:
        self._array = array
        stored_axis = (1 - axis) if transpose else axis
        chunks = list(array.shards or array.chunks)
        chunks[stored_axis] = min(array.shape[stored_axis], math.lcm(chunks[stored_axis], chunk))
        self.chunks = tuple(chunks)
        self.shards = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._array, name)


def _staging(folder: Path, array: zarr.Array, plan: Plan, finish: Finish) -> tuple[Finish, Any]:
    """The staging array and tile markers of an in-place update, beside the output; kept until
    the job completes so that a resumed job finds what was staged."""
    scratch = scratch_folder(folder)
    stage_path, markers_path = scratch / "stage.zarr", scratch / "markers.zarr"
    if not stage_path.exists():
        zarr.create_array(store=str(stage_path), shape=array.shape, chunks=array.chunks, dtype=array.dtype,
                          compressors=None, fill_value=0)
    if not markers_path.exists():
        grid = plan.tile_grid
        zarr.create_array(store=str(markers_path), shape=(grid[0] * grid[1],), chunks=(1,), dtype="int8",
                          compressors=None, fill_value=0)
    staged = dataclasses.replace(finish, stage=locate(stage_path), markers=locate(markers_path))
    return staged, lambda: remove_scratch(scratch)


def _from_dask(a: Any, b: Any, out: ArrayRef) -> tuple[Any, Any, Path | None]:
    """Operands that are dask arrays become Zarr arrays: their own, or a scratch copy."""
    staged: list[Any] = []
    scratch = None
    for name, value in (("a", a), ("b", b)):
        if is_dask_array(value):
            backing = zarr_behind(value)
            if backing is None:
                if out.local_path is None:
                    raise InputError("a dask array operand is staged to a scratch Zarr array beside the "
                                     "output, which must then be a local path; store it to Zarr first")
                scratch = scratch_folder(out.local_path)
                backing = stage(value, scratch, name)
            value = backing
        staged.append(value)
    return staged[0], staged[1], scratch


def _identity(ref: ArrayRef, array: zarr.Array) -> dict[str, str]:
    return {"name": ref.name, "fingerprint": fingerprint(ref, array.metadata.to_dict())}


def _check_creatable(out_ref: ArrayRef) -> None:
    """Refuse a local output whose folder cannot be made (its nearest existing parent is a file,
    or not writable), before anything starts."""
    if out_ref.local_path is None:
        return
    parent = out_ref.local_path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputConflictError(f"cannot create the output {out_ref}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputConflictError(f"cannot create the output {out_ref}: the folder {parent} is not writable")


def _check_new_output(out_ref: ArrayRef, ops: _Operands, overwrite: bool) -> None:
    _check_creatable(out_ref)
    try:
        check_output_location(out_ref, [ops.a, ops.b], overwrite=overwrite)
    except OutputExistsError as error:
        with contextlib.suppress(Exception):
            data = zarr.open_array(store=out_ref.store, mode="r").attrs.asdict().get(KEY, {})
            if data.get("status") in ("running", "failed", "cancelled"):
                done, total = len(data.get("done", [])), Plan.from_dict(data["plan"]).tiles
                raise OutputExistsError(
                    f"the output {out_ref} holds an unfinished blockdist job ({done} of {total} tiles "
                    "done); pass --resume (resume=True) to finish it, or --overwrite to start again"
                ) from None
        raise error


def _resumable(out_ref: ArrayRef, ops: _Operands, inputs: dict[str, dict[str, str]], operation: Operation
               ) -> tuple[zarr.Array, Manifest]:
    try:
        array = zarr.open_array(store=out_ref.store, mode="r+")
    except Exception:
        raise ResumeError(f"cannot resume {out_ref}: it is not an existing Zarr array") from None
    manifest = Manifest.from_attributes(array.attrs.asdict(), str(out_ref))
    manifest.check_inputs(inputs["a"], inputs["b"], str(out_ref))
    if manifest.operation and manifest.operation != operation.to_json():
        raise ResumeError(f"cannot resume {out_ref}: it was started as {manifest.operation}, not "
                          f"{operation.to_json()}; use --overwrite to start again")
    return array, manifest


def _check_fits(ops: _Operands, shape: ClusterShape, model: MachineModel | None,
                previous: tuple[zarr.Array, Manifest] | None) -> Plan:
    """The plan to run: a new one, or on resume the stored one if this cluster can hold it."""
    if previous is None:
        return _plan_for(ops, shape, model)
    stored = previous[1].plan
    budget = (shape.memory_per_worker - WORKER_BASELINE) // shape.threads
    if stored.memory.total > budget:
        raise ResumeError(
            f"cannot resume with this plan: its tasks need {format_size(stored.memory.total)} each, "
            f"and these workers give a task {format_size(max(budget, 0))}; give more --memory "
            "or use --overwrite to plan again"
        )
    return stored
