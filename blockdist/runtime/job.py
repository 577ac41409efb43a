"""A running product: futures, progress, cancel, the manifest, and how it shows in Jupyter.

:func:`blockdist.submit` returns a :class:`Job` at once (made by :func:`.start.start`). A watcher thread follows the
futures as they finish, adds up the figures the tasks report, records finished tiles in the
output's manifest (at most every ``blockdist.save-every`` seconds, and at the end), and shuts down
a local cluster the job started.
"""

from __future__ import annotations

import contextlib
import html
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..checks import TileVerdict, VerifyReport
from ..errors import BlockdistError, InputChangedError, JobFailedError, StorageFullError, VerificationError
from ..planning import format_size
from ..planning.units import format_flops
from ..storage import Array, save_attributes
from ..storage.fingerprint import changed_pieces, stored_pieces
from ..worker.stats import TaskStats
from . import settings
from .lease import Lease
from .manifest import KEY, Status
from .progress import ProgressLog, Snapshot

if TYPE_CHECKING:
    from distributed import Client, Future

    from .prepare import PreparedProduct


class Job:
    """A product running on a Dask cluster. Made by :func:`blockdist.submit`."""

    def __init__(self, prepared: PreparedProduct, array: Array, client: Client, futures: dict[Future, int],
                 owned: contextlib.ExitStack, on_complete: Callable[[], None] | None = None,
                 progress: ProgressLog | None = None, lease: Lease | None = None) -> None:
        self.plan = prepared.plan
        self.token = prepared.token
        self.out = prepared.out
        self.dashboard_link: str | None = client.dashboard_link
        self.stats = TaskStats()
        self.tiles_total = self.plan.tiles
        self._array = array
        self._manifest = prepared.manifest
        self._client = client
        self._futures = futures
        self._owned = owned
        check = prepared.graph.check
        self._verify_trials = check.trials if check is not None else 0
        self._on_complete = on_complete
        self._tile_ratios: dict[int, float] = {}
        #: Freivalds' check of the tiles this run computed, when asked for
        self.verification: VerifyReport | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._started = time.perf_counter()
        self._finished: float | None = None
        self._tiles_at_start = len(self._manifest.done)
        self._done_at_start = set(self._manifest.done)
        self._progress = progress or ProgressLog(self.token, self.plan.tile_flops(), self._manifest.done)
        self._lease = lease
        self._scheduler = getattr(client.scheduler, "address", "?")
        operands = prepared.checked.operands
        # A's and B's pieces as listed when they were checked (the listing the plan's absent
        # chunks come from): a chunk added or removed since is a change, as much as one rewritten
        listed = operands.listings or (None, None)
        self._inputs = []
        for name, ref, pieces in (("A", operands.a, listed[0]), ("B", operands.b, listed[1]), ("C0", operands.c0, None)):
            if ref is not None and ref != self.out:
                with contextlib.suppress(Exception):  # not listable now: that input goes unwatched
                    self._inputs.append((name, ref, pieces if pieces is not None else stored_pieces(ref)))
        self._watcher = threading.Thread(target=self._watch, name=f"blockdist-job-{self.token}", daemon=True)
        self._watcher.start()

    # --- state -------------------------------------------------------------------------
    @property
    def tiles_done(self) -> int:
        return len(self._manifest.done)

    @property
    def status(self) -> Status:
        return self._manifest.status

    @property
    def seconds(self) -> float:
        return (self._finished or time.perf_counter()) - self._started

    @property
    def gflops(self) -> float:
        """Rate of the work done by this run, as a share of the full product's (tiles already done
        before a resume excluded; where blocks are absent, by the tiles' present work)."""
        if self.plan.zero_blocks:
            work = self.plan.tile_flops()
            done = sum(work.get(t, 0) for t in self._manifest.done - self._done_at_start)
            share = done / max(1, sum(work.values()))
        else:
            share = (self.tiles_done - self._tiles_at_start) / max(1, self.tiles_total)
        return self.plan.flops * share / max(self.seconds, 1e-9) / 1e9

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for the job to end; return whether it has."""
        return self._done.wait(timeout)

    def result(self, timeout: float | None = None) -> Array:
        """Wait for the product and return the output array; raise what made it fail."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"job {self.token} is still running after {timeout} s")
        if self._error is not None:
            raise self._error
        return self._array

    def cancel(self) -> None:
        """Stop the job: tiles already recorded stay done, so ``resume=True`` can finish it.

        Tasks already running finish their tile (Dask cannot stop them); :meth:`result` waits for
        them (up to ``blockdist.stop-wait`` seconds), so nothing writes to the output after it returns.
        """
        with self._lock:
            if self._done.is_set():
                return
            self._manifest.status = Status.CANCELLED
            self._error = JobFailedError(f"job {self.token} was cancelled")
        self._client.cancel(list(self._futures))

    # --- watching ----------------------------------------------------------------------
    def _watch(self) -> None:
        from distributed import as_completed

        last_save, save_every = time.monotonic(), settings.get("save-every")
        try:
            for future in as_completed(list(self._futures), loop=self._client.loop):
                if self._error is not None:
                    break
                if self._lease is not None and self._lease.lost:
                    raise JobFailedError(f"job {self.token} stopped: {self._lease.lost}")
                # "lost": finished, then its worker died holding the figures; Dask computes the
                # tile again for this future, and _record's result() waits for that
                if future.status not in ("finished", "lost"):
                    raise self._failure(future)
                self._record(future)
                if time.monotonic() - last_save > save_every:
                    self._save()
                    last_save = time.monotonic()
            self._check_inputs_unchanged()
            if self._error is None and self._verify_trials:
                self.verification = VerifyReport(self._verify_trials, [
                    TileVerdict(*self.plan.grid.bounds(tile), ratio) for tile, ratio in sorted(self._tile_ratios.items())
                ])
                if not self.verification.ok:
                    raise VerificationError(self.verification.summary())
            with self._lock:
                if self._error is None:
                    self._manifest.status = Status.COMPLETE
            if self._on_complete is not None and self._error is None:
                self._on_complete()
        except BaseException as error:  # noqa: BLE001 - handed to result()
            error = self._explained(error)
            with self._lock:
                self._error = self._error or error
                if self._manifest.status is Status.RUNNING:
                    self._manifest.status = Status.FAILED
            with contextlib.suppress(Exception):
                self._client.cancel(list(self._futures))
        finally:
            if self._error is not None:
                with contextlib.suppress(Exception):
                    self._wait_for_stopped_tasks()
            self._finished = time.perf_counter()
            self._progress.finish()
            self._progress.unsubscribe()
            self._manifest.figures = self.figures()
            self._tell_dashboard({"kind": "end", "status": str(self._manifest.status), "seconds": self.seconds})
            with contextlib.suppress(Exception):
                self._save()
            # Released, so the workers forget the tasks' figures and the next job's tasks get a
            # span of their own (Dask files tasks of a group under the span of its first live tasks).
            self._futures = {}
            self._owned.close()
            self._done.set()

    def _failure(self, future: Future) -> BaseException:
        """What a task that did not finish means for the job, said as what it is."""
        reason = future.exception() if future.status == "error" else future.status
        if isinstance(reason, StorageFullError):
            return self._out_of_space(reason)
        if future.status == "cancelled" and self._scheduler_lost(None):
            return self._lost_scheduler()
        return JobFailedError(f"the product failed in task {future.key}: {reason}")

    def _record(self, future: Future) -> None:
        """A finished tile: its figures, the manifest, the progress log and the dashboard page."""
        stats, tile = future.result(), self._futures[future]
        with self._lock:
            self.stats = self.stats + stats
            self._tile_ratios[tile] = stats.verify_ratio
            self._manifest.done.add(tile)
        self._progress.tile_done(tile, stats.bytes_read)
        self._tell_dashboard({"kind": "tile", "tile": tile})

    def _explained(self, error: BaseException) -> BaseException:
        """The failure as best told: a lost scheduler over its connection error, a changed input
        over whatever it caused."""
        if not isinstance(error, BlockdistError) and self._scheduler_lost(error):
            error = self._lost_scheduler()
        if not isinstance(error, InputChangedError):
            try:
                self._check_inputs_unchanged()
            except InputChangedError as changed:
                return changed
            except Exception:  # noqa: BLE001, S110 - the inputs cannot be listed: the failure stands
                pass
        return error

    def _scheduler_lost(self, error: BaseException | None) -> bool:
        """Whether the scheduler is gone. A connection error (CommClosedError is an OSError) can
        reach us a moment before the client notices the closed stream, so give it that moment."""
        deadline = time.monotonic() + (5.0 if isinstance(error, OSError) else 0.0)
        while self._client.status == "running":
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def _lost_scheduler(self) -> JobFailedError:
        return JobFailedError(
            f"lost the scheduler at {self._scheduler}: job {self.token} stopped with {len(self._manifest.done)} "
            f"of {self.tiles_total} tiles done and kept; run the same command with --resume once a scheduler is up")

    def _check_inputs_unchanged(self) -> None:
        """Raise if an input's stored pieces differ from when the job started: a file rewritten
        under a mapped task can kill its worker (SIGBUS) or, rewritten in place, make the
        result wrong without a sound."""
        for name, ref, before in self._inputs:
            try:
                after = stored_pieces(ref)
            except Exception:  # noqa: BLE001 - storage unreachable now: nothing to compare with
                continue
            changes = changed_pieces(before, after)
            if changes:
                more = f" and {len(changes) - 1} more" if len(changes) > 1 else ""
                raise InputChangedError(f"{name} = {ref} changed while job {self.token} read it: {changes[0]}{more}; "
                                        f"its output cannot be trusted: run the product again")

    def _out_of_space(self, reason: StorageFullError) -> StorageFullError:
        """A full disk, said as what it is and what to do: the tiles done stay done."""
        tile_bytes = self.plan.tile_flops()  # computed tiles, by number
        left = sum((r1 - r0) * (c1 - c0) for (r0, r1), (c0, c1) in
                   (self.plan.grid.bounds(t) for t in tile_bytes if t not in self._manifest.done))
        if self.plan.symmetric:  # each off-diagonal tile also writes its mirror
            left *= 2
        return StorageFullError(
            f"{reason}; up to {format_size(left * self.plan.itemsize)} of {self.out} still to write "
            f"({len(self._manifest.done)} of {self.tiles_total} tiles done and kept). Free space, then run the "
            "same command with --resume")

    def _tell_dashboard(self, message: dict[str, object]) -> None:
        """Tell the scheduler's ``/blockdist`` page (:mod:`.dashboard`) how the job goes."""
        from .dashboard import JOB_TOPIC

        with contextlib.suppress(Exception):  # the page is a view: a lost message stops nothing
            self._client.log_event(JOB_TOPIC, {"job": self.token, **message})

    def _wait_for_stopped_tasks(self) -> None:
        # Dask cannot stop a task that is already running: it finishes its tile after the cancel.
        # result() waits for those, so that nothing writes to the output once the job says it ended.
        keys = {str(future.key) for future in self._futures}
        deadline = time.monotonic() + settings.get("stop-wait")
        while time.monotonic() < deadline:
            running = self._client.run(_running_keys)
            if not keys.intersection(key for worker_keys in running.values() for key in worker_keys):
                return
            time.sleep(0.2)

    def _save(self) -> None:
        with self._lock:
            document = self._manifest.to_json()
        self._array = save_attributes(self.out, self._array, {KEY: document})

    def snapshot(self) -> Snapshot:
        """How far the job is now, by work done inside its tasks (not only finished tiles)."""
        return self._progress.snapshot()

    def figures(self) -> dict[str, object]:
        """How the run went, for the manifest: rates, bytes and the tasks' seconds per activity."""
        stats, seconds = self.stats, self.seconds
        return {"seconds": round(seconds, 3), "gflops_per_second": round(self.gflops, 3),
                "tiles_computed": self.tiles_done - self._tiles_at_start, "bytes_read": stats.bytes_read,
                "bytes_written": stats.bytes_written, "bytes_staged": stats.bytes_staged,
                "read_bytes_per_second": round((stats.bytes_read - stats.bytes_mapped) / stats.read_seconds)
                if stats.read_seconds > 0 else None,
                "activity_seconds": {"read-and-decode (reader thread)": round(stats.read_seconds, 3),
                                     "panel-wait": round(stats.wait_seconds, 3),
                                     "compute": round(stats.compute_seconds, 3),
                                     "write-and-verify": round(stats.write_seconds, 3),
                                     "progress": round(stats.progress_seconds, 4)}}

    # --- display -----------------------------------------------------------------------
    def describe(self) -> str:
        return self.snapshot().describe()

    def progress(self) -> None:
        """Show a progress bar until the job ends (a widget in Jupyter, tqdm in a terminal),
        in GFLOP done inside the tasks."""
        from tqdm.auto import tqdm

        first = self.snapshot()
        with tqdm(total=round(first.flops_total / 1e9), unit="GFLOP", desc=f"blockdist {self.token}") as bar:
            while True:
                ended = self._done.wait(0.2)
                now = self.snapshot()
                bar.update(round(now.flops_done / 1e9) - bar.n)
                bar.set_postfix_str(f"{now.tiles_done}/{now.tiles_total} tiles, "
                                    f"{format_flops(now.gflops_per_second * 1e9, per_second=True)}, "
                                    f"read {format_size(now.bytes_read)}")
                if ended:
                    return

    def __repr__(self) -> str:
        return f"<blockdist.Job {self.token} {self.status}: {self.describe()}; dashboard {self.dashboard_link}>"

    def _repr_html_(self) -> str:
        from ..planning.picture import tile_grid_svg
        from ..planning.report import html_table

        link = html.escape(self.dashboard_link or "")
        now = self.snapshot()
        return (
            f"<div><strong>blockdist job {self.token}</strong> — {html.escape(self.status)}<br>"
            f"<progress value='{now.fraction_done:.4f}' max='1'></progress> "
            f"{html.escape(now.describe())}<br>"
            f"dashboard: <a href='{link}' target='_blank'>{link}</a>"
            f"<div style='display:flex;gap:1em;align-items:flex-start'>{html_table(self.plan)}"
            f"<div>{tile_grid_svg(self.plan, now.tile_fractions)}</div></div></div>"
        )


def _running_keys(dask_worker) -> list[str]:  # type: ignore[no-untyped-def]
    """The keys a worker is still executing, those the scheduler cancelled included."""
    return [str(task.key) for task in dask_worker.state.tasks.values()
            if task.state in ("executing", "long-running", "cancelled")]
