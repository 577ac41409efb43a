"""The storage layer: the only one that imports zarr, obstore or s3fs.

``refs`` (where an array lives: :class:`ArrayRef`, :func:`locate`), ``arrays`` (open,
describe, check and create arrays), ``counting`` (stores that count bytes), ``chunkfiles``
(raw chunk files read, mapped and written directly), ``encoded`` (compressed and sharded
local chunk files read and decoded without zarr's pipeline), ``tiles`` (what workers read and
write), ``s3config`` and ``s3store`` (object storage), ``interop`` (dask arrays in and out),
``fingerprint`` (changed inputs), ``random`` (random matrices).
"""

from .arrays import (
    NUMERIC_KINDS,
    Array,
    check_creatable,
    check_output_location,
    create_output,
    create_scratch,
    layout_of,
    open_for_update,
    open_input,
    output_compressors,
    raw_chunk_files,
    read_source,
    save_attributes,
    store_matrix,
    stored_attributes,
)
from .chunkfiles import ChunkFiles
from .counting import CountingStore, open_counted
from .encoded import EncodedChunks
from .fingerprint import fingerprint
from .refs import ROLES, ArrayRef, locate, options_for
from .tiles import name_bad_chunk, read_block, read_into, write_tile

__all__ = [
    "NUMERIC_KINDS", "ROLES", "Array", "ArrayRef", "ChunkFiles", "CountingStore", "EncodedChunks", "check_creatable",
    "check_output_location", "create_output", "create_scratch", "fingerprint", "layout_of", "locate",
    "name_bad_chunk", "open_counted", "open_for_update", "open_input", "options_for", "output_compressors", "raw_chunk_files",
    "read_block", "read_into", "read_source", "save_attributes", "store_matrix", "stored_attributes", "write_tile",
]
