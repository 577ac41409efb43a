#!/usr/bin/env python
"""Multiply two Zarr matrices with blockdist on Dask workers that SLURM starts.

Run it on a login node (or inside a small batch job) where blockdist and dask-jobqueue
are installed::

    python deploy/hpc/slurm_matmul.py /scratch/a.zarr /scratch/b.zarr /scratch/c.zarr --jobs 2

It starts a Dask scheduler in this process, submits ``--jobs`` SLURM jobs that each run
the workers described in ``jobqueue.yaml`` (next to this script, or ``--config``), waits
for them, runs :func:`blockdist.matmul` on them and cancels the jobs when done.

Every connection is mutual TLS. By default the certificates are made for this run
(``Security.temporary()``, needs the ``cryptography`` package) and handed to the workers
through ``shared-temp-directory``, a folder on the shared filesystem that only you can
read. ``--tls-dir DIR`` uses certificates from ``deploy/tls/make-certs.sh`` instead;
``--no-tls`` turns TLS off (only on a network nobody else can reach).

``--dry-run`` prints the SLURM job script and exits: no SLURM needed, nothing submitted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run `blockdist matmul A B OUT` on Dask workers started by SLURM."
    )
    parser.add_argument("a", metavar="A", help="Zarr array m×k (a path every node can read)")
    parser.add_argument("b", metavar="B", help="Zarr array k×n")
    parser.add_argument("out", metavar="OUT", help="Zarr array to create, m×n")
    parser.add_argument("--jobs", type=int, default=1, help="SLURM jobs to submit (default 1)")
    parser.add_argument("--config", type=Path, default=HERE / "jobqueue.yaml",
                        help="dask-jobqueue configuration (default: jobqueue.yaml here)")
    parser.add_argument("--memory", metavar="SIZE",
                        help="blockdist's memory budget per worker (default: the workers' limit)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--wait", type=float, default=3600.0, metavar="SECONDS",
                        help="how long to wait for the jobs to start (default 3600)")
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument("--tls-dir", type=Path, metavar="DIR",
                     help="certificates from deploy/tls/make-certs.sh (on the shared filesystem)")
    tls.add_argument("--no-tls", action="store_true", help="plain TCP: only on a private network")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the SLURM job script and exit; submit nothing")
    return parser.parse_args(argv)


def label_placeholders(script: str, address: str, certificates: str) -> str:
    """The job script with a note, after its first line, on what in it is this rendering's only."""
    first, _, rest = script.partition("\n")
    note = (f"# --dry-run: placeholders of this rendering, not of a real run:\n"
            f"#   scheduler address {address} (a real run starts its own and fills in its address)\n"
            f"#   certificate paths under {certificates} (a real run writes them to the shared folder)\n")
    return f"{first}\n{note}{rest}"


def load_config(path: Path) -> None:
    """Merge a jobqueue YAML file into Dask's configuration."""
    import dask.config
    import yaml

    with open(path) as f:
        data = yaml.safe_load(f) or {}
    dask.config.update(dask.config.config, data, priority="new")


def make_security(args: argparse.Namespace):
    """The cluster's Security: from --tls-dir, temporary, or None with --no-tls."""
    from distributed.security import Security

    if args.no_tls:
        return None
    if args.tls_dir is None:
        return Security.temporary()
    d = args.tls_dir.expanduser().resolve()
    files = {
        "tls_ca_file": d / "ca.pem",
        "tls_scheduler_cert": d / "scheduler.pem", "tls_scheduler_key": d / "scheduler-key.pem",
        "tls_worker_cert": d / "worker.pem", "tls_worker_key": d / "worker-key.pem",
        "tls_client_cert": d / "client.pem", "tls_client_key": d / "client-key.pem",
    }
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        sys.exit(f"slurm_matmul: --tls-dir {d} lacks {', '.join(missing)} (see make-certs.sh)")
    return Security(**{k: str(v) for k, v in files.items()}, require_encryption=True)


def make_cluster(args: argparse.Namespace, shared: str | None = None):
    """An SLURMCluster from the configuration; ``shared`` overrides shared-temp-directory."""
    import dask.config
    from dask_jobqueue import SLURMCluster

    security = make_security(args)
    if security is not None and args.tls_dir is None:
        # Temporary certificates go to the workers through this folder: yours alone.
        if shared is None:
            shared = dask.config.get("jobqueue.slurm.shared-temp-directory", None)
            shared = os.path.expanduser(os.path.expandvars(shared or "~/.blockdist/tls"))
        os.makedirs(shared, mode=0o700, exist_ok=True)
        os.chmod(shared, 0o700)
        return SLURMCluster(security=security, shared_temp_directory=shared)
    return SLURMCluster(security=security)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_config(args.config)

    if args.dry_run:
        # Rendering the job script starts a scheduler briefly: keep it on loopback, and
        # any temporary certificates in a folder removed afterwards.
        import gc
        import shutil
        import tempfile

        import dask.config

        loopback = {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}
        tmp = tempfile.mkdtemp(prefix="slurm-matmul-")
        try:
            with dask.config.set({"jobqueue.slurm.scheduler-options": loopback}), \
                    make_cluster(args, shared=tmp) as cluster:
                print(label_placeholders(cluster.job_script(), cluster.scheduler_address, tmp))
            del cluster
            gc.collect()  # dask-jobqueue deletes its certificate files when collected
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return 0

    from distributed import Client

    import blockdist

    with make_cluster(args) as cluster, Client(cluster) as client:
        cluster.scale(jobs=args.jobs)
        n_workers = len(cluster.plan)  # every worker process of every job asked for
        print(f"slurm_matmul: scheduler {cluster.scheduler_address}, "
              f"dashboard {client.dashboard_link}", flush=True)
        print(f"slurm_matmul: waiting for {args.jobs} job(s), {n_workers} workers", flush=True)
        client.wait_for_workers(n_workers, timeout=args.wait)
        start = time.perf_counter()
        result = blockdist.matmul(args.a, args.b, args.out, client=client,
                                  memory=args.memory, overwrite=args.overwrite)
        seconds = time.perf_counter() - start
        print(f"slurm_matmul: wrote {result.shape[0]}×{result.shape[1]} {result.dtype} "
              f"to {args.out} in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
