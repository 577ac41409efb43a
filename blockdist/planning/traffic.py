"""How a split-k tile's partials are reduced, and what the busiest worker moves (pure).

A tile whose k range is cut in ``s`` pieces has ``s`` partial tiles, each computed by a task
on some worker. They are summed by a *reduce-scatter*: the tile's rows are cut in ``B``
bands of whole output chunks (``B = min(s, the tile's chunk rows)``), each partial is cut
the same way where it lies, and band ``b`` of all ``s`` partials is summed and written by
one reduce (a tree of fan-in ``reduce_fan_in`` when ``s`` is larger)::

      partial 0   partial 1   partial 2   partial 3            s = 4 k-ranges, B = 4 bands
      ┌──────┐    ┌──────┐    ┌──────┐    ┌──────┐
      │ b0 ──┼──┐ │ b0 ──┼──┐ │ b0 ──┼──┐ │ b0 ──┼──┐  → reduce of band 0 writes rows 0/4
      │ b1   │  │ │ b1   │  │ │ b1   │  │ │ b1   │  │  → reduce of band 1 writes rows 1/4 …
      └──────┘    └──────┘    └──────┘    └──────┘

Every worker then sends and receives about ``(s-1)/s`` of a tile and writes ``1/s`` of it,
where a tree to one reducer would pour ``s-1`` whole tiles into one worker. Worked example,
a tile of ``c`` bytes, ``s = B = 4``: the busiest worker moves ``c·(B+s-1)/B = 1.75·c``
besides its reads, against ``4·c`` for a root that receives three partials and writes.
"""

from __future__ import annotations

import functools

from .grid import reduce_levels

#: The shortest output chunk the planner cuts for a reduce-scatter's bands (rows).
MIN_BAND_ROWS = 256


@functools.lru_cache(maxsize=4096)
def band_chunk_rows(splits: int, tile_rows: int, chunk_rows: int) -> int:
    """Rows of the output's chunks for a split-k tile: the input's row chunk, or the largest
    divisor of it (of at least :data:`MIN_BAND_ROWS` rows) that cuts the tile in ``splits``
    bands, so that every worker reduces a band.

    >>> band_chunk_rows(1, 6250, 3125), band_chunk_rows(16, 6250, 3125), band_chunk_rows(4, 4096, 1024)
    (3125, 625, 1024)
    >>> band_chunk_rows(8, 4096, 1024), band_chunk_rows(64, 4096, 1024)
    (512, 256)
    """
    if splits <= 1 or -(-tile_rows // chunk_rows) >= splits:
        return chunk_rows
    divisors = [d for d in range(min(MIN_BAND_ROWS, chunk_rows), chunk_rows + 1) if chunk_rows % d == 0]
    fitting = [d for d in divisors if -(-tile_rows // d) >= splits]
    return max(fitting) if fitting else min(divisors)


def reduce_bands(splits: int, tile_rows: int, chunk_rows: int) -> int:
    """Bands a split-k tile's rows are cut in for the reduce-scatter (1 when streaming).

    >>> reduce_bands(1, 4096, 1024), reduce_bands(4, 4096, 1024), reduce_bands(8, 4096, 1024)
    (1, 4, 4)
    """
    if splits <= 1:
        return 1
    return max(1, min(splits, -(-tile_rows // max(1, chunk_rows))))


@functools.lru_cache(maxsize=4096)
def pieces_received(splits: int, fan_in: int) -> int:
    """Pieces the busiest reducer of one band receives: every level of the band's tree can
    fall on the worker of the tree's root, which receives ``fan_in - 1`` pieces at each.

    >>> pieces_received(4, 4), pieces_received(4, 2), pieces_received(1024, 2)
    (3, 2, 10)
    """
    return min(splits - 1, (fan_in - 1) * len(reduce_levels(splits, fan_in)))


def busiest_worker_traffic(reads_per_task: float, tile_bytes: float, splits: int, bands: int,
                           tasks_per_worker: int, fan_in: int = 2) -> float:
    """Bytes the busiest worker moves: its tasks' reads, plus each task's output.

    A streaming task writes its tile. A split-k task's worker sends the bands of its partial
    that others reduce (``B - 1`` of them), receives the pieces of the band it reduces and
    writes that band: ``c·(B - 1 + R + 1)/B`` with ``R`` from :func:`pieces_received`, an
    upper bound where the reduces of a tile fall on the workers of its first ``B`` partials.

    >>> busiest_worker_traffic(100.0, 10.0, 1, 1, 2)
    220.0
    >>> busiest_worker_traffic(100.0, 8.0, 4, 4, 1, fan_in=4)
    114.0
    """
    if splits <= 1:
        output = tile_bytes
    else:
        output = tile_bytes * (bands + pieces_received(splits, fan_in)) / bands
    return (reads_per_task + output) * tasks_per_worker


def moved_between_workers(tiles: int, tile_bytes: float, splits: int) -> float:
    """Bytes of partial tiles that travel between workers: ``s - 1`` tiles' worth per tile
    (each band leaves all partials but the reducer's own).

    >>> moved_between_workers(3, 10.0, 4)
    90.0
    """
    return tiles * (splits - 1) * tile_bytes if splits > 1 else 0.0
