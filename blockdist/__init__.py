"""blockdist: multiply Zarr matrices too large for one machine on a Dask cluster."""

from .api import matmul, plan, run
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
)
from .plan import Plan

__all__ = [
    "ArrayNotFoundError", "BlockdistError", "DtypeError", "InputError", "JobFailedError",
    "MemoryBudgetError", "OutputConflictError", "OutputExistsError", "Plan", "ShapeError",
    "matmul", "plan", "run",
]
__version__ = "0.1.0"
