"""A kept on the workers for a randomized SVD's passes (:class:`KeptA`), where it fits
(:func:`~blockdist.planning.sketch.keep_decision`).

The first pass submits one load task a row block (:func:`~blockdist.worker.kept.load_rows`:
A's reference and the rows, read from storage by the task), spread evenly over the workers,
and holds their futures, so the decoded blocks stay where they were read. Every pass is then
one round of block tasks on the worker holding each block, not a product job (no plan, lease,
manifest or output to create): A·X writes its band of the sketch and returns the band's Gram
matrix and column sums (the orthonormalisation's first sums, so that pass over the sketch is
not needed); Aᵀ·Q and PCA's column statistics are summed by a tree of tasks on the workers and
only the sum comes here. :meth:`KeptA.release` lets the blocks go, however the run ends.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from ..planning.sketch import KeepDecision
from ..storage import ArrayRef
from ..worker.kept import (
    add_parts,
    block_column_stats,
    block_times,
    block_transposed_times,
    kept_reads,
    load_rows,
)

#: Parts a node of a sum's tree adds (the partial Aᵀ·Q of up to this many blocks).
FAN_IN = 8


class KeptA:
    """A's row blocks on the workers of ``client``, loaded by the first pass that needs them."""

    def __init__(self, client: Any, a: ArrayRef, m: int, decision: KeepDecision, token: str,
                 present: np.ndarray | None = None, unit_rows: int = 1) -> None:
        self.client, self.a, self.m, self.decision, self.token = client, a, m, decision, token
        #: a bool per read unit of A stored, where the absent ones are zeros (None: all read), and
        #: the rows of a unit
        self.present, self.unit_rows = present, unit_rows
        self.blocks: list[Any] = []  #: futures of :class:`~blockdist.worker.kept.KeptBlock`

    def _submit(self, function: Any, *args: Any, what: str, **placement: Any) -> Any:
        """One task, keyed ``blockdist-WHAT-…`` (one group on the dashboard), in the run's span."""
        from distributed import span

        with span(f"blockdist-{self.token}"):
            return self.client.submit(function, *args, key=f"blockdist-{what}-{self.token}-{uuid.uuid4().hex[:8]}",
                                      pure=False, **placement)

    def _loaded(self) -> list[Any]:
        """The blocks' futures; the first call submits their loads, one worker after another in turn."""
        if not self.blocks:
            # asked of the scheduler directly: scheduler_info() may return the client's cached
            # identity, which a periodic refresh can leave without its workers
            workers = sorted(self.client.nthreads())
            rows = self.decision.block_rows
            edges = [(lo, min(lo + rows, self.m)) for lo in range(0, self.m, rows)]
            # loose restrictions: the blocks start spread evenly, and a lost worker's blocks are
            # read again elsewhere (their tasks hold only A's reference)
            self.blocks = [self._submit(load_rows, self.a, band, "float64", self._present(band), what="keep-a",
                                        **({"workers": [workers[i % len(workers)]], "allow_other_workers": True}
                                           if workers else {}))
                           for i, band in enumerate(edges)]
        return self.blocks

    def _present(self, rows: tuple[int, int]) -> np.ndarray | None:
        """The lines of :attr:`present` of a block's rows (kept blocks are whole read units)."""
        if self.present is None:
            return None
        return self.present[rows[0] // self.unit_rows : -(-rows[1] // self.unit_rows)]

    def _each(self, function: Any, *args: Any, what: str) -> list[Any]:
        return [self._submit(function, block, *args, what=what) for block in self._loaded()]

    def _sum(self, parts: list[Any]) -> tuple:
        """The item-by-item sum of the parts' tuples, added up in a tree on the workers."""
        while len(parts) > 1:
            parts = [self._submit(add_parts, *parts[i : i + FAN_IN], what="keep-sum")
                     for i in range(0, len(parts), FAN_IN)]
        return parts[0].result()

    def times(self, x: ArrayRef, width: int, target: ArrayRef) -> tuple[np.ndarray, np.ndarray, int]:
        """Y = A·X written to ``target`` (created, m×width); YᵀY, 1ᵀY and the bytes read (of X)."""
        found = self.client.gather(self._each(block_times, x, width, target, what="keep-times"))
        return sum(f.gram for f in found), sum(f.sums for f in found), sum(f.bytes_read for f in found)

    def transposed_times(self, q: ArrayRef, width: int) -> tuple[np.ndarray, int]:
        """Aᵀ·Q (n×width), Q read from storage band by band; and the bytes read (of Q)."""
        z, read = self._sum(self._each(block_transposed_times, q, width, what="keep-transposed"))
        return z, int(read)

    def column_stats(self) -> tuple[np.ndarray, float, int]:
        """A's column sums, its sum of squares, and the bytes read (none: A is here)."""
        sums, squares, read = self._sum(self._each(block_column_stats, what="keep-colstats"))
        return sums, float(squares), int(read)

    def reads(self) -> tuple[int, int]:
        """What loading A read (once, unless a worker was lost and its blocks read again): bytes,
        and absent chunk keys asked."""
        if not self.blocks:
            return 0, 0
        found = self.client.gather([self._submit(kept_reads, b, what="keep-read") for b in self.blocks])
        return sum(f[0] for f in found), sum(f[1] for f in found)

    def release(self) -> None:
        """Let the blocks go from the workers' memory."""
        blocks, self.blocks = self.blocks, []
        if blocks:
            self.client.cancel(blocks)


__all__ = ["FAN_IN", "KeptA"]
