"""What happens to a tile once its product is final: scale, add beta·C0, mirror, write.

An in-place update (C0 is the output) must never apply beta twice, although Dask may run a
task again after it wrote (a lost worker, a retry). Each tile goes through two marked phases,
with a staging array and a marker per tile beside the output::

    marker 0 ──► stage[tile] = alpha·AB + beta·C[tile]  ──► marker 1
             ──► C[tile] = stage[tile]                  ──► marker 2

A retry that finds marker 1 copies the stage again (the output may be half updated, the stage
is whole); one that finds marker 2 does nothing. The stage and markers live until the job
completes, so a resumed job finds what an interrupted one staged.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..storage import open_counted, read_block, write_tile
from .kernel import symmetrize
from .spec import Finish, TileOutput


class Finished(NamedTuple):
    """What finishing a tile did, and what a check of the written tile needs to know of it."""

    read: int  #: bytes read (C0, or the stage of an in-place update)
    written: int  #: bytes written
    c0: np.ndarray | None = None  #: the block of C0 that beta multiplied (None: no beta term)
    #: An in-place tile an earlier try of the task had staged: C0 is overwritten, so what can
    #: be checked is that the output holds the staged tile.
    earlier: bool = False


def finish_tile(output: TileOutput, tile: np.ndarray) -> Finished:
    """Scale, add beta·C0, write (and mirror) the final ``tile``."""
    finish, rows, cols = output.finish, output.rows, output.cols
    if finish.stage is not None:
        return _finish_in_place(output, tile)
    c0, read = _scale(tile, finish, rows, cols)
    if finish.mirror and rows == cols:  # a diagonal tile: make it exactly symmetric (Hermitian)
        symmetrize(tile, finish.conjugate_mirror)  # BLAS rounds the two halves differently
    written = write_tile(output.ref, rows, cols, tile)
    if finish.mirror and rows != cols:
        written += write_tile(output.ref, cols, rows, mirror_image(tile, finish.conjugate_mirror))
    return Finished(read, written, c0)


def mirror_image(tile: np.ndarray, conjugate: bool) -> np.ndarray:
    """The block below the diagonal that a tile above it stands for: its (conjugate) transpose."""
    return np.conjugate(tile.T) if conjugate else tile.T


def _scale(tile: np.ndarray, finish: Finish, rows: tuple[int, int], cols: tuple[int, int],
           c0: object | None = None) -> tuple[np.ndarray | None, int]:
    """``tile = alpha·tile + beta·C0[rows, cols]`` in place; returns the C0 block and the bytes read."""
    if finish.alpha != 1:
        tile *= finish.alpha
    source = c0 if c0 is not None else finish.c0
    if not finish.beta or source is None:
        return None, 0
    block, read = read_block(source, rows, cols, tile.dtype)  # type: ignore[arg-type]
    tile += finish.beta * block
    return block, read


def _finish_in_place(output: TileOutput, tile: np.ndarray) -> Finished:
    """C ← alpha·AB + beta·C tile by tile, in two phases: stage, then copy, each marked."""
    finish, rows, cols, number = output.finish, output.rows, output.cols, output.number
    assert finish.stage is not None and finish.markers is not None
    markers, _ = open_counted(finish.markers, writable=True)
    state = int(markers[number])
    if state == 2:  # an earlier try finished this tile
        return Finished(0, 0, earlier=True)
    stage, stage_store = open_counted(finish.stage, writable=True)
    c0 = None
    if state == 1:  # staged by an earlier try: the output may be half updated, the stage is whole
        tile = stage[rows[0] : rows[1], cols[0] : cols[1]]
        read = stage_store.bytes_read
    else:
        c0, read = _scale(tile, finish, rows, cols, c0=output.ref)
        stage[rows[0] : rows[1], cols[0] : cols[1]] = tile
        markers[number] = 1
    written = write_tile(output.ref, rows, cols, tile) + stage_store.bytes_written
    markers[number] = 2
    return Finished(read, written, c0, earlier=state == 1)
