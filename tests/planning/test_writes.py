"""The write-unit rule, pure: which storage objects a region of an array lies in, and the guard
that refuses tasks writing part of one or one between two (:mod:`blockdist.planning.writes`)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockdist.errors import PlanError
from blockdist.planning.writes import Region, WriteUnit, band_alignment, check_writes

UNIT = WriteUnit((3000, 2500), (250, 250), (1000, 1250))


def test_regions_of_whole_shards_with_one_writer_each_pass():
    tiles = [Region("tile 0", (0, 2000), (0, 1250)), Region("tile 1", (0, 2000), (1250, 2500)),
             Region("tile 2", (2000, 3000), (0, 2500))]  # rows 2000:3000: the last shards, ragged
    check_writes("C", UNIT, tiles)


@pytest.mark.parametrize(("regions", "words"), [
    ([Region("band 0", (0, 1500), (0, 2500)), Region("band 1", (1500, 3000), (0, 2500))],
     "band 0 (rows 0:1500, columns 0:2500) writes part of the shard of C at rows 1000:2000, columns 0:1250"),
    ([Region("tile 0", (0, 1000), (0, 2500)), Region("a mirror", (0, 2000), (1250, 2500))],
     "tile 0 (rows 0:1000, columns 0:2500) and a mirror (rows 0:2000, columns 1250:2500) both write the "
     "shard of C at rows 0:1000, columns 1250:2500"),
    ([Region("tile 0", (0, 1000), (0, 2400))],
     "writes part of the shard of C at rows 0:1000, columns 1250:2500"),
])
def test_a_part_of_an_object_or_an_object_of_two_writers_is_refused_naming_it(regions, words):
    with pytest.raises(PlanError, match="refusing a plan that could lose writes") as refused:
        check_writes("C", UNIT, regions)
    assert words in str(refused.value) and "(write unit: shards 1000×1250 (4×5 chunks of 250×250))" in str(
        refused.value)


def test_unsharded_arrays_are_written_in_whole_chunks():
    unit = WriteUnit((10, 7), (4, 4))
    assert unit.describe() == "chunks 4×4" and unit.edges == (4, 4)
    check_writes("C", unit, [Region("t", (0, 8), (0, 7)), Region("u", (8, 10), (0, 7))])  # ragged ends: whole
    with pytest.raises(PlanError, match="writes part of the chunk of C at rows 4:8, columns 0:4"):
        check_writes("C", unit, [Region("t", (0, 6), (0, 7))])


def test_a_symmetric_products_bands_fall_on_edges_of_both_axes():
    assert band_alignment((1000, 1250), symmetric=True) == 5000 and band_alignment((512, 512), True) == 512


@given(st.integers(1, 50), st.integers(1, 50), st.integers(1, 9), st.integers(1, 9), st.data())
def test_the_guard_passes_exactly_the_layouts_a_brute_force_count_passes(m, n, r, c, data):
    """Random cuts of a grid into regions (each a rectangle of the cuts): the guard refuses
    them exactly when some object is written in part or by two regions."""
    unit = WriteUnit((m, n), (r, c))
    def cuts(length: int) -> list[int]:
        inner = st.lists(st.integers(1, length - 1), max_size=4) if length > 1 else st.just([])
        return sorted({0, length, *data.draw(inner)})

    rows, cols = cuts(m), cuts(n)
    regions = [Region(f"{i},{j}", (rows[i], rows[i + 1]), (cols[j], cols[j + 1]))
               for i in range(len(rows) - 1) for j in range(len(cols) - 1)]
    writers: dict[tuple[int, int], set[str]] = {}
    for region in regions:
        for row in range(*region.rows):
            for col in range(*region.cols):
                writers.setdefault((row // r, col // c), set()).add(region.writer)
    safe = all(len(names) == 1 for names in writers.values())
    try:
        check_writes("C", unit, regions)
        refused = False
    except PlanError:
        refused = True
    assert refused == (not safe)
