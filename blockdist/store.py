"""The storage seam: find, open, describe, create, read and write Zarr v3 arrays.

Everything that knows about zarr lives here. Arrays travel to workers as :class:`ArrayRef`
(a picklable store plus a path), never as data; workers open them with
:func:`open_counted`, whose store counts every byte read and written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.abc.store import Store
from zarr.storage import LocalStore, MemoryStore, WrapperStore

from .errors import ArrayNotFoundError, DtypeError, OutputConflictError, OutputExistsError
from .plan import MatrixLayout

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
        root = getattr(store, "root", None)
        path = Path(root).resolve() if root is not None else None
        return ArrayRef(store, str(path) if path else str(store), path)
    text = os.fspath(where)
    if text.startswith("file://"):
        text = text[len("file://") :]
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise ArrayNotFoundError(
            f"{text}: the {scheme}:// scheme is not supported; use a local path"
        )
    path = Path(text).expanduser().resolve()
    return ArrayRef(LocalStore(path), str(path), path)


def open_input(ref: ArrayRef) -> zarr.Array:
    """Open an input read-only, refusing what is missing, not an array, or not numeric."""
    if ref.local_path is not None and not ref.local_path.exists():
        raise ArrayNotFoundError(f"{ref}: no such file or directory")
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


def layout_of(array: zarr.Array) -> MatrixLayout:
    """The planner's view of an array: shape, the chunk shape it is read by, itemsize."""
    chunks = array.shards or array.chunks
    dtype = np.dtype(array.dtype)
    return MatrixLayout(tuple(array.shape), tuple(chunks), dtype.itemsize, dtype.name)  # type: ignore[arg-type]


def check_output_location(out: ArrayRef, inputs: list[ArrayRef], *, overwrite: bool) -> None:
    """Refuse an output that is an input, nests with one, or exists without ``overwrite``."""
    for ref in inputs:
        if out == ref or (
            out.local_path
            and ref.local_path
            and (out.local_path.is_relative_to(ref.local_path) or ref.local_path.is_relative_to(out.local_path))
        ):
            raise OutputConflictError(
                f"the output {out} is the input {ref} or nests with it; "
                "write the product to another path"
            )
    if out.local_path is None or not out.local_path.exists():
        return
    if not overwrite:
        raise OutputExistsError(
            f"the output {out} already exists; pass --overwrite (overwrite=True) to replace it, "
            "or choose another path"
        )
    if not _is_zarr_array_folder(out.local_path):
        raise OutputConflictError(
            f"the output {out} exists and is not a Zarr array, so blockdist will not replace it "
            "even with --overwrite; remove it yourself or choose another path"
        )


def _is_zarr_array_folder(path: Path) -> bool:
    import json

    try:
        meta = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("node_type") == "array"


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


class CountingStore(WrapperStore[Store]):
    """A store that counts the bytes it reads and writes (one per task, on the worker)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.bytes_read = 0
        self.bytes_written = 0

    async def get(self, key, prototype, byte_range=None):  # type: ignore[no-untyped-def]
        buffer = await self._store.get(key, prototype, byte_range)
        if buffer is not None:
            self.bytes_read += len(buffer)
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
    return zarr.open_array(store=store, mode="r+" if writable else "r"), store
