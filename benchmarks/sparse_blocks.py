"""Zero blocks that cost nothing: a block-diagonal or banded A (1/8 and 1/4 of its blocks stored)
times a dense B, both written with zarr's defaults (zstd; chunks holding only zeros not stored).

Usage (from the repository root)::

    python benchmarks/sparse_blocks.py [--size 8192] [--chunk 512] [--repeat 2]

On one local cluster of 2 worker processes × 1 thread, in one run and interleaved: blockdist
on A as zarr stored it (absent blocks neither read nor multiplied), blockdist on the same A
with every chunk written (the dense product), and dask.array (``da.from_zarr``, which reads
an absent chunk as its fill value and multiplies it), each result stored to Zarr. Beside
them, the floor: the present pairs' flops at the machine's BLAS rate (``reference.py``:
the best ``np.matmul`` of 4096² operands on both cores, at the start and the end) plus the
fixed start-up of a blockdist job (a 64² product on the same cluster). Writes
``benchmarks/results/sparse-blocks-SIZE.json`` and ``sparse-blocks-SIZE.md``. (Not ``sparse.py``: a
module of that name on the path is what dask imports as pydata's ``sparse``, and breaks it.)
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

#: A's patterns on a grid of g × g chunks: which chunk (I, J) is stored. Block-diagonal: 8 (or 4)
#: diagonal blocks of g/8 (g/4) chunks; banded: the diagonal and the g/8 − 1 (g/4 − 1) above it.
PATTERNS = {
    "block-diagonal, 1/8 of the blocks": lambda i, j, g: i // max(1, g // 8) == j // max(1, g // 8),
    "block-diagonal, 1/4 of the blocks": lambda i, j, g: i // max(1, g // 4) == j // max(1, g // 4),
    "banded, 1/8 of the blocks": lambda i, j, g: 0 <= j - i < max(1, g // 8),
    "banded, 1/4 of the blocks": lambda i, j, g: 0 <= j - i < max(1, g // 4),
}


def write_inputs(folder: Path, size: int, chunk: int) -> dict[str, tuple[Path, Path, float]]:
    """Each pattern's A twice (as zarr stores it, and with every chunk written) and one dense B."""
    import zarr

    rng = np.random.default_rng(0)
    grid = -(-size // chunk)
    zarr.create_array(str(folder / "b.zarr"), data=rng.standard_normal((size, size)), chunks=(chunk, chunk))
    made = {}
    for index, (name, stored) in enumerate(PATTERNS.items()):
        present = np.array([[stored(i, j, grid) for j in range(grid)] for i in range(grid)])
        # np.where, not a product: a negative number times 0 is −0.0, whose chunks zarr stores
        values = np.where(np.kron(present, np.ones((chunk, chunk), dtype=bool))[:size, :size],
                          rng.standard_normal((size, size)), 0.0)
        sparse, dense = folder / f"a{index}.zarr", folder / f"a{index}-dense.zarr"
        zarr.create_array(str(sparse), data=values, chunks=(chunk, chunk))  # zarr's defaults
        zarr.create_array(str(dense), data=values, chunks=(chunk, chunk), config={"write_empty_chunks": True})
        made[name] = (sparse, dense, float(present.mean()))
    return made


def warm_up(client, folder: Path, chunk: int) -> None:  # type: ignore[no-untyped-def]
    """Every tool once on a small product of the same kind, so that no timed run pays for the
    workers' first imports and codec set-up."""
    import zarr

    import blockdist

    edge = 4 * chunk
    x = np.kron(np.eye(4), np.ones((chunk, chunk)))
    zarr.create_array(str(folder / "warm-a.zarr"), data=x, chunks=(chunk, chunk))
    zarr.create_array(str(folder / "warm-b.zarr"), data=np.ones((edge, edge)), chunks=(chunk, chunk))
    blockdist.matmul(folder / "warm-a.zarr", folder / "warm-b.zarr", folder / "warm-c.zarr", client=client)
    dask_product(folder / "warm-a.zarr", folder / "warm-b.zarr", folder / "warm-d.zarr", chunk)


def timed(run) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def dask_product(a: Path, b: Path, out: Path, chunk: int) -> None:
    import dask.array as da
    import zarr

    x, y = da.from_zarr(str(a)), da.from_zarr(str(b))
    target = zarr.create_array(store=str(out), shape=(x.shape[0], y.shape[1]), chunks=(chunk, chunk),
                               dtype="float64", overwrite=True)
    (x @ y).store(target, lock=False)


def check(a: Path, b: Path, outputs: list[Path]) -> None:
    """A corner of every result against numpy."""
    import zarr

    corner = zarr.open_array(str(a))[:256] @ zarr.open_array(str(b))[:, :256]
    for out in outputs:
        np.testing.assert_allclose(zarr.open_array(str(out))[:256, :256], corner, rtol=1e-9, atol=1e-9)


def measure(client, made, folder: Path, args: argparse.Namespace) -> list[dict]:  # type: ignore[no-untyped-def]
    """Every pattern, every tool, ``repeat`` rounds (the tools' order alternating)."""
    import blockdist

    b = folder / "b.zarr"
    rows = []
    for name, (sparse, dense, share) in made.items():
        plan = blockdist.plan(sparse, b, workers=2, threads=1, memory="6GiB")
        assert plan.zero_blocks, f"{name}: every chunk of A is stored"
        runs = {"blockdist": lambda s=sparse: blockdist.matmul(s, b, folder / "c.zarr", client=client, overwrite=True),
                "blockdist, every chunk written": lambda d=dense: blockdist.matmul(
                    d, b, folder / "c-dense.zarr", client=client, overwrite=True),
                "dask.array": lambda s=sparse: dask_product(s, b, folder / "c-dask.zarr", args.chunk)}
        times: dict[str, list[float]] = {tool: [] for tool in runs}
        for round_ in range(args.repeat):
            for tool in (list(runs) if round_ % 2 == 0 else list(runs)[::-1]):
                times[tool].append(timed(runs[tool]))
        check(sparse, b, [folder / "c.zarr", folder / "c-dense.zarr", folder / "c-dask.zarr"])
        rows.append({"pattern": name, "stored_share": share, "flops_present": plan.flops_computed,
                     "flops_nominal": plan.flops, "bytes_read_plan": plan.bytes_read,
                     "times": times, "best": {tool: min(t) for tool, t in times.items()}})
    return rows


def codec_rates(chunk: int) -> dict[str, float]:
    """zstd's decode rate as tasks read chunks (``measure_decode``) and its encode rate (numcodecs at
    zarr's default level, one chunk of standard-normal values, best of 5): bytes a CPU-second."""
    from numcodecs import Zstd

    from blockdist.storage.throughput import measure_decode

    data = np.random.default_rng(1).standard_normal((chunk, chunk))
    codec, spent = Zstd(level=0), []
    for _ in range(5):
        start = time.process_time()
        codec.encode(data)
        spent.append(time.process_time() - start)
    return {"decode": measure_decode(size=2048)["zstd_read_bytes_per_second"], "encode": data.nbytes / min(spent)}


def io_floor(row: dict, size: int, rates: dict[str, float], cores: int = 2) -> float:
    """Seconds no plan can skip beside the flops: decoding the chunks the plan reads (B's dense
    ones meeting a stored A block, and A's stored ones) and encoding C, which is dense, on every core."""
    return row["bytes_read_plan"] / (rates["decode"] * cores) + size * size * 8 / (rates["encode"] * cores)


def table(rows: list[dict], floor: dict, args: argparse.Namespace, load: tuple[float, float]) -> str:
    rate, startup = floor["blas_gflops"], floor["startup_seconds"]
    codecs = floor["zstd_bytes_per_cpu_second"]
    lines = [f"# A with absent blocks · dense B: {args.size}², chunks {args.chunk}², zarr's defaults (zstd)", "",
             f"float64, 2 workers × 1 thread. BLAS reference {rate:.1f} GFLOP/s (best np.matmul of 4096² on both "
             f"cores, start and end of the run), blockdist start-up {startup:.2f} s (a 64² product on the same "
             f"cluster); zstd {codecs['decode'] / 1e9:.2f} GB/s decode, {codecs['encode'] / 1e9:.2f} GB/s encode a "
             f"CPU-second. Load average {load[0]:.2f} at the start, {load[1]:.2f} at the end. Best of {args.repeat}. "
             f"Command: `python benchmarks/sparse_blocks.py --size {args.size} --chunk {args.chunk} --repeat {args.repeat}`",
             "", "The floor with I/O adds what no plan skips: decoding the chunks the plan reads and encoding "
             "C (dense) at zstd's rates on both cores.", "",
             "| A | stored | present pairs' flops ÷ BLAS + start-up | blockdist | × floor | floor with I/O | × floor "
             "with I/O | every chunk written | dask.array | × dask |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        best = row["best"]
        floor_s = row["flops_present"] / rate / 1e9 + startup
        with_io = floor_s + io_floor(row, args.size, codecs)
        lines.append(f"| {row['pattern']} | {row['stored_share']:.1%} | {floor_s:.2f} s | {best['blockdist']:.2f} s | "
                     f"{best['blockdist'] / floor_s:.2f} | {with_io:.2f} s | {best['blockdist'] / with_io:.2f} | "
                     f"{best['blockdist, every chunk written']:.2f} s | "
                     f"{best['dask.array']:.2f} s | {best['blockdist'] / best['dask.array']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    import dask
    import zarr
    from distributed import Client, LocalCluster
    from reference import blas_rate

    import blockdist

    load_start = os.getloadavg()[0]
    reference = [blas_rate("float64", runs=3)["best_gflops"]]
    folder = Path(tempfile.mkdtemp(prefix="blockdist-sparse-"))
    try:
        made = write_inputs(folder, args.size, args.chunk)
        zarr.create_array(str(folder / "tiny.zarr"), data=np.ones((64, 64)), chunks=(64, 64))
        with dask.config.set({"distributed.worker.memory.spill": False, "distributed.worker.memory.target": False}), \
                LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address="127.0.0.1:0",
                             memory_limit="6GiB") as cluster, Client(cluster) as client:
            warm_up(client, folder, args.chunk)
            startup = min(timed(lambda: blockdist.matmul(folder / "tiny.zarr", folder / "tiny.zarr",
                                                         folder / "tiny-c.zarr", client=client, overwrite=True))
                          for _ in range(3))
            rows = measure(client, made, folder, args)
        reference.append(blas_rate("float64", runs=3)["best_gflops"])
        floor = {"blas_gflops": max(reference), "blas_runs": reference, "startup_seconds": startup,
                 "zstd_bytes_per_cpu_second": codec_rates(args.chunk)}
        text = table(rows, floor, args, (load_start, os.getloadavg()[0]))
        print(text)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"sparse-blocks-{args.size}.md").write_text(text)
        (args.out / f"sparse-blocks-{args.size}.json").write_text(json.dumps(
            {"size": args.size, "chunk": args.chunk, "repeat": args.repeat, "floor": floor, "rows": rows}, indent=2))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
