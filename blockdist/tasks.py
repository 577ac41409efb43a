"""What runs on the workers: stream k-panels from storage through the kernel into a C tile.

A task reads its panels itself (the graph carries only :class:`~blockdist.store.ArrayRef`
and slices). One reader thread fetches the next panel of A or B while the kernel multiplies
the current ones, so at most two panels of each operand are alive. A panel is either mapped
(raw local chunk files, which BLAS multiplies in place, chunk by chunk) or copied into a
reusable buffer (anything zarr must decode); see :class:`_PanelSource`. A's and B's panels
follow their own k-chunks; the kernel works on the overlaps, so each chunk is read once even
when the two chunk grids do not line up along k::

    A panels  |-------a0-------|-------a1-------|---a2---|
    B panels  |---b0---|---b1---|---b2---|------b3-------|
    kernel    |a0·b0   |a0·b1  |a1·b1|a1·b2  |a1·b3|a2·b3|
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from zarr.core.buffer import default_buffer_prototype

from . import blas
from .errors import JobFailedError
from .kernel import accumulate, multiply, scratch_for
from .store import ArrayRef, open_counted, raw_chunk_files
from .tilecheck import TileCheck


@dataclass(frozen=True, slots=True)
class TileTask:
    """One block product: C[rows, cols] (+)= A[rows, ks] · B[ks, cols]."""

    rows: tuple[int, int]
    cols: tuple[int, int]
    ks: tuple[int, int]
    a_depth: int  #: k-depth of A's panels (a multiple of A's k-chunk)
    b_depth: int
    a_kchunk: int
    b_kchunk: int
    kernel_rows: int
    dtype: str  #: the result dtype
    allow_missing_chunks: bool = False  #: read absent input chunks as the fill value
    verify_trials: int = 0  #: random vectors for Freivalds' check of the tile (0: no check)
    verify_seed: int = 0
    transpose_a: bool = False  #: op(A) = Aᵀ: read A's stored block [ks, rows] and use its transpose
    transpose_b: bool = False
    conjugate_a: bool = False  #: op(A) = Aᴴ for complex A
    conjugate_b: bool = False
    map_a: bool = False  #: map A's chunk files (where they are raw local files) rather than copy them
    map_b: bool = False


@dataclass(frozen=True, slots=True)
class Finish:
    """What becomes of a tile's product before it is written: C = alpha·op(A)·op(B) + beta·C0."""

    alpha: complex | float = 1
    beta: complex | float = 0
    c0: ArrayRef | None = None  #: C0, read tile by tile (may have its own chunking)
    #: In-place update (C0 is the output): a staging array and per-tile markers beside it make
    #: the update idempotent, so a retried task never applies beta twice.
    stage: ArrayRef | None = None
    markers: ArrayRef | None = None
    mirror: bool = False  #: a symmetric product: also write the tile's (conjugate) transpose
    conjugate_mirror: bool = False


@dataclass(slots=True)
class TaskStats:
    """What a task measured; tasks return these and the client adds them up."""

    bytes_read: int = 0
    bytes_mapped: int = 0  #: of bytes_read, those BLAS read in place from mapped chunk files
    bytes_written: int = 0
    read_seconds: float = 0.0  #: spent in the reader thread
    wait_seconds: float = 0.0  #: the kernel waiting for a panel
    compute_seconds: float = 0.0
    write_seconds: float = 0.0  #: finishing and writing C's tiles
    tasks: int = 0
    verify_ratio: float = 0.0  #: the worst tile's residual as a share of its tolerance
    check: TileCheck | None = None  #: a split-k partial tile's check, until the tile is final

    def __add__(self, other: TaskStats) -> TaskStats:
        summed = {f.name: getattr(self, f.name) + getattr(other, f.name)
                  for f in fields(self) if f.name not in ("verify_ratio", "check")}
        checks = [c for c in (self.check, other.check) if c is not None]
        check = checks[0].merge(checks[1]) if len(checks) == 2 else (checks[0] if checks else None)
        return TaskStats(**summed, verify_ratio=max(self.verify_ratio, other.verify_ratio), check=check)


def panel_edges(lo: int, hi: int, depth: int, chunk: int) -> list[int]:
    """Panel boundaries in ``[lo, hi)``: every ``depth`` from the chunk boundary at or below ``lo``.

    >>> panel_edges(0, 10, 4, 2), panel_edges(3, 10, 4, 2)
    ([0, 4, 8, 10], [3, 6, 10])
    """
    base = (lo // chunk) * chunk
    inner = range(base + depth, hi, depth)
    return [lo, *[x for x in inner if x > lo], hi]


def _segments(a_edges: list[int], b_edges: list[int]) -> list[tuple[int, int, int, int]]:
    """Overlaps of A's and B's panels as ``(lo, hi, a_panel, b_panel)``."""
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


#: Reads ahead on the reader thread (Linux); elsewhere pages fault in as the kernel reads.
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


@dataclass(frozen=True, slots=True)
class _Block:
    """A block of a panel of op(X): A's rows ``lo:hi`` of the tile (B's columns), and its values."""

    lo: int
    hi: int
    view: np.ndarray  #: A: ``(hi - lo) × depth``; B: ``depth × (hi - lo)``


@dataclass(frozen=True, slots=True)
class _Overlap:
    """Chunk ``(i, j)`` of an array, and the rows and columns of a selection that fall in it."""

    i: int
    j: int
    rows: tuple[int, int]
    cols: tuple[int, int]


#: Row buffers per ``preadv``/``pwritev`` call (IOV_MAX is 1024 on Linux).
_IOV_BATCH = 512


class _PanelBuffers:
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


def _read_into(array, selection: tuple[slice, slice], out: np.ndarray,  # type: ignore[no-untyped-def]
               direct: _ChunkFiles | None = None) -> None:
    """Read ``array[selection]`` into ``out``, decoding in place when the dtypes match."""
    if direct is not None:
        direct.read(selection, out)
    elif np.dtype(array.dtype) == out.dtype:
        array.get_basic_selection(selection, out=default_buffer_prototype().nd_buffer.from_numpy_array(out))
    else:  # a stored dtype other than the result's: read, then cast into the buffer
        np.copyto(out, array[selection], casting="unsafe")


def _bytes_of(block: np.ndarray) -> memoryview:
    """A writable byte view of a C-contiguous block (any dtype, complex included)."""
    return memoryview(block.reshape(-1).view(np.uint8))


class _ChunkFiles:
    """The chunk files of a local array whose files are the chunks themselves, used directly.

    zarr reads a chunk file into a buffer and then copies the chunk into the selection: two
    copies per byte, about 1.2 GB per CPU-second here. For a local, unsharded Zarr v3 array
    whose only codec is the bytes codec in native order
    (:func:`~blockdist.store.raw_chunk_files`), a chunk's file is the chunk itself in C
    order, so :meth:`read` has ``preadv`` put each of its rows where a panel wants them (one
    copy, about 2.4 GB per CPU-second), :meth:`map` maps it for BLAS to read in place (no
    copy), and :meth:`write` writes a tile's rows into it with ``pwritev``. Anything else
    (compression, shards, object storage, another dtype) goes through zarr. Bytes and missing
    chunks are counted on the task's :class:`~blockdist.store.CountingStore`.
    """

    #: Chunk files read at once (page-cache misses wait on the disk in parallel, as zarr does).
    CONCURRENCY = 4

    def __init__(self, root: Any, array: Any, store: Any, allow_missing: bool) -> None:
        self.root = root
        self.array = array
        self.store = store
        self.allow_missing = allow_missing
        self.chunks = tuple(array.chunks)
        self.itemsize = np.dtype(array.dtype).itemsize
        self.fill = array.metadata.fill_value

    @classmethod
    def open(cls, ref: ArrayRef, array: Any, store: Any, dtype: np.dtype,
             allow_missing: bool) -> _ChunkFiles | None:
        """The direct reader for ``array``, or ``None`` where zarr must decode its chunks."""
        ok = raw_chunk_files(ref, array, dtype)
        return cls(ref.local_path, array, store, allow_missing) if ok else None

    def _overlaps(self, rows: tuple[int, int], cols: tuple[int, int]) -> list[_Overlap]:
        """The chunks that ``[rows, cols]`` touches, each with the rows and columns it holds of it."""
        cr, cc = self.chunks
        return [_Overlap(i, j, (max(rows[0], i * cr), min(rows[1], (i + 1) * cr)),
                         (max(cols[0], j * cc), min(cols[1], (j + 1) * cc)))
                for i in range(rows[0] // cr, -(-rows[1] // cr)) for j in range(cols[0] // cc, -(-cols[1] // cc))]

    def _open_chunk(self, i: int, j: int) -> tuple[str, int | None]:
        """The key of chunk ``(i, j)`` and its file, opened and checked (``None``: missing, noted)."""
        key = self.array.metadata.encode_chunk_key((i, j))
        try:
            fd = os.open(os.path.join(self.root, key), os.O_RDONLY)
        except FileNotFoundError:
            self.store.missing.append(key)
            return key, None
        size = os.fstat(fd).st_size
        if size != math.prod(self.chunks) * self.itemsize:
            os.close(fd)
            raise OSError(f"chunk {key} holds {size} bytes, not {math.prod(self.chunks) * self.itemsize}")
        return key, fd

    def read(self, selection: tuple[slice, slice], out: np.ndarray) -> None:
        (r0, r1), (c0, c1) = (selection[0].start, selection[0].stop), (selection[1].start, selection[1].stop)
        cr, cc = self.chunks
        jobs = self._overlaps((r0, r1), (c0, c1))

        def one(part: _Overlap) -> int:
            (row0, row1), (col0, col1) = part.rows, part.cols
            target = out[row0 - r0 : row1 - r0, col0 - c0 : col1 - c0]
            return self._chunk(part.i, part.j, row0 - part.i * cr, col0 - part.j * cc, target)

        if len(jobs) == 1:
            got = [one(jobs[0])]
        else:
            with ThreadPoolExecutor(min(self.CONCURRENCY, len(jobs)), thread_name_prefix="blockdist-io") as pool:
                got = list(pool.map(one, jobs))
        self.store.bytes_read += sum(got)

    def map(self, selection: tuple[slice, slice]) -> list[tuple[int, int, int, int, np.ndarray]]:
        """Map ``array[selection]`` from its chunk files: ``(row0, row1, col0, col1, view)`` a chunk.

        Each view is a read-only window on the page cache (no copy); ``MAP_POPULATE`` reads
        the pages in now, on the reader thread, so the kernel never waits on the disk.
        """
        cr, cc = self.chunks
        blocks = []
        for part in self._overlaps((selection[0].start, selection[0].stop), (selection[1].start, selection[1].stop)):
            view = self._map_chunk(part.i, part.j, part.rows[0] - part.i * cr, part.rows[1] - part.i * cr)
            blocks.append((*part.rows, *part.cols, view[:, part.cols[0] - part.j * cc : part.cols[1] - part.j * cc]))
        return blocks

    def _map_chunk(self, i: int, j: int, row0: int, row1: int) -> np.ndarray:
        """Rows ``row0:row1`` of chunk ``(i, j)``, whole chunk rows, mapped read-only."""
        cc = self.chunks[1]
        dtype = np.dtype(self.array.dtype)
        _, fd = self._open_chunk(i, j)
        if fd is None:
            return np.full((row1 - row0, cc), self.fill if self.allow_missing else 0, dtype=dtype)
        try:
            start, stop = row0 * cc * self.itemsize, row1 * cc * self.itemsize
            aligned = start - start % mmap.ALLOCATIONGRANULARITY
            mapped = mmap.mmap(fd, stop - aligned, flags=mmap.MAP_SHARED | _POPULATE,
                               prot=mmap.PROT_READ, offset=aligned)
        finally:
            os.close(fd)
        self.store.bytes_read += stop - start
        self.store.bytes_mapped += stop - start
        count = (row1 - row0) * cc
        return np.frombuffer(mapped, dtype=dtype, count=count, offset=start - aligned).reshape(row1 - row0, cc)

    def covers_whole_chunks(self, rows: tuple[int, int], cols: tuple[int, int]) -> bool:
        """Whether ``[rows, cols]`` is a union of whole chunks (edge chunks up to the array's edge)."""
        (cr, cc), (height, width) = self.chunks, self.array.shape
        return (rows[0] % cr == 0 and cols[0] % cc == 0 and (rows[1] % cr == 0 or rows[1] == height)
                and (cols[1] % cc == 0 or cols[1] == width))

    def write(self, rows: tuple[int, int], cols: tuple[int, int], tile: np.ndarray) -> int:
        """Write ``tile`` to ``array[rows, cols]``, a union of whole chunks; returns bytes written.

        Each chunk file is written from the tile's rows with one ``pwritev`` (zarr would copy
        the chunk out of the tile and then into the file) into a temporary name, then renamed
        into place as zarr does, so a reader never sees half a chunk.
        """
        if not self.covers_whole_chunks(rows, cols):
            raise ValueError(f"rows {rows} and columns {cols} are not whole chunks of {self.chunks}")
        written = 0
        for part in self._overlaps(rows, cols):
            (r0, r1), (c0, c1) = part.rows, part.cols
            written += self._write_chunk(part.i, part.j, tile[r0 - rows[0] : r1 - rows[0], c0 - cols[0] : c1 - cols[0]])
        self.store.bytes_written += written
        return written

    def _write_chunk(self, i: int, j: int, block: np.ndarray) -> int:
        cr, cc = self.chunks
        if block.shape != (cr, cc):  # an edge chunk: stored whole, padded with the fill value
            whole = np.full((cr, cc), self.fill, dtype=block.dtype)
            whole[: block.shape[0], : block.shape[1]] = block
            block = whole
        if block.strides[1] != block.itemsize:  # a transposed view (a mirrored tile)
            block = np.ascontiguousarray(block)
        views = [_bytes_of(block)] if block.flags.c_contiguous else [_bytes_of(row) for row in block]
        path = os.path.join(self.root, self.array.metadata.encode_chunk_key((i, j)))
        partial = f"{path}.{uuid.uuid4().hex}.partial"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            done = 0
            for first in range(0, len(views), _IOV_BATCH):
                batch = views[first : first + _IOV_BATCH]
                wanted = sum(v.nbytes for v in batch)
                if os.pwritev(fd, batch, done) != wanted:
                    raise OSError(f"short write of chunk {path}")
                done += wanted
            os.close(fd)
            fd = -1
            os.replace(partial, path)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
            raise
        return done

    def _chunk(self, i: int, j: int, row: int, col: int, target: np.ndarray) -> int:
        """Read rows ``row…`` and columns ``col…`` of chunk ``(i, j)`` into ``target``; bytes read."""
        cc = self.chunks[1]
        size = self.itemsize
        key, fd = self._open_chunk(i, j)
        if fd is None:
            if self.allow_missing:
                target[...] = self.fill
            return 0
        try:
            rows, width = target.shape
            if col == 0 and width == cc:  # whole chunk rows: contiguous in the file
                if target.flags.c_contiguous:
                    batches = [(row * cc * size, [_bytes_of(target)])]
                else:
                    views = [_bytes_of(target[r]) for r in range(rows)]
                    batches = [((row + first) * cc * size, views[first : first + _IOV_BATCH])
                               for first in range(0, rows, _IOV_BATCH)]
            else:  # part of each chunk row: one read per row
                batches = [(((row + r) * cc + col) * size, [_bytes_of(target[r])]) for r in range(rows)]
            done = 0
            for offset, views in batches:
                wanted = sum(v.nbytes for v in views)
                got = os.preadv(fd, views, offset)
                if got != wanted:
                    raise OSError(f"chunk {key} is shorter than its rows ({got} of {wanted} bytes)")
                done += got
            return done
        finally:
            os.close(fd)


class _PanelSource:
    """Where a task's panels of one operand come from: mapped chunk files, or copies.

    A local, uncompressed operand with chunks of at least ``MAP_MIN_CHUNK_EDGE``, which the
    plan says to map, is *mapped*: a panel is one k-chunk deep and is a list of blocks, one a chunk, each a
    read-only view of its chunk file, which BLAS reads in place (and conjugates, for Aᴴ).
    Any other operand is *copied*: zarr (or ``preadv``) fills a reusable panel buffer of
    the planned depth, which becomes the panel's one block.
    """

    def __init__(self, ref: ArrayRef, task: TileTask, operand: str, stats: TaskStats) -> None:
        self.ref, self.stats, self.is_a = ref, stats, operand == "a"
        self.array, self.store = open_counted(ref)
        dtype = np.dtype(task.dtype)
        self.allow_missing = task.allow_missing_chunks
        self.transpose = task.transpose_a if self.is_a else task.transpose_b
        conjugate = task.conjugate_a if self.is_a else task.conjugate_b
        self.span = task.rows if self.is_a else task.cols  #: the tile's range along the other side
        depth, kchunk = (task.a_depth, task.a_kchunk) if self.is_a else (task.b_depth, task.b_kchunk)
        self.files = _ChunkFiles.open(ref, self.array, self.store, dtype, self.allow_missing)
        # The plan chose to map from the array's layout (store.source_of); a worker only checks
        # what may differ from the client: the files it sees and its own scipy.
        wanted = task.map_a if self.is_a else task.map_b
        self.mapped = wanted and self.files is not None and blas.available(dtype)
        self.edges = panel_edges(*task.ks, kchunk if self.mapped else depth, kchunk)
        #: A mapped view cannot be conjugated in place: the kernel asks BLAS to do it.
        self.conjugate_in_kernel = conjugate and self.mapped
        self.conjugate_on_read = conjugate and not self.mapped
        length = (self.span[1] - self.span[0]) * _widest(self.edges)
        self.buffers = None if self.mapped else _PanelBuffers(length, dtype)

    def read(self, i: int) -> list[_Block]:
        """Panel ``i`` of op(X) (on the reader thread): a transposed operand is read as stored."""
        start = time.perf_counter()
        k_range, span = slice(self.edges[i], self.edges[i + 1]), slice(*self.span)
        logical = (span, k_range) if self.is_a else (k_range, span)
        stored = (logical[1], logical[0]) if self.transpose else logical
        try:
            blocks = self._map(stored) if self.mapped else self._copy(i, stored)
        except Exception as error:
            raise JobFailedError(f"reading {self.ref}: {_name_bad_chunk(self.array, stored, error)}") from error
        if self.store.missing and not self.allow_missing:
            raise JobFailedError(
                f"reading {self.ref}: chunk {self.store.missing[0]} is missing. If it was never written "
                "because it holds only the fill value, pass allow_missing_chunks=True (--allow-missing-chunks)"
            )
        self.stats.read_seconds += time.perf_counter() - start
        return blocks

    def _map(self, stored: tuple[slice, slice]) -> list[_Block]:
        assert self.files is not None
        # The side that is not k: stored rows for A and for Bᵀ, stored columns for Aᵀ and B.
        along = 0 if self.is_a != self.transpose else 1
        blocks = []
        for r0, r1, c0, c1, view in self.files.map(stored):
            lo, hi = (r0, r1) if along == 0 else (c0, c1)
            blocks.append(_Block(lo - self.span[0], hi - self.span[0], view.T if self.transpose else view))
        return blocks

    def _copy(self, i: int, stored: tuple[slice, slice]) -> list[_Block]:
        assert self.buffers is not None
        out = self.buffers.view(i, (stored[0].stop - stored[0].start, stored[1].stop - stored[1].start))
        _read_into(self.array, stored, out, self.files)
        if self.conjugate_on_read:
            np.conjugate(out, out=out)
        # A transposed operand is read in its stored layout; its transpose is a free view.
        return [_Block(0, self.span[1] - self.span[0], out.T if self.transpose else out)]


def _accumulate_tile(a_ref: ArrayRef, b_ref: ArrayRef, task: TileTask) -> tuple[np.ndarray, TaskStats]:
    dtype = np.dtype(task.dtype)
    (r0, r1), (c0, c1) = task.rows, task.cols
    stats = TaskStats(tasks=1)
    a_source = _PanelSource(a_ref, task, "a", stats)
    b_source = _PanelSource(b_ref, task, "b", stats)
    a_edges, b_edges = a_source.edges, b_source.edges
    # The first panel product is written straight into C (no zero fill, no add).
    c = np.empty((r1 - r0, c1 - c0), dtype=dtype)
    scratch = None if blas.available(dtype) else scratch_for(r1 - r0, c1 - c0, task.kernel_rows, dtype)
    conjugate = {"conjugate_a": a_source.conjugate_in_kernel, "conjugate_b": b_source.conjugate_in_kernel}
    if task.verify_trials:
        stats.check = TileCheck(r1 - r0, (c0, c1), task.verify_trials, task.verify_seed, dtype)

    # Panel i lives in buffer i % 2; panel i + 1 is read into the other one only once panel i
    # is in use, when every segment of panel i - 1 is done.
    with ThreadPoolExecutor(1, thread_name_prefix="blockdist-read") as reader:
        a_next, b_next = reader.submit(a_source.read, 0), reader.submit(b_source.read, 0)
        a_index = b_index = -1
        first = True
        for lo, hi, ia, ib in _segments(a_edges, b_edges):
            start = time.perf_counter()
            if ia != a_index:
                a_panel, a_index = a_next.result(), ia
                if ia + 2 < len(a_edges):
                    a_next = reader.submit(a_source.read, ia + 1)
            if ib != b_index:
                b_panel, b_index = b_next.result(), ib
                if ib + 2 < len(b_edges):
                    b_next = reader.submit(b_source.read, ib + 1)
            stats.wait_seconds += time.perf_counter() - start
            start = time.perf_counter()
            a_lo, b_lo = a_edges[ia], b_edges[ib]
            a_views = [(block.lo, block.hi, block.view[:, lo - a_lo : hi - a_lo]) for block in a_panel]
            b_views = [(block.lo, block.hi, block.view[lo - b_lo : hi - b_lo]) for block in b_panel]
            for a_row0, a_row1, a_view in a_views:
                for b_col0, b_col1, b_view in b_views:
                    target = c[a_row0:a_row1, b_col0:b_col1]
                    if first:
                        multiply(target, a_view, b_view, **conjugate)
                    else:
                        accumulate(target, a_view, b_view, scratch, **conjugate)
            first = False
            if stats.check is not None:
                stats.check.add_panels([(row, view) for row, _, view in a_views],
                                       [(col, view) for col, _, view in b_views], **conjugate)
            # Views keep their panel's mapping alive: drop them before waiting for the next one.
            del a_views, b_views, a_view, b_view, target
            stats.compute_seconds += time.perf_counter() - start
    stats.bytes_read = a_source.store.bytes_read + b_source.store.bytes_read
    stats.bytes_mapped = a_source.store.bytes_mapped + b_source.store.bytes_mapped
    return c, stats


def _name_bad_chunk(array, selection: tuple[slice, slice], error: Exception) -> str:  # type: ignore[no-untyped-def]
    """Find which chunk of a failed read is unreadable, reading them one at a time."""
    (r0, r1), (c0, c1) = (selection[0].start, selection[0].stop), (selection[1].start, selection[1].stop)
    rows, cols = array.chunks
    for i in range(r0 // rows, -(-r1 // rows)):
        for j in range(c0 // cols, -(-c1 // cols)):
            try:
                array[i * rows : (i + 1) * rows, j * cols : (j + 1) * cols]
            except Exception as chunk_error:
                key = array.metadata.encode_chunk_key((i, j))
                return f"chunk {key} cannot be read or decoded ({chunk_error})"
    return f"rows {r0}:{r1}, columns {c0}:{c1} failed ({error})"


def _write(out_ref: ArrayRef, rows: tuple[int, int], cols: tuple[int, int], tile: np.ndarray) -> int:
    out, store = open_counted(out_ref, writable=True)
    files = _ChunkFiles.open(out_ref, out, store, tile.dtype, allow_missing=False)
    if files is not None and files.covers_whole_chunks(rows, cols):
        return files.write(rows, cols, tile)
    out[rows[0] : rows[1], cols[0] : cols[1]] = tile
    return store.bytes_written


def _finish(out_ref: ArrayRef, rows: tuple[int, int], cols: tuple[int, int], tile: np.ndarray,
            finish: Finish, number: int) -> tuple[int, int]:
    """Scale, add beta·C0, write (and mirror); returns (bytes read, bytes written)."""
    if finish.stage is not None:
        return _finish_in_place(out_ref, rows, cols, tile, finish, number)
    read = _scale(tile, finish, finish.c0, rows, cols)
    if finish.mirror and rows == cols:  # a diagonal tile: make it exactly symmetric (Hermitian)
        _symmetrize(tile, finish.conjugate_mirror)
    written = _write(out_ref, rows, cols, tile)
    if finish.mirror and rows != cols:
        mirrored = np.conjugate(tile.T) if finish.conjugate_mirror else tile.T
        written += _write(out_ref, cols, rows, mirrored)
    return read, written


def _symmetrize(tile: np.ndarray, conjugate: bool) -> None:
    """Copy the upper triangle onto the lower one (BLAS rounds the two halves differently)."""
    lower = np.tril_indices(tile.shape[0], -1)
    tile[lower] = (np.conjugate(tile.T) if conjugate else tile.T)[lower]
    if conjugate:
        tile.imag[np.diag_indices(tile.shape[0])] = 0


def _scale(tile: np.ndarray, finish: Finish, c0_ref: ArrayRef | None, rows: tuple[int, int],
           cols: tuple[int, int]) -> int:
    if finish.alpha != 1:
        tile *= finish.alpha
    if not finish.beta or c0_ref is None:
        return 0
    c0, store = open_counted(c0_ref)
    tile += finish.beta * np.asarray(c0[rows[0] : rows[1], cols[0] : cols[1]], dtype=tile.dtype)
    return store.bytes_read


def _finish_in_place(out_ref: ArrayRef, rows: tuple[int, int], cols: tuple[int, int], tile: np.ndarray,
                     finish: Finish, number: int) -> tuple[int, int]:
    """C ← alpha·AB + beta·C tile by tile, in two phases: stage, then copy, each marked."""
    assert finish.stage is not None and finish.markers is not None
    markers, _ = open_counted(finish.markers, writable=True)
    state = int(markers[number])
    if state == 2:  # an earlier try finished this tile
        return 0, 0
    stage, stage_store = open_counted(finish.stage, writable=True)
    read = 0
    if state == 1:  # staged by an earlier try: the output may be half updated, the stage is whole
        tile = stage[rows[0] : rows[1], cols[0] : cols[1]]
        read = stage_store.bytes_read
    else:
        read = _scale(tile, finish, out_ref, rows, cols)
        stage[rows[0] : rows[1], cols[0] : cols[1]] = tile
        markers[number] = 1
    written = _write(out_ref, rows, cols, tile) + stage_store.bytes_written
    markers[number] = 2
    return read, written


def multiply_tile(a_ref: ArrayRef, b_ref: ArrayRef, out_ref: ArrayRef, task: TileTask,
                  finish: Finish = Finish(), number: int = 0) -> TaskStats:
    """Stream all of the task's k range and write the finished C tile."""
    tile, stats = _accumulate_tile(a_ref, b_ref, task)
    return _complete(stats, tile, task.ks[1] - task.ks[0], out_ref, task.rows, task.cols, finish, number)


def _complete(stats: TaskStats, tile: np.ndarray, k: int, out_ref: ArrayRef, rows: tuple[int, int],
              cols: tuple[int, int], finish: Finish, number: int) -> TaskStats:
    """Check a final tile (if asked), then finish and write it, adding what that cost to ``stats``."""
    if stats.check is not None:
        stats.verify_ratio = stats.check.ratio(tile, k)
        stats.check = None
    start = time.perf_counter()
    read, written = _finish(out_ref, rows, cols, tile, finish, number)
    stats.write_seconds += time.perf_counter() - start
    stats.bytes_read += read
    stats.bytes_written += written
    return stats


def partial_tile(a_ref: ArrayRef, b_ref: ArrayRef, task: TileTask) -> tuple[np.ndarray, TaskStats]:
    """Split-k: the partial tile of one k range, kept in worker memory for a reduce."""
    return _accumulate_tile(a_ref, b_ref, task)


def sum_partials(*parts: tuple[np.ndarray, TaskStats]) -> tuple[np.ndarray, TaskStats]:
    """Sum partial tiles into the first one (one level of the reduction tree)."""
    if len(parts) == 1:
        return parts[0][0].copy(), parts[0][1]
    # The inputs belong to Dask (a retry may need them): sum into a new tile, in one pass for
    # the first two.
    total, stats = np.add(parts[0][0], parts[1][0]), parts[0][1] + parts[1][1]
    for tile, more in parts[2:]:
        np.add(total, tile, out=total)
        stats = stats + more
    return total, stats


def write_sum(
    out_ref: ArrayRef, rows: tuple[int, int], cols: tuple[int, int], k: int, finish: Finish, number: int,
    *parts: tuple[np.ndarray, TaskStats],
) -> TaskStats:
    """The root of the reduction tree: sum the last partial tiles, finish and write C's tile."""
    tile, stats = sum_partials(*parts)
    return _complete(stats, tile, k, out_ref, rows, cols, finish, number)
