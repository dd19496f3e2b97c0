"""Variational autoencoder (Kingma & Welling 2014), beta-VAE, IWAE bound and conditional VAE.

Latent-variable model (lecture): p(x) = int p(z) p(x|z) dz with p(z) = N(0, I).
An encoder gives q(z|x) = N(mu(x), diag sigma^2(x)); the ELBO

    log p(x) >= E_q[log p(x|z)] - KL[q(z|x) || N(0, I)]

is maximised with the reparameterisation z = mu + sigma * eps, eps ~ N(0, I).
The lecture writes the loss as ``C ||x - x_hat||^2 + KL[N(mu, sigma) || N(0, I)]``
(``lecture_loss``), which is -ELBO for a Gaussian decoder of variance 1/(2C) up to
the constant D/2 log(pi/C).

Images are NHWC floats.  likelihood='bernoulli': pixels in [0, 1], the decoder
returns logits; likelihood='gaussian': any real pixels (the project uses [0, 1]),
the decoder returns the mean and the observation variance exp(obs_log_var) is a
fixed hyper-parameter.

The loss functions take ``(params, apply)`` rather than a network so they work
with every model following this protocol (``VAE(...).apply`` does):

    apply(params, x, method='encode'[, labels=...]) -> (mu, log_var)   # [B, L] each
    apply(params, z, method='decode'[, labels=...]) -> decoder output  # [B, *x.shape[1:]]

``labels`` is passed only when it is not None (conditional models). The densities and the
closed-form KL are ``zoo.distributions``', summed here per example.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from zoo.autoencoder import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder
from zoo.distributions import bernoulli_log_prob, normal_log_prob, standard_normal_kl

__all__ = [
    "LIKELIHOODS",
    "LOSSES",
    "ARCHS",
    "reparameterize",
    "log_likelihood",
    "likelihood_mean",
    "lecture_loss",
    "vae_loss",
    "elbo",
    "iwae_bound",
    "sample",
    "VAE",
]

LIKELIHOODS = ("bernoulli", "gaussian")
LOSSES = ("elbo", "lecture")
ARCHS = ("mlp", "conv")


# ----------------------------------------------------------------------------
# Math on arrays.
# ----------------------------------------------------------------------------


def _per_example_sum(a: jax.Array) -> jax.Array:
    return jnp.sum(a.reshape(a.shape[0], -1), axis=-1)


def _check_batched(fn: str, name: str, a) -> None:
    if jnp.ndim(a) < 2:
        raise ValueError(f"{fn}: {name} must be batched with shape [B, ...] (ndim >= 2), got shape {jnp.shape(a)}")


def _normal(key, shape, dtype):
    # Drawn flat and reshaped: with jax_threefry_partitionable (the default) XLA:CPU compiles
    # N-d random draws far more slowly than 1-d ones (seconds for 4-d shapes).
    return jax.random.normal(key, (math.prod(shape),), dtype).reshape(shape)


def reparameterize(key: jax.Array, mu: jax.Array, log_var: jax.Array) -> jax.Array:
    """z = mu + exp(log_var / 2) * eps, eps ~ N(0, I): a differentiable sample of N(mu, diag sigma^2)."""
    if jnp.shape(mu) != jnp.shape(log_var):
        raise ValueError(
            f"reparameterize: mu and log_var must have the same shape, got {jnp.shape(mu)} and {jnp.shape(log_var)}"
        )
    eps = _normal(key, jnp.shape(mu), jnp.result_type(mu))
    return mu + jnp.exp(0.5 * log_var) * eps


def _kl(fn: str, mu: jax.Array, log_var: jax.Array) -> jax.Array:
    """KL[N(mu, diag sigma^2) || N(0, I)] per example [B] (zoo.distributions.standard_normal_kl)."""
    _check_batched(fn, "mu", mu)
    if jnp.shape(mu) != jnp.shape(log_var):
        raise ValueError(f"{fn}: mu and log_var must have the same shape, got {jnp.shape(mu)} and {jnp.shape(log_var)}")
    return standard_normal_kl(mu.reshape(mu.shape[0], -1), log_var.reshape(mu.shape[0], -1))


def _check_likelihood(fn: str, likelihood: str) -> None:
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"{fn}: likelihood={likelihood!r} not supported; accepted: {LIKELIHOODS}")


def log_likelihood(x: jax.Array, out: jax.Array, likelihood: str, obs_log_var: float = 0.0) -> jax.Array:
    """log p(x|z) from the decoder output: Bernoulli(logits=out) or N(out, exp(obs_log_var) I), per example [B]."""
    _check_likelihood("log_likelihood", likelihood)
    _check_batched("log_likelihood", "x", x)
    if jnp.shape(x) != jnp.shape(out):
        raise ValueError(
            f"log_likelihood: x and decoder output must have the same shape, got {jnp.shape(x)} and {jnp.shape(out)}"
        )
    if likelihood == "bernoulli":
        return _per_example_sum(bernoulli_log_prob(x, out))
    return _per_example_sum(normal_log_prob(x, out, obs_log_var))


def likelihood_mean(out: jax.Array, likelihood: str) -> jax.Array:
    """E[x|z] = x_hat: sigmoid(logits) in [0, 1] for 'bernoulli', the output itself for 'gaussian'."""
    _check_likelihood("likelihood_mean", likelihood)
    return jax.nn.sigmoid(out) if likelihood == "bernoulli" else out


def lecture_loss(x: jax.Array, x_hat: jax.Array, mu: jax.Array, log_var: jax.Array, C: float = 1.0) -> jax.Array:
    """The lecture's VAE loss C ||x - x_hat||^2 + KL[N(mu, sigma) || N(0, I)], per example [B]."""
    _check_batched("lecture_loss", "x", x)
    if jnp.shape(x) != jnp.shape(x_hat):
        raise ValueError(
            f"lecture_loss: x and x_hat must have the same shape, got {jnp.shape(x)} and {jnp.shape(x_hat)}"
        )
    _check_positive("lecture_loss", "C", C)
    kl = _kl("lecture_loss", mu, log_var)
    return C * _per_example_sum(jnp.square(x - x_hat)) + kl


def _check_positive(fn: str, name: str, value, allow_zero: bool = False) -> None:
    if isinstance(value, (int, float, np.number)):  # traced values (schedules) are not checked
        if not (value >= 0 if allow_zero else value > 0) or not math.isfinite(value):
            bound = ">= 0" if allow_zero else "> 0"
            raise ValueError(f"{fn}: {name}={value!r} must be finite and {bound}")


# ----------------------------------------------------------------------------
# Bounds and losses over a model given as (params, apply).
# ----------------------------------------------------------------------------


def _encode(params, apply, x, labels):
    kw = {} if labels is None else {"labels": labels}
    return apply(params, x, method="encode", **kw)


def _decode(params, apply, z, labels):
    kw = {} if labels is None else {"labels": labels}
    return apply(params, z, method="decode", **kw)


def vae_loss(
    params,
    apply: Callable,
    x: jax.Array,
    key: jax.Array,
    *,
    likelihood: str,
    loss: str = "elbo",
    beta: float = 1.0,
    C: float = 1.0,
    labels: jax.Array | None = None,
    obs_log_var: float = 0.0,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """One-sample VAE loss per example [B] and its terms {'recon', 'kl', 'elbo'} (each [B]).

    loss='elbo':    -log p(x|z) + beta KL       (beta = 1: the negative ELBO; beta != 1: beta-VAE)
    loss='lecture': C ||x - x_hat||^2 + beta KL (the lecture's formula; x_hat = E[x|z])
    'recon' is the first term as it enters the loss; 'elbo' is always log p(x|z) - KL (beta = 1).
    """
    _check_likelihood("vae_loss", likelihood)
    if loss not in LOSSES:
        raise ValueError(f"vae_loss: loss={loss!r} not supported; accepted: {LOSSES}")
    _check_positive("vae_loss", "beta", beta, allow_zero=True)
    _check_positive("vae_loss", "C", C)
    _check_batched("vae_loss", "x", x)
    mu, log_var = _encode(params, apply, x, labels)
    z = reparameterize(key, mu, log_var)
    out = _decode(params, apply, z, labels)
    ll = log_likelihood(x, out, likelihood, obs_log_var)
    kl = _kl("vae_loss", mu, log_var)
    if loss == "elbo":
        recon = -ll
    else:
        recon = C * _per_example_sum(jnp.square(x - likelihood_mean(out, likelihood)))
    return recon + beta * kl, {"recon": recon, "kl": kl, "elbo": ll - kl}


def elbo(
    params,
    apply: Callable,
    x: jax.Array,
    key: jax.Array,
    *,
    likelihood: str,
    beta: float = 1.0,
    labels: jax.Array | None = None,
    obs_log_var: float = 0.0,
) -> jax.Array:
    """One-sample ELBO log p(x|z) - beta KL[q(z|x) || N(0, I)], z ~ q(z|x), per example [B] (beta=1: <= log p(x))."""
    neg, _ = vae_loss(
        params, apply, x, key, likelihood=likelihood, loss="elbo", beta=beta, labels=labels, obs_log_var=obs_log_var
    )
    return -neg


def iwae_bound(
    params,
    apply: Callable,
    x: jax.Array,
    key: jax.Array,
    k: int,
    *,
    likelihood: str,
    labels: jax.Array | None = None,
    obs_log_var: float = 0.0,
) -> jax.Array:
    """IWAE bound logsumexp_i log w_i - log k, w_i = p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x), per example [B].

    Equals the ELBO in expectation for k = 1, never decreases with k, and tends to log p(x).
    All k decoder passes run as one batch of k*B.
    """
    _check_likelihood("iwae_bound", likelihood)
    if not (isinstance(k, (int, np.integer)) and k >= 1):
        raise ValueError(f"iwae_bound: k={k!r} must be a positive int")
    _check_batched("iwae_bound", "x", x)
    k, b = int(k), x.shape[0]
    mu, log_var = _encode(params, apply, x, labels)
    eps = _normal(key, (k,) + mu.shape, mu.dtype)
    z = (mu + jnp.exp(0.5 * log_var) * eps).reshape((k * b,) + mu.shape[1:])
    tile = lambda a: jnp.broadcast_to(a, (k,) + a.shape).reshape((k * b,) + a.shape[1:])
    out = _decode(params, apply, z, None if labels is None else tile(labels))
    log_px_z = log_likelihood(tile(x), out, likelihood, obs_log_var)
    log_pz = _per_example_sum(normal_log_prob(z, 0.0, 0.0))
    log_qz = _per_example_sum(normal_log_prob(z, tile(mu), tile(log_var)))
    log_w = (log_px_z + log_pz - log_qz).reshape(k, b)
    return logsumexp(log_w, axis=0) - math.log(k)


def sample(
    params,
    apply: Callable,
    key: jax.Array,
    n: int,
    latent_dim: int,
    *,
    likelihood: str,
    labels: jax.Array | None = None,
) -> jax.Array:
    """Generate n images x_hat = E[x|z], z ~ N(0, I) (in [0, 1] for 'bernoulli'); labels [n] for a CVAE."""
    _check_likelihood("sample", likelihood)
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ValueError(f"sample: n={n!r} must be a positive int")
    z = jax.random.normal(key, (int(n), int(latent_dim)))
    return likelihood_mean(_decode(params, apply, z, labels), likelihood)


# ----------------------------------------------------------------------------
# Networks.
# ----------------------------------------------------------------------------


class VAE(nn.Module):
    """Gaussian encoder x -> (mu, log_var), decoder z -> logits ('bernoulli') or mean ('gaussian').

    arch='mlp' (any image_shape, flattened) or 'conv' (image_shape = (H, W, C); see zoo.autoencoder's
    conv_levels).  num_classes > 0 makes a conditional VAE: one-hot labels are concatenated to the
    encoder's input features (MLP: to the flattened image; conv: as num_classes constant channels)
    and to z.  __call__(x, key=None, labels=None) -> (out, mu, log_var), with z = mu when key is None.
    ``dtype`` (e.g. bfloat16) is the networks' compute dtype; parameters, (mu, log_var) and the decoder
    output stay float32, so the losses are computed in float32.
    """

    image_shape: Sequence[int]
    latent_dim: int = 16
    arch: str = "mlp"
    likelihood: str = "bernoulli"
    hidden: Sequence[int] = (256, 128)
    channels: Sequence[int] = (32, 64, 128)
    num_classes: int = 0
    dtype: jnp.dtype | None = None

    def setup(self):
        _check_likelihood("VAE", self.likelihood)
        if self.arch not in ARCHS:
            raise ValueError(f"VAE: arch={self.arch!r} not supported; accepted: {ARCHS}")
        if self.latent_dim < 1 or self.num_classes < 0:
            raise ValueError(
                f"VAE: need latent_dim >= 1 and num_classes >= 0, got {self.latent_dim}, {self.num_classes}"
            )
        if self.arch == "mlp":
            self.encoder = MLPEncoder(2 * self.latent_dim, hidden=self.hidden, dtype=self.dtype)
            self.decoder = MLPDecoder(tuple(self.image_shape), hidden=tuple(reversed(self.hidden)), dtype=self.dtype)
        else:
            self.encoder = ConvEncoder(2 * self.latent_dim, channels=self.channels, dtype=self.dtype)
            self.decoder = ConvDecoder(tuple(self.image_shape), channels=self.channels, dtype=self.dtype)

    def _one_hot(self, labels, batch: int):
        if self.num_classes == 0:
            if labels is not None:
                raise ValueError("VAE: labels given but num_classes=0 (unconditional model)")
            return None
        if labels is None:
            raise ValueError(f"VAE: num_classes={self.num_classes} (conditional) needs labels of shape [{batch}]")
        if jnp.shape(labels) != (batch,):
            raise ValueError(f"VAE: labels must have shape [{batch}], got {jnp.shape(labels)}")
        return jax.nn.one_hot(labels, self.num_classes, dtype=jnp.float32)

    def encode(self, x, labels=None):
        _check_batched("VAE", "x", x)
        y = self._one_hot(labels, x.shape[0])
        if y is not None:
            if self.arch == "mlp":
                x = jnp.concatenate([x.reshape(x.shape[0], -1), y], axis=-1)
            else:
                maps = jnp.broadcast_to(y[:, None, None, :], x.shape[:3] + (self.num_classes,))
                x = jnp.concatenate([x, maps], axis=-1)
        mu, log_var = jnp.split(self.encoder(x), 2, axis=-1)
        return mu, log_var

    def decode(self, z, labels=None):
        y = self._one_hot(labels, z.shape[0])
        if y is not None:
            z = jnp.concatenate([z, y], axis=-1)
        return self.decoder(z)

    def __call__(self, x, key=None, labels=None):
        mu, log_var = self.encode(x, labels)
        z = mu if key is None else reparameterize(key, mu, log_var)
        return self.decode(z, labels), mu, log_var
