"""Word-vector queries and their evaluation (zoo.word_vectors) against brute-force loops and scipy."""

import itertools

import numpy as np
import pytest
import scipy.stats

from zoo import word_vectors as wv
from zoo.text import UnknownWordError, Vocab

RTOL = 1e-5  # float32 arithmetic against float64 references


WORDS = ["king", "queen", "man", "woman", "apple", "royal", "crown"]
# dims: royalty, gender (+ male), fruit. king - man + woman lands nearest to a query word (excluded), then queen.
HAND = np.array(
    [
        [1.0, 0.3, 0.0],  # king
        [1.0, -0.3, 0.0],  # queen
        [0.1, 1.0, 0.0],  # man
        [0.1, -1.0, 0.0],  # woman
        [0.0, 0.0, 1.0],  # apple
        [1.0, 0.0, 0.9],  # royal
        [0.8, 0.5, 0.6],  # crown
    ]
)


def _brute_3cosadd(W, a, b, c, exclude=True):
    Wn = W / np.linalg.norm(W, axis=1, keepdims=True)
    cos = lambda i, j: float(Wn[i] @ Wn[j])
    scores = {d: cos(d, b) - cos(d, a) + cos(d, c) for d in range(len(W)) if not exclude or d not in (a, b, c)}
    return max(scores, key=scores.get)


def test_3cosadd_returns_planted_answer_and_excludes_query_words():
    vocab = Vocab(WORDS)
    ids = [vocab.id(w) for w in ("man", "king", "woman")]
    assert WORDS[_brute_3cosadd(HAND, *ids, exclude=False)] in ("man", "king", "woman")  # so exclusion matters
    top = wv.analogy(HAND, vocab, "man", "king", "woman", topn=3)
    assert top[0][0] == "queen"
    assert not {"man", "king", "woman"} & {w for w, _ in top}
    Wn = HAND / np.linalg.norm(HAND, axis=1, keepdims=True)
    want = Wn[1] @ (Wn[0] - Wn[2] + Wn[3])
    np.testing.assert_allclose(top[0][1], want, rtol=RTOL)
    assert [s for _, s in top] == sorted((s for _, s in top), reverse=True)


def test_3cosmul_formula_brute_force():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(12)]
    vocab = Vocab(words)
    W = rng.normal(size=(12, 6))
    a, b, c = 2, 5, 7
    Wn = W / np.linalg.norm(W, axis=1, keepdims=True)
    pos = lambda i, j: (float(Wn[i] @ Wn[j]) + 1) / 2
    want = sorted(
        ((pos(d, b) * pos(d, c) / (pos(d, a) + 1e-3), words[d]) for d in range(12) if d not in (a, b, c)), reverse=True
    )
    got = wv.analogy(W, vocab, words[a], words[b], words[c], method="3cosmul", topn=9)
    assert [w for w, _ in got] == [w for _, w in want]
    np.testing.assert_allclose([s for _, s in got], [s for s, _ in want], rtol=1e-5)
    with pytest.raises(ValueError, match="method"):
        wv.analogy(W, vocab, "w0", "w1", "w2", method="pairdirection")


def test_unknown_word_raises_unknown_word_error_naming_it():
    vocab = Vocab(WORDS)
    with pytest.raises(UnknownWordError, match="princess"):
        wv.analogy(HAND, vocab, "man", "princess", "woman")
    with pytest.raises(UnknownWordError, match="zebra"):
        wv.most_similar(wv.normalize(HAND), vocab, "zebra")
    with pytest.raises(ValueError, match="rows"):
        wv.analogy(HAND[:3], vocab, "man", "king", "woman")


def test_most_similar_brute_force():
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(15)]
    vocab = Vocab(words)
    Wn = np.asarray(wv.normalize(rng.normal(size=(15, 4))))
    np.testing.assert_allclose(np.linalg.norm(Wn, axis=1), 1.0, rtol=1e-6)
    cos = Wn @ Wn[3]
    want = [words[i] for i in np.argsort(-cos) if i not in (3, 7)][:5]
    got = wv.most_similar(Wn, vocab, "w3", topn=5, exclude=["w7"])
    assert [w for w, _ in got] == want
    np.testing.assert_allclose(
        [s for _, s in got], sorted(cos[[words.index(w) for w in want]], reverse=True), rtol=1e-5
    )
    q = rng.normal(size=4)
    got_v = wv.most_similar(Wn, vocab, q, topn=3)
    assert [w for w, _ in got_v] == [words[i] for i in np.argsort(-(Wn @ q))[:3]]


def test_most_similar_ranks_raw_vectors_by_cosine_not_by_dot_product():
    # lord points almost where king does; queen is 10x longer but at 60 degrees: the dot product prefers queen
    words = ["king", "lord", "queen", "ship"]
    W = np.array([[1.0, 0.0], [0.9, 0.43589], [5.0, 8.66025], [-1.0, 0.2]], np.float32)
    dots = W @ W[0]
    assert words[int(np.argmax(np.where(np.arange(4) == 0, -np.inf, dots)))] == "queen"  # what rows as given rank
    got = wv.most_similar(W, words, "king", topn=3)  # raw rows and a plain list of words
    assert [w for w, _ in got] == ["lord", "queen", "ship"]
    np.testing.assert_allclose([s for _, s in got], [0.9, 0.5, -1 / np.hypot(1.0, 0.2)], rtol=1e-5)
    assert got == wv.most_similar(wv.normalize(W), Vocab(words), "king", topn=3)  # unit rows: the same
    assert wv.most_similar_cosmul(W, words, ["king"], topn=1)[0][0] == "lord"
    assert wv.similarity(W, words, "king", "queen") == pytest.approx(0.5, rel=1e-5)
    assert wv.doesnt_match(W, words, ["king", "lord", "queen", "ship"]) == "ship"
    np.testing.assert_allclose(wv.most_similar(W, words, "king", topn=None), W @ W[0] / np.linalg.norm(W, axis=1))


def test_most_similar_with_positive_and_negative_brute_force():
    rng = np.random.default_rng(4)
    words = [f"w{i}" for i in range(20)]
    W = rng.normal(size=(20, 5)) * rng.uniform(0.1, 3, size=(20, 1))
    Wn = W / np.linalg.norm(W, axis=1, keepdims=True)
    q = Wn[1] + Wn[2] - Wn[3]
    cos = Wn[:12] @ q / np.linalg.norm(q)
    want = [(words[i], cos[i]) for i in np.argsort(-cos) if i not in (1, 2, 3, 5)][:4]
    got = wv.most_similar(W, words, ["w1", "w2"], ["w3"], topn=4, exclude=["w5"], restrict_vocab=12)
    assert [w for w, _ in got] == [w for w, _ in want]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-5)
    pos = lambda i: (1 + Wn @ Wn[i]) / 2  # 3CosMul, gensim's eps
    mul = pos(1) * pos(2) / (pos(3) + 1e-6)
    want = [words[i] for i in np.argsort(-mul) if i not in (1, 2, 3)][:4]
    assert [w for w, _ in wv.most_similar_cosmul(W, words, ["w1", "w2"], ["w3"], topn=4)] == want
    with pytest.raises(ValueError, match="vocabulary has 20 words"):
        wv.most_similar(W[:5], words, "w1")
    with pytest.raises(ValueError, match="'w1' more than once"):
        wv.similarity(W[:2], ["w1", "w1"], "w1", "w1")


def test_parse_questions_words_and_evaluate_analogies_with_oov():
    lines = [
        ": capital-common-countries",
        "Athens Greece Baghdad Iraq",
        "Athens Greece Bangkok Thailand",
        "",
        ": family",
        "boy girl brother sister",
        "king queen man woman",
        "boy girl son daughter",
    ]
    sections = wv.parse_questions_words(lines)
    assert [(n, len(q)) for n, q in sections] == [("capital-common-countries", 2), ("family", 3)]
    assert sections[0][1][0] == ("athens", "greece", "baghdad", "iraq")
    with pytest.raises(ValueError, match="line 2"):
        wv.parse_questions_words([": s", "a b c"])
    with pytest.raises(ValueError, match="header"):
        wv.parse_questions_words(["a b c d"])

    rng = np.random.default_rng(2)
    words = ["athens", "greece", "baghdad", "iraq", "boy", "girl", "brother", "sister", "king", "queen", "man", "woman"]
    vocab = Vocab(words)  # no 'bangkok', 'son': 2 questions skipped
    W = rng.normal(size=(len(words), 5))
    res = wv.evaluate_analogies(W, vocab, sections)
    assert res["skipped"] == 2 and res["total"] == 3
    want = {}
    for name, qs in sections:  # brute force: 3CosAdd by loop
        ok = [
            words[_brute_3cosadd(W, *(words.index(w) for w in q[:3]))] == q[3] for q in qs if all(w in words for w in q)
        ]
        want[name] = sum(ok) / len(ok)
    assert res["sections"] == pytest.approx(want)
    assert res["accuracy"] == pytest.approx(res["correct"] / 3)
    # planted: make every question right
    W2 = np.zeros((len(words), 4))
    for i, _w in enumerate(words):
        W2[i, i % 4] = 1.0
    W2[words.index("iraq")] = W2[words.index("greece")] - W2[words.index("athens")] + W2[words.index("baghdad")]
    assert wv.evaluate_analogies(W2, vocab, [sections[0]])["sections"]["capital-common-countries"] == 1.0


def test_parse_wordsim_formats():
    tab = ["# comment", "Word 1\tWord 2\tHuman (mean)", "tiger\tcat\t7.35", "Book\tpaper\t7.46", ""]
    assert wv.parse_wordsim(tab) == [("tiger", "cat", 7.35), ("book", "paper", 7.46)]
    csv = ["Word 1,Word 2,Human (mean)", "love,sex,6.77", "tiger,cat,7.35"]
    assert wv.parse_wordsim(csv) == [("love", "sex", 6.77), ("tiger", "cat", 7.35)]
    assert wv.parse_wordsim(["a b 1.5"]) == [("a", "b", 1.5)]
    with pytest.raises(ValueError, match="line 3"):
        wv.parse_wordsim(["a\tb\t1", "c\td\t2", "e\tf\tmany"])


def test_evaluate_wordsim_spearman_vs_scipy():
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(10)]
    vocab = Vocab(words)
    W = rng.normal(size=(10, 3))
    pairs = [(words[i], words[j], float(rng.uniform(0, 10))) for i, j in itertools.combinations(range(10), 2)][:30]
    pairs += [("w1", "nope", 5.0), ("nada", "w2", 1.0)]
    res = wv.evaluate_wordsim(W, vocab, pairs)
    cos = [
        W[int(a[1:])] @ W[int(b[1:])] / np.linalg.norm(W[int(a[1:])]) / np.linalg.norm(W[int(b[1:])])
        for a, b, _ in pairs[:30]
    ]
    want = scipy.stats.spearmanr(cos, [s for _, _, s in pairs[:30]]).statistic
    assert res["skipped"] == 2 and res["evaluated"] == 30
    np.testing.assert_allclose(res["spearman"], want, rtol=1e-9)
    # a perfect monotone relation gives rho = 1
    perfect = [(a, b, float(c)) for (a, b, _), c in zip(pairs[:30], cos)]
    assert wv.evaluate_wordsim(W, vocab, perfect)["spearman"] == pytest.approx(1.0)
