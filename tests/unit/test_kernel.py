"""The cache-tiled kernel against numpy, for every dtype and for strided panel views."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockdist.kernel import accumulate, cache_sizes, scratch_for

DTYPES = ["float32", "float64", "complex64", "complex128", "int64"]


def data(rng, shape, dtype):
    values = rng.standard_normal(shape) * 4
    if np.dtype(dtype).kind == "c":
        values = values + 1j * rng.standard_normal(shape)
    return values.astype(dtype)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 90), st.integers(1, 90), st.integers(1, 90), st.integers(1, 40),
       st.sampled_from(DTYPES), st.integers(0, 5))
def test_accumulate_adds_the_product_in_place(m, k, n, rows, dtype, pad):
    rng = np.random.default_rng(m * 10_000 + k * 100 + n)
    wide_a = data(rng, (m, k + pad), dtype)
    a = wide_a[:, pad:]  # a column-slice view, as tasks pass panel overlaps
    b = data(rng, (k, n), dtype)
    c0 = data(rng, (m, n), dtype)
    c = c0.copy()
    accumulate(c, a, b, scratch_for(m, n, rows, np.dtype(dtype)))
    expected = c0 + a @ b
    if np.dtype(dtype).kind in "iu":
        np.testing.assert_array_equal(c, expected)
    else:
        tol = 50 * k * np.finfo(dtype).eps
        np.testing.assert_allclose(c, expected, rtol=tol, atol=tol * (np.abs(a) @ np.abs(b)).max())


def test_accumulate_never_reallocates_c():
    c = np.zeros((64, 32))
    before = c.__array_interface__["data"][0]
    accumulate(c, np.ones((64, 8)), np.ones((8, 32)), np.empty((16, 32)))
    assert c.__array_interface__["data"][0] == before
    assert (c == 8).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_scratch_matches_the_tile(dtype):
    scratch = scratch_for(100, 30, 256, np.dtype(dtype))
    assert scratch.shape == (100, 30) and scratch.dtype == dtype


def test_cache_sizes_are_positive_where_known():
    assert all(size > 0 for size in cache_sizes().values())
