"""Bad input fuzzed (issue 17): Hypothesis drives ``blockdist matmul`` (a subprocess) and
``blockdist.matmul`` (on the session's cluster) with random shapes, dtypes, chunk grids,
options and paths. Every run ends in the right product (exit 0) or in a refusal (exit 2, one
or two lines, no traceback, an ``InputError`` in Python), and nothing the user owns changes:
the inputs never, an existing output only when a product was asked to replace it and made.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import blockdist
from blockdist.errors import InputError
from tests.conftest import tree_digest

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:The data type .* does not have a Zarr V3 specification")]

BLOCKDIST = [sys.executable, "-m", "blockdist.cli"]
DTYPES = ["float64", "float32", "int32", "complex64", "bool", "S4"]


@st.composite
def operands(draw):
    m, k, n = (draw(st.integers(1, 48)) for _ in range(3))
    k_b = draw(st.sampled_from([k, k, k, draw(st.integers(1, 48))]))  # mostly matching, sometimes not
    dims_b = draw(st.sampled_from([2, 2, 2, 2, 1, 3]))
    return {
        "a": ((m, k), draw(st.sampled_from(DTYPES)), (draw(st.integers(1, m)), draw(st.integers(1, k)))),
        "b": ((k_b, n) if dims_b == 2 else (k_b,) if dims_b == 1 else (k_b, n, 2),
              draw(st.sampled_from(DTYPES)), None),
    }


def _write(path: Path, shape, dtype: str, chunks, rng: np.random.Generator) -> np.ndarray:
    if dtype == "S4":
        values = np.full(shape, b"ab", dtype="S4")
    elif dtype == "bool":
        values = rng.random(shape) < 0.5
    else:
        values = (rng.standard_normal(shape) * 4).astype(dtype)
    chunks = chunks or tuple(max(1, s // 2) for s in shape)
    zarr.create_array(store=str(path), data=values, chunks=chunks, compressors=None,
                      config={"write_empty_chunks": True})  # a chunk of zeros is stored, not left out
    return values


OPTIONS = st.lists(st.sampled_from([
    ["--memory", "1KB"], ["--memory", "lots"], ["--memory", "0"], ["--memory", "2GB"],
    ["--workers", "0"], ["--workers", "x"], ["--threads", "-1"],
    ["--out-chunks", "0,4"], ["--out-chunks", "4"], ["--out-chunks", "8,8"], ["--out-chunks", "7,5"],
    ["--out-codec", "bogus"], ["--out-codec", "zstd"], ["--out-shards", "3,3"],
    ["--alpha", "x"], ["--alpha", "2"], ["--beta", "1"], ["--transpose-a"], ["--transpose-b"],
    ["--verify"], ["--resume"], ["--overwrite"], ["--partials", "disk"], ["--allow-missing-chunks"],
]), max_size=3, unique_by=lambda option: option[0])

OUT = st.sampled_from(["fresh", "existing-array", "a-file", "a-folder", "the-input", "inside-input"])


def _out_path(kind: str, folder: Path, a_path: Path) -> Path:
    out = folder / "c.zarr"
    if kind == "existing-array":
        zarr.create_array(store=str(out), data=np.zeros((3, 3)), chunks=(3, 3))
    elif kind == "a-file":
        out.write_text("mine")
    elif kind == "a-folder":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    elif kind == "the-input":
        return a_path
    elif kind == "inside-input":
        return a_path / "sub.zarr"
    return out


def _expected(a: np.ndarray, b: np.ndarray, options: list[list[str]]) -> np.ndarray:
    flags = {o[0]: o[1:] for o in options}
    left = a.T if "--transpose-a" in flags else a
    right = b.T if "--transpose-b" in flags else b
    if np.iscomplexobj(left) and "--transpose-a" in flags:
        left = left.conj()
    if np.iscomplexobj(right) and "--transpose-b" in flags:
        right = right.conj()
    alpha = float(flags["--alpha"][0]) if "--alpha" in flags else 1.0
    return alpha * (left.astype(np.result_type(a, b)) @ right.astype(np.result_type(a, b)))


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(operands(), OPTIONS, OUT, st.integers(0, 2**32 - 1))
def test_the_cli_ends_in_a_product_or_a_short_refusal_and_touches_nothing_else(spec, options, out_kind, seed):
    rng = np.random.default_rng(seed)
    folder = Path(tempfile.mkdtemp(prefix="blockdist-fuzz-"))
    try:
        a = _write(folder / "a.zarr", *spec["a"], rng)
        b = _write(folder / "b.zarr", *spec["b"], rng)
        out = _out_path(out_kind, folder, folder / "a.zarr")
        inputs_before = (tree_digest(folder / "a.zarr"), tree_digest(folder / "b.zarr"))
        out_before = tree_digest(out) if out.exists() and out_kind not in ("the-input", "inside-input") else None
        args = [*BLOCKDIST, "matmul", "a.zarr", "b.zarr", str(out.relative_to(folder)), "--workers", "1",
                *[part for option in options for part in option]]
        result = subprocess.run(args, cwd=folder, capture_output=True, text=True, timeout=300)
        assert "Traceback" not in result.stderr + result.stdout, result.stderr
        assert result.returncode in (0, 2), (args, result.returncode, result.stderr)
        assert (tree_digest(folder / "a.zarr"), tree_digest(folder / "b.zarr")) == inputs_before
        event(f"exit {result.returncode}")
        if result.returncode == 2:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            assert 1 <= len(lines) <= 2 and "error" in lines[0], result.stderr
            if out_before is not None:
                assert tree_digest(out) == out_before  # refused: not touched
            elif out_kind == "fresh":
                assert not out.exists()
        else:
            np.testing.assert_allclose(zarr.open_array(out)[:], _expected(a, b, options), rtol=1e-4, atol=1e-3)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


API_OPTIONS = st.fixed_dictionaries({}, optional={
    "memory": st.sampled_from(["1KB", "lots", 0, -5, "2GB", 2**31]),
    "out_chunks": st.sampled_from([(0, 4), (4,), (8, 8), "8,8", None]),
    "alpha": st.sampled_from([2.0, "x", 1j]),
    "beta": st.sampled_from([0.0, 1.0]),
    "transpose_a": st.booleans(), "transpose_b": st.booleans(),
    "verify": st.sampled_from([True, False, -1, 2]),
    "partials": st.sampled_from(["memory", "storage", "disk"]),
    "overwrite": st.booleans(), "resume": st.booleans(),
})


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(operands(), API_OPTIONS, st.integers(0, 2**32 - 1))
def test_the_api_ends_in_a_product_or_an_input_error(client, spec, options, seed):
    rng = np.random.default_rng(seed)
    folder = Path(tempfile.mkdtemp(prefix="blockdist-fuzz-api-"))
    try:
        a = _write(folder / "a.zarr", *spec["a"], rng)
        b = _write(folder / "b.zarr", *spec["b"], rng)
        before = (tree_digest(folder / "a.zarr"), tree_digest(folder / "b.zarr"))
        try:
            out = blockdist.matmul(folder / "a.zarr", folder / "b.zarr", folder / "c.zarr", client=client, **options)
        except InputError as error:
            event(f"refused: {type(error).__name__}")
            assert str(error).strip()
            assert not (folder / "c.zarr").exists()
        else:
            event("computed")
            flags = [[f"--{k.replace('_', '-')}"] for k, v in options.items() if v is True]
            if isinstance(options.get("alpha"), float):
                flags.append(["--alpha", str(options["alpha"])])
            np.testing.assert_allclose(out[:], _expected(a, b, flags), rtol=1e-4, atol=1e-3)
        assert (tree_digest(folder / "a.zarr"), tree_digest(folder / "b.zarr")) == before
    finally:
        shutil.rmtree(folder, ignore_errors=True)
