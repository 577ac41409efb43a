"""Faults said as what they are (issue 17), through the CLI as a subprocess: a disk that fills
while a job writes, an input chunk that shrinks or is rewritten while tasks read it, a damaged
``zarr.json`` of an input and a tampered manifest — each one line, the right exit status, the
file or chunk named, nothing the user owns lost, and ``--resume`` finishing where it can.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

import blockdist
from blockdist.planning import MachineModel
from tests.conftest import LONG_TIMEOUT, require, write_array

pytestmark = [pytest.mark.slow]

BLOCKDIST = [sys.executable, "-m", "blockdist.cli"]


def cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*BLOCKDIST, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.timeout(LONG_TIMEOUT)
def test_a_disk_that_fills_mid_job_is_named_and_resume_finishes(tmp_path: Path):
    require(os.geteuid() == 0, "mounting a small tmpfs needs root")
    rng = np.random.default_rng(41)
    a, b = rng.standard_normal((2048, 8192)), rng.standard_normal((8192, 2048))
    write_array(tmp_path / "a.zarr", a, (512, 512))
    write_array(tmp_path / "b.zarr", b, (512, 512))
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40M", "tmpfs", str(small)], check=True)
    try:
        out = small / "c.zarr"
        job = subprocess.Popen([*BLOCKDIST, "matmul", str(tmp_path / "a.zarr"), str(tmp_path / "b.zarr"), str(out),
                                "--workers", "2", "--memory", "2GB"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not (out / "zarr.json").exists():  # the job has created its output: now fill the disk
            assert time.monotonic() < deadline and job.poll() is None
            time.sleep(0.01)
        stat = os.statvfs(small)
        filler = small / "filler"
        filler.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 256 * 1024))  # 256 KiB left
        _, stderr = job.communicate(timeout=300)
        assert job.returncode == 1, stderr
        line = one_line(stderr)
        assert "no space left on the device" in line and str(out) in line, line
        assert "still to write" in line and "--resume" in line, line
        manifest = json.loads((out / "zarr.json").read_text())["attributes"]["blockdist"]  # intact
        assert manifest["status"] in ("failed", "running")
        filler.unlink()
        resumed = cli("matmul", str(tmp_path / "a.zarr"), str(tmp_path / "b.zarr"), str(out), "--resume",
                      "--workers", "2", cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        np.testing.assert_allclose(zarr.open_array(out)[:], a @ b, rtol=1e-10, atol=1e-8)
    finally:
        subprocess.run(["umount", str(small)], check=True)


@pytest.fixture
def mapped_inputs(tmp_path: Path):
    rng = np.random.default_rng(42)
    a, b = rng.standard_normal((4096, 4096)), rng.standard_normal((4096, 4096))
    write_array(tmp_path / "a.zarr", a, (1024, 1024))  # mapped under MAP_1024, not copied
    write_array(tmp_path / "b.zarr", b, (1024, 1024))
    return tmp_path


@pytest.mark.parametrize("change", ["shrink", "rewrite"])
def test_an_input_chunk_changed_under_a_running_job_is_named(mapped_inputs: Path, change: str):
    folder = mapped_inputs
    chunk = folder / "a.zarr" / "c" / "3" / "2"
    plan = blockdist.plan(folder / "a.zarr", folder / "b.zarr", workers=2, memory="2GB",
                          model=MachineModel(map_min_edge=1024))
    assert plan.a.mapped, plan.summary()
    job = subprocess.Popen([*BLOCKDIST, "matmul", "a.zarr", "b.zarr", "c.zarr", "--workers", "2", "--memory", "2GB"],
                           cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "DASK_BLOCKDIST__MODEL__MAP_MIN_EDGE": "1024"})
    deadline = time.monotonic() + 60
    while not (folder / "c.zarr" / "zarr.json").exists():
        assert time.monotonic() < deadline and job.poll() is None
        time.sleep(0.01)
    time.sleep(0.2)  # the tasks are reading
    data = chunk.read_bytes()
    if change == "shrink":
        with open(chunk, "r+b") as f:
            f.truncate(1000)
    else:  # same size, other values, written in place
        with open(chunk, "r+b") as f:
            f.write(np.ones(len(data) // 8).tobytes())
    _, stderr = job.communicate(timeout=300)
    assert job.returncode == 1, stderr
    line = one_line(stderr)
    assert "changed while" in line and "chunk c/3/2" in line and "a.zarr" in line, line
    assert "KilledWorker" not in line and "SIGBUS" not in line.upper().replace("(SIGBUS)", "")
    status = json.loads((folder / "c.zarr" / "zarr.json").read_text())["attributes"]["blockdist"]["status"]
    assert status != "complete"  # never reported done


def test_damaged_input_metadata_is_refused_naming_the_file(tmp_path: Path):
    write_array(tmp_path / "a.zarr", np.ones((8, 8)), (4, 4))
    write_array(tmp_path / "b.zarr", np.ones((8, 8)), (4, 4))
    meta = tmp_path / "a.zarr" / "zarr.json"
    for damage in ['{"zarr_format": 3, "node_type": "array", "shape": [8', "not json",
                   '{"zarr_format": 3, "node_type": "array"}']:
        meta.write_text(damage)
        result = cli("matmul", "a.zarr", "b.zarr", "c.zarr", cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        line = one_line(result.stderr)
        assert f"{meta}: not valid Zarr v3 array metadata" in line, line
        assert not (tmp_path / "c.zarr").exists()


TAMPERS = ["plan garbage", "plan fields", "stray tile", "done not a list", "no token"]


def _tamper(manifest: dict, how: str) -> None:
    manifest["status"] = "failed"
    if how == "plan garbage":
        manifest["plan"] = "garbage"
    elif how == "plan fields":
        manifest["plan"]["tile_rows"] = "many"
    elif how == "stray tile":
        manifest["done"] = [0, 999]
    elif how == "done not a list":
        manifest["done"] = 7
    else:
        del manifest["token"]


def test_a_tampered_manifest_is_refused_by_resume_naming_the_file(tmp_path: Path, capsys, monkeypatch):
    from blockdist.cli import main

    write_array(tmp_path / "a.zarr", np.ones((512, 512)), (256, 256))
    write_array(tmp_path / "b.zarr", np.ones((512, 512)), (256, 256))
    assert cli("matmul", "a.zarr", "b.zarr", "c.zarr", "--workers", "1", cwd=tmp_path).returncode == 0
    meta = tmp_path / "c.zarr" / "zarr.json"
    original = meta.read_text()
    monkeypatch.chdir(tmp_path)
    for number, how in enumerate(TAMPERS):
        document = json.loads(original)
        _tamper(document["attributes"]["blockdist"], how)
        meta.write_text(json.dumps(document))
        before = meta.read_bytes()
        if number == 0:  # a real process once; the others in this one (refused before any work)
            result = cli("matmul", "a.zarr", "b.zarr", "c.zarr", "--resume", cwd=tmp_path)
            code, stderr = result.returncode, result.stderr
        else:
            code, stderr = main(["matmul", "a.zarr", "b.zarr", "c.zarr", "--resume"]), capsys.readouterr().err
        assert code == 2, (how, stderr)
        line = one_line(stderr)
        assert f"{meta}: its blockdist manifest is damaged" in line and "--overwrite" in line, (how, line)
        assert meta.read_bytes() == before  # nothing written
    verify = cli("verify", "a.zarr", "b.zarr", "c.zarr", cwd=tmp_path)  # the last tamper: no token
    assert verify.returncode in (1, 2) and "Traceback" not in verify.stderr, verify.stderr
