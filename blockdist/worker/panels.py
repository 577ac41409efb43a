"""A task's panels of one operand, and how A's and B's panels line up along k.

A panel is either *mapped* or *copied* (:class:`PanelSource`). A mapped panel is one k-chunk
deep and is a list of blocks, one a chunk, each a read-only view of its chunk file, which
BLAS reads in place (and conjugates, for Aᴴ). A copied panel is filled by zarr (or
the chunk-file engines) into one of two reusable buffers (:class:`PanelBuffers`: the panel in use and the
one being read) and is the panel's one block. Where blocks are absent (fill value 0), the task
is told which stretches of each panel to read (:attr:`TileTask.a_runs`, panels one k-chunk
deep): only those are read, each is a block of its own, and a panel with none is not read at
all. A's and B's panels follow their own k-chunks;
the kernel works on the overlaps (:func:`segments`), so each chunk is read once even when the
two chunk grids do not line up along k::

    A panels  |-------a0-------|-------a1-------|---a2---|
    B panels  |---b0---|---b1---|---b2---|------b3-------|
    kernel    |a0·b0   |a0·b1  |a1·b1|a1·b2  |a1·b3|a2·b3|
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..errors import JobFailedError
from ..planning.grid import panel_edges
from ..planning.sparse import Runs
from ..storage import ChunkFiles, EncodedChunks, name_bad_chunk, open_counted, read_into
from . import blas
from .spec import OperandSpec, TileTask


def segments(a_edges: list[int], b_edges: list[int]) -> list[tuple[int, int, int, int]]:
    """Overlaps of A's and B's panels as ``(lo, hi, a_panel, b_panel)``.

    >>> segments([0, 4, 8], [0, 3, 8])
    [(0, 3, 0, 0), (3, 4, 0, 1), (4, 8, 1, 1)]
    """
    cuts = sorted(set(a_edges) | set(b_edges))
    out = []
    ia = ib = 0
    for lo, hi in zip(cuts, cuts[1:]):
        while a_edges[ia + 1] <= lo:
            ia += 1
        while b_edges[ib + 1] <= lo:
            ib += 1
        out.append((lo, hi, ia, ib))
    return out


@dataclass(frozen=True, slots=True)
class Block:
    """A block of a panel of op(X): A's rows ``lo:hi`` of the tile (B's columns), and its values."""

    lo: int
    hi: int
    view: np.ndarray  #: A: ``(hi - lo) × depth``; B: ``depth × (hi - lo)``


class PanelBuffers:
    """Two reusable panel buffers of one operand: the panel in use and the one being read.

    Allocated once per task at the largest panel's size, so reading a panel allocates and
    page-faults nothing: zarr decodes each chunk straight into the buffer's view.
    """

    def __init__(self, elements: int, dtype: np.dtype) -> None:
        self.flat = [np.empty(elements, dtype=dtype), np.empty(elements, dtype=dtype)]

    def view(self, index: int, shape: tuple[int, int]) -> np.ndarray:
        """A C-contiguous ``shape`` view of buffer ``index % 2``."""
        return self.flat[index % 2][: shape[0] * shape[1]].reshape(shape)


def _widest(edges: list[int]) -> int:
    return max(edges[i + 1] - edges[i] for i in range(len(edges) - 1))


class PanelSource:
    """Where a task's panels of one operand come from: mapped chunk files, or copies."""

    def __init__(self, spec: OperandSpec, task: TileTask, is_a: bool) -> None:
        self.spec, self.is_a = spec, is_a
        self.read_seconds = 0.0  #: spent reading, on the reader thread
        self.array, self.store = open_counted(spec.ref)
        dtype = np.dtype(task.dtype)
        self.span = task.rows if is_a else task.cols  #: the tile's range along the other side
        # An absent chunk is the fill value, as zarr reads it (the job compares the listing the
        # plan was made from with the inputs at its end: a chunk gone since is a changed input).
        self.files = ChunkFiles.open(spec.ref, self.array, self.store, dtype, allow_missing=True)
        #: what copies a panel without zarr: raw chunk files, else compressed or sharded ones
        self.direct = self.files or EncodedChunks.open(spec.ref, self.array, self.store, dtype, allow_missing=True)
        # The plan chose to map from the array's layout; a worker only checks what may differ
        # from the client: the files it sees and its own scipy.
        self.mapped = spec.mapped and self.files is not None and task.blas and blas.available(dtype)
        #: the stretches of each panel to read, where blocks are absent (None: every panel whole)
        self.runs = task.a_runs if is_a else task.b_runs
        depth = spec.kchunk if self.mapped or task.absent_blocks else spec.depth
        self.edges = panel_edges(*task.ks, depth, spec.kchunk)
        if self.runs is not None and len(self.runs) != len(self.edges) - 1:
            raise JobFailedError(f"reading {spec.ref}: the task was told of {len(self.runs)} panels and has "
                                 f"{len(self.edges) - 1}")
        #: A mapped view cannot be conjugated in place: the kernel asks BLAS to do it.
        self.conjugate_in_kernel = spec.conjugate and self.mapped
        self.conjugate_on_read = spec.conjugate and not self.mapped
        length = (self.span[1] - self.span[0]) * _widest(self.edges)
        self.buffers = None if self.mapped else PanelBuffers(length, dtype)

    def read(self, i: int) -> list[Block]:
        """Panel ``i`` of op(X) (on the reader thread): a transposed operand is read as stored."""
        start = time.perf_counter()
        k_range, span = slice(self.edges[i], self.edges[i + 1]), slice(*self.span)
        logical = (span, k_range) if self.is_a else (k_range, span)
        stored = (logical[1], logical[0]) if self.spec.transpose else logical
        runs = ((0, self.span[1] - self.span[0]),) if self.runs is None else self.runs[i]
        try:
            blocks = self._map(stored, runs) if self.mapped else self._copy(i, stored, runs)
        except Exception as error:
            raise JobFailedError(f"reading {self.spec.ref}: {name_bad_chunk(self.array, stored, error)}") from error
        self.read_seconds += time.perf_counter() - start
        return blocks

    @property
    def along(self) -> int:
        """The stored axis that is not k: stored rows for A and for Bᵀ, stored columns for Aᵀ and B."""
        return 0 if self.is_a != self.spec.transpose else 1

    def _part(self, stored: tuple[slice, slice], lo: int, hi: int) -> tuple[slice, slice]:
        """The stored selection of the stretch ``lo:hi`` of the span."""
        cut = slice(self.span[0] + lo, self.span[0] + hi)
        return (cut, stored[1]) if self.along == 0 else (stored[0], cut)

    def _map(self, stored: tuple[slice, slice], runs: Runs) -> list[Block]:
        assert self.files is not None
        blocks = []
        for run in runs:
            for r0, r1, c0, c1, view in self.files.map(self._part(stored, *run)):
                lo, hi = (r0, r1) if self.along == 0 else (c0, c1)
                blocks.append(Block(lo - self.span[0], hi - self.span[0], view.T if self.spec.transpose else view))
        return blocks

    def _copy(self, i: int, stored: tuple[slice, slice], runs: Runs) -> list[Block]:
        assert self.buffers is not None
        out = self.buffers.view(i, (stored[0].stop - stored[0].start, stored[1].stop - stored[1].start))
        blocks = []
        for lo, hi in runs:
            part = out[lo:hi] if self.along == 0 else out[:, lo:hi]
            read_into(self.array, self._part(stored, lo, hi), part, self.direct)
            if self.conjugate_on_read:
                np.conjugate(part, out=part)
            # A transposed operand is read in its stored layout; its transpose is a free view.
            blocks.append(Block(lo, hi, part.T if self.spec.transpose else part))
        return blocks
