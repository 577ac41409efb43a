"""What a task measured (:class:`TaskStats`): tasks return these and the client adds them up.

Stats are values: adding two makes a third and changes neither, because Dask keeps a task's
result in memory for the tasks that need it and may hand the same one to a retried reduce.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from .tilecheck import TileCheck, WrittenCheck


@dataclass(frozen=True, slots=True)
class TaskStats:
    """Bytes and seconds of one or more tasks."""

    bytes_read: int = 0
    bytes_mapped: int = 0  #: of bytes_read, those BLAS read in place from mapped chunk files
    bytes_written: int = 0
    bytes_checked: int = 0  #: read back to check the written tiles (verify), not counted in bytes_read
    read_seconds: float = 0.0  #: spent in the reader thread
    wait_seconds: float = 0.0  #: the kernel waiting for a panel
    compute_seconds: float = 0.0
    write_seconds: float = 0.0  #: finishing and writing C's tiles
    tasks: int = 0
    bytes_staged: int = 0  #: split-k partials written to and read back from scratch storage
    partials_reused: int = 0  #: staged partials an earlier try had written, not computed again
    progress_seconds: float = 0.0  #: spent counting and sending progress (its overhead)
    verify_ratio: float = 0.0  #: the worst tile's residual as a share of its tolerance
    check: TileCheck | None = None  #: a split-k partial tile's check, until the tile is final
    #: a written block's check, until a check task reads the block back
    written: WrittenCheck | None = None

    def __add__(self, other: TaskStats) -> TaskStats:
        # a pending check dropped here would pass unread: blocks are checked before figures add up
        assert self.written is None and other.written is None, "a written block's check has not run"
        summed = {name: getattr(self, name) + getattr(other, name) for name in _SUMMED}
        checks = [c for c in (self.check, other.check) if c is not None]
        check = checks[0] + checks[1] if len(checks) == 2 else (checks[0] if checks else None)
        return TaskStats(**summed, verify_ratio=max(self.verify_ratio, other.verify_ratio), check=check)

    def plus(self, **more: float) -> TaskStats:
        """These stats with ``more`` added to the named figures."""
        return replace(self, **{name: getattr(self, name) + value for name, value in more.items()})


_SUMMED = tuple(f.name for f in fields(TaskStats) if f.name not in ("verify_ratio", "check", "written"))
