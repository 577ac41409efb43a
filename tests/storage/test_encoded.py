"""Compressed and sharded chunk files decoded without zarr's pipeline read exactly what zarr reads."""

from __future__ import annotations

import os

import numpy as np
import pytest
import zarr
from hypothesis import given
from hypothesis import strategies as st
from zarr.codecs import (
    BloscCodec,
    BytesCodec,
    Crc32cCodec,
    GzipCodec,
    ShardingCodec,
    TransposeCodec,
    ZstdCodec,
)

from blockdist import storage
from blockdist.storage.encoded import EncodedChunks

from ..conftest import random_data

COMPRESSORS = {
    "zstd": ZstdCodec(),
    "zstd-checksum": ZstdCodec(level=3, checksum=True),
    "blosc-lz4": BloscCodec(cname="lz4", shuffle="shuffle"),
    "blosc-zstd-bitshuffle": BloscCodec(cname="zstd", shuffle="bitshuffle"),
    "gzip": GzipCodec(),
    "none": None,
}


def make(path, values, *, compressor, shards=None, chunks=(32, 24), **extra):  # type: ignore[no-untyped-def]
    array = zarr.create_array(store=str(path), shape=values.shape, dtype=values.dtype, chunks=chunks, shards=shards,
                              compressors=compressor, fill_value=0, **extra)
    array[:] = values
    return array


def reader(path, dtype=None, allow_missing=False):  # type: ignore[no-untyped-def]
    ref = storage.locate(path)
    array, store = storage.open_counted(ref)
    return EncodedChunks.open(ref, array, store, np.dtype(dtype or array.dtype), allow_missing), array, store


def read(direct: EncodedChunks, rows: tuple[int, int], cols: tuple[int, int], dtype) -> np.ndarray:  # type: ignore[no-untyped-def]
    out = np.full((rows[1] - rows[0], cols[1] - cols[0]), np.nan, dtype=dtype)
    direct.read((slice(*rows), slice(*cols)), out)
    return out


@pytest.mark.parametrize("compressor", list(COMPRESSORS))
@pytest.mark.parametrize("sharded", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "float32", "complex64"])
def test_every_selection_reads_what_zarr_reads(tmp_path, compressor, sharded, dtype):
    values = random_data(np.random.default_rng(3), (150, 130), dtype)
    make(tmp_path / "x.zarr", values, compressor=COMPRESSORS[compressor], shards=(64, 48) if sharded else None,
         chunks=(32, 24) if sharded else (40, 36))
    direct, array, store = reader(tmp_path / "x.zarr")
    expected_codec = {"none": "none", "gzip": "gzip"}.get(compressor, compressor.split("-")[0])
    assert storage.layout_of(array).codec == expected_codec  # what the planner prices the reads by
    if compressor == "none" and not sharded:
        assert direct is None  # raw chunk files go to ChunkFiles
        return
    assert direct is not None
    for rows, cols in [((0, 150), (0, 130)), ((7, 99), (13, 129)), ((64, 128), (48, 96)), ((149, 150), (0, 1))]:
        np.testing.assert_array_equal(read(direct, rows, cols, values.dtype), values[slice(*rows), slice(*cols)])
    assert store.bytes_read > 0


@given(r0=st.integers(0, 119), c0=st.integers(0, 99), h=st.integers(1, 120), w=st.integers(1, 100))
def test_random_selections_of_a_shard_with_its_index_first(tmp_path_factory, r0, c0, h, w):
    path = tmp_path_factory.getbasetemp() / "first.zarr"
    values = np.arange(120 * 100, dtype="float64").reshape(120, 100)
    if not path.exists():
        codec = ShardingCodec(chunk_shape=(10, 20), codecs=[BytesCodec(), ZstdCodec()],
                              index_codecs=[BytesCodec(), Crc32cCodec()], index_location="start")
        array = zarr.create_array(store=str(path), shape=values.shape, dtype="float64", chunks=(40, 40),
                                  serializer=codec, compressors=None, fill_value=0)  # type: ignore[arg-type]
        array[:] = values
    direct, _, _ = reader(path)
    assert direct is not None and not direct.layout.index_at_end
    rows, cols = (r0, min(120, r0 + h)), (c0, min(100, c0 + w))
    np.testing.assert_array_equal(read(direct, rows, cols, "float64"), values[slice(*rows), slice(*cols)])


def test_empty_inner_chunks_read_as_the_fill_value_and_a_missing_file_is_noted(tmp_path):
    values = np.zeros((128, 96))
    values[64:, 48:] = 1.5  # two shards hold data; zarr stores nothing for chunks of zeros
    values[:32, :24] = 2.0  # one inner chunk of shard (0, 0); its other three are empty
    make(tmp_path / "x.zarr", values, compressor=ZstdCodec(), shards=(64, 48), chunks=(32, 24))
    direct, _, store = reader(tmp_path / "x.zarr")
    assert direct is not None
    np.testing.assert_array_equal(read(direct, (0, 64), (0, 48), "float64"), values[:64, :48])
    assert store.missing == []
    read(direct, (0, 128), (0, 96), "float64")
    assert sorted(store.missing) == ["c/0/1", "c/1/0"]  # shards of nothing but zeros were never written
    direct, _, _ = reader(tmp_path / "x.zarr", allow_missing=True)
    np.testing.assert_array_equal(read(direct, (0, 128), (0, 96), "float64"), values)


def test_damage_is_an_error_naming_the_chunk(tmp_path):
    values = random_data(np.random.default_rng(5), (64, 48), "float64")
    make(tmp_path / "x.zarr", values, compressor=ZstdCodec(), shards=(64, 48), chunks=(32, 24))
    shard = tmp_path / "x.zarr" / "c" / "0" / "0"
    data = bytearray(shard.read_bytes())
    data[-2] ^= 0xFF  # the index's checksum
    shard.write_bytes(bytes(data))
    direct, _, _ = reader(tmp_path / "x.zarr")
    with pytest.raises(OSError, match="c/0/0.*checksum"):
        read(direct, (0, 64), (0, 48), "float64")

    make(tmp_path / "y.zarr", values, compressor=ZstdCodec(), chunks=(32, 24))
    chunk = tmp_path / "y.zarr" / "c" / "1" / "1"
    chunk.write_bytes(chunk.read_bytes()[: os.path.getsize(chunk) // 2])
    direct, _, _ = reader(tmp_path / "y.zarr")
    with pytest.raises(OSError, match="c/1/1 cannot be decoded"):
        read(direct, (0, 64), (0, 48), "float64")


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("case", ["transpose codec", "big-endian bytes", "another dtype", "unknown compressor"])
def test_what_it_cannot_read_is_left_to_zarr(tmp_path, case):
    from zarr.codecs.numcodecs import LZ4

    values = random_data(np.random.default_rng(6), (40, 30), "float64")
    dtype = None
    if case == "transpose codec":
        make(tmp_path / "x.zarr", values, compressor=ZstdCodec(), filters=[TransposeCodec(order=(1, 0))])
    elif case == "big-endian bytes":
        make(tmp_path / "x.zarr", values, compressor=ZstdCodec(), serializer=BytesCodec(endian="big"))
    elif case == "another dtype":
        make(tmp_path / "x.zarr", values, compressor=ZstdCodec())
        dtype = "float32"
    else:
        make(tmp_path / "x.zarr", values, compressor=LZ4())
    direct, _, _ = reader(tmp_path / "x.zarr", dtype=dtype)
    assert direct is None


def test_tune_measures_the_decode_rate_of_each_codec(tmp_path):
    from blockdist.runtime.tunefile import model_from_dict
    from blockdist.storage.throughput import measure_decode

    rates = measure_decode(512, 128, folder=str(tmp_path))
    assert set(rates) == {"zstd_read_bytes_per_second", "blosc_read_bytes_per_second"}
    model = model_from_dict(rates)  # the tune file's fields reach the planner's model
    assert model.zstd_read_bytes_per_second == rates["zstd_read_bytes_per_second"] > 0
    assert model.blosc_read_bytes_per_second == rates["blosc_read_bytes_per_second"] > 0
