"""Vector-quantised autoencoder, VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017), the math in one module.

The encoder maps x to a grid of vectors z_e(x) [B, h, w, D]; each is replaced by its nearest code of a codebook
e [K, D]: z_q = e_k, k = argmin_j ||z_e - e_j||^2, and the decoder reconstructs x from z_q. The argmin has no
gradient, so the decoder's gradient is copied to the encoder (the straight-through estimator, z_e + sg(z_q - z_e)),
and the loss is

    L = log p(x | z_q) + ||sg(z_e) - e||^2 + beta ||z_e - sg(e)||^2

(reconstruction, codebook, commitment). Appendix A.1's alternative to the codebook term moves each code to the
exponential moving average of the vectors assigned to it: N_k <- g N_k + (1 - g) n_k, m_k <- g m_k + (1 - g)
sum_{z -> k} z, e_k = m_k / N_k. Codes nobody picks stay dead; a restart moves each code whose average count fell
below a threshold onto a random encoder output of the batch (as Jukebox and vqtorch do). Codebook use is read by
the perplexity of the codes, exp(-sum_k p_k log p_k): K when every code is used equally, 1 when one is.

Shapes: z [..., D] any leading axes, indices [...] int32, codebook [K, D]. Every function here is pure and jit-,
vmap- and grad-able; the EMA state is a small pytree (`CodebookStats`) the training step carries.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from zoo.layers import Downsample, ResBlock, Upsample

__all__ = [
    "squared_distances",
    "nearest_codes",
    "quantize",
    "straight_through",
    "codebook_loss",
    "commitment_loss",
    "code_histogram",
    "perplexity",
    "CodebookStats",
    "init_stats",
    "ema_update",
    "restart_dead_codes",
    "VQVAE",
    "latent_shape",
]


def squared_distances(z: jax.Array, codebook: jax.Array) -> jax.Array:
    """||z - e_k||^2 = ||z||^2 - 2 z.e_k + ||e_k||^2 for every code: [..., K] (one matmul, no [..., K, D] tensor)."""
    z = z.astype(jnp.float32)
    return (
        jnp.sum(z * z, axis=-1, keepdims=True)
        - 2.0 * z @ codebook.T.astype(jnp.float32)
        + jnp.sum(jnp.square(codebook.astype(jnp.float32)), axis=-1)
    )


def nearest_codes(z: jax.Array, codebook: jax.Array) -> jax.Array:
    """k(z) = argmin_k ||z - e_k||^2, int32 [...] (ties: the smallest k)."""
    return jnp.argmin(squared_distances(z, codebook), axis=-1).astype(jnp.int32)


def quantize(z: jax.Array, codebook: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(z_q = e_{k(z)} [..., D], k(z) [...]): each vector replaced by its nearest code."""
    indices = nearest_codes(z, codebook)
    return jnp.take(codebook, indices, axis=0).astype(z.dtype), indices


def straight_through(z: jax.Array, z_q: jax.Array) -> jax.Array:
    """z + sg(z_q - z): z_q forward, the identity's gradient to z backward."""
    return z + jax.lax.stop_gradient(z_q - z)


def _per_example_mean(a: jax.Array) -> jax.Array:
    return jnp.mean(a.reshape(a.shape[0], -1), axis=-1)


def codebook_loss(z: jax.Array, z_q: jax.Array) -> jax.Array:
    """||sg(z_e) - e||^2 per example [B], the mean over its vectors' elements: moves the codes only."""
    return _per_example_mean(jnp.square(jax.lax.stop_gradient(z) - z_q))


def commitment_loss(z: jax.Array, z_q: jax.Array) -> jax.Array:
    """||z_e - sg(e)||^2 per example [B], the mean over its vectors' elements: moves the encoder only."""
    return _per_example_mean(jnp.square(z - jax.lax.stop_gradient(z_q)))


def code_histogram(indices: jax.Array, num_codes: int) -> jax.Array:
    """n_k: how many vectors picked code k, float32 [K]."""
    return jnp.zeros((num_codes,), jnp.float32).at[indices.reshape(-1)].add(1.0)


def perplexity(counts: jax.Array) -> jax.Array:
    """exp(-sum_k p_k log p_k) of the code frequencies p = counts / sum(counts): in [1, K]."""
    p = counts / jnp.maximum(jnp.sum(counts), 1e-12)
    return jnp.exp(-jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)))


class CodebookStats(flax.struct.PyTreeNode):
    """The moving averages of appendix A.1: N_k (vectors per code per batch) and m_k (their sum, [K, D])."""

    counts: jax.Array
    sums: jax.Array


def init_stats(codebook: jax.Array) -> CodebookStats:
    """N_k = 1 and m_k = e_k: the EMA codebook starts at the given one."""
    return CodebookStats(jnp.ones(codebook.shape[:1], jnp.float32), jnp.asarray(codebook, jnp.float32))


def ema_update(
    stats: CodebookStats, z: jax.Array, indices: jax.Array, decay: float, epsilon: float = 1e-5
) -> tuple[CodebookStats, jax.Array]:
    """(new stats, new codebook [K, D]): N <- g N + (1 - g) n, m <- g m + (1 - g) sum_{z -> k} z, e_k = m_k / N~_k,
    N~ Laplace-smoothed, (N_k + eps) / (sum N + K eps) sum N, so a code nobody picks keeps a finite e_k.

    At decay 0 and epsilon 0 each used code moves to the mean of its vectors: one k-means (Lloyd) step."""
    num_codes, dim = stats.sums.shape
    flat, idx = z.reshape(-1, dim).astype(jnp.float32), indices.reshape(-1)
    counts = decay * stats.counts + (1 - decay) * code_histogram(idx, num_codes)
    sums = decay * stats.sums + (1 - decay) * jnp.zeros_like(stats.sums).at[idx].add(flat)
    total = jnp.sum(counts)
    smoothed = (counts + epsilon) / (total + num_codes * epsilon) * total
    return CodebookStats(counts, sums), sums / jnp.maximum(smoothed, 1e-12)[:, None]


def restart_dead_codes(
    key: jax.Array, codebook: jax.Array, stats: CodebookStats, z: jax.Array, threshold: float
) -> tuple[jax.Array, CodebookStats]:
    """Codes whose average count N_k is below threshold move onto encoder outputs of the batch drawn uniformly
    (their stats reset to N_k = 1, m_k = that output); the others stay. Returns (codebook, stats)."""
    flat = z.reshape(-1, codebook.shape[-1]).astype(codebook.dtype)
    picks = flat[jax.random.randint(key, codebook.shape[:1], 0, flat.shape[0])]
    dead = stats.counts < threshold
    codebook = jnp.where(dead[:, None], picks, codebook)
    counts = jnp.where(dead, 1.0, stats.counts)
    sums = jnp.where(dead[:, None], picks.astype(jnp.float32), stats.sums)
    return codebook, CodebookStats(counts, sums)


# ----------------------------------------------------------------------------- the network


class _Encoder(nn.Module):
    channels: int
    num_levels: int
    num_res_blocks: int
    code_dim: int
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x):
        h = nn.Conv(self.channels, (3, 3), dtype=self.dtype)(x)
        for _ in range(self.num_levels):
            h = Downsample(self.channels, dtype=self.dtype)(nn.relu(h))
        for _ in range(self.num_res_blocks):
            h = ResBlock(self.channels, dtype=self.dtype)(h)
        return nn.Conv(self.code_dim, (1, 1), dtype=self.dtype)(nn.relu(h)).astype(jnp.float32)


class _Decoder(nn.Module):
    channels: int
    num_levels: int
    num_res_blocks: int
    out_ch: int
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, z):
        h = nn.Conv(self.channels, (3, 3), dtype=self.dtype)(z)
        for _ in range(self.num_res_blocks):
            h = ResBlock(self.channels, dtype=self.dtype)(h)
        for _ in range(self.num_levels):
            h = Upsample(self.channels, dtype=self.dtype)(nn.relu(h))
        return nn.Conv(self.out_ch, (3, 3), dtype=self.dtype)(nn.relu(h)).astype(jnp.float32)


class VQVAE(nn.Module):
    """Conv encoder to an (H / 2^num_levels, W / 2^num_levels, code_dim) grid, a codebook [num_codes, code_dim],
    a conv decoder mirroring the encoder (resize + conv upsampling) to the image's channels.

    encode(x) -> z_e; quantize(z_e) -> (z_q, indices); decode(z_q) -> the decoder's output (the likelihood's
    parameter: the mean, or Bernoulli logits); __call__(x) -> (output, z_e, z_q, indices), the decoder reading
    straight_through(z_e, z_q). The codebook is the parameter 'codebook'.
    """

    image_channels: int
    num_codes: int = 64
    code_dim: int = 8
    channels: int = 64
    num_levels: int = 1
    num_res_blocks: int = 1
    dtype: jnp.dtype | None = None

    def setup(self):
        if min(self.num_codes, self.code_dim, self.channels, self.image_channels) < 1 or self.num_levels < 0:
            raise ValueError(
                f"VQVAE: num_codes, code_dim, channels, image_channels must be >= 1 and num_levels >= 0, got "
                f"{self.num_codes}, {self.code_dim}, {self.channels}, {self.image_channels}, {self.num_levels}"
            )
        self.encoder = _Encoder(self.channels, self.num_levels, self.num_res_blocks, self.code_dim, self.dtype)
        self.decoder = _Decoder(self.channels, self.num_levels, self.num_res_blocks, self.image_channels, self.dtype)
        bound = 1.0 / self.num_codes  # the paper's code's uniform(-1/K, 1/K)
        init = lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -bound, bound)
        self.codebook = self.param("codebook", init, (self.num_codes, self.code_dim))

    def encode(self, x):
        if x.ndim != 4:
            raise ValueError(f"VQVAE: x must be NHWC [B, H, W, C], got shape {x.shape}")
        f = 2**self.num_levels
        if x.shape[1] % f or x.shape[2] % f:
            raise ValueError(f"VQVAE: {2**self.num_levels} must divide the image's sides, got {x.shape[1:3]}")
        return self.encoder(x)

    def quantize(self, z):
        return quantize(z, self.codebook)

    def decode(self, z_q):
        return self.decoder(z_q)

    def decode_codes(self, indices):
        """The decoder's output for a grid of code indices [B, h, w]."""
        return self.decoder(jnp.take(self.codebook, indices, axis=0))

    def __call__(self, x):
        z = self.encode(x)
        z_q, indices = self.quantize(z)
        return self.decode(straight_through(z, z_q)), z, z_q, indices


def latent_shape(image_shape: Sequence[int], num_levels: int, code_dim: int) -> tuple[int, int, int]:
    """The grid z_e of an image [H, W, C]: (H / 2^n, W / 2^n, code_dim)."""
    return image_shape[0] // 2**num_levels, image_shape[1] // 2**num_levels, code_dim
