"""Dask arrays in, dask arrays out."""

import dask.array as da
import numpy as np

import blockdist
from blockdist.storage.interop import zarr_behind
from tests.conftest import assert_product, random_data, write_array


def test_a_dask_array_over_zarr_is_read_in_place(client, tmp_path):
    rng = np.random.default_rng(1)
    a, b = random_data(rng, (120, 90), "float64"), random_data(rng, (90, 70), "float64")
    za = write_array(tmp_path / "a.zarr", a, (40, 30))
    write_array(tmp_path / "b.zarr", b, (30, 35))
    x = da.from_zarr(za)
    assert zarr_behind(x) is not None and zarr_behind(x + 1) is None and zarr_behind(x[:10]) is None
    out = blockdist.matmul(x, tmp_path / "b.zarr", tmp_path / "c.zarr", client=client)
    assert_product(out[:], a, b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zarr", "b.zarr", "c.zarr"]  # nothing staged


def test_a_computed_dask_array_is_staged_and_cleaned_up(client, tmp_path):
    rng = np.random.default_rng(2)
    a, b = random_data(rng, (100, 80), "float32"), random_data(rng, (80, 60), "float64")
    x = da.from_array(a, chunks=(33, 40)) * 2
    y = da.from_array(b, chunks=(25, 60)).T.T
    out = blockdist.matmul(x, y, tmp_path / "c.zarr", client=client)
    assert_product(out[:], a * 2, b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.zarr"]


def test_the_result_opens_as_a_dask_array(client, tmp_path):
    rng = np.random.default_rng(3)
    a, b = random_data(rng, (64, 48), "complex128"), random_data(rng, (48, 32), "complex128")
    write_array(tmp_path / "a.zarr", a, (16, 16))
    write_array(tmp_path / "b.zarr", b, (16, 16))
    blockdist.matmul(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client)
    matrix = blockdist.open(tmp_path / "c.zarr")
    assert "64×32 complex128" in repr(matrix)
    lazy = matrix.to_dask()
    assert isinstance(lazy, da.Array) and lazy.shape == (64, 32)
    assert_product(lazy.compute(), a, b)
    assert_product(matrix.to_numpy(), a, b)
