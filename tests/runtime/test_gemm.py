"""The general product alpha·op(A)·op(B) + beta·C0, symmetric products, against numpy."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import blockdist
from blockdist.planning import WORKER_BASELINE
from tests.conftest import random_data, tree_digest, write_array
from tests.oracle import assert_gemm

SMALL = WORKER_BASELINE + 3 * 2**20  # a budget that forces several tiles on small matrices


def op(x: np.ndarray, transpose: bool) -> np.ndarray:
    return x.conj().T if transpose else x


def stored(x: np.ndarray, transpose: bool) -> np.ndarray:
    """What to store so that op(stored) is x."""
    return np.ascontiguousarray(x.conj().T if transpose else x)


DTYPES = ["float32", "float64", "complex64", "complex128"]


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=st.integers(1, 90), k=st.integers(1, 90), n=st.integers(1, 90),
    transposes=st.tuples(st.booleans(), st.booleans()),
    dtype=st.sampled_from(DTYPES),
    alpha=st.sampled_from([1.0, -2.5, 0.5]),
    beta=st.sampled_from([0.0, 1.0, -0.75]),
    chunks=st.tuples(*[st.integers(1, 40)] * 6),
    seed=st.integers(0, 2**31),
)
def test_every_combination_matches_numpy(client, m, k, n, transposes, dtype, alpha, beta, chunks, seed):
    rng = np.random.default_rng(seed)
    ta, tb = transposes
    a, b = random_data(rng, (m, k), dtype), random_data(rng, (k, n), dtype)
    c0 = random_data(rng, (m, n), "float64")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_array(root / "a.zarr", stored(a, ta), chunks[0:2])
        write_array(root / "b.zarr", stored(b, tb), chunks[2:4])
        write_array(root / "c0.zarr", c0, chunks[4:6])  # its own chunking
        out = blockdist.matmul(root / "a.zarr", root / "b.zarr", root / "c.zarr", client=client,
                               transpose_a=ta, transpose_b=tb, alpha=alpha, beta=beta,
                               c=root / "c0.zarr" if beta else None, memory=SMALL)
        assert_gemm(out[:], a, b, alpha, beta, c0)


@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_in_place_update_of_the_output(client, tmp_path, dtype):
    rng = np.random.default_rng(4)
    a, b = random_data(rng, (130, 70), dtype), random_data(rng, (70, 110), dtype)
    c0 = random_data(rng, (130, 110), dtype)
    write_array(tmp_path / "a.zarr", a, (32, 30))
    write_array(tmp_path / "b.zarr", b, (30, 25))
    write_array(tmp_path / "c.zarr", c0, (20, 45))  # chunks that the tiles must respect
    out = blockdist.matmul(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client,
                           alpha=2.0, beta=-1.0, c=tmp_path / "c.zarr", memory=SMALL)
    assert_gemm(out[:], a, b, 2.0, -1.0, c0)
    assert out.chunks == (20, 45)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zarr", "b.zarr", "c.zarr"]  # scratch removed
    manifest = json.loads((tmp_path / "c.zarr" / "zarr.json").read_text())["attributes"]["blockdist"]
    assert manifest["status"] == "complete" and manifest["operation"]["beta"] == "-1.0"


def test_an_in_place_tile_is_updated_once_however_often_its_task_runs(tmp_path):
    from blockdist.storage import locate
    from blockdist.worker.spec import Finish, OperandSpec, TileOutput, TileTask
    from blockdist.worker.tasks import multiply_tile

    rng = np.random.default_rng(5)
    a, b, c0 = (random_data(rng, shape, "float64") for shape in ((40, 30), (30, 20), (40, 20)))
    write_array(tmp_path / "a.zarr", a, (20, 30))
    write_array(tmp_path / "b.zarr", b, (30, 20))
    write_array(tmp_path / "c.zarr", c0, (20, 20))
    zarr.create_array(store=str(tmp_path / "stage.zarr"), shape=(40, 20), chunks=(20, 20), dtype="float64")
    zarr.create_array(store=str(tmp_path / "markers.zarr"), shape=(2,), chunks=(1,), dtype="int8")
    finish = Finish(alpha=1.0, beta=2.0, stage=locate(tmp_path / "stage.zarr"),
                    markers=locate(tmp_path / "markers.zarr"))
    task = TileTask(rows=(0, 20), cols=(0, 20), ks=(0, 30), a=OperandSpec(locate(tmp_path / "a.zarr"), 30, 30),
                    b=OperandSpec(locate(tmp_path / "b.zarr"), 30, 30), kernel_rows=64, dtype="float64")
    output = TileOutput(locate(tmp_path / "c.zarr"), 0, (0, 20), (0, 20), finish)
    multiply_tile(task, output)
    multiply_tile(task, output)  # a retry after success: nothing changes
    markers = zarr.open_array(str(tmp_path / "markers.zarr"), mode="r+")
    markers[0] = 1  # as if an earlier try died after staging, before copying
    zarr.open_array(str(tmp_path / "c.zarr"), mode="r+")[0:20, 0:20] = -999.0  # half-updated output
    multiply_tile(task, output)
    got = zarr.open_array(str(tmp_path / "c.zarr"))[:]
    np.testing.assert_allclose(got[:20], a[:20] @ b + 2.0 * c0[:20], rtol=1e-12)
    np.testing.assert_array_equal(got[20:], c0[20:])  # the other tile was never touched


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "complex128"])
@pytest.mark.parametrize("transpose", [False, True])
def test_gram_computes_the_upper_tiles_and_mirrors_them(client, tmp_path, dtype, transpose):
    rng = np.random.default_rng(6)
    x = random_data(rng, (150, 90) if not transpose else (90, 150), dtype)
    write_array(tmp_path / "x.zarr", x, (25, 25))
    job = blockdist.submit_gram(tmp_path / "x.zarr", tmp_path / "g.zarr", transpose=transpose, client=client,
                         memory=WORKER_BASELINE + 150_000, verify=True)
    out = job.result()
    expected = x.conj().T @ x if transpose else x @ x.conj().T
    rows = job.plan.grid.shape[0]
    assert rows > 1 and job.plan.tiles == rows * (rows + 1) // 2
    assert job.plan.flops_computed < job.plan.flops
    assert job.stats.tasks == job.plan.tiles
    assert job.verification.ok
    assert_gemm(out[:], op(x, transpose), op(x, not transpose), 1.0, 0.0, None)
    np.testing.assert_array_equal(out[:], out[:].conj().T)  # exactly symmetric (Hermitian)
    assert out.dtype == expected.dtype


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "blockdist.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.slow
def test_the_cli_runs_a_general_product(client, tmp_path):
    rng = np.random.default_rng(7)
    a, b, c0 = random_data(rng, (50, 40), "float64"), random_data(rng, (60, 50), "float64"), \
        random_data(rng, (40, 60), "float64")
    write_array(tmp_path / "a.zarr", a, (16, 16))
    write_array(tmp_path / "b.zarr", b, (16, 16))
    write_array(tmp_path / "c0.zarr", c0, (16, 16))
    result = cli("matmul", "a.zarr", "b.zarr", "c.zarr", "--transpose-a", "--transpose-b", "--alpha", "3",
                 "--beta", "-2", "--c", "c0.zarr", "--scheduler", client.scheduler.address, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_gemm(zarr.open_array(str(tmp_path / "c.zarr"))[:], a.T, b.T, 3.0, -2.0, c0)
    result = cli("gram", "a.zarr", "g.zarr", "--transpose", "--scheduler", client.scheduler.address, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_gemm(zarr.open_array(str(tmp_path / "g.zarr"))[:], a.T, a, 1.0, 0.0, None)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--transpose-a"], ["inner dimensions differ", "Aᵀ is 40×50", "B is 40×30"]),
        (["--beta", "2"], ["beta is 2.0 but no C0"]),
        (["--beta", "1", "--c", "wrong.zarr"], ["C0", "is 49×30", "50×30"]),
        (["--beta", "1", "--c", "f32.zarr"], []),  # a separate float32 C0 is fine
    ],
)
def test_bad_general_products_are_refused_before_anything_runs(client, tmp_path, args, words):
    rng = np.random.default_rng(8)
    write_array(tmp_path / "a.zarr", random_data(rng, (50, 40), "float64"), (16, 16))
    write_array(tmp_path / "b.zarr", random_data(rng, (40, 30), "float64"), (16, 16))
    write_array(tmp_path / "wrong.zarr", random_data(rng, (49, 30), "float64"), (16, 16))
    write_array(tmp_path / "f32.zarr", random_data(rng, (50, 30), "float32"), (16, 16))
    before = tree_digest(tmp_path)
    result = cli("matmul", "a.zarr", "b.zarr", "c.zarr", *args, "--scheduler", client.scheduler.address,
                 cwd=tmp_path)
    if not words:
        assert result.returncode == 0, result.stderr
        c0 = zarr.open_array(str(tmp_path / "f32.zarr"))[:]
        a, b = (zarr.open_array(str(tmp_path / name))[:] for name in ("a.zarr", "b.zarr"))
        assert_gemm(zarr.open_array(str(tmp_path / "c.zarr"))[:], a, b, 1.0, 1.0, c0)
        return
    assert result.returncode == 2, result.stderr
    for word in words:
        assert word in result.stderr
    assert tree_digest(tmp_path) == before


@pytest.mark.slow
def test_an_in_place_update_needs_the_results_dtype(client, tmp_path):
    rng = np.random.default_rng(9)
    write_array(tmp_path / "a.zarr", random_data(rng, (50, 40), "float64"), (16, 16))
    write_array(tmp_path / "b.zarr", random_data(rng, (40, 30), "float64"), (16, 16))
    write_array(tmp_path / "c.zarr", random_data(rng, (50, 30), "float32"), (16, 16))
    before = tree_digest(tmp_path)
    result = cli("matmul", "a.zarr", "b.zarr", "c.zarr", "--beta", "1", "--c", "c.zarr",
                 "--scheduler", client.scheduler.address, cwd=tmp_path)
    assert result.returncode == 2 and "updated in place but has dtype float32" in result.stderr
    assert tree_digest(tmp_path) == before
