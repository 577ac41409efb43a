"""How the suite runs on CI: nothing may be skipped (CI=true: a missing prerequisite fails, and so does
a run with a skip), and a test that hangs fails at its timeout with the stack of where it hung."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
pytestmark = [pytest.mark.slow]
PROBE = '''
import pytest
from tests.conftest import require

def test_needs_a_tool():
    require(False, "a tool this machine lacks")

def test_skipped_by_hand():
    pytest.skip("for no reason")

def test_fine():
    assert True
'''


def run_probe(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != "CI"} | ({"CI": "true"} if ci else {})
    return run_pytest(tmp_path / "test_probe.py", env)


def run_pytest(test_file: Path, env: dict[str, str], *options: str) -> subprocess.CompletedProcess[str]:
    """The project's pytest configuration on one file, in one process (``-n 0``)."""
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-n", "0",
                           *options, str(test_file)], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)


def test_a_missing_prerequisite_fails_on_ci_and_skips_elsewhere(tmp_path):
    on_ci = run_probe(tmp_path, ci=True)
    assert on_ci.returncode == 1, on_ci.stdout
    assert "missing on this CI machine: a tool this machine lacks" in on_ci.stdout
    assert "CI=true: 1 test(s) skipped" in on_ci.stdout
    assert "derandomized" in on_ci.stdout
    elsewhere = run_probe(tmp_path, ci=False)
    assert elsewhere.returncode == 0, elsewhere.stdout
    assert "1 passed, 2 skipped" in elsewhere.stdout
    assert "replay with --hypothesis-seed=" in elsewhere.stdout


HANGS = '''
import threading

def wait_for_an_answer_that_never_comes():
    threading.Event().wait()

def test_that_hangs():
    wait_for_an_answer_that_never_comes()

def test_after_it():
    assert True
'''


def test_a_hanging_test_fails_at_its_timeout_showing_where_it_hung(tmp_path):
    """The per-test timeout (pyproject's ``timeout``) ends a hang with its stack; the run goes on."""
    (tmp_path / "test_hangs.py").write_text(HANGS)
    result = run_pytest(tmp_path / "test_hangs.py", dict(os.environ), "--timeout", "2")
    assert result.returncode == 1, result.stdout
    assert "Timeout (>2.0s) from pytest-timeout" in result.stdout, result.stdout
    assert "test_hangs.py:5: in wait_for_an_answer_that_never_comes" in result.stdout, result.stdout  # where
    assert "1 failed, 1 passed" in result.stdout, result.stdout


def test_the_configured_timeout_is_the_stated_default():
    import tomllib

    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert options["timeout"] == 120  # the README states it
    assert "--durations=15" in options["addopts"].split()  # the slowest tests show on every run
