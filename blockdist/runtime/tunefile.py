"""The tune file: where the planner's machine model is stored, and how it is read.

``blockdist tune`` (:mod:`.tune`) measures a :class:`~blockdist.planning.MachineModel` and
:func:`save` writes it; :func:`load_model` builds the model a plan uses from it::

    blockdist.tune-file  or  $BLOCKDIST_TUNE_FILE  or  $XDG_CONFIG_HOME/blockdist/tune.json  or  ~/.config/…
        │
        ▼
    load_model() → MachineModel(kernel_rows=…, panel_depth=…, flops_per_thread=…, …) → make_plan
                   (blockdist.model in Dask's configuration wins over the file, field by field)

The stored file names the CPU it was measured on; :func:`load_model` still uses it on another
CPU (a client often plans for workers elsewhere) but says so in :func:`describe`. Nothing here
measures or starts a cluster, so preparing a job can read the model without the measuring code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import warnings
from pathlib import Path
from typing import Any

from ..planning import MachineModel
from . import settings

#: Environment variable naming the tune file (overrides the user config location).
ENV_VAR = "BLOCKDIST_TUNE_FILE"
FORMAT_VERSION = 1
#: Fields of :class:`MachineModel` a tune file may set.
TUNABLE = ("flops_per_thread", "square_efficiency", "read_bytes_per_second", "write_bytes_per_second",
           "panel_depth", "kernel_rows", "zstd_read_bytes_per_second", "blosc_read_bytes_per_second")


def tune_path() -> Path:
    """Where the tune file lives: ``blockdist.tune-file``, ``$BLOCKDIST_TUNE_FILE``, else the user
    config folder.

    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {ENV_VAR: "/tmp/x.json"}):
    ...     str(tune_path())
    '/tmp/x.json'
    """
    explicit = settings.get("tune-file") or os.environ.get(ENV_VAR)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "blockdist" / "tune.json"


def model_from_dict(values: dict[str, Any], base: MachineModel | None = None) -> MachineModel:
    """A :class:`MachineModel` with the tunable fields of ``values`` (others are ignored).

    >>> model_from_dict({"kernel_rows": 512, "panel_depth": 2048, "colour": "red"}).kernel_rows
    512
    """
    base = base or MachineModel()
    if not isinstance(values, dict):
        raise ValueError(f"the model must be a mapping of rates, got {type(values).__name__}")
    known: dict[str, Any] = {}
    for name in TUNABLE:
        if name not in values:
            continue
        kind = type(getattr(base, name))
        value = kind(values[name])
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {values[name]!r}")
        known[name] = value
    return dataclasses.replace(base, **known)


def load_model(path: str | os.PathLike[str] | None = None) -> MachineModel:
    """The :class:`MachineModel` to plan with: ``blockdist.model`` settings over the tune
    file's values over the defaults."""
    overrides = settings.get("model") or {}
    fields = {f.name for f in dataclasses.fields(MachineModel)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        warnings.warn(f"blockdist: ignoring unknown blockdist.model settings {unknown}", stacklevel=2)
    return dataclasses.replace(_file_model(path), **{k: v for k, v in overrides.items() if k in fields})


def _file_model(path: str | os.PathLike[str] | None) -> MachineModel:
    """The tune file's model. A missing file gives the defaults silently; an unreadable or
    invalid one gives the defaults with a warning naming the file (planning never fails
    because of it)."""
    file = Path(path) if path is not None else tune_path()
    try:
        text = file.read_text()
    except FileNotFoundError:
        return MachineModel()
    except OSError as error:
        warnings.warn(f"blockdist: cannot read the tune file {file} ({error}); using defaults", stacklevel=2)
        return MachineModel()
    try:
        data = json.loads(text)
        return model_from_dict(data.get("model", {}))
    except (ValueError, TypeError, AttributeError) as error:
        warnings.warn(f"blockdist: ignoring the invalid tune file {file} ({error}); using defaults",
                      stacklevel=2)
        return MachineModel()


def describe(path: str | os.PathLike[str] | None = None) -> str:
    """One line on where the model comes from (for ``blockdist plan`` and logs)."""
    file = Path(path) if path is not None else tune_path()
    if not file.exists():
        return f"machine model: defaults (no tune file at {file}; run `blockdist tune`)"
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        return f"machine model: defaults (unreadable tune file {file})"
    cpu = data.get("machine", {}).get("cpu", "?")
    here = cpu_name()
    where = "" if cpu == here else f"; measured on {cpu}, this is {here}"
    return f"machine model: {file} ({data.get('measured_at', '?')}{where})"


def save(document: dict[str, Any], path: str | os.PathLike[str] | None = None) -> Path:
    """Write the tune file atomically, creating its folder."""
    file = Path(path) if path is not None else tune_path()
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(file.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=1) + "\n")
    tmp.replace(file)
    return file


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
