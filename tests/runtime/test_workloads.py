"""One record for every workload output (issue 25, item 4): an SVD that fails mid-way is marked
``failed`` and keeps its sketches, ``resume`` finishes it where it stopped (the same result as an
uninterrupted run, and numpy's), a resume that cannot be right is refused before anything runs,
and ``blockdist info`` shows one record shape for an SVD, a PCA and a top-k.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

import blockdist
from blockdist.cli import main
from blockdist.errors import IncompleteOutputError, InputError, OutputExistsError, ResumeError
from blockdist.planning.sketch import SketchParameters
from blockdist.runtime.request import Options
from blockdist.runtime.svd import run_sketch
from blockdist.runtime.workload import WORKLOAD_KEY, read_record
from tests.conftest import write_array

BLOCKDIST = [sys.executable, "-m", "blockdist.cli"]
M, N = 300, 90
RECORD_KEYS = {"workload", "version", "status", "job", "inputs", "parameters", "progress", "results"}


@pytest.fixture(scope="module")
def a(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """Low rank plus noise plus an offset, stored in ragged chunks."""
    rng = np.random.default_rng(11)
    values = (rng.standard_normal((M, 5)) * np.geomspace(30, 3, 5)) @ rng.standard_normal((5, N))
    values += 0.01 * rng.standard_normal((M, N)) + rng.standard_normal(N)
    path = tmp_path_factory.mktemp("workloads") / "a.zarr"
    write_array(path, values, (70, 40))
    return path, values


class Stop(Exception):
    """What the interrupting step raises."""


def stop_at(label_start: str, seen: list[str]):
    """A step callback that notes each step and fails the run when a step's label starts so."""
    def step(label: str, job: object) -> None:
        seen.append(label)
        if label.startswith(label_start):
            raise Stop(label)
    return step


def record_of(path: Path) -> dict:
    return zarr.open_array(path, mode="r").attrs[WORKLOAD_KEY]


def test_a_failed_svd_is_marked_failed_and_resumes_as_if_uninterrupted(client, a, tmp_path, capsys):
    path, values = a
    parameters = SketchParameters("svd", 3, oversample=4, power_iters=1, seed=5)
    whole = run_sketch(path, tmp_path / "whole.zarr", parameters, Options(client=client))
    out, seen = tmp_path / "u.zarr", []
    with pytest.raises(Stop):  # passes 1 (A·Ω) and 2 (Aᵀ·Q) finish, the third is stopped as it starts
        run_sketch(path, out, parameters, Options(client=client),
                   on_step=stop_at("A·Z: power iteration 1", seen))
    record = record_of(out)
    assert record["status"] == "failed" and record["progress"] == {"done": 2, "total": 4, "unit": "passes"}
    scratch = tmp_path / ".u.zarr.blockdist-svd"
    assert (scratch / "pass-1" / "q1.zarr").is_dir() and (scratch / "pass-2" / "x.zarr").is_dir()
    with pytest.raises(IncompleteOutputError,
                       match=r"unfinished blockdist svd \(failed, 2 of 4 passes done\)"):
        blockdist.open(out)
    with pytest.raises(OutputExistsError, match=r"unfinished blockdist svd.*finish it with --resume"):
        run_sketch(path, out, parameters, Options(client=client))
    for wrong, why in ((SketchParameters("svd", 2, 4, 1, 5), r"rank = 3 \(not 2\)"),
                       (SketchParameters("svd", 3, 4, 1, 6), r"seed = 5 \(not 6\)"),
                       (SketchParameters("pca", 3, 4, 1, 5), "it holds a svd, not a pca")):
        with pytest.raises(ResumeError, match=why):
            run_sketch(path, out, wrong, Options(client=client, resume=True))
    with pytest.raises(InputError, match="overwrite and resume exclude each other"):
        run_sketch(path, out, parameters, Options(client=client, resume=True, overwrite=True))

    # the command line resumes it (no --seed: the first run's), from the third pass on
    assert main(["svd", str(path), "3", str(out), "--oversample", "4", "--power-iters", "1", "--resume",
                 "--vt", str(tmp_path / "vt.zarr"), "--scheduler", client.scheduler.address]) == 0
    steps = [line.removeprefix("step          ") for line in capsys.readouterr().out.splitlines()
             if line.startswith("step ")]
    assert steps[0] == "A·Z: power iteration 1 of 1" and len(steps) == 4  # A·Z, orthonormalise, Aᵀ·Q, U
    record = record_of(out)
    assert record["status"] == "complete" and record["progress"]["done"] == 4 and not scratch.exists()
    u, s, vt = zarr.open_array(out)[:], np.array(record["results"]["singular_values"]), zarr.open_array(
        tmp_path / "vt.zarr")[:]
    np.testing.assert_array_equal(u, whole.u[:])  # what the uninterrupted run gave
    np.testing.assert_array_equal(s, whole.s)
    np.testing.assert_array_equal(vt, whole.vt)
    exact_u, exact_s, exact_vt = np.linalg.svd(values, full_matrices=False)  # and numpy's
    np.testing.assert_allclose(s, exact_s[:3], rtol=1e-6)
    np.testing.assert_allclose(u.T @ u, np.eye(3), atol=1e-10)
    np.testing.assert_allclose(np.abs(np.sum(u * exact_u[:, :3], axis=0)), 1, atol=1e-6)
    np.testing.assert_allclose(np.abs(np.sum(vt * exact_vt[:3], axis=1)), 1, atol=1e-6)
    best = np.linalg.norm(values - (exact_u[:, :3] * exact_s[:3]) @ exact_vt[:3])
    assert np.linalg.norm(values - (u * s) @ vt) <= best * (1 + 1e-8)
    np.testing.assert_array_equal(blockdist.open(out).array[:], u)
    with pytest.raises(ResumeError, match="it is complete"):
        run_sketch(path, out, parameters, Options(client=client, resume=True))


def test_a_pca_stopped_twice_resumes_from_its_means_then_from_its_last_pass(client, a, tmp_path, capsys):
    path, values = a
    out, parameters = tmp_path / "scores.zarr", SketchParameters("pca", 2, 4, 1, 3)
    with pytest.raises(Stop):  # the column means finish; the range sketch is stopped as it starts
        run_sketch(path, out, parameters, Options(client=client), on_step=stop_at("A·Ω", []))
    assert record_of(out)["progress"]["done"] == 1
    seen: list[str] = []
    with pytest.raises(Stop):  # every pass finishes; the scores are not written
        run_sketch(path, out, parameters, Options(client=client, resume=True), on_step=stop_at("write", seen))
    assert seen[0].startswith("A·Ω") and not any("means" in label for label in seen)
    assert record_of(out)["status"] == "failed" and record_of(out)["progress"]["done"] == 5
    capsys.readouterr()
    result = blockdist.pca(path, 2, out=out, seed=3, oversample=4, power_iters=1, client=client, resume=True,
                           progress=True)
    assert capsys.readouterr().out.splitlines() == [f"write the scores U·S ({M}×2) to {out}"]
    centred = values - values.mean(axis=0)
    _, exact_s, exact_vt = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(result.mean, values.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(result.singular_values, exact_s[:2], rtol=1e-6)
    np.testing.assert_allclose(result.explained_variance_ratio, exact_s[:2] ** 2 / np.sum(exact_s**2),
                               rtol=1e-6)
    np.testing.assert_allclose(np.abs(np.sum(result.components * exact_vt[:2], axis=1)), 1, atol=1e-6)
    np.testing.assert_allclose(result.scores[:], centred @ result.components.T, rtol=1e-8, atol=1e-8)
    assert record_of(out)["status"] == "complete"


def test_a_resume_from_a_changed_input_is_refused(client, a, tmp_path):
    _, values = a
    copy = tmp_path / "a.zarr"
    write_array(copy, values, (70, 40))
    out = tmp_path / "u.zarr"
    with pytest.raises(Stop):
        run_sketch(copy, out, SketchParameters("svd", 2, seed=1), Options(client=client),
                   on_step=stop_at("A·Ω", []))
    assert record_of(out)["status"] == "failed"
    zarr.create_array(store=str(copy), data=values * 2, chunks=(70, 40), compressors=None, overwrite=True)
    with pytest.raises(ResumeError, match=r"computed from A = .*a\.zarr, and .* is not that array as it was"):
        blockdist.svd(copy, 2, out=out, client=client, resume=True)
    with pytest.raises(ResumeError, match="no randomized SVD or PCA"):
        blockdist.svd(copy, 2, out=tmp_path / "none.zarr", client=client, resume=True)


@pytest.mark.slow
def test_an_svd_interrupted_mid_pass_on_the_command_line_resumes_and_matches_numpy(client, a, tmp_path):
    path, values = a
    out, vt_path = tmp_path / "u.zarr", tmp_path / "vt.zarr"
    # streamed: A kept on the workers makes each pass of this small A too short to interrupt in
    args = [*BLOCKDIST, "svd", str(path), "3", str(out), "--power-iters", "2", "--seed", "4", "--vt",
            str(vt_path), "--scheduler", client.scheduler.address, "--stream"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            if record_of(out)["progress"]["done"] >= 2:
                break
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)  # in the third pass of six, or about to start it
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "--resume" in stderr and "Traceback" not in stderr
    record = record_of(out)
    assert record["status"] == "failed" and 2 <= record["progress"]["done"] < 6
    again = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("step          ") < 11  # fewer steps than a whole run's
    u, vt = zarr.open_array(out)[:], zarr.open_array(vt_path)[:]
    s = np.array(record_of(out)["results"]["singular_values"])
    exact_u, exact_s, exact_vt = np.linalg.svd(values, full_matrices=False)
    np.testing.assert_allclose(s, exact_s[:3], rtol=1e-6)
    np.testing.assert_allclose(np.abs(np.sum(u * exact_u[:, :3], axis=0)), 1, atol=1e-6)
    np.testing.assert_allclose(np.abs(np.sum(vt * exact_vt[:3], axis=1)), 1, atol=1e-6)
    best = np.linalg.norm(values - (exact_u[:, :3] * exact_s[:3]) @ exact_vt[:3])
    assert np.linalg.norm(values - (u * s) @ vt) <= best * (1 + 1e-8)


@pytest.mark.slow
def test_info_shows_one_record_shape_for_svd_pca_and_topk(client, a, tmp_path):
    path, values = a
    blockdist.svd(path, 2, out=tmp_path / "u.zarr", power_iters=0, seed=1, client=client)
    blockdist.pca(path, 2, out=tmp_path / "p.zarr", power_iters=0, seed=1, client=client)
    blockdist.topk(path, path, 3, tmp_path / "top.zarr", client=client)
    records = {}
    for name in ("u.zarr", "p.zarr", "top.zarr"):
        shown = subprocess.run([*BLOCKDIST, "info", str(tmp_path / name), "--json"], capture_output=True,
                               text=True, timeout=120)
        assert shown.returncode == 0, shown.stderr
        records[name] = json.loads(shown.stdout)
        assert set(records[name]) == RECORD_KEYS and records[name]["status"] == "complete"
    assert [r["workload"] for r in records.values()] == ["svd", "pca", "topk"]
    assert records["top.zarr"]["progress"] == {"done": M, "total": M, "unit": "rows"}
    assert records["top.zarr"]["parameters"] == {"k": 3} and records["u.zarr"]["parameters"]["rank"] == 2
    np.testing.assert_allclose(records["u.zarr"]["results"]["singular_values"],
                               np.linalg.svd(values, compute_uv=False)[:2], rtol=1e-4)
    text = subprocess.run([*BLOCKDIST, "info", str(tmp_path / "top.zarr")], capture_output=True, text=True,
                          timeout=120)
    heads = [line.split()[0] for line in text.stdout.splitlines()]
    assert heads == ["output", "workload", "status", "inputs", "parameters", "results"]


def test_an_output_of_the_older_topk_attribute_is_still_read(tmp_path):
    manifest = {"status": "complete", "token": "abc", "a": {"name": "q"}, "b": {"name": "c"},
                "figures": {"seconds": 1.5, "bytes_read": 10}}
    older = {"k": 4, "complete": True, "rows_written": 7, "rows": 7}
    record = read_record({"blockdist": manifest, "topk": older})
    assert record.to_json() == {"workload": "topk", "version": 1, "status": "complete", "job": "abc",
                                "inputs": {"a": {"name": "q"}, "b": {"name": "c"}}, "parameters": {"k": 4},
                                "progress": {"done": 7, "total": 7, "unit": "rows"},
                                "results": {"seconds": 1.5, "bytes_read": 10}}
    running = read_record({"blockdist": {**manifest, "status": "running"},
                           "topk": {**older, "complete": False}})
    assert running.status == "running" and not running.complete


def test_an_unfinished_output_is_told_what_finishes_it(tmp_path):
    """An SVD resumes; a top-k job does not, so its refusal names --overwrite instead."""
    manifest = {"status": "running", "token": "abc", "a": {"name": "q"}, "b": {"name": "c"}}
    older = {"k": 4, "complete": False, "rows_written": 3, "rows": 7}
    svd = {"workload": "svd", "version": 1, "status": "failed", "job": "abc", "inputs": {}, "parameters": {},
           "progress": {"done": 2, "total": 6, "unit": "passes"}, "results": {}}
    for attributes, words in (({"blockdist": manifest, "topk": older}, "top-k job does not resume"),
                              ({WORKLOAD_KEY: svd}, "finish it with --resume")):
        array = zarr.create_array(tmp_path / f"{len(words)}.zarr", shape=(2, 2), dtype="float64")
        array.attrs.update(attributes)
        with pytest.raises(blockdist.IncompleteOutputError, match=words):
            blockdist.open(tmp_path / f"{len(words)}.zarr")
