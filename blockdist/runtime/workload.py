"""One record for every workload output — an SVD's U, a PCA's scores, a top-k group — kept in
its attributes under ``blockdist-workload`` (:data:`WORKLOAD_KEY`)::

    {"workload": "svd" | "pca" | "topk", "version": 1,
     "status": "running" | "failed" | "cancelled" | "complete",
     "job": "<the token of the run that wrote it last>",
     "inputs": {"a": {"name": …, "fingerprint": …}, …},
     "parameters": {"rank": 4, "oversample": 10, "power_iters": 2, "seed": 7} | {"k": 10},
     "progress": {"done": 3, "total": 7, "unit": "passes" | "rows"},
     "results": {"singular_values": […], "seconds": …, …}}

A record whose status is not ``complete`` says that the output is not a result yet.
:func:`read_record` reads it for ``blockdist info`` and :func:`blockdist.open` (through
:func:`unfinished`), and reads the two forms blockdist wrote before it too: an SVD's or PCA's
``{"kind": …, "status": …, "rank": …}`` under the same key, and a top-k group's own ``topk``
attribute beside its job manifest. A product's output keeps its job manifest alone
(:mod:`.manifest`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..planning import Plan
from .manifest import KEY, Status

WORKLOAD_KEY = "blockdist-workload"
VERSION = 1
#: Where top-k's results said how far they were before this record (still read).
LEGACY_TOPK_KEY = "topk"
#: The workloads that write this record.
WORKLOADS = ("svd", "pca", "topk")


@dataclass(frozen=True)
class WorkloadRecord:
    """What a workload's output says of the run that wrote it (see the module's docstring)."""

    workload: str  #: "svd", "pca" or "topk"
    status: str  #: a :class:`~blockdist.runtime.manifest.Status`
    job: str  #: the token of the run that wrote it last ("" for an older record)
    inputs: dict[str, Any] = field(default_factory=dict)  #: role → {"name": …, "fingerprint": …}
    parameters: dict[str, Any] = field(default_factory=dict)
    progress: dict[str, Any] = field(default_factory=dict)  #: {"done": …, "total": …, "unit": …}
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.status == Status.COMPLETE

    def to_json(self) -> dict[str, Any]:
        return {"workload": self.workload, "version": VERSION, "status": str(self.status), "job": self.job,
                "inputs": self.inputs, "parameters": self.parameters, "progress": self.progress,
                "results": self.results}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkloadRecord:
        """The record stored as :meth:`to_json`; ``ValueError`` names what is wrong with it."""
        if data.get("workload") not in WORKLOADS or data.get("status") not in set(Status):
            workload, status = str(data.get("workload"))[:20], str(data.get("status"))[:20]
            raise ValueError(f"workload {workload!r}, status {status!r}")
        parts = {name: data.get(name) or {} for name in ("inputs", "parameters", "progress", "results")}
        if not all(isinstance(part, dict) for part in parts.values()):
            raise ValueError("inputs, parameters, progress and results must be mappings")
        return cls(str(data["workload"]), str(data["status"]), str(data.get("job", "")), **parts)

    def done(self) -> str:
        """How far it got: ``"3 of 7 passes done"`` (empty where an older record does not say)."""
        progress = self.progress
        if "done" not in progress:
            return ""
        return f"{progress['done']} of {progress.get('total', '?')} {progress.get('unit', 'steps')} done"

    def lines(self) -> list[str]:
        """The record as ``blockdist info`` prints it, one line a part, the same for every workload."""
        def listed(values: dict[str, Any]) -> str:
            return ", ".join(f"{name} {_short(value)}" for name, value in values.items()) or "-"

        state = f"{self.status}: {self.done()}" if self.done() else self.status
        inputs = ", ".join(f"{role} = {entry.get('name', '?') if isinstance(entry, dict) else entry}"
                           for role, entry in self.inputs.items())
        job = f" (job {self.job})" if self.job else ""
        return [f"workload      {self.workload}", f"status        {state}{job}",
                f"inputs        {inputs or '-'}", f"parameters    {listed(self.parameters)}",
                f"results       {listed(self.results)}"]


def _short(value: Any) -> str:
    if isinstance(value, list):
        shown = ", ".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in value[:6])
        return f"[{shown}{', …' if len(value) > 6 else ''}]"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def read_record(attributes: dict[str, Any] | None) -> WorkloadRecord | None:
    """The workload record in an output's attributes, or ``None`` where there is none (a
    product's output, or not blockdist's); an older form is read as this record, and a
    damaged one as a record of status ``failed`` that says so in its results."""
    attributes = attributes or {}
    data = attributes.get(WORKLOAD_KEY)
    if isinstance(data, dict) and "kind" in data and "workload" not in data:
        return _older_sketch(data)
    if isinstance(data, dict):
        try:
            return WorkloadRecord.from_json(data)
        except (ValueError, TypeError, KeyError) as error:
            workload = str(data.get("workload", "?"))[:20]
            return WorkloadRecord(workload, str(Status.FAILED), "", results={"damaged": str(error)[:200]})
    if isinstance(attributes.get(LEGACY_TOPK_KEY), dict):
        return _older_topk(attributes[LEGACY_TOPK_KEY], attributes.get(KEY))
    return None


def _older_sketch(data: dict[str, Any]) -> WorkloadRecord:
    """An SVD's or PCA's record as blockdist 0.2 wrote it: no job, no passes."""
    parameters = {name: data[name] for name in ("rank", "oversample", "power_iters") if name in data}
    kept = ("singular_values", "explained_variance", "explained_variance_ratio")
    results = {name: data[name] for name in kept if name in data}
    return WorkloadRecord(str(data.get("kind"))[:20], str(data.get("status"))[:20], "",
                          {"a": {"name": str(data.get("input", "?"))}}, parameters, {}, results)


def _older_topk(topk: dict[str, Any], manifest: Any) -> WorkloadRecord:
    """A top-k group as blockdist 0.2 wrote it: its ``topk`` figures beside the job's manifest."""
    manifest = manifest if isinstance(manifest, dict) else {}
    status = str(manifest.get("status") or (Status.COMPLETE if topk.get("complete") else Status.RUNNING))
    inputs = {role: manifest[role] for role in ("a", "b") if isinstance(manifest.get(role), dict)}
    progress = {"done": topk.get("rows_written", 0), "total": topk.get("rows", "?"), "unit": "rows"}
    return WorkloadRecord("topk", status, str(manifest.get("token", "")), inputs, {"k": topk.get("k")},
                          progress, figures_kept(manifest.get("figures")))


def figures_kept(figures: Any) -> dict[str, Any]:
    """What a record's results keep of a job's figures."""
    if not isinstance(figures, dict):
        return {}
    return {name: figures[name] for name in ("seconds", "bytes_read", "bytes_written") if name in figures}


def unfinished(attributes: dict[str, Any] | None) -> str | None:
    """What an output's attributes say of an unfinished run that made it, or ``None`` (complete,
    or not made by blockdist)."""
    record = read_record(attributes)
    if record is not None and not record.complete:
        done = f", {record.done()}" if record.done() else ""
        return f"it holds an unfinished blockdist {record.workload} ({record.status}{done})"
    if record is not None:
        return None
    data = (attributes or {}).get(KEY)
    if not isinstance(data, dict) or data.get("status") in (None, Status.COMPLETE) or "plan" not in data:
        return None
    try:
        done, total = len(data.get("done", [])), Plan.from_dict(data["plan"]).tiles
    except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError):
        return f"it holds an unfinished blockdist job ({str(data['status'])[:20]}) whose manifest is damaged"
    return f"it holds an unfinished blockdist job ({data['status']}, {done} of {total} tiles done)"


def how_to_finish(attributes: dict[str, Any] | None) -> str:
    """What finishes the unfinished run :func:`unfinished` names: a top-k job does not resume."""
    record = read_record(attributes)
    if record is not None and record.workload == "topk":
        return "a top-k job does not resume: start it again with --overwrite (overwrite=True)"
    return "finish it with --resume (resume=True), or start again with --overwrite"


__all__ = ["WORKLOAD_KEY", "WorkloadRecord", "how_to_finish", "read_record", "unfinished"]
