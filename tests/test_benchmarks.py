"""The benchmark suite runs (tiny sizes, every tool) and its scores can miss."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LONG_TIMEOUT

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import report as bench_report  # noqa: E402 - benchmarks/report.py

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.mark.timeout(LONG_TIMEOUT)
def test_a_smoke_run_of_every_tool_measures_and_scores(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--scale", "smoke", "--scenarios",
         "square-small-chunks", "--data", str(tmp_path / "data"), "--out", str(out),
         "--timeout", "300", "--one-cluster"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads((out / "smoke.json").read_text())
    runs = {(r["scenario"], r["tool"]): r for r in data["runs"]}
    tools = {"numpy", "blockdist", "blockdist-cold", "dask", "dask-rechunked", "cubed"}
    for scenario in ("square-small-chunks",):
        for tool in tools:
            run = runs[scenario, tool]
            assert run["ok"], (scenario, tool, run.get("error"))
            assert run["seconds"] > 0 and run["error_vs_bound"] is not None and run["error_vs_bound"] <= 1.0
        assert runs[scenario, "blockdist"]["killed_workers"] == []
        cold = runs[scenario, "blockdist-cold"]
        if cold["cold"]:  # the page cache was dropped (root): every input byte came off the disk
            inputs = next(s for s in data["scenarios"] if s["name"] == scenario)["input_bytes"]
            assert cold["disk_bytes_read"] >= inputs
    # blockdist's tiles span several storage chunks: a careful dask user's blocks are larger
    small = runs["square-small-chunks", "dask-rechunked"]
    assert small["rechunked_to"] != runs["square-small-chunks", "dask"]["dask_chunks"]
    summary = (out / "smoke-summary.md").read_text()
    assert "result within rounding" in summary and "workers lost" in summary
    assert "bytes spilled" not in summary
    # the worker layout's own ceiling is measured in the run and every blockdist row is set against it
    layout = data["ceilings"]["layout"]["float64"]
    assert layout["processes"] == data["environment"]["workers"] and layout["best_gflops"] > 0
    assert "Worker layout ceiling" in summary and "% layout" in summary
    assert "square-small-chunks: GFLOP/s vs the worker layout's ceiling" in summary


def _report(dask_ok: bool, error: float | None) -> dict:
    scenario = {"name": "square-big-chunks", "memory": 2**32, "input_bytes": 2**30}
    base = {"scenario": "square-big-chunks", "ok": True, "seconds": 10.0, "gflops": 50.0, "peak_rss": [2**29],
            "bytes_read": 2**30, "error_vs_bound": error}
    blockdist = base | {"tool": "blockdist", "projected_worker_peak": 2**29, "store_bytes_read": 2**30,
                        "io_lower_bound": 2**30, "killed_workers": []}
    dask = base | {"tool": "dask", "ok": dask_ok, "error": None if dask_ok else "KilledWorker"}
    numpy = base | {"tool": "numpy", "matmul_gflops": 60.0}
    return {"scenarios": [scenario], "runs": [numpy, blockdist, dask]}


def test_a_failed_peer_is_no_pass_and_a_wrong_result_is_a_miss():
    verdicts = {t["target"]: t["verdict"] for t in bench_report.targets(_report(dask_ok=False, error=0.5), None)}
    assert verdicts["square-big-chunks: time vs dask"] == "n/a"
    assert verdicts["square-big-chunks: blockdist result within rounding"] == "pass"
    verdicts = {t["target"]: t["verdict"] for t in bench_report.targets(_report(dask_ok=True, error=3.0), None)}
    assert verdicts["square-big-chunks: blockdist result within rounding"] == "miss"
    assert verdicts["square-big-chunks: time vs dask"] == "miss"  # 10 s / 10 s is above 0.7
    unchecked = _report(dask_ok=True, error=None)
    verdicts = {t["target"]: t["verdict"] for t in bench_report.targets(unchecked, None)}
    assert verdicts["square-big-chunks: blockdist result within rounding"] == "miss"


def test_compressed_rows_count_their_decoding_against_the_layout_ceiling():
    report = _report(dask_ok=True, error=0.5)
    report["scenarios"][0] |= {"flops": 2 * 8192**3, "codec": "zstd"}
    report["runs"][1]["plan_bytes_read"] = 4 * 10**9
    report["environment"] = {"workers": 2}
    report["ceilings"] = {"layout": {"float64": {"best_gflops": 80.0}}, "decode": {"zstd": {"best_gb_per_s": 1.0}}}
    assert bench_report.decode_seconds(report, "square-big-chunks", 4 * 10**9) == 2.0  # 4 GB on 2 cores at 1 GB/s
    assert bench_report.layout_target(report, "square-big-chunks") == 0.90
    row = next(t for t in bench_report.targets(report, None) if "layout's ceiling" in t["target"])
    assert row["verdict"] == "miss" and row["measured"] == "50.0 / 80.0 = 62%" and "floor" in row["note"]
    report["scenarios"][0]["codec"] = "none"
    assert bench_report.layout_target(report, "square-big-chunks") == 0.95
    assert bench_report.decode_seconds(report, "square-big-chunks", 4 * 10**9) == 0.0


def test_the_floor_counts_the_first_touch_of_fresh_memory_and_gram_work_done():
    report = _report(dask_ok=True, error=0.5)
    report["scenarios"][0] |= {"flops": 2 * 8192**3}
    report["environment"] = {"workers": 2}
    report["ceilings"] = {"layout": {"float64": {"best_gflops": 80.0}}, "first_touch": {"gb_per_s": 0.5, "size": 2**29}}
    blockdist = report["runs"][1]
    blockdist |= {"peak_rss": [5 * 10**8, 7 * 10**8], "store_bytes_written": 10**9,
                  "rss_trace": [(0.25, [10**8, 2 * 10**8]), (0.5, [4 * 10**8, 6 * 10**8])]}
    # peak above the lowest sample, 4e8 + 5e8, and C's 1e9 page-cache bytes, on 2 cores at 0.5 GB/s
    assert bench_report.fresh_bytes(blockdist) == 19 * 10**8
    flops, decode, touch = bench_report.layout_floor(report, "square-big-chunks", blockdist)
    assert (decode, touch) == (0.0, 1.9) and flops == 2 * 8192**3 / 80e9
    row = next(t for t in bench_report.targets(report, None) if "layout's ceiling" in t["target"])
    assert "first touch" in row["note"] and row["measured"] == "50.0 / 80.0 = 62%"
    report["scenarios"][0]["gram"] = True  # syrk computes half the nominal flops
    assert bench_report.layout_floor(report, "square-big-chunks", blockdist)[0] == flops / 2
    row = next(t for t in bench_report.targets(report, None) if "layout's ceiling" in t["target"])
    assert row["measured"] == "25.0 (work done; 50.0 nominal) / 80.0 = 31%"
