"""Every write unit is whole storage objects that one task writes (issue 26), decided before
anything runs: the plan of every drawn layout (:func:`tests.runtime.test_write_layouts.layouts`,
local arrays of metadata alone, no cluster) gives each shard — or chunk, where there are no
shards — of the output exactly one writer, counted element by element here without
blockdist's guard; and the guard refuses a job whose tasks would share one, naming it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings

from blockdist.errors import InputError, PlanError
from blockdist.planning import ClusterShape, MachineModel
from blockdist.planning.writes import WriteUnit
from blockdist.runtime.prepare import check, prepare
from blockdist.runtime.request import Options, Request
from tests.runtime.test_write_layouts import DEAR_READS, Layout, layouts

SLOTS = ClusterShape(16, 1, 2 * 2**30)


def _metadata(path: Path, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: str, shards=None) -> str:
    # No chunk is written, and the fill value is not 0: every absent chunk reads as 1 and is
    # multiplied, so the plan has every tile's work (absent zeros would leave nothing to plan).
    zarr.create_array(store=str(path), shape=shape, chunks=chunks, shards=shards, dtype=dtype, fill_value=1)
    return str(path)


def _prepared(layout: Layout, folder: Path):
    def stored(name: str, shape: tuple[int, int], chunks: tuple[int, int], transposed: bool, vector: bool
               ) -> str:
        if vector:
            return _metadata(folder / f"{name}.zarr", (shape[1] if name == "a" else shape[0],),
                             (chunks[1] if name == "a" else chunks[0],), layout.dtype)
        return _metadata(folder / f"{name}.zarr", shape[::-1] if transposed else shape,
                         chunks[::-1] if transposed else chunks, layout.dtype)

    a = stored("a", (layout.m, layout.k), layout.a_chunks, layout.transpose_a, "a" in layout.vector)
    b = a if layout.gram else stored("b", (layout.k, layout.n), layout.b_chunks, layout.transpose_b,
                                     "b" in layout.vector)
    c0 = None
    if layout.c0 and not layout.vector:
        c0 = _metadata(folder / "c0.zarr", (layout.m, layout.n), layout.c0_chunks, layout.dtype,
                       layout.c0_shards)
    out = c0 if layout.c0 == "in-place" else str(folder / "out.zarr")
    options = Options(transpose_a=layout.transpose_a, transpose_b=layout.transpose_b, alpha=layout.alpha,
                      beta=layout.beta if c0 else 0.0, c=c0, out_chunks=layout.out_chunks,
                      out_shards=layout.out_shards, partials=layout.partials,
                      model=DEAR_READS if layout.splitting else MachineModel())
    cluster = ClusterShape(layout.slots, 1, 2 * 2**30)
    return prepare(check(Request(a, b, out, options, symmetric=layout.gram)), cluster)


def writers_of_each_object(unit: WriteUnit, regions) -> np.ndarray:
    """How many tasks write each storage object, and -1 for any written in part (element by element)."""
    (m, n), (r, c) = unit.shape, unit.edges
    rows, cols = -(-m // r), -(-n // c)
    covered = np.zeros((m, n), dtype=np.int64)
    writers = np.zeros((rows, cols), dtype=np.int64)
    for region in regions:
        (r0, r1), (c0, c1) = region.rows, region.cols
        covered[r0:r1, c0:c1] += 1
        touched = np.zeros((rows, cols), dtype=bool)
        touched[r0 // r : -(-r1 // r), c0 // c : -(-c1 // c)] = True
        writers += touched
    for i in range(rows):
        for j in range(cols):
            block = covered[i * r : (i + 1) * r, j * c : (j + 1) * c]
            if writers[i, j] and not (block == writers[i, j]).all():
                writers[i, j] = -1
    return writers


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layout=layouts())
def test_every_storage_object_of_every_drawn_layout_has_one_writer(tmp_path_factory, layout):
    folder = tmp_path_factory.mktemp("units")
    prepared = _prepared(layout, folder)
    plan, graph = prepared.plan, prepared.graph
    if layout.c0 == "in-place":  # C0's own chunks and shards, not the plan's choice
        stored = zarr.open_array(prepared.out.local_path)
        assert plan.write_unit == WriteUnit(plan.shape, tuple(stored.chunks), stored.shards)
    unit = plan.write_unit
    output = [region for array, region in graph.regions() if array == "output"]
    assert (writers_of_each_object(unit, output) == 1).all(), plan.summary()


def _repro(folder: Path, shards: tuple[int, int] | None) -> Request:
    a = _metadata(folder / "a.zarr", (3000, 2000), (500, 500), "float64")
    b = _metadata(folder / "b.zarr", (2000, 2500), (500, 500), "float64")
    options = Options(out_chunks=(250, 250), out_shards=shards, out_compressors="zstd")
    return Request(a, b, str(folder / "fmt.zarr"), options)


def test_the_reported_layout_cuts_its_bands_on_shard_edges(tmp_path: Path):
    """The issue's plan: one tile, k split in two, bands at row 1500, inside the shard of rows
    1000–2000. Now the band edge is a shard edge."""
    prepared = prepare(check(_repro(tmp_path, (1000, 1250))), ClusterShape(2, 1, 8 * 2**30))
    plan = prepared.plan
    assert plan.tiles == 1 and plan.k_splits == 2, plan.summary()
    assert prepared.graph.bands(next(plan.grid.tiles())) == [(0, 2000), (2000, 3000)]
    assert "write unit: shards 1000×1250 (4×5 chunks of 250×250)" in plan.summary()


def test_an_in_place_update_aligns_its_tiles_to_the_shards_of_c0(tmp_path: Path):
    a = _metadata(tmp_path / "a.zarr", (3000, 2000), (500, 500), "float64")
    b = _metadata(tmp_path / "b.zarr", (2000, 2500), (500, 500), "float64")
    c0 = _metadata(tmp_path / "c0.zarr", (3000, 2500), (250, 250), "float64", shards=(1000, 1250))
    options = Options(alpha=2.0, beta=-0.5, c=c0)
    for slots in (2, 4, 16):  # more tiles with more slots: every edge on a shard edge
        plan = prepare(check(Request(a, b, c0, options)), ClusterShape(slots, 1, 8 * 2**30)).plan
        assert plan.write_unit.describe() == "shards 1000×1250 (4×5 chunks of 250×250)"
        assert all(edge % 1000 == 0 or edge == 3000 for edge in plan.grid.row_edges), plan.summary()
        assert all(edge % 1250 == 0 or edge == 2500 for edge in plan.grid.col_edges), plan.summary()


def test_a_job_whose_bands_would_share_a_shard_is_refused_before_anything_is_written(tmp_path: Path):
    """The guard, on the issue's plan with its bands cut as before (on chunk edges, the shards
    forgotten): refused, naming the shard, though nothing else checks the bands."""
    prepared = prepare(check(_repro(tmp_path, (1000, 1250))), ClusterShape(2, 1, 8 * 2**30))
    old = replace(prepared.graph, plan=replace(prepared.plan, out_shards=None))
    assert old.bands(next(old.plan.grid.tiles())) == [(0, 1500), (1500, 3000)]
    refusal = (r"tile 0, band 0 \(rows 0:1500, columns 0:2500\) writes part of the shard of .*fmt.zarr at "
               "rows 1000:2000, columns 0:1250")
    with pytest.raises(PlanError, match=refusal):
        old.check_writes(WriteUnit((3000, 2500), (250, 250), (1000, 1250)))
    assert not (tmp_path / "fmt.zarr").exists()


def test_discarding_a_requests_staged_operands_keeps_an_in_place_stage_and_its_markers(tmp_path: Path):
    """Staged numpy or dask operands and an in-place update's stage and markers share the
    output's scratch folder; removing the staged operands (a job ending, a request refused)
    used to remove the folder, markers and all, so a resumed update could apply beta twice."""
    from blockdist.storage import create_scratch
    from blockdist.storage.interop import scratch_folder

    c0 = _metadata(tmp_path / "c.zarr", (40, 30), (10, 10), "float64")
    b = _metadata(tmp_path / "b.zarr", (20, 30), (10, 10), "float64")
    scratch = scratch_folder(tmp_path / "c.zarr")
    create_scratch(scratch / "stage.zarr", shape=(40, 30), chunks=(10, 10), dtype="float64")
    create_scratch(scratch / "markers.zarr", shape=(4,), chunks=(1,), dtype="int8")
    checked = check(Request(np.ones((40, 20)), b, c0, Options(beta=1.0, c=c0)))
    assert checked.operands.scratch is not None and checked.operands.scratch.parent == scratch
    assert checked.operands.scratch.exists()
    checked.discard()
    assert not checked.operands.scratch.exists()
    assert (scratch / "stage.zarr").exists() and (scratch / "markers.zarr").exists()


def test_the_product_of_two_vectors_refuses_shards_before_anything_runs(tmp_path: Path):
    """Found by the layout test: u·v with out_shards failed in its task (zarr 3.1 cannot write a
    sharded 0-d array); now refused before anything is written, saying what to drop."""
    u = zarr.create_array(store=str(tmp_path / "u.zarr"), data=np.arange(5.0), chunks=(2,))
    with pytest.raises(InputError, match=r"a 0-d array\), which has no shards; drop out_shards"):
        check(Request(u, u, tmp_path / "uv.zarr", Options(out_chunks=(1, 1), out_shards=(1, 1))))
    assert not (tmp_path / "uv.zarr").exists()
