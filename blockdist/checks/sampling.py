"""Check a product against numpy on a sample of rows and columns (the demo's check)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..storage import Array


def error_bound(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise bound on the rounding error of ``a @ b``: ``2·k·eps·(|a| @ |b|)``."""
    dtype = np.result_type(a, b)
    eps = np.finfo(dtype).eps if dtype.kind in "fc" else 0.0
    k = a.shape[1]
    return 2 * k * eps * (np.abs(a) @ np.abs(b)) + np.finfo(np.float64).tiny


@dataclass(frozen=True, slots=True)
class SampleCheck:
    rows: int
    cols: int
    max_error: float  #: the largest |C − A·B| on the sample
    max_ratio: float  #: the largest error as a share of its bound (≤ 1 passes)

    @property
    def ok(self) -> bool:
        return self.max_ratio <= 1.0


def sample_check(a: Array, b: Array, c: Array, *, samples: int = 32, seed: int = 0) -> SampleCheck:
    """Compare ``samples`` rows × ``samples`` columns of ``c`` with numpy's product."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(c.shape[0], min(samples, c.shape[0]), replace=False))
    cols = np.sort(rng.choice(c.shape[1], min(samples, c.shape[1]), replace=False))
    a_rows = a.get_orthogonal_selection((rows, slice(None)))
    b_cols = b.get_orthogonal_selection((slice(None), cols))
    expected = a_rows @ b_cols
    got = c.get_orthogonal_selection((rows, cols))
    error = np.abs(got - expected)
    ratio = error / error_bound(a_rows, b_cols)
    return SampleCheck(len(rows), len(cols), float(error.max()), float(ratio.max()))
