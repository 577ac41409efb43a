"""Start the local cluster blockdist runs on when no scheduler is given.

Three things a plain ``LocalCluster(...)`` gets wrong for a command or a script:

* worker processes are started by running the main script again; a script without an
  ``if __name__ == "__main__":`` guard starts clusters without end and ends in hundreds of
  lines of bootstrapping errors, so such a script is refused in one line before any process
  starts (:func:`check_main_is_guarded`);
* Ctrl-C reaches every process of the terminal's process group; the workers ignore it, so
  the one that handles it is blockdist, which cancels the job and saves its manifest;
* a busy dashboard port makes distributed warn; a free one is taken instead, and the job
  prints the link.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..errors import InputError
from ..planning import ClusterShape

if TYPE_CHECKING:
    from distributed import LocalCluster

NO_SPILLING = {
    "distributed.worker.memory.target": False,
    "distributed.worker.memory.spill": False,
    "distributed.worker.memory.pause": False,
}


def _has_main_guard(source: str) -> bool:
    """Whether module-level code tests ``__name__ == "__main__"`` (either way round)."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
            names = [node.test.left, *node.test.comparators]
            if any(isinstance(n, ast.Name) and n.id == "__name__" for n in names) and any(
                    isinstance(n, ast.Constant) and n.value == "__main__" for n in names):
                return True
    return False


def check_main_is_guarded() -> None:
    """Refuse to start worker processes from a script they would run again without end."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    spec = getattr(main, "__spec__", None)
    if path is None or (spec is not None and spec.name.endswith("__main__")):
        return  # an interactive session, python -c, or a package's __main__ (not run again)
    try:
        with open(path, encoding="utf-8") as file:
            guarded = _has_main_guard(file.read())
    except (OSError, SyntaxError, ValueError):
        return
    if not guarded:
        raise InputError(f'{path} starts a local cluster at import: its worker processes run the script again. Put '
                         'the code that calls blockdist under `if __name__ == "__main__":`')


def dashboard_address(wanted: str) -> str:
    """``wanted`` if its port is free on this machine, else the same host with a port the OS picks."""
    host, _, port = wanted.rpartition(":")
    with socket.socket() as probe:
        try:
            probe.bind((host or "127.0.0.1", int(port)))
        except (OSError, ValueError):
            return f"{host or '127.0.0.1'}:0"
    return wanted


@contextlib.contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by the processes started now
    except ValueError:  # not the main thread: nothing to arrange
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def local_cluster(shape: ClusterShape, dashboard: str) -> Iterator[LocalCluster]:
    """A cluster of ``shape.workers`` worker processes on 127.0.0.1 that never spill."""
    import dask
    from distributed import LocalCluster

    check_main_is_guarded()
    with dask.config.set(NO_SPILLING):
        with _workers_ignore_ctrl_c():
            # Workers log errors only: a cancelled job's tasks are not news (the job says what happened).
            cluster = LocalCluster(n_workers=shape.workers, threads_per_worker=shape.threads, processes=True,
                                   memory_limit=shape.memory_per_worker, host="127.0.0.1",
                                   # a failed task reaches the job as its exception, which blockdist
                                   # words; the workers' own ERROR lines would repeat it as a traceback
                                   dashboard_address=dashboard_address(dashboard), silence_logs=logging.CRITICAL)
        with cluster:
            yield cluster
