"""Shared fixtures: a real local Dask cluster with worker processes, and array helpers."""

from __future__ import annotations

import hashlib
import logging
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import pytest
import threadpoolctl
import zarr
from hypothesis import settings

from tests.oracle import assert_product  # noqa: F401 - the tests' oracle, independent of blockdist

logging.getLogger("distributed").setLevel(logging.ERROR)

# The test processes (a core each, -n logical) share the cores with their clusters' workers: one
# BLAS thread in each, so that the oracle's products leave no idle BLAS thread spinning on a core
# another process needs. The programs the tests start (CLI, benchmarks, tune) keep the default.
threadpoolctl.threadpool_limits(1, user_api="blas")

#: Seconds a test that is long by design may take (@pytest.mark.timeout(LONG_TIMEOUT)); every other
#: test has pyproject.toml's default of 120 s, so a hang ends with its stack instead of at CI's limit.
LONG_TIMEOUT = 300

#: CI sets CI=true: there, a missing prerequisite fails its tests instead of skipping them.
ON_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")

# The tests never read a user's tune file or blockdist settings: the planner's rates are the
# built-in ones unless a test says otherwise. Worker processes inherit this environment.
os.environ["BLOCKDIST_TUNE_FILE"] = os.path.join(tempfile.mkdtemp(prefix="blockdist-tests-"), "no-tune.json")
for _name in [name for name in os.environ if name.startswith("DASK_BLOCKDIST__")]:
    del os.environ[_name]

settings.register_profile("ci", derandomize=True, print_blob=True, deadline=None)
settings.register_profile("dev", print_blob=True, deadline=None)
settings.load_profile("ci" if ON_CI else "dev")


def require(ok: object, why: str) -> None:
    """Skip what needs a missing prerequisite, except on CI, where nothing may be skipped."""
    if ok:
        return
    if ON_CI:
        pytest.fail(f"missing on this CI machine: {why}", pytrace=False)
    pytest.skip(why, allow_module_level=True)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Outside CI, Hypothesis draws from a seed the run prints, so a failure can be replayed."""
    if not ON_CI and getattr(config.option, "hypothesis_seed", None) is None:
        config.option.hypothesis_seed = random.SystemRandom().randrange(2**32)


def pytest_report_header(config: pytest.Config) -> str:
    seed = getattr(config.option, "hypothesis_seed", None)
    if ON_CI:
        return "hypothesis: profile 'ci' (derandomized); CI=true: a skipped test fails the run"
    return f"hypothesis: profile 'dev', seed {seed} (replay with --hypothesis-seed={seed})"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if ON_CI and skipped:
        reporter.write_line(f"CI=true: {skipped} test(s) skipped; every test must run here", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def client():
    """Two single-threaded worker processes on 127.0.0.1, shared by the integration tests."""
    from distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address="127.0.0.1:0", memory_limit="3GiB",
    ) as cluster, Client(cluster, set_as_default=False) as dask_client:
        yield dask_client


def write_array(path: Path | str, data: np.ndarray, chunks: tuple[int, int]) -> zarr.Array:
    return zarr.create_array(store=str(path), data=data, chunks=chunks, compressors=None)


def block_diagonal_values(n: int, chunk: int, seed: int) -> np.ndarray:
    """An n² float64 matrix of random chunk² blocks on the diagonal and zeros elsewhere."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, n))
    for i in range(0, n, chunk):
        x[i : i + chunk, i : i + chunk] = rng.standard_normal((min(chunk, n - i),) * 2)
    return x


def random_data(rng: np.random.Generator, shape: tuple[int, int], dtype: str) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    if dtype.kind in "iu":
        return rng.integers(0 if dtype.kind == "u" else -5, 6, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def tree_digest(path: Path | str) -> str:
    """A digest of every file under ``path`` (names and bytes), to prove nothing changed."""
    digest = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(files):
            full = Path(root, name)
            digest.update(str(full.relative_to(path)).encode())
            digest.update(full.read_bytes())
    return digest.hexdigest()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that runs tasks on the shared cluster is a ``cluster`` test."""
    for item in items:
        if "client" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)
