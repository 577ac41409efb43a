"""Processes a test starts and stops as a person would, and the network namespaces they run in."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path


def quiet_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: no user Dask config, no BLAS oversubscription."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    env.update(
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@dataclass
class Processes:
    """Long-running children, each in its own process group, logs in files."""

    logdir: Path
    procs: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.logdir / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        proc = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.logdir,
            start_new_session=True,
        )
        log.close()
        self.procs.append((name, proc))
        return proc

    def check_alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}\n{self.logs()}")

    def logs(self) -> str:
        parts = []
        for name, _ in self.procs:
            text = (self.logdir / f"{name}.log").read_text(errors="replace")
            parts.append(f"----- {name} -----\n{text[-4000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Newest first (workers before their scheduler): SIGTERM the process group we
        started, give it a moment to close cleanly, then SIGKILL whatever is left."""
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group may hold orphaned children
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


def netns_usable() -> str | None:
    """None if this process may make network namespaces, else why not."""
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    probe = f"bdprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` does not work here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@dataclass(frozen=True)
class PrivateHosts:
    """Network namespaces, each a host with its own address, joined by a bridge; this
    process reaches them through its own address on the same bridge."""

    names: dict[str, str]  #: role -> namespace name
    addresses: dict[str, str]  #: role -> IPv4 address on the bridge
    here: str  #: this (the root) namespace's address on the bridge

    def inside(self, role: str) -> list[str]:
        """The command prefix that runs a program on the host ``role``."""
        return ["ip", "netns", "exec", self.names[role]]


@contextlib.contextmanager
def private_hosts(roles: Sequence[str], subnet: str) -> Iterator[PrivateHosts]:
    """Namespaces for ``roles`` at ``subnet``.1, .2, … and this process at ``subnet``.254.

    The bridge lives in a namespace of its own (a hub), so traffic between the hosts never
    crosses this machine's own firewall rules; the root namespace joins it by one veth pair.
    Everything is deleted on exit.
    """
    tag = uuid.uuid4().hex[:6]
    names = {r: f"bd-{tag}-{i}" for i, r in enumerate(roles)}
    addresses = {r: f"{subnet}.{i + 1}" for i, r in enumerate(roles)}
    hub, here, root_link = f"bd-{tag}-hub", f"{subnet}.254", f"bd{tag}r"

    def ip(*args: str, ns: str | None = None) -> None:
        cmd = ["ip", *(["-n", ns] if ns else []), *args]
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=30)

    made: list[str] = []
    try:
        for name in (hub, *names.values()):
            ip("netns", "add", name)
            made.append(name)
        ip("link", "add", "br0", "type", "bridge", ns=hub)
        ip("link", "set", "br0", "up", ns=hub)
        ip("link", "set", "lo", "up", ns=hub)
        for i, role in enumerate(roles):
            ns = names[role]
            ip("link", "add", f"veth{i}", "type", "veth", "peer", "name", "eth0", ns=hub)
            ip("link", "set", "eth0", "netns", ns, ns=hub)
            ip("link", "set", f"veth{i}", "master", "br0", ns=hub)
            ip("link", "set", f"veth{i}", "up", ns=hub)
            ip("addr", "add", f"{addresses[role]}/24", "dev", "eth0", ns=ns)
            ip("link", "set", "eth0", "up", ns=ns)
            ip("link", "set", "lo", "up", ns=ns)
        ip("link", "add", "vroot", "type", "veth", "peer", "name", root_link, ns=hub)
        ip("link", "set", root_link, "netns", "1", ns=hub)
        ip("link", "set", "vroot", "master", "br0", ns=hub)
        ip("link", "set", "vroot", "up", ns=hub)
        ip("addr", "add", f"{here}/24", "dev", root_link)
        ip("link", "set", root_link, "up")
        yield PrivateHosts(names, addresses, here)
    finally:
        subprocess.run(["ip", "link", "del", root_link], capture_output=True)
        for name in reversed(made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
