"""The storage seam: find, open, describe, create, read and write Zarr v3 arrays.

Everything that knows about zarr lives here. Arrays travel to workers as :class:`ArrayRef`
(a picklable store plus a path), never as data; workers open them with
:func:`open_counted`, whose store counts every byte read and written. Local paths use
``LocalStore``; ``s3://bucket/path.zarr`` URLs use :mod:`blockdist.objectstore`.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.abc.store import Store
from zarr.storage import LocalStore, MemoryStore, WrapperStore

from . import objectstore
from .errors import ArrayNotFoundError, DtypeError, InputError, OutputConflictError, OutputExistsError
from .objectstore import BucketNotFoundError, StorageAccessError, StorageUnreachableError
from .plan import MatrixLayout

__all__ = ["ArrayRef", "BucketNotFoundError", "CountingStore", "StorageAccessError",
           "StorageUnreachableError", "check_output_location", "create_output", "layout_of",
           "locate", "open_counted", "open_input"]

#: Numpy dtype kinds blockdist multiplies: signed and unsigned integers, floats, complex.
NUMERIC_KINDS = "iufc"


@dataclass(frozen=True)
class ArrayRef:
    """Where an array lives: a picklable zarr store, and a name for messages."""

    store: Store
    name: str  #: a path or URL to show people (never carries a secret)
    local_path: Path | None = field(default=None, compare=False)  #: the folder, for local arrays

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:  # the store's own repr may hold an endpoint's secrets: never show it
        return f"ArrayRef({self.name!r})"

    @property
    def remote(self) -> objectstore.S3Store | None:
        """The object-storage store, for arrays on S3."""
        return self.store if isinstance(self.store, objectstore.S3Store) else None


#: The operands storage options may name, each mapping to its own dict of options.
ROLES = ("a", "b", "out")


def options_for(storage_options: Mapping[str, Any] | None, role: str) -> dict[str, Any]:
    """The options of one operand: ``storage_options`` is shared by all of them, or per operand
    when its keys are only among ``"a"``, ``"b"``, ``"out"`` (each mapping to a dict)."""
    if not storage_options:
        return {}
    if not isinstance(storage_options, Mapping):
        raise InputError("storage_options must be a dict of options, or a dict of them per "
                         f"operand ({', '.join(ROLES)})")
    if not set(storage_options) <= set(ROLES):
        return dict(storage_options)
    for key, value in storage_options.items():
        if value is not None and not isinstance(value, Mapping):
            raise InputError(f"storage_options[{key!r}] must be a dict of options")
    return dict(storage_options.get(role) or {})


def locate(
    where: str | os.PathLike[str] | zarr.Array,
    *,
    storage_options: dict[str, Any] | None = None,
    role: str = "array",
) -> ArrayRef:
    """Turn a path, URL or ``zarr.Array`` into an :class:`ArrayRef`.

    ``storage_options`` configure the store of a URL (credentials, endpoint); ``role``
    ("a", "b", "out") names the operand in messages.
    """
    if isinstance(where, zarr.Array):
        store_path = where.store_path
        if store_path.path:
            raise OutputConflictError(
                f"{store_path} is an array inside a group; pass its path "
                f"({store_path.store}/{store_path.path}) instead"
            )
        store = store_path.store
        if isinstance(store, MemoryStore):
            raise OutputConflictError(
                "an in-memory zarr array cannot be read by worker processes; "
                "save it to a local path or object storage first"
            )
        remote = store if isinstance(store, objectstore.S3Store) else objectstore.adopt(store)
        if remote is not None:
            return ArrayRef(remote, remote.config.url)
        root = getattr(store, "root", None)
        path = Path(root).resolve() if root is not None else None
        return ArrayRef(store, str(path) if path else str(store), path)
    text = os.fspath(where)
    if text.startswith("file://"):
        text = text[len("file://") :]
    if "://" in text:
        scheme = text.split("://", 1)[0]
        if scheme.lower() == "s3":
            remote = objectstore.open_url(text, options_for(storage_options, role))
            return ArrayRef(remote, remote.config.url)
        raise ArrayNotFoundError(
            f"{objectstore.shown(text)}: the {scheme}:// scheme is not supported; "
            "use a local path or an s3:// URL"
        )
    path = Path(text).expanduser().resolve()
    return ArrayRef(LocalStore(path), str(path), path)


def open_input(ref: ArrayRef) -> zarr.Array:
    """Open an input read-only, refusing what is missing, not an array, or not numeric."""
    if ref.local_path is not None and not ref.local_path.exists():
        raise ArrayNotFoundError(f"{ref}: no such file or directory")
    if ref.remote is not None:
        found, _ = objectstore.look(ref.remote)
        if found == "missing":
            raise ArrayNotFoundError(f"{ref}: no such array (nothing is stored under it)")
        if found == "other":
            raise ArrayNotFoundError(f"{ref}: not a Zarr v3 array (there is no zarr.json)")
    try:
        array = zarr.open_array(store=ref.store.with_read_only(True), mode="r")
    except (FileNotFoundError, zarr.errors.ArrayNotFoundError) as error:
        raise ArrayNotFoundError(f"{ref}: not a Zarr array ({error})") from None
    except zarr.errors.NodeTypeValidationError:
        raise ArrayNotFoundError(f"{ref}: this is a Zarr group, not an array") from None
    except (PermissionError, OSError, ValueError, KeyError) as error:
        raise ArrayNotFoundError(f"{ref}: cannot be read as a Zarr array ({error})") from None
    dtype = np.dtype(array.dtype)
    if dtype.kind not in NUMERIC_KINDS:
        raise DtypeError(
            f"{ref} has dtype {dtype}, which is not numeric; blockdist multiplies integer, "
            "float and complex matrices"
        )
    return array


#: The shortest chunk edge worth mapping: a mapped panel is multiplied chunk by chunk, and a
#: BLAS call on blocks smaller than this loses more than copying the chunks costs.
MAP_MIN_CHUNK_EDGE = 512


def raw_chunk_files(ref: ArrayRef, array: zarr.Array, dtype: np.dtype) -> bool:
    """Whether each chunk of ``array`` is a local file holding the chunk itself, C order, ``dtype``.

    True for a local, unsharded Zarr v3 matrix whose only codec is the bytes codec in native
    order, stored in ``dtype``: such files can be read (or mapped, or written) directly.
    """
    try:
        from zarr.codecs import BytesCodec

        meta = array.metadata
        codecs = tuple(meta.codecs)  # type: ignore[union-attr]
        stored = np.dtype(array.dtype)
        endian = getattr(codecs[0], "endian", None) if codecs else None
        return bool(
            ref.local_path is not None and hasattr(os, "preadv") and meta.zarr_format == 3
            and array.shards is None and len(codecs) == 1 and isinstance(codecs[0], BytesCodec)
            and (endian is None or getattr(endian, "value", endian) == sys.byteorder)
            and stored == dtype and stored.isnative and len(array.shape) == 2
            and math.prod(array.chunks) * stored.itemsize < 2**30  # one system call reads it whole
        )
    except Exception:  # an unusual array: zarr knows how to read it
        return False


def source_of(ref: ArrayRef, array: zarr.Array, dtype: np.dtype) -> str:
    """How tasks will read ``array`` for a ``dtype`` product: ``mapped``, ``local`` or ``object``.

    ``mapped``: raw chunk files of at least :data:`MAP_MIN_CHUNK_EDGE` a side, which BLAS
    reads in place (:mod:`blockdist.tasks`); ``local``: chunks zarr decodes (or ``preadv``
    copies); ``object``: chunks fetched from object storage.
    """
    from . import blas

    if (raw_chunk_files(ref, array, dtype) and min(array.chunks) >= MAP_MIN_CHUNK_EDGE
            and blas.available(dtype)):
        return "mapped"
    return "local" if ref.local_path is not None else "object"


def layout_of(array: zarr.Array, ref: ArrayRef | None = None, dtype: np.dtype | None = None) -> MatrixLayout:
    """The planner's view of an array: shape, the chunk shape it is read by, itemsize, source.

    With ``ref`` and the product's ``dtype``, the layout says how tasks will read it
    (:func:`source_of`); without, it is taken for chunks zarr decodes from local files.
    """
    chunks = array.shards or array.chunks
    stored = np.dtype(array.dtype)
    source = source_of(ref, array, dtype) if ref is not None and dtype is not None else "local"
    return MatrixLayout(tuple(array.shape), tuple(chunks), stored.itemsize, stored.name,  # type: ignore[arg-type]
                        source)


def check_output_location(out: ArrayRef, inputs: list[ArrayRef], *, overwrite: bool) -> None:
    """Refuse an output that is an input, nests with one, or exists without ``overwrite``.

    For an output on S3 this also checks, before anything is written, that its bucket exists
    and answers to the credentials.
    """
    for ref in inputs:
        if out == ref or _nests(out, ref):
            raise OutputConflictError(
                f"the output {out} is the input {ref} or nests with it; "
                "write the product to another path"
            )
    if out.remote is not None:
        found, meta = objectstore.look(out.remote)
        if found == "missing":
            return
        is_array = found == "zarr" and _node_type(meta) == "array"
    elif out.local_path is None or not out.local_path.exists():
        return
    else:
        is_array = _is_zarr_array_folder(out.local_path)
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


def _location(ref: ArrayRef) -> tuple[Any, tuple[str, ...]] | None:
    """Where the data is: a place (this machine, or an endpoint and bucket) and a path in it."""
    if ref.local_path is not None:
        return "file", ref.local_path.parts
    if ref.remote is not None:
        endpoint, bucket, parts = ref.remote.config.location
        return (endpoint, bucket), parts
    return None


def _nests(one: ArrayRef, other: ArrayRef) -> bool:
    first, second = _location(one), _location(other)
    if first is None or second is None or first[0] != second[0]:
        return False
    shorter = min(len(first[1]), len(second[1]))
    return first[1][:shorter] == second[1][:shorter]


def _node_type(meta: bytes | None) -> str | None:
    import json

    try:
        return json.loads(meta or b"").get("node_type")  # type: ignore[no-any-return]
    except (ValueError, AttributeError):
        return None


def _is_zarr_array_folder(path: Path) -> bool:
    try:
        return _node_type((path / "zarr.json").read_bytes()) == "array"
    except OSError:
        return False


def create_output(
    ref: ArrayRef,
    *,
    shape: tuple[int, int],
    chunks: tuple[int, int],
    dtype: str,
    overwrite: bool,
    attributes: dict[str, Any],
) -> zarr.Array:
    """Create the output with its full metadata (uncompressed, zero-filled) before any task runs."""
    return zarr.create_array(
        store=ref.store,
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        compressors=None,
        fill_value=0,
        attributes=attributes,
        overwrite=overwrite,
    )


_METADATA_KEYS = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}


class CountingStore(WrapperStore[Store]):
    """A store that counts the bytes it reads and writes (one per task, on the worker)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.bytes_read = 0
        self.bytes_mapped = 0  #: of bytes_read, chunk files mapped rather than read (see tasks.py)
        self.bytes_written = 0
        self.missing: list[str] = []  #: chunk keys asked for that do not exist

    async def get(self, key, prototype, byte_range=None):  # type: ignore[no-untyped-def]
        buffer = await self._store.get(key, prototype, byte_range)
        if buffer is not None:
            self.bytes_read += len(buffer)
        elif key.rsplit("/", 1)[-1] not in _METADATA_KEYS:
            self.missing.append(key)
        return buffer

    async def get_partial_values(self, prototype, key_ranges):  # type: ignore[no-untyped-def]
        buffers = await self._store.get_partial_values(prototype, key_ranges)
        self.bytes_read += sum(len(b) for b in buffers if b is not None)
        return buffers

    async def set(self, key, value):  # type: ignore[no-untyped-def]
        self.bytes_written += len(value)
        await self._store.set(key, value)


def open_counted(ref: ArrayRef, *, writable: bool = False) -> tuple[zarr.Array, CountingStore]:
    """Open an array on a worker through a :class:`CountingStore`."""
    store = CountingStore(ref.store if writable else ref.store.with_read_only(True))
    array = zarr.open_array(store=store, mode="r+" if writable else "r")
    # Write every chunk, zeros included, so a missing chunk always means a damaged array.
    return (array.with_config({"write_empty_chunks": True}) if writable else array), store
