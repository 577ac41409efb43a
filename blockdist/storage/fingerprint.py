"""A digest that changes when an input changes, for a job's manifest (``--resume`` checks it)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import zarr

from .refs import ArrayRef


def stored_pieces(ref: ArrayRef) -> dict[str, tuple[int, str]]:
    """Every stored piece of an array: for local arrays each file's size and modification time,
    on object storage each object's size and ETag, by key (relative to the array)."""
    pieces: dict[str, tuple[int, str]] = {}
    if ref.local_path is not None and ref.local_path.is_dir():
        for root, dirs, files in os.walk(ref.local_path):
            dirs.sort()
            for name in sorted(files):
                stat = os.stat(os.path.join(root, name))
                pieces[os.path.relpath(os.path.join(root, name), ref.local_path)] = (stat.st_size,
                                                                                    str(stat.st_mtime_ns))
    elif ref.remote is not None:
        pieces = {key: (size, tag) for key, size, tag in ref.remote.objects()}
    return pieces


def changed_pieces(before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]) -> list[str]:
    """What changed between two :func:`stored_pieces`, one phrase per piece (metadata aside).

    >>> changed_pieces({"c/0/0": (8, "1"), "c/0/1": (8, "1")}, {"c/0/0": (4, "2")})
    ['chunk c/0/0 (8 bytes, now 4)', 'chunk c/0/1 (removed)']
    """
    out = []
    for key in sorted(set(before) | set(after)):
        if key.rsplit("/", 1)[-1] in ("zarr.json", ".zattrs", ".zarray") or before.get(key) == after.get(key):
            continue
        if key not in after:
            out.append(f"chunk {key} (removed)")
        elif key not in before:
            out.append(f"chunk {key} (added)")
        elif before[key][0] != after[key][0]:
            out.append(f"chunk {key} ({before[key][0]} bytes, now {after[key][0]})")
        else:
            out.append(f"chunk {key} (rewritten)")
    return out


def fingerprint(ref: ArrayRef, array: zarr.Array, pieces: dict[str, tuple[int, str]] | None = None) -> str:
    """A digest of an input's metadata and of its stored pieces (:func:`stored_pieces`, listed
    now unless given): a changed input changes it."""
    digest = hashlib.sha256(repr(sorted(_flatten(array.metadata.to_dict()))).encode())
    for key, (size, tag) in (stored_pieces(ref) if pieces is None else pieces).items():
        digest.update(f"{key}:{size}:{tag}".encode())
    return digest.hexdigest()[:32]


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [item for k, v in value.items() if k != "attributes" for item in _flatten(v, f"{prefix}.{k}")]
    return [(prefix, repr(value))]
