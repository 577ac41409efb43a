"""Randomized SVD and PCA of a stored matrix (:func:`blockdist.svd`, :func:`blockdist.pca`).

Halko, Martinsson & Tropp's range finder with power iterations, re-orthonormalised after every
product with A (their algorithm 4.4), then the SVD of the small projection B = QᵀA
(algorithm 5.1), on one cluster (a local one started once when none is given). Where A fits
in the workers' memory (the plan's :class:`~blockdist.planning.sketch.KeepDecision`), its row
blocks are read from storage once and kept there (:mod:`.svd_kept`), and every product with A
is a round of block tasks on them; elsewhere, or asked to (``keep_a=False``), every product is
a blockdist job reading A from storage. Either way the m×l sketches stay in storage beside the
output (``.OUT.blockdist-svd/``); only n×l matrices are held here.

Each pass over A leaves what the next needs in that scratch group (``pass-N/``: Q₁ and its
whitening after a product A·X, X after a product Aᵀ·Q, PCA's means) and the output's workload
record (:mod:`.workload`, created with the output before the first pass) counts the passes
finished. A run that fails is marked ``failed`` and keeps its scratch group, so that
``resume=True`` continues from the last finished pass — for the same A (its fingerprint), rank,
oversampling, iterations and seed, checked before anything runs — and gives what an
uninterrupted run gives: every pass reads its inputs from what the last one stored. The
scratch group is removed once U is written. The checks before any of it, a resumed run's
included, are :func:`~.svd_prepare.prepare_sketch`'s.

A sketch Y is orthonormalised without reading A again (CholeskyQR2 by eigen-decomposition,
dropping directions below rounding): one pass of band tasks sums YᵀY, a second writes
Q₁ = Y·W₀ and sums Q₁ᵀQ₁, whose whitening W₁ is kept (small, beside Q₁), so Q = Q₁·W₁ is
never written. PCA centres A without a centred copy: every product with A is corrected by the
mean's rank-one term (Ā·X = A·X − 1·(μᵀX), and Āᵀ·Q = Aᵀ·Q − μ·(1ᵀQ)) on the small side.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import InputError
from ..planning.sketch import SketchParameters, SketchPlan
from ..planning.writes import Region, WriteUnit, check_writes
from ..storage import (
    ArrayRef,
    create_output,
    open_for_update,
    open_input,
    read_block,
    save_attributes,
    store_matrix,
)
from ..storage.partials import scratch_beside
from ..worker.rowbands import column_stats, transform_band
from .cluster import connect, shape_of
from .credentials import shared_credentials
from .lease import Lease
from .manifest import Status
from .prepare import memory_budget
from .request import Options, Request
from .svd_kept import KeptA
from .svd_prepare import (
    KEPT,
    SCRATCH_SUFFIX,
    Prepared,
    decide_keep,
    kept_names,
    passes,
    prepare_sketch,
    scratch_array,
    stat_blocks,
)
from .workload import WORKLOAD_KEY, WorkloadRecord

#: Eigenvalues of a sketch's Gram matrix below this share of the largest are rounding: dropped.
DROP = 1e-13


Step = Callable[[str, Any], None]
@dataclass
class SketchResult:
    """What :func:`run_sketch` found: U (or PCA's scores U·S) stored, the rest in memory."""

    u: Any  #: the output array, m×rank
    s: np.ndarray
    vt: np.ndarray
    plan: SketchPlan
    seconds: float = 0.0
    mean: np.ndarray | None = None  #: PCA: the column means
    explained_variance: np.ndarray | None = None
    explained_variance_ratio: np.ndarray | None = None
    bytes_read: int = 0  #: by every product and band task
    #: where A was kept on the workers: what reading it read (once); None where it was streamed
    #: (each product's bytes_read counts it with X's)
    a_bytes_read: int | None = None
    #: chunk keys of A that its own block tasks (column statistics, loading a kept A) asked of
    #: storage and found absent: 0 where absent chunks are zeros, which are not read
    absent_asked: int = 0


class _Run:
    """One randomized SVD on one client: its products, band passes, scratch arrays and record."""

    def __init__(self, prepared: Prepared, client: Any, options: Options, token: str,
                 on_step: Step | None) -> None:
        self.prepared, self.client, self.options, self.token = prepared, client, options, token
        self.on_step = on_step
        self.m, self.n = prepared.plan.shape
        self.started = time.perf_counter()
        self.bytes_read = 0
        self.absent_asked = 0
        self.count = 0
        self.mean: np.ndarray | None = None
        self.u: Any = None  #: the output array, once created or reopened
        #: A's blocks on the workers, where the plan keeps it (None: each pass streams it)
        self.kept = (KeptA(client, prepared.a, self.m, prepared.plan.keep, token, prepared.a_zeros(),
                           prepared.a_chunk_rows)
                     if prepared.plan.kept else None)
        record = prepared.resumed or WorkloadRecord(
            prepared.plan.kind, str(Status.RUNNING), token, {"a": prepared.a_identity},
            {"rank": prepared.plan.rank, "oversample": prepared.plan.oversample,
             "power_iters": prepared.plan.power_iters, "seed": prepared.parameters.seed},
            {"done": 0, "total": prepared.plan.passes, "unit": "passes"})
        self.record = replace(record, status=str(Status.RUNNING), job=token)

    def ref(self, name: str) -> ArrayRef:
        return scratch_array(self.prepared.out, self.options.storage_options, name)

    def _step(self, label: str, job: Any = None) -> None:
        if self.on_step is not None:
            self.on_step(label, job)

    # --- the output's record -------------------------------------------------------------
    def open_output(self) -> None:
        """U with the record (status running): created, or, resumed, reopened."""
        prepared, attributes = self.prepared, {WORKLOAD_KEY: self.record.to_json()}
        if prepared.resumed is not None:
            self.u = save_attributes(prepared.out, open_for_update(prepared.out), attributes)
            return
        rank = prepared.plan.rank
        self.u = create_output(prepared.out, shape=(self.m, rank), chunks=(prepared.band_rows, rank),
                               dtype=prepared.dtype.name, overwrite=self.options.overwrite,
                               attributes=attributes)

    def save_record(self, **changes: Any) -> None:
        self.record = replace(self.record, **changes)
        self.u = save_attributes(self.prepared.out, self.u, {WORKLOAD_KEY: self.record.to_json()})

    # --- what a pass leaves for the next -----------------------------------------------------
    def keep(self, number: int, state: dict[str, Any], names: tuple[str, ...]) -> None:
        """Store what pass ``number`` leaves (Q₁ is stored there already), then count it finished."""
        rows = min(self.n, self.prepared.plan.forward.b.chunks[0])  # type: ignore[attr-defined]
        for name in names:
            if not isinstance(state[name], ArrayRef):
                matrix = np.atleast_2d(np.asarray(state[name], dtype=np.float64))
                chunks = (min(rows, len(matrix)), matrix.shape[1])
                store_matrix(self.ref(f"pass-{number}/{name}"), matrix, chunks)
        self.save_record(progress={**self.record.progress, "done": number})

    def restore(self) -> dict[str, Any]:
        """What the finished passes left, read back (a resumed run)."""
        state: dict[str, Any] = {}
        for kept in kept_names(self.prepared):
            name = kept.rpartition("/")[2]
            ref = self.ref(kept)
            state[name] = ref if name == "q1" else np.asarray(open_input(ref)[...], dtype=np.float64)
        for name in ("mean", "squares", "q_sums"):  # stored as one row
            if name in state:
                state[name] = state[name][0]
        if "mean" in state:
            self.mean, state["squares"] = state["mean"], float(state["squares"][0])
        return state

    # --- products with A ----------------------------------------------------------------
    def _stored(self, x: np.ndarray | ArrayRef) -> ArrayRef:
        """X where tasks read it: as given, or, held here, stored in the scratch group first."""
        if not isinstance(x, np.ndarray):
            return x
        operand = self.ref(f"x-{self.count}-{self.token}")
        store_matrix(operand, x, (min(self.n, self.prepared.plan.forward.b.chunks[0]), x.shape[1]))  # type: ignore[attr-defined]
        return operand

    def forward(self, x: np.ndarray | ArrayRef, label: str) -> tuple[ArrayRef, tuple[np.ndarray, np.ndarray] | None]:
        """Y = A·X stored (X n×l, in memory or stored), with YᵀY and 1ᵀY where A is kept (its
        block tasks sum them as they go)."""
        self.count += 1
        operand = self._stored(x)
        # named for this run: a product an interrupted run left (its lease too, if the interrupt
        # came as it started) is never in a resumed run's way
        target = self.ref(f"product-{self.count}-{self.token}")
        if self.kept is None:
            self._job(operand, target, False, label)
            return target, None
        width = self._width(operand)
        rows = self.kept.decision.block_rows
        create_output(target, shape=(self.m, width), chunks=(rows, width), dtype="float64", overwrite=True,
                      attributes={})
        self._check_band_writes(target, rows)  # each block task writes its band of the sketch
        self._step(label, None)
        gram, sums, read = self.kept.times(operand, width, target)
        self.bytes_read += read
        return target, (gram, sums)

    def back(self, q: ArrayRef, label: str) -> np.ndarray:
        """Aᵀ·Q (Q m×l stored), here."""
        self.count += 1
        width = self._width(q)
        if self.kept is not None:
            self._step(label, None)
            z, read = self.kept.transposed_times(q, width)
            self.bytes_read += read
            return z
        target = self.ref(f"product-{self.count}-{self.token}")
        self._job(q, target, True, label)
        block, _ = read_block(target, (0, self.n), (0, width), np.dtype("float64"))
        return block

    def _job(self, operand: ArrayRef, target: ArrayRef, transpose: bool, label: str) -> None:
        """A·X or Aᵀ·Q into ``target`` by one blockdist product job reading A from storage."""
        from .start import submit

        keep = {k: v for k, v in self.options.__dict__.items() if k in ("memory", "storage_options", "model")}
        step = replace(Options(**keep), client=self.client, overwrite=True, transpose_a=transpose)
        job = submit(Request(self.prepared.a, operand, target, step))
        try:
            self._step(label, job)
            job.result()
        except BaseException:  # stopped here: the product must not go on writing beside a resumed run
            with contextlib.suppress(Exception):
                job.cancel()
                job.wait(30)
            raise
        self.bytes_read += job.stats.bytes_read

    def _width(self, ref: ArrayRef) -> int:
        return int(open_input(ref).shape[1])

    # --- band passes over a stored sketch ----------------------------------------------------
    def _check_band_writes(self, target: ArrayRef, rows: int) -> None:
        """Refuse, before any task, bands of ``rows`` that would not each write whole chunks (or
        shards) of ``target`` that no other band writes."""
        stored = open_input(target)
        shards = tuple(stored.shards) if stored.shards else None
        unit = WriteUnit(tuple(stored.shape), tuple(stored.chunks), shards)
        edges = [(lo, min(lo + rows, self.m)) for lo in range(0, self.m, rows)]
        check_writes(str(target), unit,  # type: ignore[arg-type]
                     [Region(f"band {i}", band, (0, stored.shape[1])) for i, band in enumerate(edges)])

    def bands(self, source: ArrayRef, width: int, weights: np.ndarray | None, shift: np.ndarray | None,
              target: ArrayRef | None, gram: bool) -> tuple[np.ndarray | None, np.ndarray]:
        rows = self.prepared.band_rows
        edges = [(lo, min(lo + rows, self.m)) for lo in range(0, self.m, rows)]
        if target is not None:
            self._check_band_writes(target, rows)
        futures = [self.client.submit(transform_band, source, band, width, weights, shift, target, gram,
                                      "float64", pure=False, key=f"blockdist-band-{uuid.uuid4().hex[:12]}")
                   for band in edges]
        results = self.client.gather(futures)
        self.bytes_read += sum(r.bytes_read for r in results)
        grams = [r.gram for r in results if r.gram is not None]
        return (sum(grams) if grams else None), sum(r.sums for r in results)

    def orthonormalise(self, y: ArrayRef, shift: np.ndarray | None, q1: ArrayRef,
                       sums_of_y: tuple[np.ndarray, np.ndarray] | None) -> tuple[ArrayRef, np.ndarray, np.ndarray]:
        """(Q₁, W₁, 1ᵀQ) with Q = Q₁·W₁ an orthonormal basis of Y − 1·shiftᵀ (CholeskyQR2), Q₁
        written to ``q1``; ``sums_of_y`` (YᵀY, 1ᵀY), where known, spare the first pass over Y."""
        width = self._width(y)
        gram, sums = sums_of_y or self.bands(y, width, None, None, None, True)
        assert gram is not None
        if shift is not None:  # the Gram matrix of the centred sketch, from the plain one
            gram = gram - np.outer(sums, shift) - np.outer(shift, sums) + self.m * np.outer(shift, shift)
        w0 = _whitening(gram)
        create_output(q1, shape=(self.m, w0.shape[1]), chunks=(self.prepared.band_rows, w0.shape[1]),
                      dtype="float64", overwrite=True, attributes={})
        self._step(f"orthonormalise {self.m}×{width} sketch", None)
        gram1, sums1 = self.bands(y, width, w0, None if shift is None else w0.T @ shift, q1, True)
        assert gram1 is not None
        w1 = _whitening(gram1)
        return q1, w1, sums1 @ w1

    # --- the passes ----------------------------------------------------------------------
    def centred_back(self, state: dict[str, Any], label: str) -> np.ndarray:
        """Āᵀ·Q (n×l) for Q = Q₁·W₁: Aᵀ·Q₁·W₁, less μ·(1ᵀQ) when centring."""
        z = self.back(state["q1"], label) @ state["w1"]
        if self.mean is not None:
            z -= np.outer(self.mean, state["q_sums"])
        return z

    def sketch(self, x: np.ndarray, operand: np.ndarray | ArrayRef, label: str, number: int
               ) -> dict[str, Any]:
        """Q₁, W₁ and 1ᵀQ of the range of Ā·X (``operand``: X, or where it is stored), Q₁ kept
        by pass ``number``."""
        y, sums_of_y = self.forward(operand, label)
        shift = None if self.mean is None else x.T @ self.mean
        q1, w1, q_sums = self.orthonormalise(y, shift, self.ref(f"pass-{number}/q1"), sums_of_y)
        return {"q1": q1, "w1": w1, "q_sums": q_sums}

    def run_pass(self, name: str, iteration: int, number: int, state: dict[str, Any]) -> dict[str, Any]:
        """Pass ``number`` over A (``name`` as in :func:`passes`): what it leaves, over ``state``."""
        of = f"power iteration {iteration} of {self.prepared.plan.power_iters}"
        if name == "means":
            self.mean, squares = self.column_means()
            return {**state, "mean": self.mean, "squares": squares}
        if name == "range":
            omega = np.random.default_rng(self.prepared.parameters.seed).standard_normal(  # type: ignore[arg-type]
                (self.n, self.prepared.plan.sketch))
            return {**state, **self.sketch(omega, omega, "A·Ω: the range sketch", number)}
        if name == "back":
            x, _ = np.linalg.qr(self.centred_back(state, f"Aᵀ·Q: {of}"))
            return {**state, "x": x}
        if name == "forward":
            stored = self.ref(f"pass-{number - 1}/x")  # what the last pass left, read as a resumed run reads it
            return {**state, **self.sketch(state["x"], stored, f"A·Z: {of}", number)}
        return {**state, "bt": self.centred_back(state, "Aᵀ·Q: the projection B = Qᵀ·A")}

    def column_means(self) -> tuple[np.ndarray, float]:
        """A's column means and its sum of squares, in one pass of block tasks."""
        self._step("column means of A", None)
        if self.kept is not None:
            sums, squares, read = self.kept.column_stats()
            self.bytes_read += read
            return sums / self.m, squares
        array = open_input(self.prepared.a)
        unit = tuple(array.shards or array.chunks)
        blocks = stat_blocks((self.m, self.n), unit, self.prepared.a_zeros())  # type: ignore[arg-type]
        futures = [self.client.submit(column_stats, self.prepared.a, rows, span, "float64", runs, pure=False,
                                      key=f"blockdist-colstats-{uuid.uuid4().hex[:12]}")
                   for rows, span, runs in blocks]
        sums, squares = np.zeros(self.n), 0.0
        for found in self.client.gather(futures):
            sums[found.cols[0] : found.cols[1]] += found.sums
            squares += found.squares
            self.bytes_read += found.bytes_read
            self.absent_asked += found.absent_asked
        return sums / self.m, squares


def _whitening(gram: np.ndarray) -> np.ndarray:
    """W with (Y·W)ᵀ(Y·W) = I for YᵀY = ``gram``, dropping directions below rounding."""
    values, vectors = np.linalg.eigh((gram + gram.T) / 2)
    keep = values > max(values.max(), 0.0) * DROP
    if not keep.any():
        raise InputError("the sketch is zero: A is zero (or below rounding) on every direction tried")
    return vectors[:, keep] / np.sqrt(values[keep])


def _signs(u_small: np.ndarray, vt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each component's sign fixed so that its largest entry in Vᵀ is positive (deterministic output)."""
    signs = np.sign(vt[np.arange(vt.shape[0]), np.argmax(np.abs(vt), axis=1)])
    signs[signs == 0] = 1
    return u_small * signs, vt * signs[:, None]


def run_sketch(a: Any, out: Any, parameters: SketchParameters, options: Options, *,
               on_step: Step | None = None) -> SketchResult:
    """The randomized SVD (``parameters.kind`` "svd") or PCA of ``a``, U (or the scores) written
    to ``out``; ``options.resume`` continues a failed one from its last finished pass."""
    prepared = prepare_sketch(a, out, parameters, options)
    token = uuid.uuid4().hex[:12]
    lease = Lease(prepared.out, token, f"{prepared.plan.kind} of {prepared.a}", force=options.force)
    try:
        with connect(options.client, prepared.cluster, options.security, options.connect_timeout) as client:
            if options.client is not None:  # A kept or streamed: decided for this cluster
                prepared = decide_keep(prepared, shape_of(client, memory_budget(options.resolved("memory"))))
            run = _Run(prepared, client, options, token, on_step)
            # the scratch arrays share the output's store and options, so its entry covers them
            with shared_credentials(client, [prepared.a, prepared.out], token):
                try:
                    result = _follow(run)
                finally:  # however the run ends, A's blocks leave the workers' memory
                    if run.kept is not None:
                        # a cancel that fails (the scheduler gone) must not hide how the run ended:
                        # the blocks' futures are dropped here anyway, and the scheduler forgets them
                        with contextlib.suppress(Exception):
                            run.kept.release()
    finally:
        lease.release()
    return result


def _follow(run: _Run) -> SketchResult:
    """Every pass not finished yet, then U. A failure marks the record ``failed`` and keeps the
    scratch group for ``resume``; success removes it."""
    run.open_output()
    try:
        result = _compute(run)
    except BaseException:
        with contextlib.suppress(Exception):  # the failure itself is what the caller must see
            run.save_record(status=str(Status.FAILED))
        raise
    scratch_beside(run.prepared.out, SCRATCH_SUFFIX)[1]()
    return result


def _compute(run: _Run) -> SketchResult:
    state = run.restore()
    steps = passes(run.prepared.plan)
    for number, (name, iteration) in enumerate(steps, 1):
        if number > run.prepared.finished_passes:
            state = run.run_pass(name, iteration, number, state)
            run.keep(number, state, KEPT[name])
    return _finish(run, state)


def _finish(run: _Run, state: dict[str, Any]) -> SketchResult:
    """The SVD of the small B, U (or the scores) written from Q₁, and the record complete."""
    m, kind, rank, prepared = run.m, run.prepared.plan.kind, run.prepared.plan.rank, run.prepared
    u_small, s, vt = np.linalg.svd(state["bt"].T, full_matrices=False)  # B = Ũ·S·Vᵀ, l×n
    u_small, vt = _signs(u_small[:, :rank], vt[:rank])
    s = np.concatenate([s[:rank], np.zeros(max(0, rank - len(s)))])
    if u_small.shape[1] < rank:  # A's numerical rank is below ``rank``: the rest are zero
        u_small = np.pad(u_small, ((0, 0), (0, rank - u_small.shape[1])))
        vt = np.pad(vt, ((0, rank - vt.shape[0]), (0, 0)))
    weights = state["w1"] @ u_small
    if kind == "pca":
        weights = weights * s[None, :]  # the scores U·S: A's rows in the components' coordinates
    run._step(f"write {'the scores U·S' if kind == 'pca' else 'U'} ({m}×{rank}) to {prepared.out}", None)
    # Q₁ has W₁'s rows as columns
    run.bands(state["q1"], state["w1"].shape[0], weights, None, prepared.out, False)
    result = SketchResult(run.u, s, vt, prepared.plan, mean=run.mean)
    results: dict[str, Any] = {"singular_values": s.tolist()}
    if kind == "pca":
        assert run.mean is not None
        variance = s**2 / max(m - 1, 1)
        total = (state["squares"] - m * float(run.mean @ run.mean)) / max(m - 1, 1)
        result.explained_variance = variance
        result.explained_variance_ratio = variance / total if total > 0 else np.zeros_like(variance)
        results.update(explained_variance=variance.tolist(),
                       explained_variance_ratio=result.explained_variance_ratio.tolist())
    if run.kept is not None:
        result.a_bytes_read, absent = run.kept.reads()
        run.bytes_read += result.a_bytes_read
        run.absent_asked += absent
    result.absent_asked = run.absent_asked
    result.seconds, result.bytes_read = time.perf_counter() - run.started, run.bytes_read
    run.save_record(status=str(Status.COMPLETE),
                    results={**results, "seconds": round(result.seconds, 3), "bytes_read": run.bytes_read})
    result.u = run.u
    return result


__all__ = ["SketchResult", "run_sketch"]
