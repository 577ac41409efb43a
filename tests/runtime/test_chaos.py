"""Chaos (issue 17): worker processes SIGKILLed at random times — at least five kills — during a
product, a split-k product and an in-place update, on a cluster of its own (its nannies
restart what is killed); each result is right afterwards, and an in-place update applied
beta·C0 exactly once per tile. Then the scheduler itself is lost mid-job: the CLI says so in
one line, and ``--resume`` on a new cluster finishes.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import dask
import numpy as np
import pytest
import zarr

import blockdist
from blockdist.planning import ClusterShape, MachineModel
from blockdist.runtime.prepare import check, prepare
from blockdist.runtime.request import Options, Request
from blockdist.runtime.start import start
from tests.conftest import LONG_TIMEOUT, write_array

pytestmark = [pytest.mark.slow]

KILLS = 5


@pytest.fixture(scope="module")
def chaos_client():
    from distributed import Client, LocalCluster

    # A task may see its worker die several times here: let it try more often than Dask's 3.
    with dask.config.set({"distributed.scheduler.allowed-failures": 20}), LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
        memory_limit="3GiB",
    ) as cluster, Client(cluster, set_as_default=False) as client:
        yield client


class Killer(threading.Thread):
    """SIGKILLs a random live worker every 0.2-0.6 s until it has killed ``count`` or is stopped."""

    def __init__(self, client, count: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.client, self.count, self.random = client, count, random.Random(seed)
        self.kills: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        start, seen = time.monotonic(), {}
        while len(self.kills) < self.count and not self.stop.wait(self.random.uniform(0.2, 0.6)):
            with contextlib.suppress(Exception):
                now = time.monotonic()
                for pid in self.client.run(os.getpid, nanny=False).values():
                    seen.setdefault(pid, now)
                # only workers up for half a second: one killed while it starts can take its nanny with it
                settled = [pid for pid, first in seen.items() if now - first >= 0.5]
                if settled:
                    victim = self.random.choice(settled)
                    os.kill(victim, signal.SIGKILL)
                    del seen[victim]
                    self.kills.append(round(now - start, 2))


def chaos(client, job, seed: int) -> list[float]:
    killer = Killer(client, KILLS, seed)
    killer.start()
    try:
        job.result(timeout=600)
    finally:
        killer.stop.set()
        killer.join()
    with contextlib.suppress(Exception):  # the nannies restart what was killed; the next test wants both
        client.wait_for_workers(2, timeout=30)
    assert len(killer.kills) >= KILLS, f"the job ended after {len(killer.kills)} kills: make it longer"
    return killer.kills


@pytest.fixture
def inputs(tmp_path: Path):
    rng = np.random.default_rng(51)
    a, b = rng.standard_normal((3072, 6144)), rng.standard_normal((6144, 3072))
    write_array(tmp_path / "a.zarr", a, (256, 256))
    write_array(tmp_path / "b.zarr", b, (256, 256))
    return tmp_path, a, b


#: Small tiles, many tasks: a kill costs one task's work, and the job lasts long enough for five.
SMALL_TILES = ClusterShape(8, 1, 240 * 2**20)  # planned for 8 slots, run on 2


def submitted(client, folder: Path, options: Options, out: str = "c.zarr", cluster: ClusterShape = SMALL_TILES):
    prepared = prepare(check(Request(folder / "a.zarr", folder / "b.zarr", folder / out, options)), cluster)
    return prepared.plan, start(prepared, client, contextlib.ExitStack())


@pytest.mark.timeout(LONG_TIMEOUT)
def test_a_product_a_split_k_product_and_an_in_place_update_survive_five_random_worker_kills(
        chaos_client, inputs):
    """The three jobs run at once on the two workers while five are killed, one at a time."""
    folder, a, b = inputs
    c0 = np.random.default_rng(52).standard_normal((3072, 3072))
    write_array(folder / "u.zarr", c0, (256, 256))
    splitting = MachineModel(read_bytes_per_second=1e7, mapped_read_bytes_per_second=1e7, task_overhead_seconds=0)
    plain_plan, plain = submitted(chaos_client, folder, Options(verify=True), out="c.zarr")
    split_plan, split = submitted(chaos_client, folder, Options(model=splitting), out="s.zarr",
                                  cluster=ClusterShape(16, 1, 2 * 2**30))
    _, update = submitted(chaos_client, folder, Options(c=folder / "u.zarr", alpha=2.0, beta=-0.5), out="u.zarr")
    assert plain_plan.tiles >= 8 and plain_plan.k_splits == 1, plain_plan.summary()
    assert split_plan.k_splits >= 2, split_plan.summary()

    class Jobs:  # the killer stops when all three are done
        def done(self) -> bool:
            return plain.done() and split.done() and update.done()

        def result(self, timeout: float) -> None:
            for job in (plain, split, update):
                job.result(timeout=timeout)

    chaos(chaos_client, Jobs(), seed=1)
    assert plain.verification.ok
    product = a @ b
    np.testing.assert_allclose(zarr.open_array(folder / "c.zarr")[:], product, rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(zarr.open_array(folder / "s.zarr")[:], product, rtol=1e-10, atol=1e-8)
    # beta·C0 applied once per tile, however often a tile's task was run again
    np.testing.assert_allclose(zarr.open_array(folder / "u.zarr")[:], 2.0 * product - 0.5 * c0, rtol=1e-10,
                               atol=1e-8)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dask_cluster(workers: int = 2):
    """A scheduler and workers as separate ``dask`` processes, as on a real cluster."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "20"}
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", str(port), "--dashboard-address", ":0"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers",
                               str(workers), "--nthreads", "1", "--memory-limit", "2GiB", "--host", "127.0.0.1"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        from distributed import Client

        with Client(address, timeout=60, set_as_default=False) as probe:
            probe.wait_for_workers(workers, timeout=60)
        yield address, scheduler
    finally:
        for process in (worker, scheduler):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.timeout(LONG_TIMEOUT)
def test_a_lost_scheduler_ends_the_cli_in_one_line_and_resume_finishes_on_a_new_cluster(client, tmp_path: Path):
    """The first cluster is a scheduler and one worker as ``dask`` processes; the new one is the
    session's (another scheduler, other workers)."""
    folder, rng = tmp_path, np.random.default_rng(53)
    a, b = rng.standard_normal((3072, 4096)), rng.standard_normal((4096, 3072))
    write_array(folder / "a.zarr", a, (256, 256))
    write_array(folder / "b.zarr", b, (256, 256))
    args = [sys.executable, "-m", "blockdist.cli", "matmul", "a.zarr", "b.zarr", "c.zarr", "--memory", "230MB"]
    with dask_cluster(workers=1) as (address, scheduler):
        env = {**os.environ, "DASK_BLOCKDIST__SAVE_EVERY": "0"}
        cli = subprocess.Popen([*args, "--scheduler", address], cwd=folder, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
        manifest = folder / "c.zarr" / "zarr.json"
        deadline = time.monotonic() + 120
        while not (manifest.exists() and zarr.open_array(folder / "c.zarr").attrs["blockdist"]["done"]):  # one tile
            assert time.monotonic() < deadline and cli.poll() is None, cli.stderr.read() if cli.poll() else ""
            time.sleep(0.05)
        os.killpg(scheduler.pid, signal.SIGKILL)
        _, stderr = cli.communicate(timeout=120)
    assert cli.returncode == 1, stderr
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert "lost" in lines[0] and address in lines[0] and "--resume" in lines[0], lines[0]
    stored = zarr.open_array(folder / "c.zarr").attrs["blockdist"]
    assert stored["status"] != "complete" and stored["done"]
    assert blockdist.Plan.from_dict(stored["plan"]).tiles >= 4  # enough left to lose
    again = subprocess.run([*args, "--resume", "--scheduler", client.scheduler.address], cwd=folder,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "resuming" in again.stdout
    np.testing.assert_allclose(zarr.open_array(folder / "c.zarr")[:], a @ b, rtol=1e-10, atol=1e-8)
