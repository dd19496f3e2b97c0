"""Gaussian and Bernoulli log-densities and Gaussian KL divergences: the closed forms the generative models share.

Pure functions of arrays, each jit-, vmap- and grad-able; ``zoo.vae``, ``zoo.gmm``, ``zoo.probability`` and
``zoo.ddpm`` use them. A Gaussian is given by its mean and log variance log_var = log sigma^2 (unconstrained,
as encoders and the DDPM schedule produce it). Plain names work elementwise and broadcast their arguments;
``diag_`` names treat the last axis as the event axis of a Gaussian with diagonal covariance and sum over it.

1. Log-densities: ``normal_log_prob``, ``diag_normal_log_prob``, ``mvn_log_prob`` (full covariance),
   ``bernoulli_log_prob`` (from logits).
2. KL divergences in closed form: ``normal_kl``, ``diag_normal_kl``, ``standard_normal_kl`` (the VAE's KL term).
3. A Gaussian discretised to 256 levels in [-1, 1] (the DDPM decoder's L_0): ``standard_normal_cdf``,
   ``discretized_gaussian_log_likelihood``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

__all__ = [
    "normal_log_prob",
    "diag_normal_log_prob",
    "mvn_log_prob",
    "bernoulli_log_prob",
    "normal_kl",
    "diag_normal_kl",
    "standard_normal_kl",
    "standard_normal_cdf",
    "discretized_gaussian_log_likelihood",
]

_LOG_2PI = math.log(2.0 * math.pi)


def _broadcast_shape(fn: str, event_axis: bool = False, **arrays) -> tuple[int, ...]:
    """The arguments' broadcast shape (static, so this costs nothing under jit), or a ValueError naming them."""
    shapes = {k: jnp.shape(v) for k, v in arrays.items()}
    try:
        shape = jnp.broadcast_shapes(*shapes.values())
    except ValueError:
        shape = None
    if shape is None or (event_axis and len(shape) < 1):
        desc = ", ".join(f"{k} {s}" for k, s in shapes.items())
        need = " with at least one axis (the event axis is the last)" if event_axis else ""
        raise ValueError(f"{fn}: inputs must be broadcast-compatible arrays{need}, got {desc}")
    return shape


# ----------------------------------------------------------------------------- 1. log-densities


def normal_log_prob(x, mean, log_var):
    """log N(x; mean, e^log_var) = -1/2 (log 2pi + log_var + (x - mean)^2 e^-log_var), elementwise."""
    shape = _broadcast_shape("normal_log_prob", x=x, mean=mean, log_var=log_var)
    lp = -0.5 * (_LOG_2PI + log_var + jnp.square(x - mean) * jnp.exp(-log_var))
    return jnp.broadcast_to(lp, shape)


def diag_normal_log_prob(x, mean, log_var):
    """log N(x; mean, diag e^log_var) = sum_d normal_log_prob(x_d, mean_d, log_var_d), summed over the last axis."""
    _broadcast_shape("diag_normal_log_prob", True, x=x, mean=mean, log_var=log_var)
    return jnp.sum(normal_log_prob(x, mean, log_var), axis=-1)


def mvn_log_prob(x, mean, cov):
    """log N(x; mean, C) = -1/2 (D log 2pi + log det C + ||L^-1 (x - mean)||^2), C = L L^T; x [..., D] -> [...]."""
    d = jnp.shape(cov)[-1] if jnp.ndim(cov) else 0
    if jnp.ndim(cov) != 2 or jnp.shape(cov) != (d, d) or jnp.shape(mean) != (d,) or jnp.shape(x)[-1:] != (d,):
        raise ValueError(
            f"mvn_log_prob: need x [..., D], mean [D] and cov [D, D], got x {jnp.shape(x)}, "
            f"mean {jnp.shape(mean)}, cov {jnp.shape(cov)}"
        )
    chol = jnp.linalg.cholesky(cov)
    diff = x - mean
    y = jax.scipy.linalg.solve_triangular(chol, diff.reshape(-1, d).T, lower=True)  # [D, N]
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))
    return -0.5 * (d * _LOG_2PI + log_det + jnp.sum(y**2, axis=0).reshape(diff.shape[:-1]))


def bernoulli_log_prob(x, logits):
    """log Bern(x; sigmoid(l)) = x log sigmoid(l) + (1 - x) log sigmoid(-l) = x l - softplus(l), elementwise."""
    _broadcast_shape("bernoulli_log_prob", x=x, logits=logits)
    return x * logits - jax.nn.softplus(logits)


# ----------------------------------------------------------------------------- 2. KL divergences


def normal_kl(mean1, log_var1, mean2, log_var2):
    """KL(N(m1, v1) || N(m2, v2)) = 1/2 (log v2/v1 + (v1 + (m1 - m2)^2) / v2 - 1), elementwise."""
    shape = _broadcast_shape("normal_kl", mean1=mean1, log_var1=log_var1, mean2=mean2, log_var2=log_var2)
    kl = 0.5 * (
        log_var2 - log_var1 + jnp.exp(log_var1 - log_var2) + jnp.square(mean1 - mean2) * jnp.exp(-log_var2) - 1.0
    )
    return jnp.broadcast_to(kl, shape)


def diag_normal_kl(mean1, log_var1, mean2, log_var2):
    """KL(N(m1, diag v1) || N(m2, diag v2)) = sum_d normal_kl(m1_d, v1_d, m2_d, v2_d), summed over the last axis."""
    _broadcast_shape("diag_normal_kl", True, mean1=mean1, log_var1=log_var1, mean2=mean2, log_var2=log_var2)
    return jnp.sum(normal_kl(mean1, log_var1, mean2, log_var2), axis=-1)


def standard_normal_kl(mean, log_var):
    """KL(N(mean, diag e^log_var) || N(0, I)) = 1/2 sum_d (e^log_var + mean^2 - 1 - log_var), over the last axis."""
    shape = _broadcast_shape("standard_normal_kl", True, mean=mean, log_var=log_var)
    return 0.5 * jnp.sum(jnp.broadcast_to(jnp.exp(log_var) + jnp.square(mean) - 1.0 - log_var, shape), axis=-1)


# ----------------------------------------------------------------------------- 3. discretised Gaussian


def standard_normal_cdf(x):
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2."""
    return 0.5 * (1.0 + jax.scipy.special.erf(x / math.sqrt(2.0)))


def discretized_gaussian_log_likelihood(x, mean, log_scale):
    """log of the N(mean, e^{2 log_scale}) mass of x's bin [x - 1/255, x + 1/255]; edge bins open (DDPM L_0).

    x holds images in [-1, 1] with 256 levels (bin centres -1 + 2k/255); elementwise, masses floored at 1e-12.
    """
    _broadcast_shape("discretized_gaussian_log_likelihood", x=x, mean=mean, log_scale=log_scale)
    centred = x - mean
    inv_std = jnp.exp(-log_scale)
    cdf_plus = standard_normal_cdf(inv_std * (centred + 1.0 / 255.0))
    cdf_minus = standard_normal_cdf(inv_std * (centred - 1.0 / 255.0))
    log_cdf_plus = jnp.log(jnp.maximum(cdf_plus, 1e-12))
    log_one_minus_cdf_minus = jnp.log(jnp.maximum(1.0 - cdf_minus, 1e-12))
    log_delta = jnp.log(jnp.maximum(cdf_plus - cdf_minus, 1e-12))
    return jnp.where(x < -0.999, log_cdf_plus, jnp.where(x > 0.999, log_one_minus_cdf_minus, log_delta))
