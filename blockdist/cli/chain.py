"""``blockdist multi-dot A B C … OUT``: a chain of products in its cheapest order."""

from __future__ import annotations

import argparse
import time
from typing import Any

from .options import add_workload_options


def add_parser(commands: argparse._SubParsersAction) -> None:
    chain = commands.add_parser("multi-dot", help="compute OUT = A·B·C·… in the cheapest order",
                                description="Compute the chain OUT = A·B·C·… in the order that costs least "
                                "(numpy's multi_dot programme, weighted by each product's reads and writes); "
                                "intermediates go beside OUT and are removed afterwards.")
    chain.add_argument("arrays", metavar="ARRAY", nargs="+", help="two or more Zarr arrays, then OUT")
    add_workload_options(chain, plan_help="print the order and its cost, and compute nothing")


def multi_dot(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..runtime.chain import multi_dot as run_chain
    from ..runtime.chain import prepare_chain
    from ..runtime.request import Options
    from .commands import _watch, storage_options

    if len(args.arrays) < 2:
        raise InputError("give the arrays of the chain, then OUT: at least two arrays")
    *arrays, out = args.arrays
    options = Options(client=args.scheduler, memory=args.memory, workers=args.workers, threads=args.threads,
                      overwrite=args.overwrite, force=args.force, storage_options=storage_options(args))
    names = [str(a) for a in arrays]
    chain, _ = prepare_chain(arrays, out, options, names)
    print(chain.summary(), flush=True)
    if args.plan:
        return 0
    start = time.perf_counter()
    def step(product: str, target: str, job: Any) -> None:
        print(f"product       {product} → {target}", flush=True)
        _watch(job)

    result, _ = run_chain(arrays, out, options, names, on_step=step)
    seconds = time.perf_counter() - start
    print(f"wrote         {'×'.join(map(str, result.shape))} {result.dtype} to {out}")
    print(f"wall time     {seconds:.2f} s ({chain.flops / seconds / 1e9:.1f} GFLOP/s)")
    return 0
