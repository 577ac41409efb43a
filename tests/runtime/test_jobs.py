"""Jobs people can watch, cancel, resume and trust: on real clusters, with real faults."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import zarr

import blockdist
from blockdist.errors import InputChangedError, JobFailedError, OutputExistsError, ResumeError
from blockdist.planning import WORKER_BASELINE
from tests.conftest import assert_product, random_data, write_array

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

# A budget that holds tiles of about 750², so a 3000² product has about 16 tiles to watch.
SIZE, CHUNK, MEMORY = 3000, 250, WORKER_BASELINE + 20 * 2**20


@pytest.fixture
def operands(tmp_path):
    rng = np.random.default_rng(21)
    a, b = random_data(rng, (SIZE, SIZE), "float64"), random_data(rng, (SIZE, SIZE), "float64")
    write_array(tmp_path / "a.zarr", a, (CHUNK, CHUNK))
    write_array(tmp_path / "b.zarr", b, (CHUNK, CHUNK))
    return tmp_path, a, b


def manifest(path: Path) -> dict:
    return json.loads((path / "zarr.json").read_text())["attributes"]["blockdist"]


def tiles_listed(path: Path) -> int:
    """Tiles the manifest lists as done (-1 while there is none, or it is being rewritten)."""
    try:
        return len(manifest(path)["done"])
    except (OSError, ValueError, KeyError):
        return -1


def wait_for(condition, timeout=120.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)


def test_submit_returns_a_job_to_watch(client, operands):
    folder, a, b = operands
    job = blockdist.submit(folder / "a.zarr", folder / "b.zarr", folder / "c.zarr", client=client, memory=MEMORY)
    assert job.plan.tiles >= 8
    page = job._repr_html_()
    assert "<progress" in page and "blockdist plan" in page and job.dashboard_link in page
    job.progress()  # a text bar outside Jupyter; returns when the job ends
    assert job.done() and job.tiles_done == job.tiles_total
    out = job.result()
    assert isinstance(out, zarr.Array)
    assert_product(out[:], a, b)
    assert manifest(folder / "c.zarr")["status"] == "complete"
    assert sorted(manifest(folder / "c.zarr")["done"]) == list(range(job.tiles_total))
    assert "complete" in repr(job)


def test_the_dashboard_shows_the_job(client, operands):
    folder, _, _ = operands
    job = blockdist.submit(folder / "a.zarr", folder / "b.zarr", folder / "c.zarr", client=client, memory=MEMORY)
    job.result()
    with urllib.request.urlopen(job.dashboard_link, timeout=30) as response:
        assert response.status == 200
        assert b"Dask" in response.read()

    def groups_by_span(dask_scheduler):
        spans = dask_scheduler.extensions["spans"].spans.values()
        return {s.name[-1]: sorted(group.name for group in s.groups) for s in spans}

    # The job's tasks are released when it ends; its span keeps them for the dashboard's metrics.
    assert client.run_on_scheduler(groups_by_span)[f"blockdist-{job.token}"] == ["blockdist-gemm"]


def still_running(dask_worker) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(task.key) for task in dask_worker.state.tasks.values()
            if task.state in ("executing", "long-running", "cancelled")]


def test_cancel_then_resume_computes_only_what_is_left(client, operands):
    folder, a, b = operands
    job = blockdist.submit(folder / "a.zarr", folder / "b.zarr", folder / "c.zarr", client=client, memory=MEMORY)
    wait_for(lambda: job.tiles_done >= 2)
    job.cancel()
    with pytest.raises(JobFailedError, match="cancelled"):
        job.result()
    assert not any(client.run(still_running).values()), "result() returned while tasks still write the output"
    stored = manifest(folder / "c.zarr")
    assert stored["status"] == "cancelled" and 2 <= len(stored["done"]) < job.tiles_total

    with pytest.raises(OutputExistsError, match="resume"):
        blockdist.submit(folder / "a.zarr", folder / "b.zarr", folder / "c.zarr", client=client, memory=MEMORY)
    again = blockdist.submit(folder / "a.zarr", folder / "b.zarr", folder / "c.zarr", client=client,
                             memory=MEMORY, resume=True)
    out = again.result()
    assert again.stats.tasks == job.tiles_total - len(stored["done"])
    assert_product(out[:], a, b)
    assert manifest(folder / "c.zarr")["status"] == "complete"


def test_resuming_with_different_inputs_is_refused(client, operands):
    folder, _, _ = operands
    job = blockdist.submit(folder / "a.zarr", folder / "b.zarr", folder / "c.zarr", client=client, memory=MEMORY)
    wait_for(lambda: job.tiles_done >= 1)
    job.cancel()
    with pytest.raises(JobFailedError):
        job.result()
    write_array(folder / "other.zarr", np.ones((SIZE, SIZE)), (CHUNK, CHUNK))
    with pytest.raises(ResumeError, match="B = .*b.zarr"):
        blockdist.submit(folder / "a.zarr", folder / "other.zarr", folder / "c.zarr", client=client,
                         memory=MEMORY, resume=True)
    with pytest.raises(ResumeError, match="no blockdist job manifest"):
        blockdist.submit(folder / "a.zarr", folder / "b.zarr", folder / "other.zarr", client=client, resume=True)


def test_a_worker_killed_mid_job_does_not_lose_the_result(operands):
    from distributed import Client, LocalCluster

    folder, a, b = operands
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", memory_limit="2GiB") as cluster, \
            Client(cluster, set_as_default=False) as own:
        pids = own.run(os.getpid)
        job = blockdist.submit(folder / "a.zarr", folder / "b.zarr", folder / "c.zarr", client=own, memory=MEMORY)
        wait_for(lambda: job.tiles_done >= 1)
        os.kill(next(iter(pids.values())), signal.SIGKILL)
        out = job.result(timeout=300)
        assert job.tiles_done == job.tiles_total
        assert_product(out[:], a, b)


def test_the_cli_killed_mid_job_resumes_where_it_stopped(client, operands):
    """The kill waits for a state, not a time: the manifest is saved after every tile
    (blockdist.save-every = 0), and the CLI is killed once it lists a tile done."""
    folder, a, b = operands
    args = [sys.executable, "-m", "blockdist.cli", "matmul", "a.zarr", "b.zarr", "c.zarr",
            "--scheduler", client.scheduler.address, "--memory", str(MEMORY)]
    env = {**os.environ, "DASK_BLOCKDIST__SAVE_EVERY": "0"}
    first = subprocess.Popen(args, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_for(lambda: tiles_listed(folder / "c.zarr") >= 1, interval=0.005)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    stored = manifest(folder / "c.zarr")
    total = blockdist.Plan.from_dict(stored["plan"]).tiles
    assert stored["status"] == "running"  # the client died without a word
    assert 1 <= len(stored["done"]) < total, (len(stored["done"]), total)
    # its lease outlives it (the dead client cannot say it is dead): refused, until forced
    refused = subprocess.run([*args, "--resume"], cwd=folder, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "is being written by job" in refused.stderr, refused.stderr
    second = subprocess.run([*args, "--resume", "--force"], cwd=folder, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert f"resuming      {len(stored['done'])} of {total}" in second.stdout
    assert_product(zarr.open_array(str(folder / "c.zarr"))[:], a, b)


def test_a_corrupt_chunk_fails_the_job_naming_it(client, tmp_path):
    rng = np.random.default_rng(4)
    a, b = random_data(rng, (400, 300), "float64"), random_data(rng, (300, 200), "float64")
    write_array(tmp_path / "a.zarr", a, (100, 100))
    write_array(tmp_path / "b.zarr", b, (100, 100))
    (tmp_path / "a.zarr" / "c" / "2" / "1").write_bytes(b"not a chunk")
    with pytest.raises(JobFailedError, match=r"a\.zarr.*chunk c/2/1"):
        blockdist.matmul(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client,
                         memory="400MB")
    stored = manifest(tmp_path / "c.zarr")
    assert stored["status"] == "failed"
    plan = blockdist.Plan.from_dict(stored["plan"])
    for tile in stored["done"]:  # no finished tile reads A's rows 200:300
        rows, _ = plan.grid.bounds(tile)
        assert rows[1] <= 200 or rows[0] >= 300


def test_an_absent_chunk_is_zero_and_a_chunk_gone_since_the_check_is_a_changed_input(client, tmp_path):
    from blockdist.runtime.prepare import check, prepare
    from blockdist.runtime.request import Options, Request
    from blockdist.runtime.start import start, start_on_cluster

    rng = np.random.default_rng(5)
    a, b = random_data(rng, (300, 300), "float64"), random_data(rng, (300, 100), "float64")
    write_array(tmp_path / "a.zarr", a, (100, 100))
    write_array(tmp_path / "b.zarr", b, (100, 100))
    (tmp_path / "a.zarr" / "c" / "0" / "1").unlink()
    out = blockdist.matmul(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client,
                           allow_missing_chunks=True)  # a no-op, still taken
    a[0:100, 100:200] = 0
    assert_product(out[:], a, b)
    # a chunk listed when the inputs were checked and gone when the job ends: never a silent zero
    options = Options(client=client)
    checked = check(Request(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c2.zarr", options))
    (tmp_path / "a.zarr" / "c" / "2" / "2").unlink()
    job = start_on_cluster(checked, options, lambda cluster: prepare(checked, cluster), start)
    with pytest.raises(InputChangedError, match=r"A = .*a\.zarr changed while job \w+ read it: chunk c/2/2 \(removed\)"):
        job.result()


@pytest.mark.parametrize(("m", "k", "n", "dtype"), [(1, 1, 1, "float64"), (200, 37, 150, "float32"),
                                                     (61, 500, 7, "complex64"), (90, 80, 70, "complex128"),
                                                     (50, 40, 30, "int64"), (300, 200, 100, "float64")])
def test_verification_passes_on_correct_results(client, tmp_path, m, k, n, dtype):
    rng = np.random.default_rng(m + n)
    a, b = random_data(rng, (m, k), dtype), random_data(rng, (k, n), dtype)
    write_array(tmp_path / "a.zarr", a, (max(1, m // 3), max(1, k // 2)))
    write_array(tmp_path / "b.zarr", b, (max(1, k // 3), max(1, n // 2)))
    result = blockdist.run(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client,
                           verify=True)
    assert result.extra["verification"].ok
    for seed in range(5):
        assert blockdist.verify(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client,
                                seed=seed).ok


def test_verify_names_a_corrupted_tile_and_exits_1(client, tmp_path):
    rng = np.random.default_rng(8)
    a, b = random_data(rng, (500, 300), "float64"), random_data(rng, (300, 400), "float64")
    write_array(tmp_path / "a.zarr", a, (100, 100))
    write_array(tmp_path / "b.zarr", b, (100, 100))
    out = blockdist.matmul(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client)
    writable = zarr.open_array(str(tmp_path / "c.zarr"), mode="r+")
    writable[321, 123] = out[321, 123] + 1.0
    result = subprocess.run([sys.executable, "-m", "blockdist.cli", "verify", "a.zarr", "b.zarr", "c.zarr",
                             "--scheduler", client.scheduler.address], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "FAILED on 1 of" in result.stderr
    assert "rows 300:400, columns 100:200" in result.stderr


def _run_in_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run a command with its stdout and stderr on a pseudo-terminal, as a person sees it."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    process = subprocess.Popen(args, cwd=cwd, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return process.wait(timeout=300), b"".join(chunks).decode(errors="replace")


def test_matmul_draws_a_live_bar_on_a_terminal_and_plain_lines_otherwise(client, operands):
    folder, _, _ = operands
    args = [sys.executable, "-m", "blockdist.cli", "matmul", "a.zarr", "b.zarr", "c.zarr",
            "--scheduler", client.scheduler.address, "--memory", str(MEMORY)]
    status, screen = _run_in_terminal(args, folder)
    assert status == 0, screen
    assert re.search(r"\d+/\d+ \[", screen) and "GFLOP/s" in screen  # tqdm's count of GFLOP done, and its rate
    assert re.search(r"\d+/\d+ tiles", screen)
    assert "GFLOP/s, read" in screen and "\r" in screen  # redrawn in place, with speed and bytes
    piped = subprocess.run([*args, "--overwrite"], cwd=folder, capture_output=True, text=True, timeout=300)
    assert piped.returncode == 0, piped.stderr
    assert "\r" not in piped.stdout + piped.stderr
    assert "wall time" in piped.stdout


def _interrupt(job) -> int:
    """Cancel ``job`` once it has finished a tile; the tiles its manifest then lists as done."""
    wait_for(lambda: job.tiles_done >= 1, interval=0.005)
    job.cancel()
    with pytest.raises(JobFailedError, match="cancelled"):
        job.result()
    return job.tiles_done


@pytest.mark.parametrize("kind", ["in-place", "gram", "split-k"])
def test_interrupted_in_place_gram_and_split_k_jobs_resume_to_the_right_answer(client, operands, kind):
    import contextlib

    from blockdist.planning import ClusterShape, MachineModel
    from blockdist.runtime.prepare import check, prepare
    from blockdist.runtime.request import Options, Request
    from blockdist.runtime.start import start
    from tests.oracle import assert_gemm

    folder, a, b = operands
    paths = folder / "a.zarr", folder / "b.zarr", folder / "c.zarr"
    if kind == "in-place":
        c0 = random_data(np.random.default_rng(22), (SIZE, SIZE), "float64")
        write_array(paths[2], c0, (CHUNK, CHUNK))
        options = {"alpha": 2.0, "beta": -1.0, "c": paths[2], "memory": MEMORY}
        job = blockdist.submit(*paths, client=client, **options)
        expected = (a, b, 2.0, -1.0, c0)
    elif kind == "gram":
        options = {"memory": MEMORY}
        job = blockdist.submit_gram(paths[0], paths[2], client=client, **options)
        expected = (a, a.T, 1.0, 0.0, None)
    else:  # planned for 16 slots: several tiles, each cut over k, run on the two workers
        options = {"memory": MEMORY}
        splitting = MachineModel(task_overhead_seconds=0, read_bytes_per_second=1e7)  # splitting k pays
        checked = check(Request(*paths, Options(**options, model=splitting)))
        prepared = prepare(checked, ClusterShape(64, 1, MEMORY))
        assert prepared.plan.strategy == "split-k" and prepared.plan.tiles > 1
        job = start(prepared, client, contextlib.ExitStack())
        expected = (a, b, 1.0, 0.0, None)
    done = _interrupt(job)
    assert 1 <= done < job.tiles_total, (done, job.tiles_total)
    resume = blockdist.submit_gram if kind == "gram" else blockdist.submit
    again = resume(*([paths[0]] if kind == "gram" else paths[:2]), paths[2], client=client, resume=True, **options)
    out = again.result()
    assert again.stats.tasks == (job.tiles_total - done) * again.plan.k_splits
    assert_gemm(out[:], *expected)
    assert manifest(paths[2])["status"] == "complete"
    assert sorted(p.name for p in folder.iterdir()) == ["a.zarr", "b.zarr", "c.zarr"]  # no staging left
