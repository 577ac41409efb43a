"""blockdist's settings: a ``blockdist`` namespace in Dask's configuration.

The defaults ship beside this module (``blockdist.yaml``) and are registered the way
distributed registers its own, so YAML files under ``~/.config/dask/``, ``DASK_BLOCKDIST__…``
environment variables and ``dask.config.set`` all reach them::

    >>> import dask
    >>> with dask.config.set({"blockdist.threads": 2}):
    ...     get("threads")
    2
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.config
import yaml

_DEFAULTS = Path(__file__).with_name("blockdist.yaml")

with _DEFAULTS.open() as _file:
    dask.config.update_defaults(yaml.safe_load(_file))


def get(name: str) -> Any:
    """The setting ``blockdist.<name>`` (dashes or underscores alike)."""
    return dask.config.get(f"blockdist.{name.replace('_', '-')}")
