"""The job of a top-k search (:class:`TopkJob`): a :class:`~blockdist.runtime.job.Job` whose
tiles count as done once their rows of the output group are written, whose manifest lives in
the group's attributes beside its workload record (:mod:`.workload`: rows written, status), and
whose result is ``(indices, scores)``.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from ..errors import JobFailedError, StorageFullError
from ..planning import format_size
from ..storage.groups import open_topk, save_group_attributes
from .job import Job
from .lease import Lease
from .manifest import KEY, Manifest, Status
from .progress import ProgressLog
from .workload import WORKLOAD_KEY, WorkloadRecord, figures_kept

if TYPE_CHECKING:
    from distributed import Client, Future

    from ..storage import Array
    from .topk_prepare import PreparedTopk



def topk_record(manifest: dict[str, Any], k: int, rows_written: int, rows: int) -> dict[str, Any]:
    """The workload record of a top-k output whose job's manifest is ``manifest`` (its JSON)."""
    return WorkloadRecord("topk", str(manifest["status"]), str(manifest["token"]),
                          {"a": manifest["a"], "b": manifest["b"]}, {"k": k},
                          {"done": rows_written, "total": rows, "unit": "rows"},
                          figures_kept(manifest.get("figures"))).to_json()


def initial_attributes(manifest: Manifest, k: int) -> dict[str, Any]:
    """A new top-k group's attributes: the job's manifest and its record, nothing written yet."""
    document = manifest.to_json()
    return {KEY: document, WORKLOAD_KEY: topk_record(document, k, 0, manifest.plan.m)}


class TopkJob(Job):
    """A running top-k job (:func:`blockdist.submit_topk`): a :class:`~blockdist.runtime.job.Job`
    whose tiles count as done once their rows of the output are written, and whose result is
    ``(indices, scores)``."""

    def __init__(self, prepared: PreparedTopk, client: Client, futures: dict[Future, int],
                 band_tiles: dict[int, list[int]], owned: contextlib.ExitStack, progress: ProgressLog,
                 lease: Lease) -> None:
        self.topk_plan = prepared.topk
        self.k = prepared.topk.k
        self._band_tiles = band_tiles
        self._rows_written = 0
        super().__init__(prepared.product, None, client, futures, owned, self._mark_complete, progress,  # type: ignore[arg-type]
                         lease)

    @property
    def rows_written(self) -> int:
        return self._rows_written

    def result(self, timeout: float | None = None) -> tuple[Array, Array]:  # type: ignore[override]
        """Wait for the job and return ``(indices, scores)``, opened read-only."""
        super().result(timeout)
        return open_topk(self.out)

    def _record(self, future: Future) -> None:
        stats, band = future.result(), self._futures[future]
        tiles = self._band_tiles[band]
        edges = self.plan.grid.row_edges
        with self._lock:
            self.stats = self.stats + stats
            self._manifest.done.update(tiles)
            self._rows_written += edges[band + 1] - edges[band]
        for index, tile in enumerate(tiles):
            self._progress.tile_done(tile, stats.bytes_read if index == 0 else 0)
            self._tell_dashboard({"kind": "tile", "tile": tile})

    def _document(self) -> dict[str, Any]:
        with self._lock:
            document = self._manifest.to_json()
            failed = self._error is not None
            rows = self._rows_written
        if failed and document["status"] == Status.COMPLETE:
            document["status"] = str(Status.FAILED)
        return {KEY: document, WORKLOAD_KEY: topk_record(document, self.k, rows, self.plan.m)}

    def _save(self) -> None:
        save_group_attributes(self.out, self._document())

    def _mark_complete(self) -> None:
        """Every row is written: the output says so (a failure here fails the job)."""
        self._save()

    def _kept(self) -> str:
        return f"{self._rows_written} of {self.plan.m} rows written"

    def _failure(self, future: Future) -> BaseException:
        error = super()._failure(future)
        if type(error) is JobFailedError and future.status == "error":  # a dependency's, told by a merge
            return JobFailedError(f"top-k job {self.token} failed ({self._kept()}): {future.exception()}; "
                                  "run it again with --overwrite")
        return error

    def _lost_scheduler(self) -> Any:
        return JobFailedError(f"lost the scheduler at {self._scheduler}: top-k job {self.token} stopped with "
                              f"{self._kept()}; a top-k job does not resume: run it again with --overwrite "
                              f"once a scheduler is up")

    def _out_of_space(self, reason: StorageFullError) -> StorageFullError:
        left = (self.plan.m - self._rows_written) * self.k * self.topk_plan.pair_bytes
        return StorageFullError(f"{reason}; up to {format_size(left)} of {self.out} still to write "
                                f"({self._kept()}). Free space, then run the same command with --overwrite")


__all__ = ["TopkJob", "initial_attributes", "topk_record"]
