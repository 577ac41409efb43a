"""How far a running job is, from the progress its tasks send (:mod:`blockdist.worker.progress`).

A :class:`ProgressLog` subscribes to the tasks' events before the job's tasks are submitted,
keeps each task's latest totals and a short history, and answers :meth:`ProgressLog.snapshot`
with a :class:`Snapshot`: the share of the work done (flops, not tiles), the recent rate
overall and per worker, bytes read, and the time left at that rate. The CLI's lines, the
progress bar, the Jupyter repr and the manifest's figures are all drawn from snapshots.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..planning.units import format_flops, format_size
from ..worker.progress import TOPIC

#: Seconds of history the recent rate is taken over.
RATE_WINDOW = 10.0


@dataclass(frozen=True)
class Snapshot:
    """A job's progress at one moment."""

    fraction_done: float  #: of the work (flops computed), 0 to 1
    flops_done: float
    flops_total: float
    gflops_per_second: float  #: over the last few seconds
    bytes_read: int  #: by the tasks so far (finished and running)
    eta_seconds: float | None  #: at the recent rate; None before there is one
    tiles_done: int
    tiles_total: int
    seconds: float  #: since the job started
    worker_gflops: dict[str, float] = field(default_factory=dict)  #: recent rate per worker address
    tile_fractions: dict[int, float] = field(default_factory=dict)  #: done share of each tile begun

    def describe(self) -> str:
        eta = f", about {self.eta_seconds:.0f} s left" if self.eta_seconds is not None else ""
        return (f"{self.fraction_done:6.1%} of the work, {self.tiles_done}/{self.tiles_total} tiles, "
                f"{format_flops(self.gflops_per_second * 1e9, per_second=True)}, read {format_size(self.bytes_read)}{eta}")

    def to_json(self) -> dict[str, Any]:
        return {"fraction_done": self.fraction_done, "gflops_per_second": self.gflops_per_second,
                "bytes_read": self.bytes_read, "eta_seconds": self.eta_seconds, "tiles_done": self.tiles_done,
                "tiles_total": self.tiles_total, "seconds": self.seconds, "worker_gflops": self.worker_gflops,
                "tile_fractions": {str(k): v for k, v in self.tile_fractions.items()}}


class ProgressLog:
    """The progress events of one job's tasks, and the tiles it has finished."""

    def __init__(self, job: str, tile_flops: dict[int, int], done: set[int] | frozenset[int] = frozenset()) -> None:
        self.job = job
        self._tile_flops = tile_flops
        self._total = float(sum(tile_flops.values())) or 1.0
        self._done: set[int] = set(done)
        self._done_at_start = set(done)
        self._tasks: dict[str, dict[str, Any]] = {}  #: latest event per running task
        self._bytes_done = 0  #: read by finished tiles' tasks (from their figures)
        self._lock = threading.Lock()
        self._started = time.monotonic()
        # Every series starts at the job's start, so a first burst of events is not a rate.
        self._history: deque[tuple[float, float]] = deque([(self._started, self._flops_done())])
        self._worker_history: dict[str, deque[tuple[float, float]]] = {}
        self._finished: float | None = None
        self._client: Any = None

    # --- feeding -------------------------------------------------------------------------
    def subscribe(self, client: Any) -> None:
        client.subscribe_topic(TOPIC, self._receive)
        self._client = client

    def unsubscribe(self) -> None:
        if self._client is not None:
            try:
                self._client.unsubscribe_topic(TOPIC)
            except Exception:  # noqa: BLE001 - the client may be closing already
                pass
            self._client = None

    def _receive(self, event: tuple[float, dict[str, Any]]) -> None:
        _, message = event
        if not isinstance(message, dict) or message.get("job") != self.job:
            return
        self.record(message)

    def record(self, message: dict[str, Any]) -> None:
        """One task's running totals (a worker event's message)."""
        now = time.monotonic()
        with self._lock:
            key = str(message.get("task") or (message["tile"], message.get("flops_total")))
            previous = self._tasks.get(key, {}).get("flops", 0.0)
            self._tasks[key] = message
            worker = str(message.get("worker", ""))
            history = self._worker_history.setdefault(worker, deque([(self._started, 0.0)]))
            last = history[-1][1] if history else 0.0
            history.append((now, last + max(0.0, message["flops"] - previous)))
            self._history.append((now, self._flops_done()))
            for series in (self._history, history):
                while len(series) > 2 and now - series[1][0] > RATE_WINDOW:
                    series.popleft()

    def tile_done(self, number: int, bytes_read: int) -> None:
        with self._lock:
            self._done.add(number)
            self._bytes_done += bytes_read
            self._tasks = {k: m for k, m in self._tasks.items() if m.get("tile") != number}
            self._history.append((time.monotonic(), self._flops_done()))

    def finish(self) -> None:
        with self._lock:
            self._finished = time.monotonic()

    # --- reading -------------------------------------------------------------------------
    def _flops_done(self) -> float:
        done = sum(self._tile_flops.get(t, 0) for t in self._done)
        running = sum(m["flops"] for m in self._tasks.values() if m.get("tile") not in self._done)
        return done + running

    @staticmethod
    def _rate(series: deque[tuple[float, float]], now: float) -> float:
        if len(series) < 2:
            return 0.0
        (t0, f0), (t1, f1) = series[0], series[-1]
        span = max(now, t1) - t0
        return (f1 - f0) / span / 1e9 if span > 0.2 else 0.0

    def snapshot(self) -> Snapshot:
        with self._lock:
            now = self._finished or time.monotonic()
            done = self._flops_done() if self._finished is None or len(self._done) < len(self._tile_flops) else self._total
            rate = self._rate(self._history, now)
            if rate == 0.0 and now - self._started > 0.2:  # no history yet: the average since the start
                counted = done - sum(self._tile_flops.get(t, 0) for t in self._done_at_start)
                rate = counted / (now - self._started) / 1e9
            fractions: dict[int, float] = {t: 1.0 for t in self._done}
            for message in self._tasks.values():
                tile = message.get("tile")
                if tile not in self._done and tile in self._tile_flops:
                    fractions[tile] = min(1.0, fractions.get(tile, 0.0) + message["flops"] / self._tile_flops[tile])
            left = self._total - done
            return Snapshot(
                fraction_done=min(1.0, done / self._total), flops_done=done, flops_total=self._total,
                gflops_per_second=rate,
                bytes_read=self._bytes_done + sum(int(m.get("bytes_read", 0)) for m in self._tasks.values()),
                eta_seconds=(left / (rate * 1e9) if rate > 0 and left > 0 else (0.0 if left <= 0 else None)),
                tiles_done=len(self._done), tiles_total=len(self._tile_flops), seconds=now - self._started,
                worker_gflops={w: self._rate(h, now) for w, h in self._worker_history.items() if w},
                tile_fractions=fractions)
