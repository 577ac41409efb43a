"""Write units: the storage objects a writing task replaces, and the rule that no two tasks
share one (pure: numpy at most).

A Zarr array is stored as objects — one file (or S3 object) per shard where it is sharded,
per chunk where it is not — and a store can only replace an object whole. A task that
writes part of a shard reads the shard, changes its rows and writes it all back; two tasks
doing that at once lose one's rows without a sound. So every task that writes writes a
*union of whole objects* that no other task writes::

    C 3000×2500 in shards of 1000×1250, one tile whose k is split in two, summed in two bands

         band edge at row 1500                       band edge at row 2000
       0 ┌──────────┬──────────┐                   0 ┌──────────┬──────────┐
         │          │          │                     │  band 0  │          │
    1000 ├──────────┼──────────┤                1000 ├──────────┼──────────┤
    1500 │╌╌╌╌╌╌╌╌╌╌│╌╌╌╌╌╌╌╌╌╌│ two writers         │          │          │
         │          │          │ of each shard  2000 ├──────────┼──────────┤
    2000 ├──────────┼──────────┤                     │  band 1  │          │
    3000 └──────────┴──────────┘                3000 └──────────┴──────────┘

The planner makes it so (tiles of whole shards, band edges on shard edges);
:func:`check_writes` is the guard that refuses a job whose tasks break the rule, whatever the
reason, before anything is written.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..errors import PlanError

Range = tuple[int, int]


@dataclass(frozen=True, slots=True)
class WriteUnit:
    """The storage objects of a 2-D array: shards, or chunks where it has none.

    >>> WriteUnit((3000, 2500), (250, 250), (1000, 1250)).describe()
    'shards 1000×1250 (4×5 chunks of 250×250)'
    >>> WriteUnit((3000, 2500), (250, 250)).describe()
    'chunks 250×250'
    """

    shape: tuple[int, int]
    chunks: tuple[int, int]
    shards: tuple[int, int] | None = None

    @property
    def edges(self) -> tuple[int, int]:
        """The rows and columns of one storage object."""
        return self.shards or self.chunks

    def describe(self) -> str:
        if self.shards is None:
            return f"chunks {self.chunks[0]}×{self.chunks[1]}"
        inside = (self.shards[0] // self.chunks[0], self.shards[1] // self.chunks[1])
        return (f"shards {self.shards[0]}×{self.shards[1]} ({inside[0]}×{inside[1]} chunks of "
                f"{self.chunks[0]}×{self.chunks[1]})")

    def aligned(self, axis: int, at: int) -> bool:
        """Whether offset ``at`` along ``axis`` is an edge between objects (or the array's end)."""
        return at % self.edges[axis] == 0 or at == self.shape[axis]

    def object_of(self, row: int, col: int) -> tuple[Range, Range]:
        """The rows and columns of the object holding element ``(row, col)``."""
        (r, c), (m, n) = self.edges, self.shape
        return ((row // r * r, min(m, (row // r + 1) * r)), (col // c * c, min(n, (col // c + 1) * c)))


def band_alignment(unit: tuple[int, int], symmetric: bool) -> int:
    """Rows a split-k band's edges fall on: the write unit's rows; for a symmetric product,
    whose bands are mirrored into columns, rows and columns alike.

    >>> band_alignment((1000, 1250), False), band_alignment((1000, 1250), True)
    (1000, 5000)
    """
    return math.lcm(unit[0], unit[1]) if symmetric else unit[0]


class Region(NamedTuple):
    """Rows and columns of an array that one task writes."""

    writer: str  #: the task, as people read it ("tile 3, band 1", "the mirror of tile 1")
    rows: Range
    cols: Range

    def __str__(self) -> str:
        return f"{self.writer} (rows {self.rows[0]}:{self.rows[1]}, columns {self.cols[0]}:{self.cols[1]})"


def _misaligned(unit: WriteUnit, region: Region) -> tuple[int, int] | None:
    """An element at a cut of ``region`` that falls inside a storage object, if any."""
    (r0, r1), (c0, c1) = region.rows, region.cols
    for axis, (lo, hi) in enumerate((region.rows, region.cols)):
        for at in (lo, hi):
            if not unit.aligned(axis, at):
                inside = min(at, unit.shape[axis] - 1)
                return (inside, c0) if axis == 0 else (r0, inside)
    return None if r1 > r0 and c1 > c0 else (r0, c0)


def _refusal(name: str, unit: WriteUnit, regions: tuple[Region, Region | None], at: tuple[int, int]
             ) -> PlanError:
    rows, cols = unit.object_of(*at)
    kind = "shard" if unit.shards else "chunk"
    first, second = regions
    who = f"{first} and {second} both write" if second is not None else f"{first} writes part of"
    other = "no shards or other ones (--out-shards)" if unit.shards else "other chunks (--out-chunks)"
    return PlanError(
        f"refusing a plan that could lose writes: {who} the {kind} of {name} at rows {rows[0]}:{rows[1]}, "
        f"columns {cols[0]}:{cols[1]} (write unit: {unit.describe()}), and a store replaces a {kind} whole. "
        f"Nothing was written: give the output {other}, or start a job an older blockdist planned again with "
        "--overwrite; and please report this plan")


def check_writes(name: str, unit: WriteUnit, regions: Iterable[Region]) -> None:
    """Refuse (:class:`~blockdist.errors.PlanError`) tasks that would write part of a storage
    object of ``name``, or one object between two of them.

    Each region must start and end on object edges; then regions that do not overlap share
    no object, which a grid of the regions' own edges tells (its cells, not the objects', so
    the check costs as many cells as the job has writers, give or take).

    >>> unit, whole = WriteUnit((3000, 2500), (250, 250), (1000, 1250)), (0, 2500)
    >>> off_the_edge = [Region("band 0", (0, 1500), whole), Region("band 1", (1500, 3000), whole)]
    >>> check_writes("C", unit, [Region("band 0", (0, 2000), whole), Region("band 1", (2000, 3000), whole)])
    >>> try:
    ...     check_writes("C", unit, off_the_edge)
    ... except PlanError as refused:
    ...     print(str(refused)[40:140])
    band 0 (rows 0:1500, columns 0:2500) writes part of the shard of C at rows 1000:2000, columns 0:1250
    """
    regions = list(regions)
    for region in regions:
        at = _misaligned(unit, region)
        if at is not None:
            raise _refusal(name, unit, (region, None), at)
    row_cuts = np.unique([edge for region in regions for edge in region.rows])
    col_cuts = np.unique([edge for region in regions for edge in region.cols])
    owner = np.full((max(0, len(row_cuts) - 1), max(0, len(col_cuts) - 1)), -1, dtype=np.int64)
    for index, region in enumerate(regions):
        (i0, i1), (j0, j1) = np.searchsorted(row_cuts, region.rows), np.searchsorted(col_cuts, region.cols)
        cells = owner[i0:i1, j0:j1]
        taken = np.argwhere(cells >= 0)
        if len(taken):
            i, j = taken[0]
            other = regions[int(cells[i, j])]
            raise _refusal(name, unit, (other, region), (int(row_cuts[i0 + i]), int(col_cuts[j0 + j])))
        cells[...] = index


def _grown(unit: WriteUnit, region: Region) -> tuple[int, int, int, int]:
    """The rows and columns of the whole storage objects ``region`` lies in."""
    (r, c), (m, n) = unit.edges, unit.shape
    (r0, r1), (c0, c1) = region.rows, region.cols
    return r0 // r * r, min(m, -(-r1 // r) * r), c0 // c * c, min(n, -(-c1 // c) * c)


def sharing(unit: WriteUnit, regions: list[Region]) -> list[set[int]]:
    """For each region, the others that write one of the storage objects it lies in — none at
    all where :func:`check_writes` passes. A check of a written block waits for these too, so
    it reads what is finally stored even if a plan the guard did not see shared an object.

    >>> unit = WriteUnit((3000, 2500), (250, 250), (1000, 1250))
    >>> sharing(unit, [Region("a", (0, 1500), (0, 2500)), Region("b", (1500, 3000), (0, 2500))])
    [{1}, {0}]
    """
    grown = [_grown(unit, region) for region in regions]
    row_cuts = np.unique([edge for g in grown for edge in g[:2]])
    col_cuts = np.unique([edge for g in grown for edge in g[2:]])
    owner = np.full((max(0, len(row_cuts) - 1), max(0, len(col_cuts) - 1)), -1, dtype=np.int64)
    more: dict[tuple[int, int], list[int]] = {}  #: owners after the first, of cells two regions touch
    shared: list[set[int]] = [set() for _ in regions]
    for index, (r0, r1, c0, c1) in enumerate(grown):
        (i0, i1), (j0, j1) = np.searchsorted(row_cuts, (r0, r1)), np.searchsorted(col_cuts, (c0, c1))
        cells = owner[i0:i1, j0:j1]
        for i, j in np.argwhere(cells >= 0):  # only where objects are shared: none in a right plan
            key = (int(i0 + i), int(j0 + j))
            for other in (int(cells[i, j]), *more.get(key, ())):
                shared[index].add(other)
                shared[other].add(index)
            more.setdefault(key, []).append(index)
        cells[cells < 0] = index
    return shared


__all__ = ["Region", "WriteUnit", "band_alignment", "check_writes", "sharing"]
