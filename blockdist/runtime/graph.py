"""Turn a :class:`~blockdist.planning.Plan` into tasks on a Dask cluster.

A :class:`Graph` is the plan plus what every task of the job is told: the operand specs, the
output and its finish, the check. Keys group on the dashboard by prefix:
``blockdist-gemm-<token>-i-j`` for streaming tiles, ``blockdist-partial-…``,
``blockdist-band-…`` and ``blockdist-reduce-…`` for split-k. Tasks carry store references and slices, never array
data. A task writes whole storage objects of the output (shards, or chunks where it has none)
that no other task writes — of its tile or band, and, in a symmetric product, of its mirror
image — and nothing else (:meth:`Graph.check_writes` refuses a job that would break this);
in-place updates go through staged, marked tiles (:mod:`blockdist.worker.finish`). Retries are
therefore safe. With a check, a task of its own reads each written band back once its writer
is done (``blockdist-check-…``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..planning import Plan, Tile
from ..planning.grid import panel_edges, reduce_levels
from ..planning.sparse import Runs, panel_runs
from ..planning.writes import Region, WriteUnit, check_writes, sharing
from ..storage import ArrayRef
from ..storage.partials import StagedPartials
from ..worker.spec import CheckSpec, Finish, OperandSpec, TileOutput, TileTask
from ..worker.staged import reduce_staged_band, stage_partial
from ..worker.tasks import (
    add_stats,
    check_region,
    multiply_tile,
    partial_tile,
    sum_partials,
    take_band,
    write_sum,
)
from . import settings

if TYPE_CHECKING:
    from distributed import Client, Future

    #: the tasks that write a tile's bands, each with the band it writes
    Writers = list[tuple[TileOutput, Future]]


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
    #: C0 is the output, updated tile by tile through a stage: each tile is written whole
    in_place: bool = False
    #: split-k partials will be staged (set before :attr:`staged` is, which :meth:`regions` tells)
    partials_staged: bool = False
    #: the output's storage objects as stored (None: as the plan makes them)
    write_unit: WriteUnit | None = None

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

    def bands(self, tile: Tile) -> list[tuple[int, int]]:
        """The rows of ``tile`` each of its writing tasks writes: one range when the tile is
        written whole (streaming, a diagonal tile of a symmetric product, an in-place update),
        else one a reduce band. Every task that writes the output writes one of these."""
        whole = self.in_place or self.finish.stage is not None
        edges = self.plan.band_edges(tile, whole=whole)
        return [(tile.rows[0] + lo, tile.rows[0] + hi) for lo, hi in itertools.pairwise(edges)]

    def regions(self) -> Iterator[tuple[str, Region]]:
        """What the job's tasks write, by array: each band of the output (and its mirror image),
        each tile of the in-place stage, each partial tile staged."""
        for tile in self.plan.grid.tiles():
            for band, rows in enumerate(self.bands(tile)):
                writer = f"tile {tile.number}" + (f", band {band}" if rows != tile.rows else "")
                yield "output", Region(writer, rows, tile.cols)
                if self.finish.mirror and tile.rows != tile.cols:
                    yield "output", Region(f"the mirror image of {writer}", tile.cols, rows)
            if self.in_place:
                yield "stage", Region(f"tile {tile.number}", tile.rows, tile.cols)
            if self.plan.k_splits > 1 and (self.partials_staged or self.staged is not None):
                yield "partials", Region(f"tile {tile.number}'s partials", tile.rows, tile.cols)

    def check_writes(self, output: WriteUnit) -> None:
        """Refuse the job before it writes anything if two of its tasks would write one storage
        object of any array, or a task part of one (:func:`~blockdist.planning.writes.check_writes`):
        ``output`` is the output's unit as stored; the stage has its chunks, unsharded, and the
        staged partials the plan's output chunks."""
        units = {"output": output, "stage": WriteUnit(output.shape, output.chunks),
                 "partials": WriteUnit(output.shape, self.plan.out_chunks)}
        names = {"output": str(self.out), "stage": f"the in-place stage of {self.out}",
                 "partials": f"the staged partials of {self.out}"}
        regions: dict[str, list[Region]] = {}
        for array, region in self.regions():
            regions.setdefault(array, []).append(region)
        for array, written in regions.items():
            check_writes(names[array], units[array], written)

    def submit(self, client: Client, token: str, skip: frozenset[int] | set[int] = frozenset()
               ) -> dict[Future, int]:
        """Submit the tasks of every tile not in ``skip``; each returned future resolves to the
        ``TaskStats`` of its tile (checked, if asked), and maps to the tile's number."""
        retries = settings.get("retries")
        written: list[tuple[int, str, Writers]] = []
        for tile, pieces in self.tile_tasks():
            if tile.number in skip:
                continue
            output = TileOutput(self.out, tile.number, tile.rows, tile.cols, self.finish)
            name = f"{token}-{tile.i}-{tile.j}"
            if len(pieces) == 1:
                gemm = client.submit(multiply_tile, pieces[0], output, key=f"blockdist-gemm-{name}",
                                     pure=False, retries=retries)
                writers = [(output, gemm)]
            elif self.staged is not None:
                writers = self._reduce_staged(client, name, tile, pieces, output, retries)
            else:
                writers = self._reduce(client, name, tile, pieces, output, retries)
            written.append((tile.number, name, writers))
        others = self._other_writers([w for _, _, writers in written for w in writers]) if self.check else {}
        return {self._checked(client, name, writers, others, retries): number
                for number, name, writers in written}

    def _other_writers(self, writers: Writers) -> dict[str, list[Future]]:
        """For each writing task (by key), the other tasks writing one of the storage objects it
        writes: none, where the plan is right (:meth:`check_writes` refuses any)."""
        regions, owners = [], []
        for output, future in writers:
            regions.append(Region(str(future.key), output.rows, output.cols))
            owners.append(future)
            if self.finish.mirror and output.rows != output.cols:
                regions.append(Region(str(future.key), output.cols, output.rows))
                owners.append(future)
        shared = sharing(self.write_unit or self.plan.write_unit, regions)
        others: dict[str, list[Future]] = {}
        for index, future in enumerate(owners):
            found = others.setdefault(str(future.key), [])
            found += [owners[o] for o in shared[index]
                      if owners[o].key != future.key and owners[o] not in found]
        return others

    def _checked(self, client: Client, name: str, writers: Writers, others: dict[str, list[Future]],
                 retries: int) -> Future:
        """The tile's figures: with a check, each written band read back by a task of its own
        once its writer is done, and every other task writing one of its storage objects."""
        if self.check is not None:
            writers = [(output, client.submit(check_region, output, writer, *others.get(str(writer.key), ()),
                                              pure=False, retries=retries,
                                              key=f"blockdist-check-{name}-{band}"))
                       for band, (output, writer) in enumerate(writers)]
        if len(writers) == 1:
            return writers[0][1]
        futures = [future for _, future in writers]
        return client.submit(add_stats, *futures, key=f"blockdist-reduce-{name}-done", pure=False,
                             retries=retries)

    def _reduce(self, client: Client, name: str, tile: Tile, pieces: list[TileTask], output: TileOutput,
                retries: int) -> Writers:
        """Partial tiles of a split-k tile, summed band by band (a tree of ``reduce_fan_in`` each)."""
        partials = [client.submit(partial_tile, piece, key=f"blockdist-partial-{name}-{s}", pure=False,
                                  retries=retries)
                    for s, piece in enumerate(pieces)]
        bands = self.bands(tile)
        if len(bands) == 1:
            return [(output, self._tree(client, name, partials, output, retries))]
        roots = []
        for band, rows in enumerate(bands):
            lo, hi = rows[0] - tile.rows[0], rows[1] - tile.rows[0]
            cut = [client.submit(take_band, part, lo, hi, band == 0, key=f"blockdist-band-{name}-{band}-{s}",
                                 pure=False, retries=retries)
                   for s, part in enumerate(partials)]
            band_output = replace(output, rows=rows)
            roots.append((band_output, self._tree(client, f"{name}-{band}", cut, band_output, retries)))
        return roots

    def _reduce_staged(self, client: Client, name: str, tile: Tile, pieces: list[TileTask],
                       output: TileOutput, retries: int) -> Writers:
        """Partials written to scratch storage, each band read back from all of them and summed."""
        partials = [client.submit(stage_partial, piece, self.staged, tile.number, s,
                                  key=f"blockdist-partial-{name}-{s}", pure=False, retries=retries)
                    for s, piece in enumerate(pieces)]
        roots = []
        for band, rows in enumerate(self.bands(tile)):
            band_output = replace(output, rows=rows)
            within = (rows[0] - tile.rows[0], rows[1] - tile.rows[0])
            root = client.submit(reduce_staged_band, band_output, self.plan.k, self.staged, within, band == 0,
                                 *partials, key=f"blockdist-reduce-{name}-{band}-root", pure=False,
                                 retries=retries)
            roots.append((band_output, root))
        return roots

    def _tree(self, client: Client, name: str, level: list[Future], output: TileOutput, retries: int) -> Future:
        """Sum ``level``'s pieces ``reduce_fan_in`` at a time; the root finishes and writes ``output``."""
        *inner, _root = reduce_levels(len(level), self.plan.reduce_fan_in) or [[]]
        for depth, groups in enumerate(inner):
            level = [client.submit(sum_partials, *level[lo:hi], key=f"blockdist-reduce-{name}-{depth}-{lo}",
                                   pure=False, retries=retries)
                     for lo, hi in groups]
        return client.submit(write_sum, output, self.plan.k, *level, key=f"blockdist-reduce-{name}-root",
                             pure=False, retries=retries)
