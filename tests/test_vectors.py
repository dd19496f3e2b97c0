"""Word-vector files: word2vec text/binary round trips, gensim interoperability, projector TSV, clear errors."""

import numpy as np
import pytest
from gensim.models import KeyedVectors  # in the test extra: the reference these tests compare with

from train.data import vectors

WORDS = ["the", "king", "queen", "naïve", "a_b", "x1"]


def _W(seed=0, V=len(WORDS), D=7):
    return np.random.default_rng(seed).normal(size=(V, D)).astype(np.float32) * 3


def test_text_round_trip_is_exact_for_float32(tmp_path):
    W = _W()
    path = tmp_path / "v.txt"
    vectors.save_word2vec_text(path, WORDS, W)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "6 7" and lines[4].split(" ")[0] == "naïve" and len(lines) == 7
    words, W2 = vectors.load_word2vec_text(path)
    assert words == WORDS and W2.dtype == np.float32
    np.testing.assert_array_equal(W2, W)  # 9 significant digits round-trip float32
    vectors.save_word2vec_text(path, WORDS, W, precision=4)
    np.testing.assert_allclose(vectors.load_word2vec_text(path)[1], W, rtol=5e-4)


@pytest.mark.parametrize("newline", [True, False])
def test_binary_round_trip_and_layout(tmp_path, newline):
    W = _W(1)
    path = tmp_path / "v.bin"
    vectors.save_word2vec_binary(path, WORDS, W, newline=newline)
    data = path.read_bytes()
    # the C layout, built independently: header, then word + ' ' + float32 LE (+ '\n')
    want = b"6 7\n" + b"".join(
        w.encode() + b" " + W[i].astype("<f4").tobytes() + (b"\n" if newline else b"") for i, w in enumerate(WORDS)
    )
    assert data == want
    words, W2 = vectors.load_word2vec_binary(path)
    assert words == WORDS
    np.testing.assert_array_equal(W2, W)


def test_projector_tsv(tmp_path):
    W = _W(2)
    vec, meta = vectors.save_projector_tsv(tmp_path / "proj", WORDS, W)
    rows = [list(map(float, line.split("\t"))) for line in open(vec, encoding="utf-8").read().splitlines()]
    np.testing.assert_array_equal(np.array(rows, np.float32), W)
    assert open(meta, encoding="utf-8").read().splitlines() == WORDS
    assert 'tensor_path: "vectors.tsv"' in (tmp_path / "proj" / "projector_config.pbtxt").read_text()


def test_errors_name_the_path_and_the_line(tmp_path):
    missing = tmp_path / "nope.txt"
    for load in (vectors.load_word2vec_text, vectors.load_word2vec_binary):
        with pytest.raises(ValueError, match="nope.txt"):
            load(missing)
        with pytest.raises(FileNotFoundError):
            load(missing)
    bad = tmp_path / "bad.txt"
    bad.write_text("2 3\nking 1 2 3\nqueen 1 2\n")
    with pytest.raises(ValueError, match=r"bad\.txt.*line 3"):
        vectors.load_word2vec_text(bad)
    bad.write_text("2 3\nking 1 2 3\nqueen 1 two 3\n")
    with pytest.raises(ValueError, match=r"bad\.txt.*line 3"):
        vectors.load_word2vec_text(bad)
    bad.write_text("2 3\nking 1 2 3\n")
    with pytest.raises(ValueError, match=r"bad\.txt.*ends after 1 of the 2"):
        vectors.load_word2vec_text(bad)
    bad.write_text("two 3\nking 1 2 3\n")
    with pytest.raises(ValueError, match="line 1"):
        vectors.load_word2vec_text(bad)
    trunc = tmp_path / "t.bin"
    vectors.save_word2vec_binary(trunc, WORDS, _W())
    trunc.write_bytes(trunc.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"t\.bin.*entry 6 of 6"):
        vectors.load_word2vec_binary(trunc)
    with pytest.raises(ValueError, match="word 1"):
        vectors.save_word2vec_text(tmp_path / "x.txt", ["a", "b c"], np.zeros((2, 2)))
    with pytest.raises(ValueError, match="rows"):
        vectors.save_word2vec_binary(tmp_path / "x.bin", ["a"], np.zeros((2, 2)))


@pytest.mark.parametrize("binary", [True, False])
def test_gensim_reads_ours_and_we_read_gensims(tmp_path, binary):
    W = _W(3)
    ours = tmp_path / ("ours.bin" if binary else "ours.txt")
    (vectors.save_word2vec_binary if binary else vectors.save_word2vec_text)(ours, WORDS, W)
    kv = KeyedVectors.load_word2vec_format(str(ours), binary=binary)
    assert list(kv.index_to_key) == WORDS
    np.testing.assert_allclose(kv.vectors, W, atol=1e-6, rtol=0)

    theirs = tmp_path / ("theirs.bin" if binary else "theirs.txt")
    kv2 = KeyedVectors(vector_size=W.shape[1])
    kv2.add_vectors(WORDS, _W(4))
    kv2.save_word2vec_format(str(theirs), binary=binary)
    words, W2 = (vectors.load_word2vec_binary if binary else vectors.load_word2vec_text)(theirs)
    assert words == WORDS
    # binary: float32 bits; text: gensim writes repr(float32), which round-trips to the same float32
    np.testing.assert_allclose(W2, kv2.vectors, atol=1e-6, rtol=0)
