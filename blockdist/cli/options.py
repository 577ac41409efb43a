"""Options several commands share.

The parser (:mod:`.parser`) and the commands that declare their own arguments (``info``,
``multi-dot``, ``svd``/``pca``, ``topk``) import these; this module imports none of them.
"""

from __future__ import annotations

import argparse

from ..runtime.security import add_tls_arguments
from . import arguments


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
    parser.add_argument("--workers", type=arguments.positive, metavar="N",
                        help="local cluster: worker processes (default: one per core)")
    parser.add_argument("--threads", type=arguments.positive, metavar="T",
                        help="local cluster: threads per worker (default: 1)")
