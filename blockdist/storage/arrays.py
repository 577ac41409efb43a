"""Open, describe and create Zarr arrays, refusing what cannot be used before anything runs.

Inputs are any array zarr writes, format 2 or 3, opened read-only (:func:`open_input`);
:func:`layout_of` gives the planner its view of one (:class:`~blockdist.planning.MatrixLayout`,
with the way tasks will read it and which of its chunks are stored); outputs are Zarr v3,
checked (:func:`check_output_location`) and created with their full metadata
(:func:`create_output`) before any task runs.
"""

from __future__ import annotations

import errno
import json
import math
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from ..errors import ArrayNotFoundError, DtypeError, InputError, OutputConflictError, OutputExistsError
from ..planning import MatrixLayout, ReadSource
from ..planning.layout import NUMERIC_KINDS
from ..planning.presence import StoredChunks
from .counting import full_device
from .refs import ArrayRef
from .s3store import look
from .vectors import stored_shape, viewed

Array = zarr.Array


def open_input(ref: ArrayRef) -> zarr.Array:
    """Open an input read-only, refusing what is missing, not an array, or not numeric; a
    ``ref`` with a ``view`` opens as the matrix it makes of a vector (:mod:`.vectors`)."""
    if ref.local_path is not None and not ref.local_path.exists():
        raise ArrayNotFoundError(f"{ref}: no such file or directory")
    if ref.remote is not None:
        found, _ = look(ref.remote)
        if found == "missing":
            raise ArrayNotFoundError(f"{ref}: no such array (nothing is stored under it)")
        if found == "other":
            raise ArrayNotFoundError(f"{ref}: not a Zarr array (there is no zarr.json or .zarray)")
    try:
        array = zarr.open_array(store=ref.store.with_read_only(True), mode="r")
    except (FileNotFoundError, zarr.errors.ArrayNotFoundError) as error:
        raise ArrayNotFoundError(f"{ref}: not a Zarr array ({error})") from None
    except zarr.errors.NodeTypeValidationError:
        raise ArrayNotFoundError(f"{ref}: this is a Zarr group, not an array") from None
    except (PermissionError, OSError, ValueError, KeyError, TypeError) as error:
        detail = f"{type(error).__name__}: {error}" if isinstance(error, KeyError) else str(error)
        name, version = _metadata_file(ref)
        raise ArrayNotFoundError(f"{ref}/{name}: not valid Zarr v{version} array metadata ({detail}); repair or "
                                 "rewrite the array") from None
    dtype = np.dtype(array.dtype)
    if dtype.kind not in NUMERIC_KINDS:
        raise DtypeError(
            f"{ref} has dtype {dtype}, which is not numeric; blockdist multiplies integer, "
            "float and complex matrices"
        )
    return viewed(array, ref.view)


def _metadata_file(ref: ArrayRef) -> tuple[str, int]:
    """The metadata document of a local array that zarr could not open, and its format."""
    if ref.local_path is not None and not (ref.local_path / "zarr.json").exists() and (
            ref.local_path / ".zarray").exists():
        return ".zarray", 2
    return "zarr.json", 3


def raw_chunk_files(ref: ArrayRef, array: zarr.Array, dtype: np.dtype) -> bool:
    """Whether each chunk of ``array`` is a local file holding the chunk itself, C order, ``dtype``.

    True for a local, unsharded Zarr v3 matrix whose only codec is the bytes codec in native
    order, or a Zarr v2 one in C order with no filter and no compressor, stored in ``dtype``:
    such files can be read (or mapped, or written) directly. F order, filters, another byte
    order or dtype: zarr reads them.
    """
    try:
        from zarr.codecs import BytesCodec

        meta = array.metadata
        stored = np.dtype(array.dtype)
        if meta.zarr_format == 2:
            plain = plain_v2(meta) and meta.compressor is None  # type: ignore[union-attr]
        else:
            codecs = tuple(meta.codecs)  # type: ignore[union-attr]
            endian = getattr(codecs[0], "endian", None) if codecs else None
            plain = (array.shards is None and len(codecs) == 1 and isinstance(codecs[0], BytesCodec)
                     and (endian is None or getattr(endian, "value", endian) == sys.byteorder))
        return bool(
            ref.local_path is not None and hasattr(os, "preadv") and plain
            and stored == dtype and stored.isnative and len(meta.shape) == 2  # a viewed vector: zarr reads it
            and math.prod(array.chunks) * stored.itemsize < 2**30  # one system call reads it whole
        )
    except Exception:  # an unusual array: zarr knows how to read it
        return False


def plain_v2(meta: Any) -> bool:
    """Whether a Zarr v2 array's chunks are its elements in C order, compressed at most: no
    filter (delta, shuffle…) between them and the compressor, and a native byte order."""
    return bool(meta.zarr_format == 2 and meta.order == "C" and not meta.filters
                and np.dtype(meta.dtype.to_native_dtype()).isnative)


def read_source(ref: ArrayRef, array: zarr.Array, dtype: np.dtype) -> ReadSource:
    """How tasks will get the chunks of ``array`` for a ``dtype`` product."""
    if raw_chunk_files(ref, array, dtype):
        return ReadSource.RAW
    return ReadSource.DECODED if ref.local_path is not None else ReadSource.OBJECT


def layout_of(array: zarr.Array, ref: ArrayRef | None = None, dtype: np.dtype | None = None,
              stored: StoredChunks | None = None) -> MatrixLayout:
    """The planner's view of an array: shape, the chunk shape it is read by, itemsize, source,
    and which chunks are stored (``stored``, from :func:`~.listing.stored_chunks`).

    With ``ref`` and the product's ``dtype``, the layout says how tasks will read it
    (:func:`read_source`); without, it is taken for chunks zarr decodes from local files.
    """
    chunks = array.shards or array.chunks
    item = np.dtype(array.dtype)
    source = read_source(ref, array, dtype) if ref is not None and dtype is not None else ReadSource.DECODED
    return MatrixLayout(tuple(array.shape), tuple(chunks), item.itemsize, item.name, source,  # type: ignore[arg-type]
                        codec_name(array), stored)


def codec_name(array: zarr.Array) -> str:
    """The compressor of ``array``'s chunks (inside its shards, if any), as the planner prices it.

    >>> codec_name(zarr.create_array(store={}, shape=(4, 4), chunks=(2, 2), dtype="f8"))
    'zstd'
    """
    try:
        compressors = tuple(array.compressors)
    except Exception:
        return "other"
    if not compressors:
        return "none"
    if len(compressors) > 1:
        return "other"
    return type(compressors[0]).__name__.removesuffix("Codec").lower() or "other"


def _node_type(meta: bytes | None) -> str | None:
    """"array" or "group" for a zarr.json (or a v2 .zarray, which has a shape), else ``None``."""
    try:
        document = json.loads(meta or b"")
        if document.get("zarr_format") == 2 and "shape" in document:
            return "array"
        return document.get("node_type")  # type: ignore[no-any-return]
    except (ValueError, AttributeError):
        return None


def _is_zarr_array_folder(path: Path) -> bool:
    for name in ("zarr.json", ".zarray"):
        try:
            return _node_type((path / name).read_bytes()) == "array"
        except OSError:
            continue
    return False


def exists(ref: ArrayRef) -> tuple[bool, bool]:
    """(anything is stored there, it is a Zarr array); asks object storage quickly."""
    if ref.remote is not None:
        found, meta = look(ref.remote)
        return found != "missing", found == "zarr" and _node_type(meta) == "array"
    if ref.local_path is None or not ref.local_path.exists():
        return False, False
    return True, _is_zarr_array_folder(ref.local_path)


def check_creatable(out: ArrayRef) -> None:
    """Refuse a local output whose folder cannot be made (its nearest existing parent is a file,
    or not writable), before anything starts."""
    if out.local_path is None:
        return
    parent = out.local_path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputConflictError(f"cannot create the output {out}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputConflictError(f"cannot create the output {out}: the folder {parent} is not writable")


def check_output_location(out: ArrayRef, inputs: list[ArrayRef], *, overwrite: bool) -> None:
    """Refuse an output that is an input, nests with one, or exists without ``overwrite``.

    For an output on S3 this also checks, before anything is written, that its bucket exists
    and answers to the credentials.
    """
    for ref in inputs:
        if out == ref or out.nests_with(ref):
            raise OutputConflictError(
                f"the output {out} is the input {ref} or nests with it; write the product to another path"
            )
    present, is_array = exists(out)
    if not present:
        return
    if not overwrite:
        raise OutputExistsError(
            f"the output {out} already exists; pass --overwrite (overwrite=True) to replace it, "
            "or choose another path"
        )
    if not is_array:
        raise OutputConflictError(
            f"the output {out} exists and is not a Zarr array, so blockdist will not replace it "
            "even with --overwrite; remove it yourself or choose another path"
        )


def stored_attributes(ref: ArrayRef) -> dict[str, Any] | None:
    """The attributes of the Zarr array at ``ref``, or ``None`` where there is none to read."""
    try:
        return zarr.open_array(store=ref.store.with_read_only(True), mode="r").attrs.asdict()
    except Exception:
        return None


def open_for_update(ref: ArrayRef) -> zarr.Array | None:
    """The existing array at ``ref``, opened for writing, or ``None`` if there is none."""
    try:
        return zarr.open_array(store=ref.store, mode="r+")
    except Exception:
        return None


def save_attributes(ref: ArrayRef, array: zarr.Array, attributes: dict[str, Any]) -> zarr.Array:
    """Merge ``attributes`` into the array's and return it, reopened.

    A local ``zarr.json`` is replaced whole (written beside it, then renamed), never rewritten
    in place: a write that fails — a full disk — leaves the old metadata and manifest intact
    instead of a truncated file. On S3 a put is whole already.
    """
    if ref.local_path is None:
        array.update_attributes(attributes)
        return array
    path = ref.local_path / "zarr.json"
    document = json.loads(path.read_bytes())
    document["attributes"] = {**document.get("attributes", {}), **attributes}
    partial = path.with_name(f"zarr.json.{uuid.uuid4().hex}.partial")
    try:
        partial.write_text(json.dumps(document, indent=2))
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise full_device(path, len(json.dumps(document))) from None
        raise
    return zarr.open_array(store=ref.store, mode="r+")


#: Output codecs by name (``like-a``: A's own, resolved against A's array).
CODECS = ("like-a", "none", "zstd", "blosc-lz4")


def output_compressors(spec: Any, like: zarr.Array | None) -> Any:
    """What ``zarr.create_array`` takes as ``compressors`` for a codec named in the options.

    >>> output_compressors("none", None) is None
    True
    """
    from zarr.codecs import BloscCodec, ZstdCodec

    if spec is None or spec == "none":
        return None
    if isinstance(spec, str):
        if spec == "like-a":
            return like_compressors(like) if like is not None else None
        if spec == "zstd":
            return ZstdCodec()
        if spec == "blosc-lz4":
            return BloscCodec(cname="lz4", shuffle="shuffle")
        raise InputError(f"unknown output codec {spec!r}: use one of {', '.join(CODECS)}, or pass codec objects")
    return spec


def like_compressors(like: Any) -> Any:
    """The Zarr v3 codecs of ``like``'s compressor, for an output "like A": a v3 array's own, a
    v2 array's numcodecs compressor as the v3 codec of the same name, or an :class:`InputError`
    naming a compressor that has none (and the codecs there are).

    >>> import numcodecs
    >>> (codec,) = like_compressors(zarr.create_array(store={}, shape=(4,), dtype="f8", zarr_format=2,
    ...                                               compressors=numcodecs.Blosc(cname="lz4", shuffle=2)))
    >>> type(codec).__name__, codec.cname.value, codec.shuffle.value
    ('BloscCodec', 'lz4', 'bitshuffle')
    """
    from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

    if like.metadata.zarr_format != 2:
        return like.compressors or None
    compressor = like.metadata.compressor
    if compressor is None:
        return None
    codec = getattr(compressor, "codec_id", type(compressor).__name__)
    if codec == "zstd":
        return (ZstdCodec(level=compressor.level, checksum=bool(getattr(compressor, "checksum", False))),)
    if codec == "gzip":
        return (GzipCodec(level=compressor.level),)
    if codec == "blosc":
        shuffles = {0: "noshuffle", 1: "shuffle", 2: "bitshuffle"}
        # numcodecs' AUTOSHUFFLE (-1): bit-shuffle for bytes, byte-shuffle for wider items
        auto = "bitshuffle" if np.dtype(like.dtype).itemsize == 1 else "shuffle"
        return (BloscCodec(cname=compressor.cname, clevel=compressor.clevel,
                           shuffle=shuffles.get(compressor.shuffle, auto), blocksize=compressor.blocksize),)
    raise InputError(
        f"A's compressor {compressor!r} (Zarr v2) has no Zarr v3 codec for the output, which is written "
        f"like A's by default; pass --out-codec (Python: out_compressors=) {', '.join(CODECS[1:])}")


def create_output(ref: ArrayRef, *, shape: tuple[int, int], chunks: tuple[int, int], dtype: str,
                  overwrite: bool, attributes: dict[str, Any], shards: tuple[int, int] | None = None,
                  compressors: Any = None) -> zarr.Array:
    """Create the output with its full metadata (zero-filled) before any task runs; a ``ref``
    with a ``view`` is created as the vector (or 0-d array) that view makes a matrix of."""
    if ref.view:
        shape, chunks = stored_shape(ref.view, shape), stored_shape(ref.view, chunks)  # type: ignore[assignment]
        shards = None if shards is None else stored_shape(ref.view, shards)  # type: ignore[assignment]
    try:
        return zarr.create_array(store=ref.store, shape=shape, chunks=chunks, shards=shards, dtype=dtype,
                                 compressors=compressors, fill_value=0, attributes=attributes, overwrite=overwrite)
    except OSError as error:  # no task has run: this is still the user's input
        raise OutputConflictError(f"cannot create the output {ref}: {error.strerror or error}") from None


def store_matrix(ref: ArrayRef, data: np.ndarray, chunks: tuple[int, ...]) -> None:
    """Store a matrix held in memory (an operand made here, a sketch's small side) at ``ref``,
    local or on S3, uncompressed, every chunk written (replacing what is there: scratch only)."""
    zarr.create_array(store=ref.store, data=data, chunks=chunks, compressors=None, overwrite=True,
                      config={"write_empty_chunks": True})


def create_scratch(path: Path, *, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: Any) -> None:
    """An uncompressed, zero-filled array at ``path`` unless one is there (staging and markers)."""
    if not path.exists():
        zarr.create_array(store=str(path), shape=shape, chunks=chunks, dtype=dtype, compressors=None, fill_value=0)
