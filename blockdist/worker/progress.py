"""Progress from inside a running task: work done so far, sent a few times a second.

A task's :class:`Progress` is told after every k-segment how many flops it has done and how
many bytes its panels have read; at most every ``interval`` seconds (and once at the end) it
sends the running totals as a Dask worker event on :data:`TOPIC`. The scheduler forwards
events to the clients subscribed to the topic (the job's :class:`~blockdist.runtime.progress.ProgressLog`)
and to scheduler plugins (the dashboard page's). Totals, not increments: a lost or repeated
message changes nothing, and a retried task starts again from zero, as its work does.

Outside a Dask worker (a task run in-process) nothing is sent. ``overhead_seconds`` is the
time the task spent here, so the cost of reporting is measured, not guessed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: The worker-event topic every task's progress is sent on.
TOPIC = "blockdist-progress"


class Progress:
    """The running totals of one task, sent on :data:`TOPIC` every ``interval`` seconds."""

    def __init__(self, job: str, tile: int, task: str, total_flops: float, interval: float) -> None:
        self.job, self.tile, self.task = job, tile, task
        self.total_flops = total_flops
        self.interval = interval
        self.flops = 0.0
        self.bytes_read = 0
        self.overhead_seconds = 0.0
        self._sent = 0.0
        self._worker = _current_worker() if job and interval > 0 else None

    def advance(self, flops: float, bytes_read: int) -> None:
        """``flops`` more done; ``bytes_read`` read by the task so far."""
        start = time.perf_counter()
        self.flops += flops
        self.bytes_read = bytes_read
        if self._worker is not None and start - self._sent >= self.interval:
            self._send(start)
        self.overhead_seconds += time.perf_counter() - start

    def finish(self) -> None:
        if self._worker is not None:
            start = time.perf_counter()
            self._send(start)
            self.overhead_seconds += time.perf_counter() - start

    def _send(self, now: float) -> None:
        self._sent = now
        self._worker.log_event(TOPIC, {
            "job": self.job, "tile": self.tile, "task": self.task, "flops": self.flops,
            "total_flops": self.total_flops, "bytes_read": self.bytes_read, "time": time.time(),
            "worker": self._worker.address,
        })


def _current_worker() -> Any:
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


def current_task_key() -> str:
    """The key of the Dask task running this code ("" outside one)."""
    try:
        from distributed import get_worker

        return str(get_worker().get_current_task())
    except (ImportError, ValueError, AttributeError):
        return ""


@contextmanager
def metered(label: str) -> Iterator[None]:
    """Seconds of one activity, for the dashboard's Fine Performance Metrics (inside a task)."""
    from distributed.metrics import context_meter

    with context_meter.meter(label):
        yield


def digest(label: str, value: float, unit: str) -> None:
    """One figure of the running task for the Fine Performance Metrics (bytes, seconds…)."""
    from distributed.metrics import context_meter

    context_meter.digest_metric(label, value, unit)
