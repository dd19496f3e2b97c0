"""word2vec: skip-gram and CBOW word vectors (Mikolov et al. 2013), from the softmax up.

Every word w has two vectors, v_w when it is the centre word and u_w when it is a
context word; they are the rows of ``params['in']`` and ``params['out']``. A one-hot
row times a matrix is a row lookup, so "the hidden layer" is ``params['in'][c]``.

1. Losses. ``skipgram_objective`` is the lecture's J(theta) as the lecture writes it:
   -(1/T) sum_t sum_{0<|j|<=m} log P(w_{t+j}|w_t) over the T positions of a sentence,
   P(o|c) = softmax(U v_c)[o], a full softmax over the vocabulary (fine for small V).
   ``skipgram_softmax_loss`` is the same negative log-likelihood averaged over the
   (centre, context) pairs instead, the form a minibatch of pairs trains on: it is J
   times T / (number of pairs). ``sgns_loss`` replaces the
   softmax by negative sampling (logistic regression of the true context against K
   noise words); ``cbow_loss`` predicts the centre from the mean of its context
   vectors, also with negatives.
2. Training data: ``skipgram_pairs`` (all pairs within the window),
   ``dynamic_window_pairs`` and ``cbow_examples`` (word2vec's reduced window
   b ~ U{1..window}), ``sample_negatives`` (noise words from a unigram^0.75
   distribution by inverse cdf), Walker's alias method for the same draws in O(1)
   each (``alias_table`` builds the table, ``alias_threshold`` turns it into integer
   thresholds, ``sample_alias`` draws), ``linear_decay_lr``.
3. Sparse SGD, the way word2vec and gensim train (the reference updates):
   ``sgns_grads`` gives analytic gradients of the batch's rows only and
   ``sgns_update`` scatter-adds them (``.at[].add``), so a step touches B(K+2) rows
   and never builds a dense V x D gradient or optimiser state. ``sgns_update_shared``
   is the HogBatch variant (Ji et al. 2016): one set of K negatives shared by the
   whole minibatch, so the negative scores are a dense [B, D] x [D, K] matmul.
   ``cbow_grads``/``cbow_update`` likewise, in word2vec's convention: every context
   row takes the full gradient of the hidden layer h (see ``cbow_grads``). The
   updates are SGD on the *summed* loss (every pair takes a full ``lr`` step, as in
   word2vec); they are jitted but do not donate ``params``. The fast form the trainer
   runs, ``lax.scan``-able with padding and shared draws, is ``zoo.word2vec_rows``.
4. Using vectors: ``normalize``, ``most_similar``, ``analogy`` (3CosAdd and 3CosMul,
   a:b :: c:? as in king - man + woman = queen), ``evaluate_analogies`` on Google
   questions-words style sections, ``evaluate_wordsim`` (Spearman rank correlation
   with human similarity judgements) and the line parsers for both formats. gensim's
   ``KeyedVectors`` methods, with its names, arguments and results: ``most_similar``
   (positive and negative terms), ``most_similar_cosmul``, ``similarity``,
   ``doesnt_match``, ``evaluate_word_analogies``, ``evaluate_word_pairs``
   (``train.data.vectors.WordVectors`` is the class over them, with the files).
   Every one of them takes the vectors as they are and normalises them itself.

Vocabularies are ``zoo.text.Vocab`` objects or plain sequences of words; unknown words
raise ``UnknownWordError`` (a KeyError and a ValueError).
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from zoo._checks import as_int, as_positive_float
from zoo.text import Vocab

__all__ = [
    "ANALOGY_METHODS",
    "REDUCTIONS",
    "init_params",
    "skipgram_softmax_loss",
    "skipgram_objective",
    "sgns_loss",
    "cbow_loss",
    "skipgram_pairs",
    "dynamic_window_pairs",
    "cbow_examples",
    "sample_negatives",
    "alias_table",
    "alias_threshold",
    "sample_alias",
    "linear_decay_lr",
    "sgns_grads",
    "sgns_update",
    "sgns_update_shared",
    "cbow_grads",
    "cbow_update",
    "normalize",
    "most_similar",
    "most_similar_cosmul",
    "similarity",
    "doesnt_match",
    "analogy",
    "evaluate_analogies",
    "evaluate_word_analogies",
    "parse_questions_words",
    "parse_wordsim",
    "evaluate_wordsim",
    "evaluate_word_pairs",
]

ANALOGY_METHODS = ("3cosadd", "3cosmul")
REDUCTIONS = ("mean", "sum")


# ----------------------------------------------------------------------------- validation


def _check_params(params, fn: str) -> tuple[int, int]:
    if not isinstance(params, dict) or set(params) != {"in", "out"}:
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ValueError(f"{fn}: params must be a dict with keys 'in' and 'out' ([V, D] each), got {got}")
    s_in, s_out = jnp.shape(params["in"]), jnp.shape(params["out"])
    if len(s_in) != 2 or s_in != s_out:
        raise ValueError(f"{fn}: params['in'] and params['out'] must both be [V, D], got {s_in} and {s_out}")
    return s_in


def _check_ids(x, name: str, fn: str, ndim: int) -> jax.Array:
    x = jnp.asarray(x)
    if x.ndim != ndim or not jnp.issubdtype(x.dtype, jnp.integer):
        kind = {1: "[B]", 2: "[B, K]"}.get(ndim, f"{ndim}-D")
        raise ValueError(f"{fn}: {name} must be an integer array of shape {kind}, got dtype {x.dtype} shape {x.shape}")
    return x


def _check_batch(centres, contexts, fn: str) -> tuple[jax.Array, jax.Array]:
    centres = _check_ids(centres, "centres", fn, 1)
    contexts = _check_ids(contexts, "contexts", fn, 1)
    if centres.shape != contexts.shape:
        raise ValueError(
            f"{fn}: centres and contexts must have the same shape [B], got {centres.shape} and {contexts.shape}"
        )
    return centres, contexts


def _check_negatives(negatives, batch: int, fn: str, shared: bool | None = None) -> jax.Array:
    negatives = jnp.asarray(negatives)
    ok_shape = (negatives.ndim == 2 and negatives.shape[0] == batch) or negatives.ndim == 1
    if shared is not None:
        ok_shape = ok_shape and (negatives.ndim == 1) == shared
    if not ok_shape or not jnp.issubdtype(negatives.dtype, jnp.integer):
        accepted = {
            True: "[K] (shared by the batch)",
            False: f"[B={batch}, K]",
            None: f"[B={batch}, K] or [K] (shared)",
        }[shared]
        raise ValueError(
            f"{fn}: negatives must be an integer array of shape {accepted},"
            f" got dtype {negatives.dtype} shape {negatives.shape}"
        )
    return negatives


def _check_reduction(reduction, fn: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{fn}: reduction={reduction!r} not supported; accepted: {REDUCTIONS}")


def _reduce(losses: jax.Array, reduction: str) -> jax.Array:
    return jnp.mean(losses) if reduction == "mean" else jnp.sum(losses)


# ----------------------------------------------------------------------------- parameters


def init_params(key: jax.Array, vocab_size: int, dim: int) -> dict[str, jax.Array]:
    """word2vec's initialisation: v (in) ~ U(-0.5/D, 0.5/D), u (out) = 0."""
    vocab_size = as_int(vocab_size, "vocab_size", "init_params", minimum=1)
    dim = as_int(dim, "dim", "init_params", minimum=1)
    w_in = jax.random.uniform(key, (vocab_size, dim), jnp.float32, -0.5 / dim, 0.5 / dim)
    return {"in": w_in, "out": jnp.zeros((vocab_size, dim), jnp.float32)}


# ----------------------------------------------------------------------------- losses


def skipgram_softmax_loss(params, centres, contexts, reduction: str = "mean") -> jax.Array:
    """Mean over pairs of -log P(o | c) = -log softmax(U v_c)[o] = -u_o.v_c + log sum_w exp(u_w.v_c).

    Over a sentence's pairs this is the lecture's J(theta) (``skipgram_objective``) times T / (number of pairs).
    """
    fn = "skipgram_softmax_loss"
    _check_params(params, fn)
    centres, contexts = _check_batch(centres, contexts, fn)
    _check_reduction(reduction, fn)
    return _softmax_nll(params, centres, contexts, reduction)


def skipgram_objective(params, ids, window: int) -> jax.Array:
    """J(theta) = -(1/T) sum_{t=1..T} sum_{-m<=j<=m, j!=0} log P(w_{t+j} | w_t; theta) over one sentence ids [T].

    The lecture's skip-gram objective, m = ``window``: each position's window summed (cut at the sentence's
    ends), the sum averaged over the T positions. It is ``skipgram_softmax_loss`` over
    ``skipgram_pairs(ids, window)`` times (number of pairs) / T. Differentiable in params (jax.grad).
    """
    fn = "skipgram_objective"
    vocab_size, _ = _check_params(params, fn)
    ids, window = _check_sentence(ids, window, fn)
    if ids.size < 1:
        raise ValueError(f"{fn}: ids must hold at least one word (T >= 1), got an empty sentence")
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise ValueError(f"{fn}: ids must lie in 0..V-1={vocab_size - 1}, got range [{ids.min()}, {ids.max()}]")
    centres, contexts = _pairs(ids, window, None)
    return _softmax_nll(params, jnp.asarray(centres), jnp.asarray(contexts), "sum") / ids.shape[0]


@functools.partial(jax.jit, static_argnames="reduction")
def _softmax_nll(params, centres, contexts, reduction):
    logits = params["in"][centres] @ params["out"].T  # [B, V]
    nll = jax.nn.logsumexp(logits, axis=-1) - jnp.take_along_axis(logits, contexts[:, None], axis=-1)[:, 0]
    return _reduce(nll, reduction)


def _sgns_terms(v, u_pos, u_neg):
    """Per-pair SGNS loss from gathered rows: v, u_pos [B, D]; u_neg [B, K, D] or [K, D] (shared)."""
    pos = jnp.sum(u_pos * v, axis=-1)  # [B]
    neg = jnp.einsum("bkd,bd->bk", u_neg, v) if u_neg.ndim == 3 else v @ u_neg.T  # [B, K]
    # -log sigma(x) = softplus(-x);  -log sigma(-x) = softplus(x)
    return jax.nn.softplus(-pos) + jnp.sum(jax.nn.softplus(neg), axis=-1)


def sgns_loss(params, centres, contexts, negatives, reduction: str = "mean") -> jax.Array:
    """Skip-gram negative sampling: -log sigma(u_o.v_c) - sum_k log sigma(-u_k.v_c), mean over pairs.

    ``negatives`` is [B, K] (per pair) or [K] (one set shared by the batch, HogBatch).
    """
    fn = "sgns_loss"
    _check_params(params, fn)
    centres, contexts = _check_batch(centres, contexts, fn)
    negatives = _check_negatives(negatives, centres.shape[0], fn)
    _check_reduction(reduction, fn)
    return _sgns_loss(params, centres, contexts, negatives, reduction)


@functools.partial(jax.jit, static_argnames="reduction")
def _sgns_loss(params, centres, contexts, negatives, reduction):
    return _reduce(_sgns_terms(params["in"][centres], params["out"][contexts], params["out"][negatives]), reduction)


def _check_cbow(params, contexts, mask, centres, negatives, fn):
    _check_params(params, fn)
    contexts = _check_ids(contexts, "contexts", fn, 2)
    mask = jnp.asarray(mask)
    if mask.shape != contexts.shape:
        raise ValueError(f"{fn}: mask must have the shape of contexts {contexts.shape}, got {mask.shape}")
    centres = _check_ids(centres, "centres", fn, 1)
    if centres.shape[0] != contexts.shape[0]:
        raise ValueError(
            f"{fn}: centres must be [B={contexts.shape[0]}] like the rows of contexts, got {centres.shape}"
        )
    negatives = _check_negatives(negatives, centres.shape[0], fn, shared=False)
    return contexts, mask, centres, negatives


def _cbow_hidden(w_in, contexts, mask):
    m = mask.astype(w_in.dtype)
    n = jnp.maximum(jnp.sum(m, axis=-1, keepdims=True), 1.0)  # [B, 1]
    return jnp.einsum("bc,bcd->bd", m, w_in[contexts]) / n, m, n


def cbow_loss(params, contexts, mask, centres, negatives, reduction: str = "mean") -> jax.Array:
    """CBOW with negatives: h = mean of masked v_context, loss = -log sigma(u_c.h) - sum_k log sigma(-u_k.h)."""
    fn = "cbow_loss"
    contexts, mask, centres, negatives = _check_cbow(params, contexts, mask, centres, negatives, fn)
    _check_reduction(reduction, fn)
    return _cbow_loss(params, contexts, mask, centres, negatives, reduction)


@functools.partial(jax.jit, static_argnames="reduction")
def _cbow_loss(params, contexts, mask, centres, negatives, reduction):
    h, _, _ = _cbow_hidden(params["in"], contexts, mask)
    return _reduce(_sgns_terms(h, params["out"][centres], params["out"][negatives]), reduction)


# ----------------------------------------------------------------------------- training data


def _check_sentence(ids, window, fn: str) -> tuple[np.ndarray, int]:
    ids = np.asarray(ids)
    if ids.ndim != 1 or not (ids.size == 0 or np.issubdtype(ids.dtype, np.integer)):
        raise ValueError(
            f"{fn}: ids must be a 1-D integer array (one sentence), got dtype {ids.dtype} shape {ids.shape}"
        )
    return ids, as_int(window, "window", fn, minimum=1)


def _check_rng(rng, fn: str) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            f"{fn}: rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}"
        )
    return rng


def _window_positions(n: int, window: int, reach: np.ndarray | None):
    """[n, 2w] context positions (offsets -w..-1, 1..w) and their validity mask."""
    offsets = np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)])
    pos = np.arange(n)[:, None] + offsets[None, :]
    valid = (pos >= 0) & (pos < n)
    if reach is not None:
        valid &= np.abs(offsets)[None, :] <= reach[:, None]
    return pos, valid


def _pairs(ids, window, reach):
    pos, valid = _window_positions(ids.shape[0], window, reach)
    rows, cols = np.nonzero(valid)  # row-major: by centre, then context position
    return ids[rows], ids[pos[rows, cols]]


def skipgram_pairs(ids, window: int) -> tuple[np.ndarray, np.ndarray]:
    """All (centre, context) pairs with 0 < |offset| <= window in one sentence, ordered by centre then position."""
    ids, window = _check_sentence(ids, window, "skipgram_pairs")
    return _pairs(ids, window, None)


def dynamic_window_pairs(ids, window: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """word2vec's reduced window: per centre b ~ U{1..window}, pairs with 0 < |offset| <= b.

    Near contexts are kept more often: offset d survives with probability (window - d + 1) / window.
    """
    fn = "dynamic_window_pairs"
    ids, window = _check_sentence(ids, window, fn)
    reach = _check_rng(rng, fn).integers(1, window + 1, size=ids.shape[0])
    return _pairs(ids, window, reach)


def cbow_examples(
    ids, window: int, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CBOW examples of one sentence: contexts [T', 2w] (padded with id 0), mask [T', 2w], centres [T'].

    With ``rng`` the window is word2vec's reduced b ~ U{1..window} per centre; centres
    left without any context word (one-word sentences) are dropped.
    """
    fn = "cbow_examples"
    ids, window = _check_sentence(ids, window, fn)
    reach = None if rng is None else _check_rng(rng, fn).integers(1, window + 1, size=ids.shape[0])
    pos, valid = _window_positions(ids.shape[0], window, reach)
    contexts = np.where(valid, ids[np.clip(pos, 0, max(ids.shape[0] - 1, 0))] if ids.size else 0, 0)
    keep = valid.any(axis=1)
    return contexts[keep].astype(np.int32), valid[keep], ids[keep].astype(np.int32)


def sample_negatives(key: jax.Array, noise, shape, *, cdf: bool = False) -> jax.Array:
    """Noise word ids of the given shape drawn from P_n(w) (``zoo.text.noise_distribution``: unigram^0.75).

    ``noise`` holds the probabilities [V] (``cdf=False``) or their running sum [V]
    (``cdf=True``, saves the cumsum per call); it need not be normalised. Sampling is
    inverse-cdf: searchsorted of a uniform in the cdf, like word2vec's unigram table,
    O(log V) per sample (``jax.random.categorical`` would build a [*shape, V] array).
    """
    fn = "sample_negatives"
    noise = jnp.asarray(noise)
    if noise.ndim != 1 or noise.shape[0] < 1 or not jnp.issubdtype(noise.dtype, jnp.floating):
        raise ValueError(
            f"{fn}: noise must be a 1-D float array [V] (probabilities or cdf),"
            f" got dtype {noise.dtype} shape {noise.shape}"
        )
    try:
        shape = tuple(operator.index(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
    except TypeError:
        raise ValueError(f"{fn}: shape must be an int or a tuple of ints, got {shape!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"{fn}: shape must have non-negative sizes, got {shape}")
    table = noise if cdf else jnp.cumsum(noise)
    u = jax.random.uniform(key, shape, table.dtype) * table[-1]
    idx = jnp.searchsorted(table, u, side="right")
    return jnp.minimum(idx, noise.shape[0] - 1).astype(jnp.int32)


def alias_table(p) -> tuple[np.ndarray, np.ndarray]:
    """Walker/Vose alias table of a distribution p [V]: column k holds k with probability prob[k], else alias[k].

    Returns (prob [V] float64 in [0, 1], alias [V] int32); P(w) = (prob[w] + sum_{k: alias[k] = w} (1 - prob[k])) / V.
    """
    prob = np.asarray(p, np.float64) * len(p)
    alias = np.arange(len(p), dtype=np.int32)
    small = [i for i in range(len(p)) if prob[i] < 1.0]
    large = [i for i in range(len(p)) if prob[i] >= 1.0]
    while small and large:  # pair an under-full column with an over-full one until all hold exactly 1
        s, l = small.pop(), large.pop()
        alias[s] = l
        prob[l] -= 1.0 - prob[s]
        (small if prob[l] < 1.0 else large).append(l)
    prob[small + large] = 1.0  # the leftovers are full up to rounding
    return prob, alias


def alias_threshold(prob) -> np.ndarray:
    """``sample_alias``'s integer thresholds [V] of a Walker alias table's column probabilities prob [V] in [0, 1]."""
    prob = np.asarray(prob, np.float64)
    q = (1 << 32) // prob.shape[0]
    return np.where(prob >= 1.0, np.float64(2**32 - 1), np.round(prob * q)).astype(np.uint32)


def sample_alias(key: jax.Array, threshold, alias, shape) -> jax.Array:
    """Walker alias draws, one 32-bit word each: column k = bits mod V, kept if bits // V < threshold[k], else alias[k].

    threshold = alias_threshold(prob) and alias [V] (``alias_table``) form the table (column k holds k with probability
    prob[k], else alias[k]); O(1) per draw. The column is uniform up to V / 2^32 and the threshold is
    resolved to V / 2^32, so for V = 1e6 each probability is exact to ~2e-4 of its column's share.
    """
    alias = jnp.asarray(alias)
    v = jnp.uint32(alias.shape[0])
    bits = jax.random.bits(key, shape, jnp.uint32)
    column = bits % v
    return jnp.where(bits // v < jnp.asarray(threshold)[column], column, alias[column]).astype(jnp.int32)


def linear_decay_lr(lr0, progress, min_lr=1e-4):
    """word2vec's schedule: lr = lr0 + (min_lr - lr0) * clip(progress, 0, 1), progress = words seen / total."""
    for name, value in (("lr0", lr0), ("min_lr", min_lr)):
        if isinstance(value, (int, float)) and not (math.isfinite(value) and value >= 0):
            raise ValueError(f"linear_decay_lr: {name} must be a finite number >= 0, got {value!r}")
    return lr0 + (min_lr - lr0) * jnp.clip(progress, 0.0, 1.0)


# ----------------------------------------------------------------------------- sparse SGD


def _sgns_row_grads(v, u_pos, u_neg):
    pos = jnp.sum(u_pos * v, axis=-1)
    g_pos = jax.nn.sigmoid(pos) - 1.0  # d/ds [-log sigma(s)]
    if u_neg.ndim == 3:  # per-pair negatives [B, K, D]
        g_neg = jax.nn.sigmoid(jnp.einsum("bkd,bd->bk", u_neg, v))  # d/ds [-log sigma(-s)]
        d_v = g_pos[:, None] * u_pos + jnp.einsum("bk,bkd->bd", g_neg, u_neg)
        d_neg = g_neg[..., None] * v[:, None, :]  # [B, K, D]
    else:  # shared negatives [K, D]: dense matmuls
        g_neg = jax.nn.sigmoid(v @ u_neg.T)  # [B, K]
        d_v = g_pos[:, None] * u_pos + g_neg @ u_neg
        d_neg = g_neg.T @ v  # [K, D]
    return d_v, g_pos[:, None] * v, d_neg


def sgns_grads(params, centres, contexts, negatives):
    """Gradients of the *summed* SGNS loss w.r.t. the rows it touches.

    With s_o = u_o.v_c, s_k = u_k.v_c: dv_c = (sigma(s_o)-1) u_o + sum_k sigma(s_k) u_k,
    du_o = (sigma(s_o)-1) v_c, du_k = sigma(s_k) v_c. Returns (d_in [B, D] for rows
    ``centres`` of 'in', d_ctx [B, D] for rows ``contexts`` of 'out', d_neg for rows
    ``negatives`` of 'out': [B, K, D], or [K, D] summed over the batch when shared).
    Rows that repeat must be accumulated (scatter-add).
    """
    fn = "sgns_grads"
    _check_params(params, fn)
    centres, contexts = _check_batch(centres, contexts, fn)
    negatives = _check_negatives(negatives, centres.shape[0], fn)
    return _sgns_grads(params, centres, contexts, negatives)


@jax.jit
def _sgns_grads(params, centres, contexts, negatives):
    return _sgns_row_grads(params["in"][centres], params["out"][contexts], params["out"][negatives])


def _sgd_rows(params, lr, in_rows, d_in, out_rows, d_out):
    """params - lr * gradient, scatter-added into the rows it touches (repeated rows accumulate)."""
    w_out = params["out"]
    for rows, d in zip(out_rows, d_out):
        w_out = w_out.at[rows].add(-lr * d)
    return {"in": params["in"].at[in_rows].add(-lr * d_in), "out": w_out}


@jax.jit
def _sgns_step(params, centres, contexts, negatives, lr):
    d_in, d_ctx, d_neg = _sgns_grads(params, centres, contexts, negatives)
    return _sgd_rows(params, lr, centres, d_in, (contexts, negatives), (d_ctx, d_neg))


def _checked_sgns_step(fn, shared, params, centres, contexts, negatives, lr):
    _check_params(params, fn)
    centres, contexts = _check_batch(centres, contexts, fn)
    negatives = _check_negatives(negatives, centres.shape[0], fn, shared=shared)
    return _sgns_step(params, centres, contexts, negatives, lr)


def sgns_update(params, centres, contexts, negatives, lr):
    """One sparse SGD step on the summed SGNS loss.

    Only rows centres (in), contexts and negatives [B, K] (out) change.
    """
    return _checked_sgns_step("sgns_update", False, params, centres, contexts, negatives, lr)


def sgns_update_shared(params, centres, contexts, negatives, lr):
    """HogBatch step (Ji et al. 2016): negatives [K] shared by the minibatch, scores [B, D] x [D, K] as one matmul."""
    return _checked_sgns_step("sgns_update_shared", True, params, centres, contexts, negatives, lr)


def _cbow_row_grads(w_in, u_pos, u_neg, contexts, mask):
    h, m, _ = _cbow_hidden(w_in, contexts, mask)
    d_h, d_pos, d_neg = _sgns_row_grads(h, u_pos, u_neg)
    d_ctx = m[..., None] * d_h[:, None, :]  # word2vec: dL/dh to each context, undivided
    return d_ctx, d_pos, d_neg


def cbow_grads(params, contexts, mask, centres, negatives):
    """word2vec's CBOW row gradients of the summed loss: (d_ctx [B, C, D] for rows ``contexts`` of 'in',
    d_centre [B, D] for rows ``centres`` of 'out', d_neg [B, K, D] for rows ``negatives`` of 'out').

    With h = (1/n) sum_j mask_j v_j and L(h) = -log sigma(u_c.h) - sum_k log sigma(-u_k.h): d_centre = dL/du_c and
    d_neg = dL/du_k exactly, and d_ctx[j] = mask_j dL/dh, undivided by n, as word2vec.c and gensim (cbow_mean=1)
    apply it: n times the exact dL/dv_j = mask_j dL/dh / n. ``cbow_update`` and ``zoo.word2vec_rows.cbow_rows_step``
    step by these.
    """
    contexts, mask, centres, negatives = _check_cbow(params, contexts, mask, centres, negatives, "cbow_grads")
    return _cbow_grads(params, contexts, mask, centres, negatives)


@jax.jit
def _cbow_grads(params, contexts, mask, centres, negatives):
    return _cbow_row_grads(params["in"], params["out"][centres], params["out"][negatives], contexts, mask)


@jax.jit
def _cbow_step(params, contexts, mask, centres, negatives, lr):
    d_ctx, d_pos, d_neg = _cbow_grads(params, contexts, mask, centres, negatives)
    return _sgd_rows(params, lr, contexts, d_ctx, (centres, negatives), (d_pos, d_neg))


def cbow_update(params, contexts, mask, centres, negatives, lr):
    """One sparse step on the summed CBOW loss by ``cbow_grads`` (word2vec's undivided context rows), scatter-added."""
    contexts, mask, centres, negatives = _check_cbow(params, contexts, mask, centres, negatives, "cbow_update")
    return _cbow_step(params, contexts, mask, centres, negatives, lr)


# ----------------------------------------------------------------------------- using vectors


def _as_vocab(vocab, fn: str):
    """A Vocab (anything with .words and .id) as it is; a sequence of words made into one."""
    if hasattr(vocab, "words") and hasattr(vocab, "id"):
        return vocab
    if isinstance(vocab, str) or not isinstance(vocab, Iterable):
        raise ValueError(
            f"{fn}: vocab must be a zoo.text.Vocab or a sequence of words, got {type(vocab).__name__} {vocab!r:.60}"
        )
    try:
        return Vocab(list(vocab))
    except ValueError as e:
        raise ValueError(f"{fn}: {e}") from None


def _words(vocab) -> Sequence[str]:
    return vocab.words


def _word_id(vocab, word: str) -> int:
    return vocab.id(word)


def _check_table(W, vocab, fn: str, name: str = "W"):
    """(W as a float array [V, D], vocab as a Vocab) with one row per word."""
    vocab = _as_vocab(vocab, fn)
    W = np.asarray(W)
    if W.ndim != 2 or not np.issubdtype(W.dtype, np.floating):
        raise ValueError(f"{fn}: {name} must be a 2-D float array [V, D], got dtype {W.dtype} shape {W.shape}")
    if W.shape[0] != len(_words(vocab)):
        raise ValueError(f"{fn}: {name} has {W.shape[0]} rows but the vocabulary has {len(_words(vocab))} words")
    return W, vocab


def _check_topn(topn, fn: str) -> int:
    return as_int(topn, "topn", fn, minimum=1)


def _check_restrict(restrict_vocab, vocab_size: int, fn: str) -> int:
    """How many leading rows are candidates: all for None, else min(restrict_vocab, V)."""
    if restrict_vocab is None:
        return vocab_size
    return min(as_int(restrict_vocab, "restrict_vocab", fn, minimum=1), vocab_size)


def normalize(W, eps: float = 1e-12):
    """Rows scaled to unit L2 norm (zero rows stay zero): cosine similarity becomes a dot product."""
    W = jnp.asarray(W)
    if W.ndim != 2:
        raise ValueError(f"normalize: W must be a 2-D array [V, D], got shape {W.shape}")
    return W / jnp.maximum(jnp.linalg.norm(W, axis=-1, keepdims=True), eps)


def _np_normalize(W: np.ndarray) -> np.ndarray:
    W = W.astype(np.float32, copy=False)
    return W / np.maximum(np.linalg.norm(W, axis=-1, keepdims=True), 1e-12)


def _row_norms(W: np.ndarray) -> np.ndarray:
    """||W_i|| for every row, floored at 1e-12, without a [V, D] temporary."""
    return np.maximum(np.sqrt(np.einsum("ij,ij->i", W, W)), 1e-12)


def _top(scores: np.ndarray, banned: Iterable[int], topn: int) -> list[tuple[int, float]]:
    scores = np.array(scores, dtype=np.float64)
    scores[[i for i in banned if i < scores.shape[0]]] = -np.inf
    k = min(topn, int(np.isfinite(scores).sum()))
    if k == 0:
        return []
    idx = np.argpartition(-scores, k - 1)[:k]
    idx = idx[np.lexsort((idx, -scores[idx]))]  # by score, ties by id
    return [(int(i), float(scores[i])) for i in idx]


def _term_list(value, fn: str, name: str) -> list:
    """gensim's forms of positive / negative: None, one word, one vector [D], rows [n, D], or a list of terms."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if hasattr(value, "shape"):  # a numpy or jax array
        a = np.asarray(value)
        return list(a) if a.ndim == 2 else [a]
    if not isinstance(value, Iterable):
        raise ValueError(f"{fn}: {name} must be a word, a vector or a list of them, got {value!r:.60}")
    return list(value)


def _terms(W, norms, vocab, value, weight: float, fn: str, name: str, weighted: bool):
    """([(x_i, weight_i)], ids of the words): a word's x is its unit row, a vector is taken as given."""
    terms, ids = [], []
    for k, item in enumerate(_term_list(value, fn, name)):
        w = weight
        if weighted and isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], (int, float, np.number)):
            item, w = item[0], float(item[1])  # gensim: (term, weight), the weight replacing the +1 / -1
        if isinstance(item, str):
            i = _word_id(vocab, item)
            terms.append((W[i] / norms[i], w))
            ids.append(i)
            continue
        x = np.asarray(item)
        if x.shape != (W.shape[1],) or x.dtype.kind not in "fiu":
            got = f"shape {x.shape}" if x.dtype.kind in "fiu" else f"{item!r:.60}"
            pair = ", a (word or vector, weight) pair" if weighted else ""
            raise ValueError(f"{fn}: {name}[{k}] must be a word{pair} or a vector of shape [{W.shape[1]}], got {got}")
        terms.append((x.astype(np.float64), w))
    return terms, ids


def _ranked(vocab, scores: np.ndarray, banned: Iterable[int], topn):
    """[(word, score)] of the topn best rows (banned ids left out), or all the scores when topn is None."""
    if topn is None:
        return scores
    return [(_words(vocab)[i], s) for i, s in _top(scores, banned, topn)]


def _check_query(W, vocab, topn, exclude, restrict_vocab, fn: str):
    """(W, vocab, topn or None, ids of the excluded words, number of candidate rows) after their checks."""
    W, vocab = _check_table(W, vocab, fn)
    topn = None if topn is None else _check_topn(topn, fn)
    if isinstance(exclude, str):
        exclude = (exclude,)
    banned = [_word_id(vocab, w) for w in exclude]
    return W, vocab, topn, banned, _check_restrict(restrict_vocab, W.shape[0], fn)


def most_similar(
    W, vocab, positive=None, negative=None, topn: int | None = 10, exclude: Iterable[str] = (), restrict_vocab=None
):
    """The topn words w by cos(w, q), q = sum_i s_i x_i over the positive (s = +1) and negative (s = -1) terms.

    gensim's ``KeyedVectors.most_similar``: a term is a word (x its unit row; the word is left out of the
    answers), a vector [D] (taken as given) or a (term, weight) pair (s = weight). ``W`` need not have unit
    rows and ``vocab`` is a ``zoo.text.Vocab`` or a list of words. Only the first ``restrict_vocab`` rows are
    candidates, words in ``exclude`` are left out, and ``topn=None`` returns the cosines of all candidates.
    """
    fn = "most_similar"
    W, vocab, topn, banned, limit = _check_query(W, vocab, topn, exclude, restrict_vocab, fn)
    norms = _row_norms(W)
    terms, ids = _terms(W, norms, vocab, positive, 1.0, fn, "positive", True)
    neg, neg_ids = _terms(W, norms, vocab, negative, -1.0, fn, "negative", True)
    if not terms + neg:
        raise ValueError(f"{fn}: positive and negative are both empty: give at least one word or vector")
    q = sum(w * x for x, w in terms + neg)
    q = q / max(float(np.linalg.norm(q)), 1e-12)
    return _ranked(vocab, (W[:limit] @ q) / norms[:limit], banned + ids + neg_ids, topn)


def most_similar_cosmul(
    W,
    vocab,
    positive=None,
    negative=None,
    topn: int | None = 10,
    exclude: Iterable[str] = (),
    restrict_vocab=None,
    eps: float = 1e-6,
):
    """3CosMul (Levy & Goldberg 2014) as gensim's: the topn words w by prod_p cos'(w, p) / (prod_n cos'(w, n) + eps).

    cos' = (1 + cos) / 2. Terms are words (left out of the answers) or vectors [D]; ``restrict_vocab``,
    ``exclude`` and ``topn=None`` as in ``most_similar`` (gensim 4.4 ignores its ``restrict_vocab`` here).
    """
    fn = "most_similar_cosmul"
    W, vocab, topn, banned, limit = _check_query(W, vocab, topn, exclude, restrict_vocab, fn)
    eps = as_positive_float(eps, "eps", fn)
    norms = _row_norms(W)
    pos, ids = _terms(W, norms, vocab, positive, 1.0, fn, "positive", False)
    neg, neg_ids = _terms(W, norms, vocab, negative, -1.0, fn, "negative", False)
    if not pos:
        raise ValueError(f"{fn}: positive is empty: give at least one word or vector")
    rows, rows_norms = W[:limit], norms[:limit]
    cos = lambda x: (1.0 + (rows @ x) / rows_norms / max(float(np.linalg.norm(x)), 1e-12)) / 2.0
    scores = np.prod([cos(x) for x, _ in pos], axis=0) / (np.prod([cos(x) for x, _ in neg], axis=0) + eps)
    return _ranked(vocab, scores, banned + ids + neg_ids, topn)


def similarity(W, vocab, w1: str, w2: str) -> float:
    """cos(w1, w2) = W[w1] . W[w2] / (||W[w1]|| ||W[w2]||)."""
    W, vocab = _check_table(W, vocab, "similarity")
    x, y = (W[_word_id(vocab, w)] for w in (w1, w2))
    return float(x @ y / max(float(np.linalg.norm(x) * np.linalg.norm(y)), 1e-24))


def doesnt_match(W, vocab, words: Sequence[str]) -> str:
    """The word of ``words`` with the lowest cos(x_w, m), m = the mean of their unit rows x_w (gensim's)."""
    fn = "doesnt_match"
    W, vocab = _check_table(W, vocab, fn)
    if isinstance(words, str) or not isinstance(words, Iterable):
        raise ValueError(f"{fn}: words must be a list of words, got {words!r:.60}")
    words = list(words)
    if not words:
        raise ValueError(f"{fn}: words is empty: give the words to choose from")
    X = _np_normalize(W[[_word_id(vocab, w) for w in words]])
    return words[int(np.argmin(X @ X.mean(axis=0)))]


def _check_method(method, fn: str) -> str:
    if method not in ANALOGY_METHODS:
        raise ValueError(f"{fn}: method={method!r} not supported; accepted: {ANALOGY_METHODS}")
    return method


def _analogy_scores(Wn: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray, method: str) -> np.ndarray:
    """Scores [Q, V] of every candidate d for questions a:b :: c:? (ids [Q]); rows of Wn are unit."""
    if method == "3cosadd":  # cos(d,b) - cos(d,a) + cos(d,c)
        return (Wn[b] - Wn[a] + Wn[c]) @ Wn.T
    # 3CosMul (Levy & Goldberg 2014): cos'(d,b) cos'(d,c) / (cos'(d,a) + 1e-3), cos' = (cos + 1) / 2
    cos = lambda i: (Wn[i] @ Wn.T + 1.0) / 2.0
    return cos(b) * cos(c) / (cos(a) + 1e-3)


def analogy(W, vocab, a: str, b: str, c: str, method: str = "3cosadd", topn: int = 1) -> list[tuple[str, float]]:
    """a:b :: c:? — the topn words d (a, b, c excluded) for king - man + woman: analogy(W, v, 'man', 'king', 'woman').

    3cosadd: argmax cos(d,b) - cos(d,a) + cos(d,c); 3cosmul: argmax cos'(d,b) cos'(d,c) / (cos'(d,a) + 1e-3),
    cos' = (cos + 1)/2. ``W`` need not be normalised.
    """
    fn = "analogy"
    W, vocab = _check_table(W, vocab, fn)
    method = _check_method(method, fn)
    topn = _check_topn(topn, fn)
    ids = [_word_id(vocab, w) for w in (a, b, c)]
    Wn = _np_normalize(W)
    scores = _analogy_scores(Wn, *(np.array([i]) for i in ids), method)[0]
    words = _words(vocab)
    return [(words[i], s) for i, s in _top(scores, ids, topn)]


def _key_index(vocab, limit: int, case_insensitive: bool) -> tuple[dict[str, int], np.ndarray]:
    """gensim's lookup of test words: key (upper-cased if case_insensitive) -> its first row among the first
    ``limit``, and for each of those rows the first row of its key."""
    index: dict[str, int] = {}
    first = np.empty(limit, np.int64)
    for i, w in enumerate(_words(vocab)[:limit]):
        first[i] = index.setdefault(w.upper() if case_insensitive else w, i)
    return index, first


def _analogy_hits(Wn: np.ndarray, first: np.ndarray, q: np.ndarray, method: str, chunk: int) -> np.ndarray:
    """Per question a:b :: c:d (rows of q [Q, 4], first rows of their keys): is the best candidate of d's key?

    Candidates are the rows of Wn except those of a's, b's and c's keys.
    """
    hits = np.zeros(q.shape[0], bool)
    shared = np.flatnonzero(first != np.arange(first.shape[0]))  # rows whose key an earlier row has
    for s in range(0, q.shape[0], chunk):
        a, b, c, d = q[s : s + chunk].T
        scores = _analogy_scores(Wn, a, b, c, method)
        r = np.arange(a.shape[0])
        scores[r, a] = scores[r, b] = scores[r, c] = -np.inf
        if shared.size:
            of = first[shared][None, :]
            sub = scores[:, shared]
            sub[(of == a[:, None]) | (of == b[:, None]) | (of == c[:, None])] = -np.inf
            scores[:, shared] = sub
        hits[s : s + chunk] = first[np.argmax(scores, axis=1)] == d
    return hits


def _analogy_outcomes(W, vocab, sections, method, restrict_vocab, case_insensitive, chunk, fn):
    """[(name, [(question as looked up, True / False, or None when a word is not among the candidates)])]."""
    W, vocab = _check_table(W, vocab, fn)
    method = _check_method(method, fn)
    limit = _check_restrict(restrict_vocab, W.shape[0], fn)
    chunk = as_int(chunk, "chunk", fn, minimum=1)
    index, first = _key_index(vocab, limit, case_insensitive)
    parsed = []
    for item in sections:
        try:
            name, questions = item
        except (TypeError, ValueError):
            raise ValueError(f"{fn}: sections must be (name, [(a, b, c, d), ...]) tuples, got {item!r}") from None
        folded = []
        for q in questions:
            if len(q) != 4:
                raise ValueError(f"{fn}: section {name!r}: a question must be 4 words (a, b, c, d), got {q!r}")
            folded.append(tuple(w.upper() for w in q) if case_insensitive else tuple(q))
        parsed.append((name, folded))
    known = [q for _, qs in parsed for q in qs if all(w in index for w in q)]
    ids = np.array([[index[w] for w in q] for q in known], dtype=np.int64).reshape(-1, 4)
    hits = iter(_analogy_hits(_np_normalize(W[:limit]), first, ids, method, chunk).tolist())
    return [(name, [(q, next(hits) if all(w in index for w in q) else None) for q in qs]) for name, qs in parsed]


def evaluate_analogies(
    W, vocab, sections, method: str = "3cosadd", restrict_vocab: int | None = None, chunk: int = 256
) -> dict:
    """Accuracy on analogy questions a:b :: c:d (correct when d is the top answer, a, b, c excluded).

    ``sections`` is [(name, [(a, b, c, d), ...]), ...] (``parse_questions_words``).
    Questions with a word outside the vocabulary (or outside its first
    ``restrict_vocab`` words, which are also the only candidates) are skipped.
    Returns {'sections': {name: accuracy or nan}, 'correct': int, 'total': int,
    'accuracy': float, 'skipped': int}.
    """
    outcomes = _analogy_outcomes(W, vocab, sections, method, restrict_vocab, False, chunk, "evaluate_analogies")
    per_section, correct, total, skipped = {}, 0, 0, 0
    for name, results in outcomes:
        hits = [h for _, h in results if h is not None]
        per_section[name] = sum(hits) / len(hits) if hits else float("nan")
        correct, total, skipped = correct + sum(hits), total + len(hits), skipped + len(results) - len(hits)
    return {
        "sections": per_section,
        "correct": correct,
        "total": total,
        "accuracy": correct / total if total else float("nan"),
        "skipped": skipped,
    }


def evaluate_word_analogies(
    W,
    vocab,
    sections,
    restrict_vocab: int | None = 300000,
    case_insensitive: bool = True,
    dummy4unknown: bool = False,
    chunk: int = 256,
) -> tuple[float, list[dict]]:
    """gensim's ``KeyedVectors.evaluate_word_analogies``: 3CosAdd accuracy over the first ``restrict_vocab`` words.

    ``sections`` as ``parse_questions_words(lines, lowercase=False)`` gives them. With ``case_insensitive`` words
    are compared upper-cased (a word's vector is its first row). A question with a word outside the first
    ``restrict_vocab`` words is skipped, or counted wrong with ``dummy4unknown``. Returns (score, sections):
    sections are {'section': name, 'correct': [(A, B, C, D)], 'incorrect': [...]}, the last one 'Total
    accuracy' with all questions, and score = its correct / (correct + incorrect) (0.0 when there are none).
    """
    fn = "evaluate_word_analogies"
    outcomes = _analogy_outcomes(W, vocab, sections, "3cosadd", restrict_vocab, case_insensitive, chunk, fn)
    results = []
    for name, answers in outcomes:
        correct = [q for q, h in answers if h]
        incorrect = [q for q, h in answers if h is False or (h is None and dummy4unknown)]
        results.append({"section": name, "correct": correct, "incorrect": incorrect})
    total = {
        "section": "Total accuracy",
        "correct": [q for s in results for q in s["correct"]],
        "incorrect": [q for s in results for q in s["incorrect"]],
    }
    answered = len(total["correct"]) + len(total["incorrect"])
    return (len(total["correct"]) / answered if answered else 0.0), [*results, total]


def parse_questions_words(
    lines: Iterable[str], lowercase: bool = True
) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """Google questions-words format: ': section' header lines, then 'a b c d' lines (blank lines ignored)."""
    sections: list[tuple[str, list]] = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(":"):
            sections.append((line[1:].strip(), []))
            continue
        words = line.lower().split() if lowercase else line.split()
        if len(words) != 4:
            raise ValueError(
                f"parse_questions_words: line {n} must hold 4 words 'a b c d' or a ': section' header, got {line!r}"
            )
        if not sections:
            raise ValueError(f"parse_questions_words: line {n} {line!r} comes before the first ': section' header")
        sections[-1][1].append(tuple(words))
    return sections


def _split_wordsim(line: str, delimiter: str | None) -> list[str]:
    if delimiter is not None:
        return [f.strip() for f in line.split(delimiter)]
    for sep in ("\t", ","):
        if sep in line:
            return [f.strip() for f in line.split(sep)]
    return line.split()


def parse_wordsim(
    lines: Iterable[str], lowercase: bool = True, delimiter: str | None = None
) -> list[tuple[str, str, float]]:
    """WordSim-353 style 'word1<sep>word2<sep>score' lines -> [(w1, w2, score)].

    The separator is ``delimiter``, or by default a tab, a comma or spaces, whichever the line has. Blank lines
    and '#' comments are skipped, and so are header lines (a non-numeric score) before the first data line;
    after it, a malformed line is an error.
    """
    if delimiter is not None and (not isinstance(delimiter, str) or not delimiter):
        raise ValueError(f"parse_wordsim: delimiter must be a non-empty str or None, got {delimiter!r}")
    pairs: list[tuple[str, str, float]] = []
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = _split_wordsim(line, delimiter)
        score = None
        if len(fields) >= 3 and fields[0] and fields[1]:
            try:
                score = float(fields[2])
            except ValueError:
                score = None
        if score is None or not math.isfinite(score):
            if not pairs:
                continue  # header
            sep = repr(delimiter) if delimiter is not None else "tab, comma or space"
            raise ValueError(
                f"parse_wordsim: line {n} must be 'word1<sep>word2<sep>score' (sep: {sep}), got {raw.rstrip()!r}"
            )
        w1, w2 = (fields[0].lower(), fields[1].lower()) if lowercase else (fields[0], fields[1])
        pairs.append((w1, w2, score))
    return pairs


def _pair_cosines(W, vocab, pairs, restrict_vocab, case_insensitive: bool, fn: str):
    """[(cos(w1, w2) or None when a word is not among the first restrict_vocab, score)] of (w1, w2, score) pairs."""
    W, vocab = _check_table(W, vocab, fn)
    limit = _check_restrict(restrict_vocab, W.shape[0], fn)
    index, _ = _key_index(vocab, limit, case_insensitive)
    Wn = _np_normalize(W[:limit])
    out = []
    for p in pairs:
        if len(p) != 3:
            raise ValueError(f"{fn}: pairs must be (word1, word2, score) triples, got {p!r}")
        w1, w2, score = p
        i, j = (index.get(w.upper() if case_insensitive else w) for w in (w1, w2))
        out.append((None if i is None or j is None else float(Wn[i] @ Wn[j]), float(score)))
    return out


def evaluate_wordsim(W, vocab, pairs) -> dict:
    """Spearman rank correlation between cosine(w1, w2) and the human scores of ``pairs`` [(w1, w2, score)].

    Pairs with an out-of-vocabulary word are skipped. Returns {'spearman', 'pvalue', 'evaluated', 'skipped'}.
    """
    from scipy.stats import spearmanr

    scored = _pair_cosines(W, vocab, pairs, None, False, "evaluate_wordsim")
    known = [(cos, score) for cos, score in scored if cos is not None]
    if len(known) < 2:
        rho, pvalue = float("nan"), float("nan")
    else:
        res = spearmanr(*zip(*known))
        rho, pvalue = float(res.statistic), float(res.pvalue)
    return {"spearman": rho, "pvalue": pvalue, "evaluated": len(known), "skipped": len(scored) - len(known)}


def evaluate_word_pairs(
    W, vocab, pairs, restrict_vocab: int | None = 300000, case_insensitive: bool = True, dummy4unknown: bool = False
):
    """gensim's ``KeyedVectors.evaluate_word_pairs``: Pearson and Spearman correlation of cos(w1, w2) with the scores.

    ``pairs`` as ``parse_wordsim(lines, lowercase=False, delimiter='\\t')`` gives them; words are compared
    upper-cased with ``case_insensitive``. A pair with a word outside the first ``restrict_vocab`` words is
    skipped, or given cosine 0 with ``dummy4unknown``. Returns (pearson, spearman, oov_ratio): scipy's
    ``pearsonr`` and ``spearmanr`` results ((statistic, pvalue)) and the percentage of such pairs (of all
    pairs; with ``dummy4unknown``, of the evaluated ones).
    """
    from scipy.stats import pearsonr, spearmanr

    fn = "evaluate_word_pairs"
    scored = _pair_cosines(W, vocab, pairs, restrict_vocab, case_insensitive, fn)
    oov = sum(cos is None for cos, _ in scored)
    used = [(0.0 if cos is None else cos, score) for cos, score in scored if cos is not None or dummy4unknown]
    if len(used) < 2:
        raise ValueError(
            f"{fn}: {len(used)} pair(s) to correlate ({oov} of {len(scored)} with a word outside the first "
            f"restrict_vocab={restrict_vocab} words): a correlation needs at least 2"
        )
    model, gold = (np.array(v) for v in zip(*used))
    oov_ratio = 100.0 * oov / (len(used) if dummy4unknown else len(scored))
    return pearsonr(gold, model), spearmanr(gold, model), oov_ratio
