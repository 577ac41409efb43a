"""Ranking a tile of scores (:func:`blockdist.worker.topk.select`) is a stable argsort of −S cut to
k: both of its ways (the bound from column groups' maxima, and the exact partition it falls back
on), with ties, NaN (ranked lowest), integers and k up to the tile's width."""

from __future__ import annotations

import numpy as np
import pytest

from blockdist.worker.stats import TaskStats
from blockdist.worker.topk import GROUPS_PER_KEPT, Candidates, _screened, merge, select


def _reference(x: np.ndarray, k: int) -> np.ndarray:
    if x.dtype.kind in "iu":
        return np.argsort(~x, axis=1, kind="stable")[:, :k]
    nan = np.isnan(x)  # NaN below every number, -inf included
    position = np.broadcast_to(np.arange(x.shape[1]), x.shape)
    return np.lexsort((position, np.where(nan, 0, -x), nan), axis=1)[:, :k]


@pytest.mark.parametrize("trial", range(40))
def test_select_is_a_stable_argsort_cut_to_k(trial):
    rng = np.random.default_rng(trial)
    rows, cols = int(rng.integers(1, 30)), int(rng.integers(1, 2500))
    kind = trial % 4
    if kind == 0:
        x = rng.standard_normal((rows, cols)).astype(rng.choice(["float32", "float64"]))
    elif kind == 1:
        x = rng.integers(0, 3, (rows, cols)).astype(np.float64)  # ties everywhere
    elif kind == 2:
        x = rng.integers(-2**62, 2**62, (rows, cols)) if trial % 8 == 2 else rng.integers(-1, 2, (rows, cols))
    else:
        x = rng.standard_normal((rows, cols))
        x[rng.random(x.shape) < 0.4] = np.nan
        x[rng.random(x.shape) < 0.05] = -np.inf
    k = int(rng.integers(1, cols + 1)) if trial % 5 == 0 else int(rng.integers(1, max(2, min(cols, 40))))
    indices, scores = select(x, 11, k)
    want = _reference(x, k)
    np.testing.assert_array_equal(indices, want + 11)
    np.testing.assert_array_equal(scores, np.take_along_axis(x, want, axis=1))


def test_the_bound_is_used_where_it_screens_and_declines_where_it_cannot():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 5000))
    assert 3 * GROUPS_PER_KEPT < 5000 and _screened(x, 3, 0) is not None
    assert _screened(np.zeros((4, 5000)), 3, 0) is None  # every value at the bound: the exact way
    nan_rows = np.full((2, 5000), np.nan)
    nan_rows[:, :2] = 1.0
    assert _screened(nan_rows, 3, 0) is None


def test_merge_keeps_the_best_k_across_column_tiles():
    a = Candidates(np.array([[4, 1]]), np.array([[5.0, 2.0]]), TaskStats(tasks=1))
    b = Candidates(np.array([[9, 7]]), np.array([[5.0, 3.0]]), TaskStats(tasks=1))
    merged = merge(3, a, b)
    np.testing.assert_array_equal(merged.indices, [[4, 9, 7]])
    np.testing.assert_array_equal(merged.scores, [[5.0, 5.0, 3.0]])
    assert merged.stats.tasks == 2
