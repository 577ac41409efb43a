"""Argument types of the command line: each refuses a bad value with a one-line message."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from ..planning import parse_size

T = TypeVar("T")


def pair(text: str) -> tuple[int, int]:
    try:
        first, second = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two integers like 4096,4096, got {text!r}") from None
    if first < 1 or second < 1:
        raise argparse.ArgumentTypeError(f"both sizes must be at least 1, got {text!r}")
    return first, second


def triple(text: str) -> tuple[int, int, int]:
    try:
        m, n, k = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three integers M,N,K, got {text!r}") from None
    if min(m, n, k) < 1:
        raise argparse.ArgumentTypeError(f"every size must be at least 1, got {text!r}")
    return m, n, k


def chunks(text: str) -> int | tuple[int, ...]:
    try:
        parts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected C or CM,CN,CK, got {text!r}") from None
    if len(parts) not in (1, 3) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected one or three positive sizes, got {text!r}")
    return parts[0] if len(parts) == 1 else parts


def scalar(text: str) -> float | complex:
    try:
        value = complex(text.replace(" ", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 2, -0.5 or 1+2j, got {text!r}") from None
    return value.real if value.imag == 0 else value


def size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _checked(text: str, convert: Callable[[str], T], expected: str, valid: Callable[[T], bool],
             invalid: str) -> T:
    """``convert(text)``, refused in one line when it cannot be read (``expected …``) or is not
    ``valid`` (``invalid``)."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not valid(value):
        raise argparse.ArgumentTypeError(f"{invalid}, got {text!r}")
    return value


def rate(text: str) -> float:
    """Bytes per second: ``1GB/s``, ``250MB/s`` or a number of bytes per second."""
    value = _checked(text, lambda t: parse_size(t.strip().removesuffix("/s")),
                     "a rate such as 1GB/s or 250MB/s", lambda v: v > 0, "a rate must be positive")
    return float(value)


def positive_float(text: str) -> float:
    return _checked(text, float, "a number", lambda v: v > 0, "must be positive")


def gflops(text: str) -> float:
    """GFLOP/s, as flops a second."""
    return positive_float(text) * 1e9


def seconds(text: str) -> float:
    return _checked(text, lambda t: float(t.strip().removesuffix("s")),
                    "a number of seconds such as 10 or 2.5", lambda v: v > 0, "must be more than 0 seconds")


def positive(text: str) -> int:
    return _checked(text, int, "a whole number", lambda v: v >= 1, "must be at least 1")


def storage_option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text.split('=')[0]!r}…")
    return key, value
