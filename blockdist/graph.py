"""Turn a :class:`~blockdist.plan.Plan` into tasks on a Dask cluster.

Keys group on the dashboard by prefix: ``blockdist-gemm-<token>-i-j`` for streaming tiles,
``blockdist-partial-…`` and ``blockdist-reduce-…`` for split-k. Tasks carry store
references and slices, never array data. Every task writes whole output chunks and nothing
else, so retries are safe.
"""

from __future__ import annotations

from distributed import Client, Future

from .plan import Plan
from .store import ArrayRef
from .tasks import TileTask, multiply_tile, partial_tile, sum_partials, write_sum

RETRIES = 2


def tile_tasks(plan: Plan, allow_missing_chunks: bool = False, verify_trials: int = 0, verify_seed: int = 0,
               ) -> list[tuple[int, int, list[TileTask]]]:
    """For each output tile ``(i, j)``, its block products (one per k range)."""
    out = []
    rows, cols, ks = plan.row_edges, plan.col_edges, plan.k_edges
    for i, (r0, r1) in enumerate(zip(rows, rows[1:])):
        for j, (c0, c1) in enumerate(zip(cols, cols[1:])):
            pieces = [
                TileTask(
                    rows=(r0, r1), cols=(c0, c1), ks=(k0, k1),
                    a_depth=plan.a_panel_depth, b_depth=plan.b_panel_depth,
                    a_kchunk=min(plan.a.chunks[1], plan.k), b_kchunk=min(plan.b.chunks[0], plan.k),
                    kernel_rows=plan.kernel_rows, dtype=plan.dtype,
                    allow_missing_chunks=allow_missing_chunks, verify_trials=verify_trials,
                    verify_seed=verify_seed,
                )
                for k0, k1 in zip(ks, ks[1:])
            ]
            out.append((i, j, pieces))
    return out


def submit_plan(
    client: Client, plan: Plan, a: ArrayRef, b: ArrayRef, out: ArrayRef, token: str,
    skip: frozenset[int] | set[int] = frozenset(), allow_missing_chunks: bool = False,
    verify_trials: int = 0, verify_seed: int = 0,
) -> dict[Future, int]:
    """Submit the tasks of every tile not in ``skip``; each returned future resolves to the
    ``TaskStats`` of its tile, and maps to the tile's number (``i * tile_columns + j``)."""
    futures: dict[Future, int] = {}
    columns = plan.tile_grid[1]
    for i, j, pieces in tile_tasks(plan, allow_missing_chunks, verify_trials, verify_seed):
        tile = i * columns + j
        if tile in skip:
            continue
        if len(pieces) == 1:
            futures[client.submit(
                multiply_tile, a, b, out, pieces[0],
                key=f"blockdist-gemm-{token}-{i}-{j}", pure=False, retries=RETRIES,
            )] = tile
            continue
        level = [
            client.submit(partial_tile, a, b, piece, key=f"blockdist-partial-{token}-{i}-{j}-{s}",
                          pure=False, retries=RETRIES)
            for s, piece in enumerate(pieces)
        ]
        depth = 0
        while len(level) > plan.reduce_fan_in:
            level = [
                client.submit(sum_partials, *level[g : g + plan.reduce_fan_in],
                              key=f"blockdist-reduce-{token}-{i}-{j}-{depth}-{g}", pure=False,
                              retries=RETRIES)
                for g in range(0, len(level), plan.reduce_fan_in)
            ]
            depth += 1
        futures[client.submit(
            write_sum, out, pieces[0].rows, pieces[0].cols, plan.k, *level,
            key=f"blockdist-reduce-{token}-{i}-{j}-root", pure=False, retries=RETRIES,
        )] = tile
    return futures
