"""Property tests on plans that really stream: many tiles, several k-panels per task, split-k with
a reduction tree of more than one level, ragged edges everywhere; every transpose, alpha, beta
and dtype. Each test asserts first that the drawn plan has what it is meant to exercise, then
that the result is the oracle's (tests/oracle.py).

The plans are made for a cluster larger than the test's (prepare() takes the cluster's shape,
so 16 task slots make split-k plans), with a memory budget that holds only a few chunks per
task, and run on the session's two workers.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blockdist.planning import WORKER_BASELINE, ClusterShape, MachineModel
from blockdist.planning.grid import panel_edges
from blockdist.planning.memory import PanelRead, task_memory
from blockdist.runtime.prepare import check, prepare
from blockdist.runtime.request import Options, Request
from blockdist.runtime.start import start
from tests.conftest import random_data, write_array
from tests.oracle import assert_gemm

pytestmark = [pytest.mark.slow]

DTYPES = ["float32", "float64", "complex64", "complex128"]
#: Panels one chunk deep and a reduction tree of fan-in 2: as many panels and levels as possible.
STREAMING = MachineModel(panel_depth=1, reduce_fan_in=2)
#: And reads that cost more than the tasks' overhead: splitting k pays even on tiny products
#: (the fastest plan: several tiles, rather than the one big tile that would move least).
SPLITTING = MachineModel(panel_depth=1, reduce_fan_in=2, read_bytes_per_second=1e5, task_overhead_seconds=0,
                         traffic_slack=0.0)


def stored(x: np.ndarray, transpose: bool) -> np.ndarray:
    return np.ascontiguousarray(x.conj().T if transpose else x)


def budget_for(chunk: int, tile_chunks: int, itemsize: int, partials: int = 0) -> int:
    """A worker budget whose tasks hold a tile of about ``tile_chunks``² chunks at most."""
    side = tile_chunks * chunk
    read = PanelRead(chunk, (chunk, chunk), itemsize)
    memory = task_memory((side, side), read, read, itemsize=itemsize, scratch_rows=side, partial_tiles=partials)
    return WORKER_BASELINE + memory.total


def run(client, folder: Path, a, b, c0, transposes, alpha, beta, chunk, cluster, model=STREAMING):
    ta, tb = transposes
    write_array(folder / "a.zarr", stored(a, ta), (chunk, chunk))
    # op(B)'s chunks are (chunk + 3) × chunk: its k-chunks do not line up with A's
    write_array(folder / "b.zarr", stored(b, tb), (chunk, chunk + 3) if tb else (chunk + 3, chunk))
    options = Options(transpose_a=ta, transpose_b=tb, alpha=alpha, beta=beta, model=model, verify=True,
                      c=write_array(folder / "c0.zarr", c0, (chunk + 5, chunk)) if beta else None)
    prepared = prepare(check(Request(folder / "a.zarr", folder / "b.zarr", folder / "c.zarr", options)), cluster)
    return prepared.plan, start(prepared, client, contextlib.ExitStack())


@contextlib.contextmanager
def stopped_at_exit(job):
    """Cancel the job if the test leaves before it ends (its files are about to be removed)."""
    try:
        yield job
    finally:
        if not job.done():
            job.cancel()
            job.wait(60)


def panels_per_task(plan) -> int:
    """The fewest k-panels any block-product task of the plan reads of A."""
    ks = plan.k_edges
    return min(len(panel_edges(lo, hi, plan.a.panel_depth, plan.a.chunks[1])) - 1 for lo, hi in zip(ks, ks[1:]))


scalars = st.sampled_from([1.0, -2.5, 0.5])


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunk=st.integers(8, 24), tiles=st.tuples(st.integers(4, 6), st.integers(4, 6)),
       ragged=st.tuples(*[st.integers(1, 7)] * 3), k_chunks=st.integers(3, 6),
       transposes=st.tuples(st.booleans(), st.booleans()), dtype=st.sampled_from(DTYPES), alpha=scalars,
       beta=st.sampled_from([0.0, 1.0, -0.75]), seed=st.integers(0, 2**31))
def test_many_tiles_and_panels_match_the_oracle(client, chunk, tiles, ragged, k_chunks, transposes, dtype, alpha,
                                               beta, seed):
    m, n, k = tiles[0] * chunk + ragged[0], tiles[1] * chunk + ragged[1], k_chunks * chunk + ragged[2]
    rng = np.random.default_rng(seed)
    a, b, c0 = random_data(rng, (m, k), dtype), random_data(rng, (k, n), dtype), random_data(rng, (m, n), dtype)
    cluster = ClusterShape(2, 1, budget_for(chunk, 2, np.dtype(dtype).itemsize))
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as folder:
        plan, job = run(client, Path(folder), a, b, c0, transposes, alpha, beta, chunk, cluster)
        with stopped_at_exit(job):
            assert plan.tiles >= 4 and plan.k_splits == 1
            assert panels_per_task(plan) >= 3
            assert plan.m % plan.tile_rows and plan.n % plan.tile_cols  # ragged tiles at both edges
            out = job.result()
        assert job.verification.ok and len(job.verification.tiles) == plan.tiles
        assert_gemm(out[:], a, b, alpha, beta, c0)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunk=st.integers(8, 20), k_chunks=st.integers(10, 24), ragged=st.tuples(*[st.integers(1, 7)] * 3),
       transposes=st.tuples(st.booleans(), st.booleans()), dtype=st.sampled_from(DTYPES), alpha=scalars,
       beta=st.sampled_from([0.0, -0.75]), seed=st.integers(0, 2**31))
def test_split_k_trees_match_the_oracle(client, chunk, k_chunks, ragged, transposes, dtype, alpha, beta, seed):
    m, n, k = 4 * chunk + ragged[0], chunk + ragged[1], k_chunks * chunk + ragged[2]
    rng = np.random.default_rng(seed)
    a, b, c0 = random_data(rng, (m, k), dtype), random_data(rng, (k, n), dtype), random_data(rng, (m, n), dtype)
    # 16 slots and a budget for 2×2-chunk tiles: a few tiles, each split over k for the slots
    cluster = ClusterShape(16, 1, budget_for(chunk, 2, np.dtype(dtype).itemsize, partials=2))
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as folder:
        plan, job = run(client, Path(folder), a, b, c0, transposes, alpha, beta, chunk, cluster, SPLITTING)
        with stopped_at_exit(job):
            assert plan.strategy == "split-k" and plan.k_splits >= 3  # a tree of fan-in 2, two levels or more
            assert plan.tiles >= 2
            out = job.result()
        assert job.stats.tasks == plan.tiles * plan.k_splits
        assert job.verification.ok
        assert_gemm(out[:], a, b, alpha, beta, c0)
