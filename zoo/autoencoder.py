"""Autoencoders: an encoder h = f(x), a decoder r = g(h), trained on L(x, g(f(x))).

Lecture (seed-lecture, part 0): the code h is a compressed representation of x;
after training, decoding codes h drawn from a simple density fitted to the
training codes generates new data.  A *linear* autoencoder trained with squared
error spans the same subspace as the top-k principal components (PCA).

Images are NHWC float arrays.  With ``kind='bce'`` (Bernoulli likelihood) pixels
must lie in [0, 1]; ``kind='mse'`` accepts any real values (the project uses
[0, 1]).  Decoders return *unconstrained* outputs: logits for 'bce' (apply
``reconstruction_mean`` / ``jax.nn.sigmoid`` to get an image), the
reconstruction itself for 'mse'.

Conv nets halve the spatial size with stride-2 convs while both sides stay even
and the result is at least 4 pixels (``conv_levels``): 8x8 -> 4x4 (1 level),
28x28 -> 14 -> 7 (2 levels), 32x32 -> 16 -> 8 -> 4 (3 levels).  The decoder
inverts exactly the same schedule with Upsample (resize + conv), so no padding
or cropping is ever needed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from zoo.distributions import bernoulli_log_prob
from zoo.layers import MLP, Upsample, conv_levels, conv_trunk, decoder_base, level_channels

__all__ = [
    "LOSS_KINDS",
    "DENSITY_KINDS",
    "mse_loss",
    "bernoulli_loss",
    "reconstruction_loss",
    "reconstruction_mean",
    "CodeDensity",
    "fit_code_density",
    "sample_codes",
    "conv_levels",
    "MLPEncoder",
    "MLPDecoder",
    "ConvEncoder",
    "ConvDecoder",
    "Autoencoder",
]

LOSS_KINDS = ("mse", "bce")
DENSITY_KINDS = ("gaussian", "gmm")


# ----------------------------------------------------------------------------
# Math: reconstruction losses L(x, r), per example.
# ----------------------------------------------------------------------------


def _check_pair(name: str, x, y, yname: str) -> None:
    if jnp.ndim(x) < 2:
        raise ValueError(f"{name}: x must be batched with shape [B, ...] (ndim >= 2), got shape {jnp.shape(x)}")
    if jnp.shape(x) != jnp.shape(y):
        raise ValueError(f"{name}: x and {yname} must have the same shape, got {jnp.shape(x)} and {jnp.shape(y)}")


def _sum_per_example(a: jax.Array) -> jax.Array:
    return jnp.sum(a.reshape(a.shape[0], -1), axis=-1)


def mse_loss(x: jax.Array, r: jax.Array) -> jax.Array:
    """Squared error L(x, r) = ||x - r||^2, summed over all non-batch axes -> [B]."""
    _check_pair("mse_loss", x, r, "r")
    return _sum_per_example(jnp.square(x - r))


def bernoulli_loss(x: jax.Array, logits: jax.Array) -> jax.Array:
    """Bernoulli NLL -sum[x log s(l) + (1-x) log(1-s(l))] = sum[softplus(l) - x l], x in [0, 1] -> [B]."""
    _check_pair("bernoulli_loss", x, logits, "logits")
    return -_sum_per_example(bernoulli_log_prob(x, logits))


def reconstruction_loss(x: jax.Array, out: jax.Array, kind: str = "mse") -> jax.Array:
    """L(x, g(f(x))): 'mse' -> ||x - out||^2, 'bce' -> Bernoulli NLL with out = logits; shape [B]."""
    if kind == "mse":
        return mse_loss(x, out)
    if kind == "bce":
        return bernoulli_loss(x, out)
    raise ValueError(f"reconstruction_loss: kind={kind!r} not supported; accepted: {LOSS_KINDS}")


def reconstruction_mean(out: jax.Array, kind: str = "mse") -> jax.Array:
    """Decoder output -> reconstructed image: sigmoid(logits) for 'bce' (in [0, 1]), identity for 'mse'."""
    if kind == "mse":
        return out
    if kind == "bce":
        return jax.nn.sigmoid(out)
    raise ValueError(f"reconstruction_mean: kind={kind!r} not supported; accepted: {LOSS_KINDS}")


# ----------------------------------------------------------------------------
# Generation: a simple density over codes, fitted to the training codes.
# ----------------------------------------------------------------------------


@struct.dataclass
class CodeDensity:
    """A density over codes: kind 'gaussian' (params: mean [D], cov [D, D]) or 'gmm' (zoo.gmm params)."""

    params: Any
    kind: str = struct.field(pytree_node=False, default="gaussian")


def fit_code_density(
    codes: jax.Array,
    kind: str = "gaussian",
    *,
    key: jax.Array | None = None,
    num_components: int = 10,
    ridge: float = 1e-6,
) -> CodeDensity:
    """Fit p(h) to training codes [N, D]: 'gaussian' = N(mean, cov + ridge I) (MLE), 'gmm' = zoo.gmm EM."""
    codes = jnp.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"fit_code_density: codes must have shape [N, D], got {codes.shape}")
    if kind == "gaussian":
        if codes.shape[0] < 2:
            raise ValueError(f"fit_code_density: need at least 2 codes for a Gaussian, got N={codes.shape[0]}")
        mean = jnp.mean(codes, axis=0)
        centred = codes - mean
        cov = centred.T @ centred / codes.shape[0] + ridge * jnp.eye(codes.shape[1], dtype=codes.dtype)
        return CodeDensity(params={"mean": mean, "cov": cov}, kind="gaussian")
    if kind == "gmm":
        if key is None:
            raise ValueError("fit_code_density: kind='gmm' needs key=jax.random.key(...) for EM initialisation")
        if not (isinstance(num_components, (int, np.integer)) and 1 <= num_components <= codes.shape[0]):
            raise ValueError(
                f"fit_code_density: num_components={num_components!r} must be an int in [1, N={codes.shape[0]}]"
            )
        from zoo.gmm import gmm_fit  # sibling zoo module; imported lazily so 'gaussian' needs nothing else

        fit = jax.jit(gmm_fit, static_argnames=("num_components", "num_iters", "covariance_type"))  # one EM program
        params, _ = fit(codes, int(num_components), key=key)
        return CodeDensity(params=params, kind="gmm")
    raise ValueError(f"fit_code_density: kind={kind!r} not supported; accepted: {DENSITY_KINDS}")


def sample_codes(density: CodeDensity, key: jax.Array, n: int) -> jax.Array:
    """Draw n codes h ~ p(h) from a fitted CodeDensity -> [n, D] (feed them to Autoencoder.decode)."""
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ValueError(f"sample_codes: n={n!r} must be a positive int")
    if density.kind == "gaussian":
        mean, cov = density.params["mean"], density.params["cov"]
        chol = jnp.linalg.cholesky(cov)
        eps = jax.random.normal(key, (int(n), mean.shape[0]), mean.dtype)
        return mean + eps @ chol.T
    if density.kind == "gmm":
        from zoo.gmm import gmm_sample

        return gmm_sample(density.params, key, int(n))
    raise ValueError(f"sample_codes: density.kind={density.kind!r} not supported; accepted: {DENSITY_KINDS}")


# ----------------------------------------------------------------------------
# Networks.
# ----------------------------------------------------------------------------


class MLPEncoder(nn.Module):
    """Flatten x [B, ...] -> MLP(hidden..., features) -> code [B, features].

    ``linear=True`` drops the hidden layers and activations: h = W x + b (the PCA link).
    """

    features: int
    hidden: Sequence[int] = (256, 128)
    linear: bool = False
    activation: Callable = nn.relu
    dtype: jnp.dtype | None = None  # compute dtype (e.g. bfloat16); parameters and the output stay float32

    @nn.compact
    def __call__(self, x):
        if x.ndim < 2:
            raise ValueError(f"MLPEncoder: x must be batched with shape [B, ...] (ndim >= 2), got shape {x.shape}")
        x = x.reshape(x.shape[0], -1)
        if self.linear:
            h = nn.Dense(self.features, dtype=self.dtype)(x)
        else:
            h = MLP(tuple(self.hidden) + (self.features,), activation=self.activation, dtype=self.dtype)(x)
        return h.astype(jnp.float32)


class MLPDecoder(nn.Module):
    """Code [B, D] -> MLP(hidden..., prod(output_shape)) -> [B, *output_shape], unconstrained (logits for 'bce').

    ``linear=True``: r = W h + b, no hidden layers.
    """

    output_shape: Sequence[int]
    hidden: Sequence[int] = (128, 256)
    linear: bool = False
    activation: Callable = nn.relu
    dtype: jnp.dtype | None = None  # compute dtype; parameters and the output stay float32

    @nn.compact
    def __call__(self, h):
        size = int(np.prod(self.output_shape))
        if self.linear:
            r = nn.Dense(size, dtype=self.dtype)(h)
        else:
            r = MLP(tuple(self.hidden) + (size,), activation=self.activation, dtype=self.dtype)(h)
        return r.reshape((h.shape[0],) + tuple(self.output_shape)).astype(jnp.float32)


class ConvEncoder(nn.Module):
    """Image [B, H, W, C] -> conv, conv_levels(H, W) stride-2 Downsample blocks -> flatten -> Dense(features).

    Resolution level i (i halvings) has channels[min(i, len(channels) - 1)]; ``num_levels`` overrides the schedule.
    """

    features: int
    channels: Sequence[int] = (32, 64, 128)
    num_levels: int | None = None
    activation: Callable = nn.relu
    dtype: jnp.dtype | None = None  # compute dtype; parameters and the output stay float32

    @nn.compact
    def __call__(self, x):
        x = conv_trunk("ConvEncoder", x, self.channels, self.num_levels, self.activation, self.dtype)
        return nn.Dense(self.features, dtype=self.dtype)(x).astype(jnp.float32)


class ConvDecoder(nn.Module):
    """Code [B, D] -> Dense to a (H/2^n, W/2^n) map -> n Upsample (resize + conv) blocks -> 3x3 conv to C.

    Mirrors ConvEncoder (n = conv_levels(H, W) unless ``num_levels``); returns [B, H, W, C] unconstrained.
    """

    image_shape: Sequence[int]
    channels: Sequence[int] = (32, 64, 128)
    num_levels: int | None = None
    activation: Callable = nn.relu
    dtype: jnp.dtype | None = None  # compute dtype; parameters and the output stay float32

    @nn.compact
    def __call__(self, h):
        levels, (bh, bw, ch), c = decoder_base("ConvDecoder", self.image_shape, self.channels, self.num_levels)
        x = self.activation(nn.Dense(bh * bw * ch, dtype=self.dtype)(h)).reshape(h.shape[0], bh, bw, ch)
        for i in reversed(range(levels)):
            x = self.activation(Upsample(level_channels(self.channels, i), dtype=self.dtype)(x))
        return nn.Conv(c, (3, 3), dtype=self.dtype)(x).astype(jnp.float32)


class Autoencoder(nn.Module):
    """h = f(x) = encoder(x), r = g(h) = decoder(h); __call__ returns (code, reconstruction output)."""

    encoder: nn.Module
    decoder: nn.Module

    def encode(self, x):
        return self.encoder(x)

    def decode(self, h):
        return self.decoder(h)

    def __call__(self, x):
        h = self.encode(x)
        return h, self.decode(h)
