"""A kept on the workers for a randomized SVD or PCA (issue 28, item 3): read once where it fits,
the same result as streaming it and as numpy, streamed where it does not fit (or when asked),
``keep_a=True`` refused with the numbers, and the kept blocks released however the run ends.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import zarr

import blockdist
from blockdist.cli import main
from blockdist.errors import InputError
from blockdist.planning.sketch import SketchParameters
from blockdist.runtime.request import Options
from blockdist.runtime.svd import run_sketch

M, N, RANK = 620, 150, 4
#: A budget a worker cannot keep A in: half of it is below the worker's own baseline.
SMALL = "300MB"


@pytest.fixture(scope="module")
def a(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """Low rank plus noise plus an offset, zstd, in ragged chunks (the last chunk row short)."""
    rng = np.random.default_rng(28)
    values = (rng.standard_normal((M, 6)) * np.geomspace(40, 4, 6)) @ rng.standard_normal((6, N))
    values += 0.02 * rng.standard_normal((M, N)) + 3 * rng.standard_normal(N)
    path = tmp_path_factory.mktemp("kept") / "a.zarr"
    zarr.create_array(store=str(path), data=values, chunks=(96, 64))
    return path, values


def stored_bytes(path: Path) -> int:
    """A's chunk files, as read from storage once."""
    return sum(f.stat().st_size for f in (path / "c").rglob("*") if f.is_file())


def read_once(path: Path, blocks: int) -> int:
    """A's chunk files, and its metadata once a kept block (each load opens A)."""
    return stored_bytes(path) + blocks * (path / "zarr.json").stat().st_size


def kept_keys(client) -> list[str]:
    """Keys of kept blocks the scheduler still knows (the blocks a worker holds for them)."""
    return client.run_on_scheduler(
        lambda dask_scheduler: [str(k) for k in dask_scheduler.tasks if str(k).startswith("blockdist-keep-a-")])


def released(client) -> bool:
    """Whether the scheduler and every worker have let every kept block go (the scheduler forgets
    cancelled keys as its messages arrive: waited for, up to 30 s)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        held = [key for keys in client.has_what().values() for key in keys if "blockdist-keep-a-" in str(key)]
        if not kept_keys(client) and not held:
            return True
        time.sleep(0.05)
    return False


def test_kept_a_is_read_once_and_gives_what_streaming_and_numpy_give(client, a, tmp_path):
    path, values = a
    parameters = SketchParameters("svd", RANK, power_iters=2, seed=3)
    kept = run_sketch(path, tmp_path / "kept.zarr", parameters, Options(client=client))
    streamed = run_sketch(path, tmp_path / "streamed.zarr", SketchParameters("svd", RANK, power_iters=2, seed=3,
                                                                             keep_a=False), Options(client=client))
    assert kept.plan.kept and not streamed.plan.kept
    assert "A kept on the workers" in kept.plan.summary()
    assert "as asked (keep_a=False)" in streamed.plan.summary()
    # A read once where kept, once a pass where streamed
    assert kept.a_bytes_read == read_once(path, kept.plan.keep.blocks) and streamed.a_bytes_read is None
    assert streamed.bytes_read >= kept.plan.passes * stored_bytes(path) > kept.bytes_read
    exact_u, exact_s, exact_vt = np.linalg.svd(values, full_matrices=False)
    u_kept, u_streamed = kept.u[:], streamed.u[:]
    for s, u, vt in ((kept.s, u_kept, kept.vt), (streamed.s, u_streamed, streamed.vt)):
        np.testing.assert_allclose(s, exact_s[:RANK], rtol=1e-6)
        np.testing.assert_allclose(u.T @ u, np.eye(RANK), atol=1e-10)
        np.testing.assert_allclose(np.abs(np.sum(u * exact_u[:, :RANK], axis=0)), 1, atol=1e-6)
        np.testing.assert_allclose(np.abs(np.sum(vt * exact_vt[:RANK], axis=1)), 1, atol=1e-6)
    # the same computation, summed in another order
    np.testing.assert_allclose(kept.s, streamed.s, rtol=1e-12)
    np.testing.assert_allclose(u_kept, u_streamed, atol=1e-10)
    np.testing.assert_allclose(kept.vt, streamed.vt, atol=1e-10)
    assert zarr.open_array(tmp_path / "kept.zarr").attrs["blockdist-workload"]["status"] == "complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.zarr", "streamed.zarr"]  # no sketches left
    assert released(client)


def test_a_pca_kept_centres_as_the_streamed_one_does(client, a, tmp_path):
    path, values = a
    kept = blockdist.pca(path, 3, out=tmp_path / "kept.zarr", seed=2, power_iters=1, client=client)
    streamed = blockdist.pca(path, 3, out=tmp_path / "streamed.zarr", seed=2, power_iters=1, keep_a=False,
                             client=client)
    centred = values - values.mean(axis=0)
    _, exact_s, exact_vt = np.linalg.svd(centred, full_matrices=False)
    for result in (kept, streamed):
        np.testing.assert_allclose(result.mean, values.mean(axis=0), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(result.singular_values, exact_s[:3], rtol=1e-6)
        np.testing.assert_allclose(result.explained_variance_ratio, exact_s[:3] ** 2 / np.sum(exact_s**2), rtol=1e-6)
        np.testing.assert_allclose(np.abs(np.sum(result.components * exact_vt[:3], axis=1)), 1, atol=1e-6)
        np.testing.assert_allclose(result.scores[:], centred @ result.components.T, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(kept.scores[:], streamed.scores[:], atol=1e-9)


def test_a_that_does_not_fit_is_streamed_and_keep_a_true_is_refused_with_the_numbers(client, a, tmp_path):
    path, values = a
    result = run_sketch(path, tmp_path / "u.zarr", SketchParameters("svd", RANK, power_iters=1, seed=1),
                        Options(client=client, memory=SMALL))
    assert not result.plan.kept and result.a_bytes_read is None
    assert "A streamed from storage every pass: it does not fit kept" in result.plan.summary()
    np.testing.assert_allclose(result.s, np.linalg.svd(values, compute_uv=False)[:RANK], rtol=1e-6)
    out = tmp_path / "refused.zarr"
    with pytest.raises(InputError, match=r"keep_a=True but A's decoded blocks would take .* a worker .*, and a "
                                         r"worker may keep 0 B: 50% of its 286\.1 MiB, less 192\.0 MiB"):
        blockdist.svd(path, RANK, out=out, keep_a=True, memory=SMALL, client=client)
    # a local cluster's shape is known before it starts: refused before any process starts
    assert main(["svd", str(path), "2", str(out), "--keep-a", "--memory", SMALL, "--workers", "1"]) == 2
    with pytest.raises(InputError, match="keep_a must be True, False or None"):
        blockdist.svd(path, RANK, out=out, keep_a="yes")
    assert not out.exists() and not list(tmp_path.glob(".*blockdist-svd"))
    planned = blockdist.plan_svd(path, RANK, workers=2, memory="2GB")
    assert planned.kept and "A kept on the workers" in planned.summary() and "read once" in planned.summary()


def test_a_float32_a_is_kept_as_float64_blocks(client, tmp_path):
    """Stored float32 (read by zarr and widened as it is kept), in one chunk row: one block."""
    rng = np.random.default_rng(5)
    values = (rng.standard_normal((90, 3)) @ rng.standard_normal((3, 40)) + 0.01 * rng.standard_normal((90, 40)))
    zarr.create_array(store=str(tmp_path / "a.zarr"), data=values.astype("float32"), chunks=(90, 16), compressors=None)
    result = run_sketch(tmp_path / "a.zarr", tmp_path / "u.zarr", SketchParameters("svd", 2, seed=1),
                        Options(client=client))
    assert result.plan.kept and result.plan.keep.blocks == 1
    exact = np.linalg.svd(values.astype("float32").astype("float64"), compute_uv=False)
    np.testing.assert_allclose(result.s, exact[:2], rtol=1e-6)


class Stop(Exception):
    """What the interrupting step raises."""


def test_a_run_that_fails_mid_way_releases_the_kept_blocks(client, a, tmp_path):
    path, values = a
    held: list[int] = []

    def stop(label: str, job: object) -> None:
        if label.startswith("A·Z"):  # A is loaded and has served two passes
            held.append(len(kept_keys(client)))
            raise Stop(label)

    with pytest.raises(Stop):
        run_sketch(path, tmp_path / "u.zarr", SketchParameters("svd", RANK, power_iters=1, seed=4),
                   Options(client=client), on_step=stop)
    assert held == [2]  # A's two blocks (384 rows and 236: one a worker) were held when it stopped
    assert released(client)
    # and the failed run resumes (A read once more, kept again) to what numpy gives
    resumed = run_sketch(path, tmp_path / "u.zarr", SketchParameters("svd", RANK, power_iters=1, seed=4),
                         Options(client=client, resume=True))
    assert resumed.a_bytes_read == read_once(path, resumed.plan.keep.blocks)
    np.testing.assert_allclose(resumed.s, np.linalg.svd(values, compute_uv=False)[:RANK], rtol=1e-6)
    assert released(client)
