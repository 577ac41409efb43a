"""Shared fixtures: a real local Dask cluster with worker processes, and array helpers."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import zarr

logging.getLogger("distributed").setLevel(logging.ERROR)


@pytest.fixture(scope="session")
def client():
    """Two single-threaded worker processes on 127.0.0.1, shared by the integration tests."""
    from distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address="127.0.0.1:0", memory_limit="3GiB",
    ) as cluster, Client(cluster, set_as_default=False) as dask_client:
        yield dask_client


def write_array(path: Path | str, data: np.ndarray, chunks: tuple[int, int]) -> zarr.Array:
    return zarr.create_array(store=str(path), data=data, chunks=chunks, compressors=None)


def random_data(rng: np.random.Generator, shape: tuple[int, int], dtype: str) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    if dtype.kind in "iu":
        return rng.integers(0 if dtype.kind == "u" else -5, 6, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def assert_product(got: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """``got`` equals numpy's ``a @ b``: same dtype, and within the rounding bound."""
    from blockdist.checks.sampling import error_bound

    expected = np.matmul(a, b)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert got.shape == expected.shape
    if expected.dtype.kind in "iu":
        np.testing.assert_array_equal(got, expected)
        return
    bound = error_bound(a, b)
    excess = np.abs(got - expected) - bound
    assert (excess <= 0).all(), f"largest error beyond the bound: {excess.max()}"


def tree_digest(path: Path | str) -> str:
    """A digest of every file under ``path`` (names and bytes), to prove nothing changed."""
    digest = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(files):
            full = Path(root, name)
            digest.update(str(full.relative_to(path)).encode())
            digest.update(full.read_bytes())
    return digest.hexdigest()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that runs tasks on the shared cluster is a ``cluster`` test."""
    for item in items:
        if "client" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)
