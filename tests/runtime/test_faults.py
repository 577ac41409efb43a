"""What --verify catches inside the tasks: a wrong write, found by reading the written tile back.

The fault is real code on real workers: a private cluster's workers have blockdist's tile
writer replaced (through ``client.run``) by one that changes one element of one tile on its
way to storage, the way a flaky disk or a bug in the writer would. Everything else runs as
it always does.
"""

from __future__ import annotations

import subprocess
import sys

import cloudpickle
import numpy as np
import pytest
import zarr
from distributed import Client, LocalCluster

import blockdist
from blockdist.errors import VerificationError
from tests.conftest import random_data, write_array
from tests.oracle import assert_product

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def corrupt_writes(row: int, col: int, by: float) -> None:
    """On a worker: from now on, the write of whichever tile holds C[row, col] adds ``by`` to it."""
    from blockdist.worker import finish

    original = getattr(finish, "_original_write_tile", finish.write_tile)

    def writing(ref, rows, cols, tile):  # type: ignore[no-untyped-def]
        if rows[0] <= row < rows[1] and cols[0] <= col < cols[1]:
            tile = tile.copy()
            tile[row - rows[0], col - cols[0]] += by
        return original(ref, rows, cols, tile)

    finish._original_write_tile = original
    finish.write_tile = writing


cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def faulty():
    """A cluster of two workers whose writes of C[123, 77] come out wrong by 1e-6."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", memory_limit="2GiB") as cluster, \
            Client(cluster, set_as_default=False) as client:
        client.run(corrupt_writes, 123, 77, 1e-6)
        yield client


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(12)
    a, b = random_data(rng, (300, 200), "float64"), random_data(rng, (200, 250), "float64")
    write_array(tmp_path / "a.zarr", a, (50, 50))
    write_array(tmp_path / "b.zarr", b, (50, 50))
    return tmp_path, a, b


def test_a_wrong_write_fails_the_verified_job_naming_the_tile(faulty, inputs):
    folder, a, b = inputs
    job = blockdist.submit(folder / "a.zarr", folder / "b.zarr", folder / "c.zarr", client=faulty,
                           memory="300MB", verify=True)
    with pytest.raises(VerificationError) as caught:
        job.result()
    rows, cols = job.plan.grid.bounds(job.plan.grid.number(*(x // t for x, t in ((123, job.plan.tile_rows),
                                                                                (77, job.plan.tile_cols)))))
    assert f"rows {rows[0]}:{rows[1]}, columns {cols[0]}:{cols[1]}" in str(caught.value)
    assert "FAILED on 1 of" in str(caught.value)
    assert job.status == "failed"
    # The same fault without --verify goes unnoticed by the job: that is what the check is for.
    silent = blockdist.matmul(folder / "a.zarr", folder / "b.zarr", folder / "d.zarr", client=faulty)
    with pytest.raises(AssertionError):
        assert_product(silent[:], a, b)


def test_matmul_verify_on_the_command_line(faulty, client, inputs):
    folder, a, b = inputs
    args = [sys.executable, "-m", "blockdist.cli", "matmul", "a.zarr", "b.zarr", "c.zarr", "--verify"]
    wrong = subprocess.run([*args, "--scheduler", faulty.scheduler.address], cwd=folder, capture_output=True,
                           text=True, timeout=300)
    assert wrong.returncode == 1, wrong.stderr
    assert "verification FAILED on 1 of" in wrong.stderr and "Traceback" not in wrong.stderr
    right = subprocess.run([*args, "--overwrite", "--scheduler", client.scheduler.address], cwd=folder,
                           capture_output=True, text=True, timeout=300)
    assert right.returncode == 0, right.stderr
    assert "check         verified: C = A·B holds on" in right.stdout
    assert_product(zarr.open_array(str(folder / "c.zarr"))[:], a, b)
