"""Which chunks of a matrix are stored (pure): :class:`ChunkPresence` and :class:`StoredChunks`.

zarr writes no chunk that holds only the fill value (``write_empty_chunks=False``, its
default), so a block-diagonal, banded or padded matrix is stored with chunks absent, and an
absent chunk *is* the fill value. The storage layer lists which chunks exist before any task
runs and hands the planner a :class:`StoredChunks`: a bit per chunk of the grid the planner
reads by (the chunk, or the shard where there are shards), how many chunks are stored (inner
chunks, for shards), and the fill value. Where the fill value is 0, a block product with an
absent block is zero and costs nothing (:mod:`.sparse`)::

    A's chunks, block-diagonal        B's chunks, dense
    ┌──┬──┬──┬──┐                     ┌──┬──┬──┬──┐
    │██│  │  │  │                     │██│██│██│██│       tile row 0 of C needs A[0,0]·B[0,:]
    ├──┼──┼──┼──┤                     ├──┼──┼──┼──┤       and nothing else: 4 of 16 A·B
    │  │██│  │  │                     │██│██│██│██│       block pairs per tile row are present
    …

The bits are packed (``numpy.packbits``, row-major) so that a presence is hashable, compares
by value, pickles small and prints to JSON as one hex string.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class ChunkPresence:
    """A bit per chunk of a ``grid`` of chunks: whether it is stored.

    >>> p = ChunkPresence.of(np.eye(3, dtype=bool))
    >>> p.count, p.total, p.is_present(1, 1), p.is_present(0, 2)
    (3, 9, True, False)
    >>> ChunkPresence.from_text(p.to_text()) == p, p.transposed() == p
    (True, True)
    >>> p.coarsened((2, 3)).array().tolist()
    [[True], [True]]
    """

    grid: tuple[int, int]  #: chunks along the rows and the columns
    bits: bytes  #: ``numpy.packbits`` of the row-major bool grid

    @classmethod
    def of(cls, present: np.ndarray) -> ChunkPresence:
        grid = np.asarray(present, dtype=bool)
        if grid.ndim != 2:
            raise ValueError(f"a presence grid is 2-D, got shape {grid.shape}")
        return cls((int(grid.shape[0]), int(grid.shape[1])), np.packbits(grid, axis=None).tobytes())

    @classmethod
    def full(cls, grid: tuple[int, int]) -> ChunkPresence:
        return cls.of(np.ones(grid, dtype=bool))

    def array(self) -> np.ndarray:
        """The bool grid, ``grid`` in shape."""
        rows, cols = self.grid
        flat = np.unpackbits(np.frombuffer(self.bits, dtype=np.uint8), count=rows * cols)
        return flat.reshape(rows, cols).astype(bool)

    @property
    def count(self) -> int:
        """Chunks stored."""
        return int(np.unpackbits(np.frombuffer(self.bits, dtype=np.uint8)).sum())

    @property
    def total(self) -> int:
        return self.grid[0] * self.grid[1]

    def is_present(self, i: int, j: int) -> bool:
        index = i * self.grid[1] + j
        return bool(self.bits[index // 8] >> (7 - index % 8) & 1)

    def transposed(self) -> ChunkPresence:
        return ChunkPresence.of(self.array().T)

    def coarsened(self, factors: tuple[int, int]) -> ChunkPresence:
        """The presence of a grid whose chunks are ``factors`` of these across (a coarse chunk is
        stored where any of its chunks is)."""
        grid = self.array()
        fr, fc = factors
        rows, cols = -(-grid.shape[0] // fr), -(-grid.shape[1] // fc)
        padded = np.zeros((rows * fr, cols * fc), dtype=bool)
        padded[: grid.shape[0], : grid.shape[1]] = grid
        return ChunkPresence.of(padded.reshape(rows, fr, cols, fc).any(axis=(1, 3)))

    def to_text(self) -> str:
        """``"ROWSxCOLS:HEX"``, for JSON."""
        return f"{self.grid[0]}x{self.grid[1]}:{self.bits.hex()}"

    @classmethod
    def from_text(cls, text: str) -> ChunkPresence:
        grid, bits = text.split(":", 1)
        rows, cols = (int(x) for x in grid.split("x"))
        data = bytes.fromhex(bits)
        if len(data) != -(-rows * cols // 8):
            raise ValueError(f"a presence of {rows}×{cols} chunks has {-(-rows * cols // 8)} bytes, not {len(data)}")
        return cls((rows, cols), data)


@dataclass(frozen=True, slots=True)
class StoredChunks:
    """What a listing found of one matrix: which read units hold data, the chunks stored, the
    fill value absent chunks read as.

    >>> s = StoredChunks(ChunkPresence.of(np.eye(8, dtype=bool)), 8, 64, "0")
    >>> s.describe("A"), s.zero_blocks
    ('A: 8 of 64 chunks stored, the rest read as 0', True)
    >>> StoredChunks(None, 4, 4, "0").describe("B")
    'B: all 4 chunks stored'
    """

    #: a bit per read unit (chunk, or shard) of the matrix as the planner sees it; ``None``: all stored
    present: ChunkPresence | None
    count: int  #: chunks stored (a shard's inner chunks, each)
    total: int  #: chunks of the whole grid
    fill: str = "0"  #: the fill value, as people read it
    fill_is_zero: bool = True

    @property
    def complete(self) -> bool:
        return self.count >= self.total

    @property
    def zero_blocks(self) -> bool:
        """Whether some read units are absent and read as 0: their block products cost nothing."""
        return self.fill_is_zero and self.present is not None and self.present.count < self.present.total

    def zero_grid(self) -> np.ndarray | None:
        """The bool grid of the read units stored where the absent ones are zeros that may be
        skipped (:attr:`zero_blocks`); ``None`` where every unit must be read.

        >>> StoredChunks(ChunkPresence.of(np.eye(2, dtype=bool)), 2, 4, "0").zero_grid().tolist()
        [[True, False], [False, True]]
        >>> StoredChunks(ChunkPresence.of(np.eye(2, dtype=bool)), 2, 4, "1", False).zero_grid() is None
        True
        """
        return self.present.array() if self.zero_blocks and self.present is not None else None

    def describe(self, name: str) -> str:
        if self.complete:
            return f"{name}: all {self.total} chunks stored"
        return f"{name}: {self.count} of {self.total} chunks stored, the rest read as {self.fill}"

    def transposed(self) -> StoredChunks:
        present = self.present.transposed() if self.present is not None else None
        return StoredChunks(present, self.count, self.total, self.fill, self.fill_is_zero)

    def coarsened(self, factors: tuple[int, int]) -> StoredChunks:
        present = self.present.coarsened(factors) if self.present is not None else None
        return StoredChunks(present, self.count, self.total, self.fill, self.fill_is_zero)

    def to_dict(self) -> dict[str, object]:
        return {"present": self.present.to_text() if self.present is not None else None, "count": self.count,
                "total": self.total, "fill": self.fill, "fill_is_zero": self.fill_is_zero}

    @classmethod
    def from_dict(cls, data: dict) -> StoredChunks:
        present = ChunkPresence.from_text(data["present"]) if data.get("present") else None
        return cls(present, int(data["count"]), int(data["total"]), str(data.get("fill", "0")),
                   bool(data.get("fill_is_zero", True)))
