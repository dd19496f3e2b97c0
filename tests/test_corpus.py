"""The synthetic word2vec corpus: deterministic, the size asked for, every planted word present, sound test sets."""

import collections
import itertools

import pytest

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
