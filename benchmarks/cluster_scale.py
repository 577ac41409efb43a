"""Plans for 16 to 4096 workers: per-worker traffic against the bound, and simulated runs.

For each case of issue 15's table it plans the product from sizes alone three ways — the
plain output-stationary plan (every task streams all of k, no partials), blockdist's plan
on chunks of 4096, and blockdist's plan on its default made-up chunks (an edge near 4096
that cuts each size evenly) — on S3-like storage (1 GB/s per worker, 100 GB/s in all,
partials at 1 GB/s between workers), and replays each on that cluster with
``blockdist.planning.simulate``. Planning time is measured (best of three).

    python benchmarks/cluster_scale.py            # writes results/cluster-scale.{json,md}
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from blockdist.planning import ClusterShape, MachineModel, plan_for_shape
from blockdist.planning.simulate import simulate

HERE = Path(__file__).resolve().parent
GB = 1e9
CASES = [
    (10**6, 10**6, 10**6, 1024, 64 * 10**9),
    (10**5, 10**5, 10**5, 16, 16 * 10**9),
    (10**5, 10**5, 10**5, 256, 16 * 10**9),
    (10**5, 10**5, 10**5, 4096, 8 * 10**9),
    (2 * 10**5, 5 * 10**4, 3 * 10**5, 64, 32 * 10**9),
    (10**7, 10**4, 10**4, 256, 32 * 10**9),
    (10**4, 10**4, 10**8, 1024, 16 * 10**9),
]
#: The ratios issue 15 reported for the planner before it (chunks of 4096).
BEFORE = [3.07, 4.20, 1.95, 1.89, 6.14, 1.04, 1.00]
S3_LIKE = MachineModel(worker_storage_bytes_per_second=1 * GB, aggregate_storage_bytes_per_second=100 * GB,
                       transfer_bytes_per_second=1 * GB)
#: Partials that never pay: only plans that stream all of k (output-stationary).
PLAIN = MachineModel(worker_storage_bytes_per_second=1 * GB, aggregate_storage_bytes_per_second=100 * GB,
                     transfer_bytes_per_second=1.0, traffic_slack=0.0)


def measure(m: int, n: int, k: int, workers: int, memory: int, model: MachineModel, chunks: int | None) -> dict:
    cluster = ClusterShape(workers, 1, memory)
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        plan = plan_for_shape(m, n, k, cluster, model=model, chunks=chunks)
        seconds.append(time.perf_counter() - start)
    run = simulate(plan)
    return {"tile": [plan.tile_rows, plan.tile_cols], "k_splits": plan.k_splits, "bands": plan.reduce_bands,
            "chunks": list(plan.a.chunks), "tasks": plan.tasks, "traffic_per_worker": plan.traffic_per_worker,
            "bound": plan.traffic_lower_bound_per_worker, "ratio": plan.traffic_ratio,
            "memory_per_task": plan.memory.total, "predicted_seconds": plan.predicted_seconds,
            "simulated": run.to_dict(), "planning_seconds": min(seconds)}


def main() -> int:
    rows, lines = [], [
        "# Cluster scale: per-worker traffic against the bound, S3-like storage",
        "",
        f"Load average at start {os.getloadavg()[0]:.2f}. Storage 1 GB/s per worker, 100 GB/s aggregate; "
        "partials 1 GB/s between workers; 1 thread per worker; rates of this machine's model otherwise "
        "(36 GFLOP/s a thread). Traffic: the busiest worker's reads, writes and partials; bound: "
        "`blockdist.planning.bounds` (Hong–Kung / Loomis–Whitney, with the task budget as memory). "
        "Before: issue 15's figures for the planner before this change (chunks of 4096).",
        "",
        "| m × n × k | P | memory | before | plain plan | blockdist, chunks 4096 | blockdist, even chunks "
        "| tile × k-splits (bands) | simulated (predicted) | utilisation | planning |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for (m, n, k, workers, memory), before in zip(CASES, BEFORE, strict=True):
        plain = measure(m, n, k, workers, memory, PLAIN, None)
        fixed = measure(m, n, k, workers, memory, S3_LIKE, 4096)
        even = measure(m, n, k, workers, memory, S3_LIKE, None)
        rows.append({"m": m, "n": n, "k": k, "workers": workers, "memory": memory, "before_ratio": before,
                     "plain": plain, "chunks_4096": fixed, "even_chunks": even})
        sim = even["simulated"]
        lines.append(
            f"| {m:.0e} × {n:.0e} × {k:.0e} | {workers} | {memory / GB:.0f} GB | {before:.2f} "
            f"| {plain['ratio']:.2f} | {fixed['ratio']:.2f} | **{even['ratio']:.2f}** "
            f"({even['traffic_per_worker'] / GB:.1f} / {even['bound'] / GB:.1f} GB) "
            f"| {even['tile'][0]}×{even['tile'][1]} × {even['k_splits']} ({even['bands']}) "
            f"| {sim['seconds']:,.0f} s ({even['predicted_seconds']:,.0f} s) | {sim['utilisation']:.0%} "
            f"| {max(plain['planning_seconds'], fixed['planning_seconds'], even['planning_seconds']):.2f} s |")
        print(lines[-1], flush=True)
    out = HERE / "results"
    (out / "cluster-scale.json").write_text(json.dumps(rows, indent=1))
    (out / "cluster-scale.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
