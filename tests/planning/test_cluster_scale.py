"""Plans for 16 to 4096 workers against a per-worker lower bound computed here, apart from the
planner's own figure; the plan as JSON; the simulator against the cost model."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from blockdist.planning import ClusterShape, MachineModel, plan_for_shape
from blockdist.planning.simulate import simulate
from blockdist.planning.traffic import busiest_worker_traffic, pieces_received

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
from cluster_scale import CASES  # noqa: E402 - benchmarks/cluster_scale.py: issue 15's table


def bound_words(m: int, n: int, k: int, workers: int, memory_words: float) -> float:
    """What a worker doing mnk/P multiply-adds with S words must move: the largest of
    2F/√S − S, the least |A_w|+|B_w|+|C_w| with |A_w|·|B_w|·|C_w| ≥ F² (each part between
    F/n, F/m, F/k and its whole matrix; found here by a search over a log grid of the first
    two parts, the third the least that completes the product), and mn/P."""
    work = m * n * k / workers
    lows, caps = np.array([work / n, work / m, work / k]), np.array([m * k, k * n, m * n], dtype=float)
    a = np.geomspace(lows[0], caps[0], 801)[:, None]
    b = np.geomspace(lows[1], caps[1], 801)[None, :]
    c = np.maximum(work**2 / (a * b), lows[2])
    feasible = c <= caps[2] * (1 + 1e-9)
    loomis_whitney = float(np.where(feasible, a + b + c, np.inf).min())
    return max(2 * work / math.sqrt(memory_words) - memory_words, loomis_whitney, m * n / workers)


@pytest.mark.parametrize(("m", "n", "k", "workers", "memory"), CASES)
def test_per_worker_traffic_is_near_the_bound(m, n, k, workers, memory):
    plan = plan_for_shape(m, n, k, ClusterShape(workers, 1, memory))
    bound = bound_words(m, n, k, workers, memory / 8) * 8
    assert plan.traffic_per_worker <= 1.35 * bound, plan.summary()
    # and the planner's own bound is a bound (it may only be below the one computed here,
    # being taken with the task budget, a little less than the worker's memory)
    assert plan.traffic_lower_bound_per_worker <= bound * 1.01
    assert plan.memory.total <= plan.task_budget


def test_the_plain_plan_of_a_cube_moves_far_more():
    """Without k-splits (every task streaming all of k), the 10⁶³ product on 1024 workers
    moves about twice the bound: what the k-split grid saves."""
    m = n = k = 10**6
    plan = plan_for_shape(m, n, k, ClusterShape(1024, 1, 64 * 10**9))
    plain = plan_for_shape(m, n, k, ClusterShape(1024, 1, 64 * 10**9),
                           model=MachineModel(traffic_slack=0.0, transfer_bytes_per_second=1.0))
    assert plan.k_splits > 1 and plain.k_splits == 1
    assert plain.traffic_per_worker > 1.5 * plan.traffic_per_worker


def test_busiest_worker_traffic_of_a_reduce_scatter():
    # s = B = 4: send 3 bands, receive 3 pieces (fan-in 4: one level), write one band: 7/4 of a tile
    assert busiest_worker_traffic(0.0, 4.0, 4, 4, 1, fan_in=4) == 4.0 * 7 / 4
    # fan-in 2: the root of a band's tree receives one piece at each of its two levels
    assert pieces_received(4, 2) == 2
    assert busiest_worker_traffic(10.0, 4.0, 4, 4, 2, fan_in=2) == 2 * (10.0 + 4.0 * 6 / 4)


def test_plan_json_from_the_cli():
    out = subprocess.run([sys.executable, "-m", "blockdist.cli", "plan", "--shape", "100000,100000,100000",
                          "--workers", "256", "--threads", "1", "--memory", "16GB", "--json", "--simulate",
                          "--storage-bandwidth", "1GB/s", "--aggregate-bandwidth", "100GB/s"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    for key in ("tasks", "tiles", "k_splits", "tile_rows", "tile_cols", "bytes_read", "bytes_written",
                "bytes_moved_between_workers", "traffic_per_worker", "traffic_lower_bound_per_worker",
                "memory_per_task", "predicted_seconds"):
        assert key in record, key
    plan = plan_for_shape(10**5, 10**5, 10**5, ClusterShape(256, 1, 16 * 10**9),
                          model=MachineModel(worker_storage_bytes_per_second=1e9,
                                             aggregate_storage_bytes_per_second=100e9))
    assert (record["tasks"], record["k_splits"], record["traffic_per_worker"]) == (
        plan.tasks, plan.k_splits, plan.traffic_per_worker)
    assert record["bytes_moved_between_workers"] > 0 and record["predicted_seconds"] > 0
    simulation = record["simulation"]
    assert 0 < simulation["utilisation"] <= 1 and simulation["seconds"] > 0


def test_rates_on_the_command_line_are_checked():
    out = subprocess.run([sys.executable, "-m", "blockdist.cli", "plan", "--shape", "10,10,10",
                          "--storage-bandwidth", "fast"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "expected a rate such as 1GB/s" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(("m", "n", "k", "workers", "memory"), [
    (8192, 8192, 8192, 2, 4 * 2**30),  # the benchmark's square product: two streaming tasks
    (1000, 1000, 262_144, 2, 4 * 2**30),  # the inner product: split-k
    (10**5, 10**5, 10**5, 256, 16 * 10**9),  # a k-split grid with bands
])
def test_the_simulator_agrees_with_the_cost_model_on_even_plans(m, n, k, workers, memory):
    plan = plan_for_shape(m, n, k, ClusterShape(workers, 1, memory))
    run = simulate(plan)
    assert run.seconds == pytest.approx(plan.predicted_seconds, rel=0.2)
    assert 0.5 < run.utilisation <= 1
    assert run.bytes_read == pytest.approx(plan.bytes_read, rel=1e-9)
    assert run.bytes_moved_between_workers <= plan.transfer_bytes


def test_shared_storage_slows_the_run_and_changes_the_plan():
    cluster = ClusterShape(256, 1, 16 * 10**9)
    free = plan_for_shape(10**5, 10**5, 10**5, cluster)
    thin_storage = MachineModel(aggregate_storage_bytes_per_second=2e9)
    same_plan = dataclasses.replace(free, model=thin_storage)
    assert simulate(same_plan).seconds > 1.5 * simulate(free).seconds
    assert same_plan.predicted_seconds > 1.5 * free.predicted_seconds
    replanned = plan_for_shape(10**5, 10**5, 10**5, cluster, model=thin_storage)
    assert replanned.predicted_seconds < same_plan.predicted_seconds  # reads less from the shared store
    assert replanned.bytes_read < free.bytes_read
