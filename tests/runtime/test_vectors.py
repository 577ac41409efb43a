"""Vector operands with numpy's ``matmul`` rules (issue 18, item 1): ``A @ v`` and ``v @ A`` give a
vector, ``u @ v`` a 0-d array; the vector is read in place as a row or a column and the result is
stored with numpy's shape; bad shapes are refused with numpy's words before anything is written.
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
from tests.conftest import tree_digest

BLOCKDIST = [sys.executable, "-m", "blockdist.cli"]


def _store(path: Path, data: np.ndarray, chunks: tuple[int, ...], **kwargs) -> Path:
    zarr.create_array(store=str(path), data=data, chunks=chunks, config={"write_empty_chunks": True}, **kwargs)
    return path


@pytest.fixture(scope="module")
def operands(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vectors")
    rng = np.random.default_rng(18)
    values = {"a": rng.standard_normal((301, 203)), "v": rng.standard_normal(203), "w": rng.standard_normal(301),
              "V": rng.standard_normal((203, 3)), "a32": rng.standard_normal((301, 203)).astype("f4")}
    _store(folder / "a.zarr", values["a"], (64, 50))  # zstd, zarr's default: decoded by the tasks
    _store(folder / "a32.zarr", values["a32"], (100, 100), compressors=None)  # raw chunk files
    _store(folder / "v.zarr", values["v"], (37,))
    _store(folder / "w.zarr", values["w"], (301,), compressors=None)
    _store(folder / "V.zarr", values["V"], (60, 3))
    _store(folder / "s.zarr", np.array(2.0), ())
    return folder, values


def test_vector_products_follow_numpy(client, operands, tmp_path: Path):
    folder, x = operands
    before = {name: tree_digest(folder / f"{name}.zarr") for name in ("a", "v", "w")}
    cases = [
        ("a", "v", {}, x["a"] @ x["v"]),
        ("w", "a", {}, x["w"] @ x["a"]),
        ("v", "v", {}, x["v"] @ x["v"]),
        ("a", "w", {"transpose_a": True, "verify": True}, x["a"].T @ x["w"]),
        ("a", "v", {"alpha": 0.5, "beta": 2.0, "c": folder / "w.zarr"}, 0.5 * x["a"] @ x["v"] + 2.0 * x["w"]),
        ("a32", "v", {}, x["a32"] @ x["v"]),
        ("a", "V", {}, x["a"] @ x["V"]),  # a thin block of vectors: one pass over A
    ]
    for number, (a, b, options, expected) in enumerate(cases):
        out = blockdist.matmul(folder / f"{a}.zarr", folder / f"{b}.zarr", tmp_path / f"out{number}.zarr",
                               client=client, **options)
        assert out.shape == expected.shape and out.dtype == expected.dtype, (a, b, options)
        np.testing.assert_allclose(out[...], expected, rtol=1e-5, atol=1e-5)
        assert blockdist.open(tmp_path / f"out{number}.zarr").array.shape == expected.shape
    # a vector in memory is staged like a matrix; the product's plan names the vector
    out = blockdist.matmul(folder / "a.zarr", x["v"], tmp_path / "from-numpy.zarr", client=client)
    np.testing.assert_allclose(out[:], x["a"] @ x["v"], rtol=1e-10)
    assert blockdist.plan(folder / "a.zarr", folder / "v.zarr").product == "A·v"
    assert blockdist.plan(folder / "v.zarr", folder / "v.zarr").product == "u·v"
    assert {name: tree_digest(folder / f"{name}.zarr") for name in ("a", "v", "w")} == before


@pytest.mark.parametrize("b", ["v", "V"])
def test_a_matrix_times_a_vector_or_a_thin_block_reads_a_once(operands, b):
    folder, _ = operands
    plan = blockdist.plan(folder / "a.zarr", folder / f"{b}.zarr", workers=2)
    a_bytes = 301 * 203 * 8
    assert plan.grid.shape[1] == 1 and plan.bytes_read <= 1.05 * (a_bytes + plan.b.shape[0] * plan.b.shape[1] * 8
                                                                  * plan.grid.shape[0])
    assert plan.tiles * plan.k_splits >= 2  # both workers read their share of A


@pytest.mark.parametrize(("a", "b", "options", "error", "words"), [
    ("a", "w", {}, ShapeError, "matmul: Input operand 1 has a mismatch in its core dimension 0, with gufunc "
                               "signature (n?,k),(k,m?)->(n?,m?) (size 301 is different from 203)"),
    ("v", "a", {}, ShapeError, "(size 301 is different from 203)"),
    ("v", "w", {}, ShapeError, "(size 301 is different from 203)"),
    ("s", "a", {}, ShapeError, "matmul: Input operand 0 does not have enough dimensions (has 0"),
    ("a", "v", {"transpose_b": True}, InputError, "B is a vector (length 203), which has no transpose"),
    ("a", "v", {"c": "a.zarr", "beta": 1.0}, ShapeError, "C0 ("),
])
def test_bad_vector_products_are_refused_with_numpys_words(operands, tmp_path: Path, a, b, options, error, words):
    folder, _ = operands
    if "c" in options:
        options = {**options, "c": folder / options["c"]}
    with pytest.raises(error) as caught:
        blockdist.matmul(folder / f"{a}.zarr", folder / f"{b}.zarr", tmp_path / "out.zarr", **options)
    assert words in str(caught.value)
    assert not (tmp_path / "out.zarr").exists()


def test_the_gram_matrix_of_a_vector_and_an_in_place_vector_update_are_refused(operands, tmp_path: Path):
    folder, x = operands
    with pytest.raises(ShapeError, match=r"takes a 2-D X, got shape \(203,\)"):
        blockdist.gram(folder / "v.zarr", tmp_path / "g.zarr")
    target = _store(tmp_path / "y.zarr", x["w"], (301,))
    with pytest.raises(InputError, match="in-place update of a vector"):
        blockdist.matmul(folder / "a.zarr", folder / "v.zarr", target, c=target, beta=1.0)
    np.testing.assert_array_equal(zarr.open_array(target)[:], x["w"])


@pytest.mark.slow
def test_the_cli_multiplies_a_matrix_by_a_vector(operands, tmp_path: Path):
    folder, x = operands
    run = subprocess.run([*BLOCKDIST, "matmul", str(folder / "a.zarr"), str(folder / "v.zarr"),
                          str(tmp_path / "av.zarr"), "--workers", "1"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "= A·v" in run.stdout and "wrote         vector of 301 float64" in run.stdout
    np.testing.assert_allclose(zarr.open_array(tmp_path / "av.zarr")[:], x["a"] @ x["v"], rtol=1e-10)
    bad = subprocess.run([*BLOCKDIST, "matmul", str(folder / "v.zarr"), str(folder / "w.zarr"),
                          str(tmp_path / "vw.zarr")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "size 301 is different from 203" in bad.stderr
    assert not (tmp_path / "vw.zarr").exists()
