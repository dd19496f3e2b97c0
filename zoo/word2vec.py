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
   vectors, also with negatives. ``hs_loss`` replaces it by a hierarchical softmax instead
   (word2vec's -hs 1, gensim's hs=1): P(o|c) is a product of binary decisions along the path
   to o in a Huffman tree of the vocabulary (``huffman_tree``), one inner-node vector each.
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
   word2vec). The fast form the trainer runs, ``lax.scan``-able with padding and
   shared draws, is ``zoo.word2vec_rows``.

The losses, gradients and updates are not jitted here: as with optax, jax.jit is the
caller's (a training step jits its loss or update whole), and their input checks run
as well on traced arrays.

Using the vectors (nearest words, analogies, word similarity) is ``zoo.word_vectors``.
"""

from __future__ import annotations

import heapq
import math
import operator

import jax
import jax.numpy as jnp
import numpy as np

from zoo._checks import as_int
from zoo.fasttext import uniform_rows

__all__ = [
    "REDUCTIONS",
    "init_params",
    "skipgram_softmax_loss",
    "skipgram_objective",
    "sgns_loss",
    "cbow_loss",
    "huffman_tree",
    "hs_loss",
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
]

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
    """word2vec's initialisation: v (in) ~ U(-0.5/D, 0.5/D), u (out) = 0 (jax.random.uniform's values, drawn a
    block of rows at a time: zoo.fasttext.uniform_rows, no table-sized temporary)."""
    vocab_size = as_int(vocab_size, "vocab_size", "init_params", minimum=1)
    dim = as_int(dim, "dim", "init_params", minimum=1)
    w_in = uniform_rows(key, vocab_size, dim, -0.5 / dim, 0.5 / dim)
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
    logits = params["in"][centres] @ params["out"].T  # [B, V]
    nll = jax.nn.logsumexp(logits, axis=-1) - jnp.take_along_axis(logits, contexts[:, None], axis=-1)[:, 0]
    return _reduce(nll, reduction)


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
    return skipgram_softmax_loss(params, centres, contexts, "sum") / ids.shape[0]


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
    h, _, _ = _cbow_hidden(params["in"], contexts, mask)
    return _reduce(_sgns_terms(h, params["out"][centres], params["out"][negatives]), reduction)


# ----------------------------------------------------------------------------- hierarchical softmax


class _Node:
    """A Huffman tree node in the heap, ordered by its count only (ties: heapq's order, as gensim's)."""

    __slots__ = ("count", "id")

    def __init__(self, count: int, node_id: int):
        self.count, self.id = count, node_id

    def __lt__(self, other: _Node) -> bool:
        return self.count < other.count


def huffman_tree(counts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Huffman codes of word counts [V]: (codes [V, L] uint8, points [V, L] int32, lengths [V] int32), 0-padded.

    Row w holds word w's path from the root: points the inner nodes it passes (ids 0..V-2, the row of each in
    the output table; node V-2 is the root), codes the branch taken at each (0: the first-popped, lighter
    child). The tree is gensim's (``Word2Vec(hs=1)``): the words with ids 0..V-1 go into a heapq heap,
    then V-1 times the two lightest nodes are popped and their parent (id V + i) pushed. Nodes compare by
    count alone, so equal counts come out in whatever order heapq's sifts leave them, as in gensim (whose
    heap items compare by count); word2vec.c's two-queue build may break ties otherwise. Frequent words get
    short codes: sum_w counts[w] lengths[w] is minimal.
    """
    counts = np.asarray(counts)
    if counts.ndim != 1 or counts.shape[0] < 1 or not np.issubdtype(counts.dtype, np.integer) or counts.min() < 0:
        raise ValueError(
            f"huffman_tree: counts must be a 1-D array of V >= 1 non-negative integers, "
            f"got dtype {counts.dtype} shape {counts.shape}"
        )
    v = counts.shape[0]
    parent = np.full(2 * v - 1, -1, np.int64)
    branch = np.zeros(2 * v - 1, np.uint8)
    heap = [_Node(int(n), w) for w, n in enumerate(counts)]
    heapq.heapify(heap)
    for i in range(v - 1):
        lighter, heavier = heapq.heappop(heap), heapq.heappop(heap)
        parent[lighter.id] = parent[heavier.id] = v + i
        branch[heavier.id] = 1
        heapq.heappush(heap, _Node(lighter.count + heavier.count, v + i))
    # climb from every leaf at once, recording the branches and inner nodes from the leaf up
    node, up_codes, up_points = np.arange(v), [], []
    while True:
        above = parent[node]
        alive = above >= 0
        if not alive.any():
            break
        up_codes.append(np.where(alive, branch[node], 0))
        up_points.append(np.where(alive, above - v, -1))
        node = np.where(alive, above, node)
    lengths = np.sum([p >= 0 for p in up_points], axis=0, dtype=np.int32) if up_points else np.zeros(v, np.int32)
    depth = len(up_points)
    codes, points = np.zeros((v, depth), np.uint8), np.zeros((v, depth), np.int32)
    rows = np.arange(v)
    for k in range(depth):  # step k up from the leaf is position lengths - 1 - k from the root
        real = k < lengths
        codes[rows[real], lengths[real] - 1 - k] = up_codes[k][real]
        points[rows[real], lengths[real] - 1 - k] = up_points[k][real]
    return codes, points, lengths


def hs_loss(params, inputs, outputs, codes, points, lengths, reduction: str = "mean") -> jax.Array:
    """Hierarchical softmax: -log P(o|c) = -sum_{j < len(o)} log sigma((1 - 2 code_{o,j}) u_{point_{o,j}}.v_c).

    inputs [B] rows of 'in' (v), outputs [B] the predicted words, whose paths (codes, points, lengths:
    ``huffman_tree``) pick rows of 'out' (u, the inner nodes; 'out' has at least V-1 rows). word2vec.c's
    gradient factor (1 - code - sigma(u.v)) is minus this loss's derivative in u.v: code 0 is the
    branch of probability sigma(u.v), and the probabilities of all leaves sum to one.
    """
    fn = "hs_loss"
    _check_params(params, fn)
    inputs, outputs = _check_batch(inputs, outputs, fn)
    _check_reduction(reduction, fn)
    codes, points, lengths = jnp.asarray(codes), jnp.asarray(points), jnp.asarray(lengths)
    if codes.ndim != 2 or codes.shape != points.shape or lengths.shape != codes.shape[:1]:
        raise ValueError(
            f"{fn}: codes and points must be [V, L] and lengths [V] (huffman_tree), "
            f"got {codes.shape}, {points.shape} and {lengths.shape}"
        )
    v = params["in"][inputs]  # [B, D]
    x = jnp.einsum("bd,bld->bl", v, params["out"][points[outputs]])  # [B, L]
    sign = 1.0 - 2.0 * codes[outputs].astype(x.dtype)
    on_path = jnp.arange(codes.shape[1])[None, :] < lengths[outputs][:, None]
    return _reduce(jnp.sum(jnp.where(on_path, jax.nn.softplus(-sign * x), 0.0), axis=-1), reduction)


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
    return _sgns_row_grads(params["in"][centres], params["out"][contexts], params["out"][negatives])


def _sgd_rows(params, lr, in_rows, d_in, out_rows, d_out):
    """params - lr * gradient, scatter-added into the rows it touches (repeated rows accumulate)."""
    w_out = params["out"]
    for rows, d in zip(out_rows, d_out):
        w_out = w_out.at[rows].add(-lr * d)
    return {"in": params["in"].at[in_rows].add(-lr * d_in), "out": w_out}


def _sgns_step(fn, shared, params, centres, contexts, negatives, lr):
    """params - lr * the summed SGNS loss's row gradients (``sgns_grads``), negatives [B, K] or shared [K]."""
    _check_params(params, fn)
    centres, contexts = _check_batch(centres, contexts, fn)
    negatives = _check_negatives(negatives, centres.shape[0], fn, shared=shared)
    d_in, d_ctx, d_neg = _sgns_row_grads(params["in"][centres], params["out"][contexts], params["out"][negatives])
    return _sgd_rows(params, lr, centres, d_in, (contexts, negatives), (d_ctx, d_neg))


def sgns_update(params, centres, contexts, negatives, lr):
    """One sparse SGD step on the summed SGNS loss.

    Only rows centres (in), contexts and negatives [B, K] (out) change.
    """
    return _sgns_step("sgns_update", False, params, centres, contexts, negatives, lr)


def sgns_update_shared(params, centres, contexts, negatives, lr):
    """HogBatch step (Ji et al. 2016): negatives [K] shared by the minibatch, scores [B, D] x [D, K] as one matmul."""
    return _sgns_step("sgns_update_shared", True, params, centres, contexts, negatives, lr)


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
    return _cbow_row_grads(params["in"], params["out"][centres], params["out"][negatives], contexts, mask)


def cbow_update(params, contexts, mask, centres, negatives, lr):
    """One sparse step on the summed CBOW loss by ``cbow_grads`` (word2vec's undivided context rows), scatter-added."""
    contexts, mask, centres, negatives = _check_cbow(params, contexts, mask, centres, negatives, "cbow_update")
    d_ctx, d_pos, d_neg = _cbow_row_grads(
        params["in"], params["out"][centres], params["out"][negatives], contexts, mask
    )
    return _sgd_rows(params, lr, contexts, d_ctx, (centres, negatives), (d_pos, d_neg))
