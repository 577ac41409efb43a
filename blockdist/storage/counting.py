"""Stores that count what they move: every task opens its arrays through :func:`open_counted`.

A :class:`CountingStore` wraps the array's store and counts the bytes read and written and
the chunk keys asked for that do not exist. The chunk-file engine (:mod:`.chunkfiles`),
which reads and writes chunk files without the store, reports its bytes through the same
counter's methods, so a task's figures are one store's figures.
"""

from __future__ import annotations

import errno

import zarr
from zarr.abc.store import Store
from zarr.storage import WrapperStore

from ..errors import StorageFullError
from .refs import ArrayRef
from .vectors import viewed

_METADATA_KEYS = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}


class CountingStore(WrapperStore[Store]):
    """A store that counts the bytes it reads and writes (one per task, on the worker)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.bytes_read = 0
        self.bytes_mapped = 0  #: of bytes_read, chunk files mapped rather than read
        self.bytes_written = 0
        self.missing: list[str] = []  #: chunk keys asked for that do not exist

    def count_read(self, nbytes: int, *, mapped: bool = False) -> None:
        self.bytes_read += nbytes
        if mapped:
            self.bytes_mapped += nbytes

    def count_written(self, nbytes: int) -> None:
        self.bytes_written += nbytes

    def note_missing(self, key: str) -> None:
        self.missing.append(key)

    async def get(self, key, prototype, byte_range=None):  # type: ignore[no-untyped-def]
        buffer = await self._store.get(key, prototype, byte_range)
        if buffer is not None:
            self.count_read(len(buffer))
        elif key.rsplit("/", 1)[-1] not in _METADATA_KEYS:
            self.note_missing(key)
        return buffer

    async def get_partial_values(self, prototype, key_ranges):  # type: ignore[no-untyped-def]
        buffers = await self._store.get_partial_values(prototype, key_ranges)
        self.count_read(sum(len(b) for b in buffers if b is not None))
        return buffers

    async def set(self, key, value):  # type: ignore[no-untyped-def]
        try:
            await self._store.set(key, value)
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise full_device(f"{getattr(self._store, 'root', self._store)}/{key}", len(value)) from None
            raise
        self.count_written(len(value))


def full_device(path: object, nbytes: int) -> StorageFullError:
    """The error of a write that found no space left, naming the file and its size."""
    return StorageFullError(f"no space left on the device writing {path} ({nbytes} bytes)")


def open_counted(ref: ArrayRef, *, writable: bool = False) -> tuple[zarr.Array, CountingStore]:
    """Open an array on a worker through a :class:`CountingStore`."""
    store = CountingStore(ref.store if writable else ref.store.with_read_only(True))
    array = viewed(zarr.open_array(store=store, mode="r+" if writable else "r"), ref.view)
    # Write every chunk, zeros included, so a missing chunk always means a damaged array.
    return (array.with_config({"write_empty_chunks": True}) if writable else array), store
