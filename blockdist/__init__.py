"""blockdist: multiply Zarr matrices too large for one machine on a Dask cluster.

The package imports lazily: ``import blockdist.plan`` loads neither zarr nor dask, and
``blockdist.matmul`` loads them on first use.
"""

from __future__ import annotations

from typing import Any

from .errors import (
    ArrayNotFoundError,
    BlockdistError,
    DtypeError,
    InputError,
    JobFailedError,
    MemoryBudgetError,
    OutputConflictError,
    OutputExistsError,
    ShapeError,
    VerificationError,
)
from .plan import Plan

__all__ = [
    "ArrayNotFoundError", "BlockdistError", "DtypeError", "InputError", "JobFailedError",
    "MemoryBudgetError", "OutputConflictError", "OutputExistsError", "Plan", "ShapeError",
    "VerificationError", "gram", "matmul", "open", "plan", "run", "submit", "verify",
]
__version__ = "0.1.0"

_API = {"gram", "matmul", "open", "run", "submit", "verify"}


def plan(a: Any, b: Any, **options: Any) -> Plan:
    """Plan C = A·B without computing it; see :func:`blockdist.api.plan` for the options.

    (Defined here, not lazily, because the submodule ``blockdist.plan`` would otherwise
    shadow it: use ``from blockdist.plan import …`` to reach the module.)
    """
    from .api import plan as plan_product

    return plan_product(a, b, **options)


def __getattr__(name: str) -> Any:
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'blockdist' has no attribute {name!r}")
