"""Split-k partial tiles staged in a scratch Zarr array beside the output, local or on S3.

One array of ``k_splits × m × n`` holds partial ``s`` of every split-k tile at ``[s, rows,
cols]``, chunked like the output, with one marker a partial (written after its data, so a
marked partial is whole). A task that finds its partial marked (a retry after a worker died,
a resumed job) skips the product. The array's attributes carry the layout it was made for;
an array left by another plan is replaced, never reused. Everything is removed when the job
completes.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import zarr
from zarr.core.sync import sync
from zarr.storage import LocalStore

from .counting import open_counted
from .refs import ArrayRef
from .s3store import S3Store

SCRATCH_SUFFIX = ".blockdist-partials"


@dataclass(frozen=True)
class StagedPartials:
    """Where a job's partial tiles and their markers live (picklable: two references)."""

    data: ArrayRef
    markers: ArrayRef
    splits: int

    def marker(self, tile_number: int, split: int) -> int:
        return tile_number * self.splits + split


def _beside(out: ArrayRef, suffix: str, name: str = "") -> ArrayRef:
    """``name`` in the scratch folder ``.OUT<suffix>`` next to ``out`` (the folder itself without
    a name), as a path or under the output's parent prefix on S3."""
    if out.local_path is not None:
        path = out.local_path.parent / f".{out.local_path.name}{suffix}" / name
        return ArrayRef(LocalStore(path), str(path), path)
    remote = out.remote
    if remote is None:
        raise ValueError(f"{out} is neither a local path nor on S3: nothing can be put beside it")
    parent, _, base = remote.config.prefix.rpartition("/")
    prefix = "/".join(p for p in (parent, f".{base}{suffix}", name) if p)
    store = S3Store(replace(remote.config, prefix=prefix))
    return ArrayRef(store, store.config.url)


def _remove(ref: ArrayRef) -> None:
    if ref.local_path is not None:
        shutil.rmtree(ref.local_path, ignore_errors=True)
    elif ref.remote is not None:
        sync(ref.remote.delete_dir(""))


def scratch_beside(out: ArrayRef, suffix: str) -> tuple[str, Callable[[], None]]:
    """A scratch folder beside ``out`` (``.OUT<suffix>``, a path or an ``s3://`` URL) and how to
    remove it with everything in it."""
    folder = _beside(out, suffix)
    return folder.name, lambda: _remove(folder)


def _existing(ref: ArrayRef) -> zarr.Array | None:
    try:
        return zarr.open_array(store=ref.store, mode="r")
    except (FileNotFoundError, KeyError, ValueError, zarr.errors.NodeTypeValidationError):
        return None
    except Exception as error:  # a missing array on S3 surfaces as the backend's error
        if "not found" in str(error).lower() or "NoSuchKey" in type(error).__name__:
            return None
        raise


def _create(ref: ArrayRef, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: Any, layout: dict[str, Any],
            keep: bool) -> bool:
    """Create the array unless one made for ``layout`` is there and ``keep``; True if kept."""
    found = _existing(ref) if keep else None
    if found is not None and found.attrs.get("blockdist-layout") == layout and tuple(found.shape) == shape:
        return True
    zarr.create_array(store=ref.store, shape=shape, chunks=chunks, dtype=dtype, compressors=None, fill_value=0,
                      overwrite=True, attributes={"blockdist-layout": layout})
    return False


def stage_partials(out: ArrayRef, *, splits: int, shape: tuple[int, int], chunks: tuple[int, int], dtype: str,
                   tiles: int, layout: dict[str, Any], keep: bool) -> StagedPartials:
    """The scratch arrays of a job's partials: kept from an interrupted job of the same layout
    when ``keep`` (resuming), else made anew (and empty)."""
    data = _beside(out, SCRATCH_SUFFIX, "partials.zarr")
    markers = _beside(out, SCRATCH_SUFFIX, "partial-markers.zarr")
    kept = _create(data, (splits, *shape), (1, *chunks), dtype, layout, keep)
    _create(markers, (tiles * splits,), (1,), "int8", layout, keep and kept)
    return StagedPartials(data, markers, splits)


def remove_partials(staged: StagedPartials) -> None:
    """Remove the scratch arrays (and the scratch folder, when nothing else is in it)."""
    for ref in (staged.data, staged.markers):
        _remove(ref)
        if ref.local_path is not None:
            with contextlib.suppress(OSError):
                ref.local_path.parent.rmdir()


def partial_done(staged: StagedPartials, number: int) -> bool:
    markers, _ = open_counted(staged.markers)
    return bool(markers[number])


def write_partial(staged: StagedPartials, split: int, rows: tuple[int, int], cols: tuple[int, int],
                  tile: np.ndarray, number: int) -> int:
    """Stage one partial tile, then mark it; returns the bytes written."""
    data, store = open_counted(staged.data, writable=True)
    data[split, rows[0] : rows[1], cols[0] : cols[1]] = tile
    markers, _ = open_counted(staged.markers, writable=True)
    markers[number] = 1
    return store.bytes_written


def add_partial(staged: StagedPartials, split: int, rows: tuple[int, int], cols: tuple[int, int],
                into: np.ndarray | None) -> tuple[np.ndarray, int]:
    """``into`` plus partial ``split`` of ``[rows, cols]`` (the partial itself when ``into`` is None)."""
    data, store = open_counted(staged.data)
    block = np.asarray(data[split, rows[0] : rows[1], cols[0] : cols[1]])
    if into is None:
        return block, store.bytes_read
    np.add(into, block, out=into)
    return into, store.bytes_read
