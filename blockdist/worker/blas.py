"""``C = A·B + beta·C`` in place through BLAS's gemm, on strided views (numpy and scipy), and
``C = P·Pᵀ + beta·C`` (``P·Pᴴ``) through syrk (herk) at half gemm's flops.

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
_SYRK_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, *[_POINTER] * 8)


@functools.cache
def _gemm_function(letter: str) -> Callable[..., None] | None:
    return _function(f"{letter}gemm", _GEMM_TYPE)


@functools.cache
def _syrk_function(name: str) -> Callable[..., None] | None:
    return _function(name, _SYRK_TYPE)


def _function(routine: str, signature: type) -> Callable[..., None] | None:
    try:
        from scipy.linalg import cython_blas
    except ImportError:
        return None
    capsule = cython_blas.__pyx_capi__.get(routine)  # type: ignore[attr-defined]
    if capsule is None:
        return None
    name = ctypes.pythonapi.PyCapsule_GetName
    name.restype, name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    pointer = ctypes.pythonapi.PyCapsule_GetPointer
    pointer.restype, pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return signature(pointer(capsule, name(capsule)))  # type: ignore[no-any-return]


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


def syrk(c: np.ndarray, p: np.ndarray, *, hermitian: bool = False, beta: float = 1.0) -> bool:
    """The upper triangle of ``c = p·pᵀ + beta·c`` (``p·pᴴ`` if ``hermitian``) in place; False if BLAS can't.

    Half the flops of the gemm that computes all of ``c``: the lower triangle is left as it
    was (see :func:`.kernel.symmetrize`). ``c`` is square and row-major; ``p`` row-major or a
    transposed view. Real ``c`` with ``hermitian`` is the symmetric case.

    >>> rng = np.random.default_rng(0)
    >>> p = rng.standard_normal((5, 3))
    >>> c = np.zeros((5, 5))
    >>> syrk(c, p, beta=0.0) and bool(np.allclose(np.triu(c), np.triu(p @ p.T)))
    True
    """
    hermitian = hermitian and c.dtype.kind == "c"
    letter = _LETTERS.get(c.dtype)
    function = _syrk_function(f"{letter}{'herk' if hermitian else 'syrk'}") if letter else None
    n, k = p.shape
    if function is None or p.dtype != c.dtype or c.shape != (n, n) or max(n, k) > _INT_MAX:
        return False
    if n == 0:
        return True
    if k == 0:
        c *= beta
        return True
    c_layout, p_layout = _fortran_operand(c, False), _fortran_operand(p, False)
    if c_layout is None or c_layout[0] != b"N" or p_layout is None:
        return False
    if not c.flags.writeable:
        raise ValueError("syrk writes into c, which is read-only")
    # Fortran sees row-major C as Cᵀ, and its 'L' triangle is C's upper one. A row-major P is F = Pᵀ
    # to Fortran: C = P·Pᵀ = Fᵀ·F (trans 'T'); for P·Pᴴ Fortran must hold Cᵀ = conj(P)·Pᵀ = Fᴴ·F
    # (trans 'C'). A transposed view of P is P itself to Fortran: P·Pᵀ = F·Fᵀ (trans 'N'), but
    # F·Fᴴ would be C, not Cᵀ, so the Hermitian case of such a view is left to gemm.
    if p_layout[0] == b"N":
        trans = b"C" if hermitian else b"T"
    elif hermitian:
        return False
    else:
        trans = b"N"
    scalar = np.float32 if c.dtype in (np.complex64, np.float32) else np.float64
    scalars = np.array([1, beta], dtype=scalar if hermitian else c.dtype)
    ints = [ctypes.c_int(v) for v in (n, k, p_layout[1], c_layout[1])]
    function(b"L", trans, ctypes.byref(ints[0]), ctypes.byref(ints[1]), _POINTER(scalars.ctypes.data),
             _POINTER(p.ctypes.data), ctypes.byref(ints[2]), _POINTER(scalars.ctypes.data + scalars.itemsize),
             _POINTER(c.ctypes.data), ctypes.byref(ints[3]))
    return True
