"""Inputs as zarr writes them, on the shared cluster: any format, chunks absent (none, some, a
whole block-row or column, all) read as the fill value — and where it is 0 neither read nor
multiplied — and every product that takes them (transposes, split-k, Gram, A·v, beta·C0,
in place, top-k, chains, --verify) against numpy, whole.

``BLOCKDIST_INPUT_EXAMPLES`` sets how many products the property test draws (default 20).
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import blockdist
from blockdist.errors import InputError, MissingChunksError
from blockdist.planning import MachineModel
from tests.conftest import block_diagonal_values, random_data, write_array
from tests.input_formats import absences, expected_presence, formats, with_absent
from tests.oracle import assert_gemm, assert_product

EXAMPLES = int(os.environ.get("BLOCKDIST_INPUT_EXAMPLES", 20))
#: What the property test drew, printed at the end of a long run (``-s``).
DRAWN: Counter[str] = Counter()
sizes = st.integers(1, 40)


def operand(draw, folder: Path, name: str, shape: tuple[int, int], dtype: str, seed: int):  # type: ignore[no-untyped-def]
    """One operand as stored: its format, chunks, absent chunks and fill value drawn."""
    form = draw(formats())
    chunks = tuple(min(s, draw(st.integers(1, 16))) for s in shape)
    grid = (-(-shape[0] // chunks[0]), -(-shape[1] // chunks[1]))
    pattern, absent = draw(absences(grid))
    fill = draw(st.sampled_from([0, 0, 0, 1.5]))
    values = with_absent(random_data(np.random.default_rng(seed), shape, dtype), chunks, absent, fill)
    where = form.write(folder / f"{name}.zarr", values, chunks, fill)
    unit = (2 * chunks[0], 2 * chunks[1]) if form.shards else chunks
    units, _ = expected_presence(values, chunks, unit, fill)
    DRAWN.update([f"{name} v{form.zarr_format}", f"{name} order {form.order}", f"{name} '{form.separator}'",
                  f"{name} {form.compressor}", f"{name} absent: {pattern}", f"{name} fill {fill}"]
                 + [f"{name} big-endian"] * form.big_endian + [f"{name} shuffle filter"] * form.shuffle_filter
                 + [f"{name} sharded"] * form.shards + [f"{name} in a group ({form.in_group})"] * bool(form.in_group))
    return form, where, values, fill == 0 and not units.all()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])
@given(data=st.data(), m=sizes, k=sizes, n=sizes, transposes=st.tuples(st.booleans(), st.booleans()),
       dtype=st.sampled_from(["float64", "float64", "float32"]), seed=st.integers(0, 2**32 - 1))
def test_any_format_with_any_chunks_absent_multiplies_as_numpy_does(client, data, m, k, n, transposes, dtype, seed):
    draw = data.draw
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        a_shape, b_shape = ((k, m) if transposes[0] else (m, k)), ((n, k) if transposes[1] else (k, n))
        a_form, a_where, a, a_zero = operand(draw, folder, "a", a_shape, dtype, seed)
        _, b_where, b, b_zero = operand(draw, folder, "b", b_shape, dtype, seed + 1)
        options = {"client": client, "transpose_a": transposes[0], "transpose_b": transposes[1],
                   "verify": draw(st.booleans())}
        if draw(st.booleans()):  # tasks free: small tiles, so that many are empty or meet absent panels
            options["model"] = MachineModel(task_overhead_seconds=0)
            DRAWN["small tiles"] += 1
        if not a_form.v3_codec_for_output:  # the default output codec is A's: LZ4 has no v3 codec
            with pytest.raises(InputError, match=r"A's compressor LZ4.*has no Zarr v3 codec.*--out-codec"):
                blockdist.run(a_where, b_where, folder / "c.zarr", **options)
            assert not (folder / "c.zarr").exists()
            options["out_compressors"] = "zstd"
        result = blockdist.run(a_where, b_where, folder / "c.zarr", **options)
        assert result.plan.zero_blocks == (a_zero or b_zero)
        assert result.array.metadata.zarr_format == 3
        assert not options["verify"] or result.extra["verification"].ok
        op_a, op_b = (native(a.T) if transposes[0] else native(a)), (native(b.T) if transposes[1] else native(b))
        assert_product(result.array[...], op_a, op_b)
        if draw(st.booleans()):  # and the Gram matrix of op(A): tiles on and above the diagonal, by syrk
            DRAWN["gram"] += 1
            options = {k: v for k, v in options.items() if k not in ("transpose_a", "transpose_b")}
            gram = blockdist.gram(a_where, folder / "g.zarr", transpose=transposes[0], **options)
            assert_product(gram[...], op_a, op_a.T.copy())


def native(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=x.dtype.newbyteorder("="))


def test_the_draws_cover_every_format_and_pattern_in_a_long_run():
    """Says what the property test drew (run with ``-s`` after it, and a large BLOCKDIST_INPUT_EXAMPLES)."""
    if DRAWN:
        print("\ndrawn:", ", ".join(f"{key} {count}" for key, count in sorted(DRAWN.items())))
    assert EXAMPLES >= 1


# --- the products that take absent blocks too --------------------------------------------------
def block_diagonal(folder: Path, name: str, n: int, chunk: int, seed: int, **options) -> tuple[Path, np.ndarray]:
    """A block-diagonal matrix written with zarr's defaults (its zero blocks not stored)."""
    x = block_diagonal_values(n, chunk, seed)
    zarr.create_array(str(folder / name), data=x, chunks=(chunk, chunk), **options)
    return folder / name, x


@pytest.mark.parametrize("partials", ["memory", "storage"])
def test_zero_blocks_are_skipped_in_split_k_with_each_tile_verified(client, tmp_path, partials):
    rng = np.random.default_rng(1)
    a, b = random_data(rng, (40, 6000), "float64"), random_data(rng, (6000, 30), "float64")
    a[:, 100:3000] = 0  # 29 of A's 60 k-chunks hold zeros only
    b[4200:4900] = 0  # and 10 of B's 86, which do not line up with A's
    zarr.create_array(str(tmp_path / "a.zarr"), data=a, chunks=(40, 100))
    zarr.create_array(str(tmp_path / "b.zarr"), data=b, chunks=(70, 30))
    model = MachineModel(zstd_read_bytes_per_second=1e5, task_overhead_seconds=0)  # reading slow: k is cut
    result = blockdist.run(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client, model=model,
                           verify=True, memory="1GB", partials=partials)
    plan = result.plan
    assert plan.zero_blocks and plan.k_splits > 1 and plan.flops_computed < 0.55 * plan.flops
    assert 1 < len(plan.present_pieces(next(plan.grid.tiles()))) < plan.k_splits  # some k-ranges have no work
    assert result.stats.tasks == plan.block_tasks and result.extra["verification"].ok
    assert_product(result.array[:], a, b)
    assert blockdist.verify(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client).ok


def test_a_gram_matrix_and_a_vector_product_of_a_matrix_with_absent_blocks(client, tmp_path):
    x_path, x = block_diagonal(tmp_path, "x.zarr", 80, 16, 3)
    g = blockdist.run(x_path, x_path, tmp_path / "g.zarr", client=client, transpose_b=True, verify=True,
                      memory="1GB", model=MachineModel(kernel_rows=32))  # several diagonal tiles, by syrk
    assert g.extra["verification"].ok
    assert_product(g.array[:], x, x.T.copy())
    # tasks free: tiles of one block each, whose diagonal ones by syrk meet absent panels
    gram = blockdist.submit_gram(x_path, tmp_path / "gram.zarr", client=client, verify=True,
                                 model=MachineModel(task_overhead_seconds=0))
    assert_product(gram.result()[:], x, x.T.copy())
    assert gram.plan.grid.shape[0] > 1 and gram.verification.ok
    v = random_data(np.random.default_rng(4), (80,), "float64")
    zarr.create_array(str(tmp_path / "v.zarr"), data=v, chunks=(16,))
    y = blockdist.matmul(x_path, tmp_path / "v.zarr", tmp_path / "y.zarr", client=client)
    np.testing.assert_allclose(y[:], x @ v, rtol=1e-12, atol=1e-12)


def test_tiles_with_no_present_product_are_absent_or_beta_c0(client, tmp_path):
    a = np.zeros((64, 48))
    a[:16] = random_data(np.random.default_rng(5), (16, 48), "float64")  # only A's first block-row is stored
    zarr.create_array(str(tmp_path / "a.zarr"), data=a, chunks=(16, 16))
    b = random_data(np.random.default_rng(6), (48, 32), "float64")
    write_array(tmp_path / "b.zarr", b, (16, 16))
    c0 = random_data(np.random.default_rng(7), (64, 32), "float64")
    write_array(tmp_path / "c0.zarr", c0, (16, 16))
    plain = blockdist.run(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c.zarr", client=client, memory="1GB",
                          model=MachineModel(kernel_rows=16))
    assert plain.plan.empty_tiles and not plain.plan.writes_empty_tiles
    assert_product(plain.array[:], a, b)
    assert len(list((tmp_path / "c.zarr" / "c").rglob("*"))) < 16  # the empty tiles' chunks are not written
    gemm = blockdist.run(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "d.zarr", client=client, alpha=2.0,
                         beta=0.5, c=tmp_path / "c0.zarr")
    assert gemm.plan.writes_empty_tiles
    assert_gemm(gemm.array[:], a, b, 2.0, 0.5, c0)
    blockdist.matmul(tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "c0.zarr", client=client, beta=-1.0,
                     c=tmp_path / "c0.zarr")  # in place: the empty tiles become −C0
    assert_gemm(zarr.open_array(str(tmp_path / "c0.zarr"))[:], a, b, 1.0, -1.0, c0)


def test_top_k_and_a_chain_over_absent_blocks(client, tmp_path):
    q_path, q = block_diagonal(tmp_path, "q.zarr", 48, 16, 8)
    corpus = random_data(np.random.default_rng(9), (60, 48), "float64")
    corpus[16:40] = 0
    zarr.create_array(str(tmp_path / "corpus.zarr"), data=corpus, chunks=(20, 16))
    indices, scores = blockdist.topk(q_path, tmp_path / "corpus.zarr", 5, tmp_path / "top.zarr", client=client)
    expected = np.sort(q @ corpus.T, axis=1)[:, ::-1][:, :5]
    np.testing.assert_allclose(scores[:], expected, rtol=1e-12, atol=1e-12)
    s = q @ corpus.T
    np.testing.assert_allclose(np.take_along_axis(s, indices[:], axis=1), scores[:], rtol=1e-12, atol=1e-12)
    zarr.create_array(str(tmp_path / "ct.zarr"), data=corpus.T.copy(), chunks=(16, 20))
    chain = blockdist.multi_dot([q_path, q_path, tmp_path / "ct.zarr"], tmp_path / "abc.zarr", client=client,
                                out_compressors="none")
    np.testing.assert_allclose(chain[:], q @ q @ corpus.T, rtol=1e-10, atol=1e-10)


# --- refusals before any work ------------------------------------------------------------------
def test_require_all_chunks_refuses_before_any_work_naming_the_first_absent(tmp_path):
    a_path, _ = block_diagonal(tmp_path, "a.zarr", 64, 16, 10)
    with pytest.raises(MissingChunksError, match=r"A = .*a\.zarr: 4 of 16 chunks stored, the rest read as 0 "
                                                 r"\(the first absent: c/0/1, c/0/2, c/0/3\)"):
        blockdist.matmul(a_path, a_path, tmp_path / "c.zarr", require_all_chunks=True)
    assert not (tmp_path / "c.zarr").exists()


def test_an_unfinished_blockdist_output_is_no_input(client, tmp_path):
    a_path, a = block_diagonal(tmp_path, "a.zarr", 32, 16, 11)
    c = blockdist.matmul(a_path, a_path, tmp_path / "c.zarr", client=client)
    manifest = dict(c.attrs["blockdist"], status="running", done=[])
    c.update_attributes({"blockdist": manifest})
    with pytest.raises(InputError, match=r"A = .*c\.zarr: it holds an unfinished blockdist job \(running, 0 of \d+ "
                                         r"tiles done\); its chunks not yet written are not zeros"):
        blockdist.plan(tmp_path / "c.zarr", a_path)


def test_a_scalar_operand_is_refused_as_numpy_refuses_it(tmp_path):
    scalar = np.random.default_rng(12).random(())[()]
    with pytest.raises(ValueError) as numpy_says:
        np.matmul(scalar, np.ones((2, 2)))
    with pytest.raises(InputError, match="matmul takes matrices and vectors") as refused:
        blockdist.matmul(scalar, np.ones((2, 2)), tmp_path / "c.zarr")
    assert str(numpy_says.value) in str(refused.value)
    write_array(tmp_path / "a.zarr", np.ones((2, 2)), (2, 2))
    with pytest.raises(InputError, match=r"Input operand 1 does not have enough dimensions"):
        blockdist.plan(tmp_path / "a.zarr", 3.0)


@pytest.mark.s3
def test_inputs_written_by_zarrs_defaults_with_zero_blocks_on_s3(client):
    from blockdist.storage import locate
    from tests.storage.s3_support import MotoS3, storage_options

    a = block_diagonal_values(96, 16, 13)
    b = random_data(np.random.default_rng(14), (96, 64), "float64")
    b[32:48, :32] = 0  # one shard's two inner chunks hold zeros only: the shard stores the other two
    b[64:96] = 0  # and two shards are zeros throughout: not stored at all
    with MotoS3() as server:
        server.create_bucket("inputs")
        options = storage_options(server.endpoint)
        zarr.create_array(locate("s3://inputs/a.zarr", storage_options=options).store, data=a, chunks=(16, 16))
        zarr.create_array(locate("s3://inputs/b.zarr", storage_options=options).store, data=b, chunks=(16, 16),
                          shards=(32, 32))
        result = blockdist.run("s3://inputs/a.zarr", "s3://inputs/b.zarr", "s3://inputs/c.zarr", client=client,
                               storage_options=options)
        assert "A: 6 of 36 chunks stored, the rest read as 0; B: 14 of 24 chunks stored" in result.plan.summary()
        assert result.plan.zero_blocks and result.stats.bytes_read < 0.5 * (a.nbytes + b.nbytes)
        assert_product(zarr.open_array(locate("s3://inputs/c.zarr", storage_options=options).store)[:], a, b)


def test_a_randomized_svd_of_a_matrix_with_absent_blocks(client, tmp_path):
    rng = np.random.default_rng(15)
    x = rng.standard_normal((300, 6)) @ rng.standard_normal((6, 120))
    x[50:200] = 0
    x[:, 80:] = 0
    zarr.create_array(str(tmp_path / "x.zarr"), data=x, chunks=(50, 40))
    _, s, _ = blockdist.svd(tmp_path / "x.zarr", 4, out=tmp_path / "u.zarr", seed=1, client=client)
    np.testing.assert_allclose(s, np.linalg.svd(x, compute_uv=False)[:4], rtol=1e-8)


def test_output_chunks_that_join_chunks_of_absent_and_stored_blocks(client, tmp_path):
    a_path, a = block_diagonal(tmp_path, "a.zarr", 96, 16, 16)
    b = random_data(np.random.default_rng(17), (96, 72), "float64")
    b[:, 24:48] = 0  # columns of B's that zarr stores nowhere
    zarr.create_array(str(tmp_path / "b.zarr"), data=b, chunks=(16, 24))
    result = blockdist.run(a_path, tmp_path / "b.zarr", tmp_path / "c.zarr", client=client, out_chunks=(48, 48))
    assert result.plan.zero_blocks and result.plan.tile_rows % 48 == 0  # tiles own whole output chunks
    assert_product(result.array[:], a, b)
