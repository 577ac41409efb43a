"""The job manifest kept in the output's attributes, so a job can be resumed and trusted.

The output's ``zarr.json`` carries, under ``attributes["blockdist"]``::

    {"version": 1, "token": "…", "status": "running" | "failed" | "cancelled" | "complete",
     "a": {"name": …, "fingerprint": …}, "b": {…}, "plan": Plan.to_dict(), "done": [tile, …]}

``done`` lists finished output tiles by number (``row * tile_columns + column``). A tile is
recorded only after its task has written all of its chunks, so every listed tile is final;
a tile written but not yet recorded is simply computed again (tile writes are idempotent).
Names are credential-free; fingerprints are digests, never contents.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

from .errors import InputError
from .plan import Plan
from .store import ArrayRef

VERSION = 1
KEY = "blockdist"


class ResumeError(InputError):
    """The output cannot be resumed with these inputs or this plan."""


def fingerprint(ref: ArrayRef, metadata: dict[str, Any]) -> str:
    """A digest of an input's metadata and, for local arrays, the names, sizes and times of
    its chunk files: a changed input changes it."""
    digest = hashlib.sha256(repr(sorted(_flatten(metadata))).encode())
    if ref.local_path is not None and ref.local_path.is_dir():
        for root, dirs, files in os.walk(ref.local_path):
            dirs.sort()
            for name in sorted(files):
                stat = os.stat(os.path.join(root, name))
                relative = os.path.relpath(os.path.join(root, name), ref.local_path)
                digest.update(f"{relative}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [item for k, v in value.items() if k != "attributes" for item in _flatten(v, f"{prefix}.{k}")]
    return [(prefix, repr(value))]


@dataclass
class Manifest:
    token: str
    a: dict[str, str]
    b: dict[str, str]
    plan: Plan
    status: str = "running"
    done: set[int] = field(default_factory=set)
    operation: dict[str, Any] = field(default_factory=dict)  #: alpha, beta, transposes (see operation.py)

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, "token": self.token, "status": self.status, "a": self.a, "b": self.b,
                "plan": self.plan.to_dict(), "done": sorted(self.done), "operation": self.operation}

    @classmethod
    def from_attributes(cls, attributes: dict[str, Any], where: str) -> Manifest:
        data = attributes.get(KEY)
        if not isinstance(data, dict) or data.get("version") != VERSION or "plan" not in data:
            raise ResumeError(f"{where} has no blockdist job manifest, so there is nothing to resume; "
                              "run without --resume (and with --overwrite to replace it)")
        return cls(token=data["token"], a=data["a"], b=data["b"], plan=Plan.from_dict(data["plan"]),
                   status=data["status"], done=set(data["done"]), operation=data.get("operation", {}))

    def check_inputs(self, a: dict[str, str], b: dict[str, str], where: str) -> None:
        for role, stored, given in (("A", self.a, a), ("B", self.b, b)):
            if stored["fingerprint"] != given["fingerprint"]:
                raise ResumeError(
                    f"cannot resume {where}: it was computed from {role} = {stored['name']}, and "
                    f"{given['name']} is not that array as it was (its metadata or chunks differ); "
                    "use --overwrite to start again"
                )
