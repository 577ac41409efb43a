"""Freivalds' check of one output tile from the panels its task already holds (numpy only).

While a task streams its k-panels it also accumulates, for random ±1 vectors X_J of the
tile's columns::

    ab_x  += A[I, kp] · (B[kp, J] · X_J)        bound += |A[I, kp]| · (|B[kp, J]| · |X_J|)

and once its tile is written keeps ``alpha·ab_x + beta·C0[I, J]·X_J`` (:class:`WrittenCheck`); a
check task reads the stored tile back once every task writing its storage objects is done and
compares ``C[I, J] · X_J`` with it (:func:`blockdist.worker.tasks.check_region`). The extra work
is O((tm + tn)·k) per trial against the task's O(tm·tn·k); no input is read again, and the
tile (and its mirror image) is read back once.
:func:`tolerance` is the rounding allowance both this check and ``blockdist verify`` use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Safety factor on the rounding bound.
TOLERANCE_FACTOR = 4.0


def tolerance(scale: np.ndarray, depth: int, dtype: np.dtype) -> np.ndarray:
    """The largest residual rounding can explain, elementwise: ``4·depth·eps·scale``.

    ``scale`` is ``|A|·|B|·|X| + |C|·|X|`` and ``depth`` the length of the sums behind it
    (k plus the tile's width); integers get no allowance.
    """
    eps = np.finfo(dtype).eps if np.dtype(dtype).kind in "fc" else 0.0
    return TOLERANCE_FACTOR * depth * eps * scale + np.finfo(np.float64).tiny


class TileCheck:
    """Running sums of one tile's check; partial checks of a split-k tile add up to a new one."""

    def __init__(self, rows: int, cols: tuple[int, int], trials: int, seed: int, dtype: np.dtype) -> None:
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(cols[0],)))
        self.x = rng.choice(np.array([-1, 1], dtype=dtype), size=(cols[1] - cols[0], trials))
        self.ab_x = np.zeros((rows, trials), dtype=dtype)
        self.bound = np.zeros((rows, trials), dtype=np.abs(self.x).dtype)

    def add_panels(self, a_blocks: list[tuple[int, np.ndarray]], b_blocks: list[tuple[int, np.ndarray]],
                   *, conjugate_a: bool = False, conjugate_b: bool = False) -> None:
        """Add one k-segment: op(A)'s row blocks and op(B)'s column blocks, each with its offset.

        A block conjugated by op is used as stored: X is real, so ``conj(M)·v = conj(M·conj(v))``.
        """
        depth = a_blocks[0][1].shape[1]
        b_x = np.zeros((depth, self.x.shape[1]), dtype=self.ab_x.dtype)
        b_x_bound = np.zeros((depth, self.x.shape[1]), dtype=self.bound.dtype)
        for col, b in b_blocks:
            x = self.x[col : col + b.shape[1]]
            b_x += b @ x
            b_x_bound += np.abs(b) @ np.abs(x)
        if conjugate_b:
            b_x = np.conjugate(b_x)
        for row, a in a_blocks:
            rows = slice(row, row + a.shape[0])
            self.ab_x[rows] += np.conjugate(a @ np.conjugate(b_x)) if conjugate_a else a @ b_x
            self.bound[rows] += np.abs(a) @ b_x_bound

    def __add__(self, other: TileCheck) -> TileCheck:
        """The check of two k-ranges of the same tile (neither is changed)."""
        total = object.__new__(TileCheck)
        total.x, total.ab_x, total.bound = self.x, self.ab_x + other.ab_x, self.bound + other.bound
        return total

    def rows(self, lo: int, hi: int) -> TileCheck:
        """The check of rows ``[lo, hi)`` of the tile (a band a split-k reduce writes)."""
        band = object.__new__(TileCheck)
        band.x, band.ab_x, band.bound = self.x, self.ab_x[lo:hi], self.bound[lo:hi]
        return band

    def written(self, k: int, width: int, *, alpha: complex | float = 1, beta: complex | float = 0,
                c0: np.ndarray | None = None) -> WrittenCheck:
        """What the block must satisfy once written: ``C·X`` against ``alpha·A·B·X + beta·C0·X``
        (C0's share worked out now, while the block of C0 is at hand)."""
        expected = alpha * self.ab_x if alpha != 1 else self.ab_x.copy()
        scale = abs(alpha) * self.bound
        if c0 is not None and beta:
            expected = expected + beta * (c0 @ self.x)
            scale = scale + abs(beta) * (np.abs(c0) @ np.abs(self.x))
        # k + width terms in each sum, and alpha's and beta's products and the add on top
        return WrittenCheck(self.ab_x.dtype.name, self.x, expected, scale, k + width + 3)

    def ratio(self, c: np.ndarray, k: int, *, alpha: complex | float = 1, beta: complex | float = 0,
              c0: np.ndarray | None = None) -> float:
        """The largest residual of ``c·X`` against ``alpha·A·B·X + beta·C0·X``, as a share of
        the tolerance (≤ 1 passes)."""
        return self.written(k, c.shape[1], alpha=alpha, beta=beta, c0=c0).ratio(c)


@dataclass(frozen=True)
class WrittenCheck:
    """A written block's check, kept until every task that writes its storage objects is done
    and then applied to what is stored (:func:`blockdist.worker.tasks.check_region`); small:
    ``rows × trials`` numbers. ``expected`` None: the block must equal the in-place stage (an
    earlier try staged it, and C0 is gone)."""

    dtype: str  #: the block's, as written
    x: np.ndarray | None
    expected: np.ndarray | None
    scale: np.ndarray | None  #: ``|alpha|·|A|·|B|·|X| + |beta|·|C0|·|X|``
    depth: int  #: terms in each sum the tolerance allows for

    @classmethod
    def against_stage(cls, dtype: np.dtype) -> WrittenCheck:
        return cls(np.dtype(dtype).name, None, None, None, 0)

    def ratio(self, c: np.ndarray, row_block: int = 256) -> float:
        """The largest residual of ``c·X`` against the expected, as a share of the tolerance."""
        assert self.x is not None and self.expected is not None and self.scale is not None
        worst = 0.0
        for start in range(0, c.shape[0], row_block):
            block, rows = c[start : start + row_block], slice(start, start + row_block)
            residual = np.abs(block @ self.x - self.expected[rows])
            scale = self.scale[rows] + np.abs(block) @ np.abs(self.x)
            worst = max(worst, float((residual / tolerance(scale, self.depth, c.dtype)).max()))
        return worst
