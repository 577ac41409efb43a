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
from blockdist.storage import locate
from tests.conftest import random_data, write_array


def block_diagonal(n: int, chunk: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((n, n))
    for i in range(0, n, chunk):
        x[i : i + chunk, i : i + chunk] = rng.standard_normal((min(chunk, n - i),) * 2)
    return x


# --- blockdist verify ----------------------------------------------------------------------------
def _verify_inputs(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    a = block_diagonal(96, 16, 1)  # 6 of 36 chunks stored
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
