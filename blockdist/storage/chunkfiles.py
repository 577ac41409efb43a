"""The chunk-file engine: a local array's raw chunk files read, mapped and written directly.

zarr reads a chunk file into a buffer and then copies the chunk into the selection: two
copies per byte, about 1.2 GB per CPU-second here. For a local, unsharded Zarr v3 array
whose only codec is the bytes codec in native order (:func:`.arrays.raw_chunk_files`), a
chunk's file is the chunk itself in C order, so :meth:`ChunkFiles.read` maps it and copies
its rows where a panel wants them (one copy from the page cache, 3.9 GB per CPU-second here,
where ``preadv`` into the panel moved 1.5: ``benchmarks/decode.py``),
:meth:`ChunkFiles.map` maps it for BLAS to read in place (no copy), and
:meth:`ChunkFiles.write` writes a tile's rows into it with ``pwritev``, to a temporary name
renamed into place. Bytes and missing chunks are counted on the task's
:class:`~.counting.CountingStore`.
"""

from __future__ import annotations

import contextlib
import errno
import math
import mmap
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputChangedError
from .arrays import raw_chunk_files
from .counting import CountingStore, full_device
from .refs import ArrayRef

#: Reads a mapping's pages in at once, on the reading thread (Linux); elsewhere they fault in as used.
POPULATE = getattr(mmap, "MAP_POPULATE", 0)


@dataclass(frozen=True, slots=True)
class ChunkPart:
    """Chunk ``(i, j)`` of a grid, and the rows and columns of a selection that fall in it."""

    i: int
    j: int
    rows: tuple[int, int]
    cols: tuple[int, int]


def chunk_parts(rows: tuple[int, int], cols: tuple[int, int], chunks: tuple[int, int]) -> list[ChunkPart]:
    """The chunks of a ``chunks`` grid that ``[rows, cols]`` touches, each with the part of it they hold.

    >>> [(p.i, p.j, p.rows, p.cols) for p in chunk_parts((2, 6), (0, 3), (4, 4))]
    [(0, 0, (2, 4), (0, 3)), (1, 0, (4, 6), (0, 3))]
    """
    cr, cc = chunks
    return [ChunkPart(i, j, (max(rows[0], i * cr), min(rows[1], (i + 1) * cr)),
                      (max(cols[0], j * cc), min(cols[1], (j + 1) * cc)))
            for i in range(rows[0] // cr, -(-rows[1] // cr)) for j in range(cols[0] // cc, -(-cols[1] // cc))]


def read_parts(one: Callable[[ChunkPart], int], parts: list[ChunkPart], concurrency: int) -> int:
    """``one(part)`` for every part, ``concurrency`` at once (page-cache misses wait on the disk in
    parallel, and the codec libraries release the GIL); the bytes they read, summed."""
    if len(parts) == 1:
        return one(parts[0])
    with ThreadPoolExecutor(min(concurrency, len(parts)), thread_name_prefix="blockdist-io") as pool:
        return sum(pool.map(one, parts))


#: Row buffers per ``preadv``/``pwritev`` call (IOV_MAX is 1024 on Linux).
_IOV_BATCH = 512


def _bytes_of(block: np.ndarray) -> memoryview:
    """A writable byte view of a C-contiguous block (any dtype, complex included)."""
    return memoryview(block.reshape(-1).view(np.uint8))


class ChunkFiles:
    """The chunk files of a local array whose files are the chunks themselves, used directly.

    Anything else (compression, shards, object storage, another dtype) goes through zarr:
    :meth:`open` says which.
    """

    #: Chunk files read at once (page-cache misses wait on the disk in parallel, as zarr does).
    CONCURRENCY = 4

    def __init__(self, root: Any, array: Any, store: CountingStore, allow_missing: bool) -> None:
        self.root = root
        self.array = array
        self.store = store
        self.allow_missing = allow_missing
        self.chunks = tuple(array.chunks)
        self.itemsize = np.dtype(array.dtype).itemsize
        self.fill = array.metadata.fill_value

    @classmethod
    def open(cls, ref: ArrayRef, array: Any, store: CountingStore, dtype: np.dtype,
             allow_missing: bool) -> ChunkFiles | None:
        """The direct reader for ``array``, or ``None`` where zarr must decode its chunks."""
        ok = raw_chunk_files(ref, array, dtype)
        return cls(ref.local_path, array, store, allow_missing) if ok else None

    def _open_chunk(self, i: int, j: int) -> tuple[str, int | None]:
        """The key of chunk ``(i, j)`` and its file, opened and checked (``None``: missing, noted)."""
        key = self.array.metadata.encode_chunk_key((i, j))
        try:
            fd = os.open(os.path.join(self.root, key), os.O_RDONLY)
        except FileNotFoundError:
            self.store.note_missing(key)
            return key, None
        size = os.fstat(fd).st_size
        if size != math.prod(self.chunks) * self.itemsize:
            os.close(fd)
            raise InputChangedError(
                f"{self.root}: chunk {key} holds {size} bytes, not {math.prod(self.chunks) * self.itemsize}: it "
                "changed while the job read it, or the array is damaged")
        return key, fd

    def read(self, selection: tuple[slice, slice], out: np.ndarray) -> None:
        (r0, r1), (c0, c1) = (selection[0].start, selection[0].stop), (selection[1].start, selection[1].stop)
        cr, cc = self.chunks

        def one(part: ChunkPart) -> int:
            (row0, row1), (col0, col1) = part.rows, part.cols
            target = out[row0 - r0 : row1 - r0, col0 - c0 : col1 - c0]
            return self._chunk(part.i, part.j, row0 - part.i * cr, col0 - part.j * cc, target)

        self.store.count_read(read_parts(one, chunk_parts((r0, r1), (c0, c1), self.chunks), self.CONCURRENCY))

    def map(self, selection: tuple[slice, slice]) -> list[tuple[int, int, int, int, np.ndarray]]:
        """Map ``array[selection]`` from its chunk files: ``(row0, row1, col0, col1, view)`` a chunk.

        Each view is a read-only window on the page cache (no copy); ``MAP_POPULATE`` reads
        the pages in now, on the reader thread, so the kernel never waits on the disk.
        """
        cr, cc = self.chunks
        blocks = []
        rows, cols = (selection[0].start, selection[0].stop), (selection[1].start, selection[1].stop)
        for part in chunk_parts(rows, cols, self.chunks):
            view = self._map_chunk(part.i, part.j, part.rows[0] - part.i * cr, part.rows[1] - part.i * cr)
            blocks.append((*part.rows, *part.cols, view[:, part.cols[0] - part.j * cc : part.cols[1] - part.j * cc]))
        return blocks

    def _map_chunk(self, i: int, j: int, row0: int, row1: int, copied: bool = False) -> np.ndarray | None:
        """Rows ``row0:row1`` of chunk ``(i, j)``, whole chunk rows, mapped read-only (``None``
        for a missing chunk that is to be ``copied``)."""
        cc = self.chunks[1]
        dtype = np.dtype(self.array.dtype)
        _, fd = self._open_chunk(i, j)
        if fd is None:
            if copied:
                return None
            return np.full((row1 - row0, cc), self.fill if self.allow_missing else 0, dtype=dtype)
        try:
            start, stop = row0 * cc * self.itemsize, row1 * cc * self.itemsize
            aligned = start - start % mmap.ALLOCATIONGRANULARITY
            mapped = mmap.mmap(fd, stop - aligned, flags=mmap.MAP_SHARED | POPULATE,
                               prot=mmap.PROT_READ, offset=aligned)
        finally:
            os.close(fd)
        if not copied:  # a copy is counted by its caller, as read
            self.store.count_read(stop - start, mapped=True)
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
        for part in chunk_parts(rows, cols, self.chunks):
            (r0, r1), (c0, c1) = part.rows, part.cols
            written += self._write_chunk(part.i, part.j, tile[r0 - rows[0] : r1 - rows[0], c0 - cols[0] : c1 - cols[0]])
        self.store.count_written(written)
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
                if os.pwritev(fd, batch, done) != wanted:  # a full disk (or quota) cuts a write short
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                done += wanted
            os.close(fd)
            fd = -1
            os.replace(partial, path)
        except OSError as error:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise full_device(path, block.nbytes) from None
            raise
        except BaseException:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
            raise
        return done

    def _chunk(self, i: int, j: int, row: int, col: int, target: np.ndarray) -> int:
        """Copy rows ``row…`` and columns ``col…`` of chunk ``(i, j)`` into ``target``; bytes read.

        Copied out of a mapping of the file: here the kernel's copy of ``preadv`` moves 1.8 GB
        a second, mapping page-cached pages and copying them 8 or more."""
        rows, width = target.shape
        view = self._map_chunk(i, j, row, row + rows, copied=True)
        if view is None:
            if self.allow_missing:
                target[...] = self.fill
            return 0
        target[...] = view[:, col : col + width]
        return rows * width * self.itemsize
