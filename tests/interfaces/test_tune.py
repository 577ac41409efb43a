"""``blockdist tune`` measures and saves the planner's model; plans read it, and survive a bad one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LONG_TIMEOUT

pytestmark = [pytest.mark.slow]

PLAN = ["plan", "--shape", "6144,6144,6144", "--chunks", "512", "--workers", "2", "--memory", "4GB"]


def blockdist(*args: str, tune_file: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BLOCKDIST_TUNE_FILE": str(tune_file)}
    return subprocess.run([sys.executable, "-m", "blockdist.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.mark.timeout(LONG_TIMEOUT)
def test_tune_measures_saves_and_shows_the_model(tmp_path):
    path = tmp_path / "tune.json"
    result = blockdist("tune", "--quick", "--no-io", "--output", str(path), tune_file=tmp_path / "unused.json")
    assert result.returncode == 0, result.stderr
    assert f"saved to {path}" in result.stdout
    document = json.loads(path.read_text())
    model = document["model"]
    assert model["kernel_rows"] in {c["rows"] for c in document["sweep"]}
    assert model["panel_depth"] in {c["k"] for c in document["sweep"]} and model["flops_per_thread"] > 1e8
    # the rate plans use is one thread's inside blockdist's tasks, with every core busy
    assert model["flops_per_thread"] == document["in_tasks"]["flops_per_thread"]
    assert document["in_tasks"]["workers"] == os.cpu_count() and document["flops_per_thread_busy_cores"] > 1e8
    shown = blockdist("tune", "--show", "--output", str(path), tune_file=path)
    assert shown.returncode == 0 and json.loads(shown.stdout.split("\n", 1)[1])["kernel_rows"] == model["kernel_rows"]


def test_plans_use_the_tune_file(tmp_path):
    path = tmp_path / "tune.json"
    default = blockdist(*PLAN, tune_file=path)  # no file yet: the built-in model
    assert default.returncode == 0 and "k-panels 512 (A) / 512 (B)" in default.stdout
    path.write_text(json.dumps({"version": 1, "model": {"panel_depth": 1536}}))
    tuned = blockdist(*PLAN, tune_file=path)
    assert tuned.returncode == 0, tuned.stderr
    assert "k-panels 1536 (A) / 1536 (B)" in tuned.stdout


@pytest.mark.parametrize("content", ["not json", '{"model": {"panel_depth": -3}}', '{"model": "fast"}'])
def test_a_bad_tune_file_warns_and_plans_with_the_defaults(tmp_path, content):
    path = tmp_path / "tune.json"
    path.write_text(content)
    result = blockdist(*PLAN, tune_file=path)
    assert result.returncode == 0, result.stderr
    assert "ignoring the invalid tune file" in result.stderr and str(path) in result.stderr
    assert "k-panels 512 (A) / 512 (B)" in result.stdout
