"""Every array zarr writes is an input: the listing finds exactly the chunks zarr stored, and
what blockdist's own readers read (or zarr, where they cannot) is what the data is."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blockdist import storage
from blockdist.errors import InputError
from blockdist.storage.arrays import like_compressors
from blockdist.storage.fingerprint import stored_pieces
from blockdist.storage.listing import stored_chunks
from tests.conftest import random_data
from tests.input_formats import absences, expected_presence, formats, with_absent


@settings(max_examples=int(os.environ.get("BLOCKDIST_INPUT_EXAMPLES", 60)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(form=formats(), shape=st.tuples(st.integers(1, 40), st.integers(1, 40)),
       chunk=st.tuples(st.integers(1, 16), st.integers(1, 16)), dtype=st.sampled_from(["float64", "float32", "int32"]),
       fill=st.sampled_from([0, 0, 2]), data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_the_listing_and_the_readers_see_what_zarr_stored(form, shape, chunk, dtype, fill, data, seed):
    chunks = (min(chunk[0], shape[0]), min(chunk[1], shape[1]))
    grid = (-(-shape[0] // chunks[0]), -(-shape[1] // chunks[1]))
    _, absent = data.draw(absences(grid))
    values = with_absent(random_data(np.random.default_rng(seed), shape, dtype), chunks, absent, fill)
    with tempfile.TemporaryDirectory() as folder:
        where = form.write(Path(folder) / "x.zarr", values, chunks, fill)
        ref = storage.locate(where)
        array = storage.open_input(ref)
        listed = stored_chunks(ref, array, set(stored_pieces(ref)))
        unit = tuple(array.shards or array.chunks)
        units, count = expected_presence(values, chunks, unit, fill)
        assert (listed.count, listed.total) == (count, math.prod(grid))
        assert (listed.present.array() if listed.present is not None else np.ones_like(units)).tolist() == units.tolist()
        assert listed.fill_is_zero == (fill == 0) and listed.zero_blocks == (fill == 0 and not units.all())
        # A panel's read, as a task does it: blockdist's readers where they can, zarr where not.
        counted, store = storage.open_counted(ref)
        direct = (storage.ChunkFiles.open(ref, counted, store, np.dtype(dtype), True)
                  or storage.EncodedChunks.open(ref, counted, store, np.dtype(dtype), True))
        assert form.direct or direct is None, "F order, filters and big-endian bytes go through zarr"
        r0, c0 = data.draw(st.integers(0, shape[0] - 1)), data.draw(st.integers(0, shape[1] - 1))
        r1, c1 = data.draw(st.integers(r0 + 1, shape[0])), data.draw(st.integers(c0 + 1, shape[1]))
        out = np.full((r1 - r0, c1 - c0), 7, dtype=dtype)
        storage.read_into(counted, (slice(r0, r1), slice(c0, c1)), out, direct)
        np.testing.assert_array_equal(out, values[r0:r1, c0:c1])


@pytest.mark.parametrize(("compressor", "codec", "detail"), [
    (numcodecs.Zstd(level=3), "ZstdCodec", {"level": 3}),
    (numcodecs.Blosc(cname="zstd", shuffle=numcodecs.Blosc.BITSHUFFLE), "BloscCodec", {"shuffle": "bitshuffle"}),
    (numcodecs.Blosc(shuffle=numcodecs.Blosc.AUTOSHUFFLE), "BloscCodec", {"shuffle": "shuffle"}),
    (numcodecs.GZip(level=4), "GzipCodec", {"level": 4}),
    (None, None, {}),
])
def test_a_v2_compressor_becomes_its_v3_codec(compressor, codec, detail):
    like = zarr.create_array(store={}, shape=(4, 4), chunks=(2, 2), dtype="f8", zarr_format=2, compressors=compressor)
    found = like_compressors(like)
    if codec is None:
        assert found is None
        return
    (made,) = found
    assert type(made).__name__ == codec
    for name, value in detail.items():
        assert getattr(getattr(made, name), "value", getattr(made, name)) == value
    # and zarr takes it for a v3 array, which reads back what was written
    out = zarr.create_array(store={}, shape=(4, 4), chunks=(2, 2), dtype="f8", compressors=found)
    out[:] = np.arange(16.0).reshape(4, 4)
    np.testing.assert_array_equal(out[:], np.arange(16.0).reshape(4, 4))


def test_a_v2_compressor_without_a_v3_codec_is_refused_naming_it_and_the_choices():
    like = zarr.create_array(store={}, shape=(4, 4), chunks=(2, 2), dtype="f8", zarr_format=2,
                             compressors=numcodecs.LZ4())
    with pytest.raises(InputError, match=r"A's compressor LZ4\(acceleration=1\) \(Zarr v2\) has no Zarr v3 codec.*"
                                         r"--out-codec .*none, zstd, blosc-lz4"):
        like_compressors(like)
