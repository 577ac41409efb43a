"""The general product C = alpha·op(A)·op(B) + beta·C0, with op = identity or transpose.

For complex operands the transpose is the conjugate transpose. A transposed operand is read
tile by tile from its stored layout (tasks read ``A[k-panel, rows]`` and use its transpose,
a free view), never rewritten to storage first: the planner sees each operand's *logical*
layout, with shape and chunks swapped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError, ShapeError
from .layout import MatrixLayout, check_inner, check_matrix


@dataclass(frozen=True, slots=True)
class Operation:
    transpose_a: bool = False
    transpose_b: bool = False
    alpha: complex | float = 1.0
    beta: complex | float = 0.0
    symmetric: bool = False  #: A·Aᵀ or Aᵀ·A: tiles on and above the diagonal, mirrored

    def to_json(self) -> dict[str, object]:
        return {"transpose_a": self.transpose_a, "transpose_b": self.transpose_b, "alpha": repr(self.alpha),
                "beta": repr(self.beta), "symmetric": self.symmetric}


def logical(layout: MatrixLayout, transpose: bool) -> MatrixLayout:
    """The layout of op(X): shape and chunks swapped for a transpose."""
    return layout.transposed() if transpose else layout


def op_name(name: str, transpose: bool, dtype: np.dtype) -> str:
    if not transpose:
        return name
    return f"{name}ᴴ" if dtype.kind == "c" else f"{name}ᵀ"


def _scalar(value: complex | float) -> str:
    value = complex(value)
    return f"{value.real:g}" if value.imag == 0 else f"({value.real:g}{value.imag:+g}j)"


def describe(operation: Operation, a_dtype: np.dtype, b_dtype: np.dtype, views: tuple[str, str] = ("", "")
             ) -> tuple[str, str, str]:
    """Names of op(A) and op(B) and the product as people read it (X for a symmetric product;
    u and v for vectors: A·v, v·A, u·v).

    >>> describe(Operation(transpose_b=True, alpha=2.0, beta=0.5), np.dtype("f8"), np.dtype("f8"))
    ('A', 'Bᵀ', '2·A·Bᵀ + 0.5·C0')
    >>> describe(Operation(transpose_a=False, transpose_b=True, symmetric=True), np.dtype("c16"), np.dtype("c16"))
    ('X', 'Xᴴ', 'X·Xᴴ')
    """
    first, second = ("X", "X") if operation.symmetric else ("A", "B")
    if any(views):
        first = ("u" if views[1] else "v") if views[0] else "A"
        second = "v" if views[1] else "A"
    a = op_name(first, operation.transpose_a, a_dtype)
    b = op_name(second, operation.transpose_b, b_dtype)
    product = f"{a}·{b}" if operation.alpha == 1 else f"{_scalar(operation.alpha)}·{a}·{b}"
    if operation.beta != 0:
        product += f" + {_scalar(operation.beta)}·C0"
    return a, b, product


SIGNATURE = "(n?,k),(k,m?)->(n?,m?)"


def too_few_dimensions(index: int) -> ShapeError:
    """numpy's refusal of a 0-d operand (a scalar): matmul takes matrices and vectors.

    >>> print(too_few_dimensions(0))
    matmul: Input operand 0 does not have enough dimensions (has 0, gufunc core with signature (n?,k),(k,m?)->(n?,m?) requires 1); matmul takes matrices and vectors (multiply by a scalar with alpha=)
    """
    return ShapeError(f"matmul: Input operand {index} does not have enough dimensions (has 0, gufunc core with "
                      f"signature {SIGNATURE} requires 1); matmul takes matrices and vectors (multiply by a scalar "
                      "with alpha=)")


def vector_views(a_shape: tuple[int, ...], b_shape: tuple[int, ...], operation: Operation) -> tuple[str, str, str]:
    """How numpy's ``matmul`` makes matrices of vector operands: the views of A, B and the
    result ("row", "column", "scalar", or "" for a matrix), refusing with numpy's words what
    it would refuse.

    >>> vector_views((4, 3), (3,), Operation())
    ('', 'column', 'column')
    >>> vector_views((3,), (3,), Operation())
    ('row', 'column', 'scalar')
    >>> vector_views((4, 3), (2,), Operation())
    Traceback (most recent call last):
    ...
    blockdist.errors.ShapeError: matmul: Input operand 1 has a mismatch in its core dimension 0, with gufunc signature (n?,k),(k,m?)->(n?,m?) (size 2 is different from 3)
    """
    for index, shape in enumerate((a_shape, b_shape)):
        if len(shape) == 0:
            raise too_few_dimensions(index)
    if len(a_shape) != 1 and len(b_shape) != 1:
        return "", "", ""
    if operation.symmetric:
        raise ShapeError(f"the Gram matrix takes a 2-D X, got shape {tuple(a_shape)}; for a vector's squared norm "
                         "multiply it by itself (matmul(x, x))")
    for name, shape, transposed in (("A", a_shape, operation.transpose_a), ("B", b_shape, operation.transpose_b)):
        if len(shape) == 1 and transposed:
            raise InputError(f"{name} is a vector (length {shape[0]}), which has no transpose: matmul reads a vector "
                             "as a row on the left and as a column on the right; drop the transpose")
    a_op = a_shape[::-1] if operation.transpose_a else a_shape
    b_op = b_shape[::-1] if operation.transpose_b else b_shape
    inner_a = a_op[-1] if len(a_op) <= 2 else None
    inner_b = b_op[0] if len(b_op) <= 2 else None
    if inner_a is not None and inner_b is not None and inner_a != inner_b:
        raise ShapeError(f"matmul: Input operand 1 has a mismatch in its core dimension 0, with gufunc signature "
                         f"{SIGNATURE} (size {inner_b} is different from {inner_a})")
    a_view = "row" if len(a_shape) == 1 else ""
    b_view = "column" if len(b_shape) == 1 else ""
    out_view = "scalar" if a_view and b_view else (a_view or b_view)
    return a_view, b_view, out_view


def check_operands(a_shape: tuple[int, ...], b_shape: tuple[int, ...], a_dtype: np.dtype, b_dtype: np.dtype,
                   operation: Operation) -> tuple[tuple[int, int], tuple[int, int]]:
    """The shapes of op(A) and op(B), refusing what cannot be multiplied, naming both shapes."""
    check_matrix("A", a_shape)  # before op() swaps anything
    check_matrix("B", b_shape)
    a_op = tuple(a_shape[::-1]) if operation.transpose_a else tuple(a_shape)
    b_op = tuple(b_shape[::-1]) if operation.transpose_b else tuple(b_shape)
    check_inner(op_name("A", operation.transpose_a, a_dtype), a_op, op_name("B", operation.transpose_b, b_dtype),
                b_op)
    return a_op, b_op  # type: ignore[return-value]


def result_dtype(a: np.dtype, b: np.dtype, c0: np.dtype | None, operation: Operation) -> np.dtype:
    """numpy's promotion for alpha·A·B + beta·C0 (Python scalars promote weakly)."""
    parts: list[object] = [a, b]
    if c0 is not None and operation.beta != 0:
        parts.append(c0)
    if operation.alpha != 1:
        parts.append(operation.alpha)
    if operation.beta != 0:
        parts.append(operation.beta)
    return np.result_type(*parts)


def check_beta(beta: complex | float, has_c0: bool) -> None:
    """Refuse ``beta ≠ 0`` with nothing for it to scale."""
    if beta != 0 and not has_c0:
        raise InputError(f"beta is {beta} but no C0 was given; pass c=… (--c PATH) or beta=0")


def check_c0(shape: tuple[int, int], c0_shape: tuple[int, ...], c0_dtype: np.dtype, result: np.dtype,
             in_place: bool, name: str) -> None:
    if tuple(c0_shape) != tuple(shape):
        raise ShapeError(f"C0 ({name}) is {'×'.join(map(str, c0_shape))} but op(A)·op(B) is "
                         f"{shape[0]}×{shape[1]}; they must match")
    if in_place and c0_dtype != result:
        raise InputError(f"C0 ({name}) is updated in place but has dtype {c0_dtype}, and the result is "
                         f"{result}; write the result to another array instead")
    if not np.can_cast(c0_dtype, result, casting="same_kind"):
        raise InputError(f"C0 ({name}) has dtype {c0_dtype}, which does not fit the result dtype {result}")
