"""Raw local chunks are mapped and multiplied in place by BLAS where the model says so (at least
its map_min_edge, or a panel one chunk across); whole output chunks are written straight to their files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

import blockdist
from blockdist.errors import JobFailedError
from blockdist.planning import WORKER_BASELINE, MachineModel
from tests.conftest import assert_product, random_data, write_array

EDGE = 512  #: a chunk edge small enough for fast tests
#: Room for a few tiles of about 1000² at most: several tasks, several blocks per panel.
BUDGET = WORKER_BASELINE + 48 * 2**20
#: Map chunks of EDGE² even when a panel holds several of them (by default they are copied).
MAP_SMALL_BLOCKS = MachineModel(map_min_edge=EDGE)
#: Chunks of 2·EDGE are mapped, EDGE² ones copied when a panel holds several (the default rule).
MAP_DOUBLE_EDGE = MachineModel(map_min_edge=2 * EDGE)


def stored(x: np.ndarray, transpose: bool) -> np.ndarray:
    return np.ascontiguousarray(x.conj().T if transpose else x)


DTYPES = ["float32", "complex128"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("transpose_a", "transpose_b"), [(False, False), (True, False), (False, True), (True, True)])
def test_mapped_chunks_give_numpys_product(client, tmp_path, dtype, transpose_a, transpose_b):
    rng = np.random.default_rng([DTYPES.index(dtype), transpose_a, transpose_b])  # the same in every process
    # Ragged edges everywhere, and A's k-chunks (EDGE) do not line up with B's (EDGE + 128).
    m, k, n = 2 * EDGE + 100, 3 * EDGE - 37, 2 * EDGE - 60
    a, b = random_data(rng, (m, k), dtype), random_data(rng, (k, n), dtype)
    write_array(tmp_path / "a.zarr", stored(a, transpose_a), (EDGE, EDGE))
    write_array(tmp_path / "b.zarr", stored(b, transpose_b), (EDGE + 128, EDGE))
    result = blockdist.run(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client,
                           transpose_a=transpose_a, transpose_b=transpose_b, memory=BUDGET, verify=True,
                           model=MAP_SMALL_BLOCKS)
    assert result.plan.tiles > 1 and result.plan.a.mapped and result.plan.b.mapped
    metadata = result.stats.bytes_read - result.stats.bytes_mapped
    assert result.stats.bytes_mapped > 0 and 0 <= metadata < 2**16  # every chunk byte was mapped
    assert result.extra["verification"].ok
    assert_product(result.array[:], a, b)
    assert not list((tmp_path / "c.zarr").rglob("*.partial"))


def test_compressed_inputs_are_decoded_and_copied(client, tmp_path):
    rng = np.random.default_rng(1)
    a, b = random_data(rng, (EDGE + 3, EDGE * 2), "float64"), random_data(rng, (EDGE * 2, EDGE - 1), "float64")
    zarr.create_array(store=str(tmp_path / "a.zarr"), data=a, chunks=(EDGE, EDGE))  # zstd by default
    write_array(tmp_path / "b.zarr", b, (EDGE, EDGE))
    result = blockdist.run(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client,
                           model=MAP_SMALL_BLOCKS)
    assert 0 < result.stats.bytes_mapped < result.stats.bytes_read - 2**16  # B mapped, A decoded
    assert_product(result.array[:], a, b)


def test_an_absent_mapped_chunk_is_zero_and_never_read(client, tmp_path):
    rng = np.random.default_rng(2)
    a, b = random_data(rng, (2 * EDGE, 2 * EDGE), "float64"), random_data(rng, (2 * EDGE, EDGE), "float64")
    write_array(tmp_path / "a.zarr", a, (EDGE, EDGE))
    write_array(tmp_path / "b.zarr", b, (EDGE, EDGE))
    (tmp_path / "a.zarr" / "c" / "1" / "0").unlink()  # what zarr leaves of a chunk of zeros
    result = blockdist.run(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client,
                           model=MAP_SMALL_BLOCKS)
    assert result.plan.a.mapped and result.plan.zero_blocks
    chunk = EDGE * EDGE * 8
    # A's three stored chunks and B's two (B's second k-chunk meets no stored A block in rows 1)
    assert result.stats.bytes_mapped == result.plan.bytes_read <= 3 * chunk + 2 * 2 * chunk
    a[EDGE:, :EDGE] = 0
    assert_product(result.array[:], a, b)


def test_a_short_mapped_chunk_fails_naming_it(client, tmp_path):
    rng = np.random.default_rng(3)
    a, b = random_data(rng, (EDGE, 2 * EDGE), "float64"), random_data(rng, (2 * EDGE, EDGE), "float64")
    write_array(tmp_path / "a.zarr", a, (EDGE, EDGE))
    write_array(tmp_path / "b.zarr", b, (EDGE, EDGE))
    chunk = tmp_path / "b.zarr" / "c" / "1" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-8])
    with pytest.raises(JobFailedError, match=r"b\.zarr.*chunk c/1/0"):
        blockdist.matmul(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client,
                         model=MAP_SMALL_BLOCKS)


def test_direct_writes_replace_an_earlier_result_whole(client, tmp_path: Path):
    rng = np.random.default_rng(4)
    a, b = random_data(rng, (EDGE + 10, EDGE), "float64"), random_data(rng, (EDGE, 2 * EDGE + 5), "float64")
    write_array(tmp_path / "a.zarr", a, (EDGE, EDGE))
    write_array(tmp_path / "b.zarr", b, (EDGE, EDGE))
    for scale in (1.0, -2.0):  # the second run overwrites every chunk file of the first
        out = blockdist.matmul(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client,
                               alpha=scale, overwrite=True)
        assert_product(out[:] / scale, a, b)
    chunk_files = sorted(p.relative_to(tmp_path / "c.zarr").as_posix()
                         for p in (tmp_path / "c.zarr" / "c").rglob("*") if p.is_file())
    assert chunk_files == [f"c/{i}/{j}" for i in range(2) for j in range(3)]


def test_small_chunks_cut_in_several_blocks_are_copied(client, tmp_path):
    """Blocks of EDGE² make slow BLAS calls: such an operand is copied into panels instead."""
    rng = np.random.default_rng(5)
    a, b = random_data(rng, (3 * EDGE, 4 * EDGE), "float64"), random_data(rng, (4 * EDGE, 2 * EDGE), "float64")
    write_array(tmp_path / "a.zarr", a, (EDGE, EDGE))
    write_array(tmp_path / "b.zarr", b, (4 * EDGE, 2 * EDGE))  # one chunk across every tile: mapped
    result = blockdist.run(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client,
                           memory="1GiB", model=MAP_DOUBLE_EDGE)
    plan = result.plan
    assert plan.tile_rows > EDGE  # A is cut into several blocks per panel
    assert (plan.a.mapped, plan.b.mapped) == (False, True)
    assert 0 < result.stats.bytes_mapped < result.stats.bytes_read - 2**16
    assert_product(result.array[:], a, b)
    assert "mapped" in plan.summary()


def test_mapped_chunks_with_split_k(client, tmp_path):
    """The inner-product shape of the benchmarks: one tile, k split, both operands mapped."""
    rng = np.random.default_rng(6)
    chunk = MAP_DOUBLE_EDGE.map_min_edge
    a, b = random_data(rng, (chunk, 6 * chunk + 17), "float64"), random_data(rng, (6 * chunk + 17, chunk - 5), "float64")
    write_array(tmp_path / "a.zarr", a, (chunk, chunk))
    write_array(tmp_path / "b.zarr", b, (chunk, chunk))
    result = blockdist.run(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client,
                           verify=True, model=MAP_DOUBLE_EDGE)
    plan = result.plan
    assert plan.strategy == "split-k" and plan.k_splits >= 2 and plan.tiles == 1
    assert plan.a.mapped and plan.b.mapped
    assert result.stats.bytes_mapped >= a.nbytes + b.nbytes  # every byte, and the edge chunks' padding
    assert result.extra["verification"].ok
    assert_product(result.array[:], a, b)


@pytest.mark.parametrize("codec", ["zstd", "none"])
def test_sharded_inputs_are_read_by_their_shards(client, tmp_path, codec):
    """Shards are the unit of reading: tiles are unions of whole shards, chunks decoded inside."""
    rng = np.random.default_rng(7)
    a, b = random_data(rng, (300, 260), "float64"), random_data(rng, (260, 190), "float32")
    compressors = None if codec == "none" else "auto"
    zarr.create_array(store=str(tmp_path / "a.zarr"), data=a, chunks=(25, 20), shards=(100, 80),
                      compressors=compressors)
    zarr.create_array(store=str(tmp_path / "b.zarr"), data=b, chunks=(20, 19), shards=(80, 95),
                      compressors=compressors)
    assert zarr.open_array(str(tmp_path / "a.zarr")).shards == (100, 80)
    result = blockdist.run(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client,
                           memory=BUDGET, verify=True)
    plan = result.plan
    assert plan.a.chunks == (100, 80) and plan.b.chunks == (80, 95)
    assert not plan.a.mapped and not plan.b.mapped and (plan.tiles > 1 or plan.k_splits > 1)
    assert plan.tile_rows % 100 == 0 or plan.tile_rows == 300
    assert result.extra["verification"].ok
    assert_product(result.array[:], a, b)


def test_chunks_below_the_mapping_edge_are_copied_into_panels_by_default(tmp_path):
    """Blocks below the mapping edge make slow chunk-by-chunk BLAS calls (planning/model.py): by
    default such raw chunks are copied, and a panel one chunk across of half the edge is mapped."""
    default = MachineModel()
    small, large = default.copy_from_map_min_edge, default.map_min_edge // 2  # mappable, but below the edge
    rng = np.random.default_rng(8)
    write_array(tmp_path / "a.zarr", random_data(rng, (4 * small, 4 * small), "float64"), (small, small))
    write_array(tmp_path / "b.zarr", random_data(rng, (4 * small, large), "float64"), (4 * small, large))
    plan = blockdist.plan(tmp_path / "a.zarr", tmp_path / "b.zarr", workers=2, memory="4GiB")
    assert (plan.a.mapped, plan.b.mapped) == (False, True), plan.summary()
