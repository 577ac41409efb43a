"""``python -m blockdist.cli``: the ``blockdist`` command."""

from . import run

run()
