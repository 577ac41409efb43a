"""``C = A·B + beta·C`` in place through BLAS's gemm, on strided views (numpy and scipy).

numpy's ``matmul`` has no ``beta``: adding a product into C costs a scratch block and an
extra pass over it, and every operand must be one array. BLAS's gemm takes ``beta = 1``
and a leading dimension for each operand, so a task can accumulate straight into any
block of its C tile, from any block of a mapped chunk file, with no copy at all. scipy
exports its BLAS's gemm as Cython function pointers (``scipy.linalg.cython_blas``, the
route numba takes too); a ctypes call of one releases the GIL, so the reader thread runs
while BLAS computes.

Row-major ``C = A·B`` is column-major ``Cᵀ = Bᵀ·Aᵀ``: a row-major view with row stride
``ld`` is, to Fortran, its transpose with leading dimension ``ld``, and a transposed view
(column-major) is the matrix itself, used with ``'T'`` (``'C'`` when it is to be
conjugated).
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable

import numpy as np

_LETTERS = {np.dtype(np.float32): "s", np.dtype(np.float64): "d",
            np.dtype(np.complex64): "c", np.dtype(np.complex128): "z"}
_INT_MAX = 2**31 - 1  # scipy's BLAS takes 32-bit Fortran integers
_POINTER = ctypes.c_void_p
_GEMM_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, *[_POINTER] * 11)


@functools.cache
def _gemm_function(letter: str) -> Callable[..., None] | None:
    try:
        from scipy.linalg import cython_blas
    except ImportError:
        return None
    capsule = cython_blas.__pyx_capi__.get(f"{letter}gemm")  # type: ignore[attr-defined]
    if capsule is None:
        return None
    name = ctypes.pythonapi.PyCapsule_GetName
    name.restype, name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    pointer = ctypes.pythonapi.PyCapsule_GetPointer
    pointer.restype, pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return _GEMM_TYPE(pointer(capsule, name(capsule)))


def available(dtype: np.dtype) -> bool:
    """Whether :func:`gemm` can run for ``dtype`` (scipy is installed, the dtype is BLAS's)."""
    letter = _LETTERS.get(np.dtype(dtype))
    return letter is not None and _gemm_function(letter) is not None


def _fortran_operand(x: np.ndarray, conjugate: bool) -> tuple[bytes, int] | None:
    """(op flag, leading dimension) of a row-major view as a Fortran operand, or None."""
    rows, cols = x.shape
    size = x.itemsize
    row_stride, col_stride = x.strides
    if (cols == 1 or col_stride == size) and (rows == 1 or row_stride % size == 0):
        ld = row_stride // size if rows > 1 else max(1, cols)
        if ld >= max(1, cols) and not conjugate:
            return b"N", ld
    if (rows == 1 or row_stride == size) and (cols == 1 or col_stride % size == 0):
        ld = col_stride // size if cols > 1 else max(1, rows)
        if ld >= max(1, rows):
            return (b"C" if conjugate else b"T"), ld
    return None


def gemm(c: np.ndarray, a: np.ndarray, b: np.ndarray, *, beta: float = 1.0,
         conjugate_a: bool = False, conjugate_b: bool = False) -> bool:
    """``c = op(a)·op(b) + beta·c`` in place, op conjugating where asked; False if BLAS can't.

    ``c`` must be row-major (unit column stride); ``a`` and ``b`` may be row-major or
    transposed views with any leading stride. Returns False (and leaves ``c`` alone) where
    scipy's BLAS is missing or a view is not one BLAS takes; the caller then uses numpy.

    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.standard_normal((6, 4)), rng.standard_normal((5, 4)).T
    >>> c = np.ones((8, 5))[1:7]
    >>> gemm(c, a, b, beta=1.0) and bool(np.allclose(c, 1 + a @ b))
    True
    """
    letter = _LETTERS.get(c.dtype)
    function = _gemm_function(letter) if letter else None
    m, n = c.shape
    k = a.shape[1]
    if (function is None or a.dtype != c.dtype or b.dtype != c.dtype or a.shape != (m, k)
            or b.shape != (k, n) or max(m, n, k) > _INT_MAX):
        return False
    if m == 0 or n == 0:
        return True
    if k == 0:
        c *= beta
        return True
    c_layout = _fortran_operand(c, False)
    a_layout, b_layout = _fortran_operand(a, conjugate_a), _fortran_operand(b, conjugate_b)
    if c_layout is None or c_layout[0] != b"N" or a_layout is None or b_layout is None:
        return False
    if not c.flags.writeable:
        raise ValueError("gemm writes into c, which is read-only")
    scalars = np.array([1, beta], dtype=c.dtype)

    ints = [ctypes.c_int(v) for v in (n, m, k, b_layout[1], a_layout[1], c_layout[1])]
    function(b_layout[0], a_layout[0], ctypes.byref(ints[0]), ctypes.byref(ints[1]),
             ctypes.byref(ints[2]), _POINTER(scalars.ctypes.data), _POINTER(b.ctypes.data),
             ctypes.byref(ints[3]), _POINTER(a.ctypes.data), ctypes.byref(ints[4]),
             _POINTER(scalars.ctypes.data + scalars.itemsize), _POINTER(c.ctypes.data),
             ctypes.byref(ints[5]))
    return True
