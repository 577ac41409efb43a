"""``blockdist topk QUERIES CORPUS K OUT``: the plan, progress and summary lines, the group it
writes, and bad input refused in a line or two (exit 2). A run and a refusal go through a
subprocess the way a user runs them; the other refusals through ``main`` in this process
(the same code, without a second of interpreter start-up each)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import zarr

from blockdist.cli import main
from tests.conftest import write_array

BLOCKDIST = [sys.executable, "-m", "blockdist.cli"]


def blockdist(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([*BLOCKDIST, *map(str, args)], capture_output=True, text=True, env=env, timeout=240)


def _inputs(folder: Path) -> tuple[np.ndarray, np.ndarray, Path, Path]:
    rng = np.random.default_rng(18)
    q, c = rng.standard_normal((70, 9)), rng.standard_normal((130, 9))
    write_array(folder / "q.zarr", q, (20, 9))
    write_array(folder / "c.zarr", c, (30, 9))
    return q, c, folder / "q.zarr", folder / "c.zarr"


def test_topk_prints_its_plan_progress_and_summary_and_writes_the_group(client, tmp_path: Path, capsys):
    q, c, qp, cp = _inputs(tmp_path)
    out = tmp_path / "top.zarr"
    assert main(["topk", str(qp), str(cp), "4", str(out), "--plan", "--memory", "1GB"]) == 0
    planned = capsys.readouterr().out
    assert "never stored" in planned and "storing S would write" in planned and "merge task" in planned
    assert not out.exists()
    run = blockdist("topk", qp, cp, 4, out, "--scheduler", client.scheduler.address)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("top-k (70×4)") and any(line.startswith("dashboard     ") for line in lines)
    assert any(line.startswith("progress      ") for line in lines)
    assert "wrote         70×4 indices (int64) and scores (float64) to" in run.stdout
    assert any(line.startswith(("wall time", "bytes read", "bytes written", "not stored")) for line in lines)
    s = q @ c.T
    want = np.argsort(-s, axis=1, kind="stable")[:, :4]
    group = zarr.open_group(out, mode="r")
    np.testing.assert_array_equal(group["indices"][:], want)
    np.testing.assert_allclose(group["scores"][:], np.take_along_axis(s, want, 1), rtol=1e-12)
    assert group.attrs["blockdist-workload"]["status"] == "complete"
    assert main(["info", str(out)]) == 0  # the group's workload record, as for an SVD's output
    shown = capsys.readouterr().out
    assert "workload      topk" in shown and "status        complete: 70 of 70 rows done" in shown
    assert main(["topk", str(qp), str(cp), "4", str(out), "--scheduler", client.scheduler.address]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err


def test_bad_input_is_one_or_two_lines_and_exit_2(tmp_path: Path, capsys):
    _, _, qp, cp = _inputs(tmp_path)
    write_array(tmp_path / "d8.zarr", np.ones((5, 8)), (5, 8))
    out = tmp_path / "top.zarr"
    result = blockdist("topk", qp, cp, 131, out)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == ("blockdist topk: error: k = 131 but the corpus has only 130 rows; k must be "
                             "between 1 "
                             "and 130\n")
    for args, words in (
        ((qp, cp, 0, out), "k = 0; k must be between 1 and 130"),
        ((qp, tmp_path / "d8.zarr", 2, out), "(size 8 is different from 9)"),
        ((qp, cp, 2, qp, "--overwrite"), "is the input"),
        ((qp, cp, 2, out, "--resume"), "resume is not supported"),
        ((qp, cp, "two", out), "invalid int value"),
    ):
        try:
            code = main(["topk", *map(str, args)])
        except SystemExit as error:  # argparse's own refusals
            code = error.code
        err = capsys.readouterr().err
        assert code == 2, err
        assert words in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2
        assert err.startswith("blockdist topk: error: ") and "topk: k" not in err
    assert not out.exists()
