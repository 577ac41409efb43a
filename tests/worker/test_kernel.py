"""The kernel against numpy, for every dtype and for strided panel views, through BLAS's gemm
and through the numpy fallback (no scipy)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blockdist.worker import blas, kernel
from blockdist.worker.kernel import accumulate, multiply, scratch_for
from tests.conftest import require

DTYPES = ["float32", "float64", "complex64", "complex128", "int64"]


def data(rng, shape, dtype):
    values = rng.standard_normal(shape) * 4
    if np.dtype(dtype).kind == "c":
        values = values + 1j * rng.standard_normal(shape)
    return values.astype(dtype)


@pytest.fixture(params=["blas", "numpy"])
def through(request, monkeypatch):
    """Run a test through BLAS's gemm, then again with gemm refusing, as it does without scipy."""
    if request.param == "numpy":
        monkeypatch.setattr(kernel.blas, "gemm", lambda *args, **kwargs: False)
    elif not blas.available(np.dtype("float64")):
        require(False, "scipy's BLAS is not installed")
    return request.param


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(1, 90), st.integers(1, 90), st.integers(1, 90), st.integers(1, 40),
       st.sampled_from(DTYPES), st.integers(0, 5), st.booleans(), st.booleans())
def test_accumulate_adds_the_product_in_place(through, m, k, n, rows, dtype, pad, transposed_b, conjugate):
    rng = np.random.default_rng(m * 10_000 + k * 100 + n)
    wide_a = data(rng, (m, k + pad), dtype)
    a = wide_a[:, pad:]  # a column-slice view, as tasks pass panel overlaps
    b = data(rng, (n, k), dtype).T if transposed_b else data(rng, (k, n), dtype)  # Bᵀ: a mapped chunk's view
    conjugate = conjugate and transposed_b
    c0 = data(rng, (m, n), dtype)
    c = c0.copy()
    accumulate(c, a, b, scratch_for(m, n, rows, np.dtype(dtype)), conjugate_b=conjugate)
    expected = c0 + a @ (np.conjugate(b) if conjugate else b)
    if np.dtype(dtype).kind in "iu":
        np.testing.assert_array_equal(c, expected)
    else:
        tol = 50 * k * np.finfo(dtype).eps
        np.testing.assert_allclose(c, expected, rtol=tol, atol=tol * (np.abs(a) @ np.abs(b)).max())


@pytest.mark.parametrize("dtype", DTYPES)
def test_multiply_overwrites_c_with_the_product(through, dtype):
    rng = np.random.default_rng(7)
    a, b = data(rng, (40, 30), dtype), data(rng, (25, 30), dtype).T
    c = np.full((40, 25), 99, dtype=dtype)
    multiply(c, a, b, conjugate_b=np.dtype(dtype).kind == "c")
    expected = a @ (np.conjugate(b) if np.dtype(dtype).kind == "c" else b)
    np.testing.assert_allclose(c, expected, rtol=1e-4 * 30)


def test_accumulate_never_reallocates_c(through):
    c = np.zeros((64, 32))
    before = c.__array_interface__["data"][0]
    accumulate(c, np.ones((64, 8)), np.ones((8, 32)), np.empty((16, 32)))
    assert c.__array_interface__["data"][0] == before
    assert (c == 8).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_scratch_matches_the_tile(dtype):
    scratch = scratch_for(100, 30, 256, np.dtype(dtype))
    assert scratch.shape == (100, 30) and scratch.dtype == dtype
