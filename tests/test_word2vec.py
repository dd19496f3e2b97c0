"""word2vec: training pairs, losses vs brute-force loops, sparse updates vs dense SGD (queries: test_word_vectors)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import word2vec as w2v, word2vec_rows
from zoo.text import Vocab, tokenize

RTOL, ATOL = 1e-5, 1e-6  # float32 arithmetic against float64 / autodiff references


def _params(seed, V=7, D=5, scale=0.5):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return {"in": scale * jax.random.normal(k1, (V, D)), "out": scale * jax.random.normal(k2, (V, D))}


def _np(params):
    return {k: np.asarray(v, np.float64) for k, v in params.items()}


def _log_sigmoid(x):
    return -math.log1p(math.exp(-x)) if x > 0 else x - math.log1p(math.exp(x))


# ----------------------------------------------------------------------------- training pairs


# The lecture's training samples for "The quick brown fox jumps over the lazy dog." with window 2,
# the first four centres as on the slide, then the rest of the sentence the same way.
LECTURE_PAIRS = [
    ("the", "quick"),
    ("the", "brown"),
    ("quick", "the"),
    ("quick", "brown"),
    ("quick", "fox"),
    ("brown", "the"),
    ("brown", "quick"),
    ("brown", "fox"),
    ("brown", "jumps"),
    ("fox", "quick"),
    ("fox", "brown"),
    ("fox", "jumps"),
    ("fox", "over"),
    ("jumps", "brown"),
    ("jumps", "fox"),
    ("jumps", "over"),
    ("jumps", "the"),
    ("over", "fox"),
    ("over", "jumps"),
    ("over", "the"),
    ("over", "lazy"),
    ("the", "jumps"),
    ("the", "over"),
    ("the", "lazy"),
    ("the", "dog"),
    ("lazy", "over"),
    ("lazy", "the"),
    ("lazy", "dog"),
    ("dog", "the"),
    ("dog", "lazy"),
]


def test_skipgram_pairs_are_the_lectures_training_samples():
    tokens = tokenize("The quick brown fox jumps over the lazy dog.")
    vocab = Vocab(sorted(set(tokens)))
    centres, contexts = w2v.skipgram_pairs(vocab.encode(tokens), window=2)
    got = list(zip(vocab.decode(centres), vocab.decode(contexts)))
    assert got[:13] == LECTURE_PAIRS[:13]  # exactly the slide's list, in the slide's order
    assert got == LECTURE_PAIRS


def test_skipgram_pairs_brute_force_and_short_sentences():
    ids = np.array([5, 3, 9, 3, 1, 0, 7])
    for window in (1, 3, 10):
        c, o = w2v.skipgram_pairs(ids, window)
        want = [(ids[t], ids[s]) for t in range(len(ids)) for s in range(len(ids)) if 0 < abs(s - t) <= window]
        assert list(zip(c.tolist(), o.tolist())) == [(int(a), int(b)) for a, b in want]
    assert w2v.skipgram_pairs(np.array([4]), 2)[0].size == 0
    assert w2v.skipgram_pairs(np.array([], np.int32), 2)[0].size == 0
    with pytest.raises(ValueError, match="window"):
        w2v.skipgram_pairs(ids, 0)
    with pytest.raises(ValueError, match="ids"):
        w2v.skipgram_pairs(ids.reshape(1, -1), 2)


def test_dynamic_window_keeps_offset_d_with_probability_1_minus_d_minus_1_over_window():
    T, window = 4000, 4
    ids = np.arange(T)  # distinct ids: the offset of a pair is context - centre
    c, o = w2v.dynamic_window_pairs(ids, window, np.random.default_rng(0))
    off = o - c
    # each centre gets a symmetric window {+-1..+-b}, b ~ U{1..window}, cut at the sentence ends
    for t in (0, 1, 100, T - 1):
        got = set(off[c == t].tolist())
        b = max(abs(d) for d in got)
        assert got == {d for d in range(-b, b + 1) if d != 0 and 0 <= t + d < T}
    for d in range(1, window + 1):
        p = (window - d + 1) / window
        n = T - d  # centres that have a word at offset +d
        frac = np.sum(off == d) / n
        assert abs(frac - p) < 4 * math.sqrt(p * (1 - p) / n) + 1e-9, (d, frac, p)
    # window 1 is deterministic
    np.testing.assert_array_equal(
        w2v.dynamic_window_pairs(ids[:9], 1, np.random.default_rng(1))[1], w2v.skipgram_pairs(ids[:9], 1)[1]
    )
    with pytest.raises(ValueError, match="rng"):
        w2v.dynamic_window_pairs(ids, 2, 0)


def test_cbow_examples_match_skipgram_pairs():
    ids = np.array([4, 8, 15, 16, 23, 42])
    ctx, mask, centres = w2v.cbow_examples(ids, 2)
    assert ctx.shape == mask.shape == (6, 4) and centres.tolist() == ids.tolist()
    assert np.all(ctx[~mask] == 0)
    c, o = w2v.skipgram_pairs(ids, 2)
    got = sorted((int(centres[i]), int(ctx[i, j])) for i, j in zip(*np.nonzero(mask)))
    assert got == sorted(zip(c.tolist(), o.tolist()))
    # dynamic: every example's contexts are a sub-window of the full one
    ctx_d, mask_d, cen_d = w2v.cbow_examples(ids, 2, np.random.default_rng(3))
    assert np.all(mask_d <= mask) and np.all(ctx_d[mask_d] == ctx[mask_d]) and mask_d.any(axis=1).all()
    # a one-word sentence has no example
    assert w2v.cbow_examples(np.array([3]), 2)[2].size == 0


# ----------------------------------------------------------------------------- losses vs brute force


def test_init_params_word2vec_style():
    p = w2v.init_params(jax.random.key(0), 50, 8)
    assert p["in"].shape == p["out"].shape == (50, 8)
    assert float(jnp.max(jnp.abs(p["in"]))) <= 0.5 / 8 and float(jnp.std(p["in"])) > 0.01
    assert float(jnp.max(jnp.abs(p["out"]))) == 0.0
    with pytest.raises(ValueError, match="dim"):
        w2v.init_params(jax.random.key(0), 5, 0)


def test_skipgram_softmax_loss_is_the_lectures_J():
    params = _params(0)
    P = _np(params)
    centres, contexts = np.array([0, 3, 3, 6, 2]), np.array([1, 3, 5, 0, 2])
    total = 0.0
    for c, o in zip(centres, contexts):  # -log exp(u_o.v_c) / sum_w exp(u_w.v_c)
        scores = [float(P["out"][w] @ P["in"][c]) for w in range(P["out"].shape[0])]
        total += -math.log(math.exp(scores[o]) / sum(math.exp(s) for s in scores))
    np.testing.assert_allclose(w2v.skipgram_softmax_loss(params, centres, contexts), total / len(centres), rtol=RTOL)
    np.testing.assert_allclose(w2v.skipgram_softmax_loss(params, centres, contexts, reduction="sum"), total, rtol=RTOL)
    with pytest.raises(ValueError, match="reduction"):
        w2v.skipgram_softmax_loss(params, centres, contexts, reduction="max")


def test_skipgram_objective_is_the_lectures_J_and_pairs_over_T_times_the_pair_mean():
    # J(theta) as the lecture writes it, on its sentence with window m = 2: a brute-force double loop over the
    # T = 9 positions and each position's window, against skipgram_objective; the pair mean differs from it by
    # exactly the factor (number of pairs) / T = 30 / 9 (9 centres, 2m contexts each, 2 + 1 + 1 + 2 cut off).
    tokens = tokenize("The quick brown fox jumps over the lazy dog.")
    vocab = Vocab(sorted(set(tokens)))
    ids, m = vocab.encode(tokens), 2
    params = _params(3, V=len(vocab))
    P = _np(params)
    T = len(ids)
    total = 0.0
    for t in range(T):
        scores = P["out"] @ P["in"][ids[t]]
        log_p = scores - math.log(sum(math.exp(s) for s in scores))  # log P(o | w_t) for every o
        total += sum(log_p[ids[t + j]] for j in range(-m, m + 1) if j != 0 and 0 <= t + j < T)
    brute = -total / T
    J = w2v.skipgram_objective(params, ids, m)
    np.testing.assert_allclose(J, brute, rtol=RTOL)
    centres, contexts = w2v.skipgram_pairs(ids, m)
    assert len(centres) == len(LECTURE_PAIRS) == 2 * m * T - m * (m + 1) == 30
    pair_mean = w2v.skipgram_softmax_loss(params, centres, contexts)
    np.testing.assert_allclose(J, pair_mean * len(centres) / T, rtol=RTOL)
    assert abs(float(J) - float(pair_mean)) > 1.0  # the factor 30/9 is no rounding: the two forms differ
    # the gradients differ by the same factor; a one-word sentence has no pairs, J = 0
    g_J = jax.grad(w2v.skipgram_objective)(params, ids, m)
    g_mean = jax.grad(w2v.skipgram_softmax_loss)(params, centres, contexts)
    for k in ("in", "out"):
        np.testing.assert_allclose(g_J[k], g_mean[k] * 30 / 9, rtol=1e-4, atol=1e-6)
    assert float(w2v.skipgram_objective(params, ids[:1], m)) == 0.0
    for bad, match in ((np.array([], np.int32), "at least one word"), (np.array([0, 99]), "ids must lie")):
        with pytest.raises(ValueError, match=match):
            w2v.skipgram_objective(params, bad, m)
    with pytest.raises(ValueError, match="window"):
        w2v.skipgram_objective(params, ids, 0)


def test_sgns_loss_brute_force():
    params = _params(1)
    P = _np(params)
    centres, contexts = np.array([0, 3, 3, 6]), np.array([1, 3, 5, 0])
    negatives = np.array([[2, 2, 4], [1, 0, 6], [3, 5, 5], [0, 1, 2]])
    want = []
    for c, o, negs in zip(centres, contexts, negatives):
        v = P["in"][c]
        want.append(-_log_sigmoid(P["out"][o] @ v) - sum(_log_sigmoid(-(P["out"][k] @ v)) for k in negs))
    np.testing.assert_allclose(w2v.sgns_loss(params, centres, contexts, negatives), np.mean(want), rtol=RTOL)
    shared = np.array([2, 4])
    want_shared = [
        -_log_sigmoid(P["out"][o] @ P["in"][c]) - sum(_log_sigmoid(-(P["out"][k] @ P["in"][c])) for k in shared)
        for c, o in zip(centres, contexts)
    ]
    np.testing.assert_allclose(
        w2v.sgns_loss(params, centres, contexts, shared, reduction="sum"), sum(want_shared), rtol=RTOL
    )
    with pytest.raises(ValueError, match="negatives"):
        w2v.sgns_loss(params, centres, contexts, negatives[:2])
    with pytest.raises(ValueError, match="params"):
        w2v.sgns_loss({"in": params["in"]}, centres, contexts, negatives)


def test_cbow_loss_brute_force():
    params = _params(2)
    P = _np(params)
    ctx = np.array([[1, 2, 0, 0], [3, 3, 4, 5]])
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)
    centres, negatives = np.array([6, 0]), np.array([[4, 5], [6, 6]])
    want = []
    for b in range(2):
        h = np.mean([P["in"][j] for j, m in zip(ctx[b], mask[b]) if m], axis=0)
        want.append(
            -_log_sigmoid(P["out"][centres[b]] @ h) - sum(_log_sigmoid(-(P["out"][k] @ h)) for k in negatives[b])
        )
    np.testing.assert_allclose(w2v.cbow_loss(params, ctx, mask, centres, negatives), np.mean(want), rtol=RTOL)


# ----------------------------------------------------------------------------- sparse gradients and updates


def _dense(V, D, rows_and_grads):
    out = np.zeros((V, D))
    for rows, g in rows_and_grads:
        np.add.at(out, np.asarray(rows).reshape(-1), np.asarray(g, np.float64).reshape(-1, D))
    return out


# repeated rows on purpose: centre 3 twice, context 3 also a negative, negatives repeated within a row
BATCH = dict(
    centres=np.array([0, 3, 3, 6, 1]),
    contexts=np.array([1, 3, 5, 0, 1]),
    negatives=np.array([[2, 2, 4], [1, 0, 6], [3, 5, 5], [0, 1, 2], [1, 1, 1]]),
)


@pytest.mark.parametrize("shared", [False, True])
def test_sgns_grads_equal_autodiff(shared):
    params = _params(3)
    c, o = BATCH["centres"], BATCH["contexts"]
    neg = np.array([2, 3, 3]) if shared else BATCH["negatives"]
    d_in, d_ctx, d_neg = w2v.sgns_grads(params, c, o, neg)
    V, D = params["in"].shape
    g = jax.jit(jax.grad(lambda p: w2v.sgns_loss(p, c, o, neg, reduction="sum")))(params)
    np.testing.assert_allclose(_dense(V, D, [(c, d_in)]), g["in"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(_dense(V, D, [(o, d_ctx), (neg, d_neg)]), g["out"], rtol=RTOL, atol=ATOL)
    assert d_neg.shape == ((3, D) if shared else (5, 3, D))


def test_sgns_update_is_a_dense_sgd_step_touching_only_batch_rows():
    params, lr = _params(4, V=9), 0.3
    c, o, neg = BATCH["centres"], BATCH["contexts"], BATCH["negatives"]
    g = jax.jit(jax.grad(lambda p: w2v.sgns_loss(p, c, o, neg, reduction="sum")))(params)
    new = w2v.sgns_update(params, c, o, neg, lr)
    for k in ("in", "out"):
        np.testing.assert_allclose(new[k], params[k] - lr * g[k], rtol=RTOL, atol=ATOL)
    untouched_in = np.setdiff1d(np.arange(9), c)
    untouched_out = np.setdiff1d(np.arange(9), np.concatenate([o, neg.ravel()]))
    assert untouched_in.size and untouched_out.size
    np.testing.assert_array_equal(new["in"][untouched_in], params["in"][untouched_in])
    np.testing.assert_array_equal(new["out"][untouched_out], params["out"][untouched_out])
    with pytest.raises(ValueError, match="negatives"):
        w2v.sgns_update(params, c, o, np.array([1, 2]), lr)


def test_sgns_update_shared_hogbatch():
    params, lr = _params(5, V=9), 0.2
    c, o, shared = BATCH["centres"], BATCH["contexts"], np.array([2, 3, 7, 7])
    g = jax.jit(jax.grad(lambda p: w2v.sgns_loss(p, c, o, shared, reduction="sum")))(params)
    new = w2v.sgns_update_shared(params, c, o, shared, lr)
    tiled = w2v.sgns_update(params, c, o, np.tile(shared, (len(c), 1)), lr)
    for k in ("in", "out"):
        np.testing.assert_allclose(new[k], params[k] - lr * g[k], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(new[k], tiled[k], rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match="shared"):
        w2v.sgns_update_shared(params, c, o, BATCH["negatives"], lr)


def test_cbow_grads_are_word2vecs_undivided_context_gradient_and_update_steps_by_them():
    params, lr = _params(6, V=8), 0.25
    ctx = np.array([[1, 2, 2, 0], [3, 3, 4, 5], [7, 0, 0, 0]])
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]], bool)
    centres, negatives = np.array([6, 1, 1]), np.array([[4, 5], [6, 6], [1, 2]])
    loss = lambda p: w2v.cbow_loss(p, ctx, mask, centres, negatives, reduction="sum")
    g = jax.jit(jax.grad(loss))(params)
    d_ctx, d_pos, d_neg = w2v.cbow_grads(params, ctx, mask, centres, negatives)
    V, D = params["in"].shape
    n = mask.sum(axis=1)[:, None, None]
    # the output rows' gradients are exact; each context row gets dL/dh, n times its exact dL/dv_j = dL/dh / n
    np.testing.assert_allclose(_dense(V, D, [(centres, d_pos), (negatives, d_neg)]), g["out"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(_dense(V, D, [(ctx, np.asarray(d_ctx) / n)]), g["in"], rtol=RTOL, atol=ATOL)
    assert not np.allclose(_dense(V, D, [(ctx, d_ctx)]), g["in"], rtol=RTOL, atol=ATOL)  # n > 1 here: they differ
    np.testing.assert_array_equal(np.asarray(d_ctx)[~mask], 0.0)  # empty slots take nothing
    new = w2v.cbow_update(params, ctx, mask, centres, negatives, lr)
    np.testing.assert_allclose(new["in"], params["in"] - lr * _dense(V, D, [(ctx, d_ctx)]), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(new["out"], params["out"] - lr * g["out"], rtol=RTOL, atol=ATOL)


def test_sparse_sgd_lowers_the_loss_on_a_toy_corpus():
    ids = np.tile(np.array([0, 1, 2, 3, 4, 5]), 30)
    c, o = w2v.skipgram_pairs(ids, 1)
    params = w2v.init_params(jax.random.key(0), 6, 8)
    probs = np.full(6, 1 / 6)
    key = jax.random.key(1)
    neg0 = w2v.sample_negatives(key, probs, (len(c), 3))
    before = float(w2v.sgns_loss(params, c, o, neg0))
    update = jax.jit(w2v.sgns_update)  # the update leaves jit to its caller; its checks run while tracing
    for _step in range(50):
        key, sub = jax.random.split(key)
        params = update(params, c, o, w2v.sample_negatives(sub, probs, (len(c), 3)), 0.01)
    assert float(w2v.sgns_loss(params, c, o, neg0)) < 0.7 * before


# ----------------------------------------------------------------------------- the trainer's row steps

sgns_rows_step = jax.jit(word2vec_rows.sgns_rows_step)  # one compile each instead of op-by-op dispatch
cbow_rows_step = jax.jit(word2vec_rows.cbow_rows_step)
softmax_rows_step = jax.jit(word2vec_rows.softmax_rows_step)


def _dense_sgd(params, grads, lr):
    return {k: params[k] - lr * grads[k] for k in params}


def test_sgns_rows_step_is_sgns_update_with_padding_and_hogbatch_its_shared_loss():
    rng = np.random.default_rng(0)
    params, lr, P, K = _params(0, V=11, D=4), 0.1, 8, 3
    inputs, outputs = rng.integers(0, 11, P).astype(np.int32), rng.integers(0, 11, P).astype(np.int32)
    weights = np.ones(P, np.float32)
    weights[-2:] = 0  # padding
    negatives = rng.integers(0, 11, (P, K)).astype(np.int32)
    got, loss = sgns_rows_step(params, inputs, outputs, negatives, weights, lr)
    real = slice(0, P - 2)
    want = w2v.sgns_update(params, inputs[real], outputs[real], negatives[real], lr)
    for k in params:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6)
    assert loss == pytest.approx(
        float(w2v.sgns_loss(params, inputs[real], outputs[real], negatives[real], "sum")), rel=1e-5
    )
    # HogBatch: G = 4 consecutive pairs share K negatives; the update is SGD on the sum of zoo's shared losses
    shared = rng.integers(0, 11, (P // 4, K)).astype(np.int32)
    got, loss = sgns_rows_step(params, inputs, outputs, shared, weights, lr)

    def total(p):
        return sum(
            w2v.sgns_loss(
                p,
                inputs[g * 4 : g * 4 + 4][weights[g * 4 : g * 4 + 4] > 0],
                outputs[g * 4 : g * 4 + 4][weights[g * 4 : g * 4 + 4] > 0],
                shared[g],
                "sum",
            )
            for g in range(P // 4)
        )

    want = _dense_sgd(params, jax.jit(jax.grad(total))(params), lr)
    for k in params:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6)
    assert loss == pytest.approx(float(jax.jit(total)(params)), rel=1e-5)


def test_cbow_rows_step_is_cbow_update_with_packed_contexts_and_padding():
    rng = np.random.default_rng(1)
    params, lr, M, C, K = _params(1, V=11, D=4), 0.1, 5, 4, 2
    contexts = rng.integers(0, 11, (M, C)).astype(np.int32)
    mask = (rng.random((M, C)) < 0.7).astype(np.float32)
    mask[:, 0] = 1
    centres, negatives = rng.integers(0, 11, M).astype(np.int32), rng.integers(0, 11, (M, K)).astype(np.int32)
    # packed: the real slots centre by centre, then 3 empty slots (owner 0, mask 0) that must change nothing
    owner, slot = np.nonzero(mask)
    packed = [
        np.concatenate([a, np.zeros(3, a.dtype)])
        for a in (contexts[owner, slot], owner.astype(np.int32), np.ones(len(owner), np.float32))
    ]
    weights = np.ones(M + 1, np.float32)
    weights[-1] = 0  # and a padding centre (weight 0) with a noise row of its own
    got, loss = cbow_rows_step(
        params,
        *packed,
        np.append(centres, 7).astype(np.int32),
        np.concatenate([negatives, [[3, 5]]]).astype(np.int32),
        weights,
        lr,
    )
    want = w2v.cbow_update(params, contexts, mask > 0, centres, negatives, lr)  # the same convention: dL/dh undivided
    for k in params:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6)
    assert loss == pytest.approx(float(w2v.cbow_loss(params, contexts, mask > 0, centres, negatives, "sum")), rel=1e-5)


def test_softmax_rows_step_is_sgd_on_the_lectures_objective():
    rng = np.random.default_rng(2)
    params, lr, P = _params(2, V=11, D=4), 0.1, 6
    inputs, outputs = rng.integers(0, 11, P).astype(np.int32), rng.integers(0, 11, P).astype(np.int32)
    weights = np.ones(P, np.float32)
    weights[-1] = 0  # padding
    got, loss = softmax_rows_step(params, inputs, outputs, weights, lr)
    objective = lambda p: w2v.skipgram_softmax_loss(p, inputs[:-1], outputs[:-1], reduction="sum")
    want = _dense_sgd(params, jax.jit(jax.grad(objective))(params), lr)
    for k in params:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6)
    assert loss == pytest.approx(float(objective(params)), rel=1e-5)


# ----------------------------------------------------------------------------- sampling and schedule


@pytest.mark.parametrize("as_cdf", [False, True])
def test_sample_negatives_frequencies(as_cdf):
    probs = np.array([0.5, 0.0, 0.2, 0.25, 0.05])
    noise = np.cumsum(probs) * 3.0 if as_cdf else probs * 3.0  # unnormalised is fine
    n = 200_000
    s = np.asarray(w2v.sample_negatives(jax.random.key(0), noise, (n // 4, 4), cdf=as_cdf))
    assert s.shape == (n // 4, 4) and s.dtype == np.int32
    freq = np.bincount(s.ravel(), minlength=5) / n
    assert freq[1] == 0.0
    np.testing.assert_allclose(freq, probs, atol=4 * math.sqrt(0.25 / n))
    with pytest.raises(ValueError, match="noise"):
        w2v.sample_negatives(jax.random.key(0), np.ones((2, 2)), 3)


def test_sample_alias_follows_the_tables_distribution():
    """Column k (uniform over 4) holds k with probability prob[k], else alias[k]: P(w) summed by hand."""
    prob, alias = np.array([1.0, 0.5, 0.25, 0.0]), np.array([0, 0, 1, 2], np.int32)
    want = np.zeros(4)
    for k in range(4):
        want[k] += prob[k] / 4
        want[alias[k]] += (1 - prob[k]) / 4  # [0.4375, 0.3125, 0.25, 0.0]
    threshold = w2v.alias_threshold(prob)
    assert threshold[0] == 2**32 - 1 and threshold[3] == 0 and threshold[1] == (2**32 // 4) // 2
    n = 400_000
    draw = jax.jit(lambda key: w2v.sample_alias(key, threshold, alias, (n // 8, 8)))
    s = np.asarray(draw(jax.random.key(0)))
    assert s.shape == (n // 8, 8) and s.dtype == np.int32
    freq = np.bincount(s.ravel(), minlength=4) / n
    assert freq[3] == 0.0
    np.testing.assert_allclose(freq, want, atol=4 * math.sqrt(0.25 / n))
    # a function of the key alone, and vmappable over keys
    np.testing.assert_array_equal(draw(jax.random.key(0)), s)
    many = jax.vmap(lambda k: w2v.sample_alias(k, threshold, alias, (5,)))(jax.random.split(jax.random.key(1), 3))
    assert many.shape == (3, 5) and not np.array_equal(many[0], many[1])


@pytest.mark.parametrize(
    "p", [np.array([0.5, 0.0, 0.2, 0.25, 0.05]), np.full(4, 0.25), np.random.default_rng(3).dirichlet(np.ones(50))]
)
def test_alias_table_holds_the_distribution_and_sample_alias_draws_from_it(p):
    prob, alias = w2v.alias_table(p)
    V = len(p)
    assert prob.shape == alias.shape == (V,) and alias.dtype == np.int32
    assert np.all((prob >= 0) & (prob <= 1)) and np.all((alias >= 0) & (alias < V))
    held = prob / V  # column k is drawn with probability 1/V and keeps k with probability prob[k]
    np.add.at(held, alias, (1 - prob) / V)
    np.testing.assert_allclose(held, p, atol=1e-12)  # float64 bookkeeping: exact up to rounding
    n = 400_000
    threshold = w2v.alias_threshold(prob)
    s = np.asarray(jax.jit(lambda key: w2v.sample_alias(key, threshold, alias, (n,)))(jax.random.key(2)))
    freq = np.bincount(s, minlength=V) / n
    assert np.all(freq[p == 0] == 0)
    np.testing.assert_allclose(freq, p, atol=4 * math.sqrt(0.25 / n))  # 4 binomial standard errors at most


def test_linear_decay_lr():
    for progress, want in [(0.0, 0.025), (0.5, 0.0125 + 0.00005), (1.0, 1e-4), (2.0, 1e-4), (-1.0, 0.025)]:
        np.testing.assert_allclose(w2v.linear_decay_lr(0.025, progress, 1e-4), want, rtol=1e-5)  # float32
    with pytest.raises(ValueError, match="lr0"):
        w2v.linear_decay_lr(-0.1, 0.5)


# ----------------------------------------------------------------------------- hierarchical softmax


def test_huffman_tree_is_gensims_for_every_word():
    """Codes and points equal gensim's Word2Vec(hs=1, negative=0) vocabulary's, on a corpus with tied counts."""
    import logging

    gensim_word2vec = pytest.importorskip("gensim.models.word2vec")
    logging.getLogger("gensim").setLevel(logging.WARNING)
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(60)]
    sentences = [[words[j] for j in rng.integers(0, rng.integers(1, 61), 15)] for _ in range(80)]
    model = gensim_word2vec.Word2Vec(sentences, hs=1, negative=0, min_count=1, vector_size=4, workers=1, epochs=1)
    wv = model.wv
    counts = np.array([wv.get_vecattr(w, "count") for w in wv.index_to_key])
    assert len(set(counts.tolist())) < len(counts) - 10  # many ties, broken as gensim breaks them
    codes, points, lengths = w2v.huffman_tree(counts)
    for i, word in enumerate(wv.index_to_key):
        assert codes[i, : lengths[i]].tolist() == wv.get_vecattr(word, "code").tolist(), word
        assert points[i, : lengths[i]].tolist() == wv.get_vecattr(word, "point").tolist(), word
    assert not codes[np.arange(codes.shape[1]) >= lengths[:, None]].any()  # 0-padded


def test_huffman_tree_is_a_prefix_code_of_minimal_cost():
    """Kraft's sum_w 2^-len(w) = 1 (a full binary tree), no code a prefix of another, points from the root
    V-2, and the cost sum_w count_w len(w) of Huffman's merges (the sum of the V-1 merged weights)."""
    counts = np.array([50, 20, 20, 9, 9, 9, 3, 1, 1, 0])
    codes, points, lengths = w2v.huffman_tree(counts)
    assert sum(2.0 ** -int(n) for n in lengths) == 1.0
    strings = ["".join(map(str, codes[w, : lengths[w]])) for w in range(len(counts))]
    assert not any(a != b and b.startswith(a) for a in strings for b in strings)
    assert (points[:, 0] == len(counts) - 2).all()
    weights, merged = sorted(counts.tolist()), 0
    while len(weights) > 1:  # brute-force Huffman cost
        a, b = weights.pop(0), weights.pop(0)
        merged += a + b
        weights = sorted(weights + [a + b])
    assert int(np.sum(counts * lengths)) == merged
    one = w2v.huffman_tree(np.array([4]))
    assert one[0].shape == (1, 0) and one[2].tolist() == [0]
    with pytest.raises(ValueError, match="non-negative integers"):
        w2v.huffman_tree(np.array([1.5, 2.0]))


def _hs_tree(V=9, seed=0):
    counts = np.random.default_rng(seed).integers(1, 100, V)
    return w2v.huffman_tree(counts)


def test_hs_loss_brute_force_and_leaf_probabilities_sum_to_one():
    V = 9
    codes, points, lengths = _hs_tree(V)
    params = _params(3, V=V, D=4)
    p = _np(params)
    inputs, outputs = np.array([0, 3, 8, 3]), np.array([1, 1, 5, 8])
    want = []
    for c, o in zip(inputs, outputs):  # -sum_j log sigma((1 - 2 code_j) u_{point_j} . v_c), one node at a time
        total = 0.0
        for j in range(lengths[o]):
            x = float(p["out"][points[o, j]] @ p["in"][c])
            total -= _log_sigmoid((1 - 2 * int(codes[o, j])) * x)
        want.append(total)
    got = w2v.hs_loss(params, inputs, outputs, codes, points, lengths, "sum")
    assert float(got) == pytest.approx(sum(want), rel=RTOL)
    assert float(w2v.hs_loss(params, inputs, outputs, codes, points, lengths)) == pytest.approx(np.mean(want), RTOL)
    # P(w | c) = exp(-loss) is a distribution over the V leaves, for every input word
    c, o = np.divmod(np.arange(V * V), V)  # every (input, leaf)
    nll = jax.jit(jax.vmap(lambda c, o: w2v.hs_loss(params, c[None], o[None], codes, points, lengths)))(c, o)
    np.testing.assert_allclose(np.exp(-np.asarray(nll)).reshape(V, V).sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="codes and points must be"):
        w2v.hs_loss(params, inputs, outputs, codes[:, :1], points, lengths)


def test_hs_rows_step_is_sgd_on_hs_loss_and_word2vecs_update():
    """hs_rows_step = params - lr * jax.grad(summed hs_loss) over the real pairs (weight 1), and equals a numpy
    loop of word2vec.c's update g = (1 - code - sigma(u.v)) lr from the same params; padding changes nothing."""
    V, lr = 9, 0.1
    codes, points, lengths = _hs_tree(V, seed=1)
    signs = word2vec_rows.path_signs(codes, lengths)
    params = _params(4, V=V, D=4)
    rng = np.random.default_rng(4)
    inputs, outputs = rng.integers(0, V, 7).astype(np.int32), rng.integers(0, V, 7).astype(np.int32)
    weights = np.ones(7, np.float32)
    weights[-2:] = 0
    got, loss = jax.jit(word2vec_rows.hs_rows_step)(params, inputs, points[outputs], signs[outputs], weights, lr)
    objective = lambda q: w2v.hs_loss(q, inputs[:-2], outputs[:-2], codes, points, lengths, "sum")  # noqa: E731
    want = _dense_sgd(params, jax.jit(jax.grad(objective))(params), lr)
    for k in params:
        np.testing.assert_allclose(got[k], want[k], rtol=RTOL, atol=ATOL)
    assert float(loss) == pytest.approx(float(jax.jit(objective)(params)), rel=RTOL)
    p, ref = _np(params), _np(params)
    for c, o in zip(inputs[:-2], outputs[:-2]):
        v, work = p["in"][c], np.zeros(4)
        for j in range(lengths[o]):
            u = p["out"][points[o, j]]
            g = (1 - int(codes[o, j]) - 1 / (1 + math.exp(-float(u @ v)))) * lr
            work += g * u
            ref["out"][points[o, j]] += g * v
        ref["in"][c] += work
    for k in params:
        np.testing.assert_allclose(got[k], ref[k], rtol=RTOL, atol=ATOL)


def test_cbow_hs_rows_step_is_a_numpy_loop_of_the_cbow_hs_update():
    """h = mean of each centre's packed context rows; node rows step by g h, every context row by sum_j g u_j
    (word2vec's undivided CBOW update), g = (1 - code - sigma(u.h)) lr, all from the same params."""
    V, lr = 9, 0.1
    codes, points, lengths = _hs_tree(V, seed=2)
    signs = word2vec_rows.path_signs(codes, lengths)
    params = _params(5, V=V, D=4)
    contexts = np.array([1, 2, 2, 5, 0, 7, 3, 0], np.int32)
    owners = np.array([0, 0, 0, 1, 2, 2, 2, 0], np.int32)
    mask = np.array([1, 1, 1, 1, 1, 1, 1, 0], np.float32)  # the last slot empty
    centres = np.array([4, 6, 4, 0], np.int32)
    weights = np.array([1, 1, 1, 0], np.float32)  # the last centre padding
    step = jax.jit(word2vec_rows.cbow_hs_rows_step)
    got, loss = step(params, contexts, owners, mask, points[centres], signs[centres], weights, lr)
    p, ref, total = _np(params), _np(params), 0.0
    for b in range(3):
        rows = contexts[(owners == b) & (mask > 0)]
        h, work, o = p["in"][rows].mean(axis=0), np.zeros(4), centres[b]
        for j in range(lengths[o]):
            u = p["out"][points[o, j]]
            f = 1 / (1 + math.exp(-float(u @ h)))
            total -= math.log(f if codes[o, j] == 0 else 1 - f)
            g = (1 - int(codes[o, j]) - f) * lr
            work += g * u
            ref["out"][points[o, j]] += g * h
        for r in rows:
            ref["in"][r] += work
    for k in params:
        np.testing.assert_allclose(got[k], ref[k], rtol=RTOL, atol=ATOL)
    assert float(loss) == pytest.approx(total, rel=RTOL)
