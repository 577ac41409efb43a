#!/usr/bin/env python
"""Multiply two Zarr matrices with blockdist on a Dask cluster made of MPI ranks.

With dask-mpi, one MPI job is the whole cluster: rank 0 runs the Dask scheduler,
rank 1 runs the rest of this script (the client), and every other rank runs a worker::

    mpirun -np 6 python deploy/hpc/mpi_matmul.py A.zarr B.zarr C.zarr --nthreads 8
    srun python deploy/hpc/mpi_matmul.py ...        # inside a SLURM job: mpi_matmul.sh

Needs ``pip install dask-mpi mpi4py`` (mpi4py built against the site's MPI) and
blockdist on every node. The arrays must be on a filesystem (or object store) that every
rank can read.

``--tls-config deploy/tls/dask-tls.yaml`` (with certificates from make-certs.sh, at the
paths that file names) makes every connection mutual TLS; otherwise the ranks talk plain
TCP, which is fine only on a network nobody else can reach. The dashboard listens on the
scheduler node's loopback: ``ssh -L 8787:127.0.0.1:8787 NODE``.
"""

from __future__ import annotations

import argparse
import sys
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run `blockdist matmul A B OUT` on a Dask cluster of MPI ranks "
        "(rank 0 scheduler, rank 1 client, ranks 2+ workers)."
    )
    parser.add_argument("a", metavar="A", help="Zarr array m×k")
    parser.add_argument("b", metavar="B", help="Zarr array k×n")
    parser.add_argument("out", metavar="OUT", help="Zarr array to create, m×n")
    parser.add_argument("--nthreads", type=int, default=1,
                        help="threads per worker rank (default 1; one BLAS thread each)")
    parser.add_argument("--memory-limit", default="auto",
                        help="memory per worker rank, e.g. 60GiB (default: auto)")
    parser.add_argument("--memory", metavar="SIZE",
                        help="blockdist's memory budget per worker (default: the workers' limit)")
    parser.add_argument("--interface", help="network interface, e.g. ib0 (default: the host's)")
    parser.add_argument("--local-directory", default="", help="node-local scratch for workers")
    parser.add_argument("--tls-config", metavar="YAML",
                        help="Dask TLS configuration, e.g. deploy/tls/dask-tls.yaml")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    return parser.parse_args(argv)


def configure(args: argparse.Namespace) -> str | None:
    """Set Dask's configuration on every rank; return the protocol to use."""
    import dask.config

    # Tiles are re-read from Zarr, never spilled to disk.
    dask.config.set({
        "distributed.worker.memory.target": False,
        "distributed.worker.memory.spill": False,
    })
    if not args.tls_config:
        return None
    import yaml

    with open(args.tls_config) as f:
        dask.config.update(dask.config.config, yaml.safe_load(f) or {}, priority="new")
    return "tls"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    protocol = configure(args)

    from dask_mpi import initialize
    from mpi4py import MPI

    # Ranks 0 and 2+ stay inside initialize() until the client (rank 1) finishes.
    initialize(
        interface=args.interface,
        nthreads=args.nthreads,
        memory_limit=args.memory_limit,
        local_directory=args.local_directory,
        dashboard_address="127.0.0.1:8787",
        protocol=protocol,
    )

    # Rank 1 from here on: the scheduler's address is in Dask's configuration now.
    from distributed import Client

    import blockdist
    from blockdist.runtime.security import security_from_options

    n_workers = MPI.COMM_WORLD.Get_size() - 2
    with Client(security=security_from_options()) as client:
        print(f"mpi_matmul: scheduler {client.scheduler.address}, waiting for {n_workers} "
              "workers", flush=True)
        client.wait_for_workers(n_workers, timeout=600)
        start = time.perf_counter()
        result = blockdist.matmul(args.a, args.b, args.out, client=client,
                                  memory=args.memory, overwrite=args.overwrite)
        seconds = time.perf_counter() - start
        print(f"mpi_matmul: wrote {result.shape[0]}×{result.shape[1]} {result.dtype} "
              f"to {args.out} in {seconds:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
