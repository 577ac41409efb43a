"""Randomized SVD and PCA (issue 18, item 3): accurate against numpy on a low-rank-plus-noise
matrix, A streamed by products and never changed, PCA centred without a centred copy, sketches
removed, the output marked complete only when written, bad input refused before any work.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

import blockdist
from blockdist.errors import DtypeError, IncompleteOutputError, InputError, OutputExistsError, ShapeError
from blockdist.runtime.workload import WORKLOAD_KEY, unfinished
from tests.conftest import tree_digest

BLOCKDIST = [sys.executable, "-m", "blockdist.cli"]
M, N, TRUE_RANK = 700, 260, 6


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    """Low rank plus noise, and an offset (so that centring matters)."""
    folder = tmp_path_factory.mktemp("svd")
    rng = np.random.default_rng(3)
    signal = (rng.standard_normal((M, TRUE_RANK)) * np.geomspace(50, 5, TRUE_RANK)) @ rng.standard_normal((TRUE_RANK, N))
    values = signal + 0.05 * rng.standard_normal((M, N)) + rng.standard_normal(N) * 4
    zarr.create_array(store=str(folder / "a.zarr"), data=values, chunks=(128, 100))
    return folder, values


def _sibling_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_the_randomized_svd_matches_numpy(client, matrix, tmp_path: Path):
    folder, a = matrix
    before = tree_digest(folder / "a.zarr")
    rank = 4
    u, s, vt = blockdist.svd(folder / "a.zarr", rank, out=tmp_path / "u.zarr", seed=7, client=client)
    exact_u, exact_s, exact_vt = np.linalg.svd(a, full_matrices=False)
    np.testing.assert_allclose(s, exact_s[:rank], rtol=1e-6)
    u = u[:]
    assert u.shape == (M, rank) and vt.shape == (rank, N)
    np.testing.assert_allclose(u.T @ u, np.eye(rank), atol=1e-10)
    np.testing.assert_allclose(vt @ vt.T, np.eye(rank), atol=1e-10)
    # the same subspaces as numpy's (each component up to its sign)
    np.testing.assert_allclose(np.abs(np.sum(u * exact_u[:, :rank], axis=0)), 1, atol=1e-6)
    np.testing.assert_allclose(np.abs(np.sum(vt * exact_vt[:rank], axis=1)), 1, atol=1e-6)
    best = np.linalg.norm(a - (exact_u[:, :rank] * exact_s[:rank]) @ exact_vt[:rank])
    assert np.linalg.norm(a - (u * s) @ vt) <= best * (1 + 1e-8)
    assert tree_digest(folder / "a.zarr") == before
    assert _sibling_names(tmp_path) == ["u.zarr"]  # the sketches are gone
    record = zarr.open_array(tmp_path / "u.zarr").attrs.asdict()[WORKLOAD_KEY]
    assert record["status"] == "complete" and record["workload"] == "svd"
    assert record["parameters"] == {"rank": rank, "oversample": 10, "power_iters": 2, "seed": 7}
    assert record["progress"] == {"done": 6, "total": 6, "unit": "passes"}
    np.testing.assert_allclose(record["results"]["singular_values"], s)
    np.testing.assert_array_equal(blockdist.open(tmp_path / "u.zarr").array[:], u)


def test_pca_centres_without_a_centred_copy(client, matrix, tmp_path: Path):
    folder, a = matrix
    result = blockdist.pca(folder / "a.zarr", 3, out=tmp_path / "scores.zarr", seed=1, power_iters=1, client=client)
    centred = a - a.mean(axis=0)
    _, exact_s, exact_vt = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(result.mean, a.mean(axis=0), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(result.singular_values, exact_s[:3], rtol=1e-6)
    variance = exact_s**2 / (M - 1)
    np.testing.assert_allclose(result.explained_variance, variance[:3], rtol=1e-6)
    np.testing.assert_allclose(result.explained_variance_ratio, variance[:3] / variance.sum(), rtol=1e-6)
    np.testing.assert_allclose(np.abs(np.sum(result.components * exact_vt[:3], axis=1)), 1, atol=1e-6)
    # the stored scores are the centred rows in the components' coordinates
    np.testing.assert_allclose(result.scores[:], centred @ result.components.T, rtol=1e-8, atol=1e-8)
    assert _sibling_names(tmp_path) == ["scores.zarr"]


def test_bad_requests_are_refused_before_any_work(matrix, tmp_path: Path):
    folder, a = matrix
    out = tmp_path / "u.zarr"
    with pytest.raises(InputError, match=r"rank = 260 but A is 700×260; it must be a whole number from 1 to 259"):
        blockdist.svd(folder / "a.zarr", N, out=out)
    with pytest.raises(InputError, match="n_components = 0"):
        blockdist.pca(folder / "a.zarr", 0, out=out)
    with pytest.raises(InputError, match="power_iters must be a whole number of at least 0, got -1"):
        blockdist.svd(folder / "a.zarr", 2, out=out, power_iters=-1)
    with pytest.raises(InputError, match=r"seed must be a whole number of at least 0 .*, got 'x'"):
        blockdist.svd(folder / "a.zarr", 2, out=out, seed="x")
    zarr.create_array(store=str(tmp_path / "v.zarr"), data=np.ones(5), chunks=(5,))
    with pytest.raises(ShapeError, match="it takes a 2-D matrix"):
        blockdist.svd(tmp_path / "v.zarr", 1, out=out)
    zarr.create_array(store=str(tmp_path / "c.zarr"), data=np.ones((6, 5), dtype="c16"), chunks=(3, 3))
    with pytest.raises(InputError, match="complex"):
        blockdist.svd(tmp_path / "c.zarr", 2, out=out)
    zarr.create_array(store=str(tmp_path / "taken.zarr"), data=np.zeros((3, 3)), chunks=(3, 3))
    with pytest.raises(OutputExistsError, match="already exists"):
        blockdist.svd(folder / "a.zarr", 2, out=tmp_path / "taken.zarr")
    with pytest.raises(DtypeError):
        zarr.create_array(store=str(tmp_path / "b.zarr"), data=np.ones((4, 4), dtype=bool), chunks=(2, 2))
        blockdist.svd(tmp_path / "b.zarr", 2, out=out)
    assert not out.exists() and not list(tmp_path.glob(".*blockdist-svd"))


def test_an_unfinished_output_is_never_read_as_done(tmp_path: Path):
    marker = {WORKLOAD_KEY: {"kind": "svd", "status": "running"}}  # as blockdist 0.2 wrote it
    assert "unfinished blockdist svd (running)" in unfinished(marker)
    assert unfinished({WORKLOAD_KEY: {"kind": "svd", "status": "complete"}}) is None
    zarr.create_array(store=str(tmp_path / "u.zarr"), shape=(4, 2), chunks=(4, 2), dtype="f8", attributes=marker)
    with pytest.raises(IncompleteOutputError, match="unfinished blockdist svd"):
        blockdist.open(tmp_path / "u.zarr")


@pytest.mark.slow
def test_the_cli_runs_an_svd_and_plans_a_pca(matrix, tmp_path: Path):
    folder, a = matrix
    planned = subprocess.run([*BLOCKDIST, "pca", str(folder / "a.zarr"), "3", str(tmp_path / "p.zarr"), "--plan"],
                             capture_output=True, text=True, timeout=120)
    assert planned.returncode == 0, planned.stderr
    assert "7 over A" in planned.stdout and "column means" in planned.stdout and not (tmp_path / "p.zarr").exists()
    run = subprocess.run([*BLOCKDIST, "svd", str(folder / "a.zarr"), "2", str(tmp_path / "u.zarr"), "--vt",
                          str(tmp_path / "vt.zarr"), "--seed", "5", "--power-iters", "1", "--workers", "1"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("step          ") == 7 and "singular values" in run.stdout
    exact = np.linalg.svd(a, compute_uv=False)
    u, vt = zarr.open_array(tmp_path / "u.zarr")[:], zarr.open_array(tmp_path / "vt.zarr")[:]
    s = np.array(zarr.open_array(tmp_path / "u.zarr").attrs[WORKLOAD_KEY]["results"]["singular_values"])
    np.testing.assert_allclose(s, exact[:2], rtol=1e-6)
    np.testing.assert_allclose(np.linalg.svd((u * s) @ vt, compute_uv=False)[:2], exact[:2], rtol=1e-6)
    info = subprocess.run([*BLOCKDIST, "info", str(tmp_path / "u.zarr")], capture_output=True, text=True, timeout=60)
    assert info.returncode == 0 and "workload      svd" in info.stdout and "status        complete" in info.stdout
    bad = subprocess.run([*BLOCKDIST, "svd", str(folder / "a.zarr"), "300", str(tmp_path / "x.zarr")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert "rank = 300 but A is 700×260" in bad.stderr and not (tmp_path / "x.zarr").exists()


@pytest.mark.s3
def test_an_svd_of_a_matrix_on_object_storage_keeps_its_sketches_there(client, matrix):
    from blockdist.storage import locate
    from tests.storage.s3_support import MotoS3, storage_options

    _, a = matrix
    with MotoS3() as server:
        server.create_bucket("svd")
        options = storage_options(server.endpoint)
        zarr.create_array(locate("s3://svd/a.zarr", storage_options=options).store, data=a, chunks=(256, 130))
        seen: list[str] = []
        from blockdist.planning.sketch import SketchParameters
        from blockdist.runtime.request import Options
        from blockdist.runtime.svd import run_sketch

        def step(label, job):
            seen.extend(key for key in server.keys("svd") if ".u.zarr.blockdist-svd/" in key)

        result = run_sketch("s3://svd/a.zarr", "s3://svd/out/u.zarr",
                            SketchParameters("svd", 3, power_iters=1, seed=2),
                            Options(client=client, storage_options=options), on_step=step)
        np.testing.assert_allclose(result.s, np.linalg.svd(a, compute_uv=False)[:3], rtol=1e-6)
        assert seen, "the sketches were on S3, beside the output"
        assert not [key for key in server.keys("svd") if "blockdist-svd" in key]
        u = zarr.open_array(locate("s3://svd/out/u.zarr", storage_options=options).store)[:]
        np.testing.assert_allclose(u.T @ u, np.eye(3), atol=1e-10)
