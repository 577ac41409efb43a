"""The blockdist command line, run as a subprocess the way a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from tests.conftest import assert_product, tree_digest, write_array

pytestmark = [pytest.mark.slow]

BLOCKDIST = [sys.executable, "-m", "blockdist.cli"]


def blockdist(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([*BLOCKDIST, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=240)


@pytest.fixture(scope="module")
def scheduler(client):
    return client.scheduler.address


@pytest.mark.parametrize("command", [[], ["matmul"], ["plan"], ["random"], ["demo"]])
def test_help_on_every_command(command):
    result = blockdist(*command, "--help")
    assert result.returncode == 0
    assert "usage: blockdist" in result.stdout


def test_the_console_script_is_installed():
    import shutil

    script = shutil.which("blockdist")
    assert script, "pip install -e . puts a blockdist command on the PATH"
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "matmul" in result.stdout


@pytest.mark.parametrize(
    ("shape_a", "shape_b", "chunks_a", "chunks_b", "dtype_a", "dtype_b"),
    [
        ("300,200", "200,100", "64,64", "50,30", "float64", "float64"),
        ("97,1", "1,89", "13,1", "1,89", "float32", "float32"),
        ("1,400", "400,1", "1,128", "100,1", "complex64", "complex128"),
        ("150,120", "120,90", "150,120", "7,9", "float32", "float64"),
    ],
)
def test_random_then_matmul_matches_numpy(tmp_path, scheduler, shape_a, shape_b, chunks_a, chunks_b,
                                           dtype_a, dtype_b):
    for name, shape, chunks, dtype, seed in (("a", shape_a, chunks_a, dtype_a, "1"),
                                             ("b", shape_b, chunks_b, dtype_b, "2")):
        made = blockdist("random", str(tmp_path / f"{name}.zarr"), "--shape", shape, "--chunks", chunks,
                         "--dtype", dtype, "--seed", seed)
        assert made.returncode == 0, made.stderr
        assert "wrote" in made.stdout
    result = blockdist("matmul", str(tmp_path / "a.zarr"), str(tmp_path / "b.zarr"), str(tmp_path / "c.zarr"),
                       "--scheduler", scheduler)
    assert result.returncode == 0, result.stderr
    for figure in ("wall time", "FLOP/s", "bytes read", "bytes written", "dashboard"):
        assert figure in result.stdout
    a = zarr.open_array(str(tmp_path / "a.zarr"))[:]
    b = zarr.open_array(str(tmp_path / "b.zarr"))[:]
    assert a.dtype == dtype_a and b.dtype == dtype_b
    assert a.shape == tuple(map(int, shape_a.split(",")))
    assert_product(zarr.open_array(str(tmp_path / "c.zarr"))[:], a, b)


def test_random_is_reproducible_and_chunked(tmp_path):
    for name in ("x", "y"):
        assert blockdist("random", str(tmp_path / f"{name}.zarr"), "--shape", "100,70", "--chunks", "30,40",
                         "--seed", "9").returncode == 0
    x, y = zarr.open_array(str(tmp_path / "x.zarr")), zarr.open_array(str(tmp_path / "y.zarr"))
    assert x.chunks == (30, 40)
    np.testing.assert_array_equal(x[:], y[:])
    assert 0.5 < x[:].std() < 1.5


def test_matmul_on_a_local_cluster_it_starts_itself(tmp_path):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((120, 80)), rng.standard_normal((80, 60))
    write_array(tmp_path / "a.zarr", a, (32, 32))
    write_array(tmp_path / "b.zarr", b, (32, 32))
    result = blockdist("matmul", "a.zarr", "b.zarr", "c.zarr", "--workers", "2", "--threads", "1",
                       "--memory", "1GB", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "2 worker(s) × 1 thread(s)" in result.stdout
    assert_product(zarr.open_array(str(tmp_path / "c.zarr"))[:], a, b)


def test_plan_prints_numbers_that_add_up(tmp_path):
    rng = np.random.default_rng(2)
    write_array(tmp_path / "a.zarr", rng.standard_normal((512, 384)), (128, 128))
    write_array(tmp_path / "b.zarr", rng.standard_normal((384, 256)), (128, 128))
    result = blockdist("plan", "a.zarr", "b.zarr", "--workers", "2", "--memory", "2GB", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "strategy" in text and "tiles" in text and "lower bound" in text
    assert "101 MFLOP" in text  # 2·512·256·384 = 100.7 MFLOP
    assert not (tmp_path / "c.zarr").exists()


def test_demo_runs_and_checks_its_result():
    result = blockdist("demo", "--size", "600", "--chunks", "128", "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert "— ok" in result.stdout
    folder = next(line for line in result.stdout.splitlines() if line.startswith("writing")).split(" to ")[-1]
    assert not Path(folder).exists()


# --- bad input: exit status 2, a message naming the problem, nothing written -------------------
@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(3)
    write_array(tmp_path / "a.zarr", rng.standard_normal((60, 40)), (16, 16))
    write_array(tmp_path / "b.zarr", rng.standard_normal((40, 30)), (16, 16))
    write_array(tmp_path / "wrong.zarr", rng.standard_normal((41, 30)), (16, 16))
    zarr.create_array(store=str(tmp_path / "vector.zarr"), data=np.ones(41), chunks=(16,))
    zarr.create_array(store=str(tmp_path / "cube.zarr"), data=np.ones((40, 3, 3)), chunks=(16, 3, 3))
    zarr.create_array(store=str(tmp_path / "text.zarr"), shape=(40, 30), dtype="bool", chunks=(16, 16))
    zarr.create_array(store=str(tmp_path / "big.zarr"), shape=(8192, 8192), dtype="float64",
                      chunks=(4096, 4096), compressors=None)
    (tmp_path / "not-an-array").mkdir()
    (tmp_path / "not-an-array" / "notes.txt").write_text("mine")
    return tmp_path


def refused(result, *words):
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == "" or "Traceback" not in result.stdout
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, (word, result.stderr)


BAD = [
    (["wrong.zarr"], ["inner dimensions differ", "60×40", "41×30"]),
    (["vector.zarr"], ["matmul: Input operand 1 has a mismatch in its core dimension 0", "size 41 is different from 40"]),
    (["cube.zarr"], ["B has 3 dimension"]),
    (["missing.zarr"], ["missing.zarr", "no such file"]),
    (["not-an-array"], ["not-an-array", "not a Zarr array"]),
    (["text.zarr"], ["text.zarr", "bool", "not numeric"]),
]


@pytest.mark.parametrize(("b", "words"), BAD)
def test_bad_inputs_are_refused_before_anything_runs(inputs, b, words):
    before = tree_digest(inputs)
    result = blockdist("matmul", "a.zarr", *b, "c.zarr", "--workers", "1", cwd=inputs)
    refused(result, *words)
    assert not (inputs / "c.zarr").exists()
    assert tree_digest(inputs) == before


def test_an_existing_output_needs_overwrite(inputs):
    write_array(inputs / "c.zarr", np.zeros((60, 30)), (16, 16))
    before = tree_digest(inputs)
    refused(blockdist("matmul", "a.zarr", "b.zarr", "c.zarr", cwd=inputs), "already exists", "--overwrite")
    assert tree_digest(inputs) == before


def test_overwrite_never_replaces_something_that_is_not_an_array(inputs):
    before = tree_digest(inputs)
    refused(blockdist("matmul", "a.zarr", "b.zarr", "not-an-array", "--overwrite", cwd=inputs),
            "not a Zarr array", "will not replace")
    assert (inputs / "not-an-array" / "notes.txt").read_text() == "mine"
    assert tree_digest(inputs) == before


@pytest.mark.parametrize("out", ["a.zarr", "b.zarr", "./a.zarr/", "a.zarr/inner"])
def test_the_output_may_not_be_an_input(inputs, out):
    before = tree_digest(inputs)
    refused(blockdist("matmul", "a.zarr", "b.zarr", out, "--overwrite", cwd=inputs), "is the input")
    assert tree_digest(inputs) == before


def test_an_output_that_cannot_be_created_is_refused(inputs):
    (inputs / "a-file").write_text("mine")
    before = tree_digest(inputs)
    refused(blockdist("matmul", "a.zarr", "b.zarr", "a-file/c.zarr", "--workers", "1", cwd=inputs),
            "cannot create the output", "is a file")
    assert tree_digest(inputs) == before


def test_a_budget_too_small_for_one_chunk_says_how_much_is_needed(inputs):
    before = tree_digest(inputs)
    result = blockdist("matmul", "big.zarr", "big.zarr", "c.zarr", "--memory", "500MB", "--workers", "1",
                       cwd=inputs)
    refused(result, "too small", "4096×4096", "Give at least")
    assert not (inputs / "c.zarr").exists()
    assert tree_digest(inputs) == before


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["random", "r.zarr", "--shape", "10", "--chunks", "5,5"], ["--shape", "two integers"]),
        (["random", "r.zarr", "--shape", "10,0", "--chunks", "5,5"], ["at least 1"]),
        (["random", "r.zarr", "--shape", "10,10", "--chunks", "5,5", "--dtype", "str"], ["not numeric"]),
        (["random", "r.zarr", "--shape", "10,10", "--chunks", "5,5", "--dtype", "nonsense"], ["not a numpy dtype"]),
        (["matmul", "a.zarr", "b.zarr", "c.zarr", "--memory", "lots"], ["--memory", "cannot read"]),
        (["matmul", "a.zarr", "b.zarr", "c.zarr", "--workers", "0"], ["--workers", "at least 1"]),
        (["matmul", "a.zarr", "b.zarr", "c.zarr", "--scheduler", "tcp://127.0.0.1:1", "--workers", "2"],
         ["cannot be given with"]),
        (["matmul", "a.zarr"], ["the following arguments are required"]),
        (["frobnicate"], ["invalid choice"]),
    ],
)
def test_usage_errors_exit_2(inputs, args, words):
    before = tree_digest(inputs)
    refused(blockdist(*args, cwd=inputs), *words)
    assert tree_digest(inputs) == before
    assert not (inputs / "r.zarr").exists()


def test_plan_from_sizes_alone_for_a_cluster_we_do_not_have():
    result = blockdist("plan", "--shape", "1000000,1000000,1000000", "--workers", "1024", "--memory", "64GB")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "1024 worker(s)" in text and "per worker" in text and "parallel lower bound" in text
    assert "2.00 EFLOP" in text
    refused(blockdist("plan"), "--shape")
    refused(blockdist("plan", "--shape", "1,2"), "three integers")
