"""What each ``blockdist`` command does: turn its arguments into a request, run it, report."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..planning import format_size
from ..planning.units import format_flops, format_shape

if TYPE_CHECKING:
    from ..api import JobResult
    from ..planning import Plan
    from ..runtime.job import Job


def storage_options(args: argparse.Namespace) -> dict[str, str] | None:
    return dict(args.storage_options) or None


def product_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~blockdist.runtime.request.Options` a command's arguments give, by name."""
    from ..runtime.request import Options
    from ..runtime.security import security_from_args

    given = {f.name: getattr(args, f.name) for f in fields(Options) if hasattr(args, f.name)}
    given.update(client=getattr(args, "scheduler", None), storage_options=storage_options(args))
    if hasattr(args, "tls_ca_file"):
        given["security"] = security_from_args(args)
    return given


def _taken_by(function: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The options among ``options`` that an API function takes."""
    return {k: v for k, v in options.items() if k in function.__option_names__}


def _print_figures(result: JobResult) -> None:
    stats = result.stats
    print(f"wall time     {result.seconds:.2f} s")
    plan, seconds = result.plan, max(result.seconds, 1e-9)
    speed = f"{format_flops(plan.flops / seconds, per_second=True)} ({format_flops(plan.flops)})"
    if plan.flops_computed != plan.flops:
        speed += (f" effective, as a full product; {format_flops(plan.flops_computed / seconds, per_second=True)} "
                  f"computed ({format_flops(plan.flops_computed)} done)")
    print(f"speed         {speed}")
    checked = f"; {format_size(stats.bytes_checked)} read back to verify" if stats.bytes_checked else ""
    print(f"bytes read    {format_size(stats.bytes_read)} (plan: {format_size(result.plan.bytes_read)}){checked}")
    print(f"bytes written {format_size(stats.bytes_written)}")
    copied = stats.bytes_read - stats.bytes_mapped  # mapped chunks are read by BLAS in place, not by a reader
    if stats.read_seconds > 0 and copied >= max(2**20, 0.1 * stats.bytes_read):
        rate = copied / stats.read_seconds
        print(f"read rate     {format_size(rate)}/s per reading task ({stats.read_seconds:.2f} s reading, "
              "retries and waits for storage included)")


def _announce(plan: Plan, link: str | None) -> None:
    print(plan.summary())
    print(f"dashboard     {link}", flush=True)


def _watch(job: Job) -> None:
    """A live bar on a terminal; a plain line every few seconds otherwise."""
    if sys.stderr.isatty():
        job.progress()
        return
    from ..runtime import settings

    every = float(settings.get("progress-every"))
    while True:  # a first line at once, then one every few seconds
        print(f"progress      {job.describe()}", flush=True)
        if job.wait(every):
            return


def _follow(job: Job, args: argparse.Namespace) -> int:
    from ..api import JobResult

    _announce(job.plan, job.dashboard_link)
    if args.resume:
        print(f"resuming      {job.tiles_done} of {job.tiles_total} tiles already done", flush=True)
    try:
        _watch(job)
        array = job.result()
    except KeyboardInterrupt:
        job.cancel()
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C leaves without waiting
            job.wait(30)
        print(f"blockdist {args.command}: interrupted; {job.tiles_done} of {job.tiles_total} tiles are done and "
              "recorded in the output's manifest: run the same command with --resume to finish", file=sys.stderr)
        return 130
    print(f"wrote         {format_shape(tuple(array.shape))} {array.dtype} to {args.out}")
    _print_figures(JobResult(array, job.plan, job.seconds, job.stats, job.dashboard_link, job.token))
    if job.verification is not None:
        print(f"check         {job.verification.summary()}")
    return 0


def matmul(args: argparse.Namespace) -> int:
    from .. import api

    return _follow(api.submit(args.a, args.b, args.out, **product_options(args)), args)


def gram(args: argparse.Namespace) -> int:
    from .. import api

    return _follow(api.submit_gram(args.x, args.out, transpose=args.transpose, **product_options(args)), args)


def verify(args: argparse.Namespace) -> int:
    from .. import api

    report = api.verify(args.a, args.b, args.c, trials=args.trials, seed=args.seed,
                        **_taken_by(api.verify, product_options(args)))
    if report.ok:
        print(report.summary())
        return 0
    print(f"blockdist verify: {report.summary()}", file=sys.stderr)
    return 1


def _described_model(args: argparse.Namespace) -> Any:
    """This machine's model with the rates the command line describes in its place."""
    import dataclasses

    from ..runtime.tunefile import load_model
    from .options import MODEL_RATES

    given = {field: getattr(args, field) for _, field, *_ in MODEL_RATES}
    return dataclasses.replace(load_model(), **{k: v for k, v in given.items() if v is not None})


def plan(args: argparse.Namespace) -> int:
    model = _described_model(args)
    if args.shape is not None:
        if args.a or args.b:
            raise InputError("give either arrays A B or --shape M,N,K, not both")
        if args.c:
            raise InputError("--c names an array: plan it with arrays A B, not --shape")
        from ..planning import plan_for_shape
        from ..planning.operation import check_beta
        from ..runtime.cluster import local_shape

        check_beta(args.beta, False)
        m, n, k = args.shape
        the_plan = plan_for_shape(m, n, k, local_shape(args.workers, args.threads, args.memory), dtype=args.dtype,
                                  chunks=args.chunks, model=model)
    elif args.a and args.b:
        from .. import api

        options = product_options(args) | {"model": model}
        the_plan = api.plan(args.a, args.b, **_taken_by(api.plan, options))
    else:
        raise InputError("give two arrays A B, or --shape M,N,K to plan from sizes alone")
    run = None
    if args.simulate:
        from ..planning.simulate import simulate

        run = simulate(the_plan)
    if args.json:
        record = the_plan.to_dict()
        if run is not None:
            record["simulation"] = run.to_dict()
        print(json.dumps(record, indent=1, default=str))
        return 0
    print(the_plan.summary())
    if run is not None:
        print(f"  simulated {run.seconds:,.1f} s wall (the cost model: {the_plan.predicted_seconds:,.1f} s), "
              f"{run.utilisation:.0%} of the cores busy, {run.tasks} tasks; busiest worker moved "
              f"{format_size(run.busiest_worker_traffic)}, {format_size(run.bytes_moved_between_workers)} "
              f"of partials between workers")
    return 0


def random(args: argparse.Namespace) -> int:
    from ..storage.random import random_matrix

    start = last = time.perf_counter()

    def progress(done: int, total: int) -> None:
        nonlocal last
        if time.perf_counter() - last >= 2.0 and done < total:
            print(f"progress      {done} of {total} chunks written", flush=True)
            last = time.perf_counter()

    array = random_matrix(args.out, args.shape, args.chunks, dtype=args.dtype, seed=args.seed,
                          overwrite=args.overwrite, storage_options=storage_options(args), progress=progress)
    seconds = time.perf_counter() - start
    print(f"wrote {array.shape[0]}×{array.shape[1]} {array.dtype} ({format_size(array.nbytes)}) in chunks "
          f"of {args.chunks[0]}×{args.chunks[1]} to {args.out} in {seconds:.2f} s")
    return 0


def demo(args: argparse.Namespace) -> int:
    from .. import api
    from ..api import JobResult
    from ..checks.sampling import sample_check
    from ..storage.random import random_matrix

    folder = tempfile.mkdtemp(prefix="blockdist-demo-")
    try:
        n, chunk = args.size, min(args.chunks, args.size)
        print(f"writing two random {n}×{n} float64 matrices ({format_size(2 * n * n * 8)}) to {folder}")
        a = random_matrix(f"{folder}/a.zarr", (n, n), (chunk, chunk), seed=1)
        b = random_matrix(f"{folder}/b.zarr", (n, n), (chunk, chunk), seed=2)
        job = api.submit(a, b, f"{folder}/c.zarr", workers=args.workers, threads=args.threads)
        _announce(job.plan, job.dashboard_link)
        _watch(job)
        result = JobResult(job.result(), job.plan, job.seconds, job.stats, job.dashboard_link, job.token)
        check = sample_check(a, b, result.array)
        _print_figures(result)
        verdict = "ok" if check.ok else "FAILED"
        print(f"check         {check.rows}×{check.cols} sample against numpy: max error "
              f"{check.max_error:.2e} ({check.max_ratio:.2g} of the rounding bound) — {verdict}")
        return 0 if check.ok else 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)
