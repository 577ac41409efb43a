"""One writer per output (issue 17): a job's lease beside its output, with real concurrent
``blockdist`` processes. While one job writes OUT, a second one on OUT — ``--overwrite``,
``--resume`` or another product — exits 2 naming the owner and the ages; of two started at
once exactly one runs; a dead job's lease is taken over after the timeout, or at once with
``--force``; on S3 the lease is created by a conditional put.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from blockdist.errors import OutputBusyError
from blockdist.runtime.lease import Lease
from blockdist.storage import locate
from tests.conftest import LONG_TIMEOUT, write_array

pytestmark = [pytest.mark.slow]

BLOCKDIST = [sys.executable, "-m", "blockdist.cli"]
#: Long enough on two workers to be seen running.
N = 4096


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lease")
    rng = np.random.default_rng(31)
    a, b = rng.standard_normal((N, N)), rng.standard_normal((N, N))
    write_array(folder / "a.zarr", a, (512, 512))
    write_array(folder / "b.zarr", b, (512, 512))
    return folder, a, b


def lease_of(out: Path) -> Path:
    return out.parent / f".{out.name}.blockdist-lease"


def start(folder: Path, out: str, *more: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([*BLOCKDIST, "matmul", "a.zarr", "b.zarr", out, "--workers", "2", "--memory", "2GB",
                             *more], cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, start_new_session=True)


def run(folder: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*BLOCKDIST, *args], cwd=folder, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def check_product(out: Path, a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(zarr.open_array(out)[:128, :128], a[:128] @ b[:, :128], rtol=1e-10, atol=1e-9)


def test_a_second_job_on_a_busy_output_is_refused_whatever_it_asks(inputs):
    folder, a, b = inputs
    out = folder / "busy.zarr"
    first = start(folder, "busy.zarr")
    wait_for(lambda: lease_of(out).exists())
    # The first job (its CLI and its local cluster) is stopped while the others try: it holds its
    # lease, heartbeat younger than the 30 s timeout, however slow the machine is.
    os.killpg(first.pid, signal.SIGSTOP)
    try:
        cases = {"--overwrite": ("matmul", "a.zarr", "b.zarr", "busy.zarr", "--overwrite"),
                 "--resume": ("matmul", "a.zarr", "b.zarr", "busy.zarr", "--resume"),
                 "another product": ("matmul", "b.zarr", "a.zarr", "busy.zarr", "--overwrite"),
                 "gram": ("gram", "a.zarr", "busy.zarr", "--overwrite")}
        seconds = {name: subprocess.Popen([*BLOCKDIST, *args], cwd=folder, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True) for name, args in cases.items()}
        for name, process in seconds.items():
            _, stderr = process.communicate(timeout=120)
            assert process.returncode == 2, (name, stderr)
            message = stderr.strip()
            assert "Traceback" not in message and len(message.splitlines()) <= 2, message
            assert f"{out} is being written by job" in message and "owner" in message and "heartbeat" in message, \
                message
            assert f":{first.pid}," in message, message  # the owner is the first process
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert not lease_of(out).exists()  # released with the job
    check_product(out, a, b)


def test_of_two_jobs_started_at_once_exactly_one_writes(inputs):
    folder, a, b = inputs
    both = [start(folder, "race.zarr", "--overwrite"), start(folder, "race.zarr", "--overwrite")]
    codes = sorted(p.wait(timeout=300) for p in both)
    errors = [p.stderr.read() for p in both]
    assert codes == [0, 2], errors
    assert any("is being written by job" in e or "took its lease first" in e for e in errors), errors
    check_product(folder / "race.zarr", a, b)


DEAD_HOLDER = """
import sys, time
from blockdist.runtime.lease import Lease
from blockdist.storage import locate
Lease(locate(sys.argv[1]), "dead-job", "A·B")
print("held", flush=True)
time.sleep(600)
"""


def _dead_holder(out: Path) -> None:
    """A process that takes OUT's lease and is SIGKILLed: its lease stays, heartbeat fresh."""
    holder = subprocess.Popen([sys.executable, "-c", DEAD_HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()


@pytest.mark.timeout(LONG_TIMEOUT)
def test_a_dead_jobs_lease_is_taken_over_after_the_timeout_or_with_force(tmp_path: Path):
    rng = np.random.default_rng(32)
    a, b = rng.standard_normal((512, 512)), rng.standard_normal((512, 512))
    write_array(tmp_path / "a.zarr", a, (256, 256))
    write_array(tmp_path / "b.zarr", b, (256, 256))
    out = tmp_path / "dead.zarr"
    _dead_holder(out)
    assert lease_of(out).exists()  # nobody released it
    refused = run(tmp_path, "matmul", "a.zarr", "b.zarr", "dead.zarr")
    assert refused.returncode == 2, refused.stderr
    assert "is being written by job dead-job" in refused.stderr and "run again in" in refused.stderr
    time.sleep(2.5)  # older than a 2 s timeout now
    taken = run(tmp_path, "matmul", "a.zarr", "b.zarr", "dead.zarr", "--workers", "1",
                env={"DASK_BLOCKDIST__LEASE_TIMEOUT": "2"})
    assert taken.returncode == 0, taken.stderr
    assert not lease_of(out).exists()
    check_product(out, a, b)
    _dead_holder(out)
    refused = run(tmp_path, "matmul", "a.zarr", "b.zarr", "dead.zarr", "--overwrite")
    assert refused.returncode == 2 and "--force" in refused.stderr
    forced = run(tmp_path, "matmul", "a.zarr", "b.zarr", "dead.zarr", "--overwrite", "--force", "--workers", "1")
    assert forced.returncode == 0, forced.stderr
    assert not lease_of(out).exists()
    check_product(out, a, b)


def test_a_holder_whose_lease_is_forced_away_learns_it(inputs):
    import dask

    folder, _, _ = inputs
    out = locate(folder / "forced.zarr")
    with dask.config.set({"blockdist.lease-timeout": 0.4}):  # renewed every 0.1 s
        holder = Lease(out, "job-one", "A·B")
    try:
        with pytest.raises(OutputBusyError, match="is being written by job job-one"):
            Lease(out, "job-two", "A·B")
        thief = Lease(out, "job-two", "A·B", force=True)
        wait_for(lambda: holder.lost is not None, timeout=10)
        assert "taken over by job job-two" in holder.lost  # its job then fails instead of writing on
        holder.release()  # leaves the thief's lease alone
        assert holder.file.read()["job"] == "job-two"
        thief.release()
        assert holder.file.read() is None
    finally:
        holder.release()


@pytest.mark.s3
def test_the_lease_on_object_storage_is_taken_by_one_job_only():
    from tests.storage.s3_support import MotoS3, storage_options

    with MotoS3() as server:
        server.create_bucket("leases")
        out = locate("s3://leases/out/c.zarr", storage_options=storage_options(server.endpoint))
        first = Lease(out, "job-one", "A·B")
        try:
            assert "out/.c.zarr.blockdist-lease" in server.keys("leases")
            with pytest.raises(OutputBusyError, match="s3://leases/out/c.zarr is being written by job job-one"):
                Lease(out, "job-two", "A·B")
        finally:
            first.release()
        assert "out/.c.zarr.blockdist-lease" not in server.keys("leases")
        blockdist_api_free = Lease(out, "job-three", "A·B")
        blockdist_api_free.release()
