"""``python -m blockdist.cli``: the ``blockdist`` command."""

import sys

from . import main

sys.exit(main())
