"""Sizes, and how a task cuts its k range into panels."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockdist.tasks import _segments, panel_edges
from blockdist.units import format_size, parse_size


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


@given(st.integers(0, 5000), st.integers(1, 5000), st.integers(1, 40), st.integers(1, 40),
       st.integers(1, 8), st.integers(1, 8))
def test_segments_cover_k_and_stay_inside_their_panels(lo, length, ca, cb, ga, gb):
    hi = lo + length
    a_edges = panel_edges(lo, hi, ca * ga, ca)
    b_edges = panel_edges(lo, hi, cb * gb, cb)
    for edges, chunk in ((a_edges, ca), (b_edges, cb)):
        assert edges[0] == lo and edges[-1] == hi
        assert all(x < y for x, y in zip(edges, edges[1:]))
        assert all(e % chunk == 0 for e in edges[1:-1])  # panels start on chunk boundaries
    segments = _segments(a_edges, b_edges)
    assert segments[0][0] == lo and segments[-1][1] == hi
    assert all(s[1] == t[0] for s, t in zip(segments, segments[1:]))
    for s_lo, s_hi, ia, ib in segments:
        assert a_edges[ia] <= s_lo < s_hi <= a_edges[ia + 1]
        assert b_edges[ib] <= s_lo < s_hi <= b_edges[ib + 1]
