"""Arrays as zarr writes them, drawn by Hypothesis: format 2 or 3, C or F order, ``.`` or ``/``
chunk keys, numcodecs compressors and filters, big-endian, shards, a group's member — and which
of their chunks are absent (zarr writes no chunk that holds only the fill value).

:func:`formats` draws a :class:`Format`; :func:`absences` draws which chunks of a grid hold only
the fill value; :func:`with_absent` puts the fill value there; :meth:`Format.write` stores the
data the way zarr's defaults do (``write_empty_chunks=False``) and returns the path (or the
``zarr.Array`` of a group's member) to hand to blockdist.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import zarr
from hypothesis import strategies as st
from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, TransposeCodec, ZstdCodec

#: Compressors by name, and which formats have them (lz4 alone has no Zarr v3 codec).
COMPRESSORS = ("none", "zstd", "blosc-noshuffle", "blosc-shuffle", "blosc-bitshuffle", "gzip", "lz4", "default")


@dataclass(frozen=True)
class Format:
    zarr_format: int
    order: str  #: "C" or "F" (v3: a transpose codec)
    separator: str  #: "/" or "."
    compressor: str
    shuffle_filter: bool  #: v2: a numcodecs Shuffle filter before the compressor
    big_endian: bool
    shards: bool  #: v3: chunks inside shards of 2×2 chunks
    in_group: str  #: "": the array itself; "path": a group's member by its path; "array": the member's zarr.Array

    @property
    def v3_codec_for_output(self) -> bool:
        """Whether blockdist can write an output "like" this array's compressor."""
        return not (self.zarr_format == 2 and self.compressor == "lz4")

    @property
    def direct(self) -> bool:
        """Whether blockdist may read it without zarr (else it must fall back to zarr)."""
        return self.order == "C" and not self.shuffle_filter and not self.big_endian

    def _compressors(self, itemsize: int) -> Any:
        name = self.compressor
        if name == "default":
            return "auto"
        if name == "none":
            return None
        if self.zarr_format == 2:
            return {"zstd": numcodecs.Zstd(level=1), "gzip": numcodecs.GZip(level=1), "lz4": numcodecs.LZ4(),
                    "blosc-noshuffle": numcodecs.Blosc(shuffle=numcodecs.Blosc.NOSHUFFLE),
                    "blosc-shuffle": numcodecs.Blosc(shuffle=numcodecs.Blosc.SHUFFLE),
                    "blosc-bitshuffle": numcodecs.Blosc(shuffle=numcodecs.Blosc.BITSHUFFLE)}[name]
        return {"zstd": ZstdCodec(level=1), "gzip": GzipCodec(level=1), "lz4": BloscCodec(cname="lz4"),
                "blosc-noshuffle": BloscCodec(shuffle="noshuffle"), "blosc-shuffle": BloscCodec(shuffle="shuffle"),
                "blosc-bitshuffle": BloscCodec(shuffle="bitshuffle")}[name]

    def options(self, dtype: np.dtype, chunks: tuple[int, int]) -> dict[str, Any]:
        """``zarr.create_array``'s keywords for this format."""
        dtype = np.dtype(dtype)
        options: dict[str, Any] = {"zarr_format": self.zarr_format, "chunks": chunks,
                                   "compressors": self._compressors(dtype.itemsize)}
        if self.zarr_format == 2:
            options.update(order=self.order, dtype=dtype.newbyteorder(">") if self.big_endian else dtype,
                           chunk_key_encoding={"name": "v2", "separator": self.separator},
                           filters=[numcodecs.Shuffle(elementsize=dtype.itemsize)] if self.shuffle_filter else None)
            return options
        options.update(dtype=dtype, chunk_key_encoding={"name": "default", "separator": self.separator})
        if self.big_endian:
            options["serializer"] = BytesCodec(endian="big")
        if self.order == "F":
            options["filters"] = [TransposeCodec(order=(1, 0))]
        if self.shards:
            options["shards"] = (2 * chunks[0], 2 * chunks[1])
        return options

    def write(self, path: Path, data: np.ndarray, chunks: tuple[int, int], fill: float) -> Any:
        """Store ``data`` as zarr does by default (no chunk that holds only ``fill``); what to pass blockdist."""
        options = self.options(data.dtype, chunks)
        if self.in_group:
            group = zarr.open_group(str(path), mode="w", zarr_format=options.pop("zarr_format"))
            array = group.create_array("x", shape=data.shape, fill_value=fill, **options)
            array[...] = data
            return array if self.in_group == "array" else path / "x"
        array = zarr.create_array(str(path), shape=data.shape, fill_value=fill, **options)
        array[...] = data
        return path


@st.composite
def formats(draw: st.DrawFn) -> Format:
    zarr_format = draw(st.sampled_from([2, 3]))
    return Format(
        zarr_format=zarr_format,
        order=draw(st.sampled_from("CF")),
        separator=draw(st.sampled_from("/.")),
        compressor=draw(st.sampled_from(COMPRESSORS)),
        shuffle_filter=zarr_format == 2 and draw(st.booleans()),
        big_endian=draw(st.booleans()),
        shards=zarr_format == 3 and draw(st.booleans()),
        in_group=draw(st.sampled_from(["", "", "path", "array"])),
    )


#: Which chunks hold only the fill value.
PATTERNS = ("none", "some", "block-row", "block-column", "all")


@st.composite
def absences(draw: st.DrawFn, grid: tuple[int, int]) -> tuple[str, np.ndarray]:
    """A pattern's name and the bool grid of chunks left absent."""
    pattern = draw(st.sampled_from(PATTERNS))
    absent = np.zeros(grid, dtype=bool)
    if pattern == "some":
        bits = draw(st.lists(st.booleans(), min_size=absent.size, max_size=absent.size))
        absent = np.array(bits, dtype=bool).reshape(grid)
    elif pattern == "block-row":
        absent[draw(st.integers(0, grid[0] - 1))] = True
    elif pattern == "block-column":
        absent[:, draw(st.integers(0, grid[1] - 1))] = True
    elif pattern == "all":
        absent[:] = True
    return pattern, absent


def with_absent(data: np.ndarray, chunks: tuple[int, int], absent: np.ndarray, fill: float) -> np.ndarray:
    """``data`` with the fill value in the chunks marked absent (what zarr then leaves unwritten)."""
    out = data.copy()
    for i, j in zip(*np.nonzero(absent), strict=True):
        out[i * chunks[0] : (i + 1) * chunks[0], j * chunks[1] : (j + 1) * chunks[1]] = fill
    return out


def expected_presence(data: np.ndarray, chunks: tuple[int, int], unit: tuple[int, int], fill: float
                      ) -> tuple[np.ndarray, int]:
    """Which read units hold a value other than the fill, and how many chunks do."""
    rows, cols = -(-data.shape[0] // chunks[0]), -(-data.shape[1] // chunks[1])
    stored = np.array([[bool((data[i * chunks[0]:(i + 1) * chunks[0], j * chunks[1]:(j + 1) * chunks[1]] != fill).any())
                        for j in range(cols)] for i in range(rows)])
    per = (unit[0] // chunks[0], unit[1] // chunks[1])
    units = np.zeros((-(-rows // per[0]), -(-cols // per[1])), dtype=bool)
    for i, j in zip(*np.nonzero(stored), strict=True):
        units[i // per[0], j // per[1]] = True
    return units, int(stored.sum())
