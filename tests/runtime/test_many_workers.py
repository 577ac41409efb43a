"""A split-k product across eight hosts: each worker in its own network namespace, the
scheduler in another, the matrices on an S3 API server, and one worker killed mid-job.

``dask scheduler`` and eight ``dask worker`` processes (no nanny: a killed worker stays
dead) run as a person would start them, each inside a namespace of its own with its own
address on a private bridge. moto's S3 server listens on this process's address on that
bridge only, so the workers reach storage, the scheduler and each other over the bridge,
as separate machines would. The plan cuts k in eight ranges and sums the partial tiles by a
reduce-scatter: the test checks that the partials were computed on several workers and
reduced on several, with pieces moving between them; it pauses (SIGSTOP) a worker computing a
partial, so that the job cannot end, SIGKILLs another that holds a finished partial (or a band
of one, or a sum of bands) that the reduces still need, and checks the result against numpy.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zarr

import blockdist
from blockdist import storage as bstore
from tests.conftest import LONG_TIMEOUT, assert_product, require
from tests.runtime.cluster_support import PrivateHosts, Processes, netns_usable, private_hosts, quiet_env
from tests.storage.s3_support import MotoS3, storage_options

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.s3]

WORKERS = 8
DASK = [sys.executable, "-m", "dask"]
STARTUP_TIMEOUT = 90.0  #: generous: nine processes start on two cores; never asserted


@pytest.fixture(scope="module")
def hosts() -> Iterator[PrivateHosts]:
    why = netns_usable()
    require(not why, why or "")
    with private_hosts(["scheduler", *(f"worker-{i}" for i in range(WORKERS))], "10.213.91") as made:
        yield made


def _wait_for_address(path: Path, procs: Processes) -> str:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        procs.check_alive()
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError, KeyError):
            return json.loads(path.read_text())["address"]
        time.sleep(0.2)
    raise RuntimeError(f"no scheduler address in time\n{procs.logs()}")


@contextlib.contextmanager
def eight_hosts(hosts: PrivateHosts, folder: Path) -> Iterator[tuple[str, dict[str, int]]]:
    """The scheduler and the workers, each on its host; yields the address and each worker's pid by name."""
    procs = Processes(folder)
    env = quiet_env()
    try:
        procs.start("scheduler", [*hosts.inside("scheduler"), *DASK, "scheduler", "--host",
                                  hosts.addresses["scheduler"], "--port", "0", "--dashboard-address", ":0",
                                  "--scheduler-file", str(folder / "scheduler.json")], env)
        address = _wait_for_address(folder / "scheduler.json", procs)
        pids = {}
        for i in range(WORKERS):
            role = f"worker-{i}"
            proc = procs.start(role, [
                *hosts.inside(role), *DASK, "worker", address, "--host", hosts.addresses[role], "--nthreads", "1",
                "--memory-limit", "1GiB", "--name", role, "--no-nanny", "--dashboard-address", ":0",
                "--local-directory", str(folder / role), "--death-timeout", "60"], env)
            pids[role] = proc.pid
        yield address, pids
    finally:
        procs.stop()


def _pause_a_partial(client, pids: dict[str, int]) -> str:  # type: ignore[no-untyped-def]
    """SIGSTOP a worker computing a partial tile, so that the job cannot end (nor its band sums
    finish) before the test has killed another; its name."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        running = client.run(lambda dask_worker: (dask_worker.name, [
            str(ts.key) for ts in dask_worker.state.executing if str(ts.key).startswith("blockdist-partial-")]))
        for name, keys in running.values():
            if keys:
                os.kill(pids[name], signal.SIGSTOP)
                return name
        time.sleep(0.01)
    raise AssertionError("no worker computed a partial tile in time")


def _first_partial_holder(client, paused: str) -> str | None:  # type: ignore[no-untyped-def]
    """The name of a worker (not ``paused``) that holds a finished partial tile, or a band of
    one or a sum of bands waiting for the paused worker's, if one does yet."""

    def holders(dask_scheduler) -> list[str]:  # type: ignore[no-untyped-def]
        return [ws.name for ts in dask_scheduler.tasks.values()
                if str(ts.key).startswith(("blockdist-partial-", "blockdist-band-", "blockdist-reduce-"))
                and not str(ts.key).endswith("-root") and ts.state == "memory"
                for ws in ts.who_has if ws.name != paused]

    names = client.run_on_scheduler(holders)
    return names[0] if names else None


def _reduces_left(client) -> int:  # type: ignore[no-untyped-def]
    """Roots of the bands' reduce trees that have not run yet."""

    def left(dask_scheduler) -> int:  # type: ignore[no-untyped-def]
        return sum(1 for ts in dask_scheduler.tasks.values()
                   if str(ts.key).startswith("blockdist-reduce-") and str(ts.key).endswith("-root")
                   and ts.state in ("released", "waiting", "queued", "processing", "no-worker"))

    return client.run_on_scheduler(left)


@pytest.mark.timeout(LONG_TIMEOUT)
def test_split_k_across_eight_namespaced_workers_survives_a_killed_worker(hosts: PrivateHosts,
                                                                          tmp_path: Path):
    from distributed import Client, get_task_stream

    rng = np.random.default_rng(15)
    a, b = rng.standard_normal((512, 32768)), rng.standard_normal((32768, 512))
    with MotoS3(host=hosts.here) as s3:
        s3.create_bucket("matrices")
        options = storage_options(s3.endpoint)
        for name, values, chunks in (("a", a, (128, 2048)), ("b", b, (2048, 128))):
            ref = bstore.locate(f"s3://matrices/{name}.zarr", storage_options=options)
            zarr.create_array(ref.store, shape=values.shape, chunks=chunks, dtype=values.dtype,
                              compressors=None, fill_value=0)[:] = values
        with eight_hosts(hosts, tmp_path) as (address, pids), Client(address, timeout=60) as client:
            client.wait_for_workers(WORKERS, timeout=STARTUP_TIMEOUT)
            workers = client.scheduler_info()["workers"]
            expected = {hosts.addresses[f"worker-{i}"] for i in range(WORKERS)}
            assert {w["host"] for w in workers.values()} == expected
            with get_task_stream(client) as stream:
                job = blockdist.submit("s3://matrices/a.zarr", "s3://matrices/b.zarr", "s3://matrices/c.zarr",
                                       client=client, storage_options=options)
                plan = job.plan
                assert plan.k_splits == WORKERS and plan.reduce_bands > 1, plan.summary()
                paused = _pause_a_partial(client, pids)
                try:
                    deadline = time.monotonic() + 120
                    while (victim := _first_partial_holder(client, paused)) is None:
                        assert time.monotonic() < deadline, "no partial tile finished in two minutes"
                        time.sleep(0.02)
                    os.killpg(pids[victim], signal.SIGKILL)
                    left = _reduces_left(client)
                finally:
                    os.kill(pids[paused], signal.SIGCONT)
                job.result()
            assert left > 0  # the kill came before the reduces were done
            remaining = {w["name"] for w in client.scheduler_info()["workers"].values()}
            assert victim not in remaining and len(remaining) == WORKERS - 1
        product = bstore.open_input(bstore.locate("s3://matrices/c.zarr", storage_options=options))[:]
    assert_product(product, a, b)
    ran = {}
    for record in stream.data:
        ran.setdefault(str(record["key"]).split("-")[1], []).append(record)
    partial_workers = {r["worker"] for r in ran["partial"]}
    roots = [r for r in ran["reduce"] if str(r["key"]).endswith("-root")]
    moved = [s for r in ran["reduce"] for s in r.get("startstops", ()) if s["action"] == "transfer"]
    assert len(partial_workers) >= 4, partial_workers  # k was cut across workers
    assert len({r["worker"] for r in roots}) >= 2  # and reduced on several of them
    assert moved, "no partial moved between workers"
    assert len(ran["partial"]) >= WORKERS
    print(f"killed {victim} with {left} band reduce(s) to go; {len(ran['partial'])} partial runs for "
          f"{WORKERS} k-ranges; roots on {len({r['worker'] for r in roots})} workers; {len(moved)} transfers")
