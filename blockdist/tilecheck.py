"""Freivalds' check of one output tile from the panels its task already holds (numpy only).

While a task streams its k-panels it also accumulates, for random ±1 vectors X_J of the
tile's columns::

    ab_x  += A[I, kp] · (B[kp, J] · X_J)        bound += |A[I, kp]| · (|B[kp, J]| · |X_J|)

and when its C tile is final compares ``C[I, J] · X_J`` with ``ab_x``. The extra work is
O((tm + tn)·k) per trial against the task's O(tm·tn·k), and no input is read again.
"""

from __future__ import annotations

import numpy as np

#: Safety factor on the rounding bound (shared with blockdist.freivalds).
TOLERANCE_FACTOR = 4.0


class TileCheck:
    """Running sums of one tile's check; partial checks of a split-k tile merge by adding."""

    def __init__(self, rows: int, cols: tuple[int, int], trials: int, seed: int, dtype: np.dtype) -> None:
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(cols[0],)))
        self.x = rng.choice(np.array([-1, 1], dtype=dtype), size=(cols[1] - cols[0], trials))
        self.ab_x = np.zeros((rows, trials), dtype=dtype)
        self.bound = np.zeros((rows, trials), dtype=np.abs(self.x).dtype)

    def add_panels(self, a: np.ndarray, b: np.ndarray) -> None:
        self.ab_x += a @ (b @ self.x)
        self.bound += np.abs(a) @ (np.abs(b) @ np.abs(self.x))

    def merge(self, other: TileCheck) -> TileCheck:
        self.ab_x += other.ab_x
        self.bound += other.bound
        return self

    def ratio(self, c: np.ndarray, k: int, row_block: int = 256) -> float:
        """The largest residual of ``c · X`` against the tolerance (≤ 1 passes)."""
        dtype = c.dtype
        eps = np.finfo(dtype).eps if dtype.kind in "fc" else 0.0
        worst = 0.0
        for start in range(0, c.shape[0], row_block):
            block = c[start : start + row_block]
            residual = np.abs(block @ self.x - self.ab_x[start : start + row_block])
            scale = self.bound[start : start + row_block] + np.abs(block) @ np.abs(self.x)
            tolerance = TOLERANCE_FACTOR * (k + c.shape[1]) * eps * scale + np.finfo(np.float64).tiny
            worst = max(worst, float((residual / tolerance).max()))
        return worst
