"""A chain of products, A₁·A₂·…·Aₙ, in its cheapest order (:func:`multi_dot`).

Every operand is opened and checked first — two or more 2-D matrices whose inner sizes agree,
numpy's ``matmul`` messages when they do not — and the output as a new product's would be, so
bad input is refused before any product runs. The order comes from
:func:`blockdist.planning.chain.plan_chain`; each product runs as a blockdist job on one
cluster (a local one started once when none is given), intermediates go to a scratch folder
beside the output (``.OUT.blockdist-chain/``, local or on S3) and are removed afterwards,
whether the chain finished or not. Each matrix input's stored chunks are listed first (as a
product's are), so that a product of an input whose absent chunks are zeros is priced by its
present work: sparsity can change the order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..errors import InputError, ShapeError
from ..planning.chain import ChainPlan, plan_chain
from ..planning.layout import MatrixLayout
from ..storage import check_creatable, check_output_location, layout_of, locate, open_input
from ..storage.listing import list_stored
from ..storage.partials import scratch_beside
from .cluster import connect, local_shape, shape_of
from .lease import check_free
from .prepare import memory_budget
from .request import Options, Request

SCRATCH_SUFFIX = ".blockdist-chain"


def check_chain(shapes: Sequence[tuple[int, ...]]) -> list[tuple[int, int]]:
    """numpy's rules and words for a chain of matrices, the first and last of which may be
    vectors (a row and a column, as numpy's ``multi_dot`` reads them); returns the 2-D shapes."""
    if len(shapes) < 2:
        raise InputError(f"multi_dot needs at least two arrays, got {len(shapes)}; for one, there is nothing to "
                         "multiply")
    matrices = []
    for index, shape in enumerate(shapes):
        end = index in (0, len(shapes) - 1)
        if len(shape) == 1 and end:
            shape = (1, shape[0]) if index == 0 else (shape[0], 1)
        elif len(shape) != 2:
            raise ShapeError(f"operand {index} has {len(shape)} dimension(s) (shape {tuple(shape)}); multi_dot "
                             "chains 2-D matrices (the first and the last may be vectors)")
        matrices.append(shape)
    shapes = matrices
    for index in range(1, len(shapes)):
        if shapes[index - 1][1] != shapes[index][0]:
            raise ShapeError(
                f"matmul: Input operand {index} has a mismatch in its core dimension 0, with gufunc signature "
                f"(n?,k),(k,m?)->(n?,m?) (size {shapes[index][0]} is different from {shapes[index - 1][1]}): "
                f"operand {index - 1} is {shapes[index - 1][0]}×{shapes[index - 1][1]}, operand {index} "
                f"{shapes[index][0]}×{shapes[index][1]}")
    return matrices  # type: ignore[return-value]


def _scratch(out: Any, options: Options) -> tuple[str, Callable[[], None]]:
    """Where intermediates go, beside ``out``, and how to remove them."""
    return scratch_beside(locate(out, storage_options=options.storage_options, role="out"), SCRATCH_SUFFIX)


def input_layouts(refs: Sequence[Any], opened: Sequence[Any]) -> list[MatrixLayout | None]:
    """Each matrix input's layout with the chunks a listing found stored (a vector's: ``None``,
    priced dense: it is one row or column of chunks)."""
    layouts: list[MatrixLayout | None] = []
    for ref, array in zip(refs, opened, strict=True):
        layouts.append(layout_of(array, stored=list_stored(ref, array)[1]) if len(array.shape) == 2 else None)
    return layouts


def prepare_chain(arrays: Sequence[Any], out: Any, options: Options, names: Sequence[str] | None = None
                  ) -> tuple[ChainPlan, list[Any]]:
    """Check the chain and its output, and plan the order (no cluster needed)."""
    refs = [locate(x, storage_options=options.storage_options, role="a") for x in arrays]
    opened = [open_input(ref) for ref in refs]
    shapes = check_chain([tuple(a.shape) for a in opened])
    out_ref = locate(out, storage_options=options.storage_options, role="out")
    check_creatable(out_ref)
    check_output_location(out_ref, refs, overwrite=options.overwrite)
    check_free(out_ref, options.force)
    itemsize = np.result_type(*[np.dtype(a.dtype) for a in opened]).itemsize
    budget = memory_budget(options.resolved("memory"))
    cluster = local_shape(options.workers, options.threads, budget)
    labels = list(names) if names is not None else [f"A{i + 1}" for i in range(len(arrays))]
    plan = plan_chain(labels, [(s[0], s[1]) for s in shapes], itemsize, cluster, options.model,
                      input_layouts(refs, opened))
    return plan, refs


def multi_dot(arrays: Sequence[Any], out: Any, options: Options, names: Sequence[str] | None = None,
              on_step: Callable[[str, Any, Any], None] | None = None) -> tuple[Any, ChainPlan]:
    """Compute the chain into ``out``; returns the output array and the chain's plan."""
    from .start import submit

    chain, refs = prepare_chain(arrays, out, options, names)
    scratch, remove = _scratch(out, options)
    results: dict[tuple[int, int], Any] = {(i, i): array for i, array in enumerate(arrays)}
    steps = chain.steps()
    step_options = {k: v for k, v in options.__dict__.items()
                    if k in ("memory", "storage_options", "model", "verify", "out_compressors", "partials")}
    budget = memory_budget(options.resolved("memory"))
    try:
        local = local_shape(options.workers, options.threads, budget) if options.client is None else None
        with connect(options.client, local, options.security, options.connect_timeout) as client:
            if options.client is not None:
                shape_of(client, budget)
            for number, (i, k, j) in enumerate(steps):
                last = number == len(steps) - 1
                target = out if last else f"{scratch}/step-{number}.zarr"
                step = replace(Options(**step_options), client=client, overwrite=options.overwrite if last else True,
                               force=options.force and last)
                job = submit(Request(results[(i, k)], results[(k + 1, j)], target, step))
                if on_step is not None:
                    on_step(f"{chain.order(i, k)} · {chain.order(k + 1, j)}", target, job)
                results[(i, j)] = job.result()
    finally:
        remove()
    return results[(0, len(refs) - 1)], chain


__all__ = ["check_chain", "input_layouts", "multi_dot", "prepare_chain"]
