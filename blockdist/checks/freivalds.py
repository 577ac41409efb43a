"""Check C = A·B with Freivalds' algorithm: O(n²) work per trial instead of O(n³).

For random ±1 vectors x (``trials`` of them, the columns of X)::

    C·X  =?  A·(B·X)

compared tile by tile, so a wrong tile is named. Two kinds of tasks run on the cluster:
``blockdist-verify-project`` computes Y_J = B[:, J]·X[J] (and |B|·|X| for the tolerance)
for each band J of C's columns, reading B once; ``blockdist-verify-rows`` reads a band I
of A's and C's rows once and compares C[I, J]·X[J] with A[I, :]·Y_J for every J. The
tolerance grows with (k + n)·eps times |A|·|B|·|X| + |C|·|X|, so rounding never fails a
correct product, while any error of a meaningful size in one element shows.

Zero blocks cost nothing here either. Where A's or B's fill value is 0 and some of their
read units (chunks, or shards) are not stored (the listing :func:`blockdist.verify` makes once,
before any task), a task reads only the stretches of each panel that lie in stored units and
multiplies only those: an absent block adds nothing to B·X or A·Y. A's panels along k where
B stores nothing meet a zero Y and are not read at all. A block-diagonal A and B of b blocks
a side are read and multiplied at 1/b of the dense cost (the report's ``bytes_read`` and
``absent_asked`` say what the tasks asked of storage).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..planning.presence import StoredChunks
from ..planning.sparse import Runs, stored_runs
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


class Projection(NamedTuple):
    """What one ``blockdist-verify-project`` task found: B[:, J]·X[J], |B[:, J]|·|X[J]|, and what it read."""

    y: np.ndarray
    y_abs: np.ndarray
    bytes_read: int
    absent_asked: int  #: chunk keys asked of storage that are not stored


class Presence(NamedTuple):
    """Where the checks may skip zero blocks: a bool per read unit stored (``None``: read it all,
    as where every unit is stored or the fill value is not 0)."""

    a: np.ndarray | None
    b: np.ndarray | None
    #: the stretches of k where B stores anything (``None``: all of k); elsewhere A·Y meets a zero Y
    k_stored: Runs | None = None


def _project(b_ref: ArrayRef, cols: tuple[int, int], x: np.ndarray, dtype: str, present: np.ndarray | None
             ) -> Projection:
    """Y = B[:, cols]·X[cols] and |B[:, cols]|·|X[cols]|, streaming B by its row chunks (only
    their stored stretches, where ``present`` says which read units are stored)."""
    b, store = open_counted(b_ref)
    xs = x[cols[0] : cols[1]].astype(dtype)
    k = b.shape[0]
    step = max(1, b.chunks[0])
    unit = b.shards or b.chunks
    y = np.zeros((k, x.shape[1]), dtype=dtype)
    y_abs = np.zeros((k, x.shape[1]), dtype=np.abs(xs).dtype)
    for start in range(0, k, step):
        stop = min(start + step, k)
        line = present[start // unit[0]] if present is not None else None
        for lo, hi in stored_runs(line, *cols, unit[1]):
            panel = np.asarray(b[start:stop, cols[0] + lo : cols[0] + hi], dtype=dtype)
            y[start:stop] += panel @ xs[lo:hi]
            y_abs[start:stop] += np.abs(panel) @ np.abs(xs[lo:hi])
    return Projection(y, y_abs, store.bytes_read, len(store.missing))


def _meets(runs: Runs | None, lo: int, hi: int) -> bool:
    return runs is None or any(r0 < hi and r1 > lo for r0, r1 in runs)


def _times_y(a_ref: ArrayRef, rows: tuple[int, int], ys: np.ndarray, ys_abs: np.ndarray, presence: Presence
             ) -> tuple[np.ndarray, np.ndarray, int, int]:
    """A[rows, :]·Y and |A[rows, :]|·|Y|, streaming A by its column chunks (only their stored
    stretches, and none where B stores nothing); and what was read."""
    a, store = open_counted(a_ref)
    k = a.shape[1]
    unit = a.shards or a.chunks
    ay = np.zeros((rows[1] - rows[0], ys.shape[1]), dtype=ys.dtype)
    ay_abs = np.zeros(ay.shape, dtype=ys_abs.dtype)
    step = max(1, a.chunks[1])
    for start in range(0, k, step):
        stop = min(start + step, k)
        if not _meets(presence.k_stored, start, stop):
            continue
        line = presence.a[:, start // unit[1]] if presence.a is not None else None
        for lo, hi in stored_runs(line, *rows, unit[0]):
            panel = np.asarray(a[rows[0] + lo : rows[0] + hi, start:stop], dtype=ys.dtype)
            ay[lo:hi] += panel @ ys[start:stop]
            ay_abs[lo:hi] += np.abs(panel) @ ys_abs[start:stop]
    return ay, ay_abs, store.bytes_read, len(store.missing)


def _check_rows(a_ref: ArrayRef, c_ref: ArrayRef, rows: tuple[int, int], col_edges: list[int],
                x: np.ndarray, dtype: str, presence: Presence, *projections: Projection
                ) -> tuple[list[float], int, int]:
    """The residual ratio of each tile in the band ``rows``; the bytes read of A and C, and the
    chunk keys asked that are not stored."""
    c, store = open_counted(c_ref)
    n = c.shape[1]
    ys = np.concatenate([p.y for p in projections], axis=1).astype(dtype, copy=False)
    ys_abs = np.concatenate([p.y_abs for p in projections], axis=1)
    ay, ay_abs, read, absent = _times_y(a_ref, rows, ys, ys_abs, presence)
    k = ys.shape[0]
    trials = x.shape[1]
    ratios = []
    for j, (c0, c1) in enumerate(zip(col_edges, col_edges[1:])):
        tile = np.asarray(c[rows[0] : rows[1], c0:c1], dtype=dtype)
        xs = x[c0:c1].astype(dtype)
        cx = tile @ xs
        scale = ay_abs[:, j * trials : (j + 1) * trials] + np.abs(tile) @ np.abs(xs)
        residual = np.abs(cx - ay[:, j * trials : (j + 1) * trials])
        ratios.append(float((residual / tolerance(scale, k + n, np.dtype(dtype))).max()))
    return ratios, read + store.bytes_read, absent


def _read_of(projection: Projection) -> tuple[int, int]:
    """A projection's bytes read and absent keys asked (so that only they, not Y, come to the client)."""
    return projection.bytes_read, projection.absent_asked


def _presence(b: ArrayRef, stored: tuple[StoredChunks | None, StoredChunks | None]) -> Presence:
    """Which read units of A and B the tasks may skip, from the listing made before any task."""
    a_grid, b_grid = (None if x is None else x.zero_grid() for x in stored)
    if b_grid is None:
        return Presence(a_grid, None)
    b_array, _ = open_counted(b)
    rows = (b_array.shards or b_array.chunks)[0]
    return Presence(a_grid, b_grid, stored_runs(b_grid.any(axis=1), 0, b_array.shape[0], rows))


def verify_product(client: Client, a: ArrayRef, b: ArrayRef, c: ArrayRef, *, trials: int = 3,
                   seed: int | None = None,
                   stored: tuple[StoredChunks | None, StoredChunks | None] = (None, None)) -> VerifyReport:
    """Run the check of ``c`` = ``a``·``b`` on the cluster, in bands of C's chunks; ``stored``:
    the chunks of A and B a listing found (their absent zero blocks are neither read nor multiplied)."""
    c_array, _ = open_counted(c)
    (m, n), chunks, dtype = c_array.shape, c_array.chunks, np.dtype(c_array.dtype).name
    token = uuid.uuid4().hex[:12]
    rng = np.random.default_rng(seed)
    x = rng.choice(np.array([-1.0, 1.0]), size=(n, trials))
    [x_future] = client.scatter([x], broadcast=True, hash=False)
    presence = _presence(b, stored)
    col_edges = _bands(n, chunks[1], MAX_BANDS)
    row_edges = _bands(m, chunks[0], 4 * MAX_BANDS)
    projections = [
        client.submit(_project, b, (c0, c1), x_future, dtype, presence.b, key=f"blockdist-verify-project-{token}-{j}",
                      pure=False)
        for j, (c0, c1) in enumerate(zip(col_edges, col_edges[1:]))
    ]
    checks = [
        client.submit(_check_rows, a, c, (r0, r1), col_edges, x_future, dtype, presence, *projections,
                      key=f"blockdist-verify-rows-{token}-{i}", pure=False)
        for i, (r0, r1) in enumerate(zip(row_edges, row_edges[1:]))
    ]
    reads = [client.submit(_read_of, p, key=f"blockdist-verify-read-{token}-{j}") for j, p in enumerate(projections)]
    tiles, read, absent = [], 0, 0
    for (r0, r1), (ratios, band_read, band_absent) in zip(zip(row_edges, row_edges[1:]), client.gather(checks)):
        tiles += [TileVerdict((r0, r1), (c0, c1), ratio) for (c0, c1), ratio in zip(zip(col_edges, col_edges[1:]), ratios)]
        read, absent = read + band_read, absent + band_absent
    for band_read, band_absent in client.gather(reads):
        read, absent = read + band_read, absent + band_absent
    return VerifyReport(trials, tiles, read, absent)
