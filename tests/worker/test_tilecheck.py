"""Freivalds' check of a tile from its panels: never fails a right tile, catches a wrong one."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from blockdist.worker.tilecheck import TileCheck


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 60), st.integers(1, 300), st.integers(1, 60), st.integers(1, 4),
       st.sampled_from(["float32", "float64", "complex64", "complex128"]), st.integers(1, 5))
def test_right_tiles_pass_and_a_changed_element_fails(m, k, n, trials, dtype, splits):
    rng = np.random.default_rng(m * k * n)
    a = (rng.standard_normal((m, k)) * 10).astype(dtype)
    b = (rng.standard_normal((k, n)) * 10).astype(dtype)
    edges = np.linspace(0, k, splits + 1).astype(int)
    parts = []
    for lo, hi in zip(edges, edges[1:]):
        part = TileCheck(m, (0, n), trials, seed=7, dtype=np.dtype(dtype))
        if hi > lo:
            part.add_panels([(0, a[:, lo:hi])], [(0, b[lo:hi])])
        parts.append(part)
    check = parts[0]
    for part in parts[1:]:
        check = check + part
    c = a @ b
    assert check.ratio(c, k) <= 1.0
    wrong = c.copy()
    wrong[m // 2, n // 2] += 1 + abs(c).max()
    assert check.ratio(wrong, k) > 1.0


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 40), st.integers(1, 50), st.integers(2, 40), st.booleans(), st.booleans(),
       st.sampled_from(["float64", "complex64", "complex128"]))
def test_blocks_and_conjugated_operands_check_as_one_panel(m, k, n, conjugate_a, conjugate_b, dtype):
    """A mapped panel comes as row blocks of A and column blocks of B, conjugated by BLAS."""
    rng = np.random.default_rng(m * k * n + conjugate_a + 2 * conjugate_b)
    a = (rng.standard_normal((m, k)) + (1j * rng.standard_normal((m, k)) if "complex" in dtype else 0)).astype(dtype)
    b = (rng.standard_normal((k, n)) + (1j * rng.standard_normal((k, n)) if "complex" in dtype else 0)).astype(dtype)
    check = TileCheck(m, (0, n), 2, seed=3, dtype=np.dtype(dtype))
    check.add_panels([(0, a[: m // 2]), (m // 2, a[m // 2 :])], [(0, b[:, : n // 3]), (n // 3, b[:, n // 3 :])],
                     conjugate_a=conjugate_a, conjugate_b=conjugate_b)
    c = (np.conjugate(a) if conjugate_a else a) @ (np.conjugate(b) if conjugate_b else b)
    assert check.ratio(c, k) <= 1.0
    wrong = c.copy()
    wrong[m - 1, n - 1] += 1 + abs(c).max()
    assert check.ratio(wrong, k) > 1.0


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 60), st.integers(1, 300), st.integers(2, 60), st.sampled_from(["float32", "float64"]),
       st.integers(0, 2**31))
def test_an_error_ten_times_the_tolerance_is_caught_and_it_is_small(m, k, n, dtype, seed):
    """The check is sharp: an error of ten tolerances in one element fails it; in float64 such an
    error is a tiny share of the element (the tolerance grows with (k + n)·eps·n·|A|·|B|)."""
    from blockdist.worker.tilecheck import tolerance

    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    check = TileCheck(m, (0, n), 3, seed=seed, dtype=np.dtype(dtype))
    check.add_panels([(0, a)], [(0, b)])
    c = a @ b
    i, j = rng.integers(m), rng.integers(n)
    scale = check.bound[i] + np.abs(c[i]) @ np.abs(check.x)
    allowed = tolerance(scale, k + n + 3, np.dtype(dtype)).min()
    wrong = c.copy()
    wrong[i, j] += 10 * allowed
    assert check.ratio(wrong, k) > 1.0
    assert check.ratio(c, k) <= 1.0
    if dtype == "float64":
        assert 10 * allowed < 1e-6 * max(1.0, float(np.abs(c).max()))
