"""Tests for zoo.ngram against hand counts from the lecture's sentences, Counter and brute-force formulas."""

import collections
import functools
import math

import numpy as np
import pytest

from zoo.ngram import (
    BOS,
    EOS,
    FALLBACK_DISCOUNTS,
    UNK,
    AddKLM,
    KneserNeyLM,
    ModifiedKneserNeyLM,
    count_ngrams,
    count_of_counts,
    discount_of,
    kn_backoff_weight,
    kn_interpolation_weight,
    mle_prob,
    modified_kn_discounts,
    ngram_vocab,
)
from zoo.text import Vocab

LECTURE = ["I like deep learning.", "I like NLP.", "I enjoy flying."]


def _markov_corpus(seed: int, n: int, n_words: int = 25):
    """Sentences from a sparse first-order Markov chain: each word has 3 likely successors; stop w.p. 0.15."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(n_words)]
    succ = np.random.default_rng(1234).integers(0, n_words, size=(n_words, 3))
    out = []
    for _ in range(n):
        w = int(rng.integers(0, 5))
        sent = [words[w]]
        while rng.random() > 0.15 and len(sent) < 30:
            w = int(succ[w, rng.integers(0, 3)])
            sent.append(words[w])
        out.append(sent)
    return out


def _padded(vocab, sentences):
    return [[BOS] + [w if w in vocab else UNK for w in s] + [EOS] for s in sentences]


def _counter(padded, k):
    return collections.Counter(tuple(s[i : i + k]) for s in padded for i in range(len(s) - k + 1))


# ----------------------------------------------------------------------------- counting and MLE


def test_lecture_bigram_estimates_by_hand():
    model = AddKLM.fit(LECTURE, 2)
    v, c = model.vocab, model.counts
    assert v.words[:3] == [BOS, EOS, UNK]
    i = v.id
    # counts by hand: "i" 3 times, "i like" twice, "i enjoy" once, "like" twice, "like deep" once
    assert c.count([i("i")]) == 3 and c.count([i("like")]) == 2 and c.count([i(EOS)]) == 3
    assert c.count([i("i"), i("like")]) == 2 and c.count([i("i"), i("enjoy")]) == 1
    assert c.count([i("like"), i("i")]) == 0
    # p(w2|w1) = count(w1, w2) / count(w1)
    assert mle_prob(c, [i("i")], i("like")) == pytest.approx(2 / 3, abs=1e-15)
    assert mle_prob(c, [i("i")], i("enjoy")) == pytest.approx(1 / 3, abs=1e-15)
    assert mle_prob(c, [i("like")], i("deep")) == pytest.approx(1 / 2, abs=1e-15)
    assert mle_prob(c, [i("like")], i("flying")) == 0.0
    assert mle_prob(c, [i(BOS)], i("i")) == 1.0
    assert mle_prob(c, [i("flying")], i(EOS)) == 1.0
    assert c.count([i(BOS)]) == 3
    assert mle_prob(c, [], i("i")) == pytest.approx(3 / 13, abs=1e-15)  # 13 predicted tokens: 10 words + 3 </s>
    assert mle_prob(c, [], i(BOS)) == 0.0 and c.context_count([]) == 13
    # chain rule: P(I like NLP) = p(i|<s>) p(like|i) p(nlp|like) p(</s>|nlp) = 1 * 2/3 * 1/2 * 1
    p = 1.0
    for w1, w2 in zip([BOS, "i", "like", "nlp"], ["i", "like", "nlp", EOS]):
        p *= mle_prob(c, [i(w1)], i(w2))
    assert p == pytest.approx(1 / 3, abs=1e-15)
    with pytest.raises(ValueError, match="never occurs"):
        mle_prob(c, [i(EOS)], i("i"))


def test_lecture_trigram_estimate_and_chinese_example():
    sents = [
        ["我", "今天", "下午", "打", "篮球"],
        ["我", "今天", "下午", "打", "游戏"],
        ["我", "今天", "上午", "打", "篮球"],
    ]
    v = ngram_vocab(sents)
    c = count_ngrams(v.encode_lines(sents), 3, vocab_size=len(v))
    i = v.id
    # p(w3|w1,w2) = count(w1,w2,w3) / count(w1,w2)
    assert mle_prob(c, [i("今天"), i("下午")], i("打")) == 1.0
    assert mle_prob(c, [i("下午"), i("打")], i("篮球")) == pytest.approx(1 / 2, abs=1e-15)
    assert mle_prob(c, [i("我"), i("今天")], i("上午")) == pytest.approx(1 / 3, abs=1e-15)
    assert mle_prob(c, [i("打")], i("篮球")) == pytest.approx(2 / 3, abs=1e-15)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_count_ngrams_matches_counter_and_is_chunk_invariant(order):
    sents = _markov_corpus(0, 200)
    v = ngram_vocab(sents, min_count=3)
    padded = _padded(v, sents)
    one = count_ngrams(v.encode_lines(sents), order, vocab_size=len(v))
    many = count_ngrams((v.encode(s) for s in sents), order, vocab_size=len(v), chunk_tokens=37)
    for k in range(1, order + 1):
        expected = {tuple(v.id(w) for w in g): n for g, n in _counter(padded, k).items()}
        for c in (one, many):
            got = dict(zip(map(tuple, c.grams[k - 1].tolist()), c.counts[k - 1].tolist()))
            assert got == expected
            assert c.grams[k - 1].dtype == np.int32


def test_count_ngrams_with_ids_too_large_for_int64_keys():
    # 4-grams of ids near 5e6 overflow the packed int64 key, exercising the column-wise sort
    rng = np.random.default_rng(12)
    big = np.array([2, 4_999_999, 3_000_000, 1_234_567])
    sents = [big[rng.integers(0, 4, size=int(rng.integers(0, 9)))] for _ in range(60)]
    c = count_ngrams(sents, 4, vocab_size=5_000_000)
    padded = [[0] + s.tolist() + [1] for s in sents]
    for k in (1, 2, 3, 4):
        got = dict(zip(map(tuple, c.grams[k - 1].tolist()), c.counts[k - 1].tolist()))
        assert got == dict(_counter(padded, k))
    assert c.vocab_size == 5_000_000 and count_ngrams(sents, 2).vocab_size == 4_999_999 + 1


@pytest.mark.parametrize("top_id", [50, 3_000_000])
def test_ngram_table_lookup_matches_a_dict(top_id):
    # an id of 3e6 makes B^3 overflow int64 (dict path); ids up to 50 use packed keys (binary search)
    from zoo.ngram import _Level, _unique_rows

    rng = np.random.default_rng(13)
    pool = np.array([0, 1, 7, 23, top_id])
    rows = pool[rng.integers(0, 5, size=(300, 3))]
    grams, counts = _unique_rows(rows.astype(np.int64))
    ref = collections.Counter(map(tuple, rows.tolist()))
    lvl = _Level(grams.astype(np.int64), counts)
    assert (lvl._index is not None) == (top_id > 50)
    queries = pool[rng.integers(0, 5, size=(200, 3))]
    queries[:5, 0] = -1  # a short context never matches
    blk, val = lvl.lookup(queries[:, :2], queries[:, 2])
    for q, b, v in zip(queries.tolist(), blk.tolist(), val.tolist()):
        seen = q[0] >= 0 and any(g[:2] == tuple(q[:2]) for g in ref)
        assert (b >= 0) == seen and v == (ref[tuple(q)] if q[0] >= 0 else 0)
        if seen:
            assert lvl.block(tuple(q[:2])) == b and lvl.totals[b] == sum(
                n for g, n in ref.items() if g[:2] == tuple(q[:2])
            )


def test_mle_sums_to_one_for_every_seen_context():
    sents = _markov_corpus(1, 150)
    v = ngram_vocab(sents)
    padded = _padded(v, sents)
    c = count_ngrams(v.encode_lines(sents), 3, vocab_size=len(v))
    for k in (1, 2, 3):
        grams = _counter(padded, k)
        if k == 1:
            del grams[(BOS,)]  # <s> is never predicted, so P(w) is over words and </s>
        ctx_totals = collections.Counter()
        for g, n in grams.items():
            ctx_totals[g[:-1]] += n
        for h, total in ctx_totals.items():
            h_ids = [v.id(w) for w in h]
            probs = [mle_prob(c, h_ids, w) for w in range(len(v))]
            assert math.fsum(probs) == pytest.approx(1.0, abs=1e-12)
            for g, n in grams.items():  # and each entry is count(h, w) / count(h)
                if g[:-1] == h:
                    assert probs[v.id(g[-1])] == pytest.approx(n / total, abs=1e-15)


# ----------------------------------------------------------------------------- smoothed models


def _contexts(v, order):
    """Seen, unseen and <unk>/</s> contexts of every length up to order-1."""
    i = v.id
    ctxs = [
        [],
        [BOS],
        [BOS, "w0"],
        ["w0"],
        [EOS],
        [UNK],
        ["never-seen-word"],
        ["w1", "w2"],
        ["w3", "w3"],
        ["w2", "w0", "w1"],
        [BOS, EOS],
        ["w1", BOS],
    ]
    return ctxs + [[i(w) for w in h if w in v] for h in ctxs[:4]]  # ids work too


@pytest.mark.parametrize("order", [2, 3, 4])
@pytest.mark.parametrize(
    "model_cls,kwargs",
    [(AddKLM, {"k": 0.1}), (AddKLM, {"k": 1.0}), (KneserNeyLM, {}), (KneserNeyLM, {"discount": 0.4})],
)
def test_smoothed_distributions_sum_to_one(order, model_cls, kwargs):
    sents = _markov_corpus(2, 120)
    model = model_cls.fit(sents, order, min_count=2, **kwargs)
    v = model.vocab
    for h in _contexts(v, order):
        p = model.distribution(h)
        assert p.dtype == np.float64 and p.shape == (len(v),)
        assert p[v.id(BOS)] == 0.0
        assert (p[1:] > 0).all()  # every word but <s> keeps some probability
        assert math.fsum(p) == pytest.approx(1.0, abs=1e-9)
        for w in range(len(v)):  # the scalar path agrees with the vector path
            assert model.prob(h, w) == pytest.approx(p[w], rel=1e-12, abs=1e-15)


def test_add_k_matches_formula():
    sents = _markov_corpus(3, 80)
    k = 0.3
    model = AddKLM.fit(sents, 2, k=k)
    v = model.vocab
    padded = _padded(v, sents)
    bigrams, n_pred = _counter(padded, 2), len(v) - 1  # every word but <s> can be predicted
    ctx = collections.Counter()
    for (a, _), n in bigrams.items():
        ctx[a] += n
    for a in v.words:
        for b in v.words[1:]:
            expected = (bigrams[(a, b)] + k) / (ctx[a] + k * n_pred)
            assert model.prob([a], b) == pytest.approx(expected, rel=1e-12)


def test_add_k_unigram_model():
    model = AddKLM.fit(LECTURE, 1, k=1.0)
    v = model.vocab
    # 13 predicted tokens (10 words + 3 </s>) and 9 predictable types (all but <s>): P(i) = (3 + 1) / (13 + 9)
    assert model.prob(["like"], "i") == pytest.approx(4 / 22, rel=1e-12)  # a unigram model ignores the context
    expected = math.log(4 / 22) + math.log(3 / 22) + math.log(4 / 22)  # i, like, </s>
    assert model.log_prob_sentence("I like") == pytest.approx(expected, rel=1e-12)
    assert model.distribution([])[v.id(BOS)] == 0.0


def _brute_kn_bigram(sentences, words, d):
    """Textbook interpolated Kneser-Ney for bigrams (Jurafsky & Martin, 3rd ed., eq. 3.35), unigram level
    interpolated with the uniform distribution over the predictable words; written with plain dicts."""
    padded = [[BOS] + s + [EOS] for s in sentences]
    big = collections.Counter((s[i], s[i + 1]) for s in padded for i in range(len(s) - 1))
    predictable = [w for w in words if w != BOS]
    left = {w: len({a for (a, b) in big if b == w}) for w in predictable}  # N1+(. w)
    n_types = len(big)  # sum_w N1+(. w) = number of bigram types
    n_seen = sum(1 for w in predictable if left[w] > 0)
    p_cont = {w: max(left[w] - d, 0) / n_types + d * n_seen / n_types / len(predictable) for w in predictable}

    def prob(prev, w):
        if w == BOS:
            return 0.0
        c_prev = sum(n for (a, _), n in big.items() if a == prev)
        if c_prev == 0:
            return p_cont[w]
        followers = len({b for (a, b) in big if a == prev})
        return max(big[(prev, w)] - d, 0) / c_prev + d * followers / c_prev * p_cont[w]

    return prob


@pytest.mark.parametrize("d", [0.75, 0.5])
def test_kneser_ney_bigram_matches_brute_force(d):
    sents = [
        ["the", "cat", "sat"],
        ["the", "dog", "sat"],
        ["a", "cat", "ran"],
        ["the", "cat", "ran", "far"],
        ["san", "francisco"],
        ["san", "francisco", "is", "far"],
    ]
    model = KneserNeyLM.fit(sents, 2, discount=d)
    brute = _brute_kn_bigram(sents, model.vocab.words, d)
    for prev in model.vocab.words:
        for w in model.vocab.words:
            assert model.prob([prev], w) == pytest.approx(brute(prev, w), rel=1e-12, abs=1e-15)
    # the Kneser-Ney point: "francisco" is frequent but only ever follows "san", so it is an unlikely novel follower
    assert model.prob(["the"], "cat") > model.prob(["the"], "francisco")


def _brute_kn_trigram(sentences, words, d):
    """Interpolated KN for trigrams with the documented adjusted counts, by dicts: raw counts at order 3 and for
    n-grams starting with <s>, continuation counts N1+(. g) otherwise; uniform floor at the unigram level."""
    padded = [[BOS] + s + [EOS] for s in sentences]
    raw = {k: _counter(padded, k) for k in (1, 2, 3)}

    def adjusted(g):
        if len(g) == 3 or g[0] == BOS:
            return raw[len(g)][g]
        return len({x[0] for x in raw[len(g) + 1] if x[1:] == g})

    predictable = [w for w in words if w != BOS]
    a1 = {w: adjusted((w,)) for w in predictable}
    tot1, seen1 = sum(a1.values()), sum(1 for w in predictable if a1[w] > 0)

    def p(h, w):
        if w == BOS:
            return 0.0
        if not h:
            return max(a1[w] - d, 0) / tot1 + d * seen1 / tot1 / len(predictable)
        block = {g[-1]: adjusted(g) for g in raw[len(h) + 1] if g[:-1] == h}
        total = sum(block.values())
        if total == 0:
            return p(h[1:], w)
        return max(block.get(w, 0) - d, 0) / total + d * len(block) / total * p(h[1:], w)

    return p


def test_kneser_ney_trigram_matches_brute_force():
    sents = _markov_corpus(4, 40, n_words=8)
    model = KneserNeyLM.fit(sents, 3)
    brute = _brute_kn_trigram(sents, model.vocab.words, 0.75)
    ws = model.vocab.words
    for h in [(BOS,), (BOS, "w0"), (BOS, "w3"), ("w1", "w2"), ("w5", "w5"), ("w2", EOS), (EOS, "w1"), ("w0",)]:
        for w in ws:
            assert model.prob(list(h), w) == pytest.approx(brute(h, w), rel=1e-12, abs=1e-15), (h, w)


# ----------------------------------------------------------------------------- modified Kneser-Ney


def test_count_of_counts_and_discounts_by_hand():
    counts = [1] * 10 + [2] * 4 + [3] * 2 + [4] + [7, 9, 0]  # by hand: n1 = 10, n2 = 4, n3 = 2, n4 = 1
    assert count_of_counts(np.array(counts)).tolist() == [10, 4, 2, 1]
    # Y = 10 / (10 + 2*4) = 5/9; D1 = 1 - 2 (5/9) 4/10 = 5/9; D2 = 2 - 3 (5/9) 2/4 = 7/6; D3+ = 3 - 4 (5/9) 1/2 = 17/9
    assert modified_kn_discounts([10, 4, 2, 1]) == pytest.approx((5 / 9, 7 / 6, 17 / 9), rel=1e-14)
    # n1 = 3, n2 = 1, n3 = 1, n4 = 0: Y = 3/5; D1 = 1 - 2/5 = 3/5; D2 = 2 - 9/5 = 1/5; D3+ = 3 - 0 = 3
    assert modified_kn_discounts(count_of_counts(np.array([1, 1, 1, 2, 3, 5]))) == pytest.approx((0.6, 0.2, 3.0))
    # fallbacks: a zero count-of-count (n3 = 0), D2 <= 0 (n1 = n2 = 1, n3 = 5: D2 = 2 - 3 (1/3) 5 = -3),
    # D3+ <= 0 (n4 = 10: D3+ = 3 - 4 (5/9) 10 < 0)
    for bad in ([10, 4, 0, 1], [0, 4, 2, 1], [1, 1, 5, 0], [10, 4, 1, 10]):
        assert modified_kn_discounts(bad) == FALLBACK_DISCOUNTS
    assert discount_of(np.array([0, 1, 2, 3, 9]), (0.1, 0.2, 0.3)).tolist() == [0.0, 0.1, 0.2, 0.3, 0.3]
    # a context followed by words with adjusted counts 1, 1, 2, 3, 5, 8 (total 20): N1 = 2, N2 = 1, N3+ = 3
    d = (0.5, 1.25, 2.0)
    assert kn_interpolation_weight(2, 1, 3, 20, d) == pytest.approx((2 * 0.5 + 1.25 + 3 * 2.0) / 20, rel=1e-15)
    assert kn_backoff_weight(0.3, 0.4) == pytest.approx(0.5, rel=1e-15)
    with pytest.raises(ValueError, match="4 counts"):
        modified_kn_discounts([1, 2, 3])


def _brute_modified_kn(sentences, words, order, form, min_count=1):
    """Modified Kneser-Ney written out with dicts from the formulas: adjusted counts (raw at the top order and
    after <s>, continuation counts below), each order's discounts from its count-of-counts, gamma from
    N1, N2, N3+ of the context, and for the backoff form alpha from the lower order's seen mass."""
    vocab = set(words)
    padded = [[BOS] + [w if w in vocab else UNK for w in s] + [EOS] for s in sentences]
    raw = {k: _counter(padded, k) for k in range(1, order + 1)}

    def adjusted(g):
        if len(g) == order or g[0] == BOS:
            return raw[len(g)][g]
        return len({x[0] for x in raw[len(g) + 1] if x[1:] == g})

    adj = {k: {g: adjusted(g) for g in raw[k] if g != (BOS,)} for k in raw}
    discounts = {}
    for k, table in adj.items():
        n1, n2, n3, n4 = (sum(1 for a in table.values() if a == r) for r in (1, 2, 3, 4))
        y = n1 / (n1 + 2 * n2)
        d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
        assert all(0 < x <= i + 1 for i, x in enumerate(d)), "the corpus must not need the fallback"
        discounts[k] = d
    predictable = [w for w in words if w != BOS]

    def gamma(block, d):
        n1 = sum(1 for a in block.values() if a == 1)
        n2 = sum(1 for a in block.values() if a == 2)
        n3 = sum(1 for a in block.values() if a >= 3)
        return (d[0] * n1 + d[1] * n2 + d[2] * n3) / sum(block.values())

    def disc(a, d):
        return a - (0 if a == 0 else d[min(a, 3) - 1])

    @functools.cache
    def p(h, w):
        if w == BOS:
            return 0.0
        if not h:
            a1 = {v: adj[1].get((v,), 0) for v in predictable}
            return disc(a1[w], discounts[1]) / sum(a1.values()) + gamma(a1, discounts[1]) / len(predictable)
        d = discounts[len(h) + 1]
        block = {g[-1]: a for g, a in adj[len(h) + 1].items() if g[:-1] == h}
        if not block:
            return p(h[1:], w)
        total, g = sum(block.values()), gamma(block, d)
        interpolated = disc(block.get(w, 0), d) / total + g * p(h[1:], w)
        if form == "interpolated" or len(block) == len(predictable):
            return interpolated
        if w in block:
            return disc(block[w], d) / total
        return g / (1 - sum(p(h[1:], v) for v in block)) * p(h[1:], w)

    return p, discounts


@pytest.mark.parametrize("form", ["interpolated", "backoff"])
def test_modified_kneser_ney_matches_brute_force(form):
    sents = _markov_corpus(4, 40, n_words=12)  # n1..n3 > 0 at every order: no fallback discounts
    model = ModifiedKneserNeyLM.fit(sents, 3, form=form)
    brute, discounts = _brute_modified_kn(sents, model.vocab.words, 3, form)
    assert model.discounts == pytest.approx([discounts[k] for k in (1, 2, 3)], rel=1e-12)
    contexts = [(), (BOS,), (BOS, "w0"), (BOS, "w3"), ("w1", "w2"), ("w5", "w5"), ("w2", EOS), (EOS, "w1"), ("w0",)]
    contexts += [("w4", "w6"), ("w7",), (UNK,)]
    for h in contexts:
        for w in model.vocab.words:
            assert model.prob(list(h), w) == pytest.approx(brute(h, w), rel=1e-12, abs=1e-15), (h, w)
    assert model.form == form


def _all_contexts(model):
    """Every context the model saw at every order (as id tuples), the empty one, and unseen ones."""
    out = {()}
    for lvl in model.levels[1:]:
        out |= {tuple(g) for g in lvl.grams[lvl.starts, :-1].tolist()}
    v = model.vocab
    out |= {(v.id(EOS),), (v.id(UNK), v.id(UNK)), (v.id(EOS), v.id(BOS)), (v.id("w1"), v.id(EOS), v.id("w1"))}
    return sorted(out)


@pytest.mark.parametrize("order", [2, 3, 4])
@pytest.mark.parametrize("form", ["interpolated", "backoff"])
def test_modified_kneser_ney_sums_to_one_in_every_context(order, form):
    sents = _markov_corpus(2, 120) + [["w1", "rare-a"], ["w1", "rare-b"], ["w1", "w1"], ["w1", "w2"]]
    model = ModifiedKneserNeyLM.fit(sents, order, form=form, min_count=2)
    v = model.vocab
    for h in _all_contexts(model):
        p = model.distribution(h)
        assert p[v.id(BOS)] == 0.0 and (p[1:] > 0).all()
        assert math.fsum(p) == pytest.approx(1.0, abs=1e-10), h
    for w in range(len(v)):  # the scalar path agrees with the vector path
        assert model.prob(["w1", "w2"][-(order - 1) :], w) == model.distribution(["w1", "w2"])[w]


def test_backoff_form_keeps_a_context_followed_by_every_word_interpolated():
    # after "a" come a, b, </s> and <unk> ("z" is rarer than min_count): every word but <s>, none left to back off to
    sents = [["a", "b"], ["a", "a"], ["a"], ["b", "a"], ["a", "z"], ["b", "b"]]
    backoff = ModifiedKneserNeyLM.fit(sents, 2, form="backoff", min_count=2, discounts=[(0.5, 1.0, 1.5)] * 2)
    interpolated = ModifiedKneserNeyLM.fit(sents, 2, min_count=2, discounts=[(0.5, 1.0, 1.5)] * 2)
    np.testing.assert_allclose(backoff.distribution(["a"]), interpolated.distribution(["a"]), rtol=1e-14)
    assert math.fsum(backoff.distribution(["b"])) == pytest.approx(1.0, abs=1e-12)
    assert backoff.prob(["b"], "b") != interpolated.prob(["b"], "b")  # "b" is not followed by <unk>: backoff


@pytest.mark.parametrize("d", [0.75, 0.4])
def test_modified_kneser_ney_with_one_discount_is_kneser_ney(d):
    sents = _markov_corpus(5, 150)
    one = KneserNeyLM.fit(sents, 3, discount=d, min_count=2)
    same = ModifiedKneserNeyLM.fit(sents, 3, discounts=[(d, d, d)] * 3, min_count=2)
    for h in _contexts(one.vocab, 3):
        np.testing.assert_allclose(same.distribution(h), one.distribution(h), rtol=1e-12, atol=1e-16)


def test_modified_kneser_ney_validation():
    sents = _markov_corpus(11, 40)
    with pytest.raises(ValueError, match="form must be one of interpolated, backoff, got 'katz'"):
        ModifiedKneserNeyLM.fit(sents, 2, form="katz")
    with pytest.raises(ValueError, match=r"discounts must be 2 triples"):
        ModifiedKneserNeyLM.fit(sents, 2, discounts=[(0.5, 1.0, 1.5)])
    with pytest.raises(ValueError, match=r"0 < D2 <= 2"):
        ModifiedKneserNeyLM.fit(sents, 2, discounts=[(0.5, 2.5, 1.5)] * 2)
    with pytest.raises(ValueError, match="order >= 2"):
        ModifiedKneserNeyLM.fit(sents, 1)


# ----------------------------------------------------------------------------- sentences, perplexity, sampling


@pytest.mark.parametrize("model_cls", [AddKLM, KneserNeyLM])
def test_log_prob_sentence_is_the_chain_rule(model_cls):
    sents = _markov_corpus(5, 100)
    model = model_cls.fit(sents, 3)
    n = model.order
    for s in _markov_corpus(6, 10) + [["w1", "unseen", "w2"], []]:
        hist = [BOS] + s + [EOS]
        expected = sum(math.log(model.prob(hist[max(0, i - n + 1) : i], hist[i])) for i in range(1, len(hist)))
        assert model.log_prob_sentence(s) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    # a line is tokenized and lowercased like the training corpus
    assert model.log_prob_sentence("W1 w2, w3!") == pytest.approx(
        model.log_prob_sentence(["w1", "w2", "w3"]), rel=1e-15
    )
    with pytest.raises(ValueError, match="must not contain"):
        model.log_prob_sentence(["w1", EOS])


@pytest.mark.parametrize("model_cls", [AddKLM, KneserNeyLM])
def test_perplexity_and_in_domain_vs_shuffled(model_cls):
    train, test = _markov_corpus(7, 400), _markov_corpus(8, 100)
    model = model_cls.fit(train, 3)
    n_tokens = sum(len(s) + 1 for s in test)
    expected = math.exp(-sum(model.log_prob_sentence(s) for s in test) / n_tokens)
    assert model.perplexity(test) == pytest.approx(expected, rel=1e-12)
    assert model.perplexity(iter(test), chunk_tokens=5) == pytest.approx(expected, rel=1e-12)
    rng = np.random.default_rng(0)
    shuffled = [list(rng.permutation(s)) for s in test]
    assert model.perplexity(test) < 0.7 * model.perplexity(shuffled)
    with pytest.raises(ValueError, match="empty"):
        model.perplexity([])


def test_out_of_vocabulary_words_map_to_unk():
    model = KneserNeyLM.fit(_markov_corpus(9, 100), 2, min_count=3)
    assert model.prob(["qqq"], "w1") == model.prob([UNK], "w1")
    assert model.prob(["w1"], "qqq") == model.prob(["w1"], UNK) > 0


@pytest.mark.parametrize("model_cls", [AddKLM, KneserNeyLM])
def test_samples_are_vocab_words_ending_in_eos_and_seeded(model_cls):
    model = model_cls.fit(_markov_corpus(10, 200), 3, **({"k": 0.01} if model_cls is AddKLM else {}))
    words = set(model.vocab.words) - {BOS}
    samples = [model.sample(np.random.default_rng(s), max_len=500) for s in range(20)]
    for s in samples:
        assert s[-1] == EOS and EOS not in s[:-1]
        assert set(s) <= words
    again = [model.sample(np.random.default_rng(s), max_len=500) for s in range(20)]
    assert samples == again
    assert len({tuple(s) for s in samples}) > 5
    assert len(model.sample(np.random.default_rng(0), max_len=1)) == 1
    with pytest.raises(ValueError, match="numpy Generator"):
        model.sample(0)


def test_validation_messages():
    sents = _markov_corpus(11, 20)
    with pytest.raises(ValueError, match="two passes"):
        KneserNeyLM.fit(iter(sents), 2)
    v = ngram_vocab(sents)
    model = KneserNeyLM.fit(iter(sents), 2, vocab=v)  # one pass is enough with a vocab
    assert model.vocab is v
    with pytest.raises(ValueError, match="order >= 2"):
        KneserNeyLM.fit(sents, 1)
    with pytest.raises(ValueError, match=r"discount must be in \(0, 1\]"):
        KneserNeyLM.fit(sents, 2, discount=1.5)
    with pytest.raises(ValueError, match="k must be a positive"):
        AddKLM.fit(sents, 2, k=0)
    with pytest.raises(ValueError, match="order must be >= 1"):
        count_ngrams([np.array([3, 4])], 0)
    with pytest.raises(ValueError, match="must not contain the bos/eos"):
        count_ngrams([np.array([3, 0, 4])], 2)
    c = count_ngrams(v.encode_lines(sents), 2, vocab_size=len(v))
    with pytest.raises(ValueError, match="at most 1 ids"):
        mle_prob(c, [3, 4], 5)
    with pytest.raises(ValueError, match="vocab has"):
        KneserNeyLM(c, Vocab(v.words[:-1], unk=UNK))
    with pytest.raises(ValueError, match=r"word ids must lie in \[0"):
        model.prob([1_000], "w1")
