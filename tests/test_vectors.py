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


# ----------------------------------------------------------------------------- WordVectors against gensim's

# Planted: 'queen' answers man:king :: woman:?, 'rome' answers france:paris :: italy:?, and 'King' (a case variant of
# 'king', after it) points exactly at the first answer, so only a case-insensitive evaluation skips it.
KV_WORDS = ["the", "king", "queen", "man", "woman", "paris", "france", "rome", "italy", "King", "berlin"]
KV_WORDS += [f"w{i}" for i in range(25)]
ANALOGIES = """: family
man king woman queen
MAN KING WOMAN QUEEN
man king woman prince
the man king woman
: capitals
france paris italy rome
france paris germany berlin
france paris italy berlin
: empty
"""
PAIRS = """# word1\tword2\tscore
king\tqueen\t8.5
man\twoman\t7.0
KING\tman\t6.1
paris\tfrance\t9.0
rome\tberlin\t5.5
w1\tw2\t1.0
w3\tw4\t2.5
w5\tzebra\t3.0
the\tw7\t0.5
"""


def _kv_vectors(seed=5, D=6):
    """Random rows of norms 0.2 to 5 (so dot products and cosines rank differently), with the analogies planted."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(len(KV_WORDS), D)) * rng.uniform(0.2, 5.0, size=(len(KV_WORDS), 1))
    unit = lambda w: W[KV_WORDS.index(w)] / np.linalg.norm(W[KV_WORDS.index(w)])
    target = unit("king") - unit("man") + unit("woman")
    W[KV_WORDS.index("King")] = 3.0 * target
    W[KV_WORDS.index("queen")] = 0.5 * target + 0.02 * rng.normal(size=D)
    W[KV_WORDS.index("rome")] = 2.0 * (unit("paris") - unit("france") + unit("italy"))
    return W.astype(np.float32)


@pytest.fixture(scope="module")
def both():
    W = _kv_vectors()
    kv = KeyedVectors(vector_size=W.shape[1])
    kv.add_vectors(KV_WORDS, W)
    return vectors.WordVectors(KV_WORDS, W), kv


def _assert_same_ranking(ours, theirs):
    """The same words in the same order, and the same scores to float32 rounding (3CosMul's quotients reach 40)."""
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "query, cosmul",
    [
        (dict(positive=["king"]), True),
        (dict(positive="queen", topn=3), True),
        (dict(positive=["king", "woman"], negative=["man"], topn=5), True),
        (dict(positive=["paris"], negative=["france", "italy"], topn=36), True),
        (dict(positive=[("king", 2.0), "woman"], negative=[("man", 0.5)]), False),  # gensim: weights taken as they are
        (dict(positive=["rome"], restrict_vocab=12), False),  # gensim 4.4's cosmul ignores restrict_vocab
        (dict(negative=["the"], topn=4), False),  # cosmul needs a positive term
    ],
)
def test_most_similar_and_cosmul_equal_gensims(both, query, cosmul):
    ours, kv = both
    _assert_same_ranking(ours.most_similar(**query), kv.most_similar(**query))
    if cosmul:
        _assert_same_ranking(ours.most_similar_cosmul(**query), kv.most_similar_cosmul(**query))


def test_vector_queries_all_scores_similarity_and_doesnt_match_equal_gensims(both):
    ours, kv = both
    v = np.random.default_rng(6).normal(size=ours.vector_size).astype(np.float32) * 4
    _assert_same_ranking(ours.most_similar(v, topn=5), kv.most_similar(v, topn=5))
    _assert_same_ranking(ours.most_similar([v, "king"], ["man"]), kv.most_similar([v, "king"], ["man"]))
    np.testing.assert_allclose(ours.most_similar("king", topn=None), kv.most_similar("king", topn=None), atol=1e-6)
    for w1, w2 in [("king", "queen"), ("man", "w3"), ("the", "the"), ("King", "w24")]:
        assert ours.similarity(w1, w2) == pytest.approx(float(kv.similarity(w1, w2)), abs=1e-6)
    for words in (["king", "queen", "man", "paris"], ["w1", "w2", "w3", "w4", "w5"], ["france", "italy", "king"]):
        assert ours.doesnt_match(words) == kv.doesnt_match(words)
    assert ours["king"].tolist() == kv["king"].tolist() and ours[["man", "the"]].shape == (2, ours.vector_size)
    np.testing.assert_allclose(ours.get_vector("rome", norm=True), kv.get_vector("rome", norm=True), atol=1e-6)
    assert "King" in ours and "kingdom" not in ours and len(ours) == len(kv)
    assert ours.key_to_index["queen"] == kv.key_to_index["queen"] and ours.index_to_key == kv.index_to_key


@pytest.mark.parametrize(
    "options",
    [dict(), dict(case_insensitive=False), dict(dummy4unknown=True), dict(restrict_vocab=8), dict(restrict_vocab=3)],
)
def test_evaluate_word_analogies_equals_gensims(both, tmp_path, options):
    ours, kv = both
    path = tmp_path / "questions-words.txt"
    path.write_text(ANALOGIES, encoding="utf-8")
    score, sections = ours.evaluate_word_analogies(path, **options)
    want_score, want_sections = kv.evaluate_word_analogies(str(path), **options)
    assert sections == want_sections and score == pytest.approx(want_score, abs=1e-12)
    assert ours.evaluate_word_analogies(ANALOGIES.splitlines(), **options) == (score, sections)  # lines, not a path


def test_evaluate_word_analogies_plants_and_case_variants(both, tmp_path):
    ours, _ = both
    score, sections = ours.evaluate_word_analogies(ANALOGIES.splitlines())
    assert [s["section"] for s in sections] == ["family", "capitals", "empty", "Total accuracy"]
    assert sections[0]["correct"] == [("MAN", "KING", "WOMAN", "QUEEN")] * 2  # 'King' is king, so not an answer
    assert ("FRANCE", "PARIS", "ITALY", "ROME") in sections[1]["correct"] and score == pytest.approx(3 / 5)
    exact = ours.evaluate_word_analogies(ANALOGIES.splitlines(), case_insensitive=False)[1]
    assert ("man", "king", "woman", "queen") in exact[0]["incorrect"]  # 'King' is another word: it wins


@pytest.mark.parametrize(
    "options", [dict(), dict(case_insensitive=False), dict(dummy4unknown=True), dict(restrict_vocab=9)]
)
def test_evaluate_word_pairs_equals_gensims(both, tmp_path, options):
    ours, kv = both
    path = tmp_path / "wordsim.tsv"
    path.write_text(PAIRS, encoding="utf-8")
    pearson, spearman, oov = ours.evaluate_word_pairs(path, **options)
    want_pearson, want_spearman, want_oov = kv.evaluate_word_pairs(str(path), **options)
    np.testing.assert_allclose(tuple(pearson), tuple(want_pearson), atol=1e-5)
    np.testing.assert_allclose(tuple(spearman), tuple(want_spearman), atol=1e-5)
    assert oov == pytest.approx(want_oov) and pearson.statistic == pearson[0]  # scipy's results, as gensim's


@pytest.mark.parametrize("binary", [True, False])
def test_word_vectors_round_trip_through_gensim_both_ways(both, tmp_path, binary):
    ours, kv = both
    path = tmp_path / ("ours.bin" if binary else "ours.txt")
    ours.save_word2vec_format(path, binary=binary)
    theirs = KeyedVectors.load_word2vec_format(str(path), binary=binary)
    assert theirs.index_to_key == KV_WORDS
    np.testing.assert_array_equal(theirs.vectors, ours.vectors)
    path = tmp_path / ("theirs.bin" if binary else "theirs.txt")
    kv.save_word2vec_format(str(path), binary=binary)
    back = vectors.WordVectors.load_word2vec_format(path, binary=binary)
    assert back.index_to_key == KV_WORDS
    np.testing.assert_array_equal(back.vectors, kv.vectors)
    _assert_same_ranking(back.most_similar("king"), kv.most_similar("king"))


def test_word_vectors_bad_input_is_one_value_error_naming_it(both, tmp_path):
    ours, _ = both
    for call in (
        lambda: ours.most_similar("kingdom"),
        lambda: ours.most_similar("king", ["knight"]),
        lambda: ours.most_similar_cosmul(["king"], "duke"),
        lambda: ours.similarity("king", "emperor"),
        lambda: ours.doesnt_match(["king", "queen", "zebra"]),
        lambda: ours["zebra"],
    ):
        with pytest.raises(ValueError, match="unknown word '(kingdom|knight|duke|emperor|zebra)'") as e:
            call()
        assert isinstance(e.value, KeyError)  # what gensim raises
    with pytest.raises(ValueError, match="topn must be >= 1, got 0"):
        ours.most_similar("king", topn=0)
    with pytest.raises(ValueError, match="topn must be an integer, got '5'"):
        ours.most_similar("king", topn="5")
    with pytest.raises(ValueError, match="restrict_vocab must be >= 1, got 0"):
        ours.most_similar("king", restrict_vocab=0)
    with pytest.raises(ValueError, match="both empty"):
        ours.most_similar()
    with pytest.raises(ValueError, match=r"positive\[1\] must be a word.*vector of shape \[6\], got shape \(3,\)"):
        ours.most_similar(["king", np.ones(3)])
    bad = tmp_path / "q.txt"
    bad.write_text(": family\nman king woman queen\nman king woman\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"q\.txt.*line 3 must hold 4 words.*'man king woman'"):
        ours.evaluate_word_analogies(bad)
    bad.write_text("king\tqueen\t8.5\nman\twoman\tmany\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"q\.txt.*line 2 must be 'word1<sep>word2<sep>score'.*'man\\twoman\\tmany'"):
        ours.evaluate_word_pairs(bad)
    with pytest.raises(ValueError, match="nope.txt"):
        ours.evaluate_word_pairs(tmp_path / "nope.txt")
    with pytest.raises(ValueError, match="'king' more than once"):
        vectors.WordVectors(["king", "king"], np.ones((2, 3)))
    with pytest.raises(ValueError, match="3 rows but there are 2 words"):
        vectors.WordVectors(["king", "queen"], np.ones((3, 3)))
