"""Check C = A·B with Freivalds' algorithm: O(n²) work per trial instead of O(n³).

For random ±1 vectors x (``trials`` of them, the columns of X)::

    C·X  =?  A·(B·X)

compared tile by tile, so a wrong tile is named. Two kinds of tasks run on the cluster:
``blockdist-verify-project`` computes Y_J = B[:, J]·X[J] (and |B|·|X| for the tolerance)
for each band J of C's columns, reading B once; ``blockdist-verify-rows`` reads a band I
of A's and C's rows once and compares C[I, J]·X[J] with A[I, :]·Y_J for every J. The
tolerance grows with (k + n)·eps times |A|·|B|·|X| + |C|·|X|, so rounding never fails a
correct product, while any error of a meaningful size in one element shows.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import numpy as np

from ..storage import ArrayRef, open_counted
from ..worker.tilecheck import tolerance
from .report import TileVerdict, VerifyReport

if TYPE_CHECKING:
    from distributed import Client

#: Most column bands C is cut into (each band's projection is held until the rows are checked).
MAX_BANDS = 32


def _bands(length: int, chunk: int, most: int) -> list[int]:
    chunks = -(-length // chunk)
    per_band = -(-chunks // most)
    return [*range(0, length, per_band * chunk), length]


def _project(b_ref: ArrayRef, cols: tuple[int, int], x: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Y = B[:, cols]·X[cols] and |B[:, cols]|·|X[cols]|, streaming B by its row chunks."""
    b, _ = open_counted(b_ref)
    xs = x[cols[0] : cols[1]].astype(dtype)
    k = b.shape[0]
    step = max(1, b.chunks[0])
    y = np.empty((k, x.shape[1]), dtype=dtype)
    y_abs = np.empty((k, x.shape[1]), dtype=np.abs(xs).dtype)
    for start in range(0, k, step):
        panel = np.asarray(b[start : start + step, cols[0] : cols[1]], dtype=dtype)
        y[start : start + step] = panel @ xs
        y_abs[start : start + step] = np.abs(panel) @ np.abs(xs)
    return y, y_abs


def _check_rows(a_ref: ArrayRef, c_ref: ArrayRef, rows: tuple[int, int], col_edges: list[int],
                x: np.ndarray, dtype: str, *projections: tuple[np.ndarray, np.ndarray]) -> list[float]:
    """The residual ratio of each tile in the band ``rows``."""
    a, _ = open_counted(a_ref)
    c, _ = open_counted(c_ref)
    k = a.shape[1]
    n = c.shape[1]
    ys = np.concatenate([p[0] for p in projections], axis=1)
    ys_abs = np.concatenate([p[1] for p in projections], axis=1)
    ay = np.zeros((rows[1] - rows[0], ys.shape[1]), dtype=dtype)
    ay_abs = np.zeros(ay.shape, dtype=ys_abs.dtype)
    step = max(1, a.chunks[1])
    for start in range(0, k, step):
        panel = np.asarray(a[rows[0] : rows[1], start : start + step], dtype=dtype)
        ay += panel @ ys[start : start + step]
        ay_abs += np.abs(panel) @ ys_abs[start : start + step]
    trials = x.shape[1]
    ratios = []
    for j, (c0, c1) in enumerate(zip(col_edges, col_edges[1:])):
        tile = np.asarray(c[rows[0] : rows[1], c0:c1], dtype=dtype)
        xs = x[c0:c1].astype(dtype)
        cx = tile @ xs
        scale = ay_abs[:, j * trials : (j + 1) * trials] + np.abs(tile) @ np.abs(xs)
        residual = np.abs(cx - ay[:, j * trials : (j + 1) * trials])
        ratios.append(float((residual / tolerance(scale, k + n, np.dtype(dtype))).max()))
    return ratios


def verify_product(client: Client, a: ArrayRef, b: ArrayRef, c: ArrayRef, *, trials: int = 3,
                   seed: int | None = None) -> VerifyReport:
    """Run the check of ``c`` = ``a``·``b`` on the cluster, in bands of C's chunks."""
    c_array, _ = open_counted(c)
    (m, n), chunks, dtype = c_array.shape, c_array.chunks, np.dtype(c_array.dtype).name
    token = uuid.uuid4().hex[:12]
    rng = np.random.default_rng(seed)
    x = rng.choice(np.array([-1.0, 1.0]), size=(n, trials))
    [x_future] = client.scatter([x], broadcast=True, hash=False)
    col_edges = _bands(n, chunks[1], MAX_BANDS)
    row_edges = _bands(m, chunks[0], 4 * MAX_BANDS)
    projections = [
        client.submit(_project, b, (c0, c1), x_future, dtype, key=f"blockdist-verify-project-{token}-{j}",
                      pure=False)
        for j, (c0, c1) in enumerate(zip(col_edges, col_edges[1:]))
    ]
    checks = [
        client.submit(_check_rows, a, c, (r0, r1), col_edges, x_future, dtype, *projections,
                      key=f"blockdist-verify-rows-{token}-{i}", pure=False)
        for i, (r0, r1) in enumerate(zip(row_edges, row_edges[1:]))
    ]
    tiles = []
    for (r0, r1), ratios in zip(zip(row_edges, row_edges[1:]), client.gather(checks)):
        for (c0, c1), ratio in zip(zip(col_edges, col_edges[1:]), ratios):
            tiles.append(TileVerdict((r0, r1), (c0, c1), ratio))
    return VerifyReport(trials, tiles)
