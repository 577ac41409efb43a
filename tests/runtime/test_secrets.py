"""Object-storage secrets never travel in the task graph (issue 17), against a loopback S3 API
server with IAM authentication on, so that a worker without the secret could not read a byte.

While a job runs, every task the scheduler holds is pickled and searched for the secret, as
are the scheduler's and workers' logs, the job's repr, the output's manifest, the dashboard
page's data and the progress events; the job still reads and writes with those credentials
(the workers got them from the job's worker plugin, forgotten when the job ends). With
``credentials="worker"`` the workers use their own environment and the client sends none.
"""

from __future__ import annotations

import json
import pickle
import threading
import time
import urllib.request
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
import zarr

import blockdist
import blockdist.storage
from blockdist.storage import locate
from tests.storage.s3_support import REGION, MotoS3

pytestmark = [pytest.mark.s3, pytest.mark.slow]

BUCKET = "secrets"


@pytest.fixture(scope="module")
def server():
    with MotoS3() as moto:
        moto.create_bucket(BUCKET)
        key, secret = moto.iam_user("reader-writer")
        moto.auth(True)
        yield moto, key, secret
        moto.auth(False)


def _scan_tasks(needles: list[bytes], dask_scheduler=None) -> dict:
    """Pickle every task's run_spec as the scheduler holds it and look for ``needles``."""
    import cloudpickle as cp

    found, scanned = [], 0
    for key, state in dask_scheduler.tasks.items():
        if not str(key).startswith("blockdist"):
            continue
        blob = cp.dumps(state.run_spec)
        scanned += 1
        found += [str(key) for needle in needles if needle in blob]
    plugins = [name for name in dask_scheduler.worker_plugins if "credentials" in str(name)]
    return {"scanned": scanned, "found": found, "credential_plugins": plugins}


def _put(url: str, values: np.ndarray, options: dict) -> None:
    ref = locate(url, storage_options=options)
    zarr.create_array(ref.store, data=values, chunks=(256, 256), compressors=None)


def test_no_task_log_repr_or_manifest_holds_the_secret(client, server, tmp_path: Path):
    moto, key, secret = server
    options = {"endpoint_url": moto.endpoint, "access_key_id": key, "secret_access_key": secret, "region": REGION}
    rng = np.random.default_rng(21)
    a, b = rng.standard_normal((2048, 1024)), rng.standard_normal((1024, 1024))
    _put(f"s3://{BUCKET}/a.zarr", a, options)
    _put(f"s3://{BUCKET}/b.zarr", b, options)
    needles = [secret.encode(), key.encode()]
    events: list = []
    client.subscribe_topic("blockdist-progress", events.append)
    job = blockdist.submit(f"s3://{BUCKET}/a.zarr", f"s3://{BUCKET}/b.zarr", f"s3://{BUCKET}/c.zarr",
                           client=client, storage_options=options, verify=True)
    scans = []
    while not job.done():
        scans.append(client.run_on_scheduler(_scan_tasks, needles))
        time.sleep(0.1)
    out = job.result()
    np.testing.assert_allclose(out[:], a @ b, rtol=1e-10, atol=1e-9)
    assert sum(s["scanned"] for s in scans) > 0, "the job ended before any scan saw its tasks"
    assert not [k for s in scans for k in s["found"]]
    assert any(s["credential_plugins"] for s in scans)  # the secrets went by plugin
    # ... and are forgotten with the job
    assert not client.run_on_scheduler(_scan_tasks, needles)["credential_plugins"]
    texts = [repr(job), job._repr_html_(), job.plan.summary(), json.dumps(dict(out.attrs)), repr(out),
             json.dumps(events, default=str),
             urllib.request.urlopen(client.dashboard_link.rsplit("/", 1)[0] + "/blockdist/jobs.json").read().decode(),
             json.dumps(client.get_scheduler_logs(n=10000), default=str),
             json.dumps(client.get_worker_logs(n=10000), default=str)]
    for text in texts:
        assert secret not in text and key not in text
    client.unsubscribe_topic("blockdist-progress")


def test_a_task_unpickled_without_the_job_plugin_is_refused_clearly(server):
    moto, key, secret = server
    options = {"endpoint_url": moto.endpoint, "access_key_id": key, "secret_access_key": secret}
    ref = locate(f"s3://{BUCKET}/a.zarr", storage_options=options)
    blob = cloudpickle.dumps(ref)
    assert secret.encode() not in blob
    from blockdist.storage import credentials

    saved = dict(credentials._remembered)
    credentials._remembered.clear()  # as in a worker process the job's plugin never reached
    try:
        unpickled = pickle.loads(blob)  # as the scheduler does with every task: it never reads
        with pytest.raises(blockdist.StorageAccessError, match="not given the credentials"):
            blockdist.storage.open_input(unpickled)
    finally:
        credentials._remembered.update(saved)


def test_credentials_from_the_workers_own_environment(server, tmp_path: Path, monkeypatch):
    from distributed import Client, LocalCluster

    moto, key, secret = server
    env = {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}
    for name, value in env.items():  # the client's own checks use its environment too
        monkeypatch.setenv(name, value)
    options = {"endpoint_url": moto.endpoint, "region": REGION, "credentials": "worker"}
    rng = np.random.default_rng(22)
    a = rng.standard_normal((512, 512))
    _put(f"s3://{BUCKET}/w.zarr", a, {**options, "credentials": "given"})
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                      env=env) as cluster, Client(cluster, set_as_default=False) as own:
        scans: list = []
        job = blockdist.submit(f"s3://{BUCKET}/w.zarr", f"s3://{BUCKET}/w.zarr", f"s3://{BUCKET}/w2.zarr",
                               client=own, storage_options=options)
        watcher = threading.Thread(target=lambda: [scans.append(own.run_on_scheduler(
            _scan_tasks, [secret.encode(), key.encode()])) for _ in range(3)])
        watcher.start()
        out = job.result()
        watcher.join()
        np.testing.assert_allclose(out[:], a @ a, rtol=1e-10, atol=1e-9)
        assert not [k for s in scans for k in s["found"]] and not [p for s in scans for p in s["credential_plugins"]]


def test_worker_credentials_refuse_a_given_secret():
    with pytest.raises(blockdist.InputError, match="credentials='worker' takes no key or secret"):
        locate("s3://b/x.zarr", storage_options={"credentials": "worker", "secret_access_key": "s", "key": "k"})
