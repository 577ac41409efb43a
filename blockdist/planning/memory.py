"""The memory model of one block-product task (pure: standard library only).

A task owns one output tile of ``tm × tn`` elements and streams the k dimension in
panels. While it runs, a worker holds::

    C tile            tm × tn                      (result dtype, resident for the task's life)
    panels            2 × (tm × dA + dB × tn)      (the panels in use and the ones prefetched)
    read buffers      raw + decoded chunks of the panel being read, at most
                      ``read_concurrency`` chunks in flight
    cast buffers      a panel in its stored dtype before conversion (only for mixed dtypes)
    kernel scratch    rows × tn                    (numpy's kernel only; BLAS adds in place, see worker/kernel.py)
    partials          fan_in × tm × tn             (split-k only: partial tiles awaiting a reduce)

Every term is a named field of :class:`TaskMemory`, so a plan can print each one and a test
can check each one on paper. The worker process itself (interpreter, numpy, dask, zarr)
costs :data:`WORKER_BASELINE` bytes on top, once per worker.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .units import format_size

#: Bytes a worker process needs before it runs any task (interpreter, libraries, buffers).
#: Measured: a Dask worker with numpy, zarr, dask.array and blockdist imported holds about
#: 95-105 MiB, and at most 130 MiB while running small tasks; this leaves 60 MiB to spare.
WORKER_BASELINE = 192 * 2**20
#: Chunks zarr decodes at once while reading one selection (zarr's ``async.concurrency``).
READ_CONCURRENCY = 10


@dataclass(frozen=True, slots=True)
class TaskMemory:
    """Projected peak bytes of one task, term by term."""

    c_tile: int  #: the resident output tile, in the result dtype
    panels: int  #: current and prefetched k-panels of A and B, in the result dtype
    read_buffers: int  #: raw and decoded chunks in flight while one panel is read
    cast_buffers: int  #: a panel in its stored dtype before conversion (0 if dtypes match)
    kernel_scratch: int  #: the kernel's product block
    partials: int = 0  #: split-k partial tiles held for a reduce (0 when streaming)

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))

    def terms(self) -> list[tuple[str, int]]:
        """The non-zero terms as ``(name, bytes)``, largest first."""
        named = [(f.name.replace("_", " "), getattr(self, f.name)) for f in fields(self)]
        return sorted((t for t in named if t[1]), key=lambda t: -t[1])

    def to_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def describe(self) -> str:
        return " + ".join(f"{name} {format_size(size)}" for name, size in self.terms())


def panel_read_buffers(rows: int, cols: int, chunk_rows: int, chunk_cols: int, itemsize: int) -> int:
    """Bytes of raw plus decoded chunks held while reading a ``rows × cols`` panel.

    >>> panel_read_buffers(1024, 1024, 512, 512, 8)  # 4 chunks of 2 MiB, raw + decoded
    16777216
    """
    touched = -(-rows // chunk_rows) * -(-cols // chunk_cols)
    chunk_bytes = min(rows, chunk_rows) * min(cols, chunk_cols) * itemsize
    return 2 * chunk_bytes * min(touched, READ_CONCURRENCY)


@dataclass(frozen=True, slots=True)
class PanelRead:
    """How one operand's panels are read, for the memory model."""

    depth: int  #: k-depth of a panel
    chunks: tuple[int, int]  #: the operand's logical chunk shape (rows × k for A, k × columns for B)
    itemsize: int  #: of the stored dtype
    mapped: bool = False  #: chunk files mapped in place: no read buffers


def task_memory(tile: tuple[int, int], a: PanelRead, b: PanelRead, *, itemsize: int, scratch_rows: int = 0,
                partial_tiles: float = 0) -> TaskMemory:
    """Project the peak memory of one task with a ``tile`` (rows × columns) of C.

    ``itemsize`` is the result dtype's. ``partial_tiles`` counts, in tiles, the partial pieces
    a split-k reduce holds (a fraction of a tile when the reduce sums bands). A mapped operand's panels are its chunk files' pages, mapped: they count in
    the worker's resident memory like buffers, but need no read buffers of their own.

    >>> read = PanelRead(512, (512, 512), 8)
    >>> m = task_memory((1024, 1024), read, read, itemsize=8, scratch_rows=64)
    >>> m.c_tile == 1024 * 1024 * 8, m.panels == 2 * 2 * 1024 * 512 * 8, m.cast_buffers
    (True, True, 0)
    """
    rows, cols = tile
    a_panel, b_panel = rows * a.depth, b.depth * cols
    read_a = 0 if a.mapped else panel_read_buffers(rows, a.depth, *a.chunks, a.itemsize)
    read_b = 0 if b.mapped else panel_read_buffers(b.depth, cols, *b.chunks, b.itemsize)
    cast_a = a_panel * a.itemsize if a.itemsize != itemsize else 0
    cast_b = b_panel * b.itemsize if b.itemsize != itemsize else 0
    return TaskMemory(
        c_tile=rows * cols * itemsize,
        panels=2 * (a_panel + b_panel) * itemsize,
        # The prefetch thread reads A's and B's panels one after the other, never both at once.
        read_buffers=max(read_a, read_b),
        cast_buffers=max(cast_a, cast_b),
        kernel_scratch=min(scratch_rows, rows) * cols * itemsize,
        partials=int(partial_tiles * rows * cols * itemsize),
    )
