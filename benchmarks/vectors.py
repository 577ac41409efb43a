"""Matrix–vector products are bound by reading A: blockdist's ``A @ v`` and ``A @ V`` (V n×r,
r small) against a plain parallel read of A and against the peers, on the same Zarr input, one
cluster (2 worker processes × 1 thread), in one run::

    python benchmarks/vectors.py [--rows 16384] [--cols 16384] [--chunk 1024] [--codec zstd] [--r 8]

The plain read is what storage gives: one task per worker reading its half of A's chunk rows
with zarr and dropping them; the same read decoded by blockdist's own reader into a reused
buffer (the ceiling of any one-pass product over these chunks: read and decode, no
arithmetic); and the chunk files' stored bytes read undecoded (the storage alone). Each figure is the best of
``--repeats`` runs, alternating; A's bytes are counted as stored (compressed) and as decoded.
The peers: ``dask.array.from_zarr(A) @ v`` (v in memory) on the same cluster, and numpy
reading A whole and multiplying (one process). Writes ``results/vectors-CODEC.json`` and ``.md``.
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
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
import zarr  # noqa: E402
from run import _warm, bench_cluster  # noqa: E402  (benchmarks/run.py)

import blockdist  # noqa: E402


def _read_band(path: str, r0: int, r1: int, chunk: int) -> int:
    """Read rows r0:r1 of A with zarr, a chunk row at a time, and drop them (the plain read)."""
    array = zarr.open_array(path, mode="r")
    for lo in range(r0, r1, chunk):
        array[lo : min(lo + chunk, r1), :]
    return (r1 - r0) * array.shape[1] * array.dtype.itemsize


def _decode_band(path: str, r0: int, r1: int, chunk: int) -> int:
    """Decode rows r0:r1 of A with blockdist's own reader into one reused buffer (no product)."""
    from blockdist.storage import EncodedChunks, locate, open_counted, read_into

    ref = locate(path)
    array, store = open_counted(ref)
    dtype = np.dtype(array.dtype)
    direct = EncodedChunks.open(ref, array, store, dtype, False)
    buffer = np.empty((chunk, array.shape[1]), dtype=dtype)
    for lo in range(r0, r1, chunk):
        hi = min(lo + chunk, r1)
        read_into(array, (slice(lo, hi), slice(0, array.shape[1])), buffer[: hi - lo], direct)
    return (r1 - r0) * array.shape[1] * dtype.itemsize


def _raw_band(path: str, r0: int, r1: int, chunk: int) -> int:
    """Read the stored bytes of A's chunk files for rows r0:r1, undecoded (the storage alone)."""
    total = 0
    for i in range(r0 // chunk, -(-r1 // chunk)):
        folder = Path(path) / "c" / str(i)
        for name in sorted(os.listdir(folder)):
            with open(folder / name, "rb") as file:
                total += len(file.read())
    return total


def plain_read(client: Any, path: str, rows: int, chunk: int, workers: int, reader: Any = _read_band) -> float:
    chunk_rows = -(-rows // chunk)
    edges = [min(rows, chunk * round(i * chunk_rows / workers)) for i in range(workers + 1)]
    start = time.perf_counter()
    futures = [client.submit(reader, path, lo, hi, chunk, pure=False) for lo, hi in zip(edges, edges[1:])]
    client.gather(futures)
    return time.perf_counter() - start


def stored_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and f.name != "zarr.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16384)
    parser.add_argument("--cols", type=int, default=16384)
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--codec", choices=("zstd", "none"), default="zstd")
    parser.add_argument("--r", type=int, default=8, help="columns of the thin block V")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--data", type=Path, default=None, help="folder for the inputs (default: a temporary one)")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"load average at the start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    folder = Path(args.data or tempfile.mkdtemp(prefix="blockdist-vectors-"))
    folder.mkdir(parents=True, exist_ok=True)
    m, n, chunk = args.rows, args.cols, args.chunk
    rng = np.random.default_rng(18)
    codec = None if args.codec == "none" else "auto"
    a_path = folder / "a.zarr"
    a_array = zarr.create_array(store=str(a_path), shape=(m, n), chunks=(chunk, chunk), dtype="f8",
                                compressors=codec, overwrite=True)
    for lo in range(0, m, chunk):  # written a chunk row at a time: never all of A in memory here
        a_array[lo : lo + chunk] = rng.standard_normal((min(chunk, m - lo), n))
    v, big_v = rng.standard_normal(n), rng.standard_normal((n, args.r))
    zarr.create_array(store=str(folder / "v.zarr"), data=v, chunks=(chunk,), overwrite=True)
    zarr.create_array(store=str(folder / "V.zarr"), data=big_v, chunks=(chunk, args.r), overwrite=True)
    decoded, stored = m * n * 8, stored_bytes(a_path)
    print(f"A: {m}×{n} float64, chunks {chunk}², codec {args.codec}: {decoded / 2**30:.2f} GiB decoded, "
          f"{stored / 2**30:.2f} GiB stored", flush=True)
    times: dict[str, list[float]] = {}
    checks: dict[str, float] = {}
    with bench_cluster(8 * 2**30) as client:
        client.run(_warm)
        workers = len(client.scheduler_info()["workers"])
        import dask.array as da

        def blockdist_product(b: str, out: str) -> float:
            start = time.perf_counter()
            result = blockdist.matmul(a_path, folder / b, folder / out, client=client, overwrite=True)
            took = time.perf_counter() - start
            expected_rows = 64
            got = result[:expected_rows]
            want = zarr.open_array(a_path)[:expected_rows] @ (v if b == "v.zarr" else big_v)
            checks[f"blockdist {b}"] = float(np.max(np.abs(got - want)))
            return took

        def dask_product() -> float:
            start = time.perf_counter()
            y = (da.from_zarr(str(a_path)) @ v).compute()
            took = time.perf_counter() - start
            checks["dask.array"] = float(np.max(np.abs(y[:64] - zarr.open_array(a_path)[:64] @ v)))
            return took

        runs = {
            "plain parallel read of A": lambda: plain_read(client, str(a_path), m, chunk, workers),
            "parallel read + decode, blockdist's reader, no product":
                lambda: plain_read(client, str(a_path), m, chunk, workers, _decode_band),
            "parallel read of the stored bytes, undecoded":
                lambda: plain_read(client, str(a_path), m, chunk, workers, _raw_band),
            "blockdist A @ v": lambda: blockdist_product("v.zarr", "av.zarr"),
            f"blockdist A @ V (r={args.r})": lambda: blockdist_product("V.zarr", "aV.zarr"),
            "dask.array from_zarr(A) @ v": dask_product,
        }
        for _ in range(args.repeats):
            for name, run in runs.items():
                times.setdefault(name, []).append(run())
                print(f"  {name}: {times[name][-1]:.2f} s", flush=True)
    if decoded <= 6 * 2**30:  # numpy: read A whole into this process, then multiply
        start = time.perf_counter()
        whole = zarr.open_array(a_path)[:]
        read = time.perf_counter() - start
        np.asarray(whole @ v)
        times["numpy: read A whole, then A @ v (1 process)"] = [time.perf_counter() - start]
        times["numpy: of which reading A"] = [read]
        del whole
    end_load = os.getloadavg()
    best = {name: min(values) for name, values in times.items()}
    ceiling = best["plain parallel read of A"]
    decode = best["parallel read + decode, blockdist's reader, no product"]
    rows = [{"run": name, "best_seconds": seconds, "all_seconds": times[name],
             "decoded_gib_per_second": decoded / seconds / 2**30, "stored_gib_per_second": stored / seconds / 2**30,
             "of_plain_read": ceiling / seconds, "of_read_and_decode": decode / seconds}
            for name, seconds in best.items()]
    result = {"shape": [m, n], "chunk": chunk, "codec": args.codec, "r": args.r, "decoded_bytes": decoded,
              "stored_bytes": stored, "workers": 2, "load_average_start": load, "load_average_end": end_load,
              "rows": rows, "max_abs_error_first_rows": checks, "cpu_count": os.cpu_count()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"vectors-{args.codec}.json").write_text(json.dumps(result, indent=2))
    lines = [f"# A·v and A·V: reading A once (A {m}×{n} float64, chunks {chunk}², {args.codec}; "
             f"{decoded / 2**30:.2f} GiB decoded, {stored / 2**30:.2f} GiB stored)", "",
             f"`python benchmarks/vectors.py --rows {m} --cols {n} --chunk {chunk} --codec {args.codec} --r {args.r}`; "
             f"load average {load[0]:.2f} at the start, {end_load[0]:.2f} at the end; 2 workers × 1 thread; best of "
             f"{args.repeats}.", "",
             "| run | best s | GiB/s decoded | GiB/s stored | of the plain (zarr) read | of read + decode |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['run']} | {row['best_seconds']:.2f} | {row['decoded_gib_per_second']:.2f} | "
                     f"{row['stored_gib_per_second']:.2f} | {row['of_plain_read']:.0%} | {row['of_read_and_decode']:.0%} |")
    lines += ["", f"max |error| on the first 64 rows against numpy: {checks}"]
    (args.out / f"vectors-{args.codec}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.data is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
