"""Split-k partials staged in a scratch Zarr array beside the output (``partials="storage"``),
on the session's two worker processes, locally and on a loopback S3 API server: the product
is right and checked, nothing but task figures passes between workers, the scratch is gone
when the job completes, a staged partial is never computed twice (a retry finds its marker),
one left by another plan is never reused, and a bad value is refused before any work.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import zarr

from blockdist.errors import InputError
from blockdist.runtime.prepare import check, prepare
from blockdist.runtime.request import Options, Request
from blockdist.runtime.start import start
from blockdist.storage import locate
from blockdist.storage.partials import stage_partials
from blockdist.worker.staged import stage_partial
from tests.conftest import write_array
from tests.runtime.test_reduce_scatter import SLOTS, SPLITTING

pytestmark = [pytest.mark.slow]


def _prepared(folder: Path, options: Options, out: str | Path = "c.zarr", a: str | Path = "a.zarr",
              b: str | Path = "b.zarr"):
    where = (lambda p: p if "://" in str(p) else folder / p)
    return prepare(check(Request(where(a), where(b), where(out), options)), SLOTS)


def _inputs(folder: Path, seed: int, m: int = 1024, k: int = 8192, n: int = 512):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    write_array(folder / "a.zarr", a, (512, 512))
    write_array(folder / "b.zarr", b, (512, 512))
    return a, b


def scratch_of(folder: Path, out: str = "c.zarr") -> Path:
    return folder / f".{out}.blockdist-partials"


def received_since(client, since: float) -> int:
    """Bytes workers have received from each other since ``since`` (their own transfer logs)."""
    def received(dask_worker) -> int:
        return sum(entry["total"] for entry in dask_worker.transfer_incoming_log if entry["start"] >= since)
    return sum(client.run(received).values())


def test_staged_partials_give_the_product_and_leave_nothing_behind(client, tmp_path: Path):
    a, b = _inputs(tmp_path, 11)
    prepared = _prepared(tmp_path, Options(model=SPLITTING, verify=True, partials="storage"))
    plan = prepared.plan
    assert plan.k_splits >= 4, plan.summary()
    since = time.time()
    job = start(prepared, client, contextlib.ExitStack())
    assert scratch_of(tmp_path).exists()  # made before the tasks run
    out = job.result()
    np.testing.assert_allclose(out[:], a @ b, rtol=1e-10, atol=1e-9)
    assert job.verification.ok and len(job.verification.tiles) == plan.tiles
    tile_bytes = plan.tile_rows * plan.tile_cols * 8
    # every partial written once and read back once, band by band
    assert job.stats.bytes_staged >= 2 * plan.tiles * plan.k_splits * tile_bytes
    assert job.stats.tasks == plan.tiles * plan.k_splits and job.stats.partials_reused == 0
    # no partial travelled between workers: only figures (a few kB a task)
    assert received_since(client, since) < plan.tiles * tile_bytes / 4
    assert not scratch_of(tmp_path).exists()


def test_partials_in_memory_leave_no_scratch(client, tmp_path: Path):
    a, b = _inputs(tmp_path, 12)
    prepared = _prepared(tmp_path, Options(model=SPLITTING, partials="memory"))
    job = start(prepared, client, contextlib.ExitStack())
    np.testing.assert_allclose(job.result()[:], a @ b, rtol=1e-10, atol=1e-9)
    assert job.stats.bytes_staged == 0 and not scratch_of(tmp_path).exists()


def test_a_retried_partial_is_taken_from_storage_not_computed_again(client, tmp_path: Path):
    a, b = _inputs(tmp_path, 13)
    prepared = _prepared(tmp_path, Options(model=SPLITTING, partials="storage"))
    plan, graph = prepared.plan, prepared.graph
    staged = stage_partials(prepared.out, splits=plan.k_splits, shape=plan.shape, chunks=plan.out_chunks,
                            dtype=plan.dtype, tiles=plan.grid.numbers, layout={"test": 1}, keep=False)
    tile, pieces = next(iter(graph.tile_tasks()))
    first = client.submit(stage_partial, pieces[1], staged, tile.number, 1, pure=False).result()
    again = client.submit(stage_partial, pieces[1], staged, tile.number, 1, pure=False).result()
    assert first.tasks == 1 and first.partials_reused == 0 and first.bytes_staged > 0
    assert again.tasks == 0 and again.partials_reused == 1 and again.bytes_read == 0
    (r0, r1), (c0, c1), (k0, k1) = pieces[1].rows, pieces[1].cols, pieces[1].ks
    stored = zarr.open_array(staged.data.local_path)[1, r0:r1, c0:c1]
    np.testing.assert_allclose(stored, a[r0:r1, k0:k1] @ b[k0:k1, c0:c1], rtol=1e-10, atol=1e-9)


def test_partials_left_by_another_plan_are_replaced(client, tmp_path: Path):
    a, b = _inputs(tmp_path, 14)
    prepared = _prepared(tmp_path, Options(model=SPLITTING, partials="storage"))
    plan = prepared.plan
    # an interrupted job of another product left marked garbage under the same name
    stale = stage_partials(prepared.out, splits=plan.k_splits, shape=plan.shape, chunks=plan.out_chunks,
                           dtype=plan.dtype, tiles=plan.grid.numbers, layout={"another": "plan"}, keep=False)
    zarr.open_array(stale.data.local_path, mode="r+")[:] = 1e6
    zarr.open_array(stale.markers.local_path, mode="r+")[:] = 1
    job = start(prepared, client, contextlib.ExitStack())
    np.testing.assert_allclose(job.result()[:], a @ b, rtol=1e-10, atol=1e-9)
    assert job.stats.partials_reused == 0


def test_a_worker_killed_mid_job_leaves_a_right_product(client, tmp_path: Path):
    a, b = _inputs(tmp_path, 15, m=2048, k=16384)
    prepared = _prepared(tmp_path, Options(model=SPLITTING, partials="storage"))
    markers = scratch_of(tmp_path) / "partial-markers.zarr"
    job = start(prepared, client, contextlib.ExitStack())

    killed: list[int] = []

    def kill_after_first_staged() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not job.done():
            with contextlib.suppress(Exception):
                if zarr.open_array(markers, mode="r")[:].any():
                    pids = client.run(os.getpid)
                    os.kill(sorted(pids.values())[0], signal.SIGKILL)
                    killed.append(sorted(pids.values())[0])
                    return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_after_first_staged)
    killer.start()
    out = job.result(timeout=300)
    killer.join()
    assert killed, "the job ended before a worker could be killed after its first staged partial"
    np.testing.assert_allclose(out[:], a @ b, rtol=1e-10, atol=1e-8)
    client.wait_for_workers(2, timeout=60)


def test_a_bad_partials_value_is_refused_before_any_work(tmp_path: Path):
    _inputs(tmp_path, 16, m=64, k=64, n=64)
    with pytest.raises(InputError, match="partials must be 'memory' or 'storage', got 'disk'"):
        check(Request(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", Options(partials="disk")))
    cli = subprocess.run([sys.executable, "-m", "blockdist.cli", "matmul", str(tmp_path / "a.zarr"),
                          str(tmp_path / "b.zarr"), str(tmp_path / "c.zarr"), "--partials", "disk"],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 2 and "invalid choice: 'disk'" in cli.stderr and "Traceback" not in cli.stderr
    assert not (tmp_path / "c.zarr").exists()


@pytest.mark.s3
def test_staged_partials_on_object_storage(client, tmp_path: Path):
    from tests.storage.s3_support import MotoS3, storage_options

    rng = np.random.default_rng(17)
    a, b = rng.standard_normal((1024, 4096)), rng.standard_normal((4096, 512))
    with MotoS3() as server:
        server.create_bucket("partials")
        options = storage_options(server.endpoint)
        for name, values in (("a", a), ("b", b)):
            ref = locate(f"s3://partials/{name}.zarr", storage_options=options)
            zarr.create_array(ref.store, data=values, chunks=(512, 512), compressors=None)
        slow_reads = replace(SPLITTING, object_read_bytes_per_second=1e7)
        prepared = _prepared(tmp_path, Options(model=slow_reads, partials="storage", storage_options=options),
                             out="s3://partials/out/c.zarr", a="s3://partials/a.zarr", b="s3://partials/b.zarr")
        assert prepared.plan.k_splits >= 2, prepared.plan.summary()
        job = start(prepared, client, contextlib.ExitStack())
        while not job.done() and not any(".c.zarr.blockdist-partials" in k for k in server.keys("partials")):
            time.sleep(0.02)
        assert any(key.startswith("out/.c.zarr.blockdist-partials/partials.zarr/") for key in server.keys("partials"))
        out = job.result(timeout=120)
        np.testing.assert_allclose(out[:], a @ b, rtol=1e-10, atol=1e-9)
        assert job.stats.bytes_staged > 0
        assert not [key for key in server.keys("partials") if "blockdist-partials" in key]
