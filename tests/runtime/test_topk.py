"""Top-k similarity (issue 18, item 4): ``blockdist.topk`` gives each query's k best corpus rows
by dot product, best first (ties: the lower row), into a Zarr group of ``indices`` and ``scores``,
without storing Q·Cᵀ; checked against numpy's full product and stable argsort, on the shared
cluster of worker processes, and bad input refused before anything is written.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import zarr

import blockdist
from blockdist.errors import (
    DtypeError,
    IncompleteOutputError,
    InputError,
    JobFailedError,
    OutputConflictError,
    OutputExistsError,
    ShapeError,
)
from blockdist.planning import WORKER_BASELINE, MachineModel
from tests.conftest import tree_digest, write_array


def _inputs(folder: Path, q_shape, c_shape, q_chunks, c_chunks, dtype="float64", seed=0, values=None):
    rng = np.random.default_rng(seed)
    if values is None:
        q, c = (rng.standard_normal(s).astype(dtype) for s in (q_shape, c_shape))
    else:
        q, c = (rng.choice(values, size=s).astype(dtype) for s in (q_shape, c_shape))
    write_array(folder / "q.zarr", q, q_chunks)
    write_array(folder / "c.zarr", c, c_chunks)
    return q, c, folder / "q.zarr", folder / "c.zarr"


def _reference(q: np.ndarray, c: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """numpy: the whole product, then a stable argsort of −S (ties: the lower row first)."""
    s = q @ c.T
    key = ~s if s.dtype.kind in "iu" else -s
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(s, order, axis=1)


def _check(out: Path, q: np.ndarray, c: np.ndarray, k: int, indices, scores, *, exact: bool,
           rtol: float) -> None:
    want_indices, want_scores = _reference(q, c, k)
    got_indices, got_scores = indices[:], scores[:]
    assert got_indices.shape == got_scores.shape == (q.shape[0], k)
    assert got_indices.dtype == np.int64 and got_scores.dtype == (q @ c.T).dtype
    np.testing.assert_allclose(got_scores, want_scores, rtol=rtol, atol=rtol * 10)
    if exact:
        np.testing.assert_array_equal(got_indices, want_indices)
    else:  # rounding may swap near ties: the indices must still name the best scores, once each
        exact_scores = q.astype(np.float64) @ c.astype(np.float64).T
        np.testing.assert_allclose(np.take_along_axis(exact_scores, got_indices, 1), want_scores, rtol=rtol,
                                   atol=rtol * 10)
        assert all(len(set(row)) == k for row in got_indices)
    group = zarr.open_group(out, mode="r")
    record = group.attrs["blockdist-workload"]
    assert record["status"] == "complete"
    assert record["progress"] == {"done": q.shape[0], "total": q.shape[0], "unit": "rows"}
    assert record["parameters"] == {"k": k} and group.attrs["blockdist"]["status"] == "complete"
    assert set(group.array_keys()) == {"indices", "scores"}


def _memory(extra: int) -> int:
    return WORKER_BASELINE + extra


ODD = ((203, 19), (311, 19), (29, 19), (37, 19))  # queries, corpus, their chunks: ragged tiles both ways
SMALL = ((60, 19), (100, 19), (15, 19), (23, 19))


@pytest.mark.parametrize(("dtype", "k", "shapes", "extra", "exact", "rtol"), [
    ("float64", 5, ODD, 150_000, True, 1e-12),
    ("float64", 1, ODD, 150_000, True, 1e-12),
    ("float32", 7, ODD, 150_000, False, 1e-5),
    ("float64", 100, SMALL, 100_000, True, 1e-12),  # k = n: merged and written in blocks of a few rows
])
def test_topk_is_numpys_best_k(client, tmp_path: Path, dtype, k, shapes, extra, exact, rtol):
    q, c, qp, cp = _inputs(tmp_path, *shapes, dtype=dtype, seed=k)
    before = tree_digest(qp), tree_digest(cp)
    job = blockdist.submit_topk(qp, cp, k, tmp_path / "top.zarr", client=client, memory=_memory(extra))
    rows, cols = job.plan.grid.shape
    assert rows > 1 and cols > 1
    indices, scores = job.result()
    assert indices.read_only and scores.read_only
    _check(tmp_path / "top.zarr", q, c, k, indices, scores, exact=exact, rtol=rtol)
    assert job.tiles_done == job.tiles_total and job.snapshot().fraction_done == 1.0
    rows_in_chunks = -(-q.shape[0] // job.topk_plan.merge_rows) * job.topk_plan.merge_rows  # whole chunks
    assert job.stats.bytes_written == rows_in_chunks * k * (8 + np.dtype(dtype).itemsize)
    assert job.stats.bytes_written < job.topk_plan.product_bytes_written or k == c.shape[0]
    if k == c.shape[0]:
        assert job.topk_plan.merge_rows < job.plan.tile_rows
    assert (tree_digest(qp), tree_digest(cp)) == before
    # no product, no scratch, no lease left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.zarr", "q.zarr", "top.zarr"]


def test_many_column_tiles_merge_in_a_tree_and_rows_in_blocks(client, tmp_path: Path):
    q, c, qp, cp = _inputs(tmp_path, (64, 11), (700, 11), (32, 11), (37, 11), seed=3)
    plan = blockdist.plan_topk(qp, cp, 40, memory=_memory(150_000), workers=2)
    assert plan.plan.grid.shape[1] > plan.fan_in and plan.merge_levels == 2
    indices, scores = blockdist.topk(qp, cp, 40, tmp_path / "top.zarr", client=client,
                                     memory=_memory(150_000))
    _check(tmp_path / "top.zarr", q, c, 40, indices, scores, exact=True, rtol=1e-12)


def test_split_k_sums_partials_before_ranking(client, tmp_path: Path):
    q, c, qp, cp = _inputs(tmp_path, (40, 3000), (30, 3000), (20, 500), (15, 500), seed=4)
    slow = dataclasses.replace(MachineModel(), flops_per_thread=1e6)  # the planner cuts k for 2 threads
    job = blockdist.submit_topk(qp, cp, 6, tmp_path / "top.zarr", client=client, model=slow)
    assert job.plan.k_splits > 1 and job.plan.reduce_bands > 1
    indices, scores = job.result()
    _check(tmp_path / "top.zarr", q, c, 6, indices, scores, exact=True, rtol=1e-11)


@pytest.mark.parametrize("dtype", ["int64", "float64"])
def test_ties_go_to_the_lower_row(client, tmp_path: Path, dtype):
    q, c, qp, cp = _inputs(tmp_path, (57, 3), (83, 3), (19, 3), (13, 3), dtype=dtype, seed=5,
                           values=[0, 1, 2])
    s = q @ c.T
    assert max(np.unique(row, return_counts=True)[1].max() for row in s) > 5  # many equal scores a row
    indices, scores = blockdist.topk(qp, cp, 9, tmp_path / "top.zarr", client=client, memory=_memory(150_000))
    _check(tmp_path / "top.zarr", q, c, 9, indices, scores, exact=True, rtol=0)


def test_bad_input_is_refused_before_anything_is_written(tmp_path: Path):
    _, _, qp, cp = _inputs(tmp_path, (6, 8), (10, 8), (3, 8), (5, 8))
    write_array(tmp_path / "d7.zarr", np.ones((10, 7)), (5, 7))
    out = tmp_path / "top.zarr"
    with pytest.raises(InputError,
                       match=r"^topk: k = 12 but the corpus has only 10 rows; k must be between 1 and 10$"):
        blockdist.topk(qp, cp, 12, out)
    with pytest.raises(InputError, match=r"^topk: k = 0; k must be between 1 and 10$"):
        blockdist.topk(qp, cp, 0, out)
    with pytest.raises(InputError, match="whole number"):
        blockdist.topk(qp, cp, 2.5, out)
    with pytest.raises(ShapeError, match=r"^matmul: Input operand 1 has a mismatch in its core dimension 0, "
                                         r"with gufunc signature \(n\?,k\),\(k,m\?\)->\(n\?,m\?\) "
                                         r"\(size 7 is different from 8\)"):
        blockdist.topk(qp, tmp_path / "d7.zarr", 3, out)
    zarr.create_array(store=str(tmp_path / "v.zarr"), data=np.ones(8), chunks=(4,))
    zarr.create_array(store=str(tmp_path / "t.zarr"), data=np.ones((2, 3, 8)), chunks=(1, 3, 8))
    for bad in ("v.zarr", "t.zarr"):
        with pytest.raises(ShapeError, match="dimension"):
            blockdist.topk(tmp_path / bad, cp, 3, out)
        with pytest.raises(ShapeError, match="dimension"):
            blockdist.topk(qp, tmp_path / bad, 3, out)
    write_array(tmp_path / "z.zarr", np.ones((10, 8), dtype=np.complex128), (5, 8))
    with pytest.raises(DtypeError, match="real scores"):
        blockdist.topk(qp, tmp_path / "z.zarr", 3, out)
    with pytest.raises(InputError, match="resume is not supported"):
        blockdist.topk(qp, cp, 3, out, resume=True)
    with pytest.raises(OutputConflictError, match="is the input"):
        blockdist.topk(qp, cp, 3, cp, overwrite=True)
    with pytest.raises(OutputConflictError, match="nests with it"):
        blockdist.topk(qp, cp, 3, cp / "inside.zarr")
    (tmp_path / "taken.zarr").mkdir()
    (tmp_path / "taken.zarr" / "mine.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="already exists; pass --overwrite"):
        blockdist.topk(qp, cp, 3, tmp_path / "taken.zarr")
    with pytest.raises(OutputConflictError, match="not a Zarr group or array"):
        blockdist.topk(qp, cp, 3, tmp_path / "taken.zarr", overwrite=True)
    assert (tmp_path / "taken.zarr" / "mine.txt").read_text() == "mine"
    with pytest.raises(TypeError, match="alpha"):
        blockdist.topk(qp, cp, 3, out, alpha=2.0)
    assert not out.exists()


def test_an_existing_output_is_replaced_only_with_overwrite(client, tmp_path: Path):
    q, c, qp, cp = _inputs(tmp_path, (20, 4), (30, 4), (10, 4), (10, 4), seed=6)
    blockdist.topk(qp, cp, 3, tmp_path / "top.zarr", client=client)
    with pytest.raises(OutputExistsError, match="already exists"):
        blockdist.topk(qp, cp, 4, tmp_path / "top.zarr", client=client)
    indices, scores = blockdist.topk(qp, cp, 4, tmp_path / "top.zarr", client=client, overwrite=True)
    _check(tmp_path / "top.zarr", q, c, 4, indices, scores, exact=True, rtol=1e-12)


def test_a_failed_job_leaves_its_group_marked_incomplete(client, tmp_path: Path):
    _, _, qp, cp = _inputs(tmp_path, (20, 4), (30, 4), (10, 4), (10, 4), seed=7)
    (cp / "c" / "1" / "0").write_bytes(b"damaged")  # a chunk of the corpus that cannot be read fails its task
    with pytest.raises(JobFailedError,
                       match=r"top-k job \w+ failed \(0 of 20 rows written\).*chunk c/1/0 cannot be read"):
        blockdist.topk(qp, cp, 3, tmp_path / "top.zarr", client=client, memory=_memory(150_000))
    group = zarr.open_group(tmp_path / "top.zarr", mode="r")
    assert group.attrs["blockdist-workload"]["status"] == group.attrs["blockdist"]["status"] == "failed"
    with pytest.raises(IncompleteOutputError, match=r"unfinished blockdist topk \(failed, 0 of 20 rows done\)"):
        blockdist.open(tmp_path / "top.zarr" / "indices")
