"""The job manifest kept in the output's attributes, so a job can be resumed and trusted.

The output's ``zarr.json`` carries, under ``attributes["blockdist"]``::

    {"version": 1, "token": "…", "status": "running" | "failed" | "cancelled" | "complete",
     "a": {"name": …, "fingerprint": …}, "b": {…}, "plan": Plan.to_dict(), "done": [tile, …],
     "operation": {"transpose_a": …, "alpha": …, …},
     "figures": {"seconds": …, "gflops_per_second": …, "bytes_read": …, "activity_seconds": {…}, …}}

``figures`` is how the run went (the last run's, for a resumed job), set when it ends.

``done`` lists finished output tiles by number (see :class:`blockdist.planning.TileGrid`). A
tile is recorded only after its task has written all of its chunks, so every listed tile is
final; a tile written but not yet recorded is simply computed again (tile writes are
idempotent). Names are credential-free; fingerprints are digests, never contents. A workload
built on products (an SVD, a PCA, top-k) keeps its own record beside or instead of this
manifest (:mod:`.workload`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from ..errors import ResumeError
from ..planning import Plan

VERSION = 1
KEY = "blockdist"


class Status(enum.StrEnum):
    RUNNING = "running"
    FAILED = "failed"
    CANCELLED = "cancelled"
    COMPLETE = "complete"


@dataclass
class Manifest:
    """The manifest of one job; the job's watcher updates ``status`` and ``done`` as tiles finish."""

    token: str
    a: dict[str, str]  #: {"name": …, "fingerprint": …}
    b: dict[str, str]
    plan: Plan
    status: Status = Status.RUNNING
    done: set[int] = field(default_factory=set)
    operation: dict[str, Any] = field(default_factory=dict)  #: alpha, beta, transposes (Operation.to_json)
    figures: dict[str, Any] = field(default_factory=dict)  #: how the run went (rates, seconds per activity)

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, "token": self.token, "status": str(self.status), "a": self.a, "b": self.b,
                "plan": self.plan.to_dict(), "done": sorted(self.done), "operation": self.operation,
                **({"figures": self.figures} if self.figures else {})}

    @classmethod
    def from_attributes(cls, attributes: dict[str, Any] | None, where: str) -> Manifest:
        data = (attributes or {}).get(KEY)
        if not isinstance(data, dict) or data.get("version") != VERSION or "plan" not in data:
            raise ResumeError(f"{where} has no blockdist job manifest, so there is nothing to resume; "
                              "run without --resume (and with --overwrite to replace it)")
        try:
            manifest = cls(token=str(data["token"]), a=dict(data["a"]), b=dict(data["b"]),
                           plan=Plan.from_dict(data["plan"]), status=Status(data["status"]),
                           done={int(t) for t in data["done"]}, operation=dict(data.get("operation", {})),
                           figures=dict(data.get("figures", {})))
            grid = manifest.plan.grid  # every figure the plan is rebuilt from must make sense
            computed = {t.number for t in grid.tiles()}
            stray = sorted(manifest.done - computed)
            if stray:
                raise ValueError(f"tile {stray[0]} is listed as done, but the plan has no such tile")
            for role in ("a", "b"):
                str(manifest.__dict__[role]["fingerprint"])
        except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError) as error:
            detail = f"missing {error}" if isinstance(error, KeyError) else str(error)
            raise ResumeError(f"{where}/zarr.json: its blockdist manifest is damaged ({detail[:200]}), so it cannot "
                              "be resumed; run with --overwrite to compute it again") from None
        return manifest

    def check_inputs(self, a: dict[str, str], b: dict[str, str], where: str) -> None:
        for role, stored, given in (("A", self.a, a), ("B", self.b, b)):
            if stored["fingerprint"] != given["fingerprint"]:
                raise ResumeError(
                    f"cannot resume {where}: it was computed from {role} = {stored['name']}, and "
                    f"{given['name']} is not that array as it was (its metadata or chunks differ); "
                    "use --overwrite to start again"
                )
