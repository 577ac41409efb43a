"""``blockdist topk QUERIES CORPUS K OUT``: each query's k most similar corpus rows, by dot product."""

from __future__ import annotations

import argparse
import contextlib
import sys

from .options import add_command, add_connection_options


def add_parser(commands: argparse._SubParsersAction) -> None:
    topk = add_command(
        commands, "topk", "each query's K best corpus rows by dot product, without storing the product",
        "For each row of QUERIES (m×d), the K rows of CORPUS (n×d) with the largest dot "
        "products, best first (equal scores: the lower row first), written to the Zarr group OUT as the "
        "arrays indices (int64, m×K) and scores (m×K). The product QUERIES·CORPUSᵀ is computed tile by "
        "tile and never stored.", {"queries": "Zarr array, m×d", "corpus": "Zarr array, n×d"})
    topk.add_argument("k", metavar="K", type=int, help="how many corpus rows per query, 1 to n")
    topk.add_argument("out", metavar="OUT", help="Zarr group to create, holding indices and scores")
    topk.add_argument("--plan", action="store_true",
                      help="print the tiles, merges, memory per task and bytes read and written (against "
                      "storing the product), and compute nothing")
    topk.add_argument("--overwrite", action="store_true", help="replace OUT if it is an existing Zarr group "
                      "or array")
    topk.add_argument("--resume", action="store_true",
                      help="refused: an interrupted top-k job is computed again (with --overwrite)")
    topk.add_argument("--force", action="store_true", help="take OUT's lease from a dead job that holds it")
    topk.add_argument("--allow-missing-chunks", action="store_true",
                      help="no effect, kept for old scripts: absent input chunks are read as the fill value")
    topk.add_argument("--out-codec", dest="out_compressors", default="like-a", metavar="NAME",
                      help="OUT's compression: like-a (QUERIES' own, the default), none, zstd or blosc-lz4")
    add_connection_options(topk)


def _unprefixed(error: Exception) -> Exception:
    """The error without the API's ``topk:`` prefix (the CLI names the command already)."""
    text = str(error)
    return type(error)(text.removeprefix("topk: ")) if text.startswith("topk: ") else error


def topk(args: argparse.Namespace) -> int:
    from .. import api
    from ..api import JobResult
    from ..errors import InputError
    from ..planning import format_size
    from .commands import _print_figures, _taken_by, _watch, product_options

    options = product_options(args)
    try:
        if args.plan:
            print(api.plan_topk(args.queries, args.corpus, args.k, args.out,
                                **_taken_by(api.plan_topk, options)).summary())
            return 0
        job = api.submit_topk(args.queries, args.corpus, args.k, args.out,
                              **_taken_by(api.submit_topk, options))
    except InputError as error:
        raise _unprefixed(error) from None
    planned = job.topk_plan
    print(planned.summary())
    print(f"dashboard     {job.dashboard_link}", flush=True)
    try:
        _watch(job)
        indices, scores = job.result()
    except KeyboardInterrupt:
        job.cancel()
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C leaves without waiting
            job.wait(30)
        print(f"blockdist topk: interrupted; {job.rows_written} of {planned.m} rows are written, and OUT is "
              f"not "
              "marked complete: run the same command with --overwrite to compute it again", file=sys.stderr)
        return 130
    print(f"wrote         {indices.shape[0]}×{indices.shape[1]} indices ({indices.dtype}) and scores "
          f"({scores.dtype}) to {args.out}")
    _print_figures(JobResult(indices, job.plan, job.seconds, job.stats, job.dashboard_link, job.token))
    print(f"not stored    the {planned.m}×{planned.n} product "
          f"({format_size(planned.product_bytes_written)}): "
          f"{planned.product_bytes_written / max(1, job.stats.bytes_written):,.0f}× what was written")
    return 0
