"""One writer per output: a job holds the output's lease while it runs.

The lease (:class:`~blockdist.storage.lease.LeaseFile`, beside the output) names its job,
owner (host and process), product and start, and a heartbeat the job renews every quarter
of ``blockdist.lease-timeout`` (30 s). Another job on the same output — ``--overwrite``,
``--resume`` or a different product — is refused (:class:`~blockdist.errors.OutputBusyError`,
exit 2) while the heartbeat is younger than the timeout, naming the owner and the ages. A
lease whose holder died (its heartbeat is older) is taken over; ``force=True`` (``--force``)
takes it over at once. The lease is removed when its job ends, however it ends.

A holder that finds its lease taken over (another job forced it) stops renewing it and its
job fails, so that it does not go on writing beside the new owner.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from ..errors import OutputBusyError
from ..storage import ArrayRef
from ..storage.lease import LeaseFile
from . import settings


def _ago(seconds: float) -> str:
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def live_holder(lease: dict[str, Any] | None, timeout: float, now: float | None = None) -> dict[str, Any] | None:
    """The lease if it is held by a live job (its heartbeat younger than ``timeout``), else None."""
    if not lease or "heartbeat" not in lease:
        return None
    now = time.time() if now is None else now
    return lease if now - float(lease["heartbeat"]) < timeout else None


def busy_error(out: ArrayRef, lease: dict[str, Any], timeout: float) -> OutputBusyError:
    now = time.time()
    age, beat = now - float(lease.get("started", now)), now - float(lease["heartbeat"])
    return OutputBusyError(
        f"{out} is being written by job {lease.get('job')} ({lease.get('product', 'a product')}, owner "
        f"{lease.get('owner')}, started {_ago(age)}, last heartbeat {_ago(beat)}); wait for it to end, or, if "
        f"that job is dead, run again in {max(0.0, timeout - beat):.0f} s or with --force")


def check_free(out: ArrayRef, force: bool) -> None:
    """Refuse now, before any work, an output another live job holds (``start`` takes the lease)."""
    if force:
        return
    timeout = float(settings.get("lease-timeout"))
    holder = live_holder(LeaseFile(out).read(), timeout)
    if holder is not None:
        raise busy_error(out, holder, timeout)


class Lease:
    """The lease a running job holds on its output, renewed by a thread until released."""

    def __init__(self, out: ArrayRef, job: str, product: str, *, force: bool = False) -> None:
        self.file = LeaseFile(out)
        self.out, self.job = out, job
        self.timeout = float(settings.get("lease-timeout"))
        self.lost: str | None = None  #: why the lease is no longer this job's
        now = time.time()
        self.value = {"job": job, "owner": f"{socket.gethostname()}:{os.getpid()}", "product": product,
                      "started": now, "heartbeat": now, "timeout": self.timeout}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"blockdist-lease-{job}", daemon=True)
        try:
            self._acquire(force)
            self._thread.start()
        except BaseException:  # Ctrl-C inside the create or the start: no one else would remove it
            self._delete_if_ours()
            raise

    def _acquire(self, force: bool) -> None:
        if self.file.create(self.value):
            return
        current = self.file.read()
        holder = live_holder(current, self.timeout)
        if holder is not None and not force:
            raise busy_error(self.out, holder, self.timeout)
        # Dead (or forced): take it over. Of two takers, the second deletes the first's new
        # lease only if it read the dead one before; the renewal then finds it lost.
        self.file.delete()
        if not self.file.create(self.value):
            current = self.file.read() or {}
            raise busy_error(self.out, live_holder(current, self.timeout) or current, self.timeout) \
                if current.get("heartbeat") else OutputBusyError(f"{self.out}: another job took its lease first")

    def _renew(self) -> None:
        while not self._stop.wait(self.timeout / 4):
            try:
                current = self.file.read()
                if not current or current.get("job") != self.job:
                    self.lost = (f"the lease on {self.out} was taken over by job "
                                 f"{(current or {}).get('job')} ({(current or {}).get('owner')})")
                    return
                self.value["heartbeat"] = time.time()
                self.file.replace(self.value)
            except Exception:  # noqa: BLE001 - a storage hiccup: try again at the next beat
                continue

    def release(self) -> None:
        """Stop renewing and remove the lease, if it is still this job's."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._delete_if_ours()

    def _delete_if_ours(self) -> None:
        try:
            if (self.file.read() or {}).get("job") == self.job:
                self.file.delete()
        except Exception:  # noqa: BLE001 - left behind, it goes stale after the timeout
            pass
