"""A digest that changes when an input changes, for a job's manifest (``--resume`` checks it)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import zarr

from .refs import ArrayRef


def fingerprint(ref: ArrayRef, array: zarr.Array) -> str:
    """A digest of an input's metadata and of its stored pieces: for local arrays the names,
    sizes and modification times of its files, on object storage every object's key, size and
    ETag. A changed input changes it."""
    digest = hashlib.sha256(repr(sorted(_flatten(array.metadata.to_dict()))).encode())
    if ref.local_path is not None and ref.local_path.is_dir():
        for root, dirs, files in os.walk(ref.local_path):
            dirs.sort()
            for name in sorted(files):
                stat = os.stat(os.path.join(root, name))
                relative = os.path.relpath(os.path.join(root, name), ref.local_path)
                digest.update(f"{relative}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    elif ref.remote is not None:
        for key, size, tag in ref.remote.objects():
            digest.update(f"{key}:{size}:{tag}".encode())
    return digest.hexdigest()[:32]


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [item for k, v in value.items() if k != "attributes" for item in _flatten(v, f"{prefix}.{k}")]
    return [(prefix, repr(value))]
