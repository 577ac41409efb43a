"""How a task cuts its k range into panels, and where A's and B's panels overlap."""

from hypothesis import given
from hypothesis import strategies as st

from blockdist.planning.grid import panel_edges
from blockdist.worker.panels import segments as panel_segments


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
    segments = panel_segments(a_edges, b_edges)
    assert segments[0][0] == lo and segments[-1][1] == hi
    assert all(s[1] == t[0] for s, t in zip(segments, segments[1:]))
    for s_lo, s_hi, ia, ib in segments:
        assert a_edges[ia] <= s_lo < s_hi <= a_edges[ia + 1]
        assert b_edges[ib] <= s_lo < s_hi <= b_edges[ib + 1]
