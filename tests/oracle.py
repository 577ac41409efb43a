"""The tests' oracle: what a product must be, worked out without any of blockdist's code.

A product computed in floating point, in any order of summation (blocked, split over k,
fused multiply-adds), is within ``γ_k·(|A|·|B|)`` of the exact one, elementwise, where
``γ_k = k·u / (1 − k·u)`` and ``u = eps / 2`` is the unit roundoff of the dtype it is
computed in (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.1, eq. 3.5);
a complex product is within ``√2·γ_{k+2}·(|A|·|B|)`` (§3.6). The exact product is taken in
extended precision (``np.longdouble``, 64-bit mantissa here) when that is cheap, and otherwise
from numpy's float64 product, whose own error (the same bound, in float64) is added on.
"""

from __future__ import annotations

import numpy as np

#: Above this many multiply-adds the reference is numpy's float64 product (a loop in
#: extended precision takes about a second per 10⁷ here).
EXTENDED_LIMIT = 2 * 10**7


def gamma(k: int, dtype: np.dtype) -> float:
    """``γ_k`` for sums of ``k`` products computed in ``dtype`` (complex: ``√2·γ_{k+2}``)."""
    dtype = np.dtype(dtype)
    u = np.finfo(dtype).eps / 2
    if dtype.kind == "c":
        return float(np.sqrt(2) * (k + 2) * u / (1 - (k + 2) * u))
    return float(k * u / (1 - k * u))


def reference(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``a @ b`` as near exact as is affordable, a bound on that reference's own error, and
    ``|a|·|b|`` (which the bounds scale; computed once, as it costs a product)."""
    complex_ = np.iscomplexobj(a) or np.iscomplexobj(b)
    m, k = a.shape
    n = b.shape[1]
    magnitude = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    if m * n * k <= EXTENDED_LIMIT:
        wide = np.clongdouble if complex_ else np.longdouble
    else:
        wide = np.complex128 if complex_ else np.float64
    return a.astype(wide) @ b.astype(wide), gamma(k, np.dtype(wide)) * magnitude, magnitude


def assert_product(got: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """``got`` is ``a @ b``: numpy's promoted dtype, and within rounding of the exact product."""
    expected_dtype = np.result_type(a, b)
    assert got.dtype == expected_dtype, (got.dtype, expected_dtype)
    assert got.shape == (a.shape[0], b.shape[1])
    if expected_dtype.kind in "iu":  # integer products are exact (wrapping alike in any order)
        np.testing.assert_array_equal(got, np.matmul(a, b))
        return
    exact, reference_error, magnitude = reference(a, b)
    bound = gamma(a.shape[1], expected_dtype) * magnitude + reference_error + np.finfo(np.float64).tiny
    error = np.abs(got.astype(exact.dtype) - exact).astype(np.float64)
    worst = float((error / bound).max())
    assert worst <= 1.0, f"error up to {worst:.3g} × the rounding bound γ_k·|A|·|B|"


def assert_gemm(got: np.ndarray, a: np.ndarray, b: np.ndarray, alpha: complex | float, beta: complex | float,
                c0: np.ndarray | None) -> None:
    """``got`` is ``alpha·a@b + beta·c0`` within rounding: the product's bound, scaled by
    alpha, plus the three roundings of scaling and adding (``3u`` of each term)."""
    expected_dtype = np.result_type(a, b, *([c0] if beta and c0 is not None else []),
                                    *([alpha] if alpha != 1 else []), *([beta] if beta else []))
    assert got.dtype == expected_dtype, (got.dtype, expected_dtype)
    exact, reference_error, magnitude = reference(a, b)
    # blockdist computes the product in the result dtype, which may be wider than a's and b's
    computed = np.dtype(expected_dtype)
    expected = alpha * exact + (beta * c0.astype(exact.dtype) if beta else 0)
    terms = abs(alpha) * magnitude + (abs(beta) * np.abs(c0) if beta else 0)
    u = np.finfo(computed).eps / 2
    bound = (abs(alpha) * (gamma(a.shape[1], computed) * magnitude + reference_error) + 3 * u * terms
             + np.finfo(np.float64).tiny)
    error = np.abs(got.astype(exact.dtype) - expected).astype(np.float64)
    worst = float((error / bound).max())
    assert worst <= 1.0, f"error up to {worst:.3g} × the rounding bound"
