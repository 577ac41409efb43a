"""A top-k request checked and planned (:func:`check_topk`, :func:`plan_of`, :func:`prepare_topk`),
before anything is written; :mod:`.topk` starts it and :mod:`.topk_job` follows it.

The product S = Q·Cᵀ is planned like any product (``transpose_b``), with room in each tile
task for what top-k adds (its candidates and the ranking's workspace); the merges that
combine the tiles' candidates are planned around it (:func:`blockdist.planning.topk.plan_topk`).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import DtypeError, InputError, MemoryBudgetError, ShapeError
from ..planning import WORKER_BASELINE, ClusterShape, Plan, format_size, task_budget
from ..planning.topk import TopkPlan, plan_topk
from ..storage import ArrayRef, check_creatable, locate, open_input, output_compressors
from ..storage.groups import check_group_location, child
from ..storage.interop import is_dask_array, remove_scratch
from .cluster import local_shape
from .lease import check_free
from .manifest import Manifest
from .prepare import (
    Checked,
    OutputMode,
    PreparedProduct,
    _check_options,
    _graph,
    memory_budget,
    open_operands,
    plan_product,
)
from .request import Options, Request


# --- check ---------------------------------------------------------------------------------
def _shape(x: Any, options: Options, role: str) -> tuple[int, ...]:
    if isinstance(x, np.ndarray) or is_dask_array(x) or hasattr(x, "shape"):
        return tuple(x.shape)
    return tuple(open_input(locate(x, storage_options=options.storage_options, role=role)).shape)


def _whole_number(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        try:
            return operator.index(k)
        except TypeError:
            raise InputError(f"topk: k must be a whole number, got {k!r}") from None
    return int(k)


def check_shapes(q_shape: tuple[int, ...], c_shape: tuple[int, ...], k: Any) -> int:
    """numpy's rules for ``Q @ C.T`` and 1 ≤ k ≤ n; returns k.

    >>> check_shapes((5, 8), (10, 8), 12)
    Traceback (most recent call last):
    ...
    blockdist.errors.InputError: topk: k = 12 but the corpus has only 10 rows; k must be between 1 and 10
    """
    for name, shape in (("queries", q_shape), ("corpus", c_shape)):
        if len(shape) != 2:
            raise ShapeError(f"topk: the {name} has {len(shape)} dimension(s) (shape {tuple(shape)}); topk "
                             f"takes 2-D matrices, queries m×d and a corpus n×d")
        if min(shape) < 1:
            raise ShapeError(f"topk: the {name} is empty (shape {tuple(shape)}); every dimension must be ≥ 1")
    if q_shape[1] != c_shape[1]:
        raise ShapeError(
            f"matmul: Input operand 1 has a mismatch in its core dimension 0, with gufunc signature "
            f"(n?,k),(k,m?)->(n?,m?) (size {c_shape[1]} is different from {q_shape[1]}): topk computes "
            f"queries · corpusᵀ, and the queries are {q_shape[0]}×{q_shape[1]}, the corpus "
            f"{c_shape[0]}×{c_shape[1]}; "
            "both need the same number of columns")
    k = _whole_number(k)
    n = c_shape[0]
    if k > n:
        raise InputError(f"topk: k = {k} but the corpus has only {n} row{'s' * (n != 1)}; k must be between "
                         f"1 and {n}")
    if k < 1:
        raise InputError(f"topk: k = {k}; k must be between 1 and {n}")
    return k


def check_topk(queries: Any, corpus: Any, k: Any, out: Any, options: Options) -> tuple[Checked, int]:
    """Every check of a top-k request that needs no cluster; nothing the user owns is written.
    ``out`` None: only planning."""
    if options.resume:
        raise InputError("topk: resume is not supported: a top-k job keeps its candidates in worker memory "
                         "until they are merged, so an interrupted one starts again; run it with --overwrite "
                         "(overwrite=True)")
    request = Request(queries, corpus, out, replace(options, transpose_b=True))
    _check_options(request)
    k = check_shapes(_shape(queries, options, "a"), _shape(corpus, options, "b"), k)
    out_ref = None if out is None else locate(out, storage_options=options.storage_options, role="out")
    if out_ref is not None:
        check_creatable(out_ref)
    operands = open_operands(request, out_ref)
    try:
        if operands.dtype.kind == "c":
            raise DtypeError(f"topk: the scores Q·Cᵀ would be {operands.dtype}; topk ranks real scores "
                             f"(integer or float inputs)")
        if out_ref is not None:
            check_group_location(out_ref, [operands.a, operands.b], overwrite=options.overwrite)
            check_free(out_ref, options.force)
            output_compressors(options.out_compressors, None)  # an unknown codec name is refused now
    except BaseException:
        remove_scratch(operands.scratch)
        raise
    return Checked(request, operands, out_ref, OutputMode.NEW), k


# --- plan ----------------------------------------------------------------------------------
def plan_of(checked: Checked, cluster: ClusterShape, k: int) -> TopkPlan:
    """S's plan with room for what top-k adds to a tile task (its candidates and the ranking's
    workspace): planned again for a smaller share of the budget while a tile task would not fit."""
    budget = task_budget(cluster)
    share = 1.0
    for _ in range(12):
        usable = int(budget * share)
        shape = replace(cluster, memory_per_worker=WORKER_BASELINE + usable * cluster.threads)
        try:
            product = _named(plan_product(checked, shape))
        except MemoryBudgetError:
            if share == 1.0:
                raise  # the product's own smallest task does not fit: its message says by how much
            break
        planned = plan_topk(product, k, budget)
        if planned.tile_memory <= budget:
            return planned
        share *= 0.95 * budget / planned.tile_memory
    raise MemoryBudgetError(
        f"topk: a tile task with k = {k} needs at least {format_size(planned.tile_memory)} (the product's "
        f"{format_size(planned.plan.memory.total)} + candidates {format_size(planned.candidates_bytes)} + "
        f"ranking "
        f"{format_size(planned.select_bytes)}), and a task may use {format_size(budget)}; give more memory "
        "(--memory) or ask for a smaller k")


def _named(plan: Plan) -> Plan:
    return replace(plan, a=replace(plan.a, name="Q"), b=replace(plan.b, name="Cᵀ"), product="Q·Cᵀ")


@dataclass(frozen=True)
class PreparedTopk:
    """A checked top-k request with its plans, manifest and the product's graph."""

    product: PreparedProduct  #: S's: checked request, plan, manifest, graph, token
    topk: TopkPlan

    @property
    def out(self) -> ArrayRef:
        return self.product.out

    @property
    def indices(self) -> ArrayRef:
        return child(self.out, "indices")

    @property
    def scores(self) -> ArrayRef:
        return child(self.out, "scores")


def prepare_topk(checked: Checked, cluster: ClusterShape, k: int) -> PreparedTopk:
    from uuid import uuid4

    planned = plan_of(checked, cluster, k)
    plan, token = planned.plan, uuid4().hex[:12]
    operands = checked.operands
    manifest = Manifest(token, operands.identity(True), operands.identity(False), plan,
                        operation={"topk": k, "transpose_b": True})
    graph = replace(_graph(checked, plan), job=token)
    return PreparedTopk(PreparedProduct(checked, plan, manifest, graph, token), planned)


def plan_only(queries: Any, corpus: Any, k: Any, out: Any, options: Options) -> TopkPlan:
    """The plan :func:`submit_topk` would follow on a local cluster of these options (nothing runs)."""
    checked, k = check_topk(queries, corpus, k, out, options)
    try:
        return plan_of(checked, local_shape(options.workers, options.threads,
                                            memory_budget(options.resolved("memory"))), k)
    finally:
        checked.discard()


__all__ = ["PreparedTopk", "check_shapes", "check_topk", "plan_of", "plan_only", "prepare_topk"]
