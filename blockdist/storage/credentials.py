"""Object-storage secrets kept out of everything that is pickled: task graphs above all.

An :class:`~.s3config.S3Config` that holds credentials pickles without them, carrying instead
a *reference*: a random name, meaningless outside this process, that this process remembers
(:func:`reference_for`). The secrets reach worker processes once per job, by a worker plugin
over the cluster's own connections (TLS where the cluster uses it;
:mod:`blockdist.runtime.credentials`), which :func:`install`\\ s them under the plugin's name;
an unpickled config looks its reference up (:func:`resolve`). A config whose credentials come
from the workers themselves (``storage_options={"credentials": "worker"}``: their environment
or instance role) pickles with none and no reference.
"""

from __future__ import annotations

import secrets as _random
import threading

Secrets = tuple[str | None, str | None, str | None]  #: access key id, secret access key, session token

_lock = threading.Lock()
_references: dict[Secrets, str] = {}  #: in the process that was given them
_remembered: dict[str, Secrets] = {}
_installed: dict[str, dict[str, Secrets]] = {}  #: plugin name → reference → secrets (workers)


def reference_for(secrets: Secrets) -> str:
    """The reference of ``secrets`` in this process (made on first use)."""
    with _lock:
        reference = _references.get(secrets)
        if reference is None:
            reference = _references[secrets] = f"credentials-{_random.token_hex(8)}"
            _remembered[reference] = secrets
        return reference


def resolve(reference: str) -> Secrets | None:
    """The secrets behind ``reference``: remembered here, or installed by a plugin."""
    with _lock:
        if reference in _remembered:
            return _remembered[reference]
        for entries in _installed.values():
            if reference in entries:
                return entries[reference]
    return None


def entries_for(references: set[str]) -> dict[str, Secrets]:
    """The secrets of ``references`` this process remembers, to hand to its workers."""
    with _lock:
        return {r: _remembered[r] for r in references if r in _remembered}


def install(name: str, entries: dict[str, Secrets]) -> None:
    with _lock:
        _installed[name] = dict(entries)


def uninstall(name: str) -> None:
    with _lock:
        _installed.pop(name, None)
