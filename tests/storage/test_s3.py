"""blockdist with its matrices on S3-compatible object storage, against a real S3 API server.

moto's S3 server runs in a thread on 127.0.0.1 (one per session, reset before each test);
products run on the session's LocalCluster of two worker processes, which get no AWS
environment: the stores carry their configuration. A fault-injecting proxy on 127.0.0.1 in
front of moto fails a share of the requests (503, 500, dropped connections, responses cut
short) and counts the requests in flight. Bad input is checked through the Python API and
through the CLI as a subprocess: the right error (exit status 2), the URL named, no secret
anywhere, nothing written and no task submitted.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import zarr

import blockdist
from blockdist import storage as bstore
from blockdist.errors import (
    ArrayNotFoundError,
    BlockdistError,
    BucketNotFoundError,
    InputError,
    OutputConflictError,
    OutputExistsError,
    ResumeError,
    StorageAccessError,
    StorageUnreachableError,
)
from blockdist.planning import WORKER_BASELINE
from blockdist.runtime import start
from blockdist.runtime.graph import Graph
from blockdist.storage.s3config import make_config
from blockdist.storage.s3store import S3Store
from tests.conftest import LONG_TIMEOUT, assert_product
from tests.storage.s3_support import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    FaultProxy,
    MotoS3,
    boto3_client,
    environment,
    storage_options,
)

pytestmark = [pytest.mark.s3, pytest.mark.slow]

BUCKET = "matrices"
BLOCKDIST = [sys.executable, "-m", "blockdist.cli"]
WRONG_SECRET = "wrong-secret-7f3a9c1e5b"


@pytest.fixture(scope="session")
def moto() -> MotoS3:
    with MotoS3() as server:
        yield server


@pytest.fixture
def s3(moto: MotoS3) -> MotoS3:
    """The server, emptied, with IAM authentication off and one bucket."""
    moto.reset()
    moto.create_bucket(BUCKET)
    yield moto
    moto.auth(False)


@pytest.fixture(scope="module")
def proxy(moto: MotoS3) -> FaultProxy:
    with FaultProxy(moto.endpoint) as faulty:
        yield faulty


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    return rng.standard_normal((300, 200)), rng.standard_normal((200, 250))


def put(url: str, values: np.ndarray, options: dict[str, Any], chunks=(64, 64)) -> zarr.Array:  # type: ignore[no-untyped-def]
    ref = bstore.locate(url, storage_options=options)
    array = zarr.create_array(ref.store, shape=values.shape, chunks=chunks, dtype=values.dtype,
                              compressors=None, fill_value=0)
    array[:] = values
    return array


def get(url: str, options: dict[str, Any]) -> np.ndarray:
    return bstore.open_input(bstore.locate(url, storage_options=options))[:]


def assert_no_secret(*texts: str, secrets: tuple[str, ...] = (SECRET_KEY, WRONG_SECRET)) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a secret leaked into: {text[:300]}"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run([*BLOCKDIST, *args], capture_output=True, text=True, timeout=240,
                          env={**clean, "PYTHONWARNINGS": "ignore", **(env or {})})


def cli_options(options: dict[str, Any]) -> list[str]:
    return [arg for key, value in options.items() for arg in ("--storage-option", f"{key}={value}")]


# --------------------------------------------------------------------------- configuration


def test_storage_options_shared_or_per_array():
    shared = {"endpoint_url": "http://127.0.0.1:1", "region": "r"}
    assert bstore.options_for(shared, "a") == shared == bstore.options_for(shared, "out")
    per = {"a": {"region": "ra"}, "out": {"region": "ro"}}
    assert bstore.options_for(per, "a") == {"region": "ra"}
    assert bstore.options_for(per, "b") == {}
    assert bstore.options_for(per, "out") == {"region": "ro"}
    assert bstore.options_for(None, "a") == {}
    with pytest.raises(InputError, match=r"storage_options\['b'\]"):
        bstore.options_for({"a": {}, "b": "x"}, "a")
    with pytest.raises(InputError, match="unknown storage option 'a'"):  # mixed: shared, and "a" is no option
        bstore.locate("s3://bkt/x.zarr", storage_options={"a": {}, "region": "r"}, role="a")


def test_options_win_over_the_aws_environment_and_credentials_never_mix():
    env = {**environment("http://127.0.0.1:9"), "AWS_SESSION_TOKEN": "tok", "BLOCKDIST_S3_BACKEND": "s3fs"}
    config = make_config("s3://bkt/dir//a.zarr/", {}, env)
    assert (config.bucket, config.prefix, config.url) == ("bkt", "dir/a.zarr", "s3://bkt/dir/a.zarr")
    assert config.endpoint_url == "http://127.0.0.1:9" and config.allow_http and config.backend == "s3fs"
    credentials = (config.access_key_id, config.secret_access_key, config.session_token)
    assert credentials == (ACCESS_KEY, SECRET_KEY, "tok")
    config = make_config("s3://bkt/a.zarr", {"key": "K", "secret": "S", "endpoint": "https://s3.example:8443",
                                             "backend": "obstore", "retries": "3", "timeout": "5s"}, env)
    assert (config.access_key_id, config.secret_access_key, config.session_token) == ("K", "S", None)
    assert config.endpoint_url == "https://s3.example:8443" and config.backend == "obstore"
    assert config.allow_http  # AWS_ALLOW_HTTP=true in the environment
    assert (config.retries, config.timeout, config.region) == (3, 5.0, REGION)
    s3fs_style = {"client_kwargs": {"endpoint_url": "http://h:1", "region_name": "eu"}, "allow_http": "false"}
    config = make_config("s3://bkt/a.zarr", s3fs_style, {})
    assert (config.endpoint_url, config.region, config.allow_http) == ("http://h:1", "eu", False)
    assert "S" not in repr(make_config("s3://bkt/a.zarr", {"key": "K", "secret": "S"}, {})).replace("S3", "")


@pytest.mark.parametrize(("url", "options", "words"), [
    ("s3://bkt/a.zarr", {"secret_key": SECRET_KEY}, "unknown storage option 'secret_key'"),
    ("s3://bkt/a.zarr", {"backend": "boto"}, "backend"),
    ("s3://bkt/a.zarr", {"endpoint_url": "127.0.0.1:9000"}, "http:// or https://"),
    ("s3://bkt/a.zarr", {"retries": "many"}, "retries"),
    (f"s3://{ACCESS_KEY}:{SECRET_KEY}@bkt/a.zarr", {}, "credentials in the URL"),
    ("s3://bkt/a.zarr?versionId=1", {}, "no query"),
    ("s3:///a.zarr", {}, "bucket name"),
    ("gs://bkt/a.zarr", {}, "gs://bkt/a.zarr: the gs:// scheme is not supported"),
    (f"https://{ACCESS_KEY}:{SECRET_KEY}@host/a.zarr", {}, "https://host/a.zarr: the https:// scheme"),
])
def test_bad_urls_and_options_are_input_errors_that_keep_secrets(url, options, words):
    with pytest.raises(InputError, match=words) as info:
        bstore.locate(url, storage_options=options, role="a")
    assert_no_secret(str(info.value), secrets=(SECRET_KEY,))


def test_refs_show_and_pickle_no_more_than_they_must(s3):
    options = storage_options(s3.endpoint)
    ref = bstore.locate("s3://matrices/x/a.zarr", storage_options=options, role="a")
    assert ref.name == str(ref) == "s3://matrices/x/a.zarr"
    assert repr(ref) == "ArrayRef('s3://matrices/x/a.zarr')"
    assert_no_secret(repr(ref), str(ref), repr(ref.store), str(ref.store), repr(ref.store.config),
                     secrets=(SECRET_KEY, ACCESS_KEY))
    back = pickle.loads(pickle.dumps(ref))  # the config travels; the client is rebuilt
    assert back == ref and isinstance(back.store, S3Store) and back.store.config == ref.store.config
    put("s3://matrices/x/a.zarr", np.eye(3), options)
    assert (get("s3://matrices/x/a.zarr", options) == np.eye(3)).all()


@pytest.mark.parametrize("backend", ["obstore", "s3fs"])
def test_a_zarr_array_opened_by_hand_on_s3_is_adopted(s3, backend):
    put("s3://matrices/a.zarr", np.ones((4, 4)), storage_options(s3.endpoint))
    if backend == "obstore":
        from obstore.store import S3Store as Obstore
        from zarr.storage import ObjectStore

        raw = ObjectStore(Obstore(BUCKET, prefix="a.zarr", endpoint=s3.endpoint, region=REGION,
                                  access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY,
                                  client_options={"allow_http": True}))
    else:
        import s3fs
        from zarr.storage import FsspecStore

        fs = s3fs.S3FileSystem(key=ACCESS_KEY, secret=SECRET_KEY, endpoint_url=s3.endpoint, asynchronous=True)
        raw = FsspecStore(fs, path=f"{BUCKET}/a.zarr")
    ref = bstore.locate(zarr.open_array(raw, mode="r"))
    assert isinstance(ref.store, S3Store) and ref.name == "s3://matrices/a.zarr"
    assert ref.store.config.backend == backend
    assert_no_secret(repr(ref), repr(ref.store), secrets=(SECRET_KEY, ACCESS_KEY))
    assert bstore.open_input(pickle.loads(pickle.dumps(ref)))[:].sum() == 16


# --------------------------------------------------------------------------- reading and writing


@pytest.mark.parametrize("backend", ["obstore", "s3fs"])
def test_round_trip_and_counted_reads(s3, data, backend):
    options = storage_options(s3.endpoint, backend=backend)
    a, _ = data
    put("s3://matrices/a.zarr", a, options, chunks=(64, 50))
    assert s3.keys(BUCKET, "a.zarr/c/")[:2] == ["a.zarr/c/0/0", "a.zarr/c/0/1"]
    ref = bstore.locate("s3://matrices/a.zarr", storage_options=options)
    assert bstore.layout_of(bstore.open_input(ref)).chunks == (64, 50)
    array, counting = bstore.open_counted(ref)
    np.testing.assert_array_equal(array[:], a)
    assert counting.bytes_read >= a.nbytes


@pytest.mark.parametrize("backend", ["obstore", "s3fs"])
def test_a_panel_read_keeps_a_bounded_number_of_requests_in_flight(s3, proxy, backend):
    options = storage_options(proxy.endpoint, backend=backend)
    put("s3://matrices/a.zarr", np.arange(128.0 * 128).reshape(128, 128), options, chunks=(16, 16))
    array, _ = bstore.open_counted(bstore.locate("s3://matrices/a.zarr", storage_options=options))
    proxy.configure(delay=0.03)  # every request takes a while, so concurrent ones overlap
    try:
        with zarr.config.set({"async.concurrency": 4}):
            array[:, :64]  # 32 chunks
        stats = proxy.stats
        assert stats.requests >= 32 and 2 <= stats.max_in_flight <= 4, stats
        limited, _ = bstore.open_counted(bstore.locate("s3://matrices/a.zarr",
                                                       storage_options={**options, "max_requests": 2}))
        proxy.configure(delay=0.03)
        limited[:, 64:]
        assert proxy.stats.requests >= 32 and proxy.stats.max_in_flight <= 2, proxy.stats
    finally:
        proxy.configure(delay=0, every=0)


# --------------------------------------------------------------------------- products on a cluster


def test_matmul_with_inputs_and_output_on_s3(s3, client, data):
    options = storage_options(s3.endpoint)
    a, b = data
    put("s3://matrices/in/a.zarr", a, options)
    put("s3://matrices/in/b.zarr", b, options, chunks=(50, 100))
    result = blockdist.run("s3://matrices/in/a.zarr", "s3://matrices/in/b.zarr", "s3://matrices/out/c.zarr",
                           client=client, storage_options=options)
    assert_product(get("s3://matrices/out/c.zarr", options), a, b)
    assert result.stats.bytes_read >= a.nbytes + b.nbytes
    assert result.stats.bytes_written >= a.shape[0] * b.shape[1] * 8
    manifest = result.array.attrs["blockdist"]
    assert (manifest["a"]["name"], manifest["b"]["name"], manifest["status"]) == (
        "s3://matrices/in/a.zarr", "s3://matrices/in/b.zarr", "complete")
    assert_no_secret(json.dumps(dict(result.array.attrs)), result.plan.summary(),
                     json.dumps(result.plan.to_dict()), secrets=(SECRET_KEY, ACCESS_KEY))


def test_mixed_local_and_s3_with_options_per_array(s3, proxy, client, data, tmp_path):
    a, b = data
    local = tmp_path / "a.zarr"
    zarr.create_array(str(local), data=a, chunks=(64, 64), compressors=None)
    s3.create_bucket("results")
    options = {  # B through the proxy (another endpoint) with obstore, C straight to moto with s3fs
        "b": storage_options(proxy.endpoint),
        "out": storage_options(s3.endpoint, backend="s3fs"),
    }
    put("s3://matrices/b.zarr", b, options["b"])
    out = blockdist.matmul(local, "s3://matrices/b.zarr", "s3://results/c.zarr", client=client,
                           storage_options=options)
    assert_product(out[:], a, b)
    assert out.attrs["blockdist"]["a"]["name"] == str(local.resolve())
    assert s3.keys("results", "c.zarr/zarr.json") == ["c.zarr/zarr.json"]


@pytest.mark.timeout(LONG_TIMEOUT)
@pytest.mark.parametrize("backend", ["obstore", "s3fs"])
def test_matmul_survives_transient_failures(s3, proxy, client, data, backend):
    options = storage_options(proxy.endpoint, backend=backend)
    a, b = data
    put("s3://matrices/a.zarr", a, options)
    put("s3://matrices/b.zarr", b, options)
    proxy.configure(every=5, faults=("503", "reset", "truncate", "500"))
    try:
        out = blockdist.matmul("s3://matrices/a.zarr", "s3://matrices/b.zarr", "s3://matrices/c.zarr",
                               client=client, storage_options=options)
        stats = proxy.stats
    finally:
        proxy.configure(every=0)
    assert sum(stats.faults.values()) >= 4 and set(stats.faults) >= {"503", "reset", "500"}, stats
    assert_product(get("s3://matrices/c.zarr", storage_options(s3.endpoint)), a, b)
    assert out.attrs["blockdist"]["status"] == "complete"


def test_the_cli_rides_out_throttling_and_slow_answers_and_reports_its_read_rate(s3, proxy, client, data):
    a, b = data
    direct = storage_options(s3.endpoint)
    put("s3://matrices/a.zarr", a, direct)
    put("s3://matrices/b.zarr", b, direct)
    proxy.configure(every=3, faults=("503", "reset"), delay=0.01)  # SlowDown on every third request, all slow
    try:
        result = subprocess.run([*BLOCKDIST, "matmul", "s3://matrices/a.zarr", "s3://matrices/b.zarr",
                                 "s3://matrices/c.zarr", "--scheduler", client.scheduler.address,
                                 *[f"--storage-option={k}={v}" for k, v in storage_options(proxy.endpoint).items()]],
                                capture_output=True, text=True, timeout=300)
        stats = proxy.stats
    finally:
        proxy.configure(every=0, delay=0)
    assert result.returncode == 0, result.stderr
    assert stats.faults.get("503", 0) >= 2, stats
    assert re.search(r"read rate     [\d.]+ [KMG]?i?B/s per reading task", result.stdout), result.stdout
    assert_no_secret(result.stdout, result.stderr, secrets=(SECRET_KEY, ACCESS_KEY))
    assert_product(get("s3://matrices/c.zarr", direct), a, b)


def failing_run(client, data, options, fault) -> pytest.ExceptionInfo:  # type: ignore[no-untyped-def]
    """A product whose storage turns faulty (``fault()``) once its tasks are submitted."""
    a, b = data
    put("s3://matrices/a.zarr", a, options)
    put("s3://matrices/b.zarr", b, options)
    with pytest.raises(BlockdistError) as info:
        blockdist.run("s3://matrices/a.zarr", "s3://matrices/b.zarr", "s3://matrices/c.zarr", client=client,
                      storage_options=options, on_start=lambda plan, link: fault())
    return info


@pytest.mark.parametrize("backend", ["obstore"])  # s3fs's own backoff makes its run-out slow (15 s); its
def test_retries_that_run_out_fail_the_job_naming_the_url(s3, proxy, client, data, backend):  # retries: above
    """Every request fails once the job runs: the client's retries end, and the job fails (exit 1)
    naming the array, instead of retrying for ever; the output is marked failed."""
    options = storage_options(proxy.endpoint, backend=backend, retries=1)
    try:
        info = failing_run(client, data, options, lambda: proxy.configure(every=1, faults=("503",)))
        faults = sum(proxy.stats.faults.values())
    finally:
        proxy.configure(every=0)
    assert not isinstance(info.value, InputError)
    assert "s3://matrices/" in str(info.value) and faults >= 2
    assert_no_secret(str(info.value))
    # The last manifest save went to the same failing store: the output is not marked complete.
    assert get_manifest("s3://matrices/c.zarr", storage_options(s3.endpoint))["status"] != "complete"


@pytest.mark.timeout(LONG_TIMEOUT)
def test_a_request_slower_than_the_timeout_fails_the_job(s3, proxy, client, data):
    options = storage_options(proxy.endpoint, retries=0, timeout=0.5)
    try:
        info = failing_run(client, data, options, lambda: proxy.configure(delay=2.0))
    finally:
        # The proxy still forwards what it holds once the delay is over (a late manifest save
        # among them): let it, so nothing lands in the next test's bucket.
        time.sleep(2.5)
        proxy.configure(delay=0.0)
    assert "s3://matrices/" in str(info.value)
    assert "timed out" in str(info.value).lower() or "timeout" in str(info.value).lower()


def test_an_in_place_update_on_s3_is_refused_before_anything_runs(s3, client, data):
    options = storage_options(s3.endpoint)
    a, b = data
    put("s3://matrices/a.zarr", a, options)
    put("s3://matrices/b.zarr", b, options)
    put("s3://matrices/c.zarr", np.ones((300, 250)), options)
    before = s3.keys(BUCKET)
    with pytest.raises(InputError, match="in-place update .* needs a local output"):
        blockdist.matmul("s3://matrices/a.zarr", "s3://matrices/b.zarr", "s3://matrices/c.zarr", client=client,
                         storage_options=options, beta=1.0, c="s3://matrices/c.zarr")
    assert s3.keys(BUCKET) == before
    np.testing.assert_array_equal(get("s3://matrices/c.zarr", options), np.ones((300, 250)))


def test_resume_refuses_changed_data_on_s3(s3, client, data):
    """Same shape, same metadata, other values in one chunk: the fingerprint sees the objects."""
    options = storage_options(s3.endpoint)
    a, b = data
    put("s3://matrices/a.zarr", a, options)
    put("s3://matrices/b.zarr", b, options)
    job = blockdist.submit("s3://matrices/a.zarr", "s3://matrices/b.zarr", "s3://matrices/c.zarr", client=client,
                           storage_options=options, memory=WORKER_BASELINE + 2 * 2**20)
    job.cancel()
    with pytest.raises(BlockdistError):
        job.result()
    array = zarr.open_array(bstore.locate("s3://matrices/b.zarr", storage_options=options).store, mode="r+")
    array[:64, :64] = 0.0  # one chunk rewritten
    with pytest.raises(ResumeError, match="B = s3://matrices/b.zarr"):
        blockdist.submit("s3://matrices/a.zarr", "s3://matrices/b.zarr", "s3://matrices/c.zarr", client=client,
                         storage_options=options, resume=True)


def get_manifest(url: str, options: dict[str, Any]) -> dict[str, Any]:
    return bstore.stored_attributes(bstore.locate(url, storage_options=options))["blockdist"]


def test_a_failure_while_running_names_the_url_and_no_secret(s3, client, data):
    options = storage_options(s3.endpoint)
    a, b = data
    put("s3://matrices/a.zarr", a, options)
    put("s3://matrices/b.zarr", b, options)
    # Once the output exists and just before the tasks go out, the store starts refusing the key.
    with pytest.raises(BlockdistError) as info:  # the job, or the API's cleanup after it, fails: CLI exit 1
        blockdist.run("s3://matrices/a.zarr", "s3://matrices/b.zarr", "s3://matrices/c.zarr", client=client,
                      storage_options=options, on_start=lambda plan, link: s3.auth(True))
    text = "".join(traceback.format_exception(info.value))
    assert "s3://matrices/" in text
    assert "InvalidAccessKeyId" in text
    assert_no_secret(text, repr(info.value))
    logs = repr(client.get_worker_logs(n=200)) + repr(client.get_scheduler_logs(n=200))
    assert_no_secret(logs, secrets=(SECRET_KEY, ACCESS_KEY))


def test_overwrite_replaces_an_s3_array_but_never_something_else(s3, client, data):
    options = storage_options(s3.endpoint)
    a, b = data
    put("s3://matrices/a.zarr", a, options)
    put("s3://matrices/b.zarr", b, options)
    put("s3://matrices/c.zarr", np.ones((7, 7)), options)
    out = blockdist.matmul("s3://matrices/a.zarr", "s3://matrices/b.zarr", "s3://matrices/c.zarr",
                           client=client, storage_options=options, overwrite=True)
    assert_product(out[:], a, b)
    s3.client().put_object(Bucket=BUCKET, Key="notes/readme.txt", Body=b"keep me")
    with pytest.raises(OutputConflictError, match="s3://matrices/notes"):
        blockdist.matmul("s3://matrices/a.zarr", "s3://matrices/b.zarr", "s3://matrices/notes",
                         client=client, storage_options=options, overwrite=True)
    assert s3.keys(BUCKET, "notes") == ["notes/readme.txt"]


def test_the_cli_with_the_aws_environment(s3, client, data):
    env = environment(s3.endpoint)
    for name, shape, chunks in (("a", "300,200", "64,64"), ("b", "200,250", "50,100")):
        made = cli("random", f"s3://matrices/{name}.zarr", "--shape", shape, "--chunks", chunks,
                   "--seed", "3", env=env)
        assert made.returncode == 0, made.stderr
    plan = cli("plan", "s3://matrices/a.zarr", "s3://matrices/b.zarr", "--workers", "2", env=env)
    assert plan.returncode == 0, plan.stderr
    result = cli("matmul", "s3://matrices/a.zarr", "s3://matrices/b.zarr", "s3://matrices/c.zarr",
                 "--scheduler", client.scheduler.address, env=env)
    assert result.returncode == 0, result.stderr
    assert "s3://matrices/c.zarr" in result.stdout
    assert_no_secret(plan.stdout, plan.stderr, result.stdout, result.stderr, secrets=(SECRET_KEY, ACCESS_KEY))
    options = storage_options(s3.endpoint)
    assert_product(get("s3://matrices/c.zarr", options), get("s3://matrices/a.zarr", options),
                   get("s3://matrices/b.zarr", options))


# --------------------------------------------------------------------------- bad input


A, B, C = "s3://matrices/a.zarr", "s3://matrices/b.zarr", "s3://matrices/c.zarr"


@dataclass
class Case:
    error: type[Exception]
    url: str  #: the URL the message must name
    a: str = A
    b: str = B
    out: str = C
    options: dict[str, Any] | None = None  #: storage options over the good ones
    auth: bool = False  #: switch moto's IAM authentication on
    via_env: bool = False  #: the CLI gets the options as AWS_* variables


def _cases(s3: MotoS3) -> dict[str, Callable[[], Case]]:
    def wrong_secret() -> Case:
        key, _ = s3.iam_user()
        return Case(StorageAccessError, A, auth=True,
                    options={"access_key_id": key, "secret_access_key": WRONG_SECRET})

    unknown_key = {"access_key_id": "AKIANOSUCHKEY0000000", "secret_access_key": WRONG_SECRET}
    return {
        "missing bucket": lambda: Case(BucketNotFoundError, "s3://nobucket/a.zarr", a="s3://nobucket/a.zarr"),
        "missing array": lambda: Case(ArrayNotFoundError, "s3://matrices/no.zarr", b="s3://matrices/no.zarr"),
        "a group, not an array": lambda: Case(ArrayNotFoundError, "s3://matrices/group.zarr",
                                              b="s3://matrices/group.zarr"),
        "unknown key": lambda: Case(StorageAccessError, A, options=unknown_key, auth=True, via_env=True),
        "wrong secret": wrong_secret,
        "unreachable endpoint": lambda: Case(StorageUnreachableError, A, via_env=True,
                                             options={"endpoint_url": f"http://127.0.0.1:{closed_port()}"}),
        "output exists": lambda: Case(OutputExistsError, "s3://matrices/old.zarr", out="s3://matrices/old.zarr"),
        "output is an input": lambda: Case(OutputConflictError, B, out=B),
        "output inside an input": lambda: Case(OutputConflictError, f"{A}/c.zarr", out=f"{A}/c.zarr"),
        "output bucket missing": lambda: Case(BucketNotFoundError, "s3://nobucket/c.zarr",
                                              out="s3://nobucket/c.zarr"),
    }


CASES = ["missing bucket", "missing array", "a group, not an array", "unknown key", "wrong secret",
         "unreachable endpoint", "output exists", "output is an input", "output inside an input",
         "output bucket missing"]


@pytest.fixture
def bad(s3, data) -> Callable[[str], Case]:
    options = storage_options(s3.endpoint)
    put("s3://matrices/a.zarr", data[0], options)
    put("s3://matrices/b.zarr", data[1], options)
    put("s3://matrices/old.zarr", np.zeros((2, 2)), options)
    zarr.create_group(bstore.locate("s3://matrices/group.zarr", storage_options=options).store)
    def make(name: str) -> Case:
        case = _cases(s3)[name]()
        case.options = {**options, **(case.options or {})}
        return case

    return make


@pytest.mark.parametrize("name", CASES)
def test_bad_input_via_the_api(s3, client, bad, monkeypatch, name):
    case = bad(name)
    before = s3.keys(BUCKET)

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("nothing may be created or submitted after bad input")

    monkeypatch.setattr(start, "create_output", never)
    monkeypatch.setattr(Graph, "submit", never)
    s3.auth(case.auth)
    with pytest.raises(case.error) as info:
        blockdist.matmul(case.a, case.b, case.out, client=client, storage_options=case.options)
    s3.auth(False)
    assert isinstance(info.value, InputError)
    assert case.url in str(info.value)
    assert_no_secret(str(info.value), repr(info.value), "".join(traceback.format_exception(info.value)))
    assert s3.keys(BUCKET) == before


@pytest.mark.parametrize("name", CASES)
def test_bad_input_via_the_cli(s3, client, bad, name):
    case = bad(name)
    before = s3.keys(BUCKET)
    if case.via_env:
        names = {"endpoint_url": "AWS_ENDPOINT_URL", "access_key_id": "AWS_ACCESS_KEY_ID",
                 "secret_access_key": "AWS_SECRET_ACCESS_KEY", "region": "AWS_REGION"}
        env, args = {names[k]: v for k, v in case.options.items()}, []
    else:
        env, args = {}, cli_options(case.options)
    s3.auth(case.auth)
    result = cli("matmul", case.a, case.b, case.out, "--scheduler", client.scheduler.address, *args, env=env)
    s3.auth(False)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert case.url in result.stderr
    assert "Traceback" not in result.stderr
    assert_no_secret(result.stdout, result.stderr)
    assert s3.keys(BUCKET) == before


def test_bad_storage_option_via_the_cli(s3, client):
    result = cli("plan", "s3://matrices/a.zarr", "s3://matrices/b.zarr",
                 *cli_options({"secret_key": SECRET_KEY, "endpoint_url": s3.endpoint}))
    assert result.returncode == 2 and "unknown storage option 'secret_key'" in result.stderr
    assert_no_secret(result.stdout, result.stderr)


def test_the_support_proxy_forwards_faithfully(s3, proxy):
    """The fault proxy itself: every method goes through, and faults are what they claim."""
    direct = s3.client()
    proxy.configure()
    via = boto3_client(proxy.endpoint)
    via.put_object(Bucket=BUCKET, Key="k", Body=b"x" * 1000)
    assert direct.get_object(Bucket=BUCKET, Key="k")["Body"].read() == b"x" * 1000
    assert via.head_object(Bucket=BUCKET, Key="k")["ContentLength"] == 1000
    via.delete_object(Bucket=BUCKET, Key="k")
    assert s3.keys(BUCKET) == []
    assert proxy.stats.methods == {"PUT": 1, "HEAD": 1, "DELETE": 1}
