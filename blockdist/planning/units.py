"""Parse and format byte sizes (pure, standard library only)."""

from __future__ import annotations

import re

_UNITS = {
    "": 1,
    "B": 1,
    "K": 10**3,
    "KB": 10**3,
    "M": 10**6,
    "MB": 10**6,
    "G": 10**9,
    "GB": 10**9,
    "T": 10**12,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")


def parse_size(text: str | int | float) -> int:
    """Return the number of bytes that ``text`` names.

    >>> parse_size("2GB"), parse_size("1.5 GiB"), parse_size(4096)
    (2000000000, 1610612736, 4096)
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text <= 0:
            raise ValueError(f"a size must be positive, got {text}")
        return int(text)
    match = _SIZE.match(str(text))
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(
            f"cannot read {text!r} as a size; write a number with an optional unit, "
            "such as 4GB, 512MiB or 2e9"
        ) from None
    value = float(match.group(1)) * _UNITS[unit]
    if value < 1:
        raise ValueError(f"a size must be at least one byte, got {text!r}")
    return int(value)


def format_shape(shape: tuple[int, ...]) -> str:
    """A stored shape as people read it: ``3×4``, a vector's length, a 0-d array's "scalar".

    >>> format_shape((3, 4)), format_shape((5,)), format_shape(())
    ('3×4', 'vector of 5', 'scalar')
    """
    if not shape:
        return "scalar"
    return f"vector of {shape[0]}" if len(shape) == 1 else "×".join(map(str, shape))


def format_size(nbytes: float) -> str:
    """Format a byte count for people (binary units).

    >>> format_size(0), format_size(1536), format_size(3 * 2**30)
    ('0 B', '1.5 KiB', '3.00 GiB')
    """
    value = float(nbytes)
    if abs(value) < 1024:
        return f"{int(value)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if abs(value) < 1024 or unit == "PiB":
            break
    digits = 2 if unit not in ("KiB", "MiB") else 1
    return f"{value:.{digits}f} {unit}"


_PREFIXES = ("", "k", "M", "G", "T", "P", "E")


def format_flops(flops: float, per_second: bool = False) -> str:
    """Floating-point work (or a rate of it) with the prefix that fits.

    >>> format_flops(2e18), format_flops(123456.0), format_flops(84.1e9, per_second=True), format_flops(0)
    ('2.00 EFLOP', '123 kFLOP', '84.1 GFLOP/s', '0 FLOP')
    """
    value, index = float(flops), 0
    while abs(value) >= 999.5 and index < len(_PREFIXES) - 1:
        value, index = value / 1000, index + 1
    digits = 0 if abs(value) >= 99.95 or value == 0 else (1 if abs(value) >= 9.995 else 2)
    return f"{value:.{digits}f} {_PREFIXES[index]}FLOP{'/s' if per_second else ''}"
