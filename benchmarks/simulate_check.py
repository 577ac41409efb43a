"""The cost model and the simulator against blockdist's measured runs on this machine.

Reads benchmark results (``run.py``'s JSON), rebuilds each blockdist run's plan from its
record, and prints the measured wall time beside ``Plan.predicted_seconds`` and the
simulated one (``blockdist.planning.simulate``), both under this machine's model (the tune
file's rates over the defaults, as ``blockdist plan`` uses; ``--rate reference``: one
thread's BLAS rate taken as its share of the reference the same run measured on every core).

    python benchmarks/simulate_check.py results/default-r4.json results/codecs.json …
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from reference import best  # benchmarks/reference.py

from blockdist.planning import Plan
from blockdist.planning.simulate import simulate
from blockdist.runtime.tunefile import load_model

HERE = Path(__file__).resolve().parent


def rows(paths: list[Path], rate: str) -> list[dict]:
    found = []
    for path in paths:
        report = json.loads(path.read_text())
        model = load_model()
        if rate == "reference":  # one thread's share of the BLAS rate the same run measured on every core
            reference = best(report["reference"], "float64")
            model = dataclasses.replace(model, flops_per_thread=reference * 1e9 / report["environment"]["cores"])
        for run in report["runs"]:
            if run["tool"] != "blockdist" or not run.get("ok") or not run.get("plan"):
                continue
            # run.py keeps the memory model's terms apart; the simulator does not need them
            record = {"memory": {"c_tile": 0, "panels": 0, "read_buffers": 0, "cast_buffers": 0,
                                 "kernel_scratch": 0}, **run["plan"]}
            plan = Plan.from_dict(record)
            plan = dataclasses.replace(plan, model=model)
            simulated = simulate(plan).seconds
            found.append({"file": path.name, "scenario": run["scenario"], "measured": run["seconds"],
                          "predicted": plan.predicted_seconds, "simulated": simulated,
                          "strategy": str(plan.strategy), "tasks": plan.tasks})
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--rate", choices=("tune", "reference"), default="tune",
                        help="one BLAS thread's rate: the tune file's (default), or half the run's reference")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "simulate-check.md")
    args = parser.parse_args(argv)
    lines = ["| results | scenario | plan | measured | cost model | error | simulated | error |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    worst = 0.0
    for r in rows(args.results, args.rate):
        e1, e2 = r["predicted"] / r["measured"] - 1, r["simulated"] / r["measured"] - 1
        worst = max(worst, abs(e1), abs(e2))
        lines.append(f"| {r['file']} | {r['scenario']} | {r['strategy']}, {r['tasks']} tasks | {r['measured']:.2f} s "
                     f"| {r['predicted']:.2f} s | {e1:+.0%} | {r['simulated']:.2f} s | {e2:+.0%} |")
    lines.append("")
    lines.append(f"Largest error: {worst:.0%}. Model: {load_model()}; one thread's rate from {args.rate}.")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
