"""Split-k with partials staged in scratch storage instead of held in worker memory.

Each partial task writes its partial tile to the scratch array and marks it; a band's reduce
reads that band of every partial back from storage, sums and writes it. Nothing but
:class:`~.stats.TaskStats` passes between workers, a partial leaves memory as soon as it is
written, and a worker that dies after staging its partial costs no recomputation: the retried
task finds the marker. (With ``verify``, the partial's check lives in its result, so a lost one
is computed again.)::

    stage_partial(k0:k1) … stage_partial(k7:k8)     write partial s to scratch[s, tile], mark it
          └───────┬──────────────┘
        reduce_staged_band ×B                       read band b of all s partials, sum, finish, write
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from ..storage.partials import StagedPartials, add_partial, partial_done, write_partial
from .spec import TileOutput, TileTask
from .stats import TaskStats
from .tasks import _complete, accumulate_tile


def stage_partial(task: TileTask, staged: StagedPartials, number: int, split: int) -> TaskStats:
    """Compute one partial tile and stage it, unless an earlier try did (and nothing is checked)."""
    marker = staged.marker(number, split)
    if task.check is None and partial_done(staged, marker):
        return TaskStats(partials_reused=1)
    tile, stats = accumulate_tile(task)
    start = time.perf_counter()
    written = write_partial(staged, split, task.rows, task.cols, tile, marker)
    return stats.plus(write_seconds=time.perf_counter() - start, bytes_staged=written)


def reduce_staged_band(output: TileOutput, k: int, staged: StagedPartials, band: tuple[int, int], first: bool,
                       *partials: TaskStats) -> TaskStats:
    """Sum band ``output.rows`` of every staged partial of the tile, finish and write it.

    ``band`` is the same rows counted from the tile's first; ``partials`` are the partial
    tasks' figures (counted by the tile's first band only), their checks cut to the band.
    """
    start = time.perf_counter()
    total: np.ndarray | None = None
    staged_read = 0
    for split in range(staged.splits):
        total, read = add_partial(staged, split, output.rows, output.cols, total)
        staged_read += read
    assert total is not None
    stats = TaskStats()
    for part in partials:
        check = part.check.rows(*band) if part.check is not None else None
        stats = stats + replace(part if first else TaskStats(), check=check)
    stats = stats.plus(bytes_staged=staged_read, read_seconds=time.perf_counter() - start)
    return _complete(stats, total, k, output)
