"""Options several commands share, and how a command with positional operands is declared.

The parser (:mod:`.parser`) and the commands that declare their own arguments (``info``,
``multi-dot``, ``svd``/``pca``, ``topk``) import these; this module imports none of them.
"""

from __future__ import annotations

import argparse

from ..runtime.security import add_tls_arguments
from . import arguments


def add_command(commands: argparse._SubParsersAction, name: str, summary: str, description: str,
                operands: dict[str, str]) -> argparse.ArgumentParser:
    """The command ``name`` with its positional ``operands`` (destination → help, in order; each
    shown in capitals)."""
    parser = commands.add_parser(name, help=summary, description=description)
    for dest, text in operands.items():
        parser.add_argument(dest, metavar=dest.upper(), help=text)
    return parser


def add_storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage-option", type=arguments.storage_option, action="append", default=[],
                        metavar="KEY=VALUE", dest="storage_options",
                        help="an option for object-storage URLs (repeatable), e.g. endpoint_url=…")


def add_job_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUT if it is an existing Zarr array")
    parser.add_argument("--resume", action="store_true",
                        help="finish an interrupted product in OUT, computing only the tiles not done")
    parser.add_argument("--verify", action="store_true",
                        help="each task reads back the tile it wrote and checks it with Freivalds' algorithm "
                        "(exit 1 names a wrong tile)")
    parser.add_argument("--force", action="store_true",
                        help="take OUT's lease from the job that holds it (when that job is dead)")
    parser.add_argument("--require-all-chunks", action="store_true",
                        help="refuse inputs with absent chunks, naming the first (by default an absent chunk is "
                        "read as the array's fill value, as zarr reads it)")
    parser.add_argument("--partials", choices=("memory", "storage"),
                        help="where split-k partial tiles wait for their reduce: worker memory (the default) "
                        "or a scratch Zarr array beside OUT, which survives a lost worker")
    out = parser.add_argument_group("output format", "how OUT is stored (a new output; default: A's codec)")
    out.add_argument("--out-chunks", type=arguments.pair, metavar="CM,CN", help="OUT's chunks")
    out.add_argument("--out-shards", type=arguments.pair, metavar="SM,SN",
                     help="OUT's shards, multiples of its chunks")
    out.add_argument("--out-codec", dest="out_compressors", default="like-a", metavar="NAME",
                     help="OUT's compression: like-a (A's own, the default), none, zstd or blosc-lz4")


def add_workload_options(parser: argparse.ArgumentParser, *, plan_help: str, overwrite_help: str | None = None
                         ) -> None:
    """What every command built on products takes (multi-dot, svd, pca): OUT's replacement and
    lease, ``--plan``, a scheduler or a local cluster, object-storage options."""
    parser.add_argument("--overwrite", action="store_true",
                        help=overwrite_help or "replace OUT if it is an existing Zarr array")
    parser.add_argument("--force", action="store_true", help="take OUT's lease from a dead job that holds it")
    parser.add_argument("--plan", action="store_true", help=plan_help)
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="a Dask scheduler address (default: a local cluster)")
    add_cluster_options(parser, scheduler=False)
    add_storage_options(parser)


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """A scheduler or local cluster, object-storage options and TLS: what a running command needs."""
    add_cluster_options(parser, scheduler=True)
    add_storage_options(parser)
    add_tls_arguments(parser)


def add_cluster_options(parser: argparse.ArgumentParser, *, scheduler: bool) -> None:
    if scheduler:
        parser.add_argument("--scheduler", metavar="ADDRESS",
                            help="a Dask scheduler address (default: start a local cluster)")
        parser.add_argument("--connect-timeout", type=arguments.seconds, metavar="SECONDS",
                            help="how long to wait for the scheduler to answer (default: 10)")
    parser.add_argument("--memory", type=arguments.size, metavar="SIZE",
                        help="memory budget per worker, e.g. 4GB (default: a share of this machine's)")
    add_local_cluster_options(parser)


def add_local_cluster_options(parser: argparse.ArgumentParser) -> None:
    """The shape of a local cluster: its worker processes and their threads."""
    parser.add_argument("--workers", type=arguments.positive, metavar="N",
                        help="local cluster: worker processes (default: one per core)")
    parser.add_argument("--threads", type=arguments.positive, metavar="T",
                        help="local cluster: threads per worker (default: 1)")


#: The rates ``blockdist plan`` may describe in place of this machine's (flag, MachineModel
#: field, argument type, metavar, help).
MODEL_RATES = (
    ("--gflops", "flops_per_thread", arguments.gflops, "RATE", "sustained BLAS rate of one thread, GFLOP/s"),
    ("--storage-bandwidth", "worker_storage_bytes_per_second", arguments.rate, "RATE",
     "one worker's link to storage, shared by its threads, e.g. 1GB/s (default: unbounded)"),
    ("--aggregate-bandwidth", "aggregate_storage_bytes_per_second", arguments.rate, "RATE",
     "the storage's total for all workers at once, e.g. 100GB/s (default: unbounded)"),
    ("--network-bandwidth", "transfer_bytes_per_second", arguments.rate, "RATE",
     "a partial tile moving between workers, e.g. 1GB/s"),
    ("--task-overhead", "task_overhead_seconds", arguments.seconds, "SECONDS",
     "scheduling and opening the arrays, per task"),
)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """:data:`MODEL_RATES`, each stored under its model field's name."""
    rates = parser.add_argument_group("the cluster's rates", "override this machine's (blockdist tune) for "
                                      "planning and simulating another cluster")
    for flag, field, kind, metavar, text in MODEL_RATES:
        rates.add_argument(flag, dest=field, type=kind, metavar=metavar, help=text)
