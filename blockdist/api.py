"""The Python API: :func:`plan` and :func:`matmul`.

Every check that can fail on the user's input runs before any task is submitted and before
anything is written: shapes, dtypes, the output location, the memory budget.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr
from distributed import Client, as_completed, span

from .cluster import ClusterShape, connect, local_shape, shape_of
from .errors import InputError, JobFailedError
from .graph import submit_plan
from .plan import MachineModel, Plan, check_shapes, make_plan
from .store import ArrayRef, check_output_location, create_output, layout_of, locate, open_input
from .tasks import TaskStats
from .units import parse_size

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


def _open_operands(a: ArrayLike, b: ArrayLike, storage_options: dict[str, Any] | None) -> _Operands:
    a_ref = locate(a, storage_options=storage_options, role="a")
    b_ref = locate(b, storage_options=storage_options, role="b")
    a_array, b_array = open_input(a_ref), open_input(b_ref)
    check_shapes(tuple(a_array.shape), tuple(b_array.shape))
    dtype = np.result_type(a_array.dtype, b_array.dtype)
    return _Operands(a_ref, b_ref, a_array, b_array, dtype)


def _plan_for(ops: _Operands, shape: ClusterShape, model: MachineModel | None) -> Plan:
    return make_plan(
        layout_of(ops.a_array), layout_of(ops.b_array), dtype=ops.dtype.name,
        itemsize=ops.dtype.itemsize, workers=shape.workers, threads=shape.threads,
        memory_per_worker=shape.memory_per_worker, model=model,
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
    memory: int | str | None = None, overwrite: bool = False, workers: int | None = None,
    threads: int | None = None, security: object | None = None,
    storage_options: dict[str, Any] | None = None, model: MachineModel | None = None,
) -> zarr.Array:
    """Compute C = A·B into the Zarr array ``out`` and return it.

    ``a`` and ``b`` are paths or ``zarr.Array``; ``client`` is a ``distributed.Client`` or a
    scheduler address. Without one, a local cluster of ``workers`` processes × ``threads``
    is started and shut down. ``memory`` is the budget per worker. An existing ``out`` is
    replaced only with ``overwrite=True``. ``storage_options`` configure the stores of
    URLs such as ``s3://bucket/a.zarr`` (endpoint, credentials).
    """
    return run(a, b, out, client=client, memory=memory, overwrite=overwrite, workers=workers,
               threads=threads, security=security, storage_options=storage_options,
               model=model).array


def run(
    a: ArrayLike, b: ArrayLike, out: str | os.PathLike[str], *, client: Client | str | None = None,
    memory: int | str | None = None, overwrite: bool = False, workers: int | None = None,
    threads: int | None = None, security: object | None = None,
    storage_options: dict[str, Any] | None = None, model: MachineModel | None = None,
    on_start: Any = None,
) -> JobResult:
    """:func:`matmul`, returning the figures too (time, bytes, plan, dashboard link)."""
    budget = _memory(memory)
    if client is not None and (workers or threads):
        raise InputError("workers and threads size a local cluster; they cannot be given with a client")
    ops = _open_operands(a, b, storage_options)
    out_ref = locate(out, storage_options=storage_options, role="out")
    check_output_location(out_ref, [ops.a, ops.b], overwrite=overwrite)
    local = local_shape(workers, threads, budget) if client is None else None
    if local is not None:
        _plan_for(ops, local, model)  # refuse a budget that cannot work before starting processes
    with connect(client, local, security) as dask_client:
        shape = local or shape_of(dask_client, budget)
        the_plan = _plan_for(ops, shape, model)
        token = uuid.uuid4().hex[:12]
        manifest = {"token": token, "status": "running", "a": ops.a.name, "b": ops.b.name,
                    "plan": the_plan.to_dict()}
        array = create_output(out_ref, shape=the_plan.shape, chunks=the_plan.out_chunks,
                              dtype=the_plan.dtype, overwrite=overwrite,
                              attributes={"blockdist": manifest})
        if on_start is not None:
            on_start(the_plan, dask_client.dashboard_link)
        start = time.perf_counter()
        stats = TaskStats()
        with span(f"blockdist-{token}"):
            futures = submit_plan(dask_client, the_plan, ops.a, ops.b, out_ref, token)
        try:
            for future in as_completed(futures, loop=dask_client.loop):
                if future.status != "finished":
                    error = future.exception() if future.status == "error" else future.status
                    raise JobFailedError(f"the product failed in task {future.key}: {error}")
                stats += future.result()
        except BaseException:
            dask_client.cancel(futures)
            array.update_attributes({"blockdist": {**manifest, "status": "failed"}})
            raise
        seconds = time.perf_counter() - start
        array.update_attributes({"blockdist": {**manifest, "status": "complete"}})
        return JobResult(zarr.open_array(store=out_ref.store, mode="r"), the_plan, seconds,
                         stats, dask_client.dashboard_link, token)
