"""The memory model, term by term."""

from blockdist.planning.memory import READ_CONCURRENCY, PanelRead, panel_read_buffers, task_memory


def test_each_term_on_paper():
    tm, tn, da, db = 2048, 1024, 512, 256
    m = task_memory((tm, tn), PanelRead(da, (512, 256), 4), PanelRead(db, (256, 512), 8), itemsize=8,
                    scratch_rows=128, partial_tiles=3)
    assert m.c_tile == tm * tn * 8
    assert m.panels == 2 * (tm * da + db * tn) * 8
    # A's panel: 4 × 2 chunks of 512×256 float32; B's: 1 × 2 chunks of 256×512 float64.
    assert m.read_buffers == max(2 * 512 * 256 * 4 * 8, 2 * 256 * 512 * 8 * 2)
    assert m.cast_buffers == tm * da * 4  # only A is converted (float32 → float64)
    assert m.kernel_scratch == 128 * tn * 8
    assert m.partials == 3 * tm * tn * 8
    assert m.total == m.c_tile + m.panels + m.read_buffers + m.cast_buffers + m.kernel_scratch + m.partials


def test_read_buffers_are_bounded_by_zarrs_concurrency():
    many = panel_read_buffers(100 * 64, 64, 64, 64, 8)
    assert many == 2 * 64 * 64 * 8 * READ_CONCURRENCY


def test_describe_lists_terms_largest_first():
    read = PanelRead(256, (256, 256), 8)
    m = task_memory((1024, 1024), read, read, itemsize=8, scratch_rows=64)
    text = m.describe()
    assert text.startswith("c tile 8.0 MiB")
    assert "cast" not in text and "partials" not in text
