"""Which chunks of an input are stored, listed before any task runs (:func:`stored_chunks`).

zarr stores no chunk that holds only the fill value, so an absent chunk is the fill value,
not damage. The listing is the one the input's fingerprint is made of (a directory walk, or
an S3 prefix listing: :func:`~.fingerprint.stored_pieces`); each chunk's key, as the array's
own chunk key encoding writes it (``c/1/0``, ``c.1.0``, ``1.0``, ``1/0``), is looked up in it.
A sharded array's shards that exist have their index read (one ranged read each, from the
end or the start of the shard, as its codec says) to count the inner chunks stored; a shard
whose index is in a form not read here counts as fully stored, which is never wrong (its
empty inner chunks are read as the fill value).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np
from zarr.abc.store import RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from ..planning.presence import ChunkPresence, StoredChunks
from .fingerprint import stored_pieces
from .refs import ArrayRef

#: An empty inner chunk's offset (and length) in a shard index.
EMPTY = 2**64 - 1


def _stored_array(array: Any) -> Any:
    """The zarr array itself, under a :class:`~.vectors.MatrixView`."""
    return getattr(array, "array", array)


def fill_text(value: Any) -> tuple[str, bool]:
    """The fill value as people read it, and whether it is zero (``None`` reads as 0).

    >>> fill_text(0.0), fill_text(None), fill_text(np.float32(0.5)), fill_text(complex(0, 1)), fill_text(np.nan)
    (('0', True), ('0', True), ('0.5', False), ('1j', False), ('nan', False))
    """
    if value is None:
        return "0", True
    item = np.asarray(value).item()
    zero = bool(item == 0)
    if zero:
        return "0", True
    return (f"{item:g}" if isinstance(item, float) else str(item)), False


def _shard_index(array: Any) -> tuple[int, bool, bool] | None:
    """(inner chunks a shard, index at the end, with a crc32c) of a shard index read here, else ``None``."""
    from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec

    codecs = tuple(getattr(array.metadata, "codecs", ()))
    if len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec):
        return None
    shard = codecs[0]
    index = tuple(shard.index_codecs)
    endian = getattr(getattr(index[0], "endian", None), "value", "little") if index else None
    if not index or not isinstance(index[0], BytesCodec) or endian not in (None, "little") or len(index) > 2 or (
            len(index) == 2 and not isinstance(index[1], Crc32cCodec)):
        return None
    per_shard = math.prod(s // c for s, c in zip(array.shards, shard.chunk_shape, strict=True))
    at_end = getattr(shard.index_location, "value", shard.index_location) == "end"
    return per_shard, at_end, len(index) == 2


async def _inner_counts(ref: ArrayRef, keys: list[str], per_shard: int, at_end: bool, checksum: bool) -> list[int]:
    """Inner chunks stored in each shard of ``keys``, from its index."""
    size = per_shard * 16 + (4 if checksum else 0)
    window = SuffixByteRequest(size) if at_end else RangeByteRequest(0, size)
    prototype = default_buffer_prototype()

    async def one(key: str) -> int:
        buffer = await ref.store.get(key, prototype, window)
        if buffer is None or len(buffer) < per_shard * 16:
            return per_shard  # gone or short since the listing: the read will say so
        entries = np.frombuffer(buffer.to_bytes()[: per_shard * 16], dtype="<u8").reshape(per_shard, 2)
        return int((entries[:, 0] != EMPTY).sum())

    return list(await asyncio.gather(*(one(key) for key in keys)))


def _matrix_grid(present: np.ndarray, view: str) -> np.ndarray:
    """A vector's (or a 0-d array's) presence as the matrix its view makes of it."""
    if not view:
        return present
    if view == "scalar":
        return present.reshape(1, 1)
    return present.reshape(1, -1) if view == "row" else present.reshape(-1, 1)


def stored_chunks(ref: ArrayRef, array: Any, keys: set[str]) -> StoredChunks:
    """Which read units (chunks, or shards) of ``array`` are among the stored ``keys`` (the
    listing, relative to the array), and how many of its chunks are stored."""
    stored = _stored_array(array)
    meta = stored.metadata
    shape = tuple(meta.shape)
    unit = tuple(stored.shards or stored.chunks)
    grid = tuple(-(-s // c) for s, c in zip(shape, unit, strict=True))
    present = np.zeros(grid, dtype=bool)
    for index in np.ndindex(*grid):
        present[index] = meta.encode_chunk_key(index) in keys
    total = math.prod(-(-s // c) for s, c in zip(shape, stored.chunks, strict=True))
    count = int(present.sum())
    shards = _shard_index(stored) if stored.shards is not None else None
    if stored.shards is not None and shards is None:
        count = min(total, count * math.prod(s // c for s, c in zip(stored.shards, stored.chunks, strict=True)))
    elif shards is not None and count:
        where = [index for index in np.ndindex(*grid) if present[index]]
        inner = sync(_inner_counts(ref, [meta.encode_chunk_key(i) for i in where], *shards))
        for index, n in zip(where, inner, strict=True):
            present[index] = n > 0
        count = sum(inner)
    fill, zero = fill_text(stored.fill_value)
    matrix = _matrix_grid(present, ref.view)
    whole = bool(matrix.all())
    return StoredChunks(None if whole else ChunkPresence.of(matrix), count, total, fill, zero)


def list_stored(ref: ArrayRef, array: Any) -> tuple[dict[str, tuple[int, str]], StoredChunks]:
    """``ref``'s stored pieces (the listing its fingerprint is made of) and the chunks they hold:
    one listing for both, so that what a job plans by is what it checks the input against."""
    pieces = stored_pieces(ref)
    return pieces, stored_chunks(ref, array, set(pieces))


def absent_keys(array: Any, stored: StoredChunks, first: int = 3) -> list[str]:
    """The keys of the first ``first`` read units (chunks, or shards) not stored, for a message."""
    if stored.present is None:
        return []
    zarr_array = _stored_array(array)
    unit = tuple(zarr_array.shards or zarr_array.chunks)
    grid = tuple(-(-s // c) for s, c in zip(zarr_array.metadata.shape, unit, strict=True))
    absent = np.flatnonzero(~stored.present.array().reshape(-1))[:first]  # a vector's view: the same order
    return [zarr_array.metadata.encode_chunk_key(tuple(int(i) for i in np.unravel_index(index, grid)))
            for index in absent]
