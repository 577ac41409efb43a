"""Replay a plan's task graph on a described cluster, event by event (pure).

Where :func:`~blockdist.planning.cost.estimate_seconds` prices a plan as waves of equal
tasks, :func:`simulate` runs the tasks the graph would submit — every tile's block products
with their real sizes, the bands of a split-k tile and the trees that sum them — over
``workers × threads`` slots, the way Dask's scheduler hands them out:

* block products start in submission order on whichever slot is free;
* a reduce waits for its inputs and runs on the worker that holds the first of them (Dask
  places a task with its data), fetching the other pieces over that worker's network link;
* reading takes the task's core for decoding (``MachineModel.read_rate``) and waits for
  storage, whose bandwidth is shared fairly among the tasks reading at once — per worker
  (its link) and in aggregate (the store's) — and a task lasts the longer of the two;
* every task pays ``task_overhead_seconds``.

It reports the wall time, how busy the slots' cores were, and the bytes each worker moved.

>>> from blockdist.planning import ClusterShape, plan_for_shape
>>> plan = plan_for_shape(8192, 8192, 8192, ClusterShape(2, 1, 4 * 2**30))
>>> run = simulate(plan)
>>> run.tasks == plan.tasks, 0.9 < run.seconds / plan.predicted_seconds < 1.1
(True, True)
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import NamedTuple

from .cost import kernel_efficiency
from .grid import Tile, aligned_length, reduce_levels
from .plan import Plan


class SimTask(NamedTuple):
    number: int
    compute: float  #: seconds of the core: BLAS and decoding
    storage_read: float  #: bytes read from storage
    storage_write: float  #: bytes written to storage
    inputs: tuple[int, ...]  #: tasks whose results it needs
    input_bytes: tuple[float, ...]  #: bytes of each input
    result_bytes: float  #: bytes of its result, held where it ran
    flops: float


@dataclass
class Simulation:
    """What a replayed plan did."""

    seconds: float  #: wall time
    tasks: int
    busy_seconds: float  #: core-seconds of compute and decoding, summed over tasks
    slots: int
    bytes_read: float
    bytes_written: float
    bytes_moved_between_workers: float
    traffic_per_worker: list[float] = field(repr=False)  #: reads, writes, sends and receives per worker

    @property
    def utilisation(self) -> float:
        """Share of the slots' core time spent computing or decoding."""
        return self.busy_seconds / max(1e-12, self.seconds * self.slots)

    @property
    def busiest_worker_traffic(self) -> float:
        return max(self.traffic_per_worker)

    def to_dict(self) -> dict[str, float]:
        return {"seconds": round(self.seconds, 3), "tasks": self.tasks, "utilisation": round(self.utilisation, 4),
                "bytes_read": self.bytes_read, "bytes_written": self.bytes_written,
                "bytes_moved_between_workers": self.bytes_moved_between_workers,
                "traffic_per_worker": self.busiest_worker_traffic}


def plan_tasks(plan: Plan) -> list[SimTask]:
    """The tasks :class:`~blockdist.runtime.graph.Graph` submits for ``plan``, in its order."""
    model = plan.model
    tasks: list[SimTask] = []
    rate_a, rate_b = model.read_rate(plan.a.layout, plan.a.mapped), model.read_rate(plan.b.layout, plan.b.mapped)
    flop_rate = model.flop_rate(plan.dtype) * kernel_efficiency(min(plan.kernel_rows, plan.tile_rows), model)

    def add(compute: float, read: float, write: float, inputs: tuple[int, ...], input_bytes: tuple[float, ...],
            result: float, flops: float = 0.0) -> int:
        tasks.append(SimTask(len(tasks), compute, read, write, inputs, input_bytes, result, flops))
        return len(tasks) - 1

    for tile in plan.submission_order():
        rows, cols = tile.rows[1] - tile.rows[0], tile.cols[1] - tile.cols[0]
        square = plan.syrk_diagonals and tile.rows == tile.cols
        tile_bytes = rows * cols * plan.itemsize
        bricks = []
        pieces = _pieces(plan, tile)
        for read_a, read_b, flops in pieces:
            stream = len(pieces) == 1
            rate = flop_rate * (model.square_efficiency if square else 1.0)
            bricks.append(add(flops / rate + read_a / rate_a + read_b / rate_b, read_a + read_b,
                              tile_bytes if stream else 0, (), (), 0 if stream else tile_bytes, flops))
        if len(bricks) <= 1:
            continue
        edges = plan.band_edges(tile)
        for lo, hi in zip(edges, edges[1:]):
            piece = (hi - lo) * cols * plan.itemsize
            level = list(bricks)
            levels = reduce_levels(len(level), plan.reduce_fan_in)
            for depth, groups in enumerate(levels):
                root = depth == len(levels) - 1  # sums the last pieces and writes the band
                level = [add(len(level[lo:hi]) * piece / model.read_bytes_per_second, 0, piece if root else 0,
                             tuple(level[lo:hi]), (piece,) * (hi - lo), 0 if root else piece)
                         for lo, hi in groups]
    return tasks


class _Replay:
    """A replay in progress: each worker's free slots and storage readers, where each finished
    result lies, the tasks waiting for a slot, and the events (finish times) to come."""

    def __init__(self, plan: Plan, tasks: list[SimTask]) -> None:
        self.model, self.tasks = plan.model, tasks
        self.free = [plan.threads] * plan.workers
        self.readers = [0] * plan.workers
        self.reading = 0
        self.where: dict[int, int] = {}
        self.finished: set[int] = set()
        self.waiting = {t.number: len(t.inputs) for t in tasks}
        self.users: dict[int, list[int]] = {}
        for t in tasks:
            for i in t.inputs:
                self.users.setdefault(i, []).append(t.number)
        self.queued = [t.number for t in reversed(tasks) if not t.inputs]  # block products, popped in order
        #: reduces waiting for a slot on the worker that holds their first input
        self.local: list[list[int]] = [[] for _ in range(plan.workers)]
        self.traffic = [0.0] * plan.workers
        self.moved = self.busy = 0.0
        self.events: list[tuple[float, int, int, int]] = []  # (finish time, task, worker, reads)
        self.now = 0.0

    def start(self, number: int, worker: int) -> None:
        """Run task ``number`` on ``worker``: fetch its inputs held elsewhere, share storage, push its end."""
        model, task = self.model, self.tasks[number]
        self.free[worker] -= 1
        fetch = sum(b for i, b in zip(task.inputs, task.input_bytes) if self.where[i] != worker)
        for i, b in zip(task.inputs, task.input_bytes):
            if self.where[i] != worker:
                self.traffic[self.where[i]] += b
        self.moved += fetch
        storage_bytes = task.storage_read + task.storage_write
        reads = 1 if storage_bytes else 0
        self.readers[worker] += reads
        self.reading += reads
        share = min(model.worker_storage_bytes_per_second / max(1, self.readers[worker]),
                    model.aggregate_storage_bytes_per_second / max(1, self.reading))
        compute = task.compute + task.storage_write / model.write_bytes_per_second
        seconds = (max(compute, storage_bytes / share) + fetch / model.transfer_bytes_per_second
                   + model.task_overhead_seconds)
        self.busy += compute
        self.traffic[worker] += storage_bytes + fetch
        heapq.heappush(self.events, (self.now + seconds, number, worker, reads))

    def fill(self, worker: int) -> None:
        """Give ``worker``'s free slots its waiting reduces first, then the next block products."""
        while self.free[worker] and self.local[worker]:
            self.start(self.local[worker].pop(0), worker)
        while self.free[worker] and self.queued:
            self.start(self.queued.pop(), worker)

    def finish_next(self) -> None:
        """The next task to end frees its slot; a reduce it completes queues on its first input's worker."""
        self.now, number, worker, reads = heapq.heappop(self.events)
        self.free[worker] += 1
        self.readers[worker] -= reads
        self.reading -= reads
        self.where[number] = worker
        self.finished.add(number)
        for user in self.users.get(number, []):
            self.waiting[user] -= 1
            if not self.waiting[user]:
                home = self.where[self.tasks[user].inputs[0]]
                self.local[home].append(user)
                self.fill(home)
        self.fill(worker)


def _pieces(plan: Plan, tile: Tile) -> list[tuple[float, float, float]]:
    """``(bytes of A, bytes of B, flops)`` of each block-product task of ``tile``: one per
    k-range, or where blocks are absent one per k-range with present work (an empty tile: none,
    or one that reads nothing where it writes beta·C0)."""
    if plan.zero_blocks:
        work = plan.present()
        found = [work.piece_work[tile.number, p] for p in work.pieces[tile.number]]
        if not found and plan.writes_empty_tiles:
            found = [(0.0, 0, 0)]
        return [(float(a), float(b), flops) for flops, a, b in found]
    rows, cols = tile.rows[1] - tile.rows[0], tile.cols[1] - tile.cols[0]
    square = plan.syrk_diagonals and tile.rows == tile.cols
    k_edges, out = plan.k_edges, []
    for k0, k1 in zip(k_edges, k_edges[1:]):
        read_a = rows * aligned_length(k0, k1, plan.a.chunks[1], plan.k) * plan.a.itemsize
        read_b = 0 if square else aligned_length(k0, k1, plan.b.chunks[0], plan.k) * cols * plan.b.itemsize
        out.append((read_a, read_b, (k1 - k0) * rows * (rows + 1) if square else 2 * (k1 - k0) * rows * cols))
    return out


def simulate(plan: Plan) -> Simulation:
    """Run ``plan``'s tasks on its cluster (``plan.workers × plan.threads``) under its model's rates."""
    tasks = plan_tasks(plan)
    replay = _Replay(plan, tasks)
    for worker in range(plan.workers):
        replay.fill(worker)
    while replay.events:
        replay.finish_next()
    assert len(replay.finished) == len(tasks), "every task ran"
    return Simulation(replay.now, len(tasks), replay.busy, plan.workers * plan.threads,
                      sum(t.storage_read for t in tasks), sum(t.storage_write for t in tasks), replay.moved,
                      replay.traffic)
