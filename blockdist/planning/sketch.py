"""Randomized SVD and PCA planned as products (Halko, Martinsson & Tropp 2011, algorithms 4.4
and 5.1): what :func:`blockdist.svd` and :func:`blockdist.pca` will read, write and hold.

With A m×n, rank r, oversampling p and q power iterations, the sketch has l = min(r + p,
min(m, n)) columns. A is read 2q + 2 times (once more for PCA's mean), each time by one
blockdist product — ``A·X`` (X n×l) or ``Aᵀ·Q`` (Q m×l) — planned like any product; the m×l
sketches live in storage beside the output, and each orthonormalisation reads a sketch twice
and writes it once (its Gram matrix, then the whitened copy); only n×l matrices are held in
this process, never A.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from ..errors import InputError, ShapeError
from .units import format_size


@dataclass(frozen=True, slots=True)
class SketchParameters:
    """What a randomized SVD or PCA is asked for, beside A, OUT and the cluster's options."""

    kind: str  #: "svd" or "pca"
    rank: int  #: components kept (PCA's ``n_components``)
    oversample: int = 10  #: sketch columns beyond the rank
    power_iters: int = 2
    seed: object = None  #: of the random test matrix Ω, a whole number ≥ 0 (None: a fresh one)


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
    return min(rank + parameters.oversample, min(m, n))


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
    forward: object  #: the plan of A·X (a :class:`~blockdist.planning.Plan`)
    backward: object  #: the plan of Aᵀ·Q

    @property
    def passes(self) -> int:
        """Reads of A: the range sketch, two a power iteration, the projection, PCA's mean."""
        return 2 * self.power_iters + 2 + (self.kind == "pca")

    @property
    def bytes_read_of_a(self) -> int:
        return self.passes * self.a_bytes

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
        lines = [
            f"{'PCA' if self.kind == 'pca' else 'randomized SVD'} of A ({m}×{n}): rank {self.rank} + oversample "
            f"{self.oversample} = a sketch of {self.sketch} columns, {self.power_iters} power iteration(s)",
            f"  passes    {self.passes} over A ({format_size(self.a_bytes)} each): {format_size(self.bytes_read_of_a)} "
            "read" + (", the first for the column means" if self.kind == "pca" else ""),
            f"  products  A·X ({m}×{n} · {n}×{self.sketch}): {_brief(self.forward)}",
            f"            Aᵀ·Q ({n}×{m} · {m}×{self.sketch}): {_brief(self.backward)}",
            f"  sketches  {m}×{self.sketch} in storage beside the output, {format_size(self.sketch_bytes)} each, "
            "read twice and written once per orthonormalisation (removed once U is written; kept for a "
            "resume if a pass fails)",
            f"  here      up to {format_size(self.memory_here)} in this process ({n}×{self.sketch} matrices)",
            f"  output    {what} {m}×{self.rank} at OUT ({format_size(m * self.rank * self.itemsize)}); "
            f"s and Vᵀ ({self.rank}×{n}) returned",
            f"  predicted {self.predicted_seconds:,.1f} s by the cost model (the products)",
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


__all__ = ["SketchParameters", "SketchPlan", "check_sketch"]
