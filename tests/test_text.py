"""Tests for zoo.text, each against an independent computation (the lecture's table, loops, Counter, numpy)."""

import collections
import math

import numpy as np
import pytest
import scipy.sparse

from zoo.text import (
    UnknownWordError,
    Vocab,
    cooccurrence_matrix,
    noise_distribution,
    one_hot,
    ppmi,
    subsample_keep_prob,
    svd_embeddings,
    tokenize,
)

# ----------------------------------------------------------------------------- tokenize


def test_tokenize_keeps_apostrophes_and_drops_punctuation():
    assert tokenize("I don't like NLP, O'Neil's dog -- 3.5!") == [
        "i",
        "don't",
        "like",
        "nlp",
        "o'neil's",
        "dog",
        "3",
        "5",
    ]
    assert tokenize("Hello, World.", lower=False) == ["Hello", "World"]
    assert tokenize("...!?") == []


def test_tokenize_rejects_non_strings():
    with pytest.raises(ValueError, match="line must be a str"):
        tokenize(["a", "b"])


# ----------------------------------------------------------------------------- Vocab

_WORDS = [f"w{i}" for i in range(40)]


def _random_lines(seed: int, n: int):
    """Generator of n lines of Zipf-ish random words (independent of the code under test)."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, len(_WORDS) + 1)
    lengths = rng.integers(1, 12, size=n)
    ids = rng.choice(len(_WORDS), size=int(lengths.sum()), p=p / p.sum()).tolist()
    start = 0
    for k in lengths.tolist():
        yield " ".join(_WORDS[j] for j in ids[start : start + k]) + "."
        start += k


def test_vocab_min_count_and_order_match_counter():
    lines = list(_random_lines(0, 300))
    counter = collections.Counter(w for line in lines for w in line.rstrip(".").split())
    for min_count, max_size in [(1, None), (5, None), (20, 7), (10_000, None)]:
        v = Vocab.build(lines, min_count=min_count, max_size=max_size)
        expected = sorted(((w, c) for w, c in counter.items() if c >= min_count), key=lambda wc: (-wc[1], wc[0]))
        if max_size is not None:
            expected = expected[:max_size]
        assert v.words == [w for w, _ in expected]
        assert v.counts.tolist() == [c for _, c in expected]
        assert len(v) == len(expected)
        assert all(v.id(w) == i for i, w in enumerate(v.words))


def test_vocab_order_breaks_count_ties_alphabetically():
    v = Vocab.build([["b", "a", "c", "c"]], min_count=1)
    assert v.words == ["c", "a", "b"]
    assert v.counts.tolist() == [2, 1, 1]


def test_vocab_specials_unk_and_encode_modes():
    lines = ["the cat sat", "the dog sat", "a bird"]
    v = Vocab.build(lines, min_count=2, specials=("<pad>",), unk="<unk>")
    assert v.words == ["<pad>", "<unk>", "sat", "the"]
    # <unk> counts the 4 tokens below min_count (cat, dog, a, bird); specials count 0
    assert v.counts.tolist() == [0, 4, 2, 2]
    np.testing.assert_array_equal(v.encode("the cat sat"), [3, 1, 2])  # default: map
    np.testing.assert_array_equal(v.encode("the cat sat", unknown="drop"), [3, 2])
    assert v.encode("the cat", unknown="drop").dtype == np.int32
    with pytest.raises(UnknownWordError, match="unknown word 'cat'"):
        v.encode("the cat", unknown="raise")
    with pytest.raises(ValueError, match="unknown must be"):
        v.encode("the", unknown="ignore")
    plain = Vocab.build(lines, min_count=2)
    np.testing.assert_array_equal(plain.encode(["the", "cat", "sat"]), [1, 0])  # default without unk: drop
    with pytest.raises(ValueError, match="needs a vocabulary built with an unk token"):
        plain.encode("the", unknown="map")


def test_vocab_encodes_lines_with_the_case_it_was_built_with():
    cased = Vocab.build(["I like NLP"], min_count=1, lower=False)
    np.testing.assert_array_equal(cased.decode(cased.encode("I like NLP")), ["I", "like", "NLP"])
    lowered = Vocab.build(["I like NLP"], min_count=1)
    assert lowered.decode(lowered.encode("I LIKE nlp")) == ["i", "like", "nlp"]
    assert lowered.encode("I LIKE nlp", lower=False).tolist() == [lowered.id("nlp")]


def test_vocab_id_raises_unknown_word_error_naming_the_word():
    v = Vocab(["king", "queen", "man", "woman"])
    assert v.id("queen") == 1 and "queen" in v and "qeen" not in v
    with pytest.raises(UnknownWordError) as e:
        v.id("qeen")
    assert isinstance(e.value, KeyError) and isinstance(e.value, ValueError)  # gensim's KeyError; a bad value
    assert str(e.value) == "unknown word 'qeen': not in the vocabulary of 4 words"


def test_vocab_decode_roundtrip_and_validation():
    v = Vocab(["a", "b", "c"])
    ids = v.encode(["c", "a", "b", "a"])
    assert v.decode(ids) == ["c", "a", "b", "a"]
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\), got id 3"):
        v.decode([0, 3])
    with pytest.raises(ValueError, match="unique"):
        Vocab(["a", "a"])
    with pytest.raises(ValueError, match="min_count must be >= 1"):
        Vocab.build(["a"], min_count=0)
    with pytest.raises(ValueError, match="single str"):
        Vocab.build("a b c")


def test_streaming_over_a_generator_of_10k_lines():
    n = 10_000
    v = Vocab.build(_random_lines(1, n), min_count=5, unk="<unk>", chunk_lines=1000)
    counter = collections.Counter(w for line in _random_lines(1, n) for w in line.rstrip(".").split())
    assert dict(zip(v.words[1:], v.counts[1:].tolist())) == {w: c for w, c in counter.items() if c >= 5}
    total = 0
    for line, ids in zip(_random_lines(1, n), v.encode_lines(_random_lines(1, n))):
        assert ids.dtype == np.int32
        assert v.decode(ids) == [w if w in v else "<unk>" for w in line.rstrip(".").split()]
        total += ids.size
    assert total == sum(counter.values())


# ----------------------------------------------------------------------------- word2vec frequency tables


def test_subsample_keep_prob_matches_word2vec_c_formula():
    counts = np.array([1_000_000, 50_000, 3_000, 120, 7, 0])
    t = 1e-3
    total = counts.sum()
    expected = []
    for c in counts:  # word2vec.c: ran = (sqrt(cn / (sample * train_words)) + 1) * (sample * train_words) / cn
        if c == 0:
            expected.append(1.0)
        else:
            ran = (math.sqrt(c / (t * total)) + 1) * (t * total) / c
            expected.append(min(ran, 1.0))
    keep = subsample_keep_prob(counts, t=t)
    np.testing.assert_allclose(keep, expected, rtol=1e-12)
    assert keep[0] < 0.05 and keep[-2] == 1.0  # frequent words dropped, rare words kept
    with pytest.raises(ValueError, match="t must be a positive"):
        subsample_keep_prob(counts, t=0)
    with pytest.raises(ValueError, match=">= 0"):
        subsample_keep_prob([3, -1])


def test_noise_distribution_is_unigram_to_the_three_quarters():
    counts = np.array([100, 10, 1, 0, 55])
    expected = np.array([c**0.75 for c in counts.tolist()])
    np.testing.assert_allclose(noise_distribution(counts), expected / expected.sum(), rtol=1e-12)
    np.testing.assert_allclose(noise_distribution(counts, power=1.0), counts / counts.sum(), rtol=1e-12)
    with pytest.raises(ValueError, match="positive sum"):
        noise_distribution([0, 0])


# ----------------------------------------------------------------------------- one-hot


def test_one_hot_words_are_orthogonal():
    # the lecture's motel/hotel example: 15-dim one-hot vectors with the 1 at positions 10 and 7
    motel, hotel = one_hot([10, 7], 15)
    assert motel.tolist() == [0] * 10 + [1] + [0] * 4
    cos = motel @ hotel / (np.linalg.norm(motel) * np.linalg.norm(hotel))
    assert cos == 0.0
    o = one_hot(np.arange(6), 6)
    np.testing.assert_array_equal(o @ o.T, np.eye(6))  # identity: every pair of distinct words has cosine 0


def test_one_hot_times_matrix_is_a_row_lookup():
    # the lecture's example: [0 0 0 1 0] x W = [10 12 19]
    w = np.array([[17, 24, 1], [23, 5, 7], [4, 6, 13], [10, 12, 19], [11, 18, 25]], np.float32)
    np.testing.assert_array_equal(one_hot([3], 5) @ w, [[10, 12, 19]])
    rng = np.random.default_rng(0)
    table = rng.normal(size=(50, 8))
    ids = rng.integers(0, 50, size=(4, 7))
    out = one_hot(ids, 50, dtype=np.float64) @ table
    assert out.shape == (4, 7, 8)
    np.testing.assert_array_equal(out, table[ids])
    with pytest.raises(ValueError, match=r"\[0, 50\), got id 50"):
        one_hot([1, 50], 50)


# ----------------------------------------------------------------------------- co-occurrence


# The lecture's window-1 table for "I like deep learning." / "I like NLP." / "I enjoy flying."
LECTURE_TABLE = """
counts	I	like	enjoy	deep	learning	NLP	flying	.
I	0	2	1	0	0	0	0	0
like	2	0	0	1	0	1	0	0
enjoy	1	0	0	0	0	0	1	0
deep	0	1	0	0	1	0	0	0
learning	0	0	0	1	0	0	0	1
NLP	0	1	0	0	0	0	0	1
flying	0	0	1	0	0	0	0	1
.	0	0	0	0	1	1	1	0
"""


def lecture_table() -> tuple[list[str], np.ndarray]:
    """(the words of the lecture's table, its counts)."""
    rows = [line.split() for line in LECTURE_TABLE.strip().splitlines()]
    assert [r[0] for r in rows[1:]] == rows[0][1:]
    return rows[0][1:], np.array([[int(x) for x in r[1:]] for r in rows[1:]])


def test_lecture_cooccurrence_table():
    header, expected = lecture_table()
    sentences = ["I like deep learning .", "I like NLP .", "I enjoy flying ."]
    v = Vocab(header)
    ids = [v.encode(s.split()) for s in sentences]
    np.testing.assert_array_equal(cooccurrence_matrix(ids, len(v), window=1), expected)
    np.testing.assert_array_equal(cooccurrence_matrix(ids, len(v), window=1, sparse=True).toarray(), expected)


def _brute_cooccurrence(seqs, vocab_size, window, symmetric, weighting):
    x = np.zeros((vocab_size, vocab_size))
    for s in seqs:
        for t in range(len(s)):
            for j in range(len(s)):
                d = j - t
                if d == 0 or abs(d) > window or (not symmetric and d < 0):
                    continue
                x[s[t], s[j]] += 1.0 if weighting == "uniform" else 1.0 / abs(d)
    return x


@pytest.mark.parametrize("window", [2, 3])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("weighting", ["uniform", "harmonic"])
def test_cooccurrence_matches_brute_force(window, symmetric, weighting):
    rng = np.random.default_rng(window)
    V = 9
    seqs = [rng.integers(0, V, size=int(rng.integers(0, 8))) for _ in range(40)]
    expected = _brute_cooccurrence(seqs, V, window, symmetric, weighting)
    for sparse, chunk in [(False, 1 << 20), (False, 5), (True, 7)]:
        x = cooccurrence_matrix(
            iter(seqs), V, window, symmetric=symmetric, weighting=weighting, sparse=sparse, chunk_tokens=chunk
        )
        assert scipy.sparse.issparse(x) == sparse
        x = x.toarray() if sparse else x
        assert x.dtype == (np.int64 if weighting == "uniform" else np.float64)
        np.testing.assert_allclose(x, expected, rtol=1e-12, atol=0)


def test_cooccurrence_validation_and_sparse_default():
    with pytest.raises(ValueError, match="window must be >= 1"):
        cooccurrence_matrix([np.array([0, 1])], 3, 0)
    with pytest.raises(ValueError, match="weighting must be"):
        cooccurrence_matrix([np.array([0, 1])], 3, 1, weighting="gaussian")
    with pytest.raises(ValueError, match=r"\[0, 3\), got id 5"):
        cooccurrence_matrix([np.array([0, 5])], 3, 1)
    with pytest.raises(ValueError, match="wrap it in a list"):
        cooccurrence_matrix(np.array([0, 1]), 3, 1)
    assert scipy.sparse.issparse(cooccurrence_matrix([np.array([0, 20_000])], 20_001, 1))


# ----------------------------------------------------------------------------- PPMI and SVD


def _brute_ppmi(x, alpha):
    n_w, n_c = x.shape
    total = sum(x[i, j] for i in range(n_w) for j in range(n_c))
    row = [sum(x[i, j] for j in range(n_c)) for i in range(n_w)]
    col = [sum(x[i, j] for i in range(n_w)) for j in range(n_c)]
    col_a = [c**alpha for c in col]
    out = np.zeros_like(x, dtype=np.float64)
    for i in range(n_w):
        for j in range(n_c):
            if x[i, j] > 0:
                pmi = math.log((x[i, j] / total) / ((row[i] / total) * (col_a[j] / sum(col_a))))
                out[i, j] = max(pmi, 0.0)
    return out


@pytest.mark.parametrize("alpha", [1.0, 0.75])
def test_ppmi_matches_brute_force(alpha):
    rng = np.random.default_rng(3)
    x = rng.poisson(1.5, size=(7, 9)) * (rng.random((7, 9)) < 0.6)
    expected = _brute_ppmi(x, alpha)
    np.testing.assert_allclose(ppmi(x, alpha=alpha), expected, rtol=1e-12, atol=1e-14)
    sp = ppmi(scipy.sparse.csr_matrix(x), alpha=alpha)
    assert scipy.sparse.issparse(sp)
    np.testing.assert_allclose(sp.toarray(), expected, rtol=1e-12, atol=1e-14)
    assert (expected > 0).any() and (expected == 0).any()


def test_ppmi_validation():
    with pytest.raises(ValueError, match="2-D"):
        ppmi(np.ones(3))
    with pytest.raises(ValueError, match=">= 0"):
        ppmi(np.array([[1, -1], [0, 2]]))
    with pytest.raises(ValueError, match="alpha must be a positive"):
        ppmi(np.ones((2, 2)), alpha=0)


@pytest.mark.parametrize("power", [0.0, 0.5, 1.0])
def test_svd_embeddings_are_u_times_s_to_the_power(power):
    rng = np.random.default_rng(4)
    m = rng.random((12, 10))
    u, s, _ = np.linalg.svd(m, full_matrices=False)
    k = 3
    e = svd_embeddings(m, k, power=power)
    assert e.shape == (12, k) and e.dtype == np.float32
    # column signs of an SVD are arbitrary: compare E E^T = U_k S_k^(2p) U_k^T, and column norms s^p
    ref = (u[:, :k] * s[:k] ** (2 * power)) @ u[:, :k].T
    np.testing.assert_allclose(e @ e.T, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    np.testing.assert_allclose(np.linalg.norm(e, axis=0), s[:k] ** power, rtol=1e-4)
    e_sparse = svd_embeddings(scipy.sparse.csr_matrix(m), k, power=power)
    np.testing.assert_allclose(np.abs(e_sparse), np.abs(e), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="dim must be in 1..min"):
        svd_embeddings(m, 11)


def test_ppmi_svd_pipeline_puts_similar_contexts_together():
    # "like" and "enjoy" share their contexts (after "I", before an object): closer than "like" and "flying"
    lines = [
        "I like deep learning",
        "I like NLP",
        "I enjoy flying",
        "I like flying",
        "I enjoy NLP",
        "I enjoy deep learning",
    ]
    v = Vocab.build(lines, min_count=1, lower=False)
    x = cooccurrence_matrix(v.encode_lines(lines), len(v), window=1)
    e = svd_embeddings(ppmi(x, alpha=1.0), 3)
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    assert norms.min() > 0.1  # every word (including "I") has contexts
    e = e / norms
    like, enjoy, flying = (e[v.id(w)] for w in ("like", "enjoy", "flying"))
    assert like @ enjoy > like @ flying + 0.3
