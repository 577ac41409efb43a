"""No lost writes on any output layout (issue 26): Hypothesis draws the output's layout, not
just its shape — chunks × shards × codec, split-k and its reduce bands, an update in place
(C0 with chunks and shards of its own) or a C0 read beside the output, transposes, vector
operands, local files or S3 (moto on 127.0.0.1), partials in memory or in storage, with and
without the check — runs each product on the session's two worker processes and compares the
**whole** output with the oracle (:mod:`tests.oracle`, numpy alone).

Split-k is forced as the other split-k tests force it: plans are made for up to 16 task slots
with reads priced dear (:data:`DEAR_READS`), then run on the two workers.

A short run by default (``BLOCKDIST_LAYOUT_EXAMPLES``, 8); a long one with, say,
``BLOCKDIST_LAYOUT_EXAMPLES=300 python -m pytest tests/runtime/test_write_layouts.py
--hypothesis-show-statistics``, which prints how often each kind of layout was drawn
(``BLOCKDIST_LAYOUT_COUNTS=FILE`` also writes the counts there as JSON).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import zarr
from distributed.diagnostics.plugin import SchedulerPlugin
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from blockdist.errors import VerificationError
from blockdist.planning import ClusterShape, MachineModel
from blockdist.runtime.prepare import check, prepare
from blockdist.runtime.request import Options, Request
from blockdist.runtime.start import start
from blockdist.storage import locate
from tests.conftest import LONG_TIMEOUT, random_data
from tests.oracle import assert_gemm
from tests.runtime.test_reduce_scatter import SPLITTING

pytestmark = [pytest.mark.slow]

EXAMPLES = int(os.environ.get("BLOCKDIST_LAYOUT_EXAMPLES", "8"))
#: Every read priced dear (compressed and remote ones too), so that k is split even on these sizes.
DEAR_READS = replace(SPLITTING, zstd_read_bytes_per_second=1e7, blosc_read_bytes_per_second=1e7,
                     object_read_bytes_per_second=1e7)
#: What the examples drew, by kind (written to BLOCKDIST_LAYOUT_COUNTS at the end of the module).
DRAWN: Counter[str] = Counter()
CODECS = ("none", "zstd", "blosc-lz4")
#: Sizes of m and n: any, and often ones of several chunks and shards (where bands can cut one).
SIZES = st.one_of(st.sampled_from([64, 100, 150, 200]), st.integers(1, 200))


@dataclass(frozen=True)
class Layout:
    """One drawn product and every layout around it."""

    dtype: str
    m: int
    k: int
    n: int
    vector: str  #: "", "a" (A is a vector: a row), "b" (B is: a column), "ab" (both: a 0-d result)
    gram: bool  #: X·Xᴴ or Xᴴ·X of one stored X (op(B) = op(A)ᴴ): tiles above the diagonal, mirrored
    transpose_a: bool
    transpose_b: bool
    a_chunks: tuple[int, int]  #: of op(A), as the product sees it
    b_chunks: tuple[int, int]
    out_chunks: tuple[int, int] | None
    out_shards: tuple[int, int] | None
    codec: str
    c0: str  #: "" (none), "beside" (read, another array), "in-place" (C0 is the output)
    c0_chunks: tuple[int, int]
    c0_shards: tuple[int, int] | None
    alpha: float
    beta: float
    s3: str  #: "", "out", "inputs" or "all": what lives on the S3 server
    partials: str
    verify: bool
    slots: int
    splitting: bool  #: the planner prices reads dear, so that k is split
    seed: int


def _edge(draw, length: int) -> int:
    return draw(st.integers(max(1, min(length, 8)), max(1, min(length, 96))))


def _shards(draw, chunks: tuple[int, int], shape: tuple[int, int]) -> tuple[int, int] | None:
    if not draw(st.sampled_from([True, True, False])):
        return None
    return tuple(c * draw(st.integers(1, max(1, min(4, -(-s // c)))))
                 for c, s in zip(chunks, shape, strict=True))  # type: ignore[return-value]


@st.composite
def layouts(draw) -> Layout:
    kind = draw(st.sampled_from(["matrix", "matrix", "matrix", "matrix", "a", "b", "ab", "gram"]))
    vector, gram = (kind if kind in ("a", "b", "ab") else ""), kind == "gram"
    m = 1 if "a" in vector else draw(SIZES)
    n = m if gram else 1 if "b" in vector else draw(SIZES)
    k = draw(st.one_of(st.sampled_from([200, 300]), st.integers(1, 300)))
    c0 = "" if gram else draw(st.sampled_from(["", "beside"] if vector else ["", "", "beside", "in-place"]))
    s3 = draw(st.sampled_from(["", "", "", "out", "inputs", "all"]))
    if c0 == "in-place" and s3 in ("out", "all"):  # an update in place is local for now
        s3 = "inputs"
    given = c0 != "in-place" and draw(st.sampled_from([True, True, False]))
    out_chunks = (_edge(draw, m), _edge(draw, n)) if given else None
    c0_chunks = (_edge(draw, m), _edge(draw, n))
    transpose_a = "a" not in vector and draw(st.booleans())
    k_chunk = draw(st.integers(max(1, min(k, 8)), max(1, min(k, 48))))  # several k-ranges to split
    a_chunks = (_edge(draw, m), k_chunk)
    b_chunks = a_chunks[::-1] if gram else (draw(st.sampled_from([k_chunk, _edge(draw, k)])), _edge(draw, n))
    # u·v is 0-d: refused with shards (test_write_units), so drawn without
    out_shards = _shards(draw, out_chunks, (m, n)) if out_chunks and vector != "ab" else None
    return Layout(
        dtype=draw(st.sampled_from(["float64", "float64", "float32", "complex128"])), m=m, k=k, n=n,
        vector=vector, gram=gram, transpose_a=transpose_a,
        transpose_b=(not transpose_a) if gram else "b" not in vector and draw(st.booleans()),
        a_chunks=a_chunks, b_chunks=b_chunks,
        out_chunks=out_chunks, out_shards=out_shards,
        codec=draw(st.sampled_from(CODECS)), c0=c0, c0_chunks=c0_chunks,
        c0_shards=_shards(draw, c0_chunks, (m, n)),
        alpha=draw(st.sampled_from([1.0, 2.0, -0.5])), beta=draw(st.sampled_from([-0.5, 2.0])) if c0 else 0.0,
        s3=s3, partials=draw(st.sampled_from(["memory", "storage"])), verify=draw(st.booleans()),
        slots=draw(st.sampled_from([1, 2, 4, 4, 16])),
        splitting=draw(st.sampled_from([True, True, True, False])),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    """Where an example's arrays go: a fresh folder, and a fresh prefix on one loopback S3 server."""
    from tests.storage.s3_support import MotoS3, storage_options

    with MotoS3() as server:
        server.create_bucket("layouts")
        yield tmp_path_factory.mktemp("layouts"), storage_options(server.endpoint)
    counts = os.environ.get("BLOCKDIST_LAYOUT_COUNTS")
    if counts:
        Path(counts).write_text(json.dumps(dict(sorted(DRAWN.items())), indent=1))


def _where(layout: Layout, folder: Path, prefix: str, name: str) -> str:
    """Where operand ``name`` ("a", "b", "c0") or the output ("out") of an example lives."""
    if name == "out":
        on_s3 = layout.s3 in ("out", "all")
    elif name == "c0":
        on_s3 = layout.s3 == "all" and layout.c0 != "in-place"
    else:
        on_s3 = layout.s3 in ("inputs", "all")
    return f"s3://layouts/{prefix}/{name}.zarr" if on_s3 else str(folder / f"{name}.zarr")


def _store(where: str, options: dict, data: np.ndarray, chunks: tuple[int, ...], shards=None, codec="none"):
    from blockdist.storage.arrays import output_compressors

    store = locate(where, storage_options=options).store
    zarr.create_array(store=store, data=data, chunks=chunks, shards=shards,
                      compressors=output_compressors(codec, None), config={"write_empty_chunks": True})


def _operands(layout: Layout, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """op(A), op(B) and C0 as matrices (a vector's row or column among them)."""
    a = random_data(rng, (layout.m, layout.k), layout.dtype)
    b = np.conjugate(a.T) if layout.gram else random_data(rng, (layout.k, layout.n), layout.dtype)
    return {"a": a, "b": b, "c0": random_data(rng, (layout.m, layout.n), layout.dtype)}


def _stored(layout: Layout, name: str, matrix: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """What is stored for an operand, and its chunks: a vector as 1-D, a transposed operand transposed."""
    chunks = {"a": layout.a_chunks, "b": layout.b_chunks, "c0": layout.c0_chunks}[name]
    if name in ("a", "b") and name in layout.vector:
        return matrix.reshape(-1), (chunks[1] if name == "a" else chunks[0],)
    if name == "c0" and layout.vector == "ab":
        return matrix.reshape(()), ()
    if name == "c0" and layout.vector:  # a row (v·A) or a column (A·v), stored as a vector
        return matrix.reshape(-1), (chunks[1] if layout.vector == "a" else chunks[0],)
    transposed = layout.transpose_a if name == "a" else layout.transpose_b if name == "b" else False
    if transposed:
        stored = np.conjugate(matrix.T) if np.iscomplexobj(matrix) else matrix.T
        return np.ascontiguousarray(stored), chunks[::-1]
    return matrix, chunks


def _count(layout: Layout, prepared) -> None:
    """Tell Hypothesis (and DRAWN) which kinds this example is."""
    plan = prepared.plan
    bands = max(len(prepared.graph.bands(t)) for t in plan.grid.tiles())
    kinds = [
        f"output {plan.write_unit.describe().split()[0]}",
        f"codec {layout.codec if layout.c0 != 'in-place' else 'none'}",
        "split-k" if plan.k_splits > 1 else "streaming", "bands > 1" if bands > 1 else "one band a tile",
        f"C0 {layout.c0 or 'none'}" + (f", {'' if layout.c0_shards else 'un'}sharded" if layout.c0 else ""),
        f"transposes {int(layout.transpose_a)}{int(layout.transpose_b)}",
        f"vector {layout.vector or 'none'}", f"gram {layout.gram}", f"S3 {layout.s3 or 'none'}",
        f"partials {layout.partials}",
        f"verify {layout.verify}", f"dtype {layout.dtype}", f"tiles {'1' if plan.tiles == 1 else '>1'}",
        "shard edge inside a tile" if _shard_inside_tile(plan) else "no shard edge inside a tile",
    ]
    if bands > 1:  # the case: a tile's bands written by different tasks, over which objects
        kinds.append(f"bands > 1 over {plan.write_unit.describe().split()[0]}")
    for kind in kinds:
        event(kind)
        DRAWN[kind] += 1
    DRAWN["examples"] += 1


def _shard_inside_tile(plan) -> bool:
    step = plan.write_unit.edges[0]
    return plan.out_shards is not None and any(t.rows[1] - t.rows[0] > step for t in plan.grid.tiles())


def run_layout(client, layout: Layout, folder: Path, storage: dict) -> None:
    """Store the operands as drawn, run the product on the cluster, compare the whole output."""
    prefix = uuid.uuid4().hex[:8]
    data = _operands(layout, np.random.default_rng(layout.seed))
    paths = {name: _where(layout, folder, prefix, name) for name in ("a", "b", "c0", "out")}
    if layout.gram:
        paths["b"] = paths["a"]
    for name in ("a",) + (() if layout.gram else ("b",)) + (("c0",) if layout.c0 else ()):
        stored, chunks = _stored(layout, name, data[name])
        shards = layout.c0_shards if name == "c0" and not layout.vector else None
        _store(paths[name], storage, stored, chunks, shards, layout.codec if name != "c0" else "none")
    out = paths["c0"] if layout.c0 == "in-place" else paths["out"]
    options = Options(
        storage_options=storage, transpose_a=layout.transpose_a, transpose_b=layout.transpose_b,
        alpha=layout.alpha, beta=layout.beta, c=paths["c0"] if layout.c0 else None,
        out_chunks=layout.out_chunks, out_shards=layout.out_shards,
        out_compressors=layout.codec if layout.c0 != "in-place" else None, partials=layout.partials,
        verify=layout.verify, model=DEAR_READS if layout.splitting else MachineModel())
    cluster = ClusterShape(layout.slots, 1, 2 * 2**30)
    prepared = prepare(check(Request(paths["a"], paths["b"], out, options, symmetric=layout.gram)), cluster)
    _count(layout, prepared)
    job = start(prepared, client, contextlib.ExitStack())
    job.result(timeout=120)
    got = np.asarray(zarr.open_array(store=locate(out, storage_options=storage).store, mode="r")[...])
    assert_gemm(got.reshape(layout.m, layout.n), data["a"], data["b"], layout.alpha, layout.beta,
                data["c0"] if layout.c0 else None)
    if layout.verify:
        assert job.verification is not None and job.verification.ok


#: The issue's two reports, small: split-k bands of one tile over shards of a new output, and
#: tiles of an update in place over C0's own shards (run first, whatever else is drawn).
REPORTED = [
    Layout("float64", 300, 512, 150, "", False, False, False, (50, 32), (32, 50), (25, 25), (100, 75), "zstd",
           "", (25, 25), None, 1.0, 0.0, "", "memory", True, 2, True, 26),
    Layout("float64", 300, 512, 150, "", False, False, False, (50, 32), (32, 50), None, None, "none",
           "in-place", (25, 25), (100, 75), 2.0, -0.5, "inputs", "memory", True, 4, False, 260),
]


@pytest.mark.timeout(max(LONG_TIMEOUT, 4 * EXAMPLES))  # a long run takes 1–2 s an example here
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])
@given(layout=layouts())
@example(layout=REPORTED[0])
@example(layout=REPORTED[1])
def test_every_output_layout_gets_the_whole_product(client, places, layout):
    root, storage = places
    folder = root / uuid.uuid4().hex[:8]
    folder.mkdir()
    try:
        run_layout(client, layout, folder, storage)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- a second writer, injected ----------------------------------------------------------
class RewriteShardAfter(SchedulerPlugin):
    """A scheduler plugin that is a second writer of one shard file: when the task ``key`` has
    written its band, it replaces the file with ``stale`` bytes — the shard as a writer that had
    read it before would put it back (zeros, the fill value) — inside the scheduler's
    transition of ``key`` to memory, so before any task depending on ``key`` can be sent to a
    worker. Plain file writes: nothing asynchronous runs in the scheduler's event loop."""

    name = "blockdist-test-rewrite-shard"

    def __init__(self, key: str, path: Path, stale: bytes) -> None:
        self.key, self.path, self.stale, self.rewritten = key, str(path), stale, False

    def transition(self, key, start, finish, *args, **kwargs) -> None:
        if key == self.key and finish == "memory" and not self.rewritten:
            with open(f"{self.path}.stale", "wb") as file:
                file.write(self.stale)
            os.replace(f"{self.path}.stale", self.path)
            self.rewritten = True


def _zero_shard(folder: Path, shape, chunks, shards, row: int) -> tuple[str, bytes]:
    """The key and bytes of the shard holding ``row`` (first columns) of an uncompressed float64
    array of this layout, all zeros, as zarr writes it."""
    twin = zarr.create_array(store=str(folder / "twin.zarr"), shape=shape, chunks=chunks, shards=shards,
                             dtype="float64", compressors=None, fill_value=0,
                             config={"write_empty_chunks": True})
    twin[row : row + shards[0], : shards[1]] = 0.0
    key = f"c/{row // shards[0]}/0"
    return key, (folder / "twin.zarr" / key).read_bytes()


def _plugin_field(client, name: str, field: str):
    """A field of the scheduler plugin ``name``, read on the scheduler."""
    return client.run_on_scheduler(lambda dask_scheduler: getattr(dask_scheduler.plugins[name], field))


@pytest.mark.parametrize("verify", [False, True])
def test_a_shard_rewritten_after_its_band_is_written_fails_the_check(client, tmp_path: Path, verify: bool):
    rng = np.random.default_rng(26)
    a, b = rng.standard_normal((256, 2048)), rng.standard_normal((2048, 128))
    for name, values in (("a", a), ("b", b)):
        zarr.create_array(store=str(tmp_path / f"{name}.zarr"), data=values, chunks=(64, 64))
    options = Options(model=DEAR_READS, out_chunks=(32, 64), out_shards=(64, 128), out_compressors="none",
                      verify=verify)
    prepared = prepare(check(Request(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", options)),
                       ClusterShape(16, 1, 2 * 2**30))
    tile = next(t for t in prepared.plan.grid.tiles() if len(prepared.graph.bands(t)) >= 2)
    band = prepared.graph.bands(tile)[1]
    shard = (band[0], band[0] + 64)  # the first shard of band 1, which band 1 alone writes
    key = f"blockdist-reduce-{prepared.token}-{tile.i}-{tile.j}-1-root"
    shard_key, stale = _zero_shard(tmp_path, (256, 128), (32, 64), (64, 128), shard[0])
    client.register_plugin(RewriteShardAfter(key, tmp_path / "c.zarr" / shard_key, stale))
    try:
        job = start(prepared, client, contextlib.ExitStack())
        if verify:
            failed = f"verification FAILED on 1 of {prepared.plan.tiles} tiles"
            with pytest.raises(VerificationError, match=failed):
                job.result(timeout=120)
        else:
            job.result(timeout=120)
        assert _plugin_field(client, RewriteShardAfter.name, "rewritten")
    finally:
        client.unregister_scheduler_plugin(RewriteShardAfter.name)
    got, expected = zarr.open_array(tmp_path / "c.zarr")[:], a @ b
    lost = (slice(*shard), slice(*tile.cols))
    assert not got[lost].any()  # the rewrite was real: the band's rows in that shard are lost
    expected[lost] = 0
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-9)  # and nothing else changed


class RecordChecks(SchedulerPlugin):
    """Records, as the scheduler receives them, what each ``blockdist-check-…`` task waits for."""

    name = "blockdist-test-record-checks"

    def __init__(self) -> None:
        self.waits: dict[str, list[str]] = {}

    def update_graph(self, scheduler, *, tasks, **kwargs) -> None:
        for key in tasks:
            if str(key).startswith("blockdist-check-") and key in scheduler.tasks:
                self.waits[str(key)] = sorted(str(d.key) for d in scheduler.tasks[key].dependencies)


def test_a_check_waits_for_every_task_that_writes_its_shards(client, tmp_path: Path):
    """Beyond the guard: a graph whose two bands share shards (the issue's plan, bands cut on chunk
    edges, submitted without prepare's refusal) gets checks that each wait for both bands'
    writers, so each reads the shards as finally stored; the verdict then matches the output."""
    layout = REPORTED[0]
    data = _operands(layout, np.random.default_rng(layout.seed))
    for name in ("a", "b"):
        stored, chunks = _stored(layout, name, data[name])
        _store(str(tmp_path / f"{name}.zarr"), {}, stored, chunks)
    options = Options(model=DEAR_READS, out_chunks=layout.out_chunks, out_shards=layout.out_shards,
                      verify=True)
    request = Request(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", options)
    prepared = prepare(check(request), ClusterShape(layout.slots, 1, 2 * 2**30))
    # the bands as they were cut before: on chunk edges, the shards forgotten
    old_bands = replace(prepared.graph, plan=replace(prepared.plan, out_shards=None))
    assert old_bands.bands(next(old_bands.plan.grid.tiles())) == [(0, 150), (150, 300)]
    client.register_plugin(RecordChecks())
    try:
        job = start(replace(prepared, graph=old_bands), client, contextlib.ExitStack())
        with contextlib.suppress(VerificationError):
            job.result(timeout=120)
        waits = _plugin_field(client, RecordChecks.name, "waits")
    finally:
        client.unregister_scheduler_plugin(RecordChecks.name)
    roots = [f"blockdist-reduce-{prepared.token}-0-0-{band}-root" for band in (0, 1)]
    assert waits == {f"blockdist-check-{prepared.token}-0-0-{band}": roots for band in (0, 1)}
    got = zarr.open_array(tmp_path / "c.zarr")[:]
    right = bool(np.allclose(got, data["a"] @ data["b"], rtol=1e-10, atol=1e-9))
    assert job.verification is not None and job.verification.ok == right  # a lost write, if any, was caught
