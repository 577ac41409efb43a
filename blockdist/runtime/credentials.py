"""Object-storage secrets handed to a job's workers once, by a worker plugin, never in a task.

Tasks carry stores whose configs pickle without their secrets (:mod:`blockdist.storage.credentials`).
:func:`shared_credentials` registers, for the length of a job, a :class:`ShareCredentials`
worker plugin holding the secrets of the job's arrays: Dask sends it over the cluster's own
connections (TLS where the cluster uses it) to every worker, and to workers that join later;
each installs the secrets under the plugin's name, and forgets them when the plugin is
unregistered as the job ends. Arrays whose credentials come from the workers' own environment
(``storage_options={"credentials": "worker"}``) need no plugin.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from ..storage import ArrayRef
from ..storage import credentials as store_credentials


class ShareCredentials(WorkerPlugin):
    """The secrets of one job's arrays, installed on each worker while the job runs."""

    def __init__(self, name: str, entries: dict[str, store_credentials.Secrets]) -> None:
        self.name = name
        self._entries = entries

    def setup(self, worker: Any) -> None:
        store_credentials.install(self.name, self._entries)

    def teardown(self, worker: Any) -> None:
        store_credentials.uninstall(self.name)

    def __repr__(self) -> str:  # never the secrets
        return f"ShareCredentials({self.name!r}, {len(self._entries)} set(s) of credentials)"


def references(refs: Iterable[ArrayRef | None]) -> set[str]:
    """The references of the given credentials among ``refs``' stores."""
    found = set()
    for ref in refs:
        config = ref.remote.config if ref is not None and ref.remote is not None else None
        if config is not None and config.credentials == "given":
            secrets = (config.access_key_id, config.secret_access_key, config.session_token)
            if any(secrets):
                found.add(store_credentials.reference_for(secrets))
    return found


@contextlib.contextmanager
def shared_credentials(client: Any, refs: Iterable[ArrayRef | None], name: str) -> Iterator[None]:
    """Register the secrets of ``refs`` with ``client``'s workers until the block ends."""
    entries = store_credentials.entries_for(references(refs))
    if not entries:
        yield
        return
    plugin_name = f"blockdist-credentials-{name}"
    client.register_plugin(ShareCredentials(plugin_name, entries), name=plugin_name)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # a cluster gone already has forgotten them too
            client.unregister_worker_plugin(plugin_name)
