"""The ``blockdist`` command line.

Exit status: 0 on success, 2 for bad input or usage (nothing is written), 1 for a failure
while running. Messages go to stderr; results to stdout.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .errors import BlockdistError, InputError
from .security import add_tls_arguments, security_from_args
from .units import format_size, parse_size

if TYPE_CHECKING:
    from .api import JobResult
    from .job import Job
    from .plan import Plan


def _pair(text: str) -> tuple[int, int]:
    try:
        first, second = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two integers like 4096,4096, got {text!r}") from None
    if first < 1 or second < 1:
        raise argparse.ArgumentTypeError(f"both sizes must be at least 1, got {text!r}")
    return first, second


def _triple(text: str) -> tuple[int, int, int]:
    try:
        m, n, k = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three integers M,N,K, got {text!r}") from None
    if min(m, n, k) < 1:
        raise argparse.ArgumentTypeError(f"every size must be at least 1, got {text!r}")
    return m, n, k


def _chunks(text: str) -> int | tuple[int, ...]:
    try:
        parts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected C or CM,CK,CN, got {text!r}") from None
    if len(parts) not in (1, 3) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected one or three positive sizes, got {text!r}")
    return parts[0] if len(parts) == 1 else parts


def _scalar(text: str) -> float | complex:
    try:
        value = complex(text.replace(" ", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 2, -0.5 or 1+2j, got {text!r}") from None
    return value.real if value.imag == 0 else value


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _storage_option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text.split('=')[0]!r}…")
    return key, value


def _add_storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage-option", type=_storage_option, action="append", default=[],
                        metavar="KEY=VALUE", dest="storage_options",
                        help="an option for object-storage URLs (repeatable), e.g. endpoint_url=…")


def _options(args: argparse.Namespace) -> dict[str, str] | None:
    return dict(args.storage_options) or None


def _add_job_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it is an existing Zarr array")
    parser.add_argument("--resume", action="store_true",
                        help="finish an interrupted product in OUT, computing only the tiles not done")
    parser.add_argument("--verify", action="store_true",
                        help="check the result with Freivalds' algorithm before finishing (exit 1 if wrong)")


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    """A scheduler or local cluster, object-storage options and TLS: what a running command needs."""
    _add_cluster_options(parser, scheduler=True)
    _add_storage_options(parser)
    add_tls_arguments(parser)


def _add_cluster_options(parser: argparse.ArgumentParser, *, scheduler: bool) -> None:
    if scheduler:
        parser.add_argument("--scheduler", metavar="ADDRESS",
                            help="a Dask scheduler address (default: start a local cluster)")
    parser.add_argument("--memory", type=_size, metavar="SIZE",
                        help="memory budget per worker, e.g. 4GB (default: a share of this machine's)")
    parser.add_argument("--workers", type=_positive, metavar="N",
                        help="local cluster: worker processes (default: one per core)")
    parser.add_argument("--threads", type=_positive, metavar="T",
                        help="local cluster: threads per worker (default: 1)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blockdist",
        description="Multiply Zarr matrices too large for one machine on a Dask cluster.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    matmul = commands.add_parser("matmul", help="compute OUT = A·B",
                                 description="Compute OUT = A·B and write it as a Zarr array.")
    matmul.add_argument("a", metavar="A", help="Zarr array, m×k")
    matmul.add_argument("b", metavar="B", help="Zarr array, k×n")
    matmul.add_argument("out", metavar="OUT", help="Zarr array to create, m×n")
    _add_job_options(matmul)
    matmul.add_argument("--allow-missing-chunks", action="store_true",
                        help="read absent input chunks as the fill value instead of failing")
    gemm = matmul.add_argument_group("general product", "OUT = alpha·op(A)·op(B) + beta·C0")
    gemm.add_argument("--alpha", type=_scalar, default=1.0, help="scale of the product (default 1)")
    gemm.add_argument("--beta", type=_scalar, default=0.0, help="scale of C0 (default 0)")
    gemm.add_argument("--c", metavar="PATH", help="C0, an existing array; may be OUT itself (updated in place)")
    gemm.add_argument("--transpose-a", action="store_true", help="use Aᵀ (Aᴴ for complex), read as stored")
    gemm.add_argument("--transpose-b", action="store_true", help="use Bᵀ (Bᴴ for complex), read as stored")
    _add_connection_options(matmul)

    plan = commands.add_parser("plan", help="print how A·B would be computed",
                               description="Print the plan for A·B: tiles, tasks, memory and I/O — for "
                               "stored arrays, or from sizes alone (--shape) for any cluster.")
    plan.add_argument("a", metavar="A", nargs="?")
    plan.add_argument("b", metavar="B", nargs="?")
    plan.add_argument("--shape", type=_triple, metavar="M,N,K",
                      help="plan C (M×N) = A (M×K) · B (K×N) from sizes alone, without arrays")
    plan.add_argument("--chunks", type=_chunks, metavar="C|CM,CK,CN",
                      help="with --shape: the storage chunks (default 4096)")
    plan.add_argument("--dtype", default="float64", help="with --shape (default float64)")
    _add_cluster_options(plan, scheduler=False)
    _add_storage_options(plan)

    random = commands.add_parser("random", help="write a random matrix",
                                 description="Write a random matrix, chunk by chunk, in parallel.")
    random.add_argument("out", metavar="OUT")
    random.add_argument("--shape", type=_pair, required=True, metavar="M,N")
    random.add_argument("--chunks", type=_pair, required=True, metavar="CM,CN")
    random.add_argument("--dtype", default="float64", help="default: float64")
    random.add_argument("--seed", type=int, help="seed for a reproducible matrix")
    random.add_argument("--overwrite", action="store_true")
    _add_storage_options(random)

    gram = commands.add_parser("gram", help="compute OUT = X·Xᵀ (or Xᵀ·X), half the work",
                               description="Compute the symmetric product OUT = X·Xᵀ (Xᵀ·X with --transpose; "
                               "Xᴴ for complex X): only tiles on and above the diagonal are computed.")
    gram.add_argument("x", metavar="X")
    gram.add_argument("out", metavar="OUT")
    gram.add_argument("--transpose", action="store_true", help="compute Xᵀ·X instead of X·Xᵀ")
    gram.add_argument("--alpha", type=_scalar, default=1.0, help="scale of the product (default 1)")
    _add_job_options(gram)
    _add_connection_options(gram)

    verify = commands.add_parser("verify", help="check C = A·B with Freivalds' algorithm",
                                 description="Check C = A·B with random vectors (O(n²) work per trial); "
                                 "exit status 1 names the tiles that are wrong.")
    verify.add_argument("a", metavar="A")
    verify.add_argument("b", metavar="B")
    verify.add_argument("c", metavar="C")
    verify.add_argument("--trials", type=_positive, default=3, metavar="K", help="random vectors (default: 3)")
    verify.add_argument("--seed", type=int)
    _add_connection_options(verify)

    from .tune import add_parser as add_tune_parser

    add_tune_parser(commands)

    demo = commands.add_parser("demo", help="multiply two random matrices on a local cluster",
                               description="Create two random N×N matrices in a temporary folder, "
                               "multiply them on a local cluster, check a sample against numpy, "
                               "print the figures and clean up.")
    demo.add_argument("--size", type=_positive, default=8192, metavar="N", help="default: 8192")
    demo.add_argument("--chunks", type=_positive, default=1024, metavar="C", help="default: 1024")
    demo.add_argument("--workers", type=_positive, metavar="N")
    demo.add_argument("--threads", type=_positive, metavar="T")
    return parser


def _print_figures(result: JobResult) -> None:
    stats = result.stats
    print(f"wall time     {result.seconds:.2f} s")
    print(f"speed         {result.gflops:.1f} GFLOP/s ({result.plan.flops / 1e9:,.1f} GFLOP)")
    print(f"bytes read    {format_size(stats.bytes_read)} (plan: {format_size(result.plan.bytes_read)})")
    print(f"bytes written {format_size(stats.bytes_written)}")
    print(f"dashboard     {result.dashboard_link}")


def _announce(plan: Plan, link: str | None) -> None:
    print(plan.summary())
    print(f"dashboard     {link}", flush=True)


def _watch(job: Job) -> None:
    """A live bar on a terminal; a plain line every few seconds otherwise."""
    if sys.stderr.isatty():
        job.progress()
        return
    while not job.wait(2.0):
        print(f"progress      {job.describe()}", flush=True)


def _matmul(args: argparse.Namespace) -> int:
    from . import api

    job = api.submit(args.a, args.b, args.out, client=args.scheduler, memory=args.memory,
                     overwrite=args.overwrite, resume=args.resume, workers=args.workers, threads=args.threads,
                     security=security_from_args(args), storage_options=_options(args), verify=args.verify,
                     allow_missing_chunks=args.allow_missing_chunks, alpha=args.alpha, beta=args.beta,
                     c=args.c, transpose_a=args.transpose_a, transpose_b=args.transpose_b)
    return _follow(job, args)


def _gram(args: argparse.Namespace) -> int:
    from . import api

    job = api.gram(args.x, args.out, transpose=args.transpose, alpha=args.alpha, client=args.scheduler,
                   memory=args.memory, overwrite=args.overwrite, resume=args.resume, workers=args.workers,
                   threads=args.threads, security=security_from_args(args), storage_options=_options(args),
                   verify=args.verify)
    return _follow(job, args)


def _follow(job: Job, args: argparse.Namespace) -> int:
    from . import api

    _announce(job.plan, job.dashboard_link)
    if args.resume:
        print(f"resuming      {job.tiles_done} of {job.tiles_total} tiles already done", flush=True)
    try:
        _watch(job)
        array = job.result()
    except KeyboardInterrupt:
        job.cancel()
        raise
    print(f"wrote         {array.shape[0]}×{array.shape[1]} {array.dtype} to {args.out}")
    _print_figures(api.JobResult(array, job.plan, job.seconds, job.stats, job.dashboard_link, job.token))
    if job.verification is not None:
        print(f"check         {job.verification.summary()}")
    return 0


def _tune(args: argparse.Namespace) -> int:
    from .tune import main as tune_main

    return tune_main(args)


def _verify(args: argparse.Namespace) -> int:
    from . import api

    report = api.verify(args.a, args.b, args.c, trials=args.trials, client=args.scheduler, workers=args.workers,
                        threads=args.threads, memory=args.memory, security=security_from_args(args),
                        storage_options=_options(args), seed=args.seed)
    if report.ok:
        print(report.summary())
        return 0
    print(f"blockdist verify: {report.summary()}", file=sys.stderr)
    return 1


def _plan(args: argparse.Namespace) -> int:
    if args.shape is not None:
        if args.a or args.b:
            raise InputError("give either arrays A B or --shape M,N,K, not both")
        from .cluster import local_shape
        from .plan import plan_for_shape
        from .tune import load_model

        shape = local_shape(args.workers, args.threads, args.memory)
        m, n, k = args.shape
        the_plan = plan_for_shape(m, n, k, workers=shape.workers, threads=shape.threads,
                                  memory_per_worker=shape.memory_per_worker, dtype=args.dtype,
                                  chunks=args.chunks, model=load_model())
    elif args.a and args.b:
        from . import api

        the_plan = api.plan(args.a, args.b, memory=args.memory, workers=args.workers, threads=args.threads,
                            storage_options=_options(args))
    else:
        raise InputError("give two arrays A B, or --shape M,N,K to plan from sizes alone")
    print(the_plan.summary())
    return 0


def _random(args: argparse.Namespace) -> int:
    from .generate import random_matrix

    start = time.perf_counter()
    array = random_matrix(args.out, args.shape, args.chunks, dtype=args.dtype, seed=args.seed,
                          overwrite=args.overwrite, storage_options=_options(args))
    seconds = time.perf_counter() - start
    size = array.nbytes
    print(f"wrote {array.shape[0]}×{array.shape[1]} {array.dtype} ({format_size(size)}) in chunks "
          f"of {args.chunks[0]}×{args.chunks[1]} to {args.out} in {seconds:.2f} s")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from . import api
    from .generate import random_matrix
    from .sampling import sample_check

    folder = tempfile.mkdtemp(prefix="blockdist-demo-")
    try:
        n, chunk = args.size, min(args.chunks, args.size)
        print(f"writing two random {n}×{n} float64 matrices ({format_size(2 * n * n * 8)}) to {folder}")
        a = random_matrix(f"{folder}/a.zarr", (n, n), (chunk, chunk), seed=1)
        b = random_matrix(f"{folder}/b.zarr", (n, n), (chunk, chunk), seed=2)
        result = api.run(a, b, f"{folder}/c.zarr", workers=args.workers, threads=args.threads,
                         on_start=_announce)
        check = sample_check(a, b, result.array)
        _print_figures(result)
        verdict = "ok" if check.ok else "FAILED"
        print(f"check         {check.rows}×{check.cols} sample against numpy: max error "
              f"{check.max_error:.2e} ({check.max_ratio:.2g} of the rounding bound) — {verdict}")
        return 0 if check.ok else 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"matmul": _matmul, "plan": _plan, "random": _random, "demo": _demo,
               "verify": _verify, "gram": _gram, "tune": _tune}[args.command]
    try:
        return handler(args)
    except InputError as error:
        print(f"blockdist {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BlockdistError as error:
        print(f"blockdist {args.command}: failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"blockdist {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
