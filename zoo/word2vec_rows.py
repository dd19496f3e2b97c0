"""word2vec's fast row steps: the SGD steps ``train.word2vec`` runs, as pure functions of the tables.

One minibatch of word2vec's SGD: gather the rows the minibatch touches, take the analytic gradient
of its summed loss, scatter-add -lr * gradient (padding rows carry weight 0). Written as [B, D]
elementwise work with reductions over the last axis only, one gather per noise column and one
scatter-add per table: the form XLA:CPU runs fastest (batched einsums over small K or G lower to
slow loops there), and plain fused vector work on accelerators.

The steps are unchecked and traceable (the body of a training loop's ``lax.scan``). They follow the
lecture's losses and the reference updates of ``zoo.word2vec`` (``sgns_update``, ``cbow_update``,
``skipgram_softmax_loss``, ``hs_loss``), which tests/test_word2vec.py checks them against; CBOW follows
``zoo.word2vec.cbow_grads``'s convention: every context row takes the full gradient of h.

The hierarchical-softmax steps (``hs_rows_step``, ``cbow_hs_rows_step``) take each example's path as
points [B, L] (rows of 'out', the inner nodes) and signs [B, L] (``path_signs``: 1 - 2 code on the path,
0 past its end, so padding costs nothing). FastText trains with the CBOW steps: an input word's rows
(its own and its n-grams', zoo.fasttext) are the "context" whose mean is h.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["sgns_rows_step", "cbow_rows_step", "softmax_rows_step", "path_signs", "hs_rows_step", "cbow_hs_rows_step"]


def _negative_sampling_rows(h, u, negatives, w_out, weights, lr):
    """-lr times the row gradients of the summed loss -log sigma(u.h) - sum_k log sigma(-u_k.h), and the loss.

    h, u [B, D]: hidden and output rows; negatives [B/G, K] ids into w_out, G consecutive rows sharing
    one draw (G = 1: word2vec; G > 1: HogBatch); weights [B]. Returns (loss, step_h [B, D],
    step_u [B, D], step_noise [K * B/G, D] for the ids negatives.T.ravel()). lr enters through the
    per-row coefficients, not the [., D] results: XLA:CPU then fuses the arithmetic with the scatters.
    """
    b, d = h.shape
    n, k = negatives.shape
    g = b // n
    step = -lr * weights
    pos = jnp.sum(h * u, axis=-1)
    c_pos = step * (jax.nn.sigmoid(pos) - 1.0)  # d/ds [-log sigma(s)]
    loss = jnp.sum(weights * jax.nn.softplus(-pos))
    d_h = c_pos[:, None] * u
    hg = h.reshape(n, g, d)
    d_noise = []
    columns = negatives.T  # [K, B/G]: contiguous index rows
    for j in range(k):  # K is small: unrolled
        u_j = w_out[columns[j]]  # [B/G, D]
        if g == 1:  # no size-1 axis: XLA:CPU lays [B, 1, D] out badly (several times slower)
            s = jnp.sum(h * u_j, axis=-1)
        else:
            s = jnp.sum(hg * u_j[:, None, :], axis=-1).reshape(b)
        c = step * jax.nn.sigmoid(s)  # d/ds [-log sigma(-s)]
        loss = loss + jnp.sum(weights * jax.nn.softplus(s))
        if g == 1:
            d_h = d_h + c[:, None] * u_j
            d_noise.append(c[:, None] * h)
        else:
            d_h = d_h + (c.reshape(n, g, 1) * u_j[:, None, :]).reshape(b, d)
            d_noise.append(jnp.einsum("ng,ngd->nd", c.reshape(n, g), hg))
    return loss, d_h, c_pos[:, None] * h, jnp.concatenate(d_noise)


def sgns_rows_step(params, inputs, outputs, negatives, weights, lr):
    """One SGD step on the summed SGNS loss of B pairs, touching only their rows: (params, summed loss).

    inputs [B] rows of 'in', outputs [B] rows of 'out', negatives [B/G, K] (G consecutive pairs share
    a draw), weights [B]. Unchecked and traceable: the body of a training loop's lax.scan.
    """
    w_in, w_out = jnp.asarray(params["in"]), jnp.asarray(params["out"])
    loss, s_h, s_u, s_noise = _negative_sampling_rows(w_in[inputs], w_out[outputs], negatives, w_out, weights, lr)
    out_ids = jnp.concatenate([outputs, negatives.T.reshape(-1)])
    return {"in": w_in.at[inputs].add(s_h), "out": w_out.at[out_ids].add(jnp.concatenate([s_u, s_noise]))}, loss


def cbow_rows_step(params, contexts, owners, mask, outputs, negatives, weights, lr):
    """One SGD step on the summed CBOW loss of B centres, h = mean of each centre's context rows: (params, loss).

    The contexts come packed, P slots for the B centres together (a centre has 1 to 2 x window of them):
    contexts [P] rows of 'in', owners [P] the centre (0..B-1) each slot belongs to, mask [P] (0: an empty
    slot); outputs [B] the centres (rows of 'out'), negatives [B/G, K], weights [B] as sgns_rows_step.
    zoo.word2vec.cbow_grads's convention (word2vec.c, gensim's cbow_mean=1): h = mean of the context rows,
    and every context row steps by -lr dL/dh, undivided by their number. Unchecked and traceable.
    """
    w_in, w_out = jnp.asarray(params["in"]), jnp.asarray(params["out"])
    b = outputs.shape[0]
    m = mask.astype(w_in.dtype)
    # one gather and two segment sums over the real slots: padding every centre to 2 x window slots
    # gathered and scattered about 2.5 times the rows (and slot-by-slot columns ran slowly on XLA:CPU)
    count = jax.ops.segment_sum(m, owners, num_segments=b)
    h = jax.ops.segment_sum(m[:, None] * w_in[contexts], owners, num_segments=b) / jnp.maximum(count, 1.0)[:, None]
    loss, s_h, s_u, s_noise = _negative_sampling_rows(h, w_out[outputs], negatives, w_out, weights, lr)
    out_ids = jnp.concatenate([outputs, negatives.T.reshape(-1)])
    return {
        "in": w_in.at[contexts].add(m[:, None] * s_h[owners]),
        "out": w_out.at[out_ids].add(jnp.concatenate([s_u, s_noise])),
    }, loss


def softmax_rows_step(params, inputs, outputs, weights, lr):
    """One SGD step on the summed -log softmax(U v)[o] of B pairs (the lecture's J(theta)); dense in U by nature."""
    w_in, w_out = jnp.asarray(params["in"]), jnp.asarray(params["out"])
    v = w_in[inputs]
    logits = v @ w_out.T
    p = jax.nn.softmax(logits, axis=-1)
    nll = jax.nn.logsumexp(logits, axis=-1) - jnp.take_along_axis(logits, outputs[:, None], axis=-1)[:, 0]
    d_logits = weights[:, None] * (p - jax.nn.one_hot(outputs, w_out.shape[0], dtype=p.dtype))
    return {"in": w_in.at[inputs].add(-lr * (d_logits @ w_out)), "out": w_out - lr * (d_logits.T @ v)}, jnp.sum(
        weights * nll
    )


def path_signs(codes, lengths):
    """s [V, L] float32 of Huffman codes [V, L] and lengths [V] (zoo.word2vec.huffman_tree): 1 - 2 code on
    the path, 0 past its end."""
    codes = jnp.asarray(codes)
    on_path = jnp.arange(codes.shape[1])[None, :] < jnp.asarray(lengths)[:, None]
    return jnp.where(on_path, 1.0 - 2.0 * codes.astype(jnp.float32), 0.0)


def _hierarchical_softmax_rows(h, points, signs, w_out, weights, lr):
    """-lr times the row gradients of the summed loss sum_j |s_j| (-log sigma(s_j u_{p_j}.h)), and the loss.

    h [B, D]; points [B, L] rows of w_out, signs [B, L] (path_signs); weights [B]. Returns (loss, step_h [B, D],
    step_nodes [L * B, D] for the ids points.T.ravel()). d/dx [-log sigma(s x)] = -s sigma(-s x): word2vec.c's
    -(1 - code - sigma(x)) for s = 1 - 2 code, and 0 where s = 0. The path's L columns are unrolled, like the
    noise words of the negative-sampling steps.
    """
    step = -lr * weights
    d_h = jnp.zeros_like(h)
    loss = jnp.zeros((), h.dtype)
    d_nodes = []
    for j in range(points.shape[1]):
        u_j = w_out[points[:, j]]  # [B, D]
        x = jnp.sum(h * u_j, axis=-1)
        s = signs[:, j]
        loss = loss + jnp.sum(weights * jnp.abs(s) * jax.nn.softplus(-s * x))
        c = step * (-s * jax.nn.sigmoid(-s * x))
        d_h = d_h + c[:, None] * u_j
        d_nodes.append(c[:, None] * h)
    return loss, d_h, jnp.concatenate(d_nodes)


def hs_rows_step(params, inputs, points, signs, weights, lr):
    """One SGD step on the summed hierarchical-softmax loss (zoo.word2vec.hs_loss) of B pairs: (params, loss).

    inputs [B] rows of 'in'; points, signs [B, L] the paths of the pairs' output words (rows of 'out': the
    inner nodes); weights [B]. Unchecked and traceable.
    """
    w_in, w_out = jnp.asarray(params["in"]), jnp.asarray(params["out"])
    loss, s_h, s_nodes = _hierarchical_softmax_rows(w_in[inputs], points, signs, w_out, weights, lr)
    return {"in": w_in.at[inputs].add(s_h), "out": w_out.at[points.T.reshape(-1)].add(s_nodes)}, loss


def cbow_hs_rows_step(params, contexts, owners, mask, points, signs, weights, lr):
    """cbow_rows_step with the hierarchical softmax: h = mean of each centre's packed context rows, the loss
    hs_loss of the centre's path (points, signs [B, L]); every context row steps by -lr dL/dh undivided."""
    w_in, w_out = jnp.asarray(params["in"]), jnp.asarray(params["out"])
    b = points.shape[0]
    m = mask.astype(w_in.dtype)
    count = jax.ops.segment_sum(m, owners, num_segments=b)
    h = jax.ops.segment_sum(m[:, None] * w_in[contexts], owners, num_segments=b) / jnp.maximum(count, 1.0)[:, None]
    loss, s_h, s_nodes = _hierarchical_softmax_rows(h, points, signs, w_out, weights, lr)
    return {
        "in": w_in.at[contexts].add(m[:, None] * s_h[owners]),
        "out": w_out.at[points.T.reshape(-1)].add(s_nodes),
    }, loss
