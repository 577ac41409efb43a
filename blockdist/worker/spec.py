"""What a task is told: plain, picklable values the graph carries (store references, slices,
small parameters; never array data).

One :class:`TileTask` per block product, one :class:`OperandSpec` for each of A and B in it,
and a :class:`TileOutput` saying where the finished tile goes and what becomes of it first
(:class:`Finish`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..planning.sparse import Runs
from ..storage import ArrayRef

Range = tuple[int, int]


@dataclass(frozen=True, slots=True)
class OperandSpec:
    """How a task reads one operand's panels."""

    ref: ArrayRef
    depth: int  #: k-depth of a panel (a multiple of the operand's k-chunk)
    kchunk: int  #: the operand's chunk along k
    transpose: bool = False  #: op(X) = Xᵀ: read the stored block [ks, span] and use its transpose
    conjugate: bool = False  #: op(X) = Xᴴ (complex X)
    mapped: bool = False  #: map its chunk files (where they are raw local files) rather than copy them


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """Freivalds' check of a tile from the panels its task holds (see :mod:`.tilecheck`)."""

    trials: int  #: random ±1 vectors
    seed: int


@dataclass(frozen=True, slots=True)
class TileTask:
    """One block product: C[rows, cols] (+)= op(A)[rows, ks] · op(B)[ks, cols]."""

    rows: Range
    cols: Range
    ks: Range
    a: OperandSpec
    b: OperandSpec
    kernel_rows: int
    dtype: str  #: the result dtype
    check: CheckSpec | None = None
    blas: bool = True  #: multiply through BLAS where it can (False: numpy into a scratch block)
    #: a diagonal tile of a symmetric product: op(B) is op(A)ᵀ (ᴴ), so the task reads only A and
    #: computes the tile's upper triangle by syrk (herk) at half the flops
    square: bool = False
    job: str = ""  #: the job's token, for progress events ("" sends none)
    tile: int = -1  #: the output tile's number
    progress_interval: float = 0.0  #: seconds between progress events (0: none)
    #: Where blocks are absent (fill value 0): for each panel of A (of B), one k-chunk deep, the
    #: stretches of the tile's rows (columns) to read, from :func:`~blockdist.planning.sparse.panel_runs`;
    #: the rest is zero, neither read nor multiplied. ``None``: every panel whole.
    a_runs: tuple[Runs, ...] | None = None
    b_runs: tuple[Runs, ...] | None = None

    @property
    def absent_blocks(self) -> bool:
        return self.a_runs is not None or self.b_runs is not None


@dataclass(frozen=True, slots=True)
class Finish:
    """What becomes of a tile's product before it is written: C = alpha·op(A)·op(B) + beta·C0."""

    alpha: complex | float = 1
    beta: complex | float = 0
    c0: ArrayRef | None = None  #: C0, read tile by tile (may have its own chunking)
    #: In-place update (C0 is the output): a staging array and per-tile markers beside it make
    #: the update idempotent, so a retried task never applies beta twice (see :mod:`.finish`).
    stage: ArrayRef | None = None
    markers: ArrayRef | None = None
    mirror: bool = False  #: a symmetric product: also write the tile's (conjugate) transpose
    conjugate_mirror: bool = False


@dataclass(frozen=True, slots=True)
class TileOutput:
    """Where a finished tile goes: the output, the tile's number and place, and its finish."""

    ref: ArrayRef
    number: int  #: the tile's number in the plan's grid (see blockdist.planning.grid)
    rows: Range
    cols: Range
    finish: Finish = Finish()
