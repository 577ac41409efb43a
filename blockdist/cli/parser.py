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
    add_command,
    add_connection_options,
    add_job_options,
    add_local_cluster_options,
    add_model_options,
    add_storage_options,
)
from .sketch import add_parsers as add_sketch_parsers
from .topk import add_parser as add_topk_parser
from .tune import add_parser as add_tune_parser


def _add_matmul(commands: argparse._SubParsersAction) -> None:
    matmul = add_command(commands, "matmul", "compute OUT = A·B",
                         "Compute OUT = A·B and write it as a Zarr array.",
                         {"a": "Zarr array, m×k", "b": "Zarr array, k×n", "out": "Zarr array to create, m×n"})
    add_job_options(matmul)
    matmul.add_argument("--allow-missing-chunks", action="store_true",
                        help="no effect, kept for old scripts: absent input chunks are read as the fill value")
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
    add_model_options(plan)
    add_storage_options(plan)


def _add_random(commands: argparse._SubParsersAction) -> None:
    random = add_command(commands, "random", "write a random matrix",
                         "Write a random matrix, chunk by chunk, in parallel.",
                         {"out": "Zarr array to create (a path or s3:// URL)"})
    random.add_argument("--shape", type=arguments.pair, required=True, metavar="M,N", help="rows and columns")
    random.add_argument("--chunks", type=arguments.pair, required=True, metavar="CM,CN",
                        help="the chunk shape, rows by columns")
    random.add_argument("--dtype", default="float64", help="default: float64")
    random.add_argument("--seed", type=int, help="seed for a reproducible matrix")
    random.add_argument("--overwrite", action="store_true", help="replace OUT if it is an existing Zarr array")
    add_storage_options(random)


def _add_gram(commands: argparse._SubParsersAction) -> None:
    gram = add_command(commands, "gram", "compute OUT = X·Xᵀ (or Xᵀ·X), half the work",
                       "Compute the symmetric product OUT = X·Xᵀ (Xᵀ·X with --transpose; Xᴴ for complex X): "
                       "only tiles on and above the diagonal are computed.",
                       {"x": "Zarr array, m×k", "out": "Zarr array to create, m×m (k×k with --transpose)"})
    gram.add_argument("--transpose", action="store_true", help="compute Xᵀ·X instead of X·Xᵀ")
    gram.add_argument("--alpha", type=arguments.scalar, default=1.0, help="scale of the product (default 1)")
    add_job_options(gram)
    add_connection_options(gram)


def _add_verify(commands: argparse._SubParsersAction) -> None:
    verify = add_command(commands, "verify", "check C = A·B with Freivalds' algorithm",
                         "Check C = A·B with random vectors (O(n²) work per trial); exit status 1 names the "
                         "tiles that are wrong.",
                         {"a": "Zarr array, m×k", "b": "Zarr array, k×n", "c": "the product to check, m×n"})
    verify.add_argument("--trials", type=arguments.positive, default=3, metavar="K", help="random vectors (default: 3)")
    verify.add_argument("--seed", type=int, help="seed of the random vectors (default: a fresh one)")
    add_connection_options(verify)


def _add_demo(commands: argparse._SubParsersAction) -> None:
    demo = add_command(commands, "demo", "multiply two random matrices on a local cluster",
                       "Create two random N×N matrices in a temporary folder, multiply them on a local cluster, "
                       "check a sample against numpy, print the figures and clean up.", {})
    demo.add_argument("--size", type=arguments.positive, default=8192, metavar="N", help="default: 8192")
    demo.add_argument("--chunks", type=arguments.positive, default=1024, metavar="C", help="default: 1024")
    add_local_cluster_options(demo)


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
