"""Randomized SVD and PCA planned as products (Halko, Martinsson & Tropp 2011, algorithms 4.4
and 5.1): what :func:`blockdist.svd` and :func:`blockdist.pca` will read, write and hold.

With A m×n, rank r, oversampling p and q power iterations, the sketch has l = min(r + p,
min(m, n)) columns. A is read 2q + 2 times (once more for PCA's mean), each time by one
blockdist product — ``A·X`` (X n×l) or ``Aᵀ·Q`` (Q m×l) — planned like any product; the m×l
sketches live in storage beside the output, and each orthonormalisation reads a sketch twice
and writes it once (its Gram matrix, then the whitened copy); only n×l matrices are held in
this process, never A.

Where A fits in the workers' memory with room to spare (:func:`keep_decision`), it is read once
instead: its decoded row blocks stay on the workers across the passes, and each pass is one
round of block tasks (A_b·X, A_bᵀ·Q_b) rather than a whole product job. With 2 workers of
8 GiB and A 40000×4000 float64 in chunks of 2000 rows, the blocks are 2000 rows (61 MiB), ten
a worker (610 MiB), well under half a worker's memory, so A is kept; with workers of 1 GiB,
twice the rows would take 1.19 GiB a worker, and A is streamed.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from ..errors import InputError, ShapeError
from .memory import WORKER_BASELINE
from .model import ClusterShape
from .units import format_size

#: A is kept only where its blocks on any worker, with the worker's own baseline and the tasks
#: its threads run beside them, take at most this share of the worker's memory: Dask starts
#: spilling at 60 % (its ``target``) and pauses a worker at 80 %.
KEEP_SHARE = 0.5
#: A kept block is whole chunk rows of A (at least one) under this many decoded bytes.
KEEP_BLOCK_BYTES = 64 * 2**20


@dataclass(frozen=True, slots=True)
class SketchParameters:
    """What a randomized SVD or PCA is asked for, beside A, OUT and the cluster's options."""

    kind: str  #: "svd" or "pca"
    rank: int  #: components kept (PCA's ``n_components``)
    oversample: int = 10  #: sketch columns beyond the rank
    power_iters: int = 2
    seed: object = None  #: of the random test matrix Ω, a whole number ≥ 0 (None: a fresh one)
    #: keep A's decoded blocks on the workers and read it once: True (refused where it cannot
    #: fit), False (stream it from storage every pass), None (keep it where it fits)
    keep_a: bool | None = None


def check_sketch(parameters: SketchParameters, shape: tuple[int, ...]) -> int:
    """Refuse a rank, oversampling or iteration count that cannot be, and return l."""
    kind, rank = parameters.kind, parameters.rank
    if len(shape) != 2:
        raise ShapeError(f"{kind}: A has {len(shape)} dimension(s) (shape {tuple(shape)}); it takes a 2-D matrix")
    m, n = shape
    what = "n_components" if kind == "pca" else "rank"
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank < min(m, n):
        raise InputError(f"{kind}: {what} = {rank!r} but A is {m}×{n}; it must be a whole number from 1 to "
                         f"{min(m, n) - 1} (below min(m, n) = {min(m, n)}); for all of them use numpy.linalg.svd")
    for name in ("oversample", "power_iters"):
        value = getattr(parameters, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(f"{kind}: {name} must be a whole number of at least 0, got {value!r}")
    seed = parameters.seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
        raise InputError(f"{kind}: seed must be a whole number of at least 0 (or None for a fresh one), "
                         f"got {seed!r}")
    if not (parameters.keep_a is None or isinstance(parameters.keep_a, bool)):
        raise InputError(f"{kind}: keep_a must be True, False or None (keep A where it fits), "
                         f"got {parameters.keep_a!r}")
    return min(rank + parameters.oversample, min(m, n))


#: The plan's memory line before the cluster is known (a given one's shape is read once connected).
UNDECIDED = "A kept on the workers where it fits, else streamed: decided once connected to the cluster"


@dataclass(frozen=True, slots=True)
class KeepDecision:
    """Whether A's decoded row blocks stay on the workers across the passes, and the numbers
    that decided it (:func:`keep_decision`)."""

    asked: bool | None  #: ``keep_a`` as given: None decides by the numbers
    a_bytes: int  #: A decoded as the passes use it (float64): what the workers hold together
    block_rows: int  #: rows of a kept block (whole chunk rows of A, all its columns)
    blocks: int
    per_worker: int  #: the most one worker holds: its share of the blocks, spread evenly
    task_bytes: int  #: one task of a pass beside the kept blocks (a block being decoded, X, its bands)
    cluster: ClusterShape

    @property
    def allowance(self) -> int:
        """What a worker's kept blocks may take: its share, less its baseline and its tasks."""
        budget = int(KEEP_SHARE * self.cluster.memory_per_worker)
        return budget - WORKER_BASELINE - self.cluster.threads * self.task_bytes

    @property
    def fits(self) -> bool:
        return self.per_worker <= self.allowance

    @property
    def kept(self) -> bool:
        return self.fits if self.asked is None else self.asked

    def summary(self) -> str:
        """One line: kept or streamed, and why.

        >>> print(keep_decision(None, (40000, 4000), 2000, 20, ClusterShape(2, 1, 8 * 2**30)).summary())
        A kept on the workers: 1.19 GiB of 16.00 GiB (20 blocks of 2000 rows, at most 610.4 MiB a worker; up to 3.75 GiB allowed)
        """
        c = self.cluster
        numbers = (f"{format_size(self.a_bytes)} of {format_size(c.workers * c.memory_per_worker)} "
                   f"({self.blocks} blocks of {self.block_rows} rows, at most {format_size(self.per_worker)} a worker; "
                   f"up to {format_size(max(self.allowance, 0))} allowed)")
        if self.kept:
            return f"A kept on the workers: {numbers}"
        if self.asked is False:
            return f"A streamed from storage every pass, as asked (keep_a=False); kept it would take {numbers}"
        return f"A streamed from storage every pass: it does not fit kept, {numbers}"

    def refusal(self, kind: str) -> str:
        """Why ``keep_a=True`` cannot be, with the numbers."""
        c = self.cluster
        return (f"{kind}: keep_a=True but A's decoded blocks would take {format_size(self.per_worker)} a worker "
                f"({format_size(self.a_bytes)} over {c.workers} worker(s)), and a worker may keep "
                f"{format_size(max(self.allowance, 0))}: {KEEP_SHARE:.0%} of its {format_size(c.memory_per_worker)}, "
                f"less {format_size(WORKER_BASELINE)} for the worker and {c.threads} × "
                f"{format_size(self.task_bytes)} for its tasks; give more workers or memory, or leave keep_a "
                "unset to stream A")


def keep_decision(asked: bool | None, shape: tuple[int, int], chunk_rows: int, sketch: int,
                  cluster: ClusterShape) -> KeepDecision:
    """Keep A on ``cluster``'s workers or stream it: row blocks of whole chunk rows (under
    :data:`KEEP_BLOCK_BYTES`, and at least one a task slot where A has the rows), spread
    evenly over the workers, each worker's share within its allowance.

    >>> small = keep_decision(None, (80000, 4000), 2000, 20, ClusterShape(2, 1, 2**30))
    >>> small.kept, small.per_worker // 2**20, small.allowance // 2**20
    (False, 1220, 257)
    >>> keep_decision(False, (40000, 4000), 2000, 20, ClusterShape(2, 1, 8 * 2**30)).kept
    False
    """
    m, n = shape
    row_bytes = n * 8
    chunk_rows = max(1, min(chunk_rows, m))
    per_block = max(1, KEEP_BLOCK_BYTES // (chunk_rows * row_bytes))
    per_slot = -(-m // (cluster.slots * chunk_rows))  # chunk rows a slot gets, were each given one block
    rows = min(m, chunk_rows * max(1, min(per_block, per_slot)))
    blocks = -(-m // rows)
    per_worker = -(-blocks // cluster.workers) * rows * row_bytes
    task = rows * row_bytes + 2 * n * sketch * 8 + 2 * rows * sketch * 8
    return KeepDecision(asked, m * row_bytes, rows, blocks, per_worker, task, cluster)


@dataclass(frozen=True)
class SketchPlan:
    """The passes of a randomized SVD or PCA and what each costs (:meth:`summary` prints it)."""

    kind: str  #: "svd" or "pca"
    shape: tuple[int, int]
    rank: int
    oversample: int
    power_iters: int
    sketch: int  #: l, the sketch's columns
    a_bytes: int  #: A as stored: what one pass reads
    itemsize: int  #: of the sketches (the products' result)
    forward: object  #: the plan of A·X (a :class:`~blockdist.planning.Plan`), when A is streamed
    backward: object  #: the plan of Aᵀ·Q
    keep: KeepDecision | None = None  #: whether A stays on the workers (None: not decided, streamed)

    @property
    def passes(self) -> int:
        """Passes over A: the range sketch, two a power iteration, the projection, PCA's mean."""
        return 2 * self.power_iters + 2 + (self.kind == "pca")

    @property
    def kept(self) -> bool:
        return self.keep is not None and self.keep.kept

    @property
    def reads_of_a(self) -> int:
        """Once where A is kept on the workers, else once a pass."""
        return 1 if self.kept else self.passes

    @property
    def bytes_read_of_a(self) -> int:
        return self.reads_of_a * self.a_bytes

    @property
    def sketch_bytes(self) -> int:
        return self.shape[0] * self.sketch * self.itemsize

    @property
    def memory_here(self) -> int:
        """n×l matrices held in this process at once (the sketch's other side, B and its SVD)."""
        return 4 * self.shape[1] * self.sketch * self.itemsize

    @property
    def predicted_seconds(self) -> float:
        forward, backward = self.forward.predicted_seconds, self.backward.predicted_seconds  # type: ignore[attr-defined]
        stats = forward if self.kind == "pca" else 0.0
        return (self.power_iters + 1) * (forward + backward) + stats

    def summary(self) -> str:
        m, n = self.shape
        what = "PCA scores U·S" if self.kind == "pca" else "U"
        if self.kept:
            assert self.keep is not None
            reads = (f", which is read once ({format_size(self.a_bytes)}) and kept: each pass a round of "
                     f"{self.keep.blocks} block tasks, no product job")
        else:
            reads = f" ({format_size(self.a_bytes)} each: {format_size(self.bytes_read_of_a)} read)"
        streamed = "streamed " if self.kept else "products "  # the products are the passes only where A is streamed
        lines = [
            f"{'PCA' if self.kind == 'pca' else 'randomized SVD'} of A ({m}×{n}): rank {self.rank} + oversample "
            f"{self.oversample} = a sketch of {self.sketch} columns, {self.power_iters} power iteration(s)",
            f"  passes    {self.passes} over A" + (" (the first for the column means)" if self.kind == "pca" else "")
            + reads,
            f"  memory    {self.keep.summary() if self.keep is not None else UNDECIDED}",
            f"  {streamed} A·X ({m}×{n} · {n}×{self.sketch}): {_brief(self.forward)}",
            f"            Aᵀ·Q ({n}×{m} · {m}×{self.sketch}): {_brief(self.backward)}",
            f"  sketches  {m}×{self.sketch} in storage beside the output, {format_size(self.sketch_bytes)} each, "
            f"read {'once (its Gram matrix summed by the block tasks)' if self.kept else 'twice'} and written once "
            "per orthonormalisation (removed once U is written; kept for a resume if a pass fails)",
            f"  here      up to {format_size(self.memory_here)} in this process ({n}×{self.sketch} matrices)",
            f"  output    {what} {m}×{self.rank} at OUT ({format_size(m * self.rank * self.itemsize)}); "
            f"s and Vᵀ ({self.rank}×{n}) returned",
            f"  predicted {self.predicted_seconds:,.1f} s by the cost model (the products"
            + ("; a bound where A is kept)" if self.kept else ")"),
        ]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(self.summary())}</pre>"

    def __repr__(self) -> str:
        return self.summary()


def _brief(plan: object) -> str:
    p = plan
    return (f"{p.tiles} tile(s) of {p.tile_rows}×{p.tile_cols}, {p.tasks} task(s), "  # type: ignore[attr-defined]
            f"{format_size(p.memory.total)} per task, reads {p.io_ratio:.2f} × the bound")  # type: ignore[attr-defined]


__all__ = ["KEEP_BLOCK_BYTES", "KEEP_SHARE", "KeepDecision", "SketchParameters", "SketchPlan", "check_sketch",
           "keep_decision"]
