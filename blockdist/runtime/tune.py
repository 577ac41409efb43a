"""Measure this machine's kernel and store what the planner should assume (``blockdist tune``).

The planner (:mod:`blockdist.plan`) is pure: it never reads a file. Its rates and block
sizes come in a :class:`~blockdist.plan.MachineModel`, whose defaults are reasonable for a
current x86 core. ``blockdist tune`` measures better ones on the machine the workers run on;
:mod:`.tunefile` stores them as JSON and builds the ``MachineModel`` the caller hands to
``make_plan`` (:func:`~.tunefile.load_model`)::

    blockdist tune                      measure (about a minute), print, save
        │  kernel rows × panel depth sweep of blockdist.kernel.accumulate, 1 BLAS thread
        │  np.matmul rate of one thread, alone and with every core busy; one thread's rate
        │  inside blockdist's tasks on a local cluster (the rate plans use)
        │  read and write rates of an uncompressed Zarr array; decoding rates
        ▼
    the tune file (runtime/tunefile.py) → load_model() → make_plan
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..planning import MachineModel
from ..storage.throughput import measure_decode, measure_io
from ..worker.kernel import accumulate
from .tunefile import FORMAT_VERSION, cpu_name, model_from_dict


# --- measuring ---------------------------------------------------------------------------
@contextlib.contextmanager
def blas_threads(count: int) -> Iterator[None]:
    """Limit BLAS to ``count`` threads (as a Dask worker thread runs it), if threadpoolctl is there."""
    try:
        import threadpoolctl
    except ImportError:  # pragma: no cover - threadpoolctl comes with dask's dependencies here
        yield
        return
    from ..worker import blas

    blas.available(np.dtype("float64"))  # load scipy's BLAS too: threadpoolctl limits loaded ones
    with threadpoolctl.threadpool_limits(count, user_api="blas"):
        yield


def timed(run: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds and this thread's CPU seconds of one call.

    With one BLAS thread the work runs in the calling thread, so its CPU time is what the
    call cost, whatever else the machine was doing; wall time also counts the waits for a
    busy core. Both are kept; ratios use the CPU time.
    """
    wall, cpu = time.perf_counter(), time.thread_time()
    run()
    return time.perf_counter() - wall, time.thread_time() - cpu


def _operands(rng: np.random.Generator, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    values = rng.standard_normal(shape)
    if dtype.kind == "c":
        values = values + 1j * rng.standard_normal(shape)
    return values.astype(dtype)


def compare_kernel(
    m: int, k: int, n: int, rows: int, dtype: str = "float64", *, repeats: int = 5,
    budget: float = 10.0, seed: int = 0,
) -> dict[str, Any]:
    """``accumulate(c, a, b, scratch)`` against one ``np.matmul(a, b, out=…)`` of the same operands.

    The two are timed alternately, ``repeats`` times each, and the fastest of each is kept,
    so that a noisy neighbour hurts both alike. Returns GFLOP/s of each and their ratio, per
    CPU second of the calling thread (``*_wall``: per wall second).
    """
    kind = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    a, b = _operands(rng, (m, k), kind), _operands(rng, (k, n), kind)
    c = np.zeros((m, n), dtype=kind)
    out = np.empty((m, n), dtype=kind)
    scratch = np.empty((max(1, min(rows, m)), n), dtype=kind)
    flops = 2 * m * n * k * (4 if kind.kind == "c" else 1)
    accumulate(c, a, b, scratch)  # warm: page in every buffer once
    np.matmul(a, b, out=out)
    best = {"kernel": [float("inf")] * 2, "matmul": [float("inf")] * 2}
    calls = {"kernel": lambda: accumulate(c, a, b, scratch), "matmul": lambda: np.matmul(a, b, out=out)}
    spent = 0.0
    for _ in range(repeats):
        for name, call in calls.items():
            wall, cpu = timed(call)
            best[name] = [min(best[name][0], wall), min(best[name][1], cpu)]
            spent += wall
        if spent > budget:
            break
    (kernel_wall, kernel_cpu), (matmul_wall, matmul_cpu) = best["kernel"], best["matmul"]
    return {"m": m, "k": k, "n": n, "rows": min(rows, m), "dtype": kind.name,
            "kernel_gflops": flops / kernel_cpu / 1e9, "matmul_gflops": flops / matmul_cpu / 1e9,
            "ratio": matmul_cpu / kernel_cpu,
            "kernel_gflops_wall": flops / kernel_wall / 1e9, "matmul_gflops_wall": flops / matmul_wall / 1e9,
            "ratio_wall": matmul_wall / kernel_wall}


def _busy_core_rate(edge: int, dtype: str, repeats: int, barrier: Any, results: Any) -> None:
    """One process of :func:`measure_busy_cores`: the best wall-clock rate of a 1-thread matmul."""
    import threadpoolctl

    kind = np.dtype(dtype)
    rng = np.random.default_rng(os.getpid())
    a, b = _operands(rng, (edge, edge), kind), _operands(rng, (edge, edge), kind)
    out = np.empty((edge, edge), dtype=kind)
    flops = 2 * edge**3 * (4 if kind.kind == "c" else 1)
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        np.matmul(a, b, out=out)
        barrier.wait()
        best = min(timed(lambda: np.matmul(a, b, out=out))[0] for _ in range(repeats))
    results.put(flops / best)


def measure_busy_cores(edge: int = 2048, dtype: str = "float64", repeats: int = 4,
                       processes: int | None = None) -> float:
    """Flops a second one single-threaded BLAS sustains by the clock while every core runs one:
    what a Dask worker thread gets when the cluster is busy (shared caches, memory bandwidth
    and clock), below what one thread alone gets."""
    rates = run_together(_busy_core_rate, (edge, dtype, repeats), processes or os.cpu_count() or 1)
    return float(sum(rates) / len(rates))


def run_together(target: Callable[..., None], args: tuple[Any, ...], count: int, answers_each: int = 1) -> list[Any]:
    """Run ``target(*args, barrier, answers)`` in ``count`` spawned processes (one barrier for
    them all, so that they can start each measurement at once) and return every answer they put."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    barrier, answers = context.Barrier(count), context.Queue()
    children = [context.Process(target=target, args=(*args, barrier, answers)) for _ in range(count)]
    for child in children:
        child.start()
    got = [answers.get(timeout=600) for _ in range(count * answers_each)]
    for child in children:
        child.join()
    return got


def measure_in_tasks(edge: int = 4096, *, workers: int | None = None, folder: str | None = None) -> dict[str, Any]:
    """What one BLAS thread computes inside blockdist's own tasks: a product of two edge²
    uncompressed float64 matrices (chunks of edge/4) on a local cluster of one single-threaded
    worker per core, its tasks' flops over their compute seconds. Reading, waiting and
    writing are left out: the cost model prices them apart. This, not a lone ``np.matmul``,
    is the rate plans use: it counts the worker process, the reader thread beside the kernel
    and every core busy at once."""
    import shutil
    import tempfile

    from ..storage.random import random_matrix
    from .cluster import connect, local_shape
    from .request import Options, Request
    from .start import submit

    count = workers or os.cpu_count() or 1
    tmp = tempfile.mkdtemp(prefix="blockdist-tune-", dir=folder)
    try:
        for name, seed in (("a", 1), ("b", 2)):
            random_matrix(f"{tmp}/{name}.zarr", (edge, edge), (edge // 4, edge // 4), seed=seed)
        runs, square = [], []
        with connect(None, local_shape(count, 1, None)) as client:  # one cluster for every run
            options = Options(client=client, model=MachineModel())
            for attempt in range(2):  # the better of two: a neighbour's burst slows one, not the machine
                job = submit(Request(f"{tmp}/a.zarr", f"{tmp}/b.zarr", f"{tmp}/c{attempt}.zarr", options))
                start = time.perf_counter()
                job.result()
                runs.append((job.plan.flops_computed / job.stats.compute_seconds, time.perf_counter() - start,
                             job.stats.compute_seconds, job.plan.tasks))
            for attempt in range(1 if edge < 4096 else 2):  # Xᵀ·X of A: diagonal tiles by syrk, Aᵀ's panels
                request = Request(f"{tmp}/a.zarr", f"{tmp}/a.zarr", f"{tmp}/g{attempt}.zarr", options,
                                  symmetric=True).with_options(transpose_a=True)
                job = submit(request)
                job.result()
                square.append(job.plan.flops_computed / job.stats.compute_seconds)
        rate, wall, compute, tasks = max(runs)
        return {"flops_per_thread": rate, "wall_seconds": wall, "compute_seconds": compute, "tasks": tasks,
                "workers": count, "edge": edge, "rates": [r[0] for r in runs],
                "square_efficiency": min(1.0, max(square) / rate), "square_rates": square}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(*, quick: bool = False, dtype: str = "float64", io: bool = True,
            progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Measure everything ``blockdist tune`` stores; returns the JSON-ready document."""
    tile = 2048 if quick else 4096
    depths = [512, 1024, 2048] if not quick else [512, 1024]
    rows = sorted({128, 256, 512, 1024, 2048, tile})
    with blas_threads(1):
        sweep = []
        for depth in depths:
            for r in rows:
                case = compare_kernel(tile, depth, tile, r, dtype, repeats=2 if quick else 3,
                                      budget=3 if quick else 8)
                sweep.append(case)
                progress(f"  kernel {tile}×{depth}·{depth}×{tile} {dtype}, rows {case['rows']:>5}: "
                         f"{case['kernel_gflops']:6.1f} GFLOP/s ({case['ratio']:.0%} of np.matmul)")
    # The sweep is kept in the file, but the defaults stay: on copied panels the kernel is
    # BLAS at every row block and depth (98-104 % of np.matmul), this machine's rate moves by
    # more than the differences between them, and the choices it made from them (128-row
    # blocks, 2048-deep panels) slowed the benchmark products by 5-37 %.
    defaults = MachineModel()
    rows_choice, depth_choice = defaults.kernel_rows, defaults.panel_depth
    alone = float(max(c["matmul_gflops"] for c in sweep) * 1e9)
    busy = measure_busy_cores(2048 if quick else 4096, dtype, repeats=2 if quick else 3)
    in_tasks = measure_in_tasks(2048 if quick else 4096)
    progress(f"  one BLAS thread: {alone / 1e9:.1f} GFLOP/s alone (a CPU-second), {busy / 1e9:.1f} by the "
             f"clock with every core busy, {in_tasks['flops_per_thread'] / 1e9:.1f} inside blockdist's tasks "
             f"on a local cluster (the rate plans use); a Gram product's syrk tiles "
             f"{in_tasks['square_efficiency']:.0%} of that")
    model: dict[str, Any] = {
        "kernel_rows": int(rows_choice),
        "panel_depth": int(depth_choice),
        "flops_per_thread": in_tasks["flops_per_thread"],
        "square_efficiency": in_tasks["square_efficiency"],
    }
    if io:
        rates = measure_io(2048 if quick else 4096)
        progress(f"  zarr read {rates['read_bytes_per_second'] / 1e9:.2f} GB/s, "
                 f"write {rates['write_bytes_per_second'] / 1e9:.2f} GB/s (one thread, uncompressed)")
        model.update(rates)
        decode = measure_decode(2048 if quick else 4096)
        progress(f"  zstd chunks {decode['zstd_read_bytes_per_second'] / 1e9:.2f} GB/s, blosc-lz4 "
                 f"{decode['blosc_read_bytes_per_second'] / 1e9:.2f} GB/s (decoded bytes a CPU-second)")
        model.update(decode)
    model_from_dict(model)  # validate
    return {
        "version": FORMAT_VERSION,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__, "blas": blas_name()},
        "model": model,
        "flops_per_thread_alone": alone,
        "flops_per_thread_busy_cores": busy,
        "in_tasks": in_tasks,
        "sweep": sweep,
    }


def blas_name() -> str:
    try:
        import threadpoolctl

        info = [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
    except ImportError:  # pragma: no cover
        return "unknown"
    return ", ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture', '')}".strip()
                     for i in info) or "unknown"
