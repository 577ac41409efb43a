"""Compressed and sharded local chunk files, mapped and decoded straight into the panel.

zarr-python reads a compressed chunk through its codec pipeline: an asyncio task per chunk, a
buffer per stage, then a copy into the selection; for a shard it reads the index and then
each inner chunk with its own request. For the arrays people usually have (a local Zarr v3
matrix whose codecs are the bytes codec and at most one compressor — zstd, blosc or gzip —
optionally inside a sharding codec; or a Zarr v2 one in C order, with no filter and a zstd, blosc,
gzip, zlib or lz4 compressor), :class:`EncodedChunks` does the same work with fewer
steps: each file (a chunk, or a whole shard) is mapped once, a shard's index is read from the
mapping, and the codec library decodes each inner chunk from the mapping straight into the
panel (or, where the chunk's rows are not whole rows of the panel, into a reused buffer whose
rows are then copied). Anything else (another codec, a transposing codec or F order, filters,
big-endian bytes, object storage) goes through zarr: :meth:`EncodedChunks.open` says which.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import queue
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from .arrays import plain_v2
from .chunkfiles import POPULATE, ChunkPart, chunk_parts, read_parts
from .counting import CountingStore
from .refs import ArrayRef

#: An empty inner chunk's entry in a shard index (zarr writes no bytes for it).
_EMPTY = 2**64 - 1
#: Zarr v2 compressors decoded here (into the panel, with numcodecs' ``decode(…, out=…)``).
_V2_COMPRESSORS = ("zstd", "blosc", "gzip", "zlib", "lz4")


def _decoder(codec: Any) -> Any | None:
    """The numcodecs decoder of one of zarr's bytes-to-bytes codecs, or ``None`` if unsupported."""
    from numcodecs import GZip, Zstd
    from numcodecs.blosc import Blosc
    from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

    if isinstance(codec, ZstdCodec):
        return Zstd()
    if isinstance(codec, BloscCodec):  # blosc's header says how it was shuffled and typed
        return Blosc()
    if isinstance(codec, GzipCodec):
        return GZip()
    return None


def _native_bytes(codec: Any) -> bool:
    from zarr.codecs import BytesCodec

    endian = getattr(codec, "endian", None)
    return isinstance(codec, BytesCodec) and (endian is None or getattr(endian, "value", endian) == sys.byteorder)


def _chunk_codecs(codecs: tuple[Any, ...]) -> tuple[bool, Any | None]:
    """(readable here, decoder or ``None`` for plain bytes) for a chunk's codec chain."""
    if not codecs or not _native_bytes(codecs[0]) or len(codecs) > 2:
        return False, None
    if len(codecs) == 1:
        return True, None
    decoder = _decoder(codecs[1])
    return decoder is not None, decoder


@dataclass(frozen=True, slots=True)
class Layout:
    """How an array's chunks sit in its files: ``outer`` chunks a file, ``inner`` chunks within."""

    outer: tuple[int, int]  #: a file's chunk shape (the shard, or the chunk when unsharded)
    inner: tuple[int, int]  #: the chunk the codec decodes (the shard's inner chunk, or the chunk)
    decoder: Any  #: numcodecs decoder, ``None`` for plain bytes
    sharded: bool
    index_at_end: bool = True
    index_checksum: bool = False

    @property
    def per_file(self) -> tuple[int, int]:
        return self.outer[0] // self.inner[0], self.outer[1] // self.inner[1]


def layout(ref: ArrayRef, array: Any, dtype: np.dtype) -> Layout | None:
    """The file layout of ``array`` if :class:`EncodedChunks` can read it for a ``dtype`` product."""
    try:
        from zarr.codecs import Crc32cCodec, ShardingCodec

        meta = array.metadata
        stored = np.dtype(array.dtype)
        if ref.local_path is None or len(meta.shape) != 2 or stored != dtype or not stored.isnative:
            return None
        if meta.zarr_format == 2:  # a v2 compressor is a numcodecs codec already
            ok = plain_v2(meta) and getattr(meta.compressor, "codec_id", None) in _V2_COMPRESSORS
            return Layout(tuple(array.chunks), tuple(array.chunks), meta.compressor, False) if ok else None
        codecs = tuple(meta.codecs)
        outer = tuple(array.shards or array.chunks)
        if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec):
            shard = codecs[0]
            ok, decoder = _chunk_codecs(tuple(shard.codecs))
            index = tuple(shard.index_codecs)
            index_ok = (index and _native_bytes(index[0]) and len(index) <= 2
                        and (len(index) == 1 or isinstance(index[1], Crc32cCodec)))
            inner = tuple(shard.chunk_shape)
            if not ok or not index_ok or len(inner) != 2 or outer[0] % inner[0] or outer[1] % inner[1]:
                return None
            at_end = getattr(shard.index_location, "value", shard.index_location) == "end"
            return Layout(outer, inner, decoder, True, at_end, len(index) == 2)  # type: ignore[arg-type]
        ok, decoder = _chunk_codecs(codecs)
        return Layout(outer, outer, decoder, False) if ok else None  # type: ignore[arg-type]
    except Exception:  # an unusual array: zarr knows how to read it
        return None


class EncodedChunks:
    """The chunk files of a local compressed or sharded array, read and decoded without zarr."""

    #: Files read and decoded at once (the codec libraries release the GIL).
    CONCURRENCY = 4

    def __init__(self, root: Any, array: Any, store: CountingStore, file_layout: Layout, allow_missing: bool) -> None:
        self.root = root
        self.array = array
        self.store = store
        self.layout = file_layout
        self.allow_missing = allow_missing
        self.dtype = np.dtype(array.dtype)
        self.fill = array.metadata.fill_value
        #: reused chunk buffers: a fresh one per chunk would page-fault its memory in each time
        self._chunks: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()

    @classmethod
    def open(cls, ref: ArrayRef, array: Any, store: CountingStore, dtype: np.dtype,
             allow_missing: bool) -> EncodedChunks | None:
        """The direct reader for ``array``, or ``None`` where zarr must decode its chunks."""
        found = layout(ref, array, dtype)
        if found is None or (found.decoder is None and not found.sharded):
            return None  # plain chunk files: ChunkFiles reads (or maps) them
        return cls(ref.local_path, array, store, found, allow_missing)

    def read(self, selection: tuple[slice, slice], out: np.ndarray) -> None:
        """Decode ``array[selection]`` into ``out``."""
        rows, cols = (selection[0].start, selection[0].stop), (selection[1].start, selection[1].stop)

        def one(file: ChunkPart) -> int:
            return self._file(file, rows, cols, out)

        self.store.count_read(read_parts(one, chunk_parts(rows, cols, self.layout.outer), self.CONCURRENCY))

    # --- one file: a chunk, or a shard --------------------------------------------------
    def _file(self, file: ChunkPart, rows: tuple[int, int], cols: tuple[int, int], out: np.ndarray) -> int:
        """Decode the part of ``out`` (the selection ``[rows, cols]``) that one file holds."""
        pieces = chunk_parts(file.rows, file.cols, self.layout.inner)
        key = self.array.metadata.encode_chunk_key((file.i, file.j))
        try:
            fd = os.open(os.path.join(self.root, key), os.O_RDONLY)
        except FileNotFoundError:
            self.store.note_missing(key)
            for piece in pieces:
                self._fill(piece, rows, cols, out)
            return 0
        try:
            size = os.fstat(fd).st_size
            # Mapped, not read: here the kernel's copy of pread moves 1.8 GB a second, about as
            # slow as decoding, while mapping page-cached pages costs a few percent of that.
            mapped = mmap.mmap(fd, size, flags=mmap.MAP_SHARED | POPULATE, prot=mmap.PROT_READ) if size else None
        except OSError as error:
            raise OSError(f"chunk {key} cannot be read ({error})") from error
        finally:
            os.close(fd)
        if mapped is None:
            raise OSError(f"chunk {key} is empty")
        view = memoryview(mapped)
        try:
            if not self.layout.sharded:
                self._decode(view, pieces[0], rows, cols, out, key)
                return size
            return self._shard(view, key, file, pieces, rows, cols, out)
        finally:
            # A decoder's error may still hold a view of the mapping: then the mapping goes with it.
            with contextlib.suppress(BufferError):
                view.release()
                mapped.close()

    def _shard(self, view: memoryview, key: str, file: ChunkPart, pieces: list[ChunkPart],
               rows: tuple[int, int], cols: tuple[int, int], out: np.ndarray) -> int:
        index, nbytes = self._index(view, key)
        per_r, per_c = self.layout.per_file
        for piece in pieces:
            offset, length = (int(v) for v in index[piece.i - file.i * per_r, piece.j - file.j * per_c])
            if offset == _EMPTY:  # all fill value: zarr stored nothing
                self._fill(piece, rows, cols, out, noted=True)
                continue
            if offset + length > len(view):
                raise OSError(f"shard {key} is shorter than its index says ({len(view)} of {offset + length} bytes)")
            with view[offset : offset + length] as data:
                self._decode(data, piece, rows, cols, out, key)
            nbytes += length
        return nbytes

    def _index(self, view: memoryview, key: str) -> tuple[np.ndarray, int]:
        """A shard's index as ``(offset, length)`` per inner chunk, and the bytes read for it."""
        per_r, per_c = self.layout.per_file
        size = per_r * per_c * 16 + (4 if self.layout.index_checksum else 0)
        if len(view) < size:
            raise OSError(f"shard {key} is too short to hold its index")
        start = len(view) - size if self.layout.index_at_end else 0
        raw = bytes(view[start : start + size])
        if self.layout.index_checksum:
            import google_crc32c

            if np.uint32(google_crc32c.value(raw[:-4])).tobytes() != raw[-4:]:
                raise OSError(f"shard {key}: its index fails its crc32c checksum")
        return np.frombuffer(raw, dtype="<u8", count=per_r * per_c * 2).reshape(per_r, per_c, 2), size

    # --- one inner chunk ------------------------------------------------------------------
    def _take_chunk(self) -> np.ndarray:
        try:
            return self._chunks.get_nowait()
        except queue.Empty:
            return np.empty(self.layout.inner, dtype=self.dtype)

    def _decode(self, data: Any, piece: ChunkPart, rows: tuple[int, int], cols: tuple[int, int], out: np.ndarray,
                key: str) -> None:
        ir, ic = self.layout.inner
        (a, b), (c, d) = piece.rows, piece.cols
        target = out[a - rows[0] : b - rows[0], c - cols[0] : d - cols[0]]
        whole = target.shape == (ir, ic) and target.flags.c_contiguous
        # A whole chunk whose rows are whole rows of the panel is decoded straight into it.
        chunk = target if whole else self._take_chunk()
        if self.layout.decoder is None:
            if len(data) != chunk.nbytes:
                raise OSError(f"chunk {key} holds {len(data)} bytes, not {chunk.nbytes}")
            chunk.reshape(-1).view(np.uint8)[:] = np.frombuffer(data, dtype=np.uint8)
        else:
            try:
                self.layout.decoder.decode(data, out=chunk)
            except Exception as error:
                raise OSError(f"chunk {key} cannot be decoded ({error})") from error
        if not whole:
            target[...] = chunk[a - piece.i * ir : b - piece.i * ir, c - piece.j * ic : d - piece.j * ic]
            self._chunks.put(chunk)

    def _fill(self, piece: ChunkPart, rows: tuple[int, int], cols: tuple[int, int], out: np.ndarray,
              noted: bool = False) -> None:
        # A whole missing file was noted by the caller; an empty inner chunk is a legal fill.
        if self.allow_missing or noted:
            (a, b), (c, d) = piece.rows, piece.cols
            out[a - rows[0] : b - rows[0], c - cols[0] : d - cols[0]] = self.fill
