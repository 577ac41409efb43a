"""One record for every workload output (issue 25, item 4): ``blockdist info`` shows one record
shape for an SVD, a PCA and a top-k, and an output of the older ``topk`` attribute is still read.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import blockdist
from blockdist.runtime.workload import read_record
from tests.conftest import write_array

BLOCKDIST = [sys.executable, "-m", "blockdist.cli"]
M, N = 300, 90
RECORD_KEYS = {"workload", "version", "status", "job", "inputs", "parameters", "progress", "results"}


@pytest.fixture(scope="module")
def a(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """Low rank plus noise plus an offset, stored in ragged chunks."""
    rng = np.random.default_rng(11)
    values = (rng.standard_normal((M, 5)) * np.geomspace(30, 3, 5)) @ rng.standard_normal((5, N))
    values += 0.01 * rng.standard_normal((M, N)) + rng.standard_normal(N)
    path = tmp_path_factory.mktemp("workloads") / "a.zarr"
    write_array(path, values, (70, 40))
    return path, values


def test_info_shows_one_record_shape_for_svd_pca_and_topk(client, a, tmp_path):
    path, values = a
    blockdist.svd(path, 2, out=tmp_path / "u.zarr", power_iters=0, seed=1, client=client)
    blockdist.pca(path, 2, out=tmp_path / "p.zarr", power_iters=0, seed=1, client=client)
    blockdist.topk(path, path, 3, tmp_path / "top.zarr", client=client)
    records = {}
    for name in ("u.zarr", "p.zarr", "top.zarr"):
        shown = subprocess.run([*BLOCKDIST, "info", str(tmp_path / name), "--json"], capture_output=True,
                               text=True, timeout=120)
        assert shown.returncode == 0, shown.stderr
        records[name] = json.loads(shown.stdout)
        assert set(records[name]) == RECORD_KEYS and records[name]["status"] == "complete"
    assert [r["workload"] for r in records.values()] == ["svd", "pca", "topk"]
    assert records["top.zarr"]["progress"] == {"done": M, "total": M, "unit": "rows"}
    assert records["top.zarr"]["parameters"] == {"k": 3} and records["u.zarr"]["parameters"]["rank"] == 2
    np.testing.assert_allclose(records["u.zarr"]["results"]["singular_values"],
                               np.linalg.svd(values, compute_uv=False)[:2], rtol=1e-4)
    text = subprocess.run([*BLOCKDIST, "info", str(tmp_path / "top.zarr")], capture_output=True, text=True,
                          timeout=120)
    heads = [line.split()[0] for line in text.stdout.splitlines()]
    assert heads == ["output", "workload", "status", "inputs", "parameters", "results"]


def test_an_output_of_the_older_topk_attribute_is_still_read(tmp_path):
    manifest = {"status": "complete", "token": "abc", "a": {"name": "q"}, "b": {"name": "c"},
                "figures": {"seconds": 1.5, "bytes_read": 10}}
    older = {"k": 4, "complete": True, "rows_written": 7, "rows": 7}
    record = read_record({"blockdist": manifest, "topk": older})
    assert record.to_json() == {"workload": "topk", "version": 1, "status": "complete", "job": "abc",
                                "inputs": {"a": {"name": "q"}, "b": {"name": "c"}}, "parameters": {"k": 4},
                                "progress": {"done": 7, "total": 7, "unit": "rows"},
                                "results": {"seconds": 1.5, "bytes_read": 10}}
    running = read_record({"blockdist": {**manifest, "status": "running"},
                           "topk": {**older, "complete": False}})
    assert running.status == "running" and not running.complete
