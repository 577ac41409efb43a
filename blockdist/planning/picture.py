"""The output's tile grid drawn over its storage chunks, as an SVG (pure: standard library only).

As dask.array's repr draws an array's chunks, :func:`tile_grid_svg` draws C: thin lines at
its storage chunks, bold ones at the plan's tiles, and each tile shaded by how much of it is
done (a job's :class:`~blockdist.runtime.progress.Snapshot`). A symmetric product's tiles
below the diagonal are mirror images of those above: drawn hatched, never shaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .record import PlanRecord

#: Longest side of the drawing in pixels, and the shortest a thin matrix is drawn with.
SIDE, MIN_SIDE = 240, 24
#: More chunk lines than this along a side are not drawn (they would fill the picture).
MAX_LINES = 64


def _size(m: int, n: int) -> tuple[float, float]:
    scale = SIDE / max(m, n)
    return max(MIN_SIDE, n * scale), max(MIN_SIDE, m * scale)


def _lines(edges: list[int], total: int, extent: float, vertical: bool, other: float, style: str) -> list[str]:
    out = []
    for edge in edges[1:-1]:
        at = edge / total * extent
        x1, y1, x2, y2 = (at, 0, at, other) if vertical else (0, at, other, at)
        out.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" {style}/>')
    return out


def tile_grid_svg(plan: PlanRecord, fractions: Mapping[int, float] | None = None) -> str:
    """An SVG of C's tiles over its chunks; ``fractions`` shades each tile by its done share."""
    m, n = plan.shape
    width, height = _size(m, n)
    grid = plan.grid
    row_chunk, col_chunk = plan.out_chunks
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 2:.0f}" height="{height + 2:.0f}" '
             f'viewBox="-1 -1 {width + 2:.1f} {height + 2:.1f}" class="blockdist-tiles">',
             '<defs><pattern id="mirror" width="6" height="6" patternUnits="userSpaceOnUse">'
             '<path d="M0,6 L6,0" stroke="#bbb" stroke-width="1"/></pattern></defs>',
             f'<rect x="0" y="0" width="{width:.1f}" height="{height:.1f}" fill="#f4f4f4"/>']
    computed = {t.number for t in grid.tiles()}
    rows, cols = grid.row_edges, grid.col_edges
    for i in range(len(rows) - 1):
        for j in range(len(cols) - 1):
            number = grid.number(i, j)
            x, y = cols[j] / n * width, rows[i] / m * height
            w, h = (cols[j + 1] - cols[j]) / n * width, (rows[i + 1] - rows[i]) / m * height
            if number not in computed:
                fill = 'fill="url(#mirror)"'
            else:
                done = max(0.0, min(1.0, (fractions or {}).get(number, 0.0)))
                fill = f'fill="#2e8b57" fill-opacity="{0.15 + 0.85 * done:.2f}"' if done else 'fill="none"'
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" {fill} '
                         f'data-tile="{number}"><title>tile {number}: rows {rows[i]}:{rows[i + 1]}, '
                         f'columns {cols[j]}:{cols[j + 1]}</title></rect>')
    thin = 'stroke="#999" stroke-width="0.5"'
    if m // row_chunk <= MAX_LINES:
        parts += _lines(list(range(0, m, row_chunk)) + [m], m, height, False, width, thin)
    if n // col_chunk <= MAX_LINES:
        parts += _lines(list(range(0, n, col_chunk)) + [n], n, width, True, height, thin)
    bold = 'stroke="#222" stroke-width="1.5"'
    parts += _lines(rows, m, height, False, width, bold) + _lines(cols, n, width, True, height, bold)
    parts.append(f'<rect x="0" y="0" width="{width:.1f}" height="{height:.1f}" fill="none" {bold}/>')
    parts.append("</svg>")
    return "".join(parts)
