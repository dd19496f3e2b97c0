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

__all__ = [
    "sinusoidal_embedding",
    "num_groups",
    "conv_levels",
    "level_channels",
    "decoder_base",
    "conv_trunk",
    "MLP",
    "Upsample",
    "Downsample",
    "ResBlock",
    "SelfAttention",
]


def sinusoidal_embedding(t: jax.Array, dim: int, max_period: float = 10_000.0) -> jax.Array:
    """Transformer position code of t: [sin(t w_k), cos(t w_k)], w_k = max_period^(-k/(dim/2))."""
    if dim % 2:
        raise ValueError(f"sinusoidal_embedding: dim must be even, got {dim}")
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = jnp.asarray(t, jnp.float32)[..., None] * freqs
    return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)


def conv_levels(height: int, width: int) -> int:
    """Number of stride-2 halvings: halve while both sides are even and stay >= 4 (8->1, 28->2, 32->3)."""
    if height < 1 or width < 1:
        raise ValueError(f"conv_levels: image sides must be positive, got {height}x{width}")
    n = 0
    while height % 2 == 0 and width % 2 == 0 and height // 2 >= 4 and width // 2 >= 4:
        height, width, n = height // 2, width // 2, n + 1
    return n


def level_channels(channels: Sequence[int], i: int) -> int:
    """Width of resolution level i (i halvings): channels[min(i, len - 1)], the last repeating."""
    return int(channels[min(i, len(channels) - 1)])


def decoder_base(name: str, image_shape, channels: Sequence[int], num_levels: int | None = None):
    """(n, (H / 2^n, W / 2^n, level_channels(n)), C): the halvings and the smallest map of a conv decoder to
    image_shape (H, W, C), n = conv_levels(H, W) unless num_levels; ValueError if 2^n divides not both sides."""
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{name}: image_shape must be (H, W, C) with positive sides, got {shape}")
    height, width, c = shape
    n = conv_levels(height, width) if num_levels is None else num_levels
    if height % (2**n) or width % (2**n):
        raise ValueError(f"{name}: image {height}x{width} is not divisible by 2^num_levels={2**n}")
    return n, (height // 2**n, width // 2**n, level_channels(channels, n)), c


def conv_trunk(name: str, x, channels: Sequence[int], num_levels: int | None, activation: Callable, dtype=None):
    """NHWC x -> 3x3 conv, n stride-2 Downsample convs, the activation after each -> flattened [B, features].

    The body of a conv encoder or discriminator: level i (i halvings) has level_channels(channels, i), n =
    conv_levels(H, W) unless num_levels. Call it inside an nn.compact method; its layers are that module's.
    """
    if x.ndim != 4:
        raise ValueError(f"{name}: x must be NHWC [B, H, W, C], got shape {x.shape}")
    levels = conv_levels(x.shape[1], x.shape[2]) if num_levels is None else num_levels
    x = activation(nn.Conv(level_channels(channels, 0), (3, 3), dtype=dtype)(x))
    for i in range(levels):
        x = activation(Downsample(level_channels(channels, i + 1), dtype=dtype)(x))
    return x.reshape(x.shape[0], -1)


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
