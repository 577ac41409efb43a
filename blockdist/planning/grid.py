"""Where tiles and k-ranges fall, and how tiles are numbered (pure).

C is cut into a grid of tiles at ``row_edges`` × ``col_edges``; tile ``(i, j)`` is number
``i · columns + j``. The number is what the manifest records as done, what in-place markers
are indexed by and what the graph keys and the job's verdicts name, so it is computed here
and nowhere else::

              col_edges: 0     4096    8192
    row_edges    0       ┌───────┬───────┐
                         │   0   │   1   │      a symmetric product computes 0, 1 and 3
              4096       ├───────┼───────┤      (on and above the diagonal) and writes
                         │   2   │   3   │      tile 1's mirror image as tile 2
              8192       └───────┴───────┘
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple


def edges(length: int, step: int) -> list[int]:
    """Boundaries of ``range(length)`` cut every ``step``.

    >>> edges(10, 4)
    [0, 4, 8, 10]
    """
    return list(range(0, length, step)) + [length]


def split_edges(length: int, pieces: int, align: int) -> list[int]:
    """Cut ``range(length)`` in about ``pieces`` near-equal parts at multiples of ``align``.

    >>> split_edges(5000, 1, 700), split_edges(12, 2, 3), split_edges(12, 4, 5)
    ([0, 5000], [0, 6, 12], [0, 5, 10, 12])
    """
    inner = {round(length * i / pieces / align) * align for i in range(1, pieces)}
    return [0, *sorted(c for c in inner if 0 < c < length), length]


def aligned_length(lo: int, hi: int, chunk: int, length: int) -> int:
    """Elements of whole chunks touched when reading ``[lo, hi)``.

    >>> aligned_length(3, 9, 4, 10), aligned_length(4, 8, 4, 10)
    (10, 4)
    """
    return min(length, -(-hi // chunk) * chunk) - (lo // chunk) * chunk


def panel_edges(lo: int, hi: int, depth: int, chunk: int) -> list[int]:
    """Panel boundaries in ``[lo, hi)``: every ``depth`` from the chunk boundary at or below ``lo``.

    >>> panel_edges(0, 10, 4, 2), panel_edges(3, 10, 4, 2)
    ([0, 4, 8, 10], [3, 6, 10])
    """
    base = (lo // chunk) * chunk
    inner = range(base + depth, hi, depth)
    return [lo, *[x for x in inner if x > lo], hi]


def reduce_levels(parts: int, fan_in: int) -> list[list[tuple[int, int]]]:
    """The tree that sums ``parts`` pieces ``fan_in`` at a time: for each level, the ranges of
    the level below that one reduce task sums; the last level is the root's one group.

    >>> reduce_levels(1, 2), reduce_levels(4, 4), reduce_levels(5, 4)
    ([], [[(0, 4)]], [[(0, 4), (4, 5)], [(0, 2)]])
    """
    levels: list[list[tuple[int, int]]] = []
    while parts > 1:
        levels.append([(g, min(g + fan_in, parts)) for g in range(0, parts, fan_in)])
        parts = len(levels[-1])
    return levels


def reduce_task_count(parts: int, fan_in: int) -> int:
    """Reduce tasks a tree of the given fan-in needs to sum ``parts`` partial tiles.

    >>> reduce_task_count(1, 4), reduce_task_count(4, 4), reduce_task_count(5, 4), reduce_task_count(16, 4)
    (0, 1, 3, 5)
    """
    return sum(len(level) for level in reduce_levels(parts, fan_in))


def tile_count(m: int, n: int, tm: int, tn: int, symmetric: bool) -> int:
    """Tiles computed when C (m×n) is cut in tiles of tm×tn (symmetric: the upper triangle)."""
    rows, cols = -(-m // tm), -(-n // tn)
    return rows * (rows + 1) // 2 if symmetric else rows * cols


class Tile(NamedTuple):
    """One tile of C: its number, grid position and the rows and columns it covers."""

    number: int
    i: int
    j: int
    rows: tuple[int, int]
    cols: tuple[int, int]


@dataclass(frozen=True, slots=True)
class TileGrid:
    """The tiles of C. Numbering is row-major over the whole grid, computed tiles or not.

    >>> grid = TileGrid.cut(10, 7, 4, 4)
    >>> grid.shape, grid.number(2, 1), grid.bounds(5)
    ((3, 2), 5, ((8, 10), (4, 7)))
    >>> [t.number for t in TileGrid.cut(8, 8, 4, 4, symmetric=True).tiles()]
    [0, 1, 3]
    """

    row_edges: tuple[int, ...]
    col_edges: tuple[int, ...]
    symmetric: bool = False

    @classmethod
    def cut(cls, m: int, n: int, tile_rows: int, tile_cols: int, symmetric: bool = False) -> TileGrid:
        return cls(tuple(edges(m, tile_rows)), tuple(edges(n, tile_cols)), symmetric)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.row_edges) - 1, len(self.col_edges) - 1

    @property
    def numbers(self) -> int:
        """How many numbers the grid uses: every tile, computed or mirrored."""
        rows, cols = self.shape
        return rows * cols

    @property
    def computed(self) -> int:
        """Tiles computed (for a symmetric product, those on and above the diagonal)."""
        rows, cols = self.shape
        return rows * (rows + 1) // 2 if self.symmetric else rows * cols

    def number(self, i: int, j: int) -> int:
        return i * self.shape[1] + j

    def bounds(self, number: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """The rows and columns of C that tile ``number`` covers."""
        i, j = divmod(number, self.shape[1])
        return (self.row_edges[i], self.row_edges[i + 1]), (self.col_edges[j], self.col_edges[j + 1])

    def tiles(self) -> Iterator[Tile]:
        """The tiles to compute, in number order."""
        rows, cols = self.row_edges, self.col_edges
        for i in range(len(rows) - 1):
            for j in range(i if self.symmetric else 0, len(cols) - 1):
                yield Tile(self.number(i, j), i, j, (rows[i], rows[i + 1]), (cols[j], cols[j + 1]))
