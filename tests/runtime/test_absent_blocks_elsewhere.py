"""Zero blocks cost nothing outside the product's own tasks too: ``blockdist verify``, PCA's
column means, a kept A's randomized SVD and a chain's order, on inputs written with zarr's
defaults (chunks of zeros not stored), each against numpy whole — and the absent chunks not
asked of storage (the tasks' own counts), where the fill value is 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

import blockdist
from blockdist.checks.freivalds import verify_product
from blockdist.planning import MachineModel
from blockdist.planning.sketch import SketchParameters
from blockdist.runtime.chain import multi_dot
from blockdist.runtime.request import Options
from blockdist.runtime.svd import run_sketch
from blockdist.runtime.svd_prepare import stat_blocks
from blockdist.storage import locate
from blockdist.worker.kept import load_rows
from blockdist.worker.rowbands import column_stats
from tests.conftest import block_diagonal_values, random_data, write_array


# --- blockdist verify ----------------------------------------------------------------------------
def _verify_inputs(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    a = block_diagonal_values(96, 16, 1)  # 6 of 36 chunks stored
    b = random_data(np.random.default_rng(2), (96, 64), "float64")
    b[32:48] = 0  # a block-row of B not stored: A's stored block (2, 2) meets nothing
    b[:16, 48:] = 0
    zarr.create_array(str(folder / "a.zarr"), data=a, chunks=(16, 16))
    zarr.create_array(str(folder / "b.zarr"), data=b, chunks=(16, 16))
    return a, b


def test_verify_reads_and_multiplies_only_stored_blocks_and_still_names_a_wrong_tile(client, tmp_path):
    a, b = _verify_inputs(tmp_path)
    c = a @ b
    write_array(tmp_path / "c.zarr", c, (16, 16))
    paths = [tmp_path / name for name in ("a.zarr", "b.zarr", "c.zarr")]
    report = blockdist.verify(*paths, client=client, seed=3)
    assert report.ok and len(report.tiles) > 1
    assert report.absent_asked == 0  # no absent chunk of A or B asked of storage
    # the same check reading every chunk: the absent ones asked for, and A's block (2, 2) read
    dense = verify_product(client, *(locate(p) for p in paths), trials=3, seed=3)
    assert dense.ok and dense.absent_asked == 30 + 5 and report.bytes_read < dense.bytes_read
    np.testing.assert_allclose([t.ratio for t in report.tiles], [t.ratio for t in dense.tiles], rtol=1e-6,
                               atol=1e-12)
    # a wrong element where A·B is zero (B's absent block-row meets A's rows 32:48 only) is found
    zarr.open_array(str(paths[2]), mode="r+")[40, 10] = 1.0
    failed = blockdist.verify(*paths, client=client, seed=3).failed
    assert [(t.rows, t.cols) for t in failed] == [next((t.rows, t.cols) for t in report.tiles
                                                        if t.rows[0] <= 40 < t.rows[1] and t.cols[0] <= 10 < t.cols[1])]


def test_verify_reads_absent_chunks_as_a_non_zero_fill_value(client, tmp_path):
    a = np.full((48, 48), 2.0)
    a[:16, :16] = random_data(np.random.default_rng(4), (16, 16), "float64")
    zarr.create_array(str(tmp_path / "a.zarr"), data=a, chunks=(16, 16), fill_value=2.0)  # 1 of 9 stored
    b = random_data(np.random.default_rng(5), (48, 32), "float64")
    write_array(tmp_path / "b.zarr", b, (16, 16))
    write_array(tmp_path / "c.zarr", a @ b, (16, 16))
    report = blockdist.verify(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client)
    assert report.ok and report.absent_asked > 0  # the fill is 2: every chunk is read
    skipped = np.where(np.kron(np.eye(3)[:1].T @ np.eye(3)[:1], np.ones((16, 16))) > 0, a, 0.0)
    zarr.open_array(str(tmp_path / "c.zarr"), mode="r+")[:] = skipped @ b  # what skipping the absent blocks gives
    assert not blockdist.verify(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client).ok


# --- randomized SVD and PCA: column means, and a kept A ------------------------------------------
def low_rank_blocks(folder: Path) -> tuple[Path, np.ndarray]:
    """A block-diagonal 240×160 matrix in 60×40 chunks (4 of 16 stored), each block of rank 2 on
    a scale of its own plus an offset, so that its 8 singular values are well apart."""
    rng = np.random.default_rng(6)
    x = np.zeros((240, 160))
    for i, scale in enumerate((40.0, 20.0, 10.0, 5.0)):
        x[60 * i : 60 * (i + 1), 40 * i : 40 * (i + 1)] = scale * (
            rng.standard_normal((60, 2)) @ (np.diag([1.0, 0.6]) @ rng.standard_normal((2, 40))) + 1.0)
    zarr.create_array(str(folder / "x.zarr"), data=x, chunks=(60, 40))
    return folder / "x.zarr", x


def assert_components(s: np.ndarray, vt: np.ndarray, centred: np.ndarray, rank: int) -> None:
    _, exact_s, exact_vt = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(s, exact_s[:rank], rtol=1e-8)
    np.testing.assert_allclose(np.abs(np.sum(vt * exact_vt[:rank], axis=1)), 1, atol=1e-8)


def test_column_stats_read_only_the_stretches_of_stored_chunks(tmp_path):
    path, x = low_rank_blocks(tmp_path)
    ref = locate(path)
    blocks = stat_blocks((240, 160), (60, 40), np.eye(4, dtype=bool))
    assert blocks[1] == ((60, 120), (0, 160), ((40, 80),))
    found = [column_stats(ref, rows, span, "float64", runs) for rows, span, runs in blocks]
    np.testing.assert_allclose(sum(f.sums for f in found), x.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(sum(f.squares for f in found), np.vdot(x, x), rtol=1e-12)
    assert sum(f.absent_asked for f in found) == 0
    assert column_stats(ref, (60, 120), (0, 160), "float64").absent_asked == 3  # reading all: the absent asked


def test_a_pca_streamed_takes_column_means_from_stored_chunks_only(client, tmp_path):
    path, x = low_rank_blocks(tmp_path)
    result = run_sketch(path, tmp_path / "scores.zarr", SketchParameters("pca", 4, power_iters=1, seed=7,
                                                                        keep_a=False), Options(client=client))
    assert not result.plan.kept and result.absent_asked == 0
    centred = x - x.mean(axis=0)
    np.testing.assert_allclose(result.mean, x.mean(axis=0), rtol=1e-12, atol=1e-12)
    assert_components(result.s, result.vt, centred, 4)
    np.testing.assert_allclose(result.u[:], centred @ result.vt.T, rtol=1e-8, atol=1e-8)  # the scores, whole
    _, exact_s, _ = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(result.explained_variance_ratio, exact_s[:4] ** 2 / np.sum(exact_s**2), rtol=1e-8)


def test_a_kept_a_loads_and_multiplies_only_its_stored_chunks(client, tmp_path):
    path, x = low_rank_blocks(tmp_path)
    ref = locate(path)
    present = np.eye(4, dtype=bool)
    block = load_rows(ref, (60, 180), "float64", present[1:3])  # two unit rows: columns 40:120 kept
    assert block.columns == ((40, 120),) and block.values.shape == (120, 80) and block.absent_asked == 0
    np.testing.assert_array_equal(block.spread(block.values.T).T, x[60:180])
    assert load_rows(ref, (60, 180), "float64").absent_asked == 6  # reading all: the absent asked
    svd = run_sketch(path, tmp_path / "u.zarr", SketchParameters("svd", 4, power_iters=1, seed=8),
                     Options(client=client))
    assert svd.plan.kept and svd.absent_asked == 0
    stored = sum(f.stat().st_size for f in (path / "c").rglob("*") if f.is_file())
    assert svd.a_bytes_read == stored + svd.plan.keep.blocks * (path / "zarr.json").stat().st_size
    assert_components(svd.s, svd.vt, x, 4)
    np.testing.assert_allclose(svd.u[:] * svd.s, x @ svd.vt.T, rtol=1e-8, atol=1e-8)  # U·S = A·V, whole
    pca = run_sketch(path, tmp_path / "scores.zarr", SketchParameters("pca", 4, power_iters=1, seed=9),
                     Options(client=client))
    assert pca.plan.kept and pca.absent_asked == 0
    centred = x - x.mean(axis=0)
    np.testing.assert_allclose(pca.mean, x.mean(axis=0), rtol=1e-12, atol=1e-12)
    assert_components(pca.s, pca.vt, centred, 4)
    np.testing.assert_allclose(pca.u[:], centred @ pca.vt.T, rtol=1e-8, atol=1e-8)


# --- multi_dot's order -----------------------------------------------------------------------------
def test_a_chain_whose_sparse_input_makes_another_order_cheaper_runs_in_it(client, tmp_path):
    rng = np.random.default_rng(10)
    a1 = np.zeros((256, 512))
    for i in range(4):  # 4 of A1's 32 chunks stored: dense, A1·(A2·A3) would be the cheaper order
        a1[64 * i : 64 * (i + 1), 128 * i : 128 * i + 64] = rng.standard_normal((64, 64))
    a2, a3 = rng.standard_normal((512, 512)), rng.standard_normal((512, 128))
    zarr.create_array(str(tmp_path / "a1.zarr"), data=a1, chunks=(64, 64))
    write_array(tmp_path / "a2.zarr", a2, (128, 128))
    write_array(tmp_path / "a3.zarr", a3, (128, 128))
    paths = [tmp_path / f"a{i}.zarr" for i in (1, 2, 3)]
    model = MachineModel(read_bytes_per_second=1e15)  # flops decide
    jobs = []
    out, chain = multi_dot(paths, tmp_path / "out.zarr", Options(client=client, model=model),
                           on_step=lambda label, target, job: jobs.append((label, job)))
    assert chain.order() == "(A1·A2)·A3" and chain.flops == 2 * (256 * 512 * 512 // 8 + 256 * 512 * 128)
    assert jobs[0][0] == "A1 · A2" and jobs[0][1].plan.flops_computed == 2 * 256 * 512 * 512 // 8
    np.testing.assert_allclose(out[:], a1 @ a2 @ a3, rtol=1e-10, atol=1e-10)


def test_verify_and_a_kept_a_skip_absent_shards(client, tmp_path):
    rng = np.random.default_rng(11)
    a = np.zeros((96, 96))  # shards of 32×32, chunks of 16×16: 3 of 9 shards stored, of rank 1 each
    for i, scale in enumerate((9.0, 3.0, 1.0)):
        a[32 * i : 32 * (i + 1), 32 * i : 32 * (i + 1)] = scale * np.outer(rng.random(32) + 1, rng.random(32) + 1)
    a[:16, :16] = 0  # and one stored shard with an empty inner chunk
    b = random_data(np.random.default_rng(12), (96, 64), "float64")
    b[64:] = 0  # B's last shard row not stored
    zarr.create_array(str(tmp_path / "a.zarr"), data=a, chunks=(16, 16), shards=(32, 32))
    zarr.create_array(str(tmp_path / "b.zarr"), data=b, chunks=(16, 16), shards=(32, 32))
    write_array(tmp_path / "c.zarr", a @ b, (16, 16))
    paths = [tmp_path / name for name in ("a.zarr", "b.zarr", "c.zarr")]
    report = blockdist.verify(*paths, client=client)
    assert report.ok and report.absent_asked == 0
    zarr.open_array(str(paths[2]), mode="r+")[70, 3] = 1.0  # where A's stored block meets B's absent rows
    assert [(t.rows, t.cols) for t in blockdist.verify(*paths, client=client).failed] == [((64, 80), (0, 16))]
    svd = run_sketch(paths[0], tmp_path / "u.zarr", SketchParameters("svd", 3, power_iters=1, seed=13),
                     Options(client=client))
    assert svd.plan.kept and svd.absent_asked == 0
    assert_components(svd.s, svd.vt, a, 3)
    np.testing.assert_allclose(svd.u[:] * svd.s, a @ svd.vt.T, rtol=1e-8, atol=1e-8)  # U·S = A·V, whole
