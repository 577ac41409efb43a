"""check() and prepare(): every decision made before a cluster is needed, tested without one."""

from __future__ import annotations

import inspect

import dask
import numpy as np
import pytest
import zarr

import blockdist
from blockdist.errors import InputError, OutputExistsError, ResumeError
from blockdist.planning import WORKER_BASELINE, ClusterShape
from blockdist.runtime.prepare import OutputMode, check, prepare
from blockdist.runtime.request import Options, Request
from blockdist.storage import create_output
from tests.conftest import random_data, tree_digest, write_array

CLUSTER = ClusterShape(workers=2, threads=1, memory_per_worker=2**30)


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(1)
    write_array(tmp_path / "a.zarr", random_data(rng, (300, 200), "float64"), (50, 50))
    write_array(tmp_path / "b.zarr", random_data(rng, (200, 120), "float64"), (50, 40))
    return tmp_path


def request(folder, **options):
    return Request(folder / "a.zarr", folder / "b.zarr", folder / "c.zarr", Options(**options))


def started(folder, **options):
    """What start() leaves before any task runs: the output with its manifest (no cluster)."""
    prepared = prepare(check(request(folder, **options)), CLUSTER)
    create_output(prepared.out, shape=prepared.plan.shape, chunks=prepared.plan.out_chunks,
                  dtype=prepared.plan.dtype, overwrite=options.get("overwrite", False),
                  attributes={"blockdist": prepared.manifest.to_json()})
    return prepared


def test_a_new_output_is_planned_once_and_nothing_is_written(inputs):
    before = tree_digest(inputs)
    prepared = prepare(check(request(inputs)), CLUSTER)
    assert prepared.checked.mode is OutputMode.NEW
    assert prepared.plan.shape == (300, 120) and prepared.manifest.plan is prepared.plan
    assert prepared.graph.a.ref.name.endswith("a.zarr") and prepared.graph.check is None
    assert tree_digest(inputs) == before and not (inputs / "c.zarr").exists()


@pytest.mark.parametrize(("options", "words"), [
    ({"overwrite": True, "resume": True}, "exclude each other"),
    ({"client": "tcp://127.0.0.1:1", "workers": 2}, "cannot be given with a client"),
    ({"memory": "lots"}, "memory: cannot read"),
    ({"verify": -1}, "number of trials"),
    ({"beta": 2.0}, "no C0 was given"),
])
def test_contradictory_options_are_refused(inputs, options, words):
    with pytest.raises(InputError, match=words):
        check(request(inputs, **options))


def test_an_unfinished_output_asks_for_resume_or_overwrite(inputs):
    started(inputs)
    with pytest.raises(OutputExistsError, match=r"unfinished blockdist job \(running, 0 of \d+ tiles done\).*--resume"):
        check(request(inputs))
    assert check(request(inputs, overwrite=True)).mode is OutputMode.NEW


def test_resume_keeps_the_stored_plan_and_done_tiles(inputs):
    first = started(inputs)
    checked = check(request(inputs, resume=True))
    assert checked.mode is OutputMode.RESUME and checked.previous is not None
    again = prepare(checked, CLUSTER)
    assert again.plan == first.plan and again.token != first.token


def test_resume_refuses_changed_inputs_another_product_and_a_cluster_too_small(inputs):
    first = started(inputs)
    with pytest.raises(ResumeError, match="it was started as"):
        check(request(inputs, resume=True, alpha=2.0))
    small = ClusterShape(2, 1, WORKER_BASELINE + first.plan.memory.total - 1)
    with pytest.raises(ResumeError, match="cannot resume with this plan"):
        prepare(check(request(inputs, resume=True)), small)
    zarr.open_array(str(inputs / "a.zarr"), mode="r+")[:50, :50] = 1.0  # same shape, one chunk rewritten
    with pytest.raises(ResumeError, match="A = .*a.zarr"):
        check(request(inputs, resume=True))


def test_resume_of_nothing_is_refused(inputs):
    with pytest.raises(ResumeError, match="not an existing Zarr array"):
        check(request(inputs, resume=True))


def test_an_in_place_update_plans_tiles_of_whole_chunks_of_c(inputs):
    rng = np.random.default_rng(2)
    write_array(inputs / "c.zarr", random_data(rng, (300, 120), "float64"), (60, 30))
    checked = check(request(inputs, c=inputs / "c.zarr", beta=1.0))
    assert checked.mode is OutputMode.IN_PLACE
    plan = prepare(checked, ClusterShape(2, 1, 200 * 2**20 + 2**20)).plan
    assert plan.tile_rows % 60 == 0 or plan.tile_rows == 300
    assert plan.tile_cols % 30 == 0 or plan.tile_cols == 120
    assert prepare(checked, CLUSTER).graph.finish.c0 is None  # C0 is read as the output itself


def test_the_public_functions_show_every_option():
    names = {name for name in Options.__dataclass_fields__}
    for function in (blockdist.matmul, blockdist.submit):
        assert set(inspect.signature(function).parameters) == {"a", "b", "out"} | names
        assert all(f"``{name}``" in function.__doc__ for name in names)
    gram = set(inspect.signature(blockdist.gram).parameters)
    assert "transpose" in gram and not gram & {"c", "beta", "transpose_a", "transpose_b"}
    with pytest.raises(TypeError, match="unexpected keyword argument 'betta'"):
        blockdist.matmul("a", "b", "c", betta=1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'c'"):
        blockdist.gram("x", "g", c="c0")


def test_settings_come_from_the_blockdist_namespace_of_dask_config(monkeypatch):
    from blockdist.runtime import settings
    from blockdist.runtime.cluster import local_shape

    assert settings.get("threads") == 1
    with dask.config.set({"blockdist.threads": 2, "blockdist.verify-trials": 5, "blockdist.memory": "3GB"}):
        assert local_shape(None, None, None).threads == 2
        assert Options(verify=True).verify_trials == 5
        assert Options().resolved("memory") == "3GB" and Options(memory="1GB").resolved("memory") == "1GB"
    monkeypatch.setenv("DASK_BLOCKDIST__THREADS", "3")
    dask.config.refresh()
    try:
        assert settings.get("threads") == 3
    finally:
        monkeypatch.delenv("DASK_BLOCKDIST__THREADS")
        dask.config.refresh()
