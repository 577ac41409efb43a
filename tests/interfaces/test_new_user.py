"""What a new user hits (issue 13), through the real command line: pipes, signals, scripts."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

import blockdist
from blockdist.errors import IncompleteOutputError, InputError
from tests.conftest import random_data, require, write_array
from tests.oracle import assert_gemm, assert_product

pytestmark = [pytest.mark.slow]

BLOCKDIST = [sys.executable, "-m", "blockdist.cli"]


def shell(command: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``command`` in bash with pipefail: a pipeline fails when blockdist does."""
    bin_folder = str(Path(sys.executable).parent)
    full_env = {**os.environ, "PATH": f"{bin_folder}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    return subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=full_env)


def manifest(path: Path) -> dict:
    return json.loads((path / "zarr.json").read_text())["attributes"]["blockdist"]


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(31)
    a, b = random_data(rng, (600, 500), "float64"), random_data(rng, (500, 400), "float64")
    write_array(tmp_path / "a.zarr", a, (100, 100))
    write_array(tmp_path / "b.zarr", b, (100, 100))
    return tmp_path, a, b


@pytest.mark.parametrize("reader", ["true", "head -3"])
def test_a_closed_stdout_does_not_stop_the_product(client, inputs, reader):
    folder, a, b = inputs
    result = shell(f"blockdist matmul a.zarr b.zarr c.zarr --memory 300MB --scheduler {client.scheduler.address} "
                   f"| {reader}", folder)
    assert result.returncode == 0, result.stderr
    assert manifest(folder / "c.zarr")["status"] == "complete"
    assert "Traceback" not in result.stderr and "Broken pipe" not in result.stderr
    assert_product(zarr.open_array(str(folder / "c.zarr"))[:], a, b)


def test_an_incomplete_output_is_refused_when_read_and_verified(client, inputs):
    folder, a, b = inputs
    job = blockdist.submit(folder / "a.zarr", folder / "b.zarr", folder / "c.zarr", client=client,
                           memory=blockdist.planning.WORKER_BASELINE + 2 * 2**20)
    job.cancel()
    with pytest.raises(blockdist.JobFailedError):
        job.result()
    with pytest.raises(IncompleteOutputError, match=r"unfinished blockdist job \(cancelled, \d+ of \d+ tiles done\)"):
        blockdist.open(folder / "c.zarr")
    assert blockdist.open(folder / "c.zarr", allow_incomplete=True).shape == (600, 400)
    result = subprocess.run([*BLOCKDIST, "verify", "a.zarr", "b.zarr", "c.zarr", "--scheduler",
                             client.scheduler.address], cwd=folder, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "unfinished blockdist job" in result.stderr and "--resume" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "tile rows" not in result.stderr


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_nothing_listening_at_the_scheduler_address_is_one_line_and_exit_2(inputs):
    folder, _, _ = inputs
    address = f"tcp://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    result = subprocess.run([*BLOCKDIST, "matmul", "a.zarr", "b.zarr", "c.zarr", "--scheduler", address,
                             "--connect-timeout", "3"], cwd=folder, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert f"nothing is listening at {address}" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2 and "Traceback" not in result.stderr
    assert not (folder / "c.zarr").exists()
    assert time.monotonic() - started < 60  # not distributed's 30 s default, then 60 lines


def test_a_socket_that_does_not_speak_dask_is_named(inputs):
    """Something listens but never answers as a scheduler (as a TLS scheduler does to tcp://)."""
    folder, _, _ = inputs
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        result = subprocess.run([*BLOCKDIST, "matmul", "a.zarr", "b.zarr", "c.zarr", "--scheduler", address,
                                 "--connect-timeout", "2"], cwd=folder, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "may expect TLS" in result.stderr and "tls://127.0.0.1:" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2


@pytest.mark.parametrize(("args", "words"), [
    (["--dtype", "foo"], ["'foo' is not a numpy dtype"]),
    (["--dtype", "bool"], ["dtype bool is not numeric"]),
    (["--beta", "2"], ["beta is 2.0 but no C0"]),
    (["--chunks", "1,2"], ["one or three"]),
])
def test_plan_refuses_what_matmul_refuses(tmp_path, args, words):
    result = subprocess.run([*BLOCKDIST, "plan", "--shape", "100,100,100", *args], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr


def test_plan_takes_the_products_options_and_chunks_in_the_order_of_shape(tmp_path, inputs):
    folder, _, _ = inputs
    result = subprocess.run([*BLOCKDIST, "plan", "--shape", "1000,3000,2000", "--chunks", "100,300,200",
                             "--workers", "2", "--memory", "2GB"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "A 1000×2000 float64 in chunks 100×200" in result.stdout
    assert "B 2000×3000 float64 in chunks 200×300" in result.stdout
    arrays = subprocess.run([*BLOCKDIST, "plan", "a.zarr", "a.zarr", "--transpose-b", "--alpha", "2",
                             "--workers", "2"], cwd=folder, capture_output=True, text=True, timeout=60)
    assert arrays.returncode == 0, arrays.stderr
    assert "= 2·A·Bᵀ, with A 600×500" in arrays.stdout and "Bᵀ 500×600" in arrays.stdout


def test_numpy_operands_are_staged_and_removed(client, tmp_path):
    rng = np.random.default_rng(9)
    a, b = random_data(rng, (130, 70), "float64"), random_data(rng, (70, 90), "float32")
    out = blockdist.matmul(a, b, tmp_path / "c.zarr", client=client)
    assert_product(out[:], a, b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.zarr"]
    with pytest.raises(InputError, match="workers must be a whole number of at least 1, got 0"):
        blockdist.matmul(a, b, tmp_path / "d.zarr", workers=0)


def test_a_script_without_a_main_guard_is_told_in_one_line(tmp_path, inputs):
    folder, _, _ = inputs
    script = tmp_path / "api1.py"
    script.write_text(textwrap.dedent(f"""
        import blockdist
        blockdist.matmul({str(folder / 'a.zarr')!r}, {str(folder / 'b.zarr')!r}, {str(tmp_path / 'c.zarr')!r})
    """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert 'if __name__ == "__main__":' in result.stderr
    assert "bootstrapping" not in result.stderr and "Nanny failed" not in result.stderr
    assert not (tmp_path / "c.zarr").exists()


def test_ctrl_c_is_one_line_exit_130_and_resumable(inputs):
    folder, a, b = inputs
    rng = np.random.default_rng(5)
    big = random_data(rng, (2000, 2000), "float64")
    write_array(folder / "x.zarr", big, (250, 250))
    args = [*BLOCKDIST, "matmul", "x.zarr", "x.zarr", "y.zarr", "--workers", "2", "--memory",
            str(blockdist.planning.WORKER_BASELINE + 12 * 2**20)]
    env = {**os.environ, "DASK_BLOCKDIST__SAVE_EVERY": "0"}
    # A session of its own, signalled as a whole: what a terminal's Ctrl-C does to its process group.
    process = subprocess.Popen(args, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if manifest(folder / "y.zarr")["done"]:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    lines = [line for line in stderr.strip().splitlines() if line]
    assert len(lines) == 1 and "interrupted" in lines[0] and "--resume" in lines[0], stderr
    stored = manifest(folder / "y.zarr")
    assert stored["status"] == "cancelled" and 1 <= len(stored["done"])
    again = subprocess.run([*args, "--resume"], cwd=folder, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert_product(zarr.open_array(str(folder / "y.zarr"))[:], big, big)


def test_figures_say_what_was_computed(client, inputs):
    folder, a, b = inputs
    result = subprocess.run([*BLOCKDIST, "gram", "a.zarr", "g.zarr", "--scheduler", client.scheduler.address,
                             "--memory", str(blockdist.planning.WORKER_BASELINE + 2 * 2**20)], cwd=folder,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "= X·Xᵀ, with X 600×500" in result.stdout
    assert "effective, as a full product" in result.stdout and "computed (" in result.stdout
    assert result.stdout.count("dashboard") == 1
    assert "0.0 GFLOP" not in result.stdout and "MFLOP" in result.stdout
    plan = blockdist.plan(folder / "a.zarr", folder / "a.zarr", transpose_b=True, workers=2, memory="1GB")
    thin = blockdist.planning.plan_for_shape(3000, 1, 2000, blockdist.planning.ClusterShape(2, 1, 2**30))
    assert thin.traffic_ratio < 2, thin.summary()  # each worker must read its share of A: the bound says so
    assert plan.product == "A·Bᵀ"


def test_output_chunks_shards_and_codec(client, tmp_path):
    rng = np.random.default_rng(8)
    a, b = random_data(rng, (300, 200), "float64"), random_data(rng, (200, 260), "float64")
    zarr.create_array(store=str(tmp_path / "a.zarr"), data=a, chunks=(50, 50))  # zstd, zarr's default
    write_array(tmp_path / "b.zarr", b, (50, 65))
    like_a = blockdist.matmul(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client)
    assert [type(c).__name__ for c in like_a.compressors] == ["ZstdCodec"]
    result = subprocess.run([*BLOCKDIST, "matmul", "a.zarr", "b.zarr", "d.zarr", "--out-chunks", "25,65",
                             "--out-shards", "100,130", "--out-codec", "blosc-lz4", "--scheduler",
                             client.scheduler.address, "--memory", str(blockdist.planning.WORKER_BASELINE + 2**20)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    d = zarr.open_array(str(tmp_path / "d.zarr"))
    assert d.chunks == (25, 65) and d.shards == (100, 130) and type(d.compressors[0]).__name__ == "BloscCodec"
    plan = blockdist.Plan.from_dict(d.attrs["blockdist"]["plan"])
    assert plan.tiles > 1
    assert plan.tile_rows % 100 == 0 or plan.tile_rows == 300
    assert plan.tile_cols % 130 == 0 or plan.tile_cols == 260
    assert_gemm(d[:], a, b, 1.0, 0.0, None)
    bad = subprocess.run([*BLOCKDIST, "matmul", "a.zarr", "b.zarr", "e.zarr", "--out-chunks", "25,65",
                          "--out-shards", "100,100"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not whole chunks of 25×65" in bad.stderr
    unknown = subprocess.run([*BLOCKDIST, "matmul", "a.zarr", "b.zarr", "e.zarr", "--out-codec", "lzma"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "unknown output codec 'lzma'" in unknown.stderr


def test_version_and_help_for_every_argument():
    from blockdist.cli import build_parser

    version = subprocess.run([*BLOCKDIST, "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.strip() == f"blockdist {blockdist.__version__}"
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, command in subparsers.choices.items():
        for action in command._actions:
            if action.dest != "help":
                assert action.help, f"blockdist {name}: {action.option_strings or action.dest} has no help"


def test_long_commands_show_progress_and_the_dashboard_once(tmp_path):
    with socket.socket() as busy:  # the default dashboard port is taken: no warning, another port
        with contextlib.suppress(OSError):  # taken already, by a test running beside this one: as good
            busy.bind(("127.0.0.1", 8787))
        demo = shell("blockdist demo --size 2048 --chunks 256 --workers 1", tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert demo.stdout.count("dashboard") == 1 and "progress" in demo.stdout
    assert "8787 is already in use" not in demo.stdout + demo.stderr
    random = shell("blockdist random r.zarr --shape 8000,8000 --chunks 500,500 | cat", tmp_path)
    assert random.returncode == 0 and "wrote 8000×8000" in random.stdout


def test_random_refuses_what_the_disk_cannot_hold(tmp_path):
    require(os.geteuid() == 0, "mounting a small tmpfs needs root")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8M", "tmpfs", str(small)], check=True)
    try:
        result = subprocess.run([*BLOCKDIST, "random", str(small / "r.zarr"), "--shape", "2000,2000", "--chunks",
                                 "500,500"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, result.stderr
        assert "needs 30.5 MiB" in result.stderr and "free" in result.stderr
        assert not (small / "r.zarr").exists()
    finally:
        subprocess.run(["umount", str(small)], check=True)
