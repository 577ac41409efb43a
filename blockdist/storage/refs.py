"""Where an array lives: :class:`ArrayRef`, made from a path, URL or zarr array by :func:`locate`.

Arrays travel to workers as an :class:`ArrayRef` (a picklable store plus a name), never as
data. Local paths use ``LocalStore``; ``s3://bucket/path.zarr`` URLs use
:class:`~.s3store.S3Store`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import zarr
from zarr.abc.store import Store
from zarr.storage import LocalStore, MemoryStore

from ..errors import ArrayNotFoundError, InputError, OutputConflictError
from .s3config import shown
from .s3store import S3Store, adopt, open_url


@dataclass(frozen=True)
class ArrayRef:
    """Where an array lives: a picklable zarr store, and a name for messages."""

    store: Store
    name: str  #: a path or URL to show people (never carries a secret)
    local_path: Path | None = field(default=None, compare=False)  #: the folder, for local arrays
    #: a 1-D or 0-d array read and written as a matrix: "row", "column" or "scalar" (:mod:`.vectors`)
    view: str = field(default="", compare=False)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:  # the store's own repr may hold an endpoint's secrets: never show it
        return f"ArrayRef({self.name!r})"

    @property
    def remote(self) -> S3Store | None:
        """The object-storage store, for arrays on S3."""
        return self.store if isinstance(self.store, S3Store) else None

    def location(self) -> tuple[Any, tuple[str, ...]] | None:
        """Where the data is: a place (this machine, or an endpoint and bucket) and a path in it."""
        if self.local_path is not None:
            return "file", self.local_path.parts
        if self.remote is not None:
            endpoint, bucket, parts = self.remote.config.location
            return (endpoint, bucket), parts
        return None

    def nests_with(self, other: ArrayRef) -> bool:
        """Whether the two are the same data, or one lies inside the other."""
        first, second = self.location(), other.location()
        if first is None or second is None or first[0] != second[0]:
            return False
        shorter = min(len(first[1]), len(second[1]))
        return first[1][:shorter] == second[1][:shorter]


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


def _from_array(array: zarr.Array) -> ArrayRef:
    """Where a ``zarr.Array`` lives; one inside a group (a path below its store's root) becomes
    an array of its own at that path, as if its path had been given."""
    store_path = array.store_path
    store, inside = store_path.store, store_path.path.strip("/")
    if isinstance(store, MemoryStore):
        raise OutputConflictError(
            "an in-memory zarr array cannot be read by worker processes; save it to a local path or object "
            "storage first"
        )
    remote = store if isinstance(store, S3Store) else adopt(store)
    if remote is not None:
        if inside:
            prefix = "/".join(p for p in (remote.config.prefix, inside) if p)
            remote = S3Store(replace(remote.config, prefix=prefix)).with_read_only(remote.read_only)
        return ArrayRef(remote, remote.config.url)
    root = getattr(store, "root", None)
    if inside and (root is None or not isinstance(store, LocalStore)):
        raise OutputConflictError(
            f"{store_path} is an array inside a group on a store blockdist cannot locate; pass its path instead")
    path = Path(root).resolve() if root is not None else None
    if inside:
        assert path is not None
        path = path / inside
        return ArrayRef(LocalStore(path, read_only=store.read_only), str(path), path)
    return ArrayRef(store, str(path) if path else str(store), path)


def locate(where: str | os.PathLike[str] | zarr.Array | ArrayRef, *, storage_options: Mapping[str, Any] | None = None,
           role: str = "array") -> ArrayRef:
    """Turn a path, URL or ``zarr.Array`` into an :class:`ArrayRef`.

    ``storage_options`` configure the store of a URL (credentials, endpoint); ``role``
    ("a", "b", "out") picks that operand's options when they are given per operand.
    """
    if isinstance(where, ArrayRef):
        return where
    if isinstance(where, zarr.Array):
        return _from_array(where)
    text = os.fspath(where)
    if text.startswith("file://"):
        text = text[len("file://") :]
    if "://" in text:
        scheme = text.split("://", 1)[0]
        if scheme.lower() == "s3":
            remote = open_url(text, options_for(storage_options, role))
            return ArrayRef(remote, remote.config.url)
        raise ArrayNotFoundError(
            f"{shown(text)}: the {scheme}:// scheme is not supported; use a local path or an s3:// URL"
        )
    path = Path(text).expanduser().resolve()
    return ArrayRef(LocalStore(path), str(path), path)
