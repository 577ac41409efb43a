"""The ``blockdist`` command line's parser: every command, its arguments and their help."""

from __future__ import annotations

import argparse
from typing import NoReturn

from .. import __version__
from . import arguments
from .chain import add_parser as add_chain_parser
from .info import add_parser as add_info_parser
from .options import (
    add_cluster_options,
    add_connection_options,
    add_job_options,
    add_storage_options,
)
from .sketch import add_parsers as add_sketch_parsers
from .topk import add_parser as add_topk_parser
from .tune import add_parser as add_tune_parser


def _add_matmul(commands: argparse._SubParsersAction) -> None:
    matmul = commands.add_parser("matmul", help="compute OUT = A·B",
                                 description="Compute OUT = A·B and write it as a Zarr array.")
    matmul.add_argument("a", metavar="A", help="Zarr array, m×k")
    matmul.add_argument("b", metavar="B", help="Zarr array, k×n")
    matmul.add_argument("out", metavar="OUT", help="Zarr array to create, m×n")
    add_job_options(matmul)
    matmul.add_argument("--allow-missing-chunks", action="store_true",
                        help="read absent input chunks as the fill value instead of failing")
    _add_product_options(matmul)
    add_connection_options(matmul)


def _add_product_options(parser: argparse.ArgumentParser) -> None:
    gemm = parser.add_argument_group("general product", "OUT = alpha·op(A)·op(B) + beta·C0")
    gemm.add_argument("--alpha", type=arguments.scalar, default=1.0, help="scale of the product (default 1)")
    gemm.add_argument("--beta", type=arguments.scalar, default=0.0, help="scale of C0 (default 0)")
    gemm.add_argument("--c", metavar="PATH", help="C0, an existing array; may be OUT itself (updated in place)")
    gemm.add_argument("--transpose-a", action="store_true", help="use Aᵀ (Aᴴ for complex), read as stored")
    gemm.add_argument("--transpose-b", action="store_true", help="use Bᵀ (Bᴴ for complex), read as stored")


def _add_plan(commands: argparse._SubParsersAction) -> None:
    plan = commands.add_parser("plan", help="print how A·B would be computed",
                               description="Print the plan for A·B: tiles, tasks, memory and I/O — for "
                               "stored arrays, or from sizes alone (--shape) for any cluster.")
    plan.add_argument("a", metavar="A", nargs="?", help="Zarr array, m×k (or give --shape)")
    plan.add_argument("b", metavar="B", nargs="?", help="Zarr array, k×n")
    plan.add_argument("--shape", type=arguments.triple, metavar="M,N,K",
                      help="plan C (M×N) = op(A) (M×K) · op(B) (K×N) from sizes alone, without arrays")
    plan.add_argument("--chunks", type=arguments.chunks, metavar="C|CM,CN,CK",
                      help="with --shape: the storage chunks, one edge or one per size in the order of "
                      "--shape: rows of C, columns of C, k (default: an edge near 4096 that cuts each size evenly)")
    plan.add_argument("--dtype", default="float64", help="with --shape: the result dtype (default float64)")
    plan.add_argument("--json", action="store_true", help="print the plan (and the simulation) as JSON")
    plan.add_argument("--simulate", action="store_true",
                      help="replay the plan's tasks on the described cluster, event by event, and print the "
                      "predicted wall time, utilisation and traffic")
    _add_product_options(plan)
    add_cluster_options(plan, scheduler=False)
    rates = plan.add_argument_group("the cluster's rates", "override this machine's (blockdist tune) for planning "
                                    "and simulating another cluster")
    rates.add_argument("--gflops", type=arguments.positive_float, metavar="RATE",
                       help="sustained BLAS rate of one thread, GFLOP/s")
    rates.add_argument("--storage-bandwidth", type=arguments.rate, metavar="RATE",
                       help="one worker's link to storage, shared by its threads, e.g. 1GB/s (default: unbounded)")
    rates.add_argument("--aggregate-bandwidth", type=arguments.rate, metavar="RATE",
                       help="the storage's total for all workers at once, e.g. 100GB/s (default: unbounded)")
    rates.add_argument("--network-bandwidth", type=arguments.rate, metavar="RATE",
                       help="a partial tile moving between workers, e.g. 1GB/s")
    rates.add_argument("--task-overhead", type=arguments.seconds, metavar="SECONDS",
                       help="scheduling and opening the arrays, per task")
    add_storage_options(plan)


def _add_random(commands: argparse._SubParsersAction) -> None:
    random = commands.add_parser("random", help="write a random matrix",
                                 description="Write a random matrix, chunk by chunk, in parallel.")
    random.add_argument("out", metavar="OUT", help="Zarr array to create (a path or s3:// URL)")
    random.add_argument("--shape", type=arguments.pair, required=True, metavar="M,N", help="rows and columns")
    random.add_argument("--chunks", type=arguments.pair, required=True, metavar="CM,CN",
                        help="the chunk shape, rows by columns")
    random.add_argument("--dtype", default="float64", help="default: float64")
    random.add_argument("--seed", type=int, help="seed for a reproducible matrix")
    random.add_argument("--overwrite", action="store_true", help="replace OUT if it is an existing Zarr array")
    add_storage_options(random)


def _add_gram(commands: argparse._SubParsersAction) -> None:
    gram = commands.add_parser("gram", help="compute OUT = X·Xᵀ (or Xᵀ·X), half the work",
                               description="Compute the symmetric product OUT = X·Xᵀ (Xᵀ·X with --transpose; "
                               "Xᴴ for complex X): only tiles on and above the diagonal are computed.")
    gram.add_argument("x", metavar="X", help="Zarr array, m×k")
    gram.add_argument("out", metavar="OUT", help="Zarr array to create, m×m (k×k with --transpose)")
    gram.add_argument("--transpose", action="store_true", help="compute Xᵀ·X instead of X·Xᵀ")
    gram.add_argument("--alpha", type=arguments.scalar, default=1.0, help="scale of the product (default 1)")
    add_job_options(gram)
    add_connection_options(gram)


def _add_verify(commands: argparse._SubParsersAction) -> None:
    verify = commands.add_parser("verify", help="check C = A·B with Freivalds' algorithm",
                                 description="Check C = A·B with random vectors (O(n²) work per trial); "
                                 "exit status 1 names the tiles that are wrong.")
    verify.add_argument("a", metavar="A", help="Zarr array, m×k")
    verify.add_argument("b", metavar="B", help="Zarr array, k×n")
    verify.add_argument("c", metavar="C", help="the product to check, m×n")
    verify.add_argument("--trials", type=arguments.positive, default=3, metavar="K", help="random vectors (default: 3)")
    verify.add_argument("--seed", type=int, help="seed of the random vectors (default: a fresh one)")
    add_connection_options(verify)


def _add_demo(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="multiply two random matrices on a local cluster",
                               description="Create two random N×N matrices in a temporary folder, "
                               "multiply them on a local cluster, check a sample against numpy, "
                               "print the figures and clean up.")
    demo.add_argument("--size", type=arguments.positive, default=8192, metavar="N", help="default: 8192")
    demo.add_argument("--chunks", type=arguments.positive, default=1024, metavar="C", help="default: 1024")
    demo.add_argument("--workers", type=arguments.positive, metavar="N",
                      help="local cluster: worker processes (default: one per core)")
    demo.add_argument("--threads", type=arguments.positive, metavar="T",
                      help="local cluster: threads per worker (default: 1)")


class _Parser(argparse.ArgumentParser):
    """A usage error in two lines — what is wrong, and where the help is — not the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n(see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="blockdist",
        description="Multiply Zarr matrices too large for one machine on a Dask cluster.",
    )
    parser.add_argument("--version", action="version", version=f"blockdist {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for add in (_add_matmul, _add_plan, _add_random, _add_gram, _add_verify, add_tune_parser, _add_demo,
                add_info_parser, add_chain_parser, add_sketch_parsers, add_topk_parser):
        add(commands)
    return parser
