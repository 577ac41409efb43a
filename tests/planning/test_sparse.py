"""Absent blocks cost nothing: the plan's present work and reads against brute force on element
masks, the stretches tasks read against the product they must give, and the balance of the work."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockdist.planning import ClusterShape, MatrixLayout, make_plan
from blockdist.planning.cost import makespan
from blockdist.planning.grid import edges, panel_edges, split_edges
from blockdist.planning.presence import ChunkPresence, StoredChunks
from blockdist.planning.simulate import simulate
from blockdist.planning.sparse import panel_runs, tile_work

GiB = 2**30


def layout(shape, chunks, present: np.ndarray | None) -> MatrixLayout:
    stored = None if present is None else StoredChunks(ChunkPresence.of(present), int(present.sum()), present.size)
    return MatrixLayout(shape, chunks, 8, stored=stored)


def element_mask(shape, chunks, present: np.ndarray | None) -> np.ndarray:
    """Which elements lie in a stored chunk."""
    if present is None:
        return np.ones(shape, dtype=bool)
    return np.kron(present, np.ones(chunks, dtype=bool))[: shape[0], : shape[1]].astype(bool)


@st.composite
def products(draw):
    m, k, n = draw(st.integers(1, 40)), draw(st.integers(1, 40)), draw(st.integers(1, 40))
    cm, cka, ckb, cn = (draw(st.integers(1, max(1, size // 2 + 1))) for size in (m, k, k, n))
    grids = [(-(-m // cm), -(-k // cka)), (-(-k // ckb), -(-n // cn))]
    kinds = draw(st.tuples(*[st.sampled_from(["dense", "random", "none"])] * 2))
    masks = []
    for grid, kind in zip(grids, kinds, strict=True):
        if kind == "dense":
            masks.append(None)
        else:
            bits = draw(st.lists(st.booleans(), min_size=grid[0] * grid[1], max_size=grid[0] * grid[1]))
            masks.append(np.array(bits if kind == "random" else [False] * len(bits), dtype=bool).reshape(grid))
    tm = cm * draw(st.integers(1, -(-m // cm)))
    tn = cn * draw(st.integers(1, -(-n // cn)))
    splits = draw(st.integers(1, max(1, -(-k // cka))))
    return (m, k, n), (cm, cka, ckb, cn), masks, (tm, tn), splits


@settings(max_examples=80, deadline=None)
@given(products())
def test_present_work_and_reads_match_brute_force_on_element_masks(case):
    (m, k, n), (cm, cka, ckb, cn), (pa, pb), (tm, tn), splits = case
    a, b = layout((m, k), (cm, cka), pa), layout((k, n), (ckb, cn), pb)
    k_edges = tuple(split_edges(k, splits, cka))
    work = tile_work(a, b, tm, tn, k_edges)
    ma, mb = element_mask((m, k), (cm, cka), pa), element_mask((k, n), (ckb, cn), pb)
    for p, (k0, k1) in enumerate(zip(k_edges, k_edges[1:])):
        for i, (r0, r1) in enumerate(zip(edges(m, tm), edges(m, tm)[1:])):
            for j, (c0, c1) in enumerate(zip(edges(n, tn), edges(n, tn)[1:])):
                pairs = ma[r0:r1, k0:k1].astype(np.int64) @ mb[k0:k1, c0:c1].astype(np.int64)
                assert work.flops[p, i, j] == 2 * pairs.sum()
                # a stored chunk is read where a stored block of the other meets it in this k-piece
                a_read = sum(ma[x0:x1, y0:y1].sum() for x0, x1 in zip(edges(m, cm), edges(m, cm)[1:])
                             if r0 <= x0 < r1 for y0, y1 in zip(edges(k, cka), edges(k, cka)[1:])
                             if y1 > k0 and y0 < k1 and mb[max(y0, k0):min(y1, k1), c0:c1].any())
                b_read = sum(mb[y0:y1, x0:x1].sum() for x0, x1 in zip(edges(n, cn), edges(n, cn)[1:])
                             if c0 <= x0 < c1 for y0, y1 in zip(edges(k, ckb), edges(k, ckb)[1:])
                             if y1 > k0 and y0 < k1 and ma[r0:r1, max(y0, k0):min(y1, k1)].any())
                assert work.a_bytes[p, i, j] == 8 * a_read
                assert work.b_bytes[p, i, j] == 8 * b_read


@settings(max_examples=80, deadline=None)
@given(products(), st.integers(0, 2**32 - 1))
def test_the_stretches_a_task_reads_give_its_whole_product(case, seed):
    (m, k, n), (cm, cka, ckb, cn), (pa, pb), (tm, tn), splits = case
    a, b = layout((m, k), (cm, cka), pa), layout((k, n), (ckb, cn), pb)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k)) * element_mask((m, k), (cm, cka), pa)
    y = rng.standard_normal((k, n)) * element_mask((k, n), (ckb, cn), pb)
    k_edges = split_edges(k, splits, cka)
    for k0, k1 in zip(k_edges, k_edges[1:]):
        for r0, r1 in zip(edges(m, tm), edges(m, tm)[1:]):
            for c0, c1 in zip(edges(n, tn), edges(n, tn)[1:]):
                a_edges, b_edges = panel_edges(k0, k1, cka, cka), panel_edges(k0, k1, ckb, ckb)
                a_runs, b_runs = panel_runs(a, b, ((r0, r1), (c0, c1)), a_edges, b_edges)
                got = np.zeros((r1 - r0, c1 - c0))
                for lo, hi in zip(sorted(set(a_edges) | set(b_edges)), sorted(set(a_edges) | set(b_edges))[1:]):
                    ia = np.searchsorted(a_edges, lo, side="right") - 1
                    ib = np.searchsorted(b_edges, lo, side="right") - 1
                    for a0, a1 in a_runs[ia]:
                        for b0, b1 in b_runs[ib]:
                            got[a0:a1, b0:b1] += x[r0 + a0 : r0 + a1, lo:hi] @ y[lo:hi, c0 + b0 : c0 + b1]
                np.testing.assert_allclose(got, x[r0:r1, k0:k1] @ y[k0:k1, c0:c1], atol=1e-12)


def block_diagonal(blocks: int) -> np.ndarray:
    return np.eye(blocks, dtype=bool)


@pytest.mark.parametrize(("name", "present", "slots"), [
    ("block-diagonal", block_diagonal(8), 2),
    ("block-diagonal", block_diagonal(8), 4),
    ("first block row only", np.vstack([np.ones((1, 8), bool), np.zeros((7, 8), bool)]), 4),
    ("one block", np.pad(np.ones((1, 1), bool), ((3, 4), (5, 2))), 2),
])
def test_the_present_work_is_counted_and_spread_over_the_threads(name, present, slots):
    a = layout((4096, 4096), (512, 512), present)
    b = layout((4096, 4096), (512, 512), None)
    plan = make_plan(a, b, ClusterShape(slots, 1, 8 * GiB), dtype="float64")
    pairs = int(present.sum()) * 8  # each stored block of A meets every block of its row of B
    assert plan.flops_computed == pairs * 2 * 512**3
    work = [w[0] for w in plan.present().piece_work.values()]
    assert sum(work) == plan.flops_computed and plan.block_tasks == len(work)
    if pairs * 512 * 512 >= slots * 512 * 512:  # enough present blocks to share
        assert makespan(work, slots) <= 1.3 * sum(work) / slots, (name, plan.summary())
    assert simulate(plan).tasks == plan.tasks
    assert plan.bytes_read <= present.sum() * 512**2 * 8 + 8 * plan.grid.shape[0] * 4096**2  # never A's zeros


def test_a_tile_with_no_present_product_is_empty_and_has_no_task():
    present = np.zeros((8, 8), bool)
    present[:4, :4] = True  # A's upper left quarter: C's lower half is 0
    a, b = layout((4096, 4096), (512, 512), present), layout((4096, 4096), (512, 512), None)
    plan = make_plan(a, b, ClusterShape(2, 1, 8 * GiB), dtype="float64")
    lower = {t.number for t in plan.grid.tiles() if t.rows[0] >= 2048}
    assert lower and plan.empty_tiles == lower and plan.tasks == plan.block_tasks
    assert "present block products only, 25.0%" in plan.summary() and "A: 16 of 64 chunks" in plan.summary()


def test_a_chain_prices_an_input_by_its_present_work_which_can_change_the_order():
    from blockdist.planning import MachineModel
    from blockdist.planning.chain import plan_chain

    # A1·A2·A3, 256×512 · 512×512 · 512×128: dense, A1·(A2·A3) is cheaper (50 against 84 Mmul-adds);
    # with 1/8 of A1's chunks stored, A1·A2 costs 8.4 M and (A1·A2)·A3 wins (25 against 36)
    present = np.zeros((4, 8), dtype=bool)
    present[np.arange(4), 2 * np.arange(4)] = True
    a1 = layout((256, 512), (64, 64), present)
    shapes = [(256, 512), (512, 512), (512, 128)]
    cluster, model = ClusterShape(1, 1, GiB), MachineModel(read_bytes_per_second=1e15)  # flops decide
    dense = plan_chain(["A1", "A2", "A3"], shapes, 8, cluster, model)
    sparse = plan_chain(["A1", "A2", "A3"], shapes, 8, cluster, model, [a1, None, None])
    assert dense.order() == "A1·(A2·A3)" and sparse.order() == "(A1·A2)·A3"
    assert sparse.flops == 2 * (256 * 512 * 512 // 8 + 256 * 512 * 128)
    assert sparse.left_to_right_flops == sparse.flops < dense.flops
