"""Sizes."""

import pytest

from blockdist.planning.units import format_size, parse_size


@pytest.mark.parametrize(("text", "value"), [("1", 1), ("4GB", 4 * 10**9), ("1.5GiB", 3 * 2**29),
                                               ("512 MiB", 512 * 2**20), ("2e9", 2 * 10**9)])
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "abc", "4 XB", "-1GB", "0"])
def test_parse_size_refuses_nonsense(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_format_size():
    assert format_size(512) == "512 B"
    assert format_size(3 * 2**20) == "3.0 MiB"
