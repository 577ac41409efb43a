"""The Python API.

One rule for blocking: a function named for a product (:func:`matmul`, :func:`gram`) waits for
it and returns the output array; ``submit…`` (:func:`submit`, :func:`submit_gram`) returns a
:class:`~blockdist.runtime.job.Job` at once. Every option is declared once, in
:class:`~blockdist.runtime.request.Options`, and every check that can fail on the user's input
runs before any task is submitted and before anything is written.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import IncompleteOutputError, InputError, ShapeError
from .planning import Plan
from .runtime.request import Options, Request, takes_options

if TYPE_CHECKING:
    from .checks import VerifyReport
    from .runtime.job import Job
    from .storage import Array
    from .storage.interop import Matrix
    from .worker.stats import TaskStats

#: The options of a product that :func:`gram` does not take: it computes alpha·X·Xᵀ only.
_NOT_GRAM = ("c", "beta", "transpose_a", "transpose_b")
#: A chain is plain products: no general-product or resume options.
_NOT_CHAIN = ("c", "alpha", "beta", "transpose_a", "transpose_b", "resume", "out_chunks", "out_shards",
              "allow_missing_chunks", "require_all_chunks")
#: What a randomized SVD or PCA takes: the cluster, storage and output options of its products.
_SKETCH = {"client", "memory", "workers", "threads", "security", "connect_timeout", "storage_options", "model",
           "overwrite", "force", "resume"}
#: The options :func:`plan` and :func:`verify` take (they start no job).
_PLANNING = {"memory", "workers", "threads", "storage_options", "model", "alpha", "beta", "c", "transpose_a",
             "transpose_b", "require_all_chunks"}
_CHECKING = {"client", "memory", "workers", "threads", "security", "storage_options", "connect_timeout"}
#: Top-k ranks Q·Cᵀ as it is: no general-product, output-format or check options.
_NOT_TOPK = ("c", "alpha", "beta", "transpose_a", "transpose_b", "out_chunks", "out_shards", "verify", "partials")


@dataclass
class JobResult:
    """What a finished product reports."""

    array: Array
    plan: Plan
    seconds: float
    stats: TaskStats
    dashboard_link: str | None
    token: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def gflops(self) -> float:
        return self.plan.flops / self.seconds / 1e9


def _options(caller: Any, keywords: dict[str, Any]) -> Options:
    return Options.from_keywords(caller.__name__, keywords, caller.__option_names__)


@takes_options(exclude=tuple(set(Options.__dataclass_fields__) - _PLANNING))
def plan(a: Any, b: Any, **options: Any) -> Plan:
    """Plan C = A·B without computing it.

    ``memory`` is the budget of each worker (bytes or a string such as ``"4GB"``); by default
    a local cluster's share of this machine's memory. ``workers`` and ``threads`` (per
    worker) default to a local cluster of one single-threaded worker per core.
    """
    from .runtime.cluster import local_shape
    from .runtime.prepare import check, memory_budget, plan_product

    request = Request(a, b, None, _options(plan, options))
    checked = check(request)
    o = request.options
    return plan_product(checked, local_shape(o.workers, o.threads, memory_budget(o.resolved("memory"))))


@takes_options()
def submit(a: Any, b: Any, out: str | os.PathLike[str], **options: Any) -> Job:
    """Start C = alpha·op(A)·op(B) + beta·C0 into the Zarr array ``out`` and return its
    :class:`~blockdist.runtime.job.Job` at once. Every check on the input runs before this returns.

    ``a`` and ``b`` are paths, URLs, ``zarr.Array`` or dask arrays (read in place when built
    by ``da.from_zarr``, otherwise stored to a scratch Zarr array beside the output and removed
    afterwards). ``verify`` checks each tile's product with Freivalds' algorithm from the panels
    its task already holds, so the check reads nothing again (resumed tiles are not re-checked).
    An input chunk that is not stored is the array's fill value, as zarr reads it (zarr writes no
    chunk that holds only the fill value); where that is 0, block products with an absent block
    are neither read nor computed. ``require_all_chunks`` refuses such inputs instead.
    """
    from .runtime.start import submit as start_job

    return start_job(Request(a, b, out, _options(submit, options)))


@takes_options()
def matmul(a: Any, b: Any, out: str | os.PathLike[str], **options: Any) -> Array:
    """Compute C = alpha·op(A)·op(B) + beta·C0 into the Zarr array ``out`` and return it.

    Takes :func:`submit`'s arguments and waits for the product.
    """
    return submit(a, b, out, **options).result()


@takes_options(exclude=_NOT_GRAM)
def submit_gram(x: Any, out: str | os.PathLike[str], *, transpose: bool = False, **options: Any) -> Job:
    """Start the symmetric product X·Xᵀ (or Xᵀ·X with ``transpose=True``; Xᴴ for complex X)
    and return its :class:`~blockdist.runtime.job.Job`. Only the tiles on and above the diagonal
    are computed, about half the work; each writes its mirror image below the diagonal too."""
    from .runtime.start import submit as start_job

    given = _options(submit_gram, options)
    request = Request(x, x, out, given, symmetric=True).with_options(transpose_a=transpose, transpose_b=not transpose)
    return start_job(request)


@takes_options(exclude=_NOT_GRAM)
def gram(x: Any, out: str | os.PathLike[str], *, transpose: bool = False, **options: Any) -> Array:
    """Compute the symmetric product X·Xᵀ (Xᵀ·X with ``transpose=True``) into ``out`` and return
    it; :func:`submit_gram`'s arguments."""
    return submit_gram(x, out, transpose=transpose, **options).result()


@takes_options(exclude=_NOT_CHAIN)
def multi_dot(arrays: Any, out: str | os.PathLike[str], **options: Any) -> Array:
    """Compute the chain ``arrays[0] · arrays[1] · …`` into ``out`` in its cheapest order
    (numpy's ``multi_dot`` programme, weighted by the reads and writes of each product) and
    return the output array. Intermediates go to a scratch folder beside ``out`` and are
    removed afterwards; :func:`plan_chain` shows the order and its cost against left to right."""
    from .runtime.chain import multi_dot as run_chain

    array, _ = run_chain(list(arrays), out, _options(multi_dot, options))
    return array


@takes_options(exclude=_NOT_CHAIN)
def plan_chain(arrays: Any, out: str | os.PathLike[str] = "chain.zarr", **options: Any) -> Any:
    """The order :func:`multi_dot` would take, and its cost against left to right (nothing runs)."""
    from .runtime.chain import prepare_chain

    chain, _ = prepare_chain(list(arrays), out, _options(plan_chain, options))
    return chain


@dataclass
class PCAResult:
    """What :func:`pca` found; ``scores`` is the stored m×n_components array (A's centred rows in the
    components' coordinates, U·S), the rest is in memory (as scikit-learn's ``PCA`` names them)."""

    scores: Array
    components: Any  #: n_components × n, the principal axes (rows of Vᵀ)
    explained_variance: Any
    explained_variance_ratio: Any
    singular_values: Any
    mean: Any  #: A's column means
    seconds: float = 0.0


def _show_steps(label: str, job: Job | None) -> None:
    print(label, flush=True)
    if job is not None:
        job.progress()


@takes_options(exclude=tuple(set(Options.__dataclass_fields__) - _SKETCH))
def svd(a: Any, rank: int, *, out: str | os.PathLike[str], oversample: int = 10, power_iters: int = 2,
        seed: Any = None, keep_a: bool | None = None, progress: bool = False, **options: Any) -> tuple[Array, Any, Any]:
    """The randomized SVD A ≈ U·diag(s)·Vᵀ of rank ``rank`` (Halko, Martinsson & Tropp): returns
    ``(u, s, vt)``, ``u`` the m×rank Zarr array written at ``out``, ``s`` and ``vt`` numpy arrays.

    A is passed over ``2·power_iters + 2`` times. Where its decoded blocks fit in the workers'
    memory with room to spare (at most half of each worker's, with its tasks; :func:`plan_svd`
    shows the numbers), A is read from storage once and kept there across the passes, each pass
    a round of block tasks; elsewhere, or with ``keep_a=False``, each pass streams A from
    storage by a blockdist product and A is never held (``keep_a=True`` refuses a cluster it
    cannot fit on). The sketches (m × (rank + oversample)) stay in scratch storage beside ``out``, removed once
    ``u`` is written; each is re-orthonormalised after every product. ``seed`` makes it
    repeatable; ``progress`` names each step and shows each product's progress bar (a widget in
    Jupyter). A run that fails is marked ``failed`` in ``out``'s workload record and keeps its
    sketches: ``resume=True`` (the same A and parameters) continues from its last finished pass
    and gives what an uninterrupted run gives. :func:`plan_svd` shows the passes and their cost
    without running anything."""
    from .planning.sketch import SketchParameters
    from .runtime.svd import run_sketch

    parameters = SketchParameters("svd", rank, oversample, power_iters, seed, keep_a)
    result = run_sketch(a, out, parameters, _options(svd, options), on_step=_show_steps if progress else None)
    return result.u, result.s, result.vt


@takes_options(exclude=tuple(set(Options.__dataclass_fields__) - _SKETCH))
def pca(a: Any, n_components: int, *, out: str | os.PathLike[str], oversample: int = 10, power_iters: int = 2,
        seed: Any = None, keep_a: bool | None = None, progress: bool = False, **options: Any) -> PCAResult:
    """Principal components of A's rows (samples × features) by a randomized SVD of the centred
    A, without writing a centred copy: the mean's rank-one correction is applied to each product
    on its small side. The scores (U·S, m × n_components) are written at ``out``; the
    components, explained variance (and its ratio to A's total variance), singular values and
    mean come back in a :class:`PCAResult`. One more pass over A than :func:`svd` (the means);
    A kept on the workers where it fits, or streamed (``keep_a``), and ``resume=True`` continues a
    failed one, as for :func:`svd`."""
    from .planning.sketch import SketchParameters
    from .runtime.svd import run_sketch

    parameters = SketchParameters("pca", n_components, oversample, power_iters, seed, keep_a)
    result = run_sketch(a, out, parameters, _options(pca, options), on_step=_show_steps if progress else None)
    return PCAResult(result.u, result.vt, result.explained_variance, result.explained_variance_ratio, result.s,
                     result.mean, result.seconds)


@takes_options(exclude=tuple(set(Options.__dataclass_fields__) - _SKETCH))
def plan_svd(a: Any, rank: int, *, out: str | os.PathLike[str] = "svd.zarr", oversample: int = 10,
             power_iters: int = 2, pca: bool = False, keep_a: bool | None = None, **options: Any) -> Any:
    """The passes :func:`svd` (or :func:`pca`, with ``pca=True``) would make over A, its products'
    plans, what it keeps in storage and in memory (A kept on the workers or streamed, and why),
    and the predicted time (nothing runs)."""
    from .planning.sketch import SketchParameters
    from .runtime.svd_prepare import prepare_sketch

    parameters = SketchParameters("pca" if pca else "svd", rank, oversample, power_iters, keep_a=keep_a)
    return prepare_sketch(a, out, parameters, _options(plan_svd, options)).plan
@takes_options(exclude=_NOT_TOPK)
def submit_topk(queries: Any, corpus: Any, k: int, out: str | os.PathLike[str], **options: Any) -> Job:
    """Start top-k similarity: for each row of ``queries`` (m×d), the ``k`` rows of ``corpus``
    (n×d) with the largest dot products, best first (equal scores: the lower corpus row first),
    into the Zarr group ``out`` (arrays ``indices``, int64, and ``scores``, both m×k); returns
    its :class:`~blockdist.runtime.job.Job` at once (``job.result()`` gives the two arrays).

    The product Q·Cᵀ is planned and computed tile by tile as any product, but never stored: each
    tile keeps its best k a row and merges combine them. ``resume`` is refused (an interrupted
    job starts again with ``overwrite``); the group's workload record (``blockdist-workload``, as
    an SVD's) says ``complete`` only once every row is written."""
    from .runtime.topk import submit_topk as start_topk

    return start_topk(queries, corpus, k, out, _options(submit_topk, options))


@takes_options(exclude=_NOT_TOPK)
def topk(queries: Any, corpus: Any, k: int, out: str | os.PathLike[str], **options: Any) -> tuple[Array, Array]:
    """Top-k similarity into the Zarr group ``out``; returns ``(indices, scores)``, opened
    read-only. :func:`submit_topk`'s arguments."""
    return submit_topk(queries, corpus, k, out, **options).result()  # type: ignore[return-value]


@takes_options(exclude=tuple(set(Options.__dataclass_fields__) - _PLANNING - {"overwrite", "force"} | set(_NOT_TOPK)))
def plan_topk(queries: Any, corpus: Any, k: int, out: str | os.PathLike[str] | None = None, **options: Any) -> Any:
    """The plan :func:`topk` would follow (a ``TopkPlan``: tiles, merges, memory per task, bytes
    read and written against storing the product); nothing runs. With ``out``, it is checked too."""
    from .runtime.topk_prepare import plan_only

    return plan_only(queries, corpus, k, out, _options(plan_topk, options))


@takes_options()
def run(a: Any, b: Any, out: str | os.PathLike[str], *, on_start: Any = None, **options: Any) -> JobResult:
    """:func:`matmul`, returning the figures too (time, bytes, plan, dashboard link).

    ``on_start(plan, dashboard_link)`` is called once the job is submitted."""
    job = submit(a, b, out, **options)
    if on_start is not None:
        on_start(job.plan, job.dashboard_link)
    array = job.result()
    return JobResult(array, job.plan, job.seconds, job.stats, job.dashboard_link, job.token,
                     {"verification": job.verification})


def open(where: Any, *, storage_options: dict[str, Any] | None = None,  # noqa: A001
         allow_incomplete: bool = False) -> Matrix:
    """Open a stored matrix read-only; ``.to_dask()`` gives a dask array, ``.array`` the Zarr one.

    The output of a blockdist job that has not finished would read as zeros where tiles are
    missing: it is refused with :class:`~blockdist.IncompleteOutputError`, naming the tiles done
    (for an SVD's, a PCA's or a top-k's output, its workload record's status and the passes or
    rows done), unless ``allow_incomplete``."""
    from .storage.interop import open_matrix

    matrix = open_matrix(where, storage_options=storage_options)
    if not allow_incomplete:
        _refuse_incomplete(matrix.array, str(where))
    return matrix


def _refuse_incomplete(array: Array, name: str) -> None:
    from .runtime.workload import how_to_finish, unfinished

    attributes = array.attrs.asdict()
    job = unfinished(attributes)
    if job is not None:
        raise IncompleteOutputError(f"{name}: {job}; {how_to_finish(attributes)}; or pass "
                                    "allow_incomplete=True to read what is there")


@takes_options(exclude=tuple(set(Options.__dataclass_fields__) - _CHECKING))
def verify(a: Any, b: Any, c: Any, *, trials: int = 3, seed: int | None = None, **options: Any) -> VerifyReport:
    """Check C = A·B with Freivalds' algorithm (``trials`` random ±1 vectors, O(n²) work
    each); the report names every tile whose residual exceeds the rounding tolerance."""
    from .checks.freivalds import verify_product
    from .runtime.cluster import connect, local_shape
    from .runtime.credentials import shared_credentials
    from .runtime.prepare import memory_budget, open_operands
    from .storage import locate, open_input

    if trials < 1:
        raise InputError(f"trials must be at least 1, got {trials}")
    given = _options(verify, options)
    operands = open_operands(Request(a, b, None, given), None)
    c_ref = locate(c, storage_options=given.storage_options, role="out")
    c_array = open_input(c_ref)
    _refuse_incomplete(c_array, str(c_ref))
    m, n = operands.a_array.shape[0], operands.b_array.shape[1]
    if tuple(c_array.shape) != (m, n):
        raise ShapeError(f"C is {c_array.shape[0]}×{c_array.shape[1]} but A·B is {m}×{n}")
    local = (local_shape(given.workers, given.threads, memory_budget(given.resolved("memory")))
             if given.client is None else None)
    with connect(given.client, local, given.security, given.connect_timeout) as client, \
            shared_credentials(client, [operands.a, operands.b, c_ref], uuid.uuid4().hex[:12]):
        return verify_product(client, operands.a, operands.b, c_ref, trials=trials, seed=seed,
                              stored=operands.stored or (None, None))
