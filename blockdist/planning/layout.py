"""What the planner knows of a stored matrix, and the checks every operand must pass.

A :class:`MatrixLayout` is shape, read unit (chunk or shard), itemsize, how a task reads
the bytes (:class:`ReadSource`) and which chunks are stored (:class:`~.presence.StoredChunks`).
The storage layer makes one per array; planning from sizes alone (:func:`shape_layouts`)
makes them up, every chunk stored.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from ..errors import DtypeError, ShapeError
from .presence import StoredChunks

#: Numpy dtype kinds blockdist multiplies: signed and unsigned integers, floats, complex.
NUMERIC_KINDS = "iufc"


def numeric_dtype(value: object) -> np.dtype:
    """``value`` as a dtype blockdist multiplies, or a :class:`DtypeError` saying why not.

    >>> numeric_dtype("float32")
    dtype('float32')
    >>> numeric_dtype("bool")
    Traceback (most recent call last):
    ...
    blockdist.errors.DtypeError: dtype bool is not numeric; blockdist multiplies integer, float and complex matrices
    """
    try:
        dtype = np.dtype(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise DtypeError(f"{value!r} is not a numpy dtype; use float32, float64, complex64, complex128 or an "
                         "integer type") from None
    if dtype.kind not in NUMERIC_KINDS:
        raise DtypeError(f"dtype {dtype} is not numeric; blockdist multiplies integer, float and complex matrices")
    return dtype


class ReadSource(enum.StrEnum):
    """How a task gets an operand's chunks."""

    #: Local chunk files that hold the chunk's bytes as they are (uncompressed, unsharded,
    #: native order): BLAS may multiply them in place, mapped, or they are copied from a mapping.
    RAW = "raw"
    #: Local chunks zarr decodes (compressed, sharded, another byte order or dtype).
    DECODED = "decoded"
    #: Chunks fetched from object storage, then decoded.
    OBJECT = "object"

    @classmethod
    def parse(cls, value: str) -> ReadSource:
        """The source a stored plan names (manifests before 0.2 said ``mapped``/``local``)."""
        return {"mapped": cls.RAW, "local": cls.DECODED}.get(value) or cls(value)


@dataclass(frozen=True, slots=True)
class MatrixLayout:
    """What the planner needs to know of one stored matrix."""

    shape: tuple[int, int]
    chunks: tuple[int, int]  #: the unit of reading: the shard shape where there are shards
    itemsize: int
    dtype: str = "float64"
    source: ReadSource = ReadSource.DECODED
    #: the compressor of its chunks (a shard's inner chunks): none, zstd, blosc, gzip or another's name
    codec: str = "none"
    #: which chunks a listing found stored, by read unit (``None``: not listed, every one counts as stored)
    stored: StoredChunks | None = None

    @property
    def zero_blocks(self) -> np.ndarray | None:
        """Where some read units are absent and read as 0, a bool grid of those stored (a block
        product with an absent block costs nothing); ``None`` where every block counts."""
        if self.stored is None or not self.stored.zero_blocks:
            return None
        assert self.stored.present is not None
        return self.stored.present.array()

    def transposed(self) -> MatrixLayout:
        """The layout of Xᵀ: shape and chunks swapped (the bytes stay where they are)."""
        stored = self.stored.transposed() if self.stored is not None else None
        return MatrixLayout(self.shape[::-1], self.chunks[::-1], self.itemsize, self.dtype, self.source, self.codec,
                            stored)

    def to_dict(self) -> dict[str, object]:
        return {"shape": list(self.shape), "chunks": list(self.chunks), "itemsize": self.itemsize,
                "dtype": self.dtype, "source": str(self.source), "codec": self.codec,
                **({"stored": self.stored.to_dict()} if self.stored is not None else {})}

    @classmethod
    def from_dict(cls, data: dict) -> MatrixLayout:
        stored = StoredChunks.from_dict(data["stored"]) if data.get("stored") else None
        return cls(tuple(data["shape"]), tuple(data["chunks"]), data["itemsize"], data["dtype"],  # type: ignore[arg-type]
                   ReadSource.parse(data.get("source", "decoded")), data.get("codec", "none"), stored)


class ProductSizes:
    """``m``, ``k`` and ``n`` of a product whose operands ``a`` (m×k) and ``b`` (k×n) have shapes."""

    __slots__ = ()

    @property
    def m(self) -> int:
        return self.a.shape[0]  # type: ignore[attr-defined]

    @property
    def k(self) -> int:
        return self.a.shape[1]  # type: ignore[attr-defined]

    @property
    def n(self) -> int:
        return self.b.shape[1]  # type: ignore[attr-defined]


def check_matrix(name: str, shape: tuple[int, ...]) -> None:
    """Refuse an operand that is not a non-empty 2-D matrix, naming it and its shape."""
    if len(shape) != 2:
        raise ShapeError(
            f"{name} has {len(shape)} dimension(s) (shape {tuple(shape)}); blockdist multiplies 2-D matrices "
            "and vectors" + (" (a stack of matrices: multiply each one)" if len(shape) > 2 else "")
        )
    if min(shape) < 1:
        raise ShapeError(f"{name} is empty (shape {tuple(shape)}); every dimension must be ≥ 1")


def check_inner(a_name: str, a_shape: tuple[int, ...], b_name: str, b_shape: tuple[int, ...]) -> None:
    """Refuse two matrices whose inner dimensions differ, naming both shapes.

    >>> check_inner("A", (10, 20), "B", (21, 5))
    Traceback (most recent call last):
    ...
    blockdist.errors.ShapeError: inner dimensions differ: A is 10×20 and B is 21×5; A's columns (20) must equal B's rows (21)
    """
    check_matrix(a_name, a_shape)
    check_matrix(b_name, b_shape)
    if a_shape[1] != b_shape[0]:
        raise ShapeError(
            f"inner dimensions differ: {a_name} is {a_shape[0]}×{a_shape[1]} and {b_name} is "
            f"{b_shape[0]}×{b_shape[1]}; {a_name}'s columns ({a_shape[1]}) must equal {b_name}'s rows "
            f"({b_shape[0]})"
        )


#: Chunk edge :func:`shape_layouts` aims near when no chunks are given (128 MiB of float64).
DEFAULT_CHUNK = 4096


def even_chunk(length: int, target: int = DEFAULT_CHUNK) -> int:
    """A made-up chunk edge for ``length``: one that cuts it evenly into a count with as many
    factors of 2 as an edge between ``target/4`` and ``2·target`` allows (then the nearest to
    ``target``), so that tile grids fit worker counts; ``target`` where no edge divides.

    >>> even_chunk(10**6), even_chunk(10**5), even_chunk(10**4), even_chunk(8192), even_chunk(9973)
    (3125, 3125, 1250, 1024, 4096)
    """
    if length <= target:
        return length
    best: tuple[int, float, int] | None = None
    for edge in range(max(1, target // 4), 2 * target + 1):
        if length % edge:
            continue
        count = length // edge
        twos = (count & -count).bit_length() - 1
        key = (-twos, abs(edge - target) / target, edge)
        best = key if best is None or key < best else best
    return best[2] if best else target


def shape_layouts(
    m: int, n: int, k: int, *, dtype: str = "float64", chunks: int | tuple[int, ...] | None = None,
) -> tuple[MatrixLayout, MatrixLayout]:
    """Layouts of A (m×k) and B (k×n) for planning from shapes alone (no arrays needed).

    ``chunks`` is one edge for every dimension, or ``(cm, cn, ck)`` in the order of the sizes
    ``(m, n, k)``; by default each size's :func:`even_chunk`.

    >>> a, b = shape_layouts(10_000, 300, 50_000, chunks=(1000, 500, 2000))
    >>> a.chunks, b.chunks
    ((1000, 2000), (2000, 300))
    """
    if chunks is None:
        cm, cn, ck = even_chunk(m), even_chunk(n), even_chunk(k)
    elif isinstance(chunks, int):
        cm = cn = ck = chunks
    elif len(chunks) == 3:
        cm, cn, ck = chunks
    else:
        raise ShapeError(f"chunks must be one size or (cm, cn, ck), in the order of the sizes m, n, k; got {chunks!r}")
    if min(m, n, k) < 1 or min(cm, ck, cn) < 1:
        raise ShapeError(f"sizes and chunks must be at least 1; got sizes {m},{n},{k} and chunks {cm},{cn},{ck}")
    item = numeric_dtype(dtype)
    a = MatrixLayout((m, k), (min(cm, m), min(ck, k)), item.itemsize, item.name)
    b = MatrixLayout((k, n), (min(ck, k), min(cn, n)), item.itemsize, item.name)
    return a, b
