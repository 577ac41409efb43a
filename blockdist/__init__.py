"""blockdist: multiply Zarr matrices too large for one machine on a Dask cluster.

The package imports lazily: ``import blockdist`` loads the error classes and the pure
planning layer only (no zarr, no dask); ``blockdist.matmul`` and the rest load on first use.

Layers, lowest first (imports point down only; ``tests/test_layers.py`` checks each module):

=============  =====================================================================
``planning``   pure: layouts, the machine and cost model, memory, tile grid, search, Plan
``storage``    the only layer that imports zarr, obstore or s3fs
``worker``     task specs, panel sources, kernel and BLAS, finishing, the task functions
``checks``     Freivalds' check of a stored product, the demo's sampled check
``runtime``    request, prepare and start, cluster, TLS, graph, manifest, Job, tune
``api``/``cli``  the interfaces
=============  =====================================================================
"""

from __future__ import annotations

from typing import Any

from .errors import (
    ArrayNotFoundError,
    BlockdistError,
    BucketNotFoundError,
    DtypeError,
    IncompleteOutputError,
    InputChangedError,
    InputError,
    JobFailedError,
    MemoryBudgetError,
    MissingChunksError,
    OutputBusyError,
    OutputConflictError,
    OutputExistsError,
    PlanError,
    ResumeError,
    SchedulerUnreachableError,
    ShapeError,
    StorageAccessError,
    StorageFullError,
    StorageIOError,
    StorageUnreachableError,
    TLSOptionsError,
    VerificationError,
)
from .planning import MachineModel, Plan

__all__ = [
    "ArrayNotFoundError", "BlockdistError", "BucketNotFoundError", "DtypeError", "IncompleteOutputError",
    "InputChangedError", "InputError", "Job", "JobFailedError", "MachineModel", "MemoryBudgetError", "MissingChunksError",
    "OutputConflictError",
    "OutputBusyError", "OutputExistsError", "Plan", "PlanError", "ResumeError", "SchedulerUnreachableError", "ShapeError",
    "StorageAccessError", "StorageFullError", "StorageIOError", "StorageUnreachableError",
    "TLSOptionsError", "VerificationError", "gram", "matmul", "multi_dot", "open", "pca", "plan", "plan_chain", "plan_svd",
    "plan_topk", "random_matrix", "run", "submit", "submit_gram", "submit_topk", "svd", "topk", "verify",
]
__version__ = "0.2.0"

_API = {"gram", "matmul", "multi_dot", "open", "pca", "plan", "plan_chain", "plan_svd", "plan_topk", "run", "submit",
        "submit_gram", "submit_topk", "svd", "topk", "verify"}


def __getattr__(name: str) -> Any:
    if name in _API:
        from . import api

        return getattr(api, name)
    if name == "Job":
        from .runtime.job import Job

        return Job
    if name == "random_matrix":
        from .storage.random import random_matrix

        return random_matrix
    raise AttributeError(f"module 'blockdist' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
