"""The ``blockdist`` command line.

Exit status: 0 on success, 2 for bad input or usage (nothing is written), 1 for a failure
while running. Messages go to stderr; results to stdout. ``parser`` declares the commands,
``arguments`` the argument types, ``commands`` and ``tune`` what each command does.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..errors import BlockdistError, InputError
from . import commands
from .parser import build_parser
from .tune import run as tune

__all__ = ["build_parser", "main"]

_HANDLERS = {"matmul": commands.matmul, "plan": commands.plan, "random": commands.random, "demo": commands.demo,
             "verify": commands.verify, "gram": commands.gram, "tune": tune}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _HANDLERS[args.command](args)
    except InputError as error:
        print(f"blockdist {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BlockdistError as error:
        print(f"blockdist {args.command}: failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"blockdist {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
