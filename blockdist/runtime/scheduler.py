"""Reach a Dask scheduler, or say in one line why it cannot be reached.

A failed connection is diagnosed by what the address does when asked plainly: nothing
listening (connection refused), no answer at all, a TLS scheduler reached with ``tcp://``, or a
TLS handshake refused (certificates from another CA, a missing client certificate)::

    tcp://host:8786 ── refused ──────────────► "nothing is listening at …"
                    ── no route, no answer ──► "… does not answer …"
                    ── listens, says nothing ► "… may expect TLS: use tls://…"
    tls://host:8786 ── handshake refused ────► "… refused the TLS connection (reason)"
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from ..errors import SchedulerUnreachableError

if TYPE_CHECKING:
    from distributed import Client


def _probe(host: str, port: int, timeout: float) -> str:
    """What a plain TCP connection to the address finds: ``"refused"``, ``"unreachable"``,
    ``"silent"`` (it listens but sends nothing, as a TLS server waiting for a client hello does)
    or ``"speaks"`` (it sends first, as a Dask scheduler sends its handshake)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            connection.settimeout(timeout)
            try:
                return "speaks" if connection.recv(1) else "silent"
            except TimeoutError:
                return "silent"
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "unreachable"


def _split(address: str) -> tuple[str, str, int] | None:
    scheme, _, location = address.partition("://")
    host, _, port_text = location.rpartition(":")
    try:
        return scheme, host.strip("[]"), int(port_text)
    except ValueError:
        return None


def diagnose(address: str, found: str, reason: str, timeout: float) -> str:
    """One line on why ``address`` could not be reached, with what to do about it."""
    location = address.partition("://")[2]
    if found == "refused":
        return (f"nothing is listening at {address} (connection refused): is the scheduler running, "
                "and is this its address?")
    if found == "unreachable":
        return f"{address} does not answer: check the host and port, and that nothing blocks the way"
    if address.startswith("tls://"):
        return (f"the scheduler at {address} refused the TLS connection ({reason}); check that --tls-ca-file is "
                "the cluster's CA and --tls-cert/--tls-key a certificate it signed, or that it speaks TLS at all")
    return (f"something listens at {address} but did not answer as a Dask scheduler within {timeout:g} s: it may "
            f"expect TLS (use tls://{location} with --tls-ca-file, --tls-cert and --tls-key)")


def open_client(address: str, security: object | None, timeout: float) -> Client:
    """A client of the scheduler at ``address``, or a :class:`SchedulerUnreachableError`.

    A plain ``tcp://`` address is probed first: distributed waits without end for a server
    that accepts the connection and then says nothing.
    """
    from distributed import Client

    parts = _split(address)
    if parts is None:
        raise SchedulerUnreachableError(f"{address} is not a scheduler address: expected tcp://HOST:PORT or "
                                        "tls://HOST:PORT")
    scheme, host, port = parts
    if scheme in ("tcp", ""):
        found = _probe(host, port, timeout)
        if found != "speaks":
            raise SchedulerUnreachableError(diagnose(address, found, "", timeout))
    try:
        return Client(address, security=security, set_as_default=False, timeout=f"{timeout}s")
    except (OSError, TimeoutError) as error:  # CommClosedError is an OSError
        found = _probe(host, port, min(timeout, 3.0))
        reason = " ".join(str(error).split())[:160] or type(error).__name__
        raise SchedulerUnreachableError(diagnose(address, found if found in ("refused", "unreachable") else "open",
                                                 reason, timeout)) from None
