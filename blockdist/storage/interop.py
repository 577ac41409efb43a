"""Operands that are not stored yet, and results opened as dask arrays.

A dask array built by ``da.from_zarr`` (and nothing else) is read straight from its Zarr
array; any other dask array is first stored, chunk by chunk by its own graph, and an
in-memory numpy array written whole, to a scratch Zarr array beside the output, which is
removed when the job ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr


def is_dask_array(value: Any) -> bool:
    return type(value).__module__.startswith("dask.array") and hasattr(value, "__dask_graph__")


def zarr_behind(x: Any) -> zarr.Array | None:
    """The Zarr array a ``da.from_zarr(z)`` reads, when ``x`` is exactly that and nothing more."""
    graph = x.__dask_graph__()
    layers = getattr(graph, "layers", {})
    if set(layers) != {x.name, f"original-{x.name}"} or not x.name.startswith("from-zarr"):
        return None
    original = dict(layers[f"original-{x.name}"])
    arrays = [v for v in original.values() if isinstance(v, zarr.Array)]
    if len(arrays) != 1 or tuple(arrays[0].shape) != tuple(x.shape):
        return None
    return arrays[0]


def stage(x: Any, folder: Path, name: str) -> zarr.Array:
    """Store a dask array to ``folder/name.zarr`` (uncompressed, its own chunks) and open it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.zarr"
    chunks = tuple(max(c) for c in x.chunks)
    target = zarr.create_array(store=str(path), shape=x.shape, chunks=chunks, dtype=x.dtype,
                               compressors=None, fill_value=0, overwrite=True,
                               config={"write_empty_chunks": True})
    x.rechunk(chunks).store(target, lock=False)
    return zarr.open_array(store=str(path), mode="r")


#: Chunk edge of an in-memory numpy operand's scratch copy: big enough to be mapped in place.
NUMPY_CHUNK = 2048


def stage_numpy(x: np.ndarray, folder: Path, name: str) -> zarr.Array:
    """Store an in-memory matrix to ``folder/name.zarr`` (uncompressed) and open it read-only."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.zarr"
    chunks = tuple(max(1, min(NUMPY_CHUNK, size)) for size in x.shape) or (1,)
    zarr.create_array(store=str(path), data=x, chunks=chunks, compressors=None, overwrite=True,
                      config={"write_empty_chunks": True})
    return zarr.open_array(store=str(path), mode="r")


SCRATCH_SUFFIX = ".blockdist-scratch"


def scratch_folder(out: Path) -> Path:
    return out.parent / f".{out.name}{SCRATCH_SUFFIX}"


def operands_folder(out: Path) -> Path:
    """Where one request's operands are staged: a folder of its own in the output's scratch
    folder, so that removing it never touches what another request staged there, nor an
    in-place update's stage and markers, which a resumed job needs."""
    return scratch_folder(out) / f"operands-{uuid.uuid4().hex[:12]}"


def remove_scratch(folder: Path | None) -> None:
    """Remove ``folder`` (staged operands, a stage), and the output's scratch folder with its
    last content."""
    if folder is not None and folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    if folder is not None and folder.parent.name.endswith(SCRATCH_SUFFIX):
        with contextlib.suppress(OSError):
            folder.parent.rmdir()  # only when empty


@dataclass(frozen=True)
class Matrix:
    """A stored matrix, as :func:`blockdist.open` returns it."""

    array: zarr.Array

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.array.dtype)

    def to_dask(self) -> Any:
        """A dask array over the stored chunks (nothing is read until computed)."""
        import dask.array as da

        return da.from_zarr(self.array)

    def to_numpy(self) -> np.ndarray:
        return self.array[...]

    def __repr__(self) -> str:
        return f"<blockdist.Matrix {self.shape[0]}×{self.shape[1]} {self.dtype} chunks {self.array.chunks}>"


def open_matrix(where: str | os.PathLike[str] | zarr.Array, *, storage_options: dict[str, Any] | None = None
                ) -> Matrix:
    from .arrays import open_input
    from .refs import locate

    return Matrix(open_input(locate(where, storage_options=storage_options)))
