"""Split-k tiles summed band by band (the reduce-scatter of blockdist.planning.traffic), on the
session's two worker processes: the bands are cut where each partial lies, reduced by
different tasks, written as whole output chunks, checked (``verify``) band by band; a
diagonal tile of a symmetric product and an in-place update reduce in one band.

Plans are made for 16 task slots (prepare takes the cluster's shape), so that a few tiles
are split over k, and run on the two workers.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import zarr

from blockdist.planning import WORKER_BASELINE, ClusterShape, MachineModel
from blockdist.runtime.prepare import check, prepare
from blockdist.runtime.request import Options, Request
from blockdist.runtime.start import start
from tests.conftest import write_array

pytestmark = [pytest.mark.slow]

SLOTS = ClusterShape(16, 1, 2 * 2**30)
#: Reads dear next to the tasks' overhead: splitting k pays even on these small products.
SPLITTING = MachineModel(read_bytes_per_second=1e7, mapped_read_bytes_per_second=1e7, task_overhead_seconds=0,
                         reduce_fan_in=2)


def submitted(client, folder: Path, options: Options, a: str = "a.zarr", b: str = "b.zarr", out: str = "c.zarr"):
    prepared = prepare(check(Request(folder / a, folder / b, folder / out, options)), SLOTS)
    return prepared.plan, start(prepared, client, contextlib.ExitStack())


def keys_run(client) -> list[str]:
    return [str(k) for k in client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))]


def test_bands_of_a_split_k_tile_are_reduced_and_checked_apart(client, tmp_path: Path):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((1024, 8192)), rng.standard_normal((8192, 512))
    write_array(tmp_path / "a.zarr", a, (512, 512))
    write_array(tmp_path / "b.zarr", b, (512, 512))
    plan, job = submitted(client, tmp_path, Options(model=SPLITTING, verify=True))
    assert plan.k_splits >= 4, plan.summary()
    # A's row chunks are 512: the output's are cut to 256 so that two reduces share each tile
    assert plan.tile_rows == 512 and plan.out_chunks == (256, 512) and plan.reduce_bands == 2
    out = job.result()
    assert zarr.open_array(tmp_path / "c.zarr").chunks == (256, 512)
    np.testing.assert_allclose(out[:], a @ b, rtol=1e-10, atol=1e-9)
    assert job.verification.ok and len(job.verification.tiles) == plan.tiles
    assert job.stats.tasks == plan.tiles * plan.k_splits  # a partial's figures go with its first band only
    assert "blockdist-band" in keys_run(client)


def test_given_output_chunks_keep_their_rows(client, tmp_path: Path):
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((1024, 8192)), rng.standard_normal((8192, 512))
    write_array(tmp_path / "a.zarr", a, (512, 512))
    write_array(tmp_path / "b.zarr", b, (512, 512))
    plan, job = submitted(client, tmp_path, Options(model=SPLITTING, out_chunks=(512, 512)))
    assert plan.k_splits >= 4 and plan.out_chunks == (512, 512)
    assert plan.reduce_bands == max(1, min(plan.k_splits, plan.tile_rows // 512))
    np.testing.assert_allclose(job.result()[:], a @ b, rtol=1e-10, atol=1e-9)


def test_an_in_place_split_k_update_reduces_each_tile_in_one_band(client, tmp_path: Path):
    rng = np.random.default_rng(3)
    a, b, c0 = rng.standard_normal((1024, 8192)), rng.standard_normal((8192, 512)), rng.standard_normal((1024, 512))
    write_array(tmp_path / "a.zarr", a, (256, 512))
    write_array(tmp_path / "b.zarr", b, (512, 512))
    write_array(tmp_path / "c.zarr", c0, (256, 512))
    options = Options(model=SPLITTING, c=str(tmp_path / "c.zarr"), beta=-0.5, verify=True)
    plan, job = submitted(client, tmp_path, options)
    assert plan.k_splits >= 2 and plan.reduce_bands > 1  # the plan would band; the stage is per tile
    np.testing.assert_allclose(job.result()[:], a @ b - 0.5 * c0, rtol=1e-10, atol=1e-9)
    assert job.verification.ok


def test_a_split_k_gram_product_mirrors_every_band(client, tmp_path: Path):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((16384, 1024))
    write_array(tmp_path / "x.zarr", x, (1024, 128))
    small = ClusterShape(16, 1, WORKER_BASELINE + 16 * 2**20)  # small tiles: several computed
    x_path = tmp_path / "x.zarr"  # XᵀX: op(A) = Xᵀ, op(B) = X
    request = Request(x_path, x_path, tmp_path / "g.zarr", Options(model=SPLITTING, verify=True),
                      symmetric=True).with_options(transpose_a=True, transpose_b=False)
    prepared = prepare(check(request), small)
    plan = prepared.plan
    assert plan.symmetric and plan.k_splits > 1 and plan.tiles > 1 and plan.reduce_bands > 1, plan.summary()
    job = start(prepared, client, contextlib.ExitStack())
    out = job.result()[:]
    np.testing.assert_allclose(out, x.T @ x, rtol=1e-10, atol=1e-8)
    assert np.array_equal(out, out.T)
    assert job.verification.ok
