"""Reading compressed and sharded panels: zarr-python's pipeline, blockdist's direct decoder, zarrs.

    python benchmarks/decode.py [--rows 2048] [--cols 8192] [--repeat 3]

Writes one ``rows × cols`` float64 matrix per layout (zstd 1024², blosc-lz4 + shuffle 1024²,
zstd 256² chunks in 2048² shards, and uncompressed 1024² for scale), then reads it the way a
task reads its panels — blocks of ``rows × 2048`` into one reused buffer — with each reader,
alternating, the best of ``--repeat`` kept:

* ``zarr``      zarr-python's ``get_basic_selection(out=…)`` (its default codec pipeline);
* ``blockdist`` :class:`blockdist.storage.EncodedChunks` (one ``pread`` a run, numcodecs decode);
* ``zarrs``     the zarrs codec pipeline (``codec_pipeline.path``), when it is installed.

Every read is checked against zarr-python's. Prints GB/s (decoded bytes a wall second and a
CPU second of this process) and writes ``benchmarks/results/decode.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402

LAYOUTS = {  # name: (codec, chunks, shards)
    "zstd 1024²": ("zstd", (1024, 1024), None),
    "blosc-lz4 1024²": ("blosc-lz4", (1024, 1024), None),
    "zstd 256² in 2048² shards": ("zstd", (256, 256), (2048, 2048)),
    "uncompressed 1024²": ("none", (1024, 1024), None),
}


def readers(path: Path):  # type: ignore[no-untyped-def]
    import zarr

    from blockdist.storage import ChunkFiles, EncodedChunks, locate, open_counted, read_into

    ref = locate(path)
    array, store = open_counted(ref)
    dtype = np.dtype(array.dtype)
    direct = EncodedChunks.open(ref, array, store, dtype, False) or ChunkFiles.open(ref, array, store, dtype, False)
    out = {"zarr": lambda sel, buf: read_into(array, sel, buf), "blockdist": lambda sel, buf: direct.read(sel, buf)}
    try:
        import zarrs  # noqa: F401

        with zarr.config.set({"codec_pipeline.path": "zarrs.ZarrsCodecPipeline"}):
            rs = zarr.open_array(str(path), mode="r")

        def with_zarrs(sel, buf):  # type: ignore[no-untyped-def]
            with zarr.config.set({"codec_pipeline.path": "zarrs.ZarrsCodecPipeline"}):
                read_into(rs, sel, buf)

        out["zarrs"] = with_zarrs
    except ImportError:
        pass
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2048)
    parser.add_argument("--cols", type=int, default=8192)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "decode.json")
    args = parser.parse_args()
    from blockdist.storage import output_compressors
    from blockdist.storage.random import random_matrix

    folder = Path(tempfile.mkdtemp(prefix="blockdist-decode-"))
    results = []
    print(f"load average {os.getloadavg()[0]:.2f}; {args.rows}×{args.cols} float64 "
          f"({args.rows * args.cols * 8 / 2**20:.0f} MiB) per layout, read in {args.rows}×2048 panels")
    try:
        for name, (codec, chunks, shards) in LAYOUTS.items():
            path = folder / f"{codec}-{chunks[0]}.zarr"
            random_matrix(path, (args.rows, args.cols), chunks, seed=1, compressors=output_compressors(codec, None),
                          shards=shards)
            stored = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            panel = np.empty((args.rows, 2048))
            expected = np.empty((args.rows, args.cols))
            tools = readers(path)
            tools["zarr"]((slice(0, args.rows), slice(0, args.cols)), expected)
            best: dict[str, tuple[float, float]] = {}
            for round_ in range(args.repeat):
                for tool in (list(tools) if round_ % 2 == 0 else list(reversed(tools))):
                    wall = cpu = 0.0
                    for c0 in range(0, args.cols, 2048):
                        sel = (slice(0, args.rows), slice(c0, min(args.cols, c0 + 2048)))
                        buf = panel[:, : sel[1].stop - c0]
                        t, p = time.perf_counter(), time.process_time()
                        tools[tool](sel, buf)
                        wall += time.perf_counter() - t
                        cpu += time.process_time() - p
                        np.testing.assert_array_equal(buf, expected[sel])
                    old = best.get(tool)
                    best[tool] = (min(wall, old[0]), min(cpu, old[1])) if old else (wall, cpu)
            nbytes = args.rows * args.cols * 8
            for tool, (wall, cpu) in best.items():
                results.append({"layout": name, "reader": tool, "wall_seconds": wall, "cpu_seconds": cpu,
                                "gb_per_wall_second": nbytes / wall / 1e9, "gb_per_cpu_second": nbytes / cpu / 1e9,
                                "stored_bytes": stored, "decoded_bytes": nbytes})
            shutil.rmtree(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{'layout':28} {'reader':10} {'GB/s wall':>10} {'GB/s CPU':>10}")
    for r in results:
        print(f"{r['layout']:28} {r['reader']:10} {r['gb_per_wall_second']:10.2f} {r['gb_per_cpu_second']:10.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": args.rows, "cols": args.cols, "load_average": os.getloadavg(),
                                    "results": results}, indent=2))


if __name__ == "__main__":
    main()
