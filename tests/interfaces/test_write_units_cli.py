"""Issue 26 as it was reported: the exact commands a new user ran, through the real command
line (a subprocess starting its own local cluster), with the whole output compared with
numpy's product. Both used to exit 0 with 1,250,000 wrong elements: split-k bands (and, in
place, tiles) cut inside a shard, so two tasks rewrote one shard file and one's rows were lost.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from tests.oracle import assert_gemm, assert_product

pytestmark = [pytest.mark.slow]

BLOCKDIST = [sys.executable, "-m", "blockdist.cli"]


def blockdist(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BLOCKDIST, *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=300)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A 3000×2000 and B 2000×2500 float64 in chunks of 500², as zarr.create_array makes them."""
    folder = tmp_path_factory.mktemp("issue26")
    rng = np.random.default_rng(26)
    a, b = rng.standard_normal((3000, 2000)), rng.standard_normal((2000, 2500))
    zarr.create_array(store=str(folder / "a.zarr"), data=a, chunks=(500, 500))
    zarr.create_array(store=str(folder / "b.zarr"), data=b, chunks=(500, 500))
    return folder, a, b


@pytest.mark.parametrize("verify", [[], ["--verify"]])
def test_the_reported_sharded_output_is_the_whole_product(inputs, tmp_path: Path, verify: list[str]):
    folder, a, b = inputs
    out = tmp_path / "fmt.zarr"
    result = blockdist("matmul", str(folder / "a.zarr"), str(folder / "b.zarr"), str(out), "--out-chunks",
                       "250,250", "--out-shards", "1000,1250", "--out-codec", "zstd", *verify, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "write unit: shards 1000×1250 (4×5 chunks of 250×250)" in result.stdout
    stored = zarr.open_array(out)
    assert stored.shards == (1000, 1250) and stored.chunks == (250, 250)
    assert_product(stored[:], a, b)
    if verify:
        assert "verified: C = A·B holds" in result.stdout


def test_the_reported_in_place_update_of_a_sharded_c0_is_whole(inputs, tmp_path: Path):
    folder, a, b = inputs
    c0 = np.random.default_rng(260).standard_normal((3000, 2500))
    zarr.create_array(store=str(tmp_path / "c0.zarr"), data=c0, chunks=(250, 250), shards=(1000, 1250))
    result = blockdist("matmul", str(folder / "a.zarr"), str(folder / "b.zarr"), "c0.zarr", "--alpha", "2",
                       "--beta", "-0.5", "--c", "c0.zarr", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "write unit: shards 1000×1250 (4×5 chunks of 250×250)" in result.stdout
    assert_gemm(zarr.open_array(tmp_path / "c0.zarr")[:], a, b, 2.0, -0.5, c0)
