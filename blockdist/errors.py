"""Errors raised by blockdist.

Every error subclasses :class:`BlockdistError` and the builtin exception that fits, so
callers can catch either (the pattern of zarr-python's ``errors.py``). Errors about the
user's input subclass :class:`InputError`; the CLI maps those to exit status 2.
"""

from __future__ import annotations


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


class OutputExistsError(InputError, FileExistsError):
    """The output exists and overwriting it was not asked for."""


class OutputConflictError(InputError):
    """The output would overwrite or nest inside an input, or is not an array we may replace."""


class MemoryBudgetError(InputError, MemoryError):
    """The memory budget is too small for the smallest possible task."""


class JobFailedError(BlockdistError, RuntimeError):
    """A task failed while the product was running."""


class VerificationError(BlockdistError, ArithmeticError):
    """The product failed its check: some tile of C is not A·B within rounding."""
