"""What runs on the workers: stream k-panels from storage through the kernel into a C tile.

A task reads its panels itself (the graph carries only :mod:`.spec` values). One reader
thread fetches the next panel of A or B while the kernel multiplies the current ones, so at
most two panels of each operand are alive (:mod:`.panels`). Streaming tiles finish and write
themselves (:func:`multiply_tile`); split-k tiles are summed band by band (see :mod:`blockdist.planning.traffic`)::

    partial_tile(k0:k1)  partial_tile(k1:k2)  …  partial_tile(k7:k8)      one per k-range
       take_band ×B         take_band ×B             take_band ×B          rows of each, where it lies
          └──────── sum_partials ────────┘          └── sum_partials ──┘   per band, fan-in at a time
                         └──────────────── write_sum ─────────────┘        a band's root: finish, write
                                         add_stats                          the tile's figures

Every task's result belongs to Dask, which keeps it for the tasks that need it and may give
it to a retried one: reduces sum into new arrays and stats add up into new values.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from ..storage import read_block
from . import blas
from .finish import Finished, finish_tile, mirror_image
from .kernel import accumulate, multiply, scratch_for, symmetrize
from .panels import Block, PanelSource, segments
from .progress import Progress, current_task_key, digest
from .spec import TileOutput, TileTask
from .stats import TaskStats
from .tilecheck import TileCheck, WrittenCheck

Views = list[tuple[int, int, np.ndarray]]


#: Flops of one BLAS call above which a segment's product is cut in row blocks of the kernel's
#: rows, so that progress moves at least every couple of seconds. A cut repacks B per block
#: (two 2048-row calls of a 4096×1024·1024×4096 product: +0.75 % and −3 % against one call in
#: two runs of benchmarks/progress_overhead.py, within noise); products smaller stay whole.
SPLIT_FLOPS = 64e9


def _multiply_segment(c: np.ndarray, a_views: Views, b_views: Views, first: bool, scratch: np.ndarray | None,
                      kernel: dict[str, bool], kernel_rows: int, done: Callable[[float], None]) -> None:
    """C (+)= the product of one k-segment, block by block (a mapped panel has one block a chunk),
    a block of more than :data:`SPLIT_FLOPS` in ``kernel_rows``-row pieces, telling ``done``
    the flops of each call."""
    width = sum(b_col1 - b_col0 for b_col0, b_col1, _ in b_views)
    for a_row0, a_row1, a_view in a_views:
        whole = 2.0 * (a_row1 - a_row0) * width * a_view.shape[1] <= SPLIT_FLOPS
        block_rows = a_row1 - a_row0 if whole else max(1, kernel_rows)
        for lo in range(0, a_row1 - a_row0, block_rows):
            hi = min(lo + block_rows, a_row1 - a_row0)
            rows = a_view[lo:hi]
            for b_col0, b_col1, b_view in b_views:
                target = c[a_row0 + lo : a_row0 + hi, b_col0:b_col1]
                if first:  # the first product is written straight into C: no zero fill, no add
                    multiply(target, rows, b_view, **kernel)
                else:
                    accumulate(target, rows, b_view, scratch, **kernel)
                done(2.0 * (hi - lo) * (b_col1 - b_col0) * rows.shape[1])


def _segment_views(panel: list[Block], lo: int, hi: int, base: int, is_a: bool) -> Views:
    return [(b.lo, b.hi, b.view[:, lo - base : hi - base] if is_a else b.view[lo - base : hi - base]) for b in panel]


def _square_kernel(task: TileTask, a_source: PanelSource) -> bool | None:
    """For a diagonal tile of a symmetric product: whether op(B) = op(A)ᴴ (else ᵀ), or ``None``
    where syrk cannot compute it (no BLAS, an op BLAS's syrk lacks) and gemm does it all."""
    dtype = np.dtype(task.dtype)
    hermitian = dtype.kind == "c" and task.a.conjugate != task.b.conjugate
    if (not task.square or not task.blas or not blas.available(dtype) or a_source.conjugate_in_kernel
            or (hermitian and task.a.transpose)):
        return None
    return hermitian


#: Rows of the diagonal blocks syrk computes in a square tile; the rest of each block row goes
#: to gemm. A 2048² tile (k 4096, one thread) ran at 33 GFLOP/s of useful work as one syrk,
#: 37 in blocks of 1024, 35 of 512 (gemm: 35).
SQUARE_BLOCK = 1024


def _multiply_square(c: np.ndarray, views: Views, first: bool, hermitian: bool) -> None:
    """C's upper triangle (+)= P·Pᵀ (P·Pᴴ) of one k-segment: syrk on diagonal blocks, gemm right of them."""
    product = multiply if first else accumulate
    for index, (row0, row1, p) in enumerate(views):
        for lo in range(row0, row1, SQUARE_BLOCK):
            hi = min(lo + SQUARE_BLOCK, row1)
            block = p[lo - row0 : hi - row0]
            diagonal = c[lo:hi, lo:hi]
            if not blas.syrk(diagonal, block, hermitian=hermitian, beta=0.0 if first else 1.0):
                product(diagonal, block, block.T, conjugate_b=hermitian)  # a view syrk does not take
            if hi < row1:  # the rest of this view's rows
                product(c[lo:hi, hi:row1], block, p[hi - row0 :].T, conjugate_b=hermitian)
            for col0, col1, q in views[index + 1 :]:  # the views to the right (mapped chunks)
                product(c[lo:hi, col0:col1], block, q.T, conjugate_b=hermitian)


def _stats(sources: list[PanelSource], wait: float, compute: float, check: TileCheck | None,
           progress: Progress) -> TaskStats:
    """The task's figures, also given to the dashboard's Fine Performance Metrics: the kernel
    thread's time split into waiting for panels and computing, the reader thread's apart."""
    progress.finish()
    stores = [source.store for source in sources]
    stats = TaskStats(bytes_read=sum(s.bytes_read for s in stores), bytes_mapped=sum(s.bytes_mapped for s in stores),
                      read_seconds=sum(source.read_seconds for source in sources), wait_seconds=wait,
                      compute_seconds=compute - progress.overhead_seconds, tasks=1, check=check,
                      progress_seconds=progress.overhead_seconds)
    digest("panel-wait", stats.wait_seconds, "seconds")
    digest("compute", stats.compute_seconds, "seconds")
    digest("progress", stats.progress_seconds, "seconds")
    digest("read-and-decode", stats.read_seconds, "reader-thread-seconds")
    digest("read", stats.bytes_read - stats.bytes_mapped, "bytes")
    digest("mapped", stats.bytes_mapped, "bytes")
    return stats


def _progress(task: TileTask, flops: float) -> Progress:
    return Progress(task.job, task.tile, current_task_key() if task.job else "", flops, task.progress_interval)


def _tile(task: TileTask, shape: tuple[int, int]) -> np.ndarray:
    """The task's C tile: filled by its first product, or zeros where blocks are absent (a
    product skipped leaves its part of C as it is). The zeros are written now, not left to the
    pages' first touch (``np.zeros``): BLAS would then fault them in band by band while the
    reader thread maps chunk files, and the two contend for the process's memory map (a 4096²
    block-diagonal product's gemm calls ran 3-10× slower in a fresh worker)."""
    tile = np.empty(shape, dtype=task.dtype)
    if task.absent_blocks:
        tile.fill(0)
    return tile


def _stretch(source: PanelSource, panel: int) -> int:
    """Rows (A) or columns (B) of the tile that a panel reads."""
    span = source.span[1] - source.span[0]
    return span if source.runs is None else sum(hi - lo for lo, hi in source.runs[panel])


def _present_flops(a_source: PanelSource, b_source: PanelSource, square: bool) -> float:
    """The flops the task will do: every segment's, or only its present pairs'."""
    if square:
        return sum((hi - lo) * _stretch(a_source, i) * (_stretch(a_source, i) + 1)
                   for i, (lo, hi) in enumerate(zip(a_source.edges, a_source.edges[1:])))
    return sum(2.0 * (hi - lo) * _stretch(a_source, ia) * _stretch(b_source, ib)
               for lo, hi, ia, ib in segments(a_source.edges, b_source.edges))


def _square_tile(task: TileTask, a_source: PanelSource, hermitian: bool) -> tuple[np.ndarray, TaskStats]:
    """A diagonal tile of a symmetric product from A's panels alone, at half gemm's flops."""
    dtype = np.dtype(task.dtype)
    n = task.rows[1] - task.rows[0]
    c = _tile(task, (n, n))
    check = TileCheck(n, task.cols, task.check.trials, task.check.seed, dtype) if task.check else None
    edges = a_source.edges
    wait = compute = 0.0
    progress = _progress(task, _present_flops(a_source, a_source, square=True))
    with ThreadPoolExecutor(1, thread_name_prefix="blockdist-read") as reader:
        upcoming = reader.submit(a_source.read, 0)
        for index in range(len(edges) - 1):
            start = time.perf_counter()
            panel = upcoming.result()
            if index + 2 < len(edges):
                upcoming = reader.submit(a_source.read, index + 1)
            wait += time.perf_counter() - start
            start = time.perf_counter()
            views = _segment_views(panel, edges[index], edges[index + 1], edges[index], is_a=True)
            _multiply_square(c, views, index == 0 and not task.absent_blocks, hermitian)
            if check is not None and views:  # no views: an absent panel, nothing to add
                check.add_panels([(row, view) for row, _, view in views],
                                 [(row, view.T) for row, _, view in views], conjugate_b=hermitian)
            del views, panel
            stretch = _stretch(a_source, index)
            progress.advance((edges[index + 1] - edges[index]) * stretch * (stretch + 1), a_source.store.bytes_read)
            compute += time.perf_counter() - start
    start = time.perf_counter()
    symmetrize(c, hermitian)
    return c, _stats([a_source], wait, compute + time.perf_counter() - start, check, progress)


def accumulate_tile(task: TileTask) -> tuple[np.ndarray, TaskStats]:
    """The task's C tile, op(A)[rows, ks] · op(B)[ks, cols], and what computing it cost."""
    dtype = np.dtype(task.dtype)
    (r0, r1), (c0, c1) = task.rows, task.cols
    a_source = PanelSource(task.a, task, is_a=True)
    hermitian = _square_kernel(task, a_source)
    if hermitian is not None:
        return _square_tile(task, a_source, hermitian)
    b_source = PanelSource(task.b, task, is_a=False)
    a_edges, b_edges = a_source.edges, b_source.edges
    c = _tile(task, (r1 - r0, c1 - c0))
    use_blas = task.blas and blas.available(dtype)
    scratch = None if use_blas else scratch_for(r1 - r0, c1 - c0, task.kernel_rows, dtype)
    kernel = {"conjugate_a": a_source.conjugate_in_kernel, "conjugate_b": b_source.conjugate_in_kernel,
              "use_blas": use_blas}
    conjugate = {k: v for k, v in kernel.items() if k != "use_blas"}
    check = TileCheck(r1 - r0, (c0, c1), task.check.trials, task.check.seed, dtype) if task.check else None
    wait = compute = 0.0
    rows, cols = r1 - r0, c1 - c0
    progress = _progress(task, _present_flops(a_source, b_source, square=False) if task.absent_blocks
                         else 2 * rows * cols * (task.ks[1] - task.ks[0]))
    # Panel i lives in buffer i % 2; panel i + 1 is read into the other one only once panel i
    # is in use, when every segment of panel i - 1 is done.
    with ThreadPoolExecutor(1, thread_name_prefix="blockdist-read") as reader:
        a_next, b_next = reader.submit(a_source.read, 0), reader.submit(b_source.read, 0)
        a_index = b_index = -1
        for lo, hi, ia, ib in segments(a_edges, b_edges):
            start = time.perf_counter()
            if ia != a_index:
                a_panel, a_index = a_next.result(), ia
                if ia + 2 < len(a_edges):
                    a_next = reader.submit(a_source.read, ia + 1)
            if ib != b_index:
                b_panel, b_index = b_next.result(), ib
                if ib + 2 < len(b_edges):
                    b_next = reader.submit(b_source.read, ib + 1)
            wait += time.perf_counter() - start
            if not a_panel or not b_panel:  # an absent block on either side: nothing to add
                continue
            start = time.perf_counter()
            a_views = _segment_views(a_panel, lo, hi, a_edges[ia], is_a=True)
            b_views = _segment_views(b_panel, lo, hi, b_edges[ib], is_a=False)
            read_so_far = a_source.store.bytes_read + b_source.store.bytes_read
            first = lo == task.ks[0] and not task.absent_blocks
            _multiply_segment(c, a_views, b_views, first, scratch, kernel, task.kernel_rows,
                              lambda flops, read=read_so_far: progress.advance(flops, read))
            if check is not None:
                check.add_panels([(row, view) for row, _, view in a_views],
                                 [(col, view) for col, _, view in b_views], **conjugate)
            # Views keep their panel's mapping alive: drop them before waiting for the next one.
            del a_views, b_views
            compute += time.perf_counter() - start
    return c, _stats([a_source, b_source], wait, compute, check, progress)


def _pending_check(check: TileCheck, output: TileOutput, finished: Finished, k: int, dtype: np.dtype
                   ) -> WrittenCheck:
    """What the written block must satisfy: the product and beta·C0 (C0's block is at hand now),
    or, for an in-place tile an earlier try had staged (C0 is overwritten), the stage itself."""
    if finished.earlier:
        return WrittenCheck.against_stage(dtype)
    finish = output.finish
    width = output.cols[1] - output.cols[0]
    return check.written(k, width, alpha=finish.alpha, beta=finish.beta, c0=finished.c0)


def _complete(stats: TaskStats, tile: np.ndarray, k: int, output: TileOutput) -> TaskStats:
    """Finish and write a final tile; what it must satisfy when checked goes with its figures
    (:func:`check_region` reads it back once every writer of its storage objects is done)."""
    start = time.perf_counter()
    finished = finish_tile(output, tile)
    written = time.perf_counter()
    digest("write", written - start, "seconds")
    digest("write", finished.written, "bytes")
    pending = None if stats.check is None else _pending_check(stats.check, output, finished, k, tile.dtype)
    done = replace(stats, check=None, written=pending)
    return done.plus(write_seconds=time.perf_counter() - start, bytes_read=finished.read,
                     bytes_written=finished.written)


def check_region(output: TileOutput, stats: TaskStats, *writers: TaskStats) -> TaskStats:
    """Read back what is stored of a written block (and its mirror image) and check it.

    Runs after the task that wrote the block and after ``writers``, every other task writing
    one of the storage objects the block lies in (none, where the plan is right: see
    :mod:`blockdist.planning.writes`), so a write lost to another writer is caught. Covers the
    kernel, alpha and beta·C0, the mirror and the write; not the reads of A and B, which the
    check shares with the kernel (``blockdist verify`` reads them again).
    """
    del writers  # waited for, not read
    pending = stats.written
    assert pending is not None, "a block is checked only when its task was told to check it"
    start = time.perf_counter()
    finish, rows, cols = output.finish, output.rows, output.cols
    dtype = np.dtype(pending.dtype)
    stored, read = read_block(output.ref, rows, cols, dtype)
    if pending.expected is None:  # an in-place tile an earlier try staged: the output must hold the stage
        assert finish.stage is not None
        staged, more = read_block(finish.stage, rows, cols, dtype)
        ratio, read = (0.0 if np.array_equal(stored, staged) else math.inf), read + more
    else:
        ratio = pending.ratio(stored)
    if finish.mirror and rows != cols:
        image, more = read_block(output.ref, cols, rows, dtype)
        if not np.array_equal(mirror_image(image, finish.conjugate_mirror), stored):
            ratio = math.inf
        read += more
    seconds = time.perf_counter() - start
    digest("verify", seconds, "seconds")
    return replace(stats, written=None, verify_ratio=max(ratio, stats.verify_ratio)).plus(
        write_seconds=seconds, bytes_checked=read)


def multiply_tile(task: TileTask, output: TileOutput) -> TaskStats:
    """Stream all of the task's k range and write the finished C tile."""
    tile, stats = accumulate_tile(task)
    return _complete(stats, tile, task.ks[1] - task.ks[0], output)


def partial_tile(task: TileTask) -> tuple[np.ndarray, TaskStats]:
    """Split-k: the partial tile of one k range, kept in worker memory for a reduce."""
    return accumulate_tile(task)


def sum_partials(*parts: tuple[np.ndarray, TaskStats]) -> tuple[np.ndarray, TaskStats]:
    """Sum partial tiles into a new one (one level of the reduction tree); the inputs stay as they are."""
    if len(parts) == 1:
        return parts[0][0].copy(), parts[0][1]
    total, stats = np.add(parts[0][0], parts[1][0]), parts[0][1] + parts[1][1]
    for tile, more in parts[2:]:
        np.add(total, tile, out=total)
        stats = stats + more
    return total, stats


def write_sum(output: TileOutput, k: int, *parts: tuple[np.ndarray, TaskStats]) -> TaskStats:
    """The root of the reduction tree: sum the last partial tiles (or bands), finish and write them."""
    tile, stats = sum_partials(*parts)
    return _complete(stats, tile, k, output)


def take_band(part: tuple[np.ndarray, TaskStats], lo: int, hi: int, first: bool) -> tuple[np.ndarray, TaskStats]:
    """Rows ``[lo, hi)`` of a partial tile, cut where the partial lies, for the reduce of that band.

    The band is a view: only its rows travel to the reducing worker. The partial's counts go
    with its first band only, its check with every band (cut to the band's rows).
    """
    tile, stats = part
    check = stats.check.rows(lo, hi) if stats.check is not None else None
    return tile[lo:hi], replace(stats if first else TaskStats(), check=check)


def add_stats(*parts: TaskStats) -> TaskStats:
    """A split-k tile's figures: the sum of its bands' (the worst band's check)."""
    total = TaskStats()
    for stats in parts:
        total = total + stats
    return total
