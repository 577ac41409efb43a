"""On CI (CI=true) nothing may be skipped: a missing prerequisite fails, and so does a run with a skip."""

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
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
                           str(tmp_path / "test_probe.py")], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=120)


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
