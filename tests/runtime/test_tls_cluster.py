"""blockdist on a Dask cluster that speaks mutual TLS only, started the way a person would.

``dask scheduler --protocol tls`` and two ``dask worker`` processes run on 127.0.0.1 with
certificates from ``deploy/tls/make-certs.sh``; ``blockdist random`` and ``blockdist
matmul --scheduler tls://… --tls-ca-file … --tls-cert … --tls-key …`` run as
subprocesses, and the product is checked against numpy. Clients without the cluster's
certificates must be turned away.

Optionally (root, ``ip netns`` available) the same runs with the scheduler and each worker
in its own network namespace, joined by veth pairs to a bridge: nothing but the TLS
listener is reachable between them, and the certificates carry the namespaces' addresses.

Nothing listens beyond 127.0.0.1 (or the test's own namespaces); every port is chosen by
the OS and read back from a ``--scheduler-file``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import LONG_TIMEOUT, require
from tests.runtime.cluster_support import PrivateHosts, Processes, netns_usable, private_hosts, quiet_env

ROOT = Path(__file__).resolve().parents[2]
MAKE_CERTS = ROOT / "deploy" / "tls" / "make-certs.sh"
DASK = [sys.executable, "-m", "dask"]
#: How to run the blockdist CLI; BLOCKDIST_CLI (split like a shell would) overrides it.
BLOCKDIST = shlex.split(os.environ.get("BLOCKDIST_CLI", "")) or [sys.executable, "-m", "blockdist.cli"]
#: Generous upper bounds for things that normally take a second or two; never asserted.
STARTUP_TIMEOUT = 60.0
COMMAND_TIMEOUT = 180.0

pytestmark = [pytest.mark.tls, pytest.mark.slow, pytest.mark.cluster]
require(shutil.which("openssl"), "needs openssl")


# --------------------------------------------------------------------------- helpers


def make_certs(outdir: Path, *sans: str) -> Path:
    subprocess.run(
        ["bash", str(MAKE_CERTS), str(outdir), *sans],
        check=True, capture_output=True, text=True, timeout=60,
    )
    return outdir


def tls_flags(certs: Path, role: str) -> list[str]:
    return [
        "--tls-ca-file", str(certs / "ca.pem"),
        "--tls-cert", str(certs / f"{role}.pem"),
        "--tls-key", str(certs / f"{role}-key.pem"),
    ]


def client_security(certs: Path):
    from distributed.security import Security

    return Security(
        tls_ca_file=str(certs / "ca.pem"),
        tls_client_cert=str(certs / "client.pem"),
        tls_client_key=str(certs / "client-key.pem"),
        require_encryption=True,
    )


def wait_for_scheduler_file(path: Path, procs: Processes) -> str:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        procs.check_alive()
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            address = json.loads(path.read_text())["address"]
            if address:
                return address
        time.sleep(0.1)
    raise RuntimeError(f"the scheduler wrote no {path.name} in time\n{procs.logs()}")


def wait_for_log_lines(procs: Processes, wanted: dict[str, list[str]]) -> None:
    """Wait until each named process has logged a match for each of its patterns."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        procs.check_alive()
        logs = {name: (procs.logdir / f"{name}.log").read_text(errors="replace")
                for name in wanted}
        if all(re.search(p, logs[name]) for name, pats in wanted.items() for p in pats):
            return
        time.sleep(0.2)
    raise RuntimeError(f"expected log lines did not appear in time: {wanted}\n{procs.logs()}")


def wait_for_workers(address: str, certs: Path, n: int, procs: Processes) -> list[str]:
    from distributed import Client

    with Client(address, security=client_security(certs), timeout="30s",
                set_as_default=False) as client:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            procs.check_alive()
            workers = list(client.scheduler_info(n_workers=-1)["workers"])
            if len(workers) >= n:
                return workers
            time.sleep(0.2)
    raise RuntimeError(f"fewer than {n} workers joined in time\n{procs.logs()}")


def run_blockdist(args: Sequence[str], env: dict[str, str], cwd: Path,
                  prefix: Sequence[str] = ()) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*prefix, *BLOCKDIST, *args], capture_output=True, text=True, env=env, cwd=cwd,
        timeout=COMMAND_TIMEOUT,
    )


def check_product(folder: Path) -> None:
    import zarr

    a = zarr.open_array(str(folder / "a.zarr"), mode="r")[...]
    b = zarr.open_array(str(folder / "b.zarr"), mode="r")[...]
    c = zarr.open_array(str(folder / "c.zarr"), mode="r")[...]
    expected = a @ b
    assert c.shape == expected.shape
    k = a.shape[1]
    tol = 4 * k * np.finfo(np.float64).eps * (np.abs(a) @ np.abs(b))
    assert np.all(np.abs(c - expected) <= tol + 1e-300)


def blockdist_ran_on(address: str, certs: Path) -> bool:
    """Whether the scheduler at ``address`` has seen blockdist's tasks."""
    from distributed import Client

    def prefixes(dask_scheduler):
        return sorted(dask_scheduler.task_prefixes)

    with Client(address, security=client_security(certs), timeout="30s",
                set_as_default=False) as client:
        names = client.run_on_scheduler(prefixes)
    return any("blockdist" in name for name in names)


def require_tls_cli() -> None:
    """The blockdist CLI must offer the TLS options (issue 7); say so plainly if not."""
    out = _matmul_help()
    assert out.returncode == 0, f"`blockdist matmul --help` failed:\n{out.stderr}"
    missing = [o for o in ("--tls-ca-file", "--tls-cert", "--tls-key") if o not in out.stdout]
    assert not missing, (
        f"`blockdist matmul` has no {', '.join(missing)} option yet: wire "
        "blockdist.runtime.security.add_tls_arguments/security_from_options into the CLI"
    )


@functools.cache
def _matmul_help() -> subprocess.CompletedProcess:
    return subprocess.run([*BLOCKDIST, "matmul", "--help"], capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT, env=quiet_env())


def start_inputs(folder: Path, env: dict[str, str],
                 prefix: Sequence[str] = ()) -> list[subprocess.Popen]:
    """Start ``blockdist random`` for a.zarr (60×45) and b.zarr (45×50), side by side."""
    return [
        subprocess.Popen(
            [*prefix, *BLOCKDIST, "random", str(folder / f"{name}.zarr"), "--shape", shape,
             "--chunks", "16,16", "--seed", str(seed)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=folder,
        )
        for name, shape, seed in (("a", "60,45", 1), ("b", "45,50", 2))
    ]


def finish_inputs(procs: list[subprocess.Popen]) -> None:
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=COMMAND_TIMEOUT)
            assert proc.returncode == 0, f"blockdist random failed:\n{err}"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# ------------------------------------------------------------------ the loopback cluster


@dataclass(frozen=True)
class TLSCluster:
    address: str
    certs: Path
    workers: list[str]
    procs: Processes


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("tls") / "certs")


@pytest.fixture(scope="module")
def tls_cluster(certs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSCluster]:
    run_dir = tmp_path_factory.mktemp("tls-cluster")
    procs = Processes(run_dir)
    scheduler_file = run_dir / "scheduler.json"
    env = quiet_env()
    try:
        procs.start("scheduler", [
            *DASK, "scheduler", "--protocol", "tls", "--host", "127.0.0.1", "--port", "0",
            "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file),
            *tls_flags(certs, "scheduler"),
        ], env)
        address = wait_for_scheduler_file(scheduler_file, procs)
        assert address.startswith("tls://127.0.0.1:"), address
        for i in range(2):
            procs.start(f"worker-{i}", [
                *DASK, "worker", address, "--protocol", "tls", "--host", "127.0.0.1",
                "--dashboard-address", "127.0.0.1:0", "--nthreads", "1", "--nworkers", "1",
                "--memory-limit", "1GiB", "--name", f"tls-worker-{i}", "--no-nanny",
                "--local-directory", str(run_dir / f"worker-{i}"), "--death-timeout", "60",
                *tls_flags(certs, "worker"),
            ], env)
        workers = wait_for_workers(address, certs, 2, procs)
        yield TLSCluster(address, certs, workers, procs)
    finally:
        procs.stop()


def test_workers_join_over_tls(tls_cluster: TLSCluster):
    assert len(tls_cluster.workers) == 2
    assert all(w.startswith("tls://127.0.0.1:") for w in tls_cluster.workers)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """a.zarr and b.zarr, written by `blockdist random`; tests write their own outputs."""
    folder = tmp_path_factory.mktemp("inputs")
    finish_inputs(start_inputs(folder, quiet_env()))
    return folder


def test_blockdist_matmul_over_tls(tls_cluster: TLSCluster, inputs: Path, tmp_path: Path):
    require_tls_cli()
    env = quiet_env()
    for name in ("a.zarr", "b.zarr"):
        shutil.copytree(inputs / name, tmp_path / name)
    out = run_blockdist([
        "matmul", str(tmp_path / "a.zarr"), str(tmp_path / "b.zarr"), str(tmp_path / "c.zarr"),
        "--scheduler", tls_cluster.address, *tls_flags(tls_cluster.certs, "client"),
    ], env, tmp_path)
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}\n{tls_cluster.procs.logs()}"
    check_product(tmp_path)
    assert blockdist_ran_on(tls_cluster.address, tls_cluster.certs)


def test_blockdist_matmul_with_partial_tls_options_is_refused(tls_cluster: TLSCluster,
                                                              inputs: Path, tmp_path: Path):
    require_tls_cli()
    env = quiet_env()
    out = run_blockdist([
        "matmul", str(inputs / "a.zarr"), str(inputs / "b.zarr"), str(tmp_path / "c.zarr"),
        "--scheduler", tls_cluster.address, "--tls-ca-file", str(tls_cluster.certs / "ca.pem"),
    ], env, tmp_path)
    assert out.returncode == 2, out.stderr
    assert "--tls-cert" in out.stderr and "--tls-key" in out.stderr
    assert not (tmp_path / "c.zarr").exists()


def test_blockdist_matmul_without_certificates_is_refused(tls_cluster: TLSCluster,
                                                          inputs: Path, tmp_path: Path):
    """No TLS options for a tls:// scheduler: a usage error at once, not a timeout."""
    env = quiet_env(DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="5s")
    out = run_blockdist([
        "matmul", str(inputs / "a.zarr"), str(inputs / "b.zarr"), str(tmp_path / "c.zarr"),
        "--scheduler", tls_cluster.address,
    ], env, tmp_path)
    assert out.returncode == 2, out.stderr
    assert "--tls-ca-file" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "c.zarr").exists()


def test_plain_tcp_client_is_refused(tls_cluster: TLSCluster):
    from distributed import Client

    plain = tls_cluster.address.replace("tls://", "tcp://")
    with pytest.raises((OSError, TimeoutError)):
        Client(plain, timeout="3s", set_as_default=False)


def test_client_with_certificates_from_another_ca_is_refused(tls_cluster: TLSCluster,
                                                            tmp_path: Path):
    from distributed import Client

    stranger = make_certs(tmp_path / "other-ca")
    with pytest.raises((OSError, TimeoutError)):
        Client(tls_cluster.address, security=client_security(stranger), timeout="3s",
               set_as_default=False)


def test_the_cli_with_certificates_from_another_ca_is_refused(tls_cluster: TLSCluster, inputs: Path,
                                                              tmp_path: Path):
    """A certificate the cluster's CA did not sign: the CLI fails without a result, and nothing runs."""
    require_tls_cli()
    stranger = make_certs(tmp_path / "other-ca")
    env = quiet_env(DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="5s")
    out = run_blockdist([
        "matmul", str(inputs / "a.zarr"), str(inputs / "b.zarr"), str(tmp_path / "c.zarr"),
        "--scheduler", tls_cluster.address, *tls_flags(stranger, "client"),
    ], env, tmp_path)
    assert out.returncode == 2, out.stderr
    assert "refused the TLS connection" in out.stderr and len(out.stderr.strip().splitlines()) <= 2
    assert not (tmp_path / "c.zarr").exists()
    assert "wrote" not in out.stdout


def test_the_cli_with_a_tcp_address_of_a_tls_scheduler_says_so(tls_cluster: TLSCluster, inputs: Path,
                                                                tmp_path: Path):
    plain = tls_cluster.address.replace("tls://", "tcp://")
    out = run_blockdist(["matmul", str(inputs / "a.zarr"), str(inputs / "b.zarr"), str(tmp_path / "c.zarr"),
                         "--scheduler", plain, "--connect-timeout", "3"], quiet_env(), tmp_path)
    assert out.returncode == 2, out.stderr
    assert "may expect TLS" in out.stderr and tls_cluster.address in out.stderr
    assert len(out.stderr.strip().splitlines()) <= 2 and "Traceback" not in out.stderr
    assert not (tmp_path / "c.zarr").exists()


def _tls_probe(port: int, ca: Path, cert: Path | None, key: Path | None) -> str:
    """Open a TLS connection, read a byte: "open" (data or silence) or why it was refused."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname="localhost") as conn:
            conn.settimeout(2)
            data = conn.recv(1)
    except TimeoutError:
        return "open"  # handshake done, the server is waiting for us
    except ssl.SSLError as err:  # e.g. TLSV13_ALERT_CERTIFICATE_REQUIRED
        return f"refused: {err}"
    except ConnectionError as err:
        return f"refused: {err!r}"
    return "open" if data else "refused: closed by the server"


def test_tls_client_without_a_certificate_is_refused(tls_cluster: TLSCluster):
    """The server demands a client certificate: a TLS peer without one is cut off."""
    port = int(tls_cluster.address.rsplit(":", 1)[1])
    ca = tls_cluster.certs / "ca.pem"
    assert _tls_probe(port, ca, None, None).startswith("refused")
    # The control: with the client certificate the same connection is accepted.
    assert _tls_probe(port, ca, tls_cluster.certs / "client.pem",
                      tls_cluster.certs / "client-key.pem") == "open"


# ------------------------------------------------- the same in three network namespaces


@pytest.fixture(scope="module")
def netns() -> Iterator[PrivateHosts]:
    why = netns_usable()
    require(not why, why or "")
    # The test's own addresses (10.213.77.1-3), inside namespaces that exist only for this test.
    with private_hosts(("sched", "w0", "w1"), "10.213.77") as hosts:
        yield hosts


@pytest.mark.timeout(LONG_TIMEOUT)
def test_matmul_with_scheduler_and_workers_in_separate_namespaces(netns: PrivateHosts, inputs: Path,
                                                                  tmp_path: Path):
    require_tls_cli()
    certs = make_certs(tmp_path / "certs", *(f"IP:{a}" for a in netns.addresses.values()))
    procs = Processes(tmp_path)
    env = quiet_env()

    inside = netns.inside
    sched_ip = netns.addresses["sched"]
    for name in ("a.zarr", "b.zarr"):  # namespaces share the filesystem
        shutil.copytree(inputs / name, tmp_path / name)
    try:
        procs.start("scheduler", [
            *inside("sched"), *DASK, "scheduler", "--protocol", "tls", "--host", sched_ip,
            "--port", "0", "--dashboard-address", "127.0.0.1:0",
            "--scheduler-file", str(tmp_path / "scheduler.json"), *tls_flags(certs, "scheduler"),
        ], env)
        address = wait_for_scheduler_file(tmp_path / "scheduler.json", procs)
        assert address.startswith(f"tls://{sched_ip}:"), address
        for i in range(2):
            role = f"w{i}"
            procs.start(f"worker-{i}", [
                *inside(role), *DASK, "worker", address, "--protocol", "tls",
                "--host", netns.addresses[role], "--dashboard-address", "127.0.0.1:0",
                "--nthreads", "1", "--memory-limit", "1GiB", "--name", f"ns-worker-{i}",
                "--no-nanny",
                "--local-directory", str(tmp_path / f"worker-{i}"), "--death-timeout", "60",
                *tls_flags(certs, "worker"),
            ], env)

        # The client runs inside the scheduler's namespace, as a person on that host would.
        # The workers' logs say when they have registered, without starting one more Python
        # process to ask.
        wait_for_log_lines(procs, {
            f"worker-{i}": [
                rf"Start worker at:\s+tls://{re.escape(netns.addresses[f'w{i}'])}:\d+",
                rf"Registered to:\s+{re.escape(address)}\b",
            ]
            for i in range(2)
        })
        out = run_blockdist([
            "matmul", str(tmp_path / "a.zarr"), str(tmp_path / "b.zarr"),
            str(tmp_path / "c.zarr"), "--scheduler", address, *tls_flags(certs, "client"),
        ], env, tmp_path, prefix=inside("sched"))
        assert out.returncode == 0, f"{out.stdout}\n{out.stderr}\n{procs.logs()}"
        check_product(tmp_path)
    finally:
        procs.stop()
