"""Diagonal tiles of a symmetric product: A's panels alone, syrk (herk) at half the flops."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from blockdist.storage import locate
from blockdist.worker import blas
from blockdist.worker.panels import PanelSource
from blockdist.worker.spec import OperandSpec, TileTask
from blockdist.worker.tasks import _square_kernel, accumulate_tile
from tests.conftest import random_data, write_array
from tests.oracle import assert_gemm

N, K, CHUNK = 96, 150, 32  #: a tile of three chunks a side: panels of several blocks


def operands(tmp_path, dtype, transpose, compressed):  # type: ignore[no-untyped-def]
    """X (N×K), stored as X or as Xᴴ, and the specs of op(A) = X (or Xᴴ·) and op(B) = its (conjugate) transpose."""
    x = random_data(np.random.default_rng(8), (K, N) if transpose else (N, K), dtype)
    path = tmp_path / "x.zarr"
    if compressed:
        zarr.create_array(store=str(path), data=x, chunks=(CHUNK, CHUNK))  # zstd
    else:
        write_array(path, x, (CHUNK, CHUNK))
    ref, complex_ = locate(path), np.dtype(dtype).kind == "c"
    mapped = not compressed
    a = OperandSpec(ref, CHUNK, CHUNK, transpose=transpose, conjugate=transpose and complex_, mapped=mapped)
    b = OperandSpec(ref, CHUNK, CHUNK, transpose=not transpose, conjugate=not transpose and complex_, mapped=mapped)
    op_a = x.conj().T if transpose else x
    return op_a, a, b


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "complex128"])
@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("compressed", [False, True])
def test_a_diagonal_tile_reads_only_a_and_is_the_product(tmp_path, dtype, transpose, compressed):
    op_a, a, b = operands(tmp_path, dtype, transpose, compressed)
    task = TileTask(rows=(0, N), cols=(0, N), ks=(0, K), a=a, b=b, kernel_rows=64, dtype=dtype, square=True)
    general = TileTask(rows=(0, N), cols=(0, N), ks=(0, K), a=a, b=b, kernel_rows=64, dtype=dtype)
    tile, stats = accumulate_tile(task)
    _, general_stats = accumulate_tile(general)
    assert_gemm(tile, op_a, op_a.conj().T, 1.0, 0.0, None)
    by_syrk = _square_kernel(task, PanelSource(a, task, is_a=True)) is not None
    # Xᴴ·X of complex X read as a transposed view is the one case herk cannot take: gemm computes it all
    assert by_syrk == (not (np.dtype(dtype).kind == "c" and transpose))
    if by_syrk:
        np.testing.assert_array_equal(tile, tile.conj().T)  # one triangle computed, mirrored
        assert stats.bytes_read < 0.6 * general_stats.bytes_read  # B's panels were never read


def test_without_blas_the_tile_is_computed_in_full(tmp_path):
    op_a, a, b = operands(tmp_path, "float64", False, False)
    task = TileTask(rows=(0, N), cols=(0, N), ks=(0, K), a=a, b=b, kernel_rows=64, dtype="float64", square=True,
                    blas=False)
    assert _square_kernel(task, PanelSource(a, task, is_a=True)) is None
    tile, _ = accumulate_tile(task)
    assert_gemm(tile, op_a, op_a.T, 1.0, 0.0, None)


@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_syrk_beta_adds_into_the_upper_triangle_only(dtype):
    rng = np.random.default_rng(9)
    p = random_data(rng, (40, 23), dtype)
    c0 = random_data(rng, (40, 40), dtype)
    c0 = c0 + c0.conj().T  # herk takes C to be Hermitian (the imaginary part of its diagonal is dropped)
    c = c0.copy()
    assert blas.syrk(c, p, hermitian=True, beta=1.0)
    np.testing.assert_allclose(np.triu(c), np.triu(c0 + p @ p.conj().T), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(np.tril(c, -1), np.tril(c0, -1))


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_diagonal_blocks_smaller_than_the_tile_and_its_chunks(tmp_path, monkeypatch, compressed, dtype):
    import blockdist.worker.tasks as tasks

    monkeypatch.setattr(tasks, "SQUARE_BLOCK", 20)  # blocks of 20 rows in chunks of 32: every edge case
    op_a, a, b = operands(tmp_path, dtype, False, compressed)
    task = TileTask(rows=(0, N), cols=(0, N), ks=(0, K), a=a, b=b, kernel_rows=64, dtype=dtype, square=True)
    tile, _ = accumulate_tile(task)
    assert_gemm(tile, op_a, op_a.conj().T, 1.0, 0.0, None)
    np.testing.assert_array_equal(tile, tile.conj().T)
