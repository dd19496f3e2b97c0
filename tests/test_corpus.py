"""The synthetic word2vec corpus: deterministic, the size asked for, every planted word present, sound test sets."""

import collections
import itertools

import numpy as np
import pytest
import scipy.stats

from train.data import corpus

N = 300_000  # tokens: 0.2 s to generate, enough for the rarest planted word to appear


@pytest.fixture(scope="module")
def sentences():
    return list(corpus.generate_corpus(N, seed=0))


def test_deterministic_given_the_seed(sentences):
    assert list(corpus.generate_corpus(N, seed=0)) == sentences
    other = list(itertools.islice(corpus.generate_corpus(N, seed=1), 200))
    assert other != sentences[:200]


def test_token_count_is_approximately_num_tokens(sentences):
    lengths = [len(s.split()) for s in sentences]
    total = sum(lengths)
    assert N <= total < N + max(lengths)  # stops at the first sentence that reaches N
    assert 5 <= min(lengths) and max(lengths) <= 30
    assert sum(len(s.split()) for s in corpus.generate_corpus(1000, seed=3)) in range(1000, 1030)
    with pytest.raises(ValueError, match="num_tokens"):
        corpus.generate_corpus(0)


def test_every_planted_word_appears(sentences):
    counts = collections.Counter(w for s in sentences for w in s.split())
    planted = corpus.planted_words()
    assert len(planted) > 200
    missing = [w for w in planted if counts[w] == 0]
    assert not missing
    for name, questions in corpus.planted_analogies():
        for q in questions:
            assert all(counts[w] >= 10 for w in q), (name, q)
    for a, b, _ in corpus.planted_similarities():
        assert counts[a] >= 10 and counts[b] >= 10
    assert all(s == s.lower() and s.split() == s.split(" ") for s in sentences[:1000])


def test_planted_test_sets():
    sections = dict(corpus.planted_analogies())
    assert set(sections) == {
        "family",
        "capital-countries",
        "gram6-nationality-adjective",
        "gram8-plural",
        "gram3-comparative",
    }
    n_pairs = {
        "family": len(corpus.GENDER_PAIRS),
        "capital-countries": len(corpus.COUNTRIES),
        "gram8-plural": len(corpus.NOUNS),
        "gram3-comparative": len(corpus.ADJECTIVES),
    }
    for name, n in n_pairs.items():
        assert len(sections[name]) == n * (n - 1) and len(set(sections[name])) == n * (n - 1)
    assert ("man", "woman", "king", "queen") in sections["family"]
    assert ("paris", "france", "berlin", "germany") in sections["capital-countries"]
    sims = corpus.planted_similarities()
    assert sims == corpus.planted_similarities()
    assert len({(a, b) for a, b, _ in sims}) == len(sims) and all(a != b for a, b, _ in sims)
    assert set(s for _, _, s in sims) == set(corpus.SIMILARITY_LEVELS.values())
    score = {frozenset((a, b)): s for a, b, s in sims}
    assert score.get(frozenset(("king", "queen")), 9.0) == 9.0


# ----------------------------------------------------------------------------- the Zipf corpus

ZIPF_N, ZIPF_WORDS = 400_000, 20_000  # tokens and lexicon of a small instance: 0.2 s to generate


@pytest.fixture(scope="module")
def zipf_sentences():
    return list(corpus.generate_zipf_corpus(ZIPF_N, seed=0, num_words=ZIPF_WORDS))


def test_zipf_corpus_is_deterministic_given_the_seed_and_written_as_generated(zipf_sentences, tmp_path):
    assert list(corpus.generate_zipf_corpus(ZIPF_N, seed=0, num_words=ZIPF_WORDS)) == zipf_sentences
    other = list(itertools.islice(corpus.generate_zipf_corpus(ZIPF_N, seed=1, num_words=ZIPF_WORDS), 200))
    assert other != zipf_sentences[:200]
    path = tmp_path / "zipf.txt"
    corpus.write_zipf_corpus(str(path), ZIPF_N, 0, num_words=ZIPF_WORDS)
    assert path.read_text(encoding="utf-8").split("\n") == [*zipf_sentences, ""]
    assert corpus.zipf_lexicon(50) == corpus.zipf_lexicon(ZIPF_WORDS)[:50]  # fixed words, whatever the seed
    for bad in (dict(num_tokens=0), dict(num_words=0), dict(exponent=0), dict(planted_share=1.5), dict(seed=0.5)):
        with pytest.raises(ValueError, match="zipf corpus"):
            corpus.generate_zipf_corpus(**{"num_tokens": 10, **bad})


def test_zipf_corpus_size_vocabulary_and_slope(zipf_sentences):
    lengths = [len(s.split()) for s in zipf_sentences]
    assert ZIPF_N <= sum(lengths) < ZIPF_N + 30 and max(lengths) <= 30
    assert all(s == s.lower() and s.split() == s.split(" ") for s in zipf_sentences[:1000])
    counts = collections.Counter(w for s in zipf_sentences for w in s.split())
    lexicon = corpus.zipf_lexicon(ZIPF_WORDS)
    assert len(set(lexicon)) == ZIPF_WORDS and not set(lexicon) & set(corpus.planted_words())
    # lexicon words at min_count 5: 360k lexicon tokens over 20k words, rank k expects 360k / (H k) of them (H the
    # harmonic number): about 6.9k words expect >= 5, and Poisson counts bring ranks beyond in
    lexicon_tokens = sum(counts[w] for w in lexicon)
    ranks = np.arange(1, ZIPF_WORDS + 1)
    expected = scipy.stats.poisson.sf(4, lexicon_tokens / ranks / np.sum(1 / ranks)).sum()
    kept = sum(counts[w] >= 5 for w in lexicon)
    assert abs(kept - expected) < 0.03 * expected and kept > 7000, (kept, expected)
    # the lexicon's rank-frequency slope on log-log axes is -exponent (counts of 3400 down to 20 fitted)
    ranked = np.array([counts[w] for w in lexicon[10:1700]], float)
    slope = np.polyfit(np.log(np.arange(11, 1701)), np.log(np.maximum(ranked, 1)), 1)[0]
    assert -1.1 < slope < -0.9, slope
    steeper = collections.Counter(
        w for s in corpus.generate_zipf_corpus(100_000, num_words=ZIPF_WORDS, exponent=1.5) for w in s.split()
    )
    assert steeper[lexicon[0]] / steeper[lexicon[9]] > 25  # 10 ** 1.5 = 32 where exponent 1 gives 10


def test_zipf_corpus_keeps_the_planted_relations(zipf_sentences):
    """The planted sentences are the generated corpus's grammar's, in order, a tenth of the tokens; every word of
    the planted test sets appears (at the default 20M tokens each appears about 70 times as often)."""
    lexicon = set(corpus.zipf_lexicon(ZIPF_WORDS))
    planted = [s for s in zipf_sentences if not lexicon.intersection(s.split())]
    grammar = corpus._Grammar(0)
    assert planted == [" ".join(grammar.planted_sentence()) for _ in planted]
    assert 0.09 < sum(len(s.split()) for s in planted) / ZIPF_N < 0.11
    counts = collections.Counter(w for s in planted for w in s.split())
    for name, questions in corpus.planted_analogies():
        for q in questions:
            assert all(counts[w] >= 1 for w in q), (name, q)
    assert all(counts[a] and counts[b] for a, b, _ in corpus.planted_similarities())
    assert any("king" in s.split() and "throne" in s.split() for s in planted)
