"""``blockdist svd A RANK OUT`` and ``blockdist pca A N OUT``: a randomized SVD or PCA of a stored matrix."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from .options import add_workload_options


def add_parsers(commands: argparse._SubParsersAction) -> None:
    for kind, count, what in (("svd", "RANK", "U (m×RANK) to OUT; s printed, Vᵀ to --vt PATH if given"),
                              ("pca", "N", "the scores U·S (m×N) to OUT; the explained variance printed, the "
                                           "components to --components PATH if given")):
        parser = commands.add_parser(kind, help=f"randomized {'SVD' if kind == 'svd' else 'PCA'} of a stored matrix",
                                     description=f"A randomized {'SVD' if kind == 'svd' else 'PCA (centred, without a centred copy)'}"
                                     f" of A (Halko, Martinsson & Tropp) in 2·ITERS+{3 if kind == 'pca' else 2} passes"
                                     " over A: read once and kept on the workers where it fits, else streamed from "
                                     f"storage through blockdist products every pass; writes {what}.")
        parser.add_argument("a", metavar="A", help="the Zarr array (m×n)")
        parser.add_argument("count", metavar=count, type=int, help="the number of components (below min(m, n))")
        parser.add_argument("out", metavar="OUT", help=f"the Zarr array to write ({'U' if kind == 'svd' else 'the scores'})")
        parser.add_argument("--oversample", type=int, default=10, metavar="P",
                            help="extra sketch columns beyond the components (default 10)")
        parser.add_argument("--power-iters", type=int, default=2, metavar="ITERS",
                            help="power iterations, each two more passes over A (default 2)")
        parser.add_argument("--seed", type=int, help="seed of the random sketch (repeatable results)")
        parser.add_argument("--vt" if kind == "svd" else "--components", dest="small", metavar="PATH",
                            help=f"also store {'Vᵀ' if kind == 'svd' else 'the components'} (N×n) as a Zarr array")
        keeping = parser.add_mutually_exclusive_group()
        keeping.add_argument("--keep-a", dest="keep_a", action="store_const", const=True,
                             help="read A once and keep it on the workers across the passes; refused where it "
                             "cannot fit (default: kept where it fits, else streamed)")
        keeping.add_argument("--stream", dest="keep_a", action="store_const", const=False,
                             help="stream A from storage every pass, never holding it")
        parser.add_argument("--resume", action="store_true",
                            help="continue a failed run in OUT from its last finished pass (the same A and "
                            "parameters; its sketches were kept beside OUT)")
        add_workload_options(parser, plan_help="print the passes and their cost, and compute nothing",
                              overwrite_help="replace OUT (and PATH) if an existing Zarr array")


def _small_output(args: argparse.Namespace, options: Any) -> Any:
    """Where --vt/--components go, checked now (never replacing anything unasked)."""
    from ..storage import check_creatable, check_output_location, locate

    if args.small is None:
        return None
    ref = locate(args.small, storage_options=options.storage_options, role="out")
    inputs = [locate(x, storage_options=options.storage_options, role=role) for x, role in ((args.a, "a"), (args.out, "out"))]
    check_creatable(ref)
    check_output_location(ref, inputs, overwrite=args.overwrite)
    return ref


def run(args: argparse.Namespace) -> int:
    from ..planning.sketch import SketchParameters
    from ..planning.units import format_shape, format_size
    from ..runtime.request import Options
    from ..runtime.svd import run_sketch
    from ..runtime.svd_prepare import prepare_sketch
    from ..storage import store_matrix
    from .commands import _watch, storage_options

    kind = args.command
    options = Options(client=args.scheduler, memory=args.memory, workers=args.workers, threads=args.threads,
                      overwrite=args.overwrite, force=args.force, resume=args.resume,
                      storage_options=storage_options(args))
    parameters = SketchParameters(kind, args.count, args.oversample, args.power_iters, args.seed, args.keep_a)
    prepared = prepare_sketch(args.a, args.out, parameters, options)
    print(prepared.plan.summary(), flush=True)
    small = _small_output(args, options)
    if args.plan:
        return 0
    start = time.perf_counter()

    def step(label: str, job: Any) -> None:
        print(f"step          {label}", flush=True)
        if job is not None:
            _watch(job)

    try:
        result = run_sketch(args.a, args.out, parameters, options, on_step=step)
    except KeyboardInterrupt:
        print(f"blockdist {kind}: interrupted; {args.out} keeps the passes it finished: run the same command "
              "with --resume to continue", file=sys.stderr)
        return 130
    seconds = time.perf_counter() - start
    if small is not None:
        store_matrix(small, result.vt, (min(len(result.vt), 1024), min(result.vt.shape[1], 4096)))
    shown = ", ".join(f"{x:.6g}" for x in result.s[:8]) + (", …" if len(result.s) > 8 else "")
    print(f"singular values {shown}")
    if kind == "pca":
        ratios = result.explained_variance_ratio
        print(f"explained     {', '.join(f'{x:.2%}' for x in ratios[:8])}{', …' if len(ratios) > 8 else ''} of the "
              f"variance ({ratios.sum():.2%} in all)")
    print(f"wrote         {format_shape(tuple(result.u.shape))} {result.u.dtype} to {args.out}"
          + (f"; {'Vᵀ' if kind == 'svd' else 'the components'} to {args.small}" if small is not None else ""))
    plan = result.plan  # as run: A kept or streamed, decided for the cluster it ran on
    how = "read once, kept on the workers" if plan.kept else f"{plan.passes} passes"
    print(f"wall time     {seconds:.2f} s; read {format_size(result.bytes_read)} "
          f"({format_size(plan.bytes_read_of_a)} of it A, {how})")
    return 0
