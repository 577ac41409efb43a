"""Turn a :class:`~blockdist.planning.Plan` into tasks on a Dask cluster.

A :class:`Graph` is the plan plus what every task of the job is told: the operand specs, the
output and its finish, the check. Keys group on the dashboard by prefix:
``blockdist-gemm-<token>-i-j`` for streaming tiles, ``blockdist-partial-…``,
``blockdist-band-…`` and ``blockdist-reduce-…`` for split-k. Tasks carry store references and slices, never array
data. A task writes whole output chunks of its own tile (and, in a symmetric product, of its
mirror image) and nothing else; in-place updates go through staged, marked tiles
(:mod:`blockdist.worker.finish`). Retries are therefore safe.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..planning import Plan, Tile
from ..planning.grid import panel_edges, reduce_levels
from ..planning.sparse import Runs, panel_runs
from ..storage import ArrayRef
from ..storage.partials import StagedPartials
from ..worker.spec import CheckSpec, Finish, OperandSpec, TileOutput, TileTask
from ..worker.staged import reduce_staged_band, stage_partial
from ..worker.tasks import add_stats, multiply_tile, partial_tile, sum_partials, take_band, write_sum
from . import settings

if TYPE_CHECKING:
    from distributed import Client, Future


def operand_spec(ref: ArrayRef, plan: Plan, is_a: bool, *, transpose: bool = False,
                 conjugate: bool = False) -> OperandSpec:
    """How the plan's tasks read A (``is_a``) or B."""
    operand = plan.a if is_a else plan.b
    kchunk = min(operand.chunks[1] if is_a else operand.chunks[0], plan.k)
    return OperandSpec(ref, operand.panel_depth, kchunk, transpose, conjugate, operand.mapped)


@dataclass(frozen=True)
class Graph:
    """Everything the tasks of one job are told, before it is submitted."""

    plan: Plan
    a: OperandSpec
    b: OperandSpec
    out: ArrayRef
    finish: Finish = Finish()
    check: CheckSpec | None = None
    #: split-k partials staged in scratch storage (``partials="storage"``); None: held in memory
    staged: StagedPartials | None = None
    job: str = ""  #: the job's token: tasks send their progress under it ("" sends none)

    def refs(self) -> list[ArrayRef | None]:
        """Every array the job's tasks open."""
        staged = [self.staged.data, self.staged.markers] if self.staged is not None else []
        return [self.a.ref, self.b.ref, self.out, self.finish.c0, self.finish.stage, self.finish.markers, *staged]

    def tile_tasks(self) -> Iterator[tuple[Tile, list[TileTask]]]:
        """For each output tile to compute, its block products: one per k range, or where blocks
        are absent one per k range with present work, each told which stretches of its panels
        to read (a tile with none: one task that reads nothing, for its beta·C0 or its ranks), in
        the plan's :meth:`~blockdist.planning.Plan.submission_order`."""
        plan, ks = self.plan, self.plan.k_edges
        interval = float(settings.get("progress-interval")) if self.job else 0.0
        for tile in plan.submission_order():
            yield tile, [
                TileTask(rows=tile.rows, cols=tile.cols, ks=(ks[p], ks[p + 1]), a=self.a, b=self.b,
                         kernel_rows=plan.kernel_rows, dtype=plan.dtype, check=self.check, blas=plan.blas_kernel,
                         square=plan.syrk_diagonals and tile.rows == tile.cols, job=self.job, tile=tile.number,
                         progress_interval=interval, **self._runs(tile, ks[p], ks[p + 1]))
                for p in plan.present_pieces(tile) or [0]
            ]

    def _runs(self, tile: Tile, k0: int, k1: int) -> dict[str, tuple[Runs, ...] | None]:
        """What a task's panels read where blocks are absent (panels one k-chunk deep)."""
        if not self.plan.zero_blocks:
            return {}
        a_edges = panel_edges(k0, k1, self.a.kchunk, self.a.kchunk)
        b_edges = panel_edges(k0, k1, self.b.kchunk, self.b.kchunk)
        a_runs, b_runs = panel_runs(self.plan.a.layout, self.plan.b.layout, (tile.rows, tile.cols), a_edges, b_edges)
        return {"a_runs": a_runs, "b_runs": b_runs}

    def submit(self, client: Client, token: str, skip: frozenset[int] | set[int] = frozenset()
               ) -> dict[Future, int]:
        """Submit the tasks of every tile not in ``skip``; each returned future resolves to the
        ``TaskStats`` of its tile, and maps to the tile's number."""
        futures: dict[Future, int] = {}
        retries = settings.get("retries")
        for tile, pieces in self.tile_tasks():
            if tile.number in skip:
                continue
            output = TileOutput(self.out, tile.number, tile.rows, tile.cols, self.finish)
            name = f"{token}-{tile.i}-{tile.j}"
            if len(pieces) == 1:
                future = client.submit(multiply_tile, pieces[0], output, key=f"blockdist-gemm-{name}", pure=False,
                                       retries=retries)
            else:
                future = self._reduce(client, name, tile, pieces, output, retries)
            futures[future] = tile.number
        return futures

    def _reduce(self, client: Client, name: str, tile: Tile, pieces: list[TileTask], output: TileOutput,
                retries: int) -> Future:
        """Partial tiles of a split-k tile, summed band by band (a tree of ``reduce_fan_in`` each)."""
        if self.staged is not None:
            return self._reduce_staged(client, name, tile, pieces, output, retries)
        partials = [client.submit(partial_tile, piece, key=f"blockdist-partial-{name}-{s}", pure=False,
                                  retries=retries)
                    for s, piece in enumerate(pieces)]
        edges = self.plan.band_edges(tile, whole=self.finish.stage is not None)
        if len(edges) == 2:
            return self._tree(client, name, partials, output, retries)
        roots = []
        for band, (lo, hi) in enumerate(zip(edges, edges[1:])):
            cut = [client.submit(take_band, part, lo, hi, band == 0, key=f"blockdist-band-{name}-{band}-{s}",
                                 pure=False, retries=retries)
                   for s, part in enumerate(partials)]
            rows = (tile.rows[0] + lo, tile.rows[0] + hi)
            roots.append(self._tree(client, f"{name}-{band}", cut, replace(output, rows=rows), retries))
        return client.submit(add_stats, *roots, key=f"blockdist-reduce-{name}-done", pure=False, retries=retries)

    def _reduce_staged(self, client: Client, name: str, tile: Tile, pieces: list[TileTask], output: TileOutput,
                       retries: int) -> Future:
        """Partials written to scratch storage, each band read back from all of them and summed."""
        partials = [client.submit(stage_partial, piece, self.staged, tile.number, s,
                                  key=f"blockdist-partial-{name}-{s}", pure=False, retries=retries)
                    for s, piece in enumerate(pieces)]
        edges = self.plan.band_edges(tile, whole=self.finish.stage is not None)
        roots = [client.submit(reduce_staged_band, replace(output, rows=(tile.rows[0] + lo, tile.rows[0] + hi)),
                               self.plan.k, self.staged, (lo, hi), band == 0, *partials,
                               key=f"blockdist-reduce-{name}-{band}-root", pure=False, retries=retries)
                 for band, (lo, hi) in enumerate(zip(edges, edges[1:]))]
        if len(roots) == 1:
            return roots[0]
        return client.submit(add_stats, *roots, key=f"blockdist-reduce-{name}-done", pure=False, retries=retries)

    def _tree(self, client: Client, name: str, level: list[Future], output: TileOutput, retries: int) -> Future:
        """Sum ``level``'s pieces ``reduce_fan_in`` at a time; the root finishes and writes ``output``."""
        *inner, _root = reduce_levels(len(level), self.plan.reduce_fan_in) or [[]]
        for depth, groups in enumerate(inner):
            level = [client.submit(sum_partials, *level[lo:hi], key=f"blockdist-reduce-{name}-{depth}-{lo}",
                                   pure=False, retries=retries)
                     for lo, hi in groups]
        return client.submit(write_sum, output, self.plan.k, *level, key=f"blockdist-reduce-{name}-root",
                             pure=False, retries=retries)
