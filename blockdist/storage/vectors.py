"""A 1-D Zarr array seen as a one-row or one-column matrix, a 0-d one as a 1×1 matrix.

numpy's ``matmul`` promotes a vector operand to a matrix by its place (``v @ A``: a row,
``A @ v``: a column) and removes that dimension from the result. blockdist does the same
without copying anything: an :class:`~.refs.ArrayRef` whose ``view`` is ``"row"``,
``"column"`` or ``"scalar"`` opens as a :class:`MatrixView`, so the planner, the tasks and the
checks see a 2-D matrix while the bytes stay where they are — the user's vector is read in
place and a vector result is stored as a 1-D (or 0-d) array.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: What a view makes of the stored array: the 2-D shape of a stored shape.
VIEWS = ("row", "column", "scalar")


def matrix_shape(view: str, stored: tuple[int, ...]) -> tuple[int, int]:
    """The 2-D shape a ``view`` gives a stored 1-D (or 0-d) shape.

    >>> matrix_shape("row", (5,)), matrix_shape("column", (5,)), matrix_shape("scalar", ())
    ((1, 5), (5, 1), (1, 1))
    """
    if view == "scalar":
        return (1, 1)
    (length,) = stored
    return (1, length) if view == "row" else (length, 1)


def stored_shape(view: str, shape: tuple[int, int]) -> tuple[int, ...]:
    """The stored shape of a viewed 2-D ``shape``: the inverse of :func:`matrix_shape`.

    >>> stored_shape("row", (1, 5)), stored_shape("column", (5, 1)), stored_shape("scalar", (1, 1))
    ((5,), (5,), ())
    """
    if view == "scalar":
        return ()
    return (shape[1],) if view == "row" else (shape[0],)


class MatrixView:
    """A 1-D or 0-d ``zarr.Array`` that reads and writes as a 2-D matrix (see the module)."""

    def __init__(self, array: Any, view: str) -> None:
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}")
        self.array, self.view = array, view

    @property
    def shape(self) -> tuple[int, int]:
        return matrix_shape(self.view, tuple(self.array.shape))

    @property
    def chunks(self) -> tuple[int, int]:
        return matrix_shape(self.view, tuple(self.array.chunks))

    @property
    def shards(self) -> tuple[int, int] | None:
        shards = self.array.shards
        return None if shards is None else matrix_shape(self.view, tuple(shards))

    def _inner(self, selection: tuple[slice, slice]) -> tuple[slice, ...]:
        if self.view == "scalar":
            return ()
        return (selection[1],) if self.view == "row" else (selection[0],)

    def _as_matrix(self, data: Any) -> np.ndarray:
        data = np.asarray(data)
        if self.view == "scalar":
            return data.reshape(1, 1)
        return data.reshape(1, -1) if self.view == "row" else data.reshape(-1, 1)

    def __getitem__(self, selection: tuple[slice, slice]) -> np.ndarray:
        return self._as_matrix(self.array[self._inner(selection)])

    def __setitem__(self, selection: tuple[slice, slice], value: Any) -> None:
        value = np.asarray(value)
        self.array[self._inner(selection)] = value.reshape(()) if self.view == "scalar" else value.reshape(-1)

    def with_config(self, config: Any) -> MatrixView:
        return MatrixView(self.array.with_config(config), self.view)

    def __getattr__(self, name: str) -> Any:  # dtype, attrs, compressors, metadata, …: the array's own
        return getattr(self.array, name)

    def __repr__(self) -> str:
        return f"MatrixView({self.view}, {self.array!r})"


def viewed(array: Any, view: str) -> Any:
    """``array`` as the matrix its ``view`` makes of it (itself where there is no view)."""
    return MatrixView(array, view) if view else array
