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
    _SHIPPED = yaml.safe_load(_file)
dask.config.update_defaults(_SHIPPED)


def get(name: str) -> Any:
    """The setting ``blockdist.<name>`` (dashes or underscores alike).

    The shipped default answers when Dask's configuration lacks the key: a
    ``dask.config.set({"blockdist.…": …})`` entered before this module was imported restores,
    on leaving, a configuration without blockdist's defaults.
    """
    key = name.replace("_", "-")
    return dask.config.get(f"blockdist.{key}", default=_SHIPPED["blockdist"][key])
