"""Turn a :class:`~blockdist.plan.Plan` into tasks on a Dask cluster.

Keys group on the dashboard by prefix: ``blockdist-gemm-<token>-i-j`` for streaming tiles,
``blockdist-partial-…`` and ``blockdist-reduce-…`` for split-k. Tasks carry store
references and slices, never array data. Every task writes whole output chunks and nothing
else, so retries are safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from distributed import Client, Future

from .plan import Plan
from .store import ArrayRef
from .tasks import Finish, TileTask, multiply_tile, partial_tile, sum_partials, write_sum

RETRIES = 2


@dataclass(frozen=True)
class TaskOptions:
    """How every task of a job reads, checks and finishes its tile."""

    allow_missing_chunks: bool = False
    verify_trials: int = 0
    verify_seed: int = 0
    transpose_a: bool = False
    transpose_b: bool = False
    conjugate_a: bool = False
    conjugate_b: bool = False
    symmetric: bool = False  #: compute only tiles on and above the diagonal and mirror them
    finish: Finish = field(default_factory=Finish)


def tile_tasks(plan: Plan, options: TaskOptions = TaskOptions()) -> list[tuple[int, int, list[TileTask]]]:
    """For each output tile ``(i, j)`` to compute, its block products (one per k range)."""
    out = []
    rows, cols, ks = plan.row_edges, plan.col_edges, plan.k_edges
    for i, (r0, r1) in enumerate(zip(rows, rows[1:])):
        for j, (c0, c1) in enumerate(zip(cols, cols[1:])):
            if options.symmetric and j < i:
                continue
            pieces = [
                TileTask(
                    rows=(r0, r1), cols=(c0, c1), ks=(k0, k1),
                    a_depth=plan.a_panel_depth, b_depth=plan.b_panel_depth,
                    a_kchunk=min(plan.a.chunks[1], plan.k), b_kchunk=min(plan.b.chunks[0], plan.k),
                    kernel_rows=plan.kernel_rows, dtype=plan.dtype,
                    allow_missing_chunks=options.allow_missing_chunks, verify_trials=options.verify_trials,
                    verify_seed=options.verify_seed, transpose_a=options.transpose_a,
                    transpose_b=options.transpose_b, conjugate_a=options.conjugate_a,
                    conjugate_b=options.conjugate_b, map_a=plan.a_mapped, map_b=plan.b_mapped,
                )
                for k0, k1 in zip(ks, ks[1:])
            ]
            out.append((i, j, pieces))
    return out


def submit_plan(
    client: Client, plan: Plan, a: ArrayRef, b: ArrayRef, out: ArrayRef, token: str,
    skip: frozenset[int] | set[int] = frozenset(), options: TaskOptions = TaskOptions(),
) -> dict[Future, int]:
    """Submit the tasks of every tile not in ``skip``; each returned future resolves to the
    ``TaskStats`` of its tile, and maps to the tile's number (``i * tile_columns + j``)."""
    futures: dict[Future, int] = {}
    columns = plan.tile_grid[1]
    finish = options.finish
    for i, j, pieces in tile_tasks(plan, options):
        tile = i * columns + j
        if tile in skip:
            continue
        if len(pieces) == 1:
            futures[client.submit(
                multiply_tile, a, b, out, pieces[0], finish, tile,
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
            write_sum, out, pieces[0].rows, pieces[0].cols, plan.k, finish, tile, *level,
            key=f"blockdist-reduce-{token}-{i}-{j}-root", pure=False, retries=RETRIES,
        )] = tile
    return futures
