"""Dask may run a task again on the same inputs (a lost worker, a retry, a result kept for
another task): the reduce and final tasks of a split-k tile must give the same tile, the same
figures and the same verdict however often they run, and never change their inputs."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import zarr

from blockdist.storage import locate
from blockdist.worker.spec import CheckSpec, Finish, OperandSpec, TileOutput, TileTask
from blockdist.worker.tasks import check_region, partial_tile, sum_partials, write_sum
from tests.conftest import random_data, write_array
from tests.oracle import assert_gemm

M, K, N, CHUNK = 40, 240, 30, 20


@pytest.fixture
def parts(tmp_path):
    """Four partial tiles of C = A·B, each from its own k-range, computed by the real task function."""
    rng = np.random.default_rng(3)
    a, b = random_data(rng, (M, K), "float64"), random_data(rng, (K, N), "float64")
    write_array(tmp_path / "a.zarr", a, (CHUNK, CHUNK))
    write_array(tmp_path / "b.zarr", b, (CHUNK, CHUNK))
    zarr.create_array(store=str(tmp_path / "c.zarr"), shape=(M, N), chunks=(M, N), dtype="float64",
                      compressors=None)

    def tasks(check):
        spec_a = OperandSpec(locate(tmp_path / "a.zarr"), CHUNK, CHUNK)
        spec_b = OperandSpec(locate(tmp_path / "b.zarr"), CHUNK, CHUNK)
        return [TileTask(rows=(0, M), cols=(0, N), ks=(lo, lo + K // 4), a=spec_a, b=spec_b, kernel_rows=64,
                         dtype="float64", check=check) for lo in range(0, K, K // 4)]

    output = TileOutput(locate(tmp_path / "c.zarr"), 0, (0, M), (0, N), Finish(alpha=-0.5))
    return a, b, output, tasks, tmp_path / "c.zarr"


@pytest.mark.parametrize("trials", [0, 3])
def test_reduce_and_final_tasks_rerun_on_the_same_inputs_give_the_same_answer(parts, trials):
    a, b, output, tasks, path = parts
    check = CheckSpec(trials, seed=11) if trials else None
    partials = [partial_tile(task) for task in tasks(check)]
    kept = copy.deepcopy(partials)  # what Dask holds for a retry

    first = write_sum(output, K, sum_partials(partials[0], partials[1]), *partials[2:])
    again = write_sum(output, K, sum_partials(partials[0], partials[1]), *partials[2:])  # a retried reduce and root
    if trials:  # the check reads back what is stored, after both writes
        first, again = check_region(output, first), check_region(output, again)
    for (tile, stats), (was, stats_was) in zip(partials, kept):
        np.testing.assert_array_equal(tile, was)  # inputs untouched
        assert stats == replace(stats_was, check=stats.check)
        if trials:
            np.testing.assert_array_equal(stats.check.ab_x, stats_was.check.ab_x)
    for field in ("bytes_read", "bytes_written", "tasks"):
        assert getattr(first, field) == getattr(again, field)
    assert first.tasks == 4
    if trials:
        assert 0 < first.verify_ratio <= 1.0 and first.verify_ratio == again.verify_ratio
    else:
        assert first.verify_ratio == again.verify_ratio == 0.0
    assert_gemm(zarr.open_array(str(path))[:], a, b, -0.5, 0.0, None)


def test_a_sum_is_a_new_value(parts):
    _, _, _, tasks, _ = parts
    one, two = (partial_tile(task) for task in tasks(CheckSpec(2, seed=5))[:2])
    total, stats = sum_partials(one, two)
    assert total is not one[0] and total is not two[0]
    assert stats.check is not one[1].check and stats.check.ab_x is not one[1].check.ab_x
    np.testing.assert_array_equal(stats.check.ab_x, one[1].check.ab_x + two[1].check.ab_x)
