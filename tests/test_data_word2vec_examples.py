"""train.data.word2vec_examples: the corpus's steps, each step's examples against zoo.word2vec's pairs, CBOW packing."""

import collections
import math

import jax
import numpy as np
import pytest

from tests.test_train_word2vec import tiny_config
from train.data import corpus as planted, text as text_data, word2vec_examples as w2v_examples
from zoo import word2vec as w2v
from zoo.text import tokenize


def test_num_steps_follow_num_epochs():
    counts = collections.Counter(w for line in planted.generate_corpus(50_000) for w in tokenize(line))
    words = sum(n for n in counts.values() if n >= 5)  # min_count 5 drops the rest before training
    c = tiny_config(num_steps=0, num_epochs=3, batch_size=32768)
    corpus, _ = w2v_examples.load_corpus(c, None)
    assert w2v_examples.resolve_num_steps(c, corpus) == math.ceil(3 * words / 32768)
    assert w2v_examples.resolve_num_steps(tiny_config(num_steps=7), corpus) == 7


@pytest.fixture(scope="module")
def small_text(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "small.txt"
    rng = np.random.default_rng(5)
    words = [f"w{i}" for i in range(30)]
    lines = [" ".join(rng.choice(words, size=rng.integers(1, 9))) for _ in range(300)]
    path.write_text("\n".join(lines) + "\n")
    return str(path), lines


def _encoded(path, min_count=1):
    return text_data.encode_corpus(text_data.open_corpus(f"text:{path}"), min_count)


def test_examples_with_window_1_are_the_adjacent_pairs_of_each_line(small_text):
    path, lines = small_text
    corpus = _encoded(path)
    c = tiny_config(corpus=f"text:{path}", window=1, subsample=0.0, batch_size=len(corpus.ids), min_count=1)
    ex = w2v_examples.TrainingExamples(corpus, c)
    r = ex.record(0, 0)  # the step reads the whole corpus once
    real = r["weights"] > 0
    got = collections.Counter(zip(r["outputs"][real].tolist(), r["inputs"][real].tolist()))
    want = collections.Counter()
    for line in lines:
        ids = corpus.vocab.encode(line)
        centres, ctx = w2v.skipgram_pairs(ids, 1)  # reach 1 is the only choice with window 1
        want.update(zip(centres.tolist(), ctx.tolist()))
    assert got == want and r["dropped"].sum() == 0
    assert "negatives" not in r and r["inputs"].shape == (ex.capacity,)  # noise words are drawn in the step
    assert ex.negatives(jax.random.key(0), 7).shape == (7, c.negatives)


def test_examples_stay_in_their_line_and_window_and_depend_on_seed_and_step(small_text):
    path, lines = small_text
    corpus = _encoded(path)
    c = tiny_config(corpus=f"text:{path}", window=3, subsample=0.0, batch_size=len(corpus.ids), min_count=1)
    ex = w2v_examples.TrainingExamples(corpus, c)
    allowed = collections.Counter()
    for line in lines:
        ids = corpus.vocab.encode(line)
        allowed.update(zip(*(a.tolist() for a in w2v.skipgram_pairs(ids, 3))))
    r = ex.record(0, 1)
    real = r["weights"] > 0
    got = collections.Counter(zip(r["outputs"][real].tolist(), r["inputs"][real].tolist()))
    assert not got - allowed  # every pair is within 3 words, in one line
    n_adjacent = sum(len(corpus.vocab.encode(line)) - 1 for line in lines) * 2
    assert n_adjacent < real.sum() < sum(allowed.values())  # offset 1 always, offsets 2-3 only with b >= 2, 3
    for k, v in ex.record(0, 1).items():
        np.testing.assert_array_equal(v, r[k])
    assert not np.array_equal(ex.record(1, 1)["inputs"], r["inputs"])
    assert not np.array_equal(ex.record(0, 2)["inputs"], r["inputs"])
    # the noise words, drawn on the device from the step's key, follow unigram^0.75
    neg = np.asarray(jax.jit(ex.negatives, static_argnums=1)(jax.random.key(3), 200_000)).ravel()
    p = corpus.vocab.counts**0.75 / np.sum(corpus.vocab.counts**0.75)
    freq = np.bincount(neg, minlength=len(p)) / neg.size
    assert np.abs(freq - p).max() < 4 * np.sqrt(p.max() / neg.size)


def test_cbow_record_packs_each_centres_contexts_into_whole_minibatches(small_text):
    """With window 1 every centre's contexts are its in-line neighbours; packed in order, no centre split."""
    path, lines = small_text
    corpus = _encoded(path)
    c = tiny_config(
        corpus=f"text:{path}",
        model="cbow",
        window=1,
        subsample=0.0,
        batch_size=len(corpus.ids),
        min_count=1,
        minibatch_size=64,
    )
    ex = w2v_examples.TrainingExamples(corpus, c)
    r = ex.record(0, 0)
    B, P, M = c.minibatch_size, ex.context_slots, ex.minibatches
    assert M > 4 and r["outputs"].shape == (M * B,) and r["contexts"].shape == (M * P,) and r["dropped"].sum() == 0
    got = collections.Counter()
    for j in range(M):
        outputs, weights = (r[k][j * B : (j + 1) * B] for k in ("outputs", "weights"))
        contexts, owners, mask = (r[k][j * P : (j + 1) * P] for k in ("contexts", "owners", "mask"))
        for b in np.flatnonzero(weights):
            got[outputs[b], tuple(sorted(contexts[(owners == b) & (mask > 0)].tolist()))] += 1
    want = collections.Counter()
    for line in lines:
        ctx, mask, centres = w2v.cbow_examples(corpus.vocab.encode(line), 1)
        want.update((o, tuple(sorted(x[m].tolist()))) for x, m, o in zip(ctx, mask, centres.tolist()))
    assert got == want
    # too few minibatches: the centres that do not fit are dropped and counted
    ex.minibatches = 2
    small = ex.record(0, 0)
    assert small["weights"].sum() + small["dropped"].sum() == sum(want.values()) and small["weights"].sum() <= 2 * B


def test_pack_centres_bounds_centres_and_slots():
    counts = np.array([3, 3, 2, 4, 1])
    np.testing.assert_array_equal(w2v_examples.pack_centres(counts, 2, 6), [0, 2, 4])  # 3+3 | 2+4 | 1
    np.testing.assert_array_equal(w2v_examples.pack_centres(counts, 2, 5), [0, 1, 2, 3, 4])  # 3+3 and 2+4 halved
    np.testing.assert_array_equal(w2v_examples.pack_centres(counts, 4, 8), [0, 2, 4])  # 12 halved: 3+3 | 2+4 | 1
    np.testing.assert_array_equal(w2v_examples.pack_centres(counts, 10, 100), [0])
    np.testing.assert_array_equal(w2v_examples.pack_centres(counts, 1, 100), np.arange(5))
    rng = np.random.default_rng(0)
    for slots in (300, 400, 10):  # most runs halved, a few, and down to single centres
        counts = rng.integers(1, 11, 1000)
        starts = w2v_examples.pack_centres(counts, 64, slots)
        ends = np.append(starts[1:], len(counts))
        sizes = [counts[a:b].sum() for a, b in zip(starts, ends)]  # brute force, run by run
        assert starts[0] == 0 and np.all(ends > starts) and max(ends - starts) <= 64 and max(sizes) <= slots
