"""blockdist beside dask.array, cubed and in-memory numpy, on the same Zarr inputs, in one run.

Usage (from the repository root)::

    python benchmarks/run.py            # the suite, about 20 minutes on 2 cores
    python benchmarks/run.py --quick    # smaller sizes, about 3 minutes
    python benchmarks/run.py --scale issue   # the sizes of issue 3 (12288³ …), about an hour

Each scenario writes its inputs once (uncompressed, local disk, cached between runs under
``--data``), starts a local Dask cluster of 2 worker processes × 1 thread with the
scenario's memory limit per worker (spilling off, as blockdist runs it) and then runs, one
after another on the same inputs:

* ``numpy``     read A and B whole into this process, ``np.matmul`` with every core's BLAS,
                write C; the matmul alone is timed too: that is the machine's BLAS rate
                (``np.matmul`` GFLOP/s) every other figure is compared with;
* ``blockdist`` ``blockdist.run`` on the cluster;
* ``dask``      ``da.from_zarr(A) @ da.from_zarr(B)`` stored into an uncompressed Zarr array;
* ``cubed``     ``cubed.array_api.matmul`` through cubed's Dask executor on the same cluster,
                uncompressed intermediates, into an uncompressed Zarr array.

Each run gets a fresh cluster (new worker processes, warmed up with the imports every tool
needs, peak-RSS counters reset through ``/proc/PID/clear_refs``), so a run's peak RSS per
worker (``VmHWM``) is its own. A sampling thread also records RSS every 20 ms. Bytes read
are the workers' ``rchar`` (bytes through read system calls, page cache or not) and, for
blockdist, its store's own count. JSON, PNG plots and ``summary.md`` go to ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import platform
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

import numpy as np  # noqa: E402
import psutil  # noqa: E402

GiB = 2**30
MiB = 2**20
WORKERS = 2
THREADS = 1
TOOLS = ("numpy", "blockdist", "blockdist-cold", "dask", "dask-rechunked", "cubed")


# --- scenarios ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    m: int
    k: int
    n: int
    a_chunks: tuple[int, int]
    b_chunks: tuple[int, int]
    memory: int  #: memory limit and blockdist budget per worker, bytes
    dtype: str = "float64"
    peers: bool = True  #: run dask and cubed too (the quick scale skips them out of core)
    codec: str = "none"  #: the inputs' compressor: none, zstd (zarr's default) or blosc-lz4
    shards: tuple[int, int] | None = None  #: shard shape (chunks are then the inner chunks)
    gram: bool = False  #: Xᵀ·X of A alone (k = A's rows; B is A): blockdist.gram, x.T @ x elsewhere
    #: dask-rechunked's blocks (A's, B's); None: blockdist's tile edge
    dask_blocks: tuple[tuple[int, int], tuple[int, int]] | None = None

    @property
    def flops(self) -> int:
        return 2 * self.m * self.n * self.k

    @property
    def input_bytes(self) -> int:
        elements = self.k * self.n if self.gram else self.m * self.k + self.k * self.n
        return elements * np.dtype(self.dtype).itemsize

    @property
    def key(self) -> str:
        layout = "" if self.codec == "none" else f"-{self.codec}"
        layout += f"-shards{self.shards[0]}x{self.shards[1]}" if self.shards else ""
        if self.gram:
            return f"gram-{self.k}x{self.n}-x{self.a_chunks[0]}x{self.a_chunks[1]}-{self.dtype}{layout}"
        return (f"{self.m}x{self.k}x{self.n}-a{self.a_chunks[0]}x{self.a_chunks[1]}"
                f"-b{self.b_chunks[0]}x{self.b_chunks[1]}-{self.dtype}{layout}")


def codec_scenarios(edge: int, gram_rows: int) -> list[Scenario]:
    """Issue 14's inputs as users have them: compressed, sharded, single precision, Gram."""
    big = 4 * GiB
    blocks = ((2048, 2048), (2048, 2048))
    square = dict(m=edge, k=edge, n=edge, a_chunks=(1024, 1024), b_chunks=(1024, 1024), memory=big,
                  dask_blocks=blocks)
    return [
        Scenario("zstd", f"{edge}³ float64, zstd, chunks 1024²", codec="zstd", **square),
        Scenario("blosc-lz4", f"{edge}³ float64, blosc-lz4 + shuffle, chunks 1024²", codec="blosc-lz4", **square),
        Scenario("sharded", f"{edge}³ float64, zstd, chunks 256² in 2048² shards", edge, edge, edge, (256, 256),
                 (256, 256), big, codec="zstd", shards=(2048, 2048), dask_blocks=blocks),
        Scenario("float32", f"{edge}³ float32, uncompressed, chunks 1024²", dtype="float32", **square),
        Scenario("complex64", f"{edge // 2}³ complex64, zstd, chunks 1024²", edge // 2, edge // 2, edge // 2,
                 (1024, 1024), (1024, 1024), big, dtype="complex64", codec="zstd", dask_blocks=blocks),
        Scenario("gram", f"Xᵀ·X, X {gram_rows}×2048 float64, zstd, chunks 4096×512", 2048, gram_rows, 2048,
                 (4096, 512), (4096, 512), big, codec="zstd", gram=True,
                 dask_blocks=((gram_rows // 8, 2048), (gram_rows // 8, 2048))),
    ]


def scenarios(scale: str) -> list[Scenario]:
    """The four scenarios at one of four scales (``issue`` is the sizes of issue 3; ``smoke`` is
    tiny, for the test suite: every tool and every figure, in seconds)."""
    if scale == "smoke":
        return [
            Scenario("square-big-chunks", "512³, chunks 256²", 512, 512, 512, (256, 256), (256, 256), 1 * GiB),
            Scenario("square-small-chunks", "384³, chunks 64²", 384, 384, 384, (64, 64), (64, 64), 1 * GiB),
            Scenario("inner-product", "64 × 8192 × 64, k-chunks 1024", 64, 8192, 64, (64, 1024), (1024, 64),
                     1 * GiB),
            Scenario("out-of-core", "768³, chunks 128² (not out of core at this size)", 768, 768,
                     768, (128, 128), (128, 128), 400 * MiB),
        ]
    if scale == "codecs":
        return codec_scenarios(8192, 131072)
    if scale == "codecs-smoke":
        return [replace(s, memory=1 * GiB) for s in codec_scenarios(2048, 16384)]
    if scale == "issue":
        sq, small, k_inner, ooc = 12288, 8192, 500_000, 16384
    elif scale == "default":
        sq, small, k_inner, ooc = 8192, 6144, 262_144, 10240
    elif scale == "quick":
        sq, small, k_inner, ooc = 4096, 3072, 65_536, 8192
    else:
        raise ValueError(scale)
    big_memory = 6 * GiB if scale == "issue" else 4 * GiB
    # Out-of-core: the two workers' limits together hold 90 % of the inputs (A and B).
    ooc_memory = int(0.45 * 2 * ooc * ooc * 8)
    return [
        Scenario("square-big-chunks", f"{sq}³, chunks 2048²", sq, sq, sq, (2048, 2048), (2048, 2048),
                 big_memory),
        Scenario("square-small-chunks", f"{small}³, chunks 512²", small, small, small, (512, 512),
                 (512, 512), big_memory),
        Scenario("inner-product", f"1000 × {k_inner} × 1000, k-chunks 8192", 1000, k_inner, 1000,
                 (1000, 8192), (8192, 1000), big_memory),
        Scenario("out-of-core", f"{ooc}³, chunks 512², the workers' limits hold 90 % of the inputs",
                 ooc, ooc, ooc, (512, 512), (512, 512), ooc_memory, peers=scale != "quick"),
    ]


# --- inputs ------------------------------------------------------------------------------
def ensure_inputs(s: Scenario, data: Path) -> tuple[Path, Path]:
    """Write A and B once per shape/chunks/dtype (seeded), reusing them while they match."""
    from blockdist.storage import output_compressors
    from blockdist.storage.random import random_matrix

    folder = data / s.key
    paths = folder / "a.zarr", folder / "b.zarr"
    specs = ((s.m, s.k), s.a_chunks, 1), ((s.k, s.n), s.b_chunks, 2)
    if s.gram:  # X alone, k × n: A is Xᵀ and B is X
        paths, specs = (folder / "x.zarr", folder / "x.zarr"), (((s.k, s.n), s.a_chunks, 1),)
    for path, (shape, chunks, seed) in zip(paths, specs):
        if _matches(path, shape, s.shards or chunks, s.dtype):
            continue
        shutil.rmtree(path, ignore_errors=True)
        start = time.perf_counter()
        random_matrix(path, shape, chunks, dtype=s.dtype, seed=seed, compressors=output_compressors(s.codec, None),
                      shards=s.shards)
        (path / ".complete").write_text("written by benchmarks/run.py\n")
        _log(f"  wrote {path} ({shape[0]}×{shape[1]}) in {time.perf_counter() - start:.1f} s")
    return paths


def _matches(path: Path, shape: tuple[int, int], chunks: tuple[int, int], dtype: str) -> bool:
    """Whether ``path`` holds a complete matrix of this shape, chunking and dtype."""
    try:
        meta = json.loads((path / "zarr.json").read_text())
        complete = (path / ".complete").exists()
    except (OSError, ValueError):
        return False
    return (complete and meta.get("shape") == list(shape)
            and meta.get("chunk_grid", {}).get("configuration", {}).get("chunk_shape") == list(chunks)
            and meta.get("data_type") == dtype)


# --- measuring worker processes ----------------------------------------------------------
def _hwm(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) * 1024  # type: ignore[union-attr]


def _reset_hwm(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Watch:
    """Peak RSS (VmHWM and 20 ms samples) and bytes read (rchar) of some processes."""

    def __init__(self, pids: list[int], interval: float = 0.02) -> None:
        self.pids = pids
        self.interval = interval
        self.procs = {pid: psutil.Process(pid) for pid in pids}
        self.sampled = dict.fromkeys(pids, 0)
        self.trace: list[tuple[float, list[int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> Watch:
        self.hwm_reset = all(_reset_hwm(pid) for pid in self.pids)
        self.rchar0 = {pid: p.io_counters().read_chars for pid, p in self.procs.items()}
        self.disk0 = {pid: p.io_counters().read_bytes for pid, p in self.procs.items()}
        self.cpu0 = {pid: sum(p.cpu_times()[:2]) for pid, p in self.procs.items()}
        self.start = time.perf_counter()
        self._thread.start()
        return self

    def _sample(self) -> None:
        last = 0.0
        while not self._stop.is_set():
            now = time.perf_counter() - self.start
            rss = []
            for pid, proc in self.procs.items():
                try:
                    value = proc.memory_info().rss
                except psutil.Error:
                    value = 0
                self.sampled[pid] = max(self.sampled[pid], value)
                rss.append(value)
            if now - last >= 0.25:
                self.trace.append((round(now, 2), rss))
                last = now
            self._stop.wait(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak: dict[int, int] = {}
        self.rchar: dict[int, int] = {}
        self.disk: dict[int, int] = {}
        self.cpu: dict[int, float] = {}
        for pid, proc in self.procs.items():
            with contextlib.suppress(psutil.Error):
                self.cpu[pid] = sum(proc.cpu_times()[:2]) - self.cpu0[pid]
            try:
                self.peak[pid] = max(_hwm(pid), self.sampled[pid]) if self.hwm_reset else self.sampled[pid]
                counters = proc.io_counters()
                self.rchar[pid] = counters.read_chars - self.rchar0[pid]
                self.disk[pid] = counters.read_bytes - self.disk0[pid]
            except (OSError, psutil.Error):
                self.peak[pid] = self.sampled[pid]
                self.rchar[pid] = self.disk[pid] = 0


def _warm() -> int:
    """Run on each worker after a restart: import what every tool needs; return the pid."""
    import dask.array  # noqa: F401
    import zarr  # noqa: F401

    import blockdist.worker.tasks  # noqa: F401

    with contextlib.suppress(ImportError):
        import cubed  # noqa: F401
    return os.getpid()


def _worker_state(dask_worker: Any) -> dict[str, Any]:
    """Spilled bytes and BLAS threads of a worker (run through ``client.run``)."""
    import threadpoolctl

    data = dask_worker.data
    spilled = 0
    totals = getattr(data, "spilled_total", None)
    if totals is not None:
        spilled = int(getattr(totals, "disk", 0) or 0)
    blas = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    return {"spilled_bytes": spilled, "blas_threads": max(blas) if blas else None,
            "spill_buffer": type(data).__name__}


# --- the tools ---------------------------------------------------------------------------
def run_numpy(s: Scenario, a_path: Path, b_path: Path, out: Path, client: Any) -> dict[str, Any]:
    import threadpoolctl
    import zarr

    cores = os.cpu_count() or 1
    with threadpoolctl.threadpool_limits(cores, user_api="blas"):
        t0 = time.perf_counter()
        a = zarr.open_array(a_path, mode="r")[...]
        b = a if s.gram else zarr.open_array(b_path, mode="r")[...]
        t1, cpu1 = time.perf_counter(), time.process_time()
        c = np.matmul(a.T, a) if s.gram else np.matmul(a, b)  # numpy runs syrk for x.T @ x of one buffer
        t2, cpu2 = time.perf_counter(), time.process_time()
        chunks = (s.a_chunks[1], s.a_chunks[1]) if s.gram else (s.a_chunks[0], s.b_chunks[1])
        z = zarr.create_array(out, shape=c.shape, chunks=chunks, dtype=c.dtype,
                              compressors=None, fill_value=0, overwrite=True)
        z[...] = c
        t3 = time.perf_counter()
    return {"inner_seconds": t3 - t0, "read_seconds": t1 - t0, "matmul_seconds": t2 - t1,
            "write_seconds": t3 - t2, "matmul_gflops": s.flops / (t2 - t1) / 1e9, "blas_threads": cores,
            "matmul_cpu_seconds": cpu2 - cpu1, "matmul_gflop_per_cpu_second": s.flops / (cpu2 - cpu1) / 1e9}


def run_blockdist(s: Scenario, a_path: Path, b_path: Path, out: Path, client: Any) -> dict[str, Any]:
    import blockdist
    from blockdist.planning import WORKER_BASELINE

    if s.gram:
        job = blockdist.submit_gram(str(a_path), str(out), transpose=True, client=client, memory=s.memory,
                                    overwrite=True, out_compressors="none")
        job.result()
        result = job  # the figures run_blockdist reads: plan, seconds, stats
    else:
        # Written uncompressed, as every peer writes it (blockdist's default would be A's codec).
        result = blockdist.run(str(a_path), str(b_path), str(out), client=client, memory=s.memory,
                               overwrite=True, out_compressors="none")
    plan = result.plan
    return {
        "inner_seconds": result.seconds,  # from submission to the written result (Job.seconds)
        "store_bytes_read": result.stats.bytes_read,
        "store_bytes_written": result.stats.bytes_written,
        "plan_bytes_read": plan.bytes_read,
        "io_lower_bound": plan.io_lower_bound,
        "io_ratio_measured": result.stats.bytes_read / plan.io_lower_bound,
        "projected_task_memory": plan.memory.total,
        "projected_worker_peak": WORKER_BASELINE + plan.threads * plan.memory.total,
        "worker_baseline_model": WORKER_BASELINE,
        "task_stats": asdict(result.stats),
        "plan": {k: v for k, v in plan.to_dict().items() if k != "memory"}
        | {"memory_terms": dict(plan.memory.terms())},
        "plan_summary": plan.summary(),
    }


def run_dask(s: Scenario, a_path: Path, b_path: Path, out: Path, client: Any,
             chunks: tuple[tuple[int, int], tuple[int, int]] | None = None) -> dict[str, Any]:
    import dask.array as da
    import zarr

    a = da.from_zarr(str(a_path), chunks=chunks[0] if chunks else None)
    b = da.from_zarr(str(b_path), chunks=chunks[1] if chunks else None)
    c = a.T @ a if s.gram else a @ b
    z = zarr.create_array(out, shape=c.shape, chunks=c.chunksize, dtype=c.dtype, compressors=None,
                          fill_value=0, overwrite=True)
    start = time.perf_counter()
    stored = da.store(c, z, lock=False, compute=False)
    client.compute(stored, sync=True)
    return {"inner_seconds": time.perf_counter() - start, "graph_tasks": len(c.__dask_graph__()),
            "dask_chunks": [list(a.chunksize), list(b.chunksize)]}


def run_dask_rechunked(s: Scenario, a_path: Path, b_path: Path, out: Path, client: Any) -> dict[str, Any]:
    """dask.array with the blocks a careful user would pick: blockdist's tile edge along every axis
    of A (rows and k) and B (k and columns), read straight from storage in those blocks."""
    import blockdist

    if s.dask_blocks is not None:
        return run_dask(s, a_path, b_path, out, client, s.dask_blocks) | {"rechunked_to": [list(c) for c in s.dask_blocks]}
    plan = blockdist.plan(str(a_path), str(b_path), memory=s.memory, workers=WORKERS, threads=THREADS)
    k_chunk = plan.a.chunks[1]  # whole storage chunks along k too, or each block rereads its chunks
    depth = min(plan.k, -(-max(plan.tile_rows, plan.tile_cols) // k_chunk) * k_chunk)
    chunks = ((plan.tile_rows, depth), (depth, plan.tile_cols))
    return run_dask(s, a_path, b_path, out, client, chunks) | {"rechunked_to": [list(c) for c in chunks]}


def run_cubed(s: Scenario, a_path: Path, b_path: Path, out: Path, client: Any) -> dict[str, Any]:
    import cubed
    import cubed.array_api as xp
    import cubed.runtime.executors.dask as cubed_dask
    import zarr

    # cubed 0.27 asks an asynchronous client for scheduler_info() and finds no workers with this
    # distributed; the memory check it would make is made here instead.
    cubed_dask.check_runtime_memory = lambda spec, client: None
    work = out.parent / "cubed-work"
    shutil.rmtree(work, ignore_errors=True)
    allowed = s.memory - 320 * MiB
    spec = cubed.Spec(work_dir=str(work), allowed_mem=allowed, reserved_mem=0, zarr_compressor=None)
    a = cubed.from_zarr(str(a_path), spec=spec)
    b = cubed.from_zarr(str(b_path), spec=spec)
    c = xp.matmul(xp.matrix_transpose(a), a) if s.gram else xp.matmul(a, b)
    z = zarr.create_array(out, shape=c.shape, chunks=c.chunksize, dtype=c.dtype, compressors=None,
                          fill_value=0, overwrite=True)
    executor = cubed_dask.DaskExecutor(compute_kwargs={"address": client.scheduler.address})
    start = time.perf_counter()
    cubed.to_zarr(c, z, executor=executor)
    seconds = time.perf_counter() - start
    shutil.rmtree(work, ignore_errors=True)
    return {"inner_seconds": seconds, "allowed_mem": allowed}


RUNNERS = {"numpy": run_numpy, "blockdist": run_blockdist, "blockdist-cold": run_blockdist, "dask": run_dask,
           "dask-rechunked": run_dask_rechunked, "cubed": run_cubed}


def drop_page_cache() -> bool:
    """Empty the page cache (root only), so the next run reads its inputs from the disk."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
        return True
    except OSError:
        return False


def check_result(a_path: Path, b_path: Path, out: Path, rows: int = 64, gram: bool = False) -> float:
    """The largest error of a corner of C against numpy's float64 product, elementwise, as a share
    of the rounding bound of both: ``2·γ_k·(|A|·|B|)``, ``γ_k = k·u/(1 − k·u)`` (Higham §3.1).
    With ``gram``, C is Xᵀ·X of the array at ``a_path``."""
    import zarr

    a, b, c = (zarr.open_array(p, mode="r") for p in (a_path, b_path, out))
    r, q = min(rows, c.shape[0]), min(rows, c.shape[1])
    lo, hi = c.shape[0] - r, c.shape[1] - q
    wide = np.complex128 if np.dtype(c.dtype).kind == "c" else np.float64
    sub_a = np.asarray(a[:, lo:], dtype=wide).T if gram else np.asarray(a[lo:, :], dtype=wide)
    sub_b = np.asarray(b[:, hi:], dtype=wide)
    k = sub_a.shape[1]
    u = np.finfo(c.dtype).eps / 2
    bound = 2 * (k * u / (1 - k * u)) * (np.abs(sub_a) @ np.abs(sub_b)) + np.finfo(np.float64).tiny
    return float((np.abs(c[lo:, hi:] - sub_a @ sub_b) / bound).max())


def run_tool(tool: str, s: Scenario, paths: tuple[Path, Path], work: Path, timeout: float,
             shared: Any = None) -> dict[str, Any]:
    """Run one tool on a fresh cluster, or on the ``shared`` client's (numpy: in this process),
    while watching the processes."""
    out = work / f"c-{tool}.zarr"
    shutil.rmtree(out, ignore_errors=True)
    with contextlib.ExitStack() as stack:
        fresh = tool != "numpy" and shared is None
        client = stack.enter_context(bench_cluster(s.memory)) if fresh else None if tool == "numpy" else shared
        cold = tool == "blockdist-cold" and drop_page_cache()
        return _run_watched(tool, s, paths, out, client, timeout) | ({"cold": cold} if tool == "blockdist-cold" else {})


def _run_watched(tool: str, s: Scenario, paths: tuple[Path, Path], out: Path, client: Any,
                 timeout: float) -> dict[str, Any]:
    pids = sorted(client.run(_warm).values()) if client is not None else []
    watched = pids or [os.getpid()]
    record: dict[str, Any] = {"tool": tool, "scenario": s.name, "worker_pids": watched}
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = RUNNERS[tool](s, *paths, out, client)
        except BaseException as error:  # recorded; the suite goes on
            box["error"] = f"{type(error).__name__}: {error}"
            box["traceback"] = traceback.format_exc(limit=4)

    start = time.perf_counter()
    with Watch(watched) as watch:
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            box.pop("result", None)
            box["error"] = f"timed out after {timeout:.0f} s (the cluster is closed under it)"
    # One clock for every tool: from the call (reading, planning, building graphs, creating the
    # output) to the written result; only the cluster's start is left out, alike for all.
    record["seconds"] = record["wall_seconds"] = time.perf_counter() - start
    record["peak_rss"] = [watch.peak[p] for p in watched]
    record["peak_rss_sampled"] = [watch.sampled[p] for p in watched]
    record["rss_trace"] = watch.trace
    record["bytes_read"] = sum(watch.rchar.values())
    record["bytes_read_per_process"] = [watch.rchar[p] for p in watched]
    # Bytes the block device delivered to the processes (/proc/PID/io read_bytes): mapped pages
    # included. With the page cache dropped first (blockdist-cold) it is every byte read once.
    record["disk_bytes_read"] = sum(watch.disk.values())
    record["cpu_seconds"] = sum(watch.cpu.values())
    if "result" in box:
        record.update(box["result"])
        record["ok"] = True
        record["gflops"] = s.flops / record["seconds"] / 1e9
        record["gflop_per_cpu_second"] = s.flops / max(record["cpu_seconds"], 1e-9) / 1e9
        if client is not None:
            states = client.run(_worker_state)
            record["spilled_bytes"] = sum(v["spilled_bytes"] for v in states.values())
            record["worker_blas_threads"] = sorted({v["blas_threads"] for v in states.values()})
            record["worker_data_store"] = sorted({v["spill_buffer"] for v in states.values()})
            record["killed_workers"] = sorted(set(pids) - set(client.run(os.getpid).values()))
        try:
            record["error_vs_bound"] = check_result(*paths, out, gram=s.gram)
        except Exception as error:  # scored as a miss: an unreadable result is not a result
            record["error_vs_bound"] = None
            record["check_error"] = f"{type(error).__name__}: {error}"
    else:
        record["ok"] = False
        record["error"] = box.get("error")
        record["traceback"] = box.get("traceback")
    shutil.rmtree(out, ignore_errors=True)
    return record


@contextlib.contextmanager
def bench_cluster(memory: int):
    import dask
    from distributed import Client, LocalCluster

    from blockdist.runtime.cluster import NO_SPILLING

    with dask.config.set(NO_SPILLING), LocalCluster(
        n_workers=WORKERS, threads_per_worker=THREADS, processes=True, memory_limit=memory,
        host="127.0.0.1", dashboard_address="127.0.0.1:0",
    ) as cluster, Client(cluster) as client:
        yield client


def environment() -> dict[str, Any]:
    import threadpoolctl

    versions = {}
    for name in ("numpy", "zarr", "dask", "distributed", "cubed", "blockdist"):
        with contextlib.suppress(Exception):
            versions[name] = __import__(name).__version__
    return {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "memory": psutil.virtual_memory().total,
        "load_average_at_start": os.getloadavg(),
        "versions": versions,
        "blas": threadpoolctl.threadpool_info(),
        "env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS",
                                           "OPENBLAS_NUM_THREADS", "BLOCKDIST_TUNE_FILE")
                if k in os.environ},
        "workers": WORKERS,
        "threads_per_worker": THREADS,
    }


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def _log(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    logging.getLogger("distributed").setLevel(logging.ERROR)  # a cluster per run: no start-up chatter
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the quick scale (about 3 minutes)")
    parser.add_argument("--scale", choices=("smoke", "quick", "default", "issue", "codecs", "codecs-smoke"), default="default",
                        help="sizes: smoke (seconds), quick, default (about 20 minutes), issue (the issue's sizes); "
                             "codecs: issue 14's compressed, sharded, float32, complex64 and Gram inputs")
    parser.add_argument("--scenarios", nargs="+", metavar="NAME", help="only these scenarios")
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS), metavar="TOOL",
                        help=f"only these tools (default: {' '.join(TOOLS)})")
    parser.add_argument("--repeat", type=int, default=1, help="rounds per scenario, order alternating")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "blockdist-bench",
                        help="where inputs are written and kept (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="default: %(default)s")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per tool run")
    parser.add_argument("--name", default=None, help="results file stem (default: results or quick)")
    parser.add_argument("--one-cluster", action="store_true",
                        help="one cluster per scenario for all its tools, instead of a fresh one per run: "
                             "quicker, for smoke runs (a tool's peak memory then includes what earlier runs left)")
    args = parser.parse_args(argv)
    scale = "quick" if args.quick else args.scale
    chosen = [s for s in scenarios(scale) if not args.scenarios or s.name in args.scenarios]
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if name in os.environ:
            _log(f"note: {name}={os.environ[name]} is set; it slows a current OpenBLAS. Run with "
                 "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py` to measure "
                 "the machine's real BLAS rate.")
    args.data.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.name or ("quick" if scale == "quick" else "results" if scale == "default" else scale)
    report: dict[str, Any] = {"scale": scale, "environment": environment(), "scenarios": [], "runs": []}
    started = time.perf_counter()
    np.matmul(np.ones((1024, 1024)), np.ones((1024, 1024)))  # start BLAS's threads before timing
    from reference import references, theoretical_peak  # benchmarks/reference.py

    dtypes = tuple(sorted({s.dtype for s in chosen}))
    smoke = scale.endswith("smoke")
    edge, runs = (512, 2) if smoke else (4096, 5)
    _log(f"load average {os.getloadavg()[0]:.2f}; reference: np.matmul of {edge}² operands, best of {runs}")
    report["peak"] = theoretical_peak()
    report["reference"] = [references(dtypes, edge, runs)]
    from ceilings import DECODE_RATES, TOUCH_SIZE, ceilings  # benchmarks/ceilings.py

    codecs = tuple(c for c in DECODE_RATES if any(s.codec == c for s in chosen))
    _log(f"worker layout ceiling: {WORKERS} processes × 1 BLAS thread at once; decode rate a core: {codecs}")
    report["ceilings"] = ceilings(dtypes, codecs, edge, runs, WORKERS, touch_size=32 * MiB if smoke else TOUCH_SIZE,
                                  touch_sleep=0.0 if smoke else 3.0)
    for s in chosen:
        _log(f"== {s.name}: {s.title}; {s.flops / 1e9:,.0f} GFLOP; inputs "
             f"{s.input_bytes / GiB:.2f} GiB; memory {s.memory / GiB:.2f} GiB per worker × {WORKERS}")
        paths = ensure_inputs(s, args.data)
        report["scenarios"].append(asdict(s) | {"flops": s.flops, "input_bytes": s.input_bytes})
        work = args.data / "out"
        work.mkdir(exist_ok=True)
        with contextlib.ExitStack() as stack:
            shared = stack.enter_context(bench_cluster(s.memory)) if args.one_cluster else None
            for round_ in range(args.repeat):
                order = args.tools if round_ % 2 == 0 else list(reversed(args.tools))
                for tool in order:
                    if tool in ("dask", "dask-rechunked", "cubed") and not s.peers:
                        continue
                    record = run_tool(tool, s, paths, work, args.timeout, shared)
                    record["round"] = round_
                    report["runs"].append(record)
                    _log("  " + _one_line(record))
        _save(report, args.out, stem)
    report["reference"].append(references(dtypes, edge, runs))  # a gap from the first: the run was loaded
    report["total_seconds"] = time.perf_counter() - started
    _save(report, args.out, stem)
    from report import write_report  # benchmarks/report.py

    write_report(args.out / f"{stem}.json", args.out)
    _log(f"total {report['total_seconds'] / 60:.1f} min; results in {args.out}")
    return 0


def _one_line(r: dict[str, Any]) -> str:
    if not r["ok"]:
        return f"{r['tool']:<10} FAILED {r.get('error')}"
    extra = f" (np.matmul {r['matmul_gflops']:.1f} GFLOP/s)" if r["tool"] == "numpy" else ""
    peaks = " / ".join(f"{p / MiB:.0f}" for p in r["peak_rss"])
    return (f"{r['tool']:<10} {r['seconds']:7.2f} s {r['gflops']:6.1f} GFLOP/s{extra}; "
            f"{r['gflop_per_cpu_second']:5.1f} GFLOP per CPU-s; peak RSS {peaks} MiB; "
            f"read {r['bytes_read'] / MiB:,.0f} MiB")


def _save(report: dict[str, Any], out: Path, stem: str) -> None:
    path = out / f"{stem}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1, default=str))
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
