"""Randomized SVD and PCA of a stored matrix (:func:`blockdist.svd`, :func:`blockdist.pca`).

Halko, Martinsson & Tropp's range finder with power iterations, re-orthonormalised after every
product with A (their algorithm 4.4), then the SVD of the small projection B = QᵀA
(algorithm 5.1). Every product with A is a blockdist job on one cluster (a local one started
once when none is given) and reads A from storage; the m×l sketches stay in storage beside the
output (``.OUT.blockdist-svd/``, removed afterwards, however the run ends); only n×l matrices
are held here.

A sketch Y is orthonormalised without reading A again (CholeskyQR2 by eigen-decomposition,
dropping directions below rounding): one pass of band tasks sums YᵀY, a second writes
Q₁ = Y·W₀ and sums Q₁ᵀQ₁, whose whitening W₁ is kept in memory, so Q = Q₁·W₁ is never
written. PCA centres A without a centred copy: every product with A is corrected by the
mean's rank-one term (Ā·X = A·X − 1·(μᵀX), and Āᵀ·Q = Aᵀ·Q − μ·(1ᵀQ)) on the small side.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import InputError
from ..planning import ClusterShape, MatrixLayout, make_plan
from ..planning.operation import logical
from ..planning.sketch import SketchPlan, check_sketch
from ..planning.writes import Region, WriteUnit, check_writes
from ..storage import (
    ArrayRef,
    check_creatable,
    check_output_location,
    create_output,
    layout_of,
    locate,
    open_input,
    read_block,
    save_attributes,
    store_matrix,
)
from ..storage.partials import scratch_beside
from ..worker.rowbands import column_stats, transform_band
from .cluster import connect, local_shape, shape_of
from .credentials import shared_credentials
from .lease import Lease, check_free
from .manifest import WORKLOAD_KEY
from .prepare import memory_budget
from .request import Options, Request

SCRATCH_SUFFIX = ".blockdist-svd"
#: Rows of a band task: its band of a sketch stays under this many bytes.
BAND_BYTES = 64 * 2**20
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


@dataclass(frozen=True)
class Prepared:
    plan: SketchPlan
    a: ArrayRef
    out: ArrayRef
    dtype: np.dtype  #: of the sketches and the results
    band_rows: int
    cluster: ClusterShape | None


def _dtype(stored: np.dtype, kind: str, name: str) -> np.dtype:
    if stored.kind == "c":
        raise InputError(f"{kind}: {name} is complex ({stored}); the randomized SVD here takes real matrices")
    return np.dtype("float32") if stored == np.float32 else np.dtype("float64")


def prepare_sketch(kind: str, a: Any, rank: Any, out: Any, options: Options, *, oversample: Any,
                   power_iters: Any) -> Prepared:
    """Every check (A, the rank, the output) and the plan, before anything is written."""
    a_ref = locate(a, storage_options=options.storage_options, role="a")
    array = open_input(a_ref)
    sketch = check_sketch(kind, tuple(array.shape), rank, oversample, power_iters)
    dtype = _dtype(np.dtype(array.dtype), kind, str(a_ref))
    out_ref = locate(out, storage_options=options.storage_options, role="out")
    check_creatable(out_ref)
    check_output_location(out_ref, [a_ref], overwrite=options.overwrite)
    check_free(out_ref, options.force)
    budget = memory_budget(options.resolved("memory"))
    cluster = local_shape(options.workers, options.threads, budget) if options.client is None else None
    m, n = array.shape
    layout = layout_of(array, a_ref, np.dtype("float64"))
    band_rows = _band_rows(m, layout.chunks[0], sketch, dtype.itemsize)
    plan_cluster = cluster or local_shape(None, None, budget)
    forward = _plan(layout, MatrixLayout((n, sketch), (layout.chunks[1], sketch), 8), plan_cluster, options)
    backward = _plan(logical(layout, True), MatrixLayout((m, sketch), (band_rows, sketch), 8), plan_cluster, options)
    plan = SketchPlan(kind, (m, n), rank, oversample, power_iters, sketch, _stored_bytes(array), 8, forward, backward)
    return Prepared(plan, a_ref, out_ref, dtype, band_rows, cluster)


def _stored_bytes(array: Any) -> int:
    """A's bytes as stored, from zarr's own count (decoded size where it cannot tell)."""
    try:
        stored = int(array.nbytes_stored())
        return stored if stored > 0 else int(array.nbytes)
    except Exception:  # noqa: BLE001 - a store that cannot list: the decoded size
        return int(array.nbytes)


def _plan(a: MatrixLayout, b: MatrixLayout, cluster: ClusterShape, options: Options) -> Any:
    from .tune import load_model

    return make_plan(a, b, cluster, dtype="float64", model=options.model or load_model())


def _band_rows(m: int, chunk_rows: int, width: int, itemsize: int) -> int:
    """Rows of a band task: whole chunk rows of A (the sketches' chunks), under BAND_BYTES."""
    per_chunk_row = max(1, chunk_rows) * width * max(itemsize, 8)
    return min(m, max(1, BAND_BYTES // per_chunk_row) * chunk_rows)


class _Run:
    """One randomized SVD on one client: its products, band passes and scratch arrays."""

    def __init__(self, prepared: Prepared, client: Any, options: Options, scratch: str, on_step: Step | None) -> None:
        self.prepared, self.client, self.options, self.scratch = prepared, client, options, scratch
        self.on_step = on_step
        self.m, self.n = prepared.plan.shape
        self.bytes_read = 0
        self.count = 0
        self.mean: np.ndarray | None = None

    def ref(self, name: str) -> ArrayRef:
        return locate(f"{self.scratch}/{name}.zarr", storage_options=self.options.storage_options, role="out")

    def _step(self, label: str, job: Any = None) -> None:
        if self.on_step is not None:
            self.on_step(label, job)

    # --- products with A ----------------------------------------------------------------
    def product(self, x: np.ndarray | ArrayRef, transpose: bool, label: str) -> np.ndarray | ArrayRef:
        """A·X (X n×l in memory; the result stays stored) or Aᵀ·Q (Q stored; the result read here)."""
        from .start import submit

        self.count += 1
        operand = x
        if isinstance(x, np.ndarray):
            operand = self.ref(f"x-{self.count}")
            store_matrix(operand, x, (min(self.n, self.prepared.plan.forward.b.chunks[0]), x.shape[1]))
        target = self.ref(f"product-{self.count}")
        keep = {k: v for k, v in self.options.__dict__.items() if k in ("memory", "storage_options", "model")}
        step = replace(Options(**keep), client=self.client, overwrite=True, transpose_a=transpose)
        job = submit(Request(self.prepared.a, operand, target, step))
        self._step(label, job)
        job.result()
        self.bytes_read += job.stats.bytes_read
        if not transpose:
            return target
        block, _ = read_block(target, (0, self.n), (0, self._width(target)), np.dtype("float64"))
        return block

    def _width(self, ref: ArrayRef) -> int:
        return int(open_input(ref).shape[1])

    # --- band passes over a stored sketch ----------------------------------------------------
    def bands(self, source: ArrayRef, width: int, weights: np.ndarray | None, shift: np.ndarray | None,
              target: ArrayRef | None, gram: bool) -> tuple[np.ndarray | None, np.ndarray]:
        rows = self.prepared.band_rows
        edges = [(lo, min(lo + rows, self.m)) for lo in range(0, self.m, rows)]
        if target is not None:  # each band writes whole chunks of the target that no other band writes
            stored = open_input(target)
            shards = tuple(stored.shards) if stored.shards else None
            unit = WriteUnit(tuple(stored.shape), tuple(stored.chunks), shards)
            check_writes(str(target), unit,  # type: ignore[arg-type]
                         [Region(f"band {i}", band, (0, stored.shape[1])) for i, band in enumerate(edges)])
        futures = [self.client.submit(transform_band, source, band, width, weights, shift, target, gram,
                                      "float64", pure=False, key=f"blockdist-band-{uuid.uuid4().hex[:12]}")
                   for band in edges]
        results = self.client.gather(futures)
        self.bytes_read += sum(r.bytes_read for r in results)
        grams = [r.gram for r in results if r.gram is not None]
        return (sum(grams) if grams else None), sum(r.sums for r in results)

    def orthonormalise(self, y: ArrayRef, shift: np.ndarray | None) -> tuple[ArrayRef, np.ndarray, np.ndarray]:
        """(Q₁, W₁, 1ᵀQ) with Q = Q₁·W₁ an orthonormal basis of Y − 1·shiftᵀ (CholeskyQR2)."""
        width = self._width(y)
        gram, sums = self.bands(y, width, None, None, None, True)
        assert gram is not None
        if shift is not None:  # the Gram matrix of the centred sketch, from the plain one
            gram = gram - np.outer(sums, shift) - np.outer(shift, sums) + self.m * np.outer(shift, shift)
        w0 = _whitening(gram)
        self.count += 1
        q1 = self.ref(f"q-{self.count}")
        create_output(q1, shape=(self.m, w0.shape[1]), chunks=(self.prepared.band_rows, w0.shape[1]),
                      dtype="float64", overwrite=True, attributes={})
        self._step(f"orthonormalise {self.m}×{width} sketch", None)
        gram1, sums1 = self.bands(y, width, w0, None if shift is None else w0.T @ shift, q1, True)
        assert gram1 is not None
        w1 = _whitening(gram1)
        return q1, w1, sums1 @ w1

    # --- the algorithm -------------------------------------------------------------------
    def centred_back(self, q1: ArrayRef, w1: np.ndarray, q_sums: np.ndarray, label: str) -> np.ndarray:
        """Āᵀ·Q (n×l) for Q = Q₁·W₁: Aᵀ·Q₁·W₁, less μ·(1ᵀQ) when centring."""
        z = self.product(q1, True, label) @ w1  # type: ignore[operator]
        if self.mean is not None:
            z -= np.outer(self.mean, q_sums)
        return z

    def sketch(self, x: np.ndarray, label: str) -> tuple[ArrayRef, np.ndarray, np.ndarray]:
        y = self.product(x, False, label)
        assert isinstance(y, ArrayRef)
        return self.orthonormalise(y, None if self.mean is None else x.T @ self.mean)

    def column_means(self) -> tuple[np.ndarray, float]:
        """A's column means and its sum of squares, in one pass of block tasks."""
        self._step("column means of A", None)
        array = open_input(self.prepared.a)
        chunk_rows, chunk_cols = (array.shards or array.chunks)
        cols = max(chunk_cols, (BAND_BYTES // (8 * chunk_rows)) // chunk_cols * chunk_cols)
        blocks = [((r, min(r + chunk_rows, self.m)), (c, min(c + cols, self.n)))
                  for r in range(0, self.m, chunk_rows) for c in range(0, self.n, cols)]
        futures = [self.client.submit(column_stats, self.prepared.a, rows, span, "float64", pure=False,
                                      key=f"blockdist-colstats-{uuid.uuid4().hex[:12]}") for rows, span in blocks]
        sums, squares = np.zeros(self.n), 0.0
        for (c0, c1), part, sq, read in self.client.gather(futures):
            sums[c0:c1] += part
            squares += sq
            self.bytes_read += read
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


def run_sketch(kind: str, a: Any, rank: int, out: Any, options: Options, *, oversample: int = 10,
               power_iters: int = 2, seed: Any = None, on_step: Step | None = None) -> SketchResult:
    """The randomized SVD (``kind="svd"``) or PCA of ``a``, U (or the scores) written to ``out``."""
    import time

    prepared = prepare_sketch(kind, a, rank, out, options, oversample=oversample, power_iters=power_iters)
    plan = prepared.plan
    rng = np.random.default_rng(seed)
    scratch, remove = scratch_beside(prepared.out, SCRATCH_SUFFIX)
    token = uuid.uuid4().hex[:12]
    start = time.perf_counter()
    lease = Lease(prepared.out, token, f"{kind} of {prepared.a}", force=options.force)
    try:
        with connect(options.client, prepared.cluster, options.security, options.connect_timeout) as client:
            if options.client is not None:
                shape_of(client, memory_budget(options.resolved("memory")))
            run = _Run(prepared, client, options, scratch, on_step)
            # the scratch arrays share the output's store and options, so its entry covers them
            with shared_credentials(client, [prepared.a, prepared.out], token):
                result = _compute(run, kind, rank, rng, plan)
    finally:
        remove()
        lease.release()
    result.seconds = time.perf_counter() - start
    result.bytes_read = run.bytes_read
    return result


def _compute(run: _Run, kind: str, rank: int, rng: np.random.Generator, plan: SketchPlan) -> SketchResult:
    m, n, total_squares = run.m, run.n, 0.0
    if kind == "pca":
        run.mean, total_squares = run.column_means()
    omega = rng.standard_normal((n, plan.sketch))
    q1, w1, q_sums = run.sketch(omega, "A·Ω: the range sketch")
    for i in range(plan.power_iters):
        z = run.centred_back(q1, w1, q_sums, f"Aᵀ·Q: power iteration {i + 1} of {plan.power_iters}")
        x, _ = np.linalg.qr(z)
        q1, w1, q_sums = run.sketch(x, f"A·Z: power iteration {i + 1} of {plan.power_iters}")
    bt = run.centred_back(q1, w1, q_sums, "Aᵀ·Q: the projection B = Qᵀ·A")
    u_small, s, vt = np.linalg.svd(bt.T, full_matrices=False)  # B = Ũ·S·Vᵀ, l×n
    u_small, vt = _signs(u_small[:, :rank], vt[:rank])
    s = np.concatenate([s[:rank], np.zeros(max(0, rank - len(s)))])
    if u_small.shape[1] < rank:  # A's numerical rank is below ``rank``: the rest are zero
        u_small = np.pad(u_small, ((0, 0), (0, rank - u_small.shape[1])))
        vt = np.pad(vt, ((0, rank - vt.shape[0]), (0, 0)))
    weights = w1 @ u_small
    if kind == "pca":
        weights = weights * s[None, :]  # the scores U·S: A's rows in the components' coordinates
    prepared = run.prepared
    marker = {"kind": kind, "status": "running", "rank": rank, "sketch": plan.sketch,
              "power_iters": plan.power_iters, "oversample": plan.oversample, "input": str(prepared.a)}
    u = create_output(prepared.out, shape=(m, rank), chunks=(prepared.band_rows, rank), dtype=prepared.dtype.name,
                      overwrite=run.options.overwrite, attributes={WORKLOAD_KEY: marker})
    run._step(f"write {'the scores U·S' if kind == 'pca' else 'U'} ({m}×{rank}) to {prepared.out}", None)
    run.bands(q1, w1.shape[0], weights, None, prepared.out, False)  # Q₁ has W₁'s rows as columns
    result = SketchResult(u, s, vt, plan, mean=run.mean)
    done = {**marker, "status": "complete", "singular_values": s.tolist()}
    if kind == "pca":
        assert run.mean is not None
        variance = s**2 / max(m - 1, 1)
        total = (total_squares - m * float(run.mean @ run.mean)) / max(m - 1, 1)
        result.explained_variance = variance
        result.explained_variance_ratio = variance / total if total > 0 else np.zeros_like(variance)
        done.update(explained_variance=variance.tolist(), explained_variance_ratio=result.explained_variance_ratio.tolist())
    result.u = save_attributes(prepared.out, u, {WORKLOAD_KEY: done})
    return result


__all__ = ["SketchResult", "prepare_sketch", "run_sketch"]
