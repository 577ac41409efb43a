"""blockdist.matmul on a real LocalCluster with worker processes, against numpy."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import blockdist
from blockdist.planning import MachineModel
from tests.conftest import assert_product, random_data, tree_digest, write_array

DTYPES = ["float32", "float64", "complex64", "complex128"]


def multiply(client, a, b, a_chunks, b_chunks, folder: Path, **options):
    write_array(folder / "a.zarr", a, a_chunks)
    write_array(folder / "b.zarr", b, b_chunks)
    result = blockdist.run(folder / "a.zarr", folder / "b.zarr", folder / "c.zarr", client=client, **options)
    assert isinstance(result.array, zarr.Array)
    return result


sizes = st.one_of(st.integers(1, 5), st.sampled_from([7, 13, 31, 97, 101]), st.integers(6, 160))


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=sizes, k=sizes, n=sizes,
    chunk_fractions=st.tuples(*[st.floats(0.05, 1.0)] * 4),
    dtypes=st.tuples(st.sampled_from(DTYPES), st.sampled_from(DTYPES)),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_numpy_on_any_shape_chunking_and_dtype(client, m, k, n, chunk_fractions, dtypes, seed):
    rng = np.random.default_rng(seed)
    a, b = random_data(rng, (m, k), dtypes[0]), random_data(rng, (k, n), dtypes[1])
    fm, fk, fkb, fn = chunk_fractions
    a_chunks = (max(1, round(m * fm)), max(1, round(k * fk)))
    b_chunks = (max(1, round(k * fkb)), max(1, round(n * fn)))
    with tempfile.TemporaryDirectory() as folder:
        result = multiply(client, a, b, a_chunks, b_chunks, Path(folder))
        assert_product(result.array[:], a, b)


@pytest.mark.parametrize(
    ("m", "k", "n", "a_chunks", "b_chunks"),
    [
        (1, 1, 1, (1, 1), (1, 1)),
        (1, 500, 1, (1, 64), (100, 1)),  # 1×k · k×1, k chunks that do not line up
        (300, 1, 200, (64, 1), (1, 64)),  # k = 1: an outer product
        (101, 97, 89, (13, 7), (11, 17)),  # primes and ragged edge chunks everywhere
        (64, 1000, 48, (64, 128), (250, 48)),  # one tile, k chunks that do not line up
    ],
)
def test_edge_shapes(client, tmp_path, m, k, n, a_chunks, b_chunks):
    rng = np.random.default_rng(m + k + n)
    a, b = random_data(rng, (m, k), "float64"), random_data(rng, (k, n), "float64")
    result = multiply(client, a, b, a_chunks, b_chunks, tmp_path)
    assert_product(result.array[:], a, b)


def test_split_k_when_tiles_are_fewer_than_threads(client, tmp_path):
    # A cost model where reading is slow and tasks are free makes splitting k worth it.
    model = MachineModel(read_bytes_per_second=1e5, task_overhead_seconds=0)
    rng = np.random.default_rng(7)
    a, b = random_data(rng, (40, 6000), "float64"), random_data(rng, (6000, 30), "float64")
    result = multiply(client, a, b, (40, 100), (70, 30), tmp_path, model=model, verify=True)
    assert result.plan.strategy == "split-k" and result.plan.k_splits > 1
    assert result.extra["verification"].ok and len(result.extra["verification"].tiles) == 1
    assert_product(result.array[:], a, b)
    assert result.stats.bytes_read >= (a.nbytes + b.nbytes)


@pytest.mark.parametrize(("splits", "fan_in"), [(5, 2), (9, 3), (16, 4)])
def test_a_reduction_tree_of_several_levels(client, tmp_path, splits, fan_in):
    from blockdist.runtime.graph import Graph, operand_spec
    from blockdist.storage import create_output, locate

    rng = np.random.default_rng(splits)
    a, b = random_data(rng, (33, 4000), "float64"), random_data(rng, (4000, 21), "float64")
    write_array(tmp_path / "a.zarr", a, (33, 100))
    write_array(tmp_path / "b.zarr", b, (64, 21))
    plan = dataclasses.replace(
        blockdist.plan(tmp_path / "a.zarr", tmp_path / "b.zarr", memory="1GB"),
        strategy="split-k", k_splits=splits, reduce_fan_in=fan_in,
    )
    out = locate(tmp_path / "c.zarr")
    create_output(out, shape=plan.shape, chunks=plan.out_chunks, dtype=plan.dtype, overwrite=False,
                  attributes={})
    graph = Graph(plan, operand_spec(locate(tmp_path / "a.zarr"), plan, True),
                  operand_spec(locate(tmp_path / "b.zarr"), plan, False), out)
    futures = graph.submit(client, f"tree{splits}")
    assert sum(stats.tasks for stats in client.gather(list(futures))) == splits
    assert_product(zarr.open_array(str(tmp_path / "c.zarr"))[:], a, b)


@pytest.mark.parametrize(("a_dtype", "b_dtype"), [("float32", "float64"), ("float32", "complex64"),
                                                  ("int32", "float32"), ("int64", "int64"),
                                                  ("uint8", "int16"), ("float64", "complex128")])
def test_numpys_promotion_for_mixed_dtypes(client, tmp_path, a_dtype, b_dtype):
    rng = np.random.default_rng(3)
    a, b = random_data(rng, (70, 90), a_dtype), random_data(rng, (90, 50), b_dtype)
    result = multiply(client, a, b, (32, 40), (30, 16), tmp_path)
    assert result.array.dtype == np.result_type(a, b)
    assert_product(result.array[:], a, b)


def test_inputs_are_never_modified_and_the_output_is_marked_complete(client, tmp_path):
    rng = np.random.default_rng(5)
    a, b = random_data(rng, (200, 150), "float64"), random_data(rng, (150, 120), "float32")
    write_array(tmp_path / "a.zarr", a, (64, 50))
    write_array(tmp_path / "b.zarr", b, (50, 64))
    before = tree_digest(tmp_path / "a.zarr"), tree_digest(tmp_path / "b.zarr")
    out = blockdist.matmul(str(tmp_path / "a.zarr"), str(tmp_path / "b.zarr"), str(tmp_path / "c.zarr"),
                           client=client)
    assert (tree_digest(tmp_path / "a.zarr"), tree_digest(tmp_path / "b.zarr")) == before
    assert out.attrs["blockdist"]["status"] == "complete"
    assert_product(out[:], a, b)


def test_zarr_arrays_and_a_scheduler_address_are_accepted(client, tmp_path):
    rng = np.random.default_rng(11)
    a, b = random_data(rng, (50, 60), "float64"), random_data(rng, (60, 40), "float64")
    za, zb = write_array(tmp_path / "a.zarr", a, (20, 20)), write_array(tmp_path / "b.zarr", b, (20, 20))
    out = blockdist.matmul(za, zb, tmp_path / "c.zarr", client=client.scheduler.address)
    assert_product(out[:], a, b)


def test_overwrite_replaces_an_earlier_result(client, tmp_path):
    rng = np.random.default_rng(13)
    a, b = random_data(rng, (30, 20), "float64"), random_data(rng, (20, 10), "float64")
    multiply(client, a, b, (8, 8), (8, 8), tmp_path)
    b2 = random_data(rng, (20, 10), "float64")
    write_array(tmp_path / "b2.zarr", b2, (8, 8))
    out = blockdist.matmul(tmp_path / "a.zarr", tmp_path / "b2.zarr", tmp_path / "c.zarr", client=client,
                           overwrite=True)
    assert_product(out[:], a, b2)


def test_keys_carry_the_blockdist_prefix(client, tmp_path):
    """This job's tasks, found through its own span, group as blockdist-gemm on the dashboard."""
    rng = np.random.default_rng(17)
    a, b = random_data(rng, (64, 64), "float64"), random_data(rng, (64, 64), "float64")
    write_array(tmp_path / "a.zarr", a, (16, 16))
    write_array(tmp_path / "b.zarr", b, (16, 16))
    # An earlier job still referenced must not take the later job's tasks into its own span.
    earlier = blockdist.submit(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c0.zarr", client=client)
    earlier.result()
    result = blockdist.run(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client)

    def groups_of(dask_scheduler, name):
        spans = [s for s in dask_scheduler.extensions["spans"].spans.values() if s.name[-1] == name]
        return sorted({group.name for span in spans for group in span.groups})

    groups = client.run_on_scheduler(groups_of, name=f"blockdist-{result.token}")
    assert groups and set(groups) <= {"blockdist-gemm", "blockdist-partial", "blockdist-reduce"}, groups
    assert result.token and result.dashboard_link and earlier.token != result.token
