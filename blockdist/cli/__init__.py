"""The ``blockdist`` command line.

Exit status: 0 on success (and only when the output is complete), 2 for bad input or usage
(nothing is written), 1 for a failure while running, 130 when interrupted (the manifest is
saved, so ``--resume`` picks up). Messages go to stderr; results to stdout. A reader that
closes stdout early (``| head``) does not stop the product: what is printed after that is
dropped. ``parser`` declares the commands, ``arguments`` the argument types, ``commands`` and
``tune`` what each command does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from ..errors import BlockdistError, InputError
from . import commands
from .chain import multi_dot
from .info import info
from .parser import build_parser
from .sketch import run as sketch
from .topk import topk
from .tune import run as tune

__all__ = ["build_parser", "main"]

_HANDLERS = {"matmul": commands.matmul, "plan": commands.plan, "random": commands.random, "demo": commands.demo,
             "verify": commands.verify, "gram": commands.gram, "tune": tune, "info": info,
             "multi-dot": multi_dot, "svd": sketch, "pca": sketch, "topk": topk}


class _SurvivesClosedReader:
    """A text stream that, once its reader has gone away, drops what is written instead of
    raising: the output is redirected to /dev/null so that nothing at exit complains either."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.reader_gone = False

    def _gone(self) -> None:
        self.reader_gone = True
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._gone()
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._gone()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def _streams_that_survive_closed_readers() -> Iterator[None]:
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _SurvivesClosedReader(sys.stdout), _SurvivesClosedReader(sys.stderr)  # type: ignore[assignment]
    try:
        yield
    finally:
        with contextlib.suppress(BrokenPipeError):
            sys.stdout.flush()
        sys.stdout, sys.stderr = saved


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # A command-line user reads blockdist's lines, not distributed's start-up and shutdown chatter.
    quiet = ["distributed", "distributed.client", "distributed.scheduler", "distributed.worker", "distributed.nanny"]
    import dask.config  # distributed sets its loggers' levels from this when it is first imported

    dask.config.set({"logging": dict.fromkeys(quiet, "critical")})
    for name in [*quiet, *[n for n in logging.root.manager.loggerDict if n.startswith("distributed.")]]:
        logging.getLogger(name).setLevel(logging.CRITICAL)  # and where it already was
    with _streams_that_survive_closed_readers():
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


def run() -> None:
    """The ``blockdist`` command: :func:`main`, then exit without the interpreter's teardown.

    Everything the command opened (clusters, clients, stores, files) is closed by then. What
    teardown would add is the finalising of native libraries' threads, which once aborted a
    finished command once on CI (SIGABRT after its error line was printed)."""
    code = main()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)
