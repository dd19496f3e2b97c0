"""Layers shared by the zoo's networks (U-Net, conv autoencoders, VAE, DCGAN).

Upsampling is resize + convolution rather than a transposed convolution: XLA's
transposed convolutions are very slow on CPU (jax-ml/jax#23783) and resize +
conv also avoids checkerboard artefacts.

Mixed precision: every layer here, and every network of the zoo built from them, takes ``dtype``, the
dtype it computes in (None: that of its inputs and parameters; e.g. jnp.bfloat16). Parameters are
always created in float32 (Flax's ``param_dtype`` default), and the zoo's networks return float32
outputs, so losses are computed in float32.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["sinusoidal_embedding", "num_groups", "MLP", "Upsample", "Downsample", "ResBlock", "SelfAttention"]


def sinusoidal_embedding(t: jax.Array, dim: int, max_period: float = 10_000.0) -> jax.Array:
    """Transformer position code of t: [sin(t w_k), cos(t w_k)], w_k = max_period^(-k/(dim/2))."""
    if dim % 2:
        raise ValueError(f"sinusoidal_embedding: dim must be even, got {dim}")
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = jnp.asarray(t, jnp.float32)[..., None] * freqs
    return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)


def num_groups(channels: int, max_groups: int = 32) -> int:
    """Largest group count <= max_groups dividing `channels` (GroupNorm needs a divisor)."""
    for g in range(min(max_groups, channels), 0, -1):
        if channels % g == 0:
            return g
    return 1


class MLP(nn.Module):
    """Dense layers with an activation between them (none after the last)."""

    features: Sequence[int]
    activation: Callable = nn.relu
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x):
        for i, f in enumerate(self.features):
            x = nn.Dense(f, dtype=self.dtype)(x)
            if i < len(self.features) - 1:
                x = self.activation(x)
        return x


class Upsample(nn.Module):
    """Nearest-neighbour x2 resize followed by a 3x3 convolution."""

    features: int
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x):
        b, h, w, c = x.shape
        x = jax.image.resize(x, (b, 2 * h, 2 * w, c), method="nearest")
        return nn.Conv(self.features, (3, 3), dtype=self.dtype)(x)


class Downsample(nn.Module):
    """3x3 convolution with stride 2."""

    features: int
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x):
        return nn.Conv(self.features, (3, 3), strides=(2, 2), dtype=self.dtype)(x)


class ResBlock(nn.Module):
    """GroupNorm-swish-conv twice, with an optional conditioning vector added in between."""

    features: int
    dropout: float = 0.0
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x, cond=None, *, train: bool = False):
        h = nn.swish(nn.GroupNorm(num_groups(x.shape[-1]), dtype=self.dtype)(x))
        h = nn.Conv(self.features, (3, 3), dtype=self.dtype)(h)
        if cond is not None:
            h = h + nn.Dense(self.features, dtype=self.dtype)(nn.swish(cond))[:, None, None, :]
        h = nn.swish(nn.GroupNorm(num_groups(self.features), dtype=self.dtype)(h))
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        # Zero-initialised last conv: each block starts as the identity (DDPM, Ho et al.).
        h = nn.Conv(self.features, (3, 3), kernel_init=nn.initializers.zeros, dtype=self.dtype)(h)
        if x.shape[-1] != self.features:
            x = nn.Conv(self.features, (1, 1), dtype=self.dtype)(x)
        return x + h


class SelfAttention(nn.Module):
    """Single-head self-attention over the spatial positions of an NHWC map, residual."""

    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x):
        b, h, w, c = x.shape
        y = nn.GroupNorm(num_groups(c), dtype=self.dtype)(x).reshape(b, h * w, c)
        q, k, v = jnp.split(nn.Dense(3 * c, dtype=self.dtype)(y), 3, axis=-1)
        y = nn.dot_product_attention(q[:, :, None], k[:, :, None], v[:, :, None])[:, :, 0]
        y = nn.Dense(c, kernel_init=nn.initializers.zeros, dtype=self.dtype)(y)
        return x + y.reshape(b, h, w, c)
