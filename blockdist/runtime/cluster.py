"""Get a Dask client: the caller's, one for a scheduler address, or a local cluster.

A local cluster runs worker processes (one per core by default, one thread each, so that
Dask threads × BLAS threads never exceed the cores) and never spills: a tile is re-read
from Zarr rather than written to a worker's disk (:mod:`.local`). A scheduler that cannot be
reached is diagnosed in one line (:mod:`.scheduler`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import psutil

from ..errors import InputError
from ..planning import ClusterShape, format_size
from . import settings
from .local import NO_SPILLING, local_cluster
from .scheduler import open_client

if TYPE_CHECKING:  # distributed loads only when a cluster is used
    from distributed import Client

__all__ = ["NO_SPILLING", "connect", "local_shape", "shape_of"]


def local_shape(workers: int | None, threads: int | None, memory: int | None) -> ClusterShape:
    """The shape a local cluster started with these options will have."""
    cores = os.cpu_count() or 1
    threads = threads or settings.get("threads") or 1
    workers = workers or settings.get("workers") or max(1, cores // threads)
    if memory is None:
        memory = int(psutil.virtual_memory().total * settings.get("local-memory-share") / workers)
    return ClusterShape(workers, threads, memory)


def shape_of(client: Client, memory: int | None) -> ClusterShape:
    """Workers, threads and usable memory of a running cluster, checked against ``memory``."""
    info = client.scheduler_info(n_workers=-1)["workers"]
    if not info:  # a cluster scaling up, or a worker being restarted by its nanny
        try:
            client.wait_for_workers(1, timeout=settings.get("wait-for-workers"))
        except TimeoutError:
            raise InputError(f"the cluster at {client.scheduler.address} has no workers "
                             f"(waited {settings.get('wait-for-workers')} s)") from None
        info = client.scheduler_info(n_workers=-1)["workers"]
    threads = max(w["nthreads"] for w in info.values())
    limits = [w.get("memory_limit") or 0 for w in info.values()]
    limit = min(limits) if all(limits) else 0
    if memory is None:
        memory = limit or int(psutil.virtual_memory().total * settings.get("local-memory-share") / len(info))
    elif limit and memory > limit:
        raise InputError(
            f"a memory budget of {format_size(memory)} per worker exceeds the workers' memory "
            f"limit of {format_size(limit)}; give --memory {format_size(limit)} or less"
        )
    return ClusterShape(len(info), threads, memory)


@contextlib.contextmanager
def connect(
    client: Client | str | None,
    shape: ClusterShape | None = None,
    security: object | None = None,
    timeout: float | None = None,
) -> Iterator[Client]:
    """Yield a client; close only what this function started.

    ``security`` (a ``distributed.security.Security``) is used to reach a scheduler address,
    within ``timeout`` seconds (default: the ``blockdist.connect-timeout`` setting).
    """
    from distributed import Client

    if isinstance(client, Client):
        yield client
        return
    if isinstance(client, str):
        if security is None:  # Dask's TLS configuration, or a clear refusal for tls:// without it
            from .security import security_from_options

            security = security_from_options(scheduler=client)
        with open_client(client, security, timeout or settings.get("connect-timeout")) as remote:
            yield remote
        return
    assert shape is not None
    with local_cluster(shape, settings.get("dashboard-address")) as cluster, \
            Client(cluster, set_as_default=False) as local:
        yield local
