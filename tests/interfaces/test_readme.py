"""Every example in the README runs as written: each ```python block as a file, the command-line
block line by line in a shell (the commented scheduler line aside), in an empty folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LONG_TIMEOUT

README = Path(__file__).parents[2] / "README.md"
BLOCKS = re.findall(r"```(python|bash)\n(.*?)```", README.read_text(), flags=re.S)

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def test_the_readme_has_examples_of_both_kinds():
    kinds = [kind for kind, _ in BLOCKS]
    assert kinds.count("python") >= 2 and kinds.count("bash") >= 2


@pytest.mark.timeout(LONG_TIMEOUT)
@pytest.mark.parametrize("number", [i for i, (kind, _) in enumerate(BLOCKS) if kind == "python"])
def test_python_example_runs(tmp_path, number):
    script = tmp_path / "example.py"
    script.write_text(BLOCKS[number][1])
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.timeout(LONG_TIMEOUT)
def test_command_line_example_runs(tmp_path):
    [commands] = [text for kind, text in BLOCKS if kind == "bash" and "blockdist random" in text]
    bin_folder = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_folder}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", commands], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "verified: C = A·B holds" in result.stdout
