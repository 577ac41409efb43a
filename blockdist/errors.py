"""Every error blockdist raises on purpose, in one place.

Each subclasses :class:`BlockdistError` and the builtin exception that fits, so callers can
catch either (the pattern of zarr-python's ``errors.py``). Errors about the user's input
subclass :class:`InputError`, raised before anything is computed or written; the CLI maps
those to exit status 2 and everything else of blockdist's to 1::

    BlockdistError
    ├── InputError (ValueError)                 nothing was computed or written
    │   ├── ShapeError                          inner dimensions, not 2-D, empty
    │   ├── DtypeError (TypeError)              not a numeric dtype
    │   ├── ArrayNotFoundError (FileNotFoundError)
    │   │   └── BucketNotFoundError
    │   ├── OutputExistsError (FileExistsError)
    │   ├── OutputConflictError                 an input, nested, not an array, not creatable
    │   ├── MemoryBudgetError (MemoryError)     too small for the smallest task
    │   ├── PlanError                           a plan asked for what cannot be planned
    │   ├── ResumeError                         nothing to resume, or not with these inputs
│   ├── MissingChunksError                  an absent input chunk, where every chunk was required
    │   ├── TLSOptionsError                     incomplete or unusable certificates
    │   ├── StorageAccessError (PermissionError)
    │   ├── StorageUnreachableError (ConnectionError)
    │   └── SchedulerUnreachableError (ConnectionError)  nothing answers, TLS expected, refused
    ├── IncompleteOutputError (ValueError)      an output whose job has not finished
    ├── JobFailedError (RuntimeError)           a task failed while the product ran
    ├── StorageIOError (OSError)                a request failed for good, after retries
    └── VerificationError (ArithmeticError)     a tile of C is not A·B within rounding
"""

from __future__ import annotations

__all__ = [
    "ArrayNotFoundError", "BlockdistError", "BucketNotFoundError", "DtypeError", "IncompleteOutputError", "InputChangedError",
    "InputError", "JobFailedError", "MemoryBudgetError", "MissingChunksError", "OutputBusyError", "OutputConflictError", "OutputExistsError", "PlanError",
    "ResumeError", "SchedulerUnreachableError", "ShapeError", "StorageAccessError", "StorageFullError", "StorageIOError",
    "StorageUnreachableError", "TLSOptionsError", "VerificationError",
]


class BlockdistError(Exception):
    """Base class of every error blockdist raises on purpose."""


class InputError(BlockdistError, ValueError):
    """The request cannot be carried out as given; nothing was computed or written."""


class ShapeError(InputError):
    """The operands' shapes do not allow the product (inner dimensions, not 2-D)."""


class DtypeError(InputError, TypeError):
    """An operand's dtype is not a numeric type blockdist can multiply."""


class ArrayNotFoundError(InputError, FileNotFoundError):
    """An input array does not exist or cannot be read as a Zarr array."""


class BucketNotFoundError(ArrayNotFoundError):
    """The bucket of an ``s3://`` URL does not exist."""


class OutputExistsError(InputError, FileExistsError):
    """The output exists and overwriting it was not asked for."""


class OutputConflictError(InputError):
    """The output would overwrite or nest inside an input, or is not an array we may replace."""


class OutputBusyError(InputError):
    """Another job holds the output's lease: it is writing it now."""


class MemoryBudgetError(InputError, MemoryError):
    """The memory budget is too small for the smallest possible task."""


class PlanError(InputError):
    """The planner was asked for something that cannot be planned (no threads, a symmetric
    product of a non-square result)."""


class ResumeError(InputError):
    """The output cannot be resumed with these inputs or this plan."""


class MissingChunksError(InputError):
    """An input has absent chunks and ``require_all_chunks`` asked for every one of them."""


class TLSOptionsError(InputError):
    """The TLS options are incomplete, or name a file that is missing or unusable."""


class StorageAccessError(InputError, PermissionError):
    """The object store refused the credentials, or access to the bucket or key."""


class StorageUnreachableError(InputError, ConnectionError):
    """The object store's endpoint cannot be reached."""


class SchedulerUnreachableError(InputError, ConnectionError):
    """The Dask scheduler cannot be reached: nothing listens there, it speaks TLS, or it refused us."""


class IncompleteOutputError(BlockdistError, ValueError):
    """The array is the output of a blockdist job that has not finished: some tiles are not written."""


class JobFailedError(BlockdistError, RuntimeError):
    """A task failed while the product was running."""


class InputChangedError(BlockdistError, RuntimeError):
    """An input changed while a job read it: the output cannot be trusted."""


class StorageIOError(BlockdistError, OSError):
    """A storage request failed for good, after the client's retries (while a job runs)."""


class StorageFullError(StorageIOError):
    """The device holding the output has no space left (``ENOSPC``, or a write cut short)."""


class VerificationError(BlockdistError, ArithmeticError):
    """The product failed its check: some tile of C is not A·B within rounding."""
