"""Freivalds' check of a tile from its panels: never fails a right tile, catches a wrong one."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from blockdist.tilecheck import TileCheck


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
            part.add_panels(a[:, lo:hi], b[lo:hi])
        parts.append(part)
    check = parts[0]
    for part in parts[1:]:
        check = check.merge(part)
    c = a @ b
    assert check.ratio(c, k) <= 1.0
    wrong = c.copy()
    wrong[m // 2, n // 2] += 1 + abs(c).max()
    assert check.ratio(wrong, k) > 1.0
