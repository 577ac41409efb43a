"""blockdist.blas.gemm against numpy: every layout BLAS takes, conjugation, beta; refusals."""

import itertools

import numpy as np
import pytest

from blockdist.worker import blas
from tests.conftest import require

require(blas.available(np.dtype("float64")), "scipy's BLAS is not installed")
DTYPES = ["float32", "float64", "complex64", "complex128"]


def embedded(rng, shape, dtype, transposed):
    """A strided view of ``shape`` inside a larger array: row-major, or a transposed view."""
    stored = shape[::-1] if transposed else shape
    values = rng.standard_normal(stored)
    if np.dtype(dtype).kind == "c":
        values = values + 1j * rng.standard_normal(stored)
    big = np.zeros((stored[0] + 3, stored[1] + 5), dtype=dtype)
    view = big[1 : 1 + stored[0], 2 : 2 + stored[1]]
    view[...] = values
    return view.T if transposed else view


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("m", "n", "k"), [(1, 1, 1), (1, 5, 3), (5, 1, 3), (7, 6, 1), (33, 17, 9)])
def test_gemm_matches_numpy_for_every_layout(dtype, m, n, k):
    rng = np.random.default_rng(m * 100 + n * 10 + k)
    complex_ = np.dtype(dtype).kind == "c"
    for ta, tb, ca, cb, beta in itertools.product([False, True], [False, True], [False, True], [False, True],
                                                  [0.0, 1.0, 0.5]):
        if (ca and not (ta and complex_)) or (cb and not (tb and complex_)):
            continue  # BLAS conjugates only transposed operands
        a, b = embedded(rng, (m, k), dtype, ta), embedded(rng, (k, n), dtype, tb)
        frame = np.full((m + 2, n + 4), 0.5, dtype=dtype)
        c = frame[1 : 1 + m, 1 : 1 + n]
        expected = (np.conjugate(a) if ca else a) @ (np.conjugate(b) if cb else b) + beta * c
        assert blas.gemm(c, a, b, beta=beta, conjugate_a=ca, conjugate_b=cb)
        tolerance = 1e-4 if dtype in ("float32", "complex64") else 1e-10
        np.testing.assert_allclose(c, expected, rtol=tolerance, atol=tolerance * k)
        assert (frame[0] == 0.5).all() and (frame[:, -1] == 0.5).all()  # nothing outside c is touched


def test_gemm_refuses_what_blas_cannot_take():
    c = np.zeros((4, 4))
    assert not blas.gemm(c, np.ones((4, 8))[:, ::2], np.ones((4, 4)))  # no unit stride on either axis
    assert not blas.gemm(c, np.ones((4, 4)), np.ones((4, 4)), conjugate_b=True)  # conjugate, not transposed
    assert not blas.gemm(np.zeros((4, 4), dtype=np.int64), np.ones((4, 4), np.int64), np.ones((4, 4), np.int64))
    assert not blas.gemm(c, np.ones((4, 4), np.float32), np.ones((4, 4)))  # mixed dtypes
    assert (c == 0).all()
    with pytest.raises(ValueError, match="read-only"):
        readonly = np.zeros((4, 4))
        readonly.flags.writeable = False
        blas.gemm(readonly, np.ones((4, 4)), np.ones((4, 4)))
