"""The verdict of a check: per tile, and for the whole product."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TileVerdict:
    rows: tuple[int, int]
    cols: tuple[int, int]
    ratio: float  #: the largest residual as a share of its tolerance (> 1 fails)

    @property
    def ok(self) -> bool:
        return self.ratio <= 1.0

    def __str__(self) -> str:
        return (f"tile rows {self.rows[0]}:{self.rows[1]}, columns {self.cols[0]}:{self.cols[1]} "
                f"(residual {self.ratio:.3g} × its tolerance)")


@dataclass(frozen=True, slots=True)
class VerifyReport:
    trials: int
    tiles: list[TileVerdict]
    bytes_read: int = 0  #: by the check's own tasks (``blockdist verify``); 0 where the product's tasks checked
    absent_asked: int = 0  #: chunk keys those tasks asked of storage that are not stored

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tiles)

    @property
    def failed(self) -> list[TileVerdict]:
        return [t for t in self.tiles if not t.ok]

    @property
    def worst(self) -> float:
        return max((t.ratio for t in self.tiles), default=0.0)

    def summary(self) -> str:
        if self.ok:
            return (f"verified: C = A·B holds on {len(self.tiles)} tiles with {self.trials} random "
                    f"vector(s) (largest residual {self.worst:.2g} × its tolerance)")
        names = "; ".join(str(t) for t in self.failed[:5])
        more = f" and {len(self.failed) - 5} more" if len(self.failed) > 5 else ""
        return f"verification FAILED on {len(self.failed)} of {len(self.tiles)} tiles: {names}{more}"
