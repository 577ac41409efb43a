"""Reading a selection into a task's buffer, and writing a finished tile: what workers ask of storage.

Reads decode straight into the caller's buffer (zarr's ``out=``) or, for raw chunk files,
copy into it from a mapping (:class:`~.chunkfiles.ChunkFiles`), or, for compressed and sharded local
files, decode them without zarr's pipeline (:class:`~.encoded.EncodedChunks`); writes of whole chunks of a raw local
output go through the chunk-file engine, anything else through zarr. Every byte is counted
on the :class:`~.counting.CountingStore` of the array it moved through.
"""

from __future__ import annotations

import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype

from .chunkfiles import ChunkFiles
from .counting import open_counted
from .encoded import EncodedChunks
from .refs import ArrayRef

Selection = tuple[slice, slice]


def read_into(array: zarr.Array, selection: Selection, out: np.ndarray,
              direct: ChunkFiles | EncodedChunks | None = None) -> None:
    """Read ``array[selection]`` into ``out``, decoding in place when the dtypes match."""
    if direct is not None:
        direct.read(selection, out)
    elif np.dtype(array.dtype) == out.dtype and isinstance(array, zarr.Array):
        array.get_basic_selection(selection, out=default_buffer_prototype().nd_buffer.from_numpy_array(out))
    else:  # a stored dtype other than the result's: read, then cast into the buffer
        np.copyto(out, array[selection], casting="unsafe")


def name_bad_chunk(array: zarr.Array, selection: Selection, error: Exception) -> str:
    """Find which chunk of a failed read is unreadable, reading them one at a time."""
    (r0, r1), (c0, c1) = (selection[0].start, selection[0].stop), (selection[1].start, selection[1].stop)
    rows, cols = array.chunks
    if len(array.metadata.shape) != 2:  # a viewed vector: its chunks are not (i, j)
        return f"rows {r0}:{r1}, columns {c0}:{c1} failed ({error})"
    for i in range(r0 // rows, -(-r1 // rows)):
        for j in range(c0 // cols, -(-c1 // cols)):
            try:
                array[i * rows : (i + 1) * rows, j * cols : (j + 1) * cols]
            except Exception as chunk_error:
                key = array.metadata.encode_chunk_key((i, j))
                return f"chunk {key} cannot be read or decoded ({chunk_error})"
    return f"rows {r0}:{r1}, columns {c0}:{c1} failed ({error})"


def read_block(ref: ArrayRef, rows: tuple[int, int], cols: tuple[int, int], dtype: np.dtype) -> tuple[np.ndarray, int]:
    """``ref[rows, cols]`` as ``dtype``, and the bytes read for it."""
    array, store = open_counted(ref)
    block = np.asarray(array[rows[0] : rows[1], cols[0] : cols[1]], dtype=dtype)
    return block, store.bytes_read


def write_tile(ref: ArrayRef, rows: tuple[int, int], cols: tuple[int, int], tile: np.ndarray) -> int:
    """Write ``tile`` to ``ref[rows, cols]``; returns the bytes written."""
    out, store = open_counted(ref, writable=True)
    files = ChunkFiles.open(ref, out, store, tile.dtype, allow_missing=False)
    if files is not None and files.covers_whole_chunks(rows, cols):
        return files.write(rows, cols, tile)
    out[rows[0] : rows[1], cols[0] : cols[1]] = tile
    return store.bytes_written
