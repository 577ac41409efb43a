"""Chains of products (issue 18, item 2): ``blockdist.multi_dot`` and ``blockdist multi-dot``
pick the cheapest order (numpy's programme where flops decide), compute it on one cluster with
intermediates beside the output, remove them, and refuse bad chains before any work.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

import blockdist
from blockdist.errors import InputError, ShapeError
from blockdist.planning import ClusterShape
from blockdist.planning.chain import plan_chain
from tests.conftest import tree_digest, write_array

BLOCKDIST = [sys.executable, "-m", "blockdist.cli"]


def _numpy_order(shapes) -> str:
    """numpy's own choice (its dynamic programme over flops), as a bracketing."""
    from numpy.linalg._linalg import _multi_dot_matrix_chain_order

    arrays = [np.empty(s) for s in shapes]
    split = _multi_dot_matrix_chain_order(arrays, return_costs=False)
    names = [f"A{i + 1}" for i in range(len(shapes))]

    def order(i: int, j: int) -> str:
        if i == j:
            return names[i]
        k = split[i, j]
        left, right = order(i, k), order(k + 1, j)
        return f"{left if i == k else f'({left})'}·{right if k + 1 == j else f'({right})'}"

    return order(0, len(shapes) - 1)


@pytest.mark.parametrize("shapes", [
    [(10, 100), (100, 5), (5, 50)],
    [(1000, 20), (20, 1000), (1000, 30), (30, 5000)],
    [(30, 35), (35, 15), (15, 5), (5, 10), (10, 20), (20, 25)],  # the textbook chain
])
def test_where_flops_decide_the_order_is_numpys(shapes):
    plan = plan_chain([f"A{i + 1}" for i in range(len(shapes))], shapes, 8, ClusterShape(2, 1, 2**30))
    assert plan.order() == _numpy_order(shapes)
    assert plan.flops <= plan.left_to_right_flops and plan.seconds <= plan.left_to_right_seconds
    assert len(plan.steps()) == len(shapes) - 1


def _chain(folder: Path, shapes, seed: int = 61):
    rng = np.random.default_rng(seed)
    mats = [rng.standard_normal(s) for s in shapes]
    paths = []
    for index, m in enumerate(mats):
        write_array(folder / f"m{index}.zarr", m, (max(1, s // 2) for s in m.shape))
        paths.append(folder / f"m{index}.zarr")
    return mats, paths


@pytest.mark.slow
def test_multi_dot_computes_the_chain_and_removes_its_intermediates(client, tmp_path: Path):
    mats, paths = _chain(tmp_path, [(300, 20), (20, 400), (400, 30), (30, 250)])
    inputs = [tree_digest(path) for path in paths]
    plan = blockdist.plan_chain(paths, tmp_path / "out.zarr")
    assert plan.order() == "A1·((A2·A3)·A4)" and plan.left_to_right_flops > plan.flops
    out = blockdist.multi_dot(paths, tmp_path / "out.zarr", client=client)
    np.testing.assert_allclose(out[:], np.linalg.multi_dot(mats), rtol=1e-10, atol=1e-8)
    assert not (tmp_path / ".out.zarr.blockdist-chain").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([p.name for p in paths] + ["out.zarr"])
    assert [tree_digest(path) for path in paths] == inputs  # untouched


def test_a_chain_may_start_and_end_with_vectors_as_numpys_does(client, tmp_path: Path):
    mats, paths = _chain(tmp_path, [(40, 30), (30, 50)], seed=63)
    rng = np.random.default_rng(64)
    u, v = rng.standard_normal(40), rng.standard_normal(50)
    zarr.create_array(store=str(tmp_path / "u.zarr"), data=u, chunks=(16,))
    zarr.create_array(store=str(tmp_path / "v.zarr"), data=v, chunks=(16,))
    out = blockdist.multi_dot([tmp_path / "u.zarr", *paths, tmp_path / "v.zarr"], tmp_path / "out.zarr", client=client)
    assert out.shape == ()
    np.testing.assert_allclose(out[()], np.linalg.multi_dot([u, *mats, v]), rtol=1e-10)
    out = blockdist.multi_dot([*paths, tmp_path / "v.zarr"], tmp_path / "mv.zarr", client=client)
    np.testing.assert_allclose(out[:], np.linalg.multi_dot([*mats, v]), rtol=1e-10)


def test_bad_chains_are_refused_before_any_work(tmp_path: Path):
    _, paths = _chain(tmp_path, [(6, 4), (5, 3), (3, 2)])
    with pytest.raises(ShapeError, match=r"matmul: Input operand 1 has a mismatch in its core dimension 0, "
                                         r"with gufunc signature \(n\?,k\),\(k,m\?\)->\(n\?,m\?\) \(size 5 is different "
                                         r"from 4\)"):
        blockdist.multi_dot(paths, tmp_path / "out.zarr")
    with pytest.raises(InputError, match="at least two arrays, got 1"):
        blockdist.multi_dot(paths[:1], tmp_path / "out.zarr")
    zarr.create_array(store=str(tmp_path / "v.zarr"), data=np.ones(5), chunks=(2,))
    with pytest.raises(ShapeError, match="1 dimension.*the first and the last may be vectors"):
        blockdist.multi_dot([paths[0], tmp_path / "v.zarr", paths[1]], tmp_path / "out.zarr")
    with pytest.raises(ShapeError, match=r"size 5 is different from 4"):
        blockdist.multi_dot([paths[0], tmp_path / "v.zarr"], tmp_path / "out.zarr")
    (tmp_path / "taken.zarr").write_text("mine")
    with pytest.raises(InputError):
        blockdist.multi_dot(paths[1:], tmp_path / "taken.zarr", overwrite=True)
    assert (tmp_path / "taken.zarr").read_text() == "mine"
    assert not (tmp_path / "out.zarr").exists() and not list(tmp_path.glob(".*blockdist-chain"))


@pytest.mark.slow
def test_the_cli_prints_the_order_and_computes_the_chain(tmp_path: Path):
    mats, paths = _chain(tmp_path, [(200, 10), (10, 300), (300, 20)], seed=62)
    names = [str(p) for p in paths]
    planned = subprocess.run([*BLOCKDIST, "multi-dot", *names, str(tmp_path / "out.zarr"), "--plan"],
                             capture_output=True, text=True, timeout=120)
    assert planned.returncode == 0, planned.stderr
    assert "order" in planned.stdout and "left to right" in planned.stdout and "× the chosen order" in planned.stdout
    assert not (tmp_path / "out.zarr").exists()
    run = subprocess.run([*BLOCKDIST, "multi-dot", *names, str(tmp_path / "out.zarr"), "--workers", "1"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("product       ") == 2
    np.testing.assert_allclose(zarr.open_array(tmp_path / "out.zarr")[:], np.linalg.multi_dot(mats), rtol=1e-10,
                               atol=1e-8)
    one = subprocess.run([*BLOCKDIST, "multi-dot", names[0], str(tmp_path / "x.zarr")], capture_output=True,
                         text=True, timeout=60)
    assert one.returncode == 2 and "at least two arrays" in one.stderr and "Traceback" not in one.stderr
