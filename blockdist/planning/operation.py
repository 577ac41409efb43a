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


def describe(operation: Operation, a_dtype: np.dtype, b_dtype: np.dtype) -> tuple[str, str, str]:
    """Names of op(A) and op(B) and the product as people read it (X for a symmetric product).

    >>> describe(Operation(transpose_b=True, alpha=2.0, beta=0.5), np.dtype("f8"), np.dtype("f8"))
    ('A', 'Bᵀ', '2·A·Bᵀ + 0.5·C0')
    >>> describe(Operation(transpose_a=False, transpose_b=True, symmetric=True), np.dtype("c16"), np.dtype("c16"))
    ('X', 'Xᴴ', 'X·Xᴴ')
    """
    first, second = ("X", "X") if operation.symmetric else ("A", "B")
    a = op_name(first, operation.transpose_a, a_dtype)
    b = op_name(second, operation.transpose_b, b_dtype)
    product = f"{a}·{b}" if operation.alpha == 1 else f"{_scalar(operation.alpha)}·{a}·{b}"
    if operation.beta != 0:
        product += f" + {_scalar(operation.beta)}·C0"
    return a, b, product


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
