"""Panel-read throughput from S3: blockdist's reading path next to a plain concurrent get.

Starts moto's S3 server on 127.0.0.1 in a separate process (so it does not share this
process's GIL), writes a float64 matrix in uncompressed chunks, then reads it panel by panel

* through blockdist: ``store.locate`` + ``store.open_counted`` + ``array[rows, cols]``, the
  way a task reads its k-panels, once with each backend (obstore, s3fs);
* through obstore directly: ``get_async`` of the same chunk objects, at most
  ``async.concurrency`` in flight, panel by panel (the bound blockdist keeps too);

and prints the figures and writes them to ``benchmarks/results/s3_read.json``. An emulator
is slow (about 200 MB/s), so this compares clients, not S3 itself::

    python benchmarks/s3_read.py [--size 4096] [--chunk 512] [--panel 2048,1024] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import zarr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from blockdist.storage import locate, open_counted  # noqa: E402

KEY, SECRET, REGION, BUCKET = "AKIABENCHMARK0000001", "benchmark-dummy-secret", "us-east-1", "bench"
SERVER = """
import logging, sys
logging.getLogger("werkzeug").setLevel(logging.ERROR)
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print("http://%s:%d" % server.get_host_and_port(), flush=True)
sys.stdin.read()
"""


def start_moto() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def options(endpoint: str, backend: str) -> dict[str, str]:
    return {"endpoint_url": endpoint, "access_key_id": KEY, "secret_access_key": SECRET,
            "region": REGION, "backend": backend}


def panels(size: int, panel: tuple[int, int]) -> list[tuple[slice, slice]]:
    return [(slice(r, min(size, r + panel[0])), slice(c, min(size, c + panel[1])))
            for r in range(0, size, panel[0]) for c in range(0, size, panel[1])]


def read_blockdist(url: str, opts: dict[str, str],
                   selections: list[tuple[slice, slice]]) -> tuple[float, int]:
    array, counting = open_counted(locate(url, storage_options=opts))
    start = time.perf_counter()
    for selection in selections:
        np.asarray(array[selection])
    return time.perf_counter() - start, counting.bytes_read


def read_zarr(endpoint: str, prefix: str, selections: list[tuple[slice, slice]]) -> tuple[float, int]:
    """zarr's own ObjectStore, without blockdist's wrapper (to see what the wrapper costs)."""
    from obstore.store import S3Store
    from zarr.storage import ObjectStore

    store = ObjectStore(S3Store(BUCKET, prefix=prefix, endpoint=endpoint, access_key_id=KEY,
                                secret_access_key=SECRET, region=REGION, client_options={"allow_http": True}),
                        read_only=True)
    array = zarr.open_array(store, mode="r")
    start = time.perf_counter()
    total = sum(np.asarray(array[selection]).nbytes for selection in selections)
    return time.perf_counter() - start, total


def read_plain(endpoint: str, prefix: str, chunk: int, selections: list[tuple[slice, slice]],
               limit: int) -> tuple[float, int]:
    import obstore
    from obstore.store import S3Store

    store = S3Store(BUCKET, prefix=prefix, endpoint=endpoint, access_key_id=KEY, secret_access_key=SECRET,
                    region=REGION, client_options={"allow_http": True})
    keys = [[f"c/{i}/{j}" for i in range(rows.start // chunk, -(-rows.stop // chunk))
             for j in range(cols.start // chunk, -(-cols.stop // chunk))] for rows, cols in selections]

    async def run() -> int:
        semaphore, total = asyncio.Semaphore(limit), 0

        async def get(key: str) -> int:
            async with semaphore:
                response = await obstore.get_async(store, key)
                return len(await response.bytes_async())

        for panel in keys:
            total += sum(await asyncio.gather(*(get(key) for key in panel)))
        return total

    start = time.perf_counter()
    total = asyncio.run(run())
    return time.perf_counter() - start, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4096, help="the matrix is SIZE×SIZE float64")
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--panel", default="2048,1024", help="rows,cols of one panel read")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "s3_read.json")
    args = parser.parse_args()
    panel = tuple(int(x) for x in args.panel.split(","))
    limit = zarr.config.get("async.concurrency")
    server, endpoint = start_moto()
    try:
        url = f"s3://{BUCKET}/m.zarr"
        import boto3

        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                     region_name=REGION).create_bucket(Bucket=BUCKET)
        array = zarr.create_array(locate(url, storage_options=options(endpoint, "obstore")).store,
                                  shape=(args.size, args.size), chunks=(args.chunk, args.chunk),
                                  dtype="float64", compressors=None, fill_value=0)
        rng = np.random.default_rng(0)
        for rows, cols in panels(args.size, (args.chunk * 4, args.size)):
            array[rows, cols] = rng.standard_normal((rows.stop - rows.start, cols.stop - cols.start))
        selections = panels(args.size, panel)  # type: ignore[arg-type]
        readers = {
            "plain obstore get": lambda: read_plain(endpoint, "m.zarr", args.chunk, selections, limit),
            "zarr ObjectStore": lambda: read_zarr(endpoint, "m.zarr", selections),
            "blockdist (obstore)": lambda: read_blockdist(url, options(endpoint, "obstore"), selections),
            "blockdist (s3fs)": lambda: read_blockdist(url, options(endpoint, "s3fs"), selections),
        }
        for reader in readers.values():  # warm up: connections, the server's caches
            reader()
        runs: dict[str, list[float]] = {name: [] for name in readers}
        nbytes = 0
        for _ in range(args.repeat):  # interleaved, so drifts of the machine hit all alike
            for name, reader in readers.items():
                seconds, nbytes = reader()
                runs[name].append(nbytes / seconds / 1e6)
    finally:
        server.kill()
        server.wait()
    plain = statistics.median(runs["plain obstore get"])
    result = {
        "what": "panel-read throughput from moto's S3 server on 127.0.0.1 (MB/s, median of runs)",
        "matrix": f"{args.size}x{args.size} float64, chunks {args.chunk}x{args.chunk}, uncompressed",
        "panel": f"{panel[0]}x{panel[1]}", "bytes_per_run": nbytes, "async_concurrency": limit,
        "repeat": args.repeat,
        "machine": f"{platform.node()} {os.cpu_count()} CPUs, python {platform.python_version()}",
        "command": "python benchmarks/s3_read.py " + " ".join(sys.argv[1:]),
        "mb_per_s": {name: round(statistics.median(values), 1) for name, values in runs.items()},
        "runs_mb_per_s": {name: [round(v, 1) for v in values] for name, values in runs.items()},
        "share_of_plain_get": {name: round(statistics.median(values) / plain, 3)
                               for name, values in runs.items()},
    }
    for name, values in runs.items():
        median = statistics.median(values)
        print(f"{name:22s} {median:8.1f} MB/s  ({median / plain:.0%} of plain get)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
