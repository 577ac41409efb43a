"""Issue 27's commands, as a new user types them: inputs written with zarr's defaults — a
block-diagonal A whose zero blocks zarr did not store, and Zarr v2 arrays with v2's default
compressor — multiply without a flag; refusals are one line and exit 2, before any work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import zarr

from tests.oracle import assert_product

pytestmark = [pytest.mark.slow]

BLOCKDIST = [sys.executable, "-m", "blockdist.cli"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*BLOCKDIST, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ})


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def block_diagonal(n: int, block: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((n, n))
    for i in range(0, n, block):
        x[i : i + block, i : i + block] = rng.standard_normal((block, block))
    return x


def test_a_block_diagonal_matrix_written_by_zarr_multiplies_without_a_flag(tmp_path: Path):
    a, b = block_diagonal(1024, 128, 1), np.random.default_rng(2).standard_normal((1024, 1024))
    zarr.create_array(str(tmp_path / "a.zarr"), data=a, chunks=(128, 128))  # zarr's defaults: 8 of 64 chunks
    zarr.create_array(str(tmp_path / "b.zarr"), data=b, chunks=(128, 128))
    done = cli("matmul", "a.zarr", "b.zarr", "c.zarr", "--workers", "2", "--memory", "2GB", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "A: 8 of 64 chunks stored, the rest read as 0; B: all 64 chunks stored" in done.stdout
    assert "present block products only, 12.5% of them" in done.stdout
    read = next(line for line in done.stdout.splitlines() if line.startswith("bytes read"))
    assert "MiB" in read and float(read.split()[2]) < 2 * 8  # B once, a few of A's blocks: not A's zeros
    assert_product(zarr.open_array(str(tmp_path / "c.zarr"))[:], a, b)
    refused = cli("matmul", "a.zarr", "b.zarr", "d.zarr", "--require-all-chunks", cwd=tmp_path)
    assert refused.returncode == 2
    line = one_line(refused.stderr)
    assert "a.zarr: 8 of 64 chunks stored, the rest read as 0 (the first absent: c/0/1, c/0/2, c/0/3)" in line, line
    assert not (tmp_path / "d.zarr").exists()


def test_v2_arrays_with_zarrs_default_compressor_multiply_into_a_v3_output_in_as_codec(tmp_path: Path):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((300, 200)), rng.standard_normal((200, 250))
    for name, values in (("a.zarr", a), ("b.zarr", b)):
        z = zarr.create_array(str(tmp_path / name), shape=values.shape, chunks=(128, 128), dtype="float64",
                              zarr_format=2)
        z[:] = values
    assert isinstance(zarr.open_array(str(tmp_path / "a.zarr")).metadata.compressor, numcodecs.Zstd)
    done = cli("matmul", "a.zarr", "b.zarr", "c.zarr", "--workers", "2", "--memory", "2GB", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    c = zarr.open_array(str(tmp_path / "c.zarr"))
    assert c.metadata.zarr_format == 3 and [type(x).__name__ for x in c.compressors] == ["ZstdCodec"]
    assert_product(c[:], a, b)
    lz4 = zarr.create_array(str(tmp_path / "l.zarr"), shape=(300, 200), chunks=(128, 128), dtype="float64",
                            zarr_format=2, compressors=numcodecs.LZ4())
    lz4[:] = a
    refused = cli("matmul", "l.zarr", "b.zarr", "d.zarr", cwd=tmp_path)
    assert refused.returncode == 2
    line = one_line(refused.stderr)
    assert "A's compressor LZ4(acceleration=1) (Zarr v2) has no Zarr v3 codec" in line and "--out-codec" in line, line
    assert not (tmp_path / "d.zarr").exists()
