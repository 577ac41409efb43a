"""The planner: every number it reports adds up, on paper and against brute force."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockdist.errors import MemoryBudgetError, ShapeError
from blockdist.planning import ClusterShape, MachineModel, MatrixLayout, ReadSource, check_inner, make_plan
from blockdist.planning.cost import Problem, TaskShape, estimate_seconds
from blockdist.planning.grid import reduce_task_count, split_edges
from blockdist.planning.memory import WORKER_BASELINE

GiB = 2**30


def plan_for(m, k, n, *, a_chunks=(512, 512), b_chunks=(512, 512), itemsize=8, workers=2, threads=1,
             memory=2 * GiB):
    a = MatrixLayout((m, k), a_chunks, itemsize)
    b = MatrixLayout((k, n), b_chunks, itemsize)
    return make_plan(a, b, ClusterShape(workers, threads, memory), dtype="float64")


def brute_force_bytes_read(plan) -> int:
    """Bytes of whole chunks each task touches, summed task by task."""
    total = 0
    rows, cols, ks = plan.grid.row_edges, plan.grid.col_edges, plan.k_edges
    for r0, r1 in zip(rows, rows[1:]):
        for c0, c1 in zip(cols, cols[1:]):
            for k0, k1 in zip(ks, ks[1:]):
                ca, cb = min(plan.a.chunks[1], plan.k), min(plan.b.chunks[0], plan.k)
                a_k = min(plan.k, -(-k1 // ca) * ca) - (k0 // ca) * ca
                b_k = min(plan.k, -(-k1 // cb) * cb) - (k0 // cb) * cb
                total += (r1 - r0) * a_k * plan.a.itemsize + b_k * (c1 - c0) * plan.b.itemsize
    return total


layouts = st.tuples(
    st.integers(1, 3000), st.integers(1, 3000), st.integers(1, 3000),
    st.integers(1, 700), st.integers(1, 700), st.integers(1, 700), st.integers(1, 700),
    st.sampled_from([1, 2, 4]), st.sampled_from([1, 2]),
)


@settings(max_examples=150, deadline=None)
@given(layouts)
def test_plan_numbers_add_up(case):
    m, k, n, cm, ck, ckb, cn, workers, threads = case
    plan = plan_for(m, k, n, a_chunks=(cm, ck), b_chunks=(ckb, cn), workers=workers, threads=threads,
                    memory=4 * GiB)
    # Tiles cover C exactly and are unions of whole chunks of A's rows and B's columns.
    assert plan.grid.row_edges[0] == 0 and plan.grid.row_edges[-1] == m
    assert plan.grid.col_edges[0] == 0 and plan.grid.col_edges[-1] == n
    assert plan.k_edges[0] == 0 and plan.k_edges[-1] == k
    assert all(e % min(cm, m) == 0 for e in plan.grid.row_edges[:-1])
    assert all(e % min(cn, n) == 0 for e in plan.grid.col_edges[:-1])
    # Each output chunk belongs to one tile.
    assert plan.tile_rows % plan.out_chunks[0] == 0 or plan.tile_rows == m
    assert plan.tile_cols % plan.out_chunks[1] == 0 or plan.tile_cols == n
    # Memory fits, and the total is the sum of the terms.
    assert plan.memory.total <= plan.task_budget
    assert plan.memory.total == sum(size for _, size in plan.memory.terms())
    # Reads match a task-by-task count, and are never below reading each input once.
    assert plan.bytes_read == brute_force_bytes_read(plan)
    assert plan.bytes_read >= (m * k + k * n) * 8
    assert plan.bytes_written == m * n * 8
    # Strategy and task count are consistent.
    assert (plan.strategy == "split-k") == (plan.k_splits > 1)
    s, bands = plan.k_splits, plan.reduce_bands
    scatter = s * bands + 1 if bands > 1 else 0  # the band cuts and the gather of the tile's figures
    assert plan.tasks == plan.tiles * (s + scatter + bands * reduce_task_count(s, plan.reduce_fan_in))
    assert bands <= max(1, s) and (plan.tile_rows // plan.out_chunks[0] >= bands or plan.tile_rows >= m)
    assert plan.flops == 2 * m * n * k


def test_square_plan_keeps_both_threads_busy_and_reads_little():
    plan = plan_for(8192, 8192, 8192, memory=4 * GiB)
    assert plan.strategy == "stream"
    assert plan.tiles >= 2 and plan.tiles % 2 == 0
    assert plan.io_ratio < 2


def test_inner_product_shape_splits_k():
    a = MatrixLayout((1000, 500_000), (1000, 8192), 8)
    b = MatrixLayout((500_000, 1000), (8192, 1000), 8)
    plan = make_plan(a, b, ClusterShape(2, 1, 2 * GiB), dtype="float64")
    assert plan.strategy == "split-k"
    assert plan.tiles == 1 and plan.k_splits >= 2
    assert "split-k" in repr(plan) and "reduce-scatter" in plan.reason
    # Split points fall on A's chunk boundaries, so no chunk of A is read twice.
    assert all(e % 8192 == 0 for e in plan.k_edges[1:-1])
    assert plan.bytes_read == (1000 * 500_000 + 500_000 * 1000) * 8


def test_tiles_are_chosen_from_memory_not_storage_chunks():
    small = plan_for(8192, 8192, 8192, a_chunks=(512, 512), b_chunks=(512, 512), memory=4 * GiB)
    assert small.tile_rows > 512 and small.tile_cols > 512


def test_a_smaller_budget_gives_smaller_tiles_within_it():
    big = plan_for(8192, 8192, 8192, memory=8 * GiB)
    small = plan_for(8192, 8192, 8192, memory=WORKER_BASELINE + 64 * 2**20)
    assert small.memory.total <= small.task_budget < big.task_budget
    assert small.tile_rows * small.tile_cols < big.tile_rows * big.tile_cols


def test_budget_too_small_for_one_chunk_says_how_much_is_needed():
    with pytest.raises(MemoryBudgetError) as caught:
        plan_for(8192, 8192, 8192, a_chunks=(4096, 4096), b_chunks=(4096, 4096), memory=600 * 2**20)
    message = str(caught.value)
    assert "too small" in message and "4096×4096" in message and "Give at least" in message
    assert "MiB per worker" in message or "GiB per worker" in message


def test_the_repr_reports_each_figure():
    text = repr(plan_for(4096, 4096, 4096))
    for word in ("strategy", "tiles", "tasks", "memory", "c tile", "panels", "reads", "lower bound", "GFLOP"):
        assert word in text


@pytest.mark.parametrize(
    ("a_shape", "b_shape", "words"),
    [
        ((10, 20), (21, 5), ["inner dimensions differ", "10×20", "21×5"]),
        ((10,), (10, 5), ["A has 1 dimension", "2-D"]),
        ((10, 5), (5, 3, 2), ["B has 3 dimension"]),
        ((0, 5), (5, 3), ["A is empty"]),
    ],
)
def test_shapes_are_checked_with_both_named(a_shape, b_shape, words):
    with pytest.raises(ShapeError) as caught:
        check_inner("A", a_shape, "B", b_shape)
    for word in words:
        assert word in str(caught.value)


@given(st.integers(1, 10_000), st.integers(1, 64), st.integers(1, 2000))
def test_split_edges_are_increasing_aligned_and_cover(length, pieces, align):
    edges = split_edges(length, pieces, align)
    assert edges[0] == 0 and edges[-1] == length
    assert all(lo < hi for lo, hi in zip(edges, edges[1:]))
    assert all(e % align == 0 for e in edges[1:-1])


def test_planning_a_huge_product_is_instant():
    import time

    a = MatrixLayout((10**6, 10**6), (4096, 4096), 8)
    start = time.perf_counter()
    plan = make_plan(a, a, ClusterShape(1024, 1, 64 * 10**9), dtype="float64")
    elapsed = time.perf_counter() - start
    assert plan.tiles * plan.k_splits >= 1024  # every worker has a block product
    # Not a timing assertion on the product: planning must not walk tiles × k-chunks.
    assert elapsed < 30


def test_decoded_reads_are_priced_by_their_codec():
    model = MachineModel(zstd_read_bytes_per_second=0.5e9, blosc_read_bytes_per_second=2e9, read_bytes_per_second=1e9)
    layout = MatrixLayout((8192, 8192), (1024, 1024), 8)
    assert model.read_rate(replace(layout, codec="zstd")) == 0.5e9
    assert model.read_rate(replace(layout, codec="blosc")) == 2e9
    assert model.read_rate(replace(layout, codec="gzip")) == 1e9
    assert model.read_rate(replace(layout, codec="zstd", source=ReadSource.OBJECT)) == model.object_read_bytes_per_second
    assert MatrixLayout.from_dict(replace(layout, codec="zstd").to_dict()).codec == "zstd"
    assert replace(layout, codec="blosc").transposed().codec == "blosc"
    # The cost model sees what decoding costs: the same tiles read from zstd take longer.
    cluster = ClusterShape(workers=2, threads=1, memory_per_worker=4 * 2**30)
    shape = TaskShape(4096, 4096, 1, 2048)
    fast, slow = (estimate_seconds(Problem(replace(layout, codec=c), replace(layout, codec=c), 8, cluster, model), shape)
                  for c in ("blosc", "zstd"))
    assert slow > fast
