"""A top-k result: a Zarr v3 group holding the arrays ``indices`` (int64) and ``scores``.

The group is checked (:func:`check_group_location`) and created with both arrays' full
metadata (:func:`create_topk`) before any task runs; tasks write rows of the arrays as plain
arrays (:func:`child` gives each its :class:`~.refs.ArrayRef`). The job's manifest lives in the
attributes of the group and of both arrays (:func:`save_group_attributes`), so that opening
either array alone tells an unfinished job from a complete one.
"""

from __future__ import annotations

import errno
import json
import os
import uuid
from dataclasses import replace
from typing import Any

import zarr
from zarr.storage import LocalStore

from ..errors import OutputConflictError, OutputExistsError
from .arrays import _node_type
from .counting import full_device
from .refs import ArrayRef
from .s3store import S3Store, look

#: The arrays of a top-k group.
NAMES = ("indices", "scores")


def child(out: ArrayRef, name: str) -> ArrayRef:
    """The array ``name`` inside the group ``out``, as an array of its own."""
    if out.local_path is not None:
        path = out.local_path / name
        return ArrayRef(LocalStore(path), str(path), path)
    if out.remote is not None:
        prefix = "/".join(p for p in (out.remote.config.prefix, name) if p)
        store = S3Store(replace(out.remote.config, prefix=prefix))
        return ArrayRef(store, store.config.url)
    raise OutputConflictError(f"{out}: a top-k output must be a local path or an s3:// URL")


def _node(ref: ArrayRef) -> tuple[bool, str | None]:
    """(anything is stored there, its Zarr node type: "array", "group" or None)."""
    if ref.remote is not None:
        found, meta = look(ref.remote)
        return found != "missing", _node_type(meta) if found == "zarr" else None
    if ref.local_path is None or not ref.local_path.exists():
        return False, None
    try:
        return True, _node_type((ref.local_path / "zarr.json").read_bytes())
    except OSError:
        return True, None


def check_group_location(out: ArrayRef, inputs: list[ArrayRef], *, overwrite: bool) -> None:
    """Refuse an output that is an input, nests with one, or exists without ``overwrite`` (and,
    with it, anything but a Zarr group or array)."""
    for ref in inputs:
        if out == ref or out.nests_with(ref):
            raise OutputConflictError(
                f"the output {out} is the input {ref} or nests with it; write the top k to another path")
    present, node = _node(out)
    if not present:
        return
    if not overwrite:
        raise OutputExistsError(f"the output {out} already exists; pass --overwrite (overwrite=True) to "
                                f"replace it, or choose another path")
    if node not in ("array", "group"):
        raise OutputConflictError(
            f"the output {out} exists and is not a Zarr group or array, so blockdist will not replace it "
            f"even with --overwrite; remove it yourself or choose another path")


def create_topk(out: ArrayRef, *, rows: int, k: int, chunk_rows: int, dtype: str, compressors: Any,
                overwrite: bool, attributes: dict[str, Any]) -> None:
    """The group with its attributes, then ``indices`` (filled with -1 until written) and
    ``scores``, each m×k in chunks of ``chunk_rows`` rows."""
    try:
        group = zarr.create_group(store=out.store, overwrite=overwrite, attributes=attributes, zarr_format=3)
        for name, kind, fill in (("indices", "int64", -1), ("scores", dtype, 0)):
            group.create_array(name, shape=(rows, k), chunks=(chunk_rows, k), dtype=kind, fill_value=fill,
                               compressors=compressors, attributes=attributes)
    except OSError as error:  # no task has run: this is still the user's input
        raise OutputConflictError(f"cannot create the output {out}: {error.strerror or error}") from None


def _replace_local(path: os.PathLike[str], attributes: dict[str, Any]) -> None:
    """Merge ``attributes`` into a local ``zarr.json``, written beside it and renamed."""
    target = os.fspath(path)
    with open(target, "rb") as file:
        document = json.loads(file.read())
    document["attributes"] = {**document.get("attributes", {}), **attributes}
    partial = f"{target}.{uuid.uuid4().hex}.partial"
    text = json.dumps(document, indent=2)
    try:
        with open(partial, "w") as file:
            file.write(text)
        os.replace(partial, target)
    except OSError as error:
        if os.path.exists(partial):
            os.unlink(partial)
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise full_device(target, len(text)) from None
        raise


def save_group_attributes(out: ArrayRef, attributes: dict[str, Any]) -> None:
    """Merge ``attributes`` into the arrays' and then the group's (each replaced whole)."""
    if out.local_path is not None:
        for folder in (*(out.local_path / name for name in NAMES), out.local_path):  # the group last
            _replace_local(folder / "zarr.json", attributes)
        return
    group = zarr.open_group(store=out.store, mode="r+")
    for name in NAMES:
        group[name].update_attributes(attributes)
    group.update_attributes(attributes)


def group_attributes(out: ArrayRef) -> dict[str, Any] | None:
    """The group's attributes, or ``None`` where there is no group."""
    try:
        return zarr.open_group(store=out.store.with_read_only(True), mode="r").attrs.asdict()
    except Exception:
        return None


def open_topk(out: ArrayRef) -> tuple[zarr.Array, zarr.Array]:
    """``indices`` and ``scores``, opened read-only."""
    group = zarr.open_group(store=out.store.with_read_only(True), mode="r")
    return group["indices"], group["scores"]  # type: ignore[return-value]
