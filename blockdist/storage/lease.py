"""The lease file beside an output (``.OUT.blockdist-lease``, local or on S3): created only if
absent, atomically (``O_EXCL`` on a local disk, a conditional ``If-None-Match`` put on S3), so
that of two jobs starting on one output exactly one gets it. What a lease says and when it
may be taken over is :mod:`blockdist.runtime.lease`'s business; this module only reads,
creates, replaces and deletes the file.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from zarr.abc.store import Store
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import LocalStore

from .refs import ArrayRef
from .s3store import S3Store

SUFFIX = ".blockdist-lease"


class LeaseFile:
    """The lease file of one output."""

    def __init__(self, out: ArrayRef) -> None:
        self.out = out
        if out.local_path is not None:
            self._store: Store = LocalStore(out.local_path.parent)
            self.key = f".{out.local_path.name}{SUFFIX}"
            self.name = str(out.local_path.parent / self.key)
        elif out.remote is not None:
            parent, _, base = out.remote.config.prefix.rpartition("/")
            self._store = S3Store(replace(out.remote.config, prefix=parent))
            self.key = f".{base}{SUFFIX}"
            self.name = f"{out.remote.config.url.rsplit('/', 1)[0]}/{self.key}"
        else:
            raise ValueError(f"{out}: an output must be a local path or on S3 to hold a lease")

    def read(self) -> dict[str, Any] | None:
        """The lease, ``None`` where there is none, ``{}`` where it cannot be read as one."""
        if self.out.local_path is not None and not self.out.local_path.parent.is_dir():
            return None  # nothing can be there; the output's own checks say why it cannot be made
        buffer = sync(self._store.get(self.key, default_buffer_prototype()))
        if buffer is None:
            return None
        try:
            value = json.loads(buffer.to_bytes())
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def create(self, lease: dict[str, Any]) -> bool:
        """Write ``lease`` only if there is no lease file; whether it was written."""
        data = default_buffer_prototype().buffer.from_bytes(json.dumps(lease).encode())
        sync(self._store.set_if_not_exists(self.key, data))  # atomic; silent where one exists
        return (self.read() or {}).get("job") == lease.get("job")

    def replace(self, lease: dict[str, Any]) -> None:
        data = default_buffer_prototype().buffer.from_bytes(json.dumps(lease).encode())
        sync(self._store.set(self.key, data))

    def delete(self) -> None:
        sync(self._store.delete(self.key))
