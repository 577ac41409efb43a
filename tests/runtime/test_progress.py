"""Watching a job: progress sent from inside the tasks, on the session's two worker processes.

``Job.snapshot()`` moves by work done inside tasks (not finished tiles); the piped CLI prints
progress lines that change before the end; the dashboard's Fine Performance Metrics list
blockdist's activities; the manifest keeps the run's figures (``blockdist info`` prints them);
the reprs draw the tile grid as SVG; a job's progress events carry no path or secret.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import dask
import numpy as np
import pytest
import zarr

import blockdist
from blockdist.planning import ClusterShape, make_plan, plan_for_shape, shape_layouts
from blockdist.runtime.progress import ProgressLog
from tests.conftest import write_array

BLOCKDIST = [sys.executable, "-m", "blockdist.cli"]


def _inputs(folder: Path, n: int = 3072, chunk: int = 512, seed: int = 3):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    write_array(folder / "a.zarr", a, (chunk, chunk))
    write_array(folder / "b.zarr", b, (chunk, chunk))
    return a, b


@pytest.mark.slow
def test_snapshot_moves_by_work_done_inside_tasks(client, tmp_path: Path):
    a, b = _inputs(tmp_path)
    # events after every k-segment however fast this machine multiplies (the default is 4 a second)
    with dask.config.set({"blockdist.progress-interval": 0.005}):
        job = blockdist.submit(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client)
    assert job.plan.tiles <= 2  # few, long tasks: tiles alone would not move
    seen = []
    while not job.done():
        seen.append(job.snapshot())
        time.sleep(0.01)
    job.result()
    final = job.snapshot()
    during = [s.fraction_done for s in seen if s.tiles_done == 0]
    inside = sorted({round(f, 6) for f in during if 0 < f < 1})
    assert len(inside) >= 3, f"fractions seen before any tile finished: {inside}"
    fractions = [s.fraction_done for s in seen]
    assert fractions == sorted(fractions)  # no retries here: work done only grows
    assert final.fraction_done == 1.0 and final.tiles_done == final.tiles_total == job.plan.tiles
    moving = [s for s in seen if 0 < s.fraction_done < 1]
    assert any(s.gflops_per_second > 0 and s.eta_seconds is not None for s in moving)
    assert any(s.bytes_read > 0 for s in moving)
    addresses = set(client.scheduler_info()["workers"])
    assert set().union(*(s.worker_gflops for s in seen)) <= addresses
    assert 0 < job.stats.progress_seconds  # measured by the tasks (benchmarks/progress_overhead.py weighs it)
    np.testing.assert_allclose(zarr.open_array(tmp_path / "c.zarr")[:64, :64], a[:64] @ b[:, :64], rtol=1e-10)


@pytest.mark.slow
def test_fine_performance_metrics_name_blockdist_activities(client, tmp_path: Path):
    _inputs(tmp_path, n=1024, chunk=256, seed=4)
    blockdist.matmul(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client, verify=True)
    expected = {("compute", "seconds"), ("panel-wait", "seconds"), ("write", "seconds"), ("verify", "seconds"),
                ("read-and-decode", "reader-thread-seconds"), ("read", "bytes"), ("write", "bytes")}
    deadline = time.monotonic() + 30  # workers send their metrics with their heartbeats
    while True:
        metrics = client.run_on_scheduler(lambda dask_scheduler: [
            key for key in dask_scheduler.cumulative_worker_metrics
            if isinstance(key, tuple) and len(key) == 4 and str(key[1]).startswith("blockdist")])
        activities = {(key[2], key[3]) for key in metrics}
        if expected <= activities or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert expected <= activities, sorted(activities)


@pytest.mark.slow
def test_manifest_keeps_the_run_figures_and_info_prints_them(client, tmp_path: Path):
    _inputs(tmp_path, n=1024, chunk=256, seed=5)
    job = blockdist.submit(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client)
    job.result()
    manifest = zarr.open_array(tmp_path / "c.zarr").attrs["blockdist"]
    figures = manifest["figures"]
    assert figures["tiles_computed"] == job.plan.tiles and figures["bytes_read"] == job.stats.bytes_read
    assert figures["activity_seconds"]["compute"] > 0 and figures["seconds"] > 0
    shown = subprocess.run([*BLOCKDIST, "info", str(tmp_path / "c.zarr")], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert f"status        complete: {job.plan.tiles} of {job.plan.tiles} tiles done" in shown.stdout
    assert re.search(r"task seconds  .*compute \d+\.\d\d s", shown.stdout)
    as_json = subprocess.run([*BLOCKDIST, "info", str(tmp_path / "c.zarr"), "--json"], capture_output=True,
                             text=True, timeout=60)
    assert json.loads(as_json.stdout)["figures"] == figures


def test_info_refuses_what_blockdist_did_not_write(tmp_path: Path):
    write_array(tmp_path / "plain.zarr", np.ones((4, 4)), (2, 2))
    for target, message in ((tmp_path / "plain.zarr", "without a blockdist manifest"),
                            (tmp_path / "absent.zarr", "no Zarr array there")):
        shown = subprocess.run([*BLOCKDIST, "info", str(target)], capture_output=True, text=True, timeout=60)
        assert shown.returncode == 2 and message in shown.stderr and "Traceback" not in shown.stderr


@pytest.mark.slow
def test_piped_cli_prints_changing_progress_before_the_end(tmp_path: Path):
    _inputs(tmp_path, n=4096, chunk=512, seed=6)
    env = {**os.environ, "DASK_BLOCKDIST__PROGRESS_EVERY": "0.3"}
    run = subprocess.run([*BLOCKDIST, "matmul", str(tmp_path / "a.zarr"), str(tmp_path / "b.zarr"),
                          str(tmp_path / "c.zarr"), "--workers", "2", "--memory", "2GB"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    end = next(i for i, line in enumerate(lines) if line.startswith("wrote"))
    progress = [line for line in lines[:end] if line.startswith("progress")]
    moving = {line for line in progress if re.search(r"\s(\d+\.\d)% of the work", line)
              and not re.search(r"\s(0\.0|100\.0)% of the work", line)}
    assert len(moving) >= 3, "\n".join(progress)


def test_plan_repr_draws_its_tiles_over_the_chunks():
    plan = plan_for_shape(6000, 4000, 3000, ClusterShape(8, 1, 2**30), chunks=500)
    html = plan._repr_html_()
    svg = ET.fromstring(html[html.index("<svg") : html.index("</svg>") + 6])
    tiles = [e for e in svg.iter() if e.get("data-tile") is not None]
    assert len(tiles) == plan.grid.numbers > 1
    chunk_lines = [e for e in svg.iter() if e.tag.endswith("line") and e.get("stroke-width") == "0.5"]
    assert len(chunk_lines) == (6000 // plan.out_chunks[0] - 1) + (4000 // plan.out_chunks[1] - 1)
    # nothing done yet: no tile shaded
    assert all(e.get("fill") == "none" for e in tiles)


def test_a_symmetric_plan_draws_its_mirrored_tiles_hatched():
    from blockdist.planning.picture import tile_grid_svg

    a, b = shape_layouts(4096, 4096, 1024, chunks=1024)
    plan = make_plan(a, b, ClusterShape(8, 1, 2**30), dtype="float64", symmetric=True)
    assert plan.grid.computed < plan.grid.numbers
    svg = ET.fromstring(tile_grid_svg(plan, {0: 1.0}))
    fills = {int(e.get("data-tile")): (e.get("fill"), e.get("fill-opacity")) for e in svg.iter() if e.get("data-tile")}
    mirrored = set(range(plan.grid.numbers)) - {t.number for t in plan.grid.tiles()}
    assert {t for t, (fill, _) in fills.items() if fill == "url(#mirror)"} == mirrored
    assert fills[0] == ("#2e8b57", "1.00")


def test_progress_log_sums_tasks_and_keeps_finished_tiles_whole():
    log = ProgressLog("job1", {0: 100, 1: 100, 2: 200})
    log.record({"job": "job1", "tile": 0, "task": "t0", "flops": 50.0, "bytes_read": 10, "worker": "w1"})
    log.record({"job": "job1", "tile": 2, "task": "t2a", "flops": 40.0, "bytes_read": 5, "worker": "w2"})
    log.record({"job": "job1", "tile": 2, "task": "t2b", "flops": 60.0, "bytes_read": 5, "worker": "w1"})
    now = log.snapshot()
    assert now.fraction_done == pytest.approx(150 / 400)
    assert now.tile_fractions == {0: 0.5, 2: 0.5} and now.bytes_read == 20
    log.tile_done(0, 30)
    log.record({"job": "job1", "tile": 0, "task": "t0", "flops": 60.0, "bytes_read": 10, "worker": "w1"})  # late
    now = log.snapshot()
    assert now.fraction_done == pytest.approx(200 / 400) and now.tile_fractions[0] == 1.0
    log._receive((0.0, {"job": "another", "tile": 1, "task": "x", "flops": 100.0}))
    assert log.snapshot().fraction_done == pytest.approx(200 / 400)
