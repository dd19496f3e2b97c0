"""Gaussian mixture model fitted by expectation-maximisation.

The simplest discrete latent-variable model:

    z ~ Categorical(weights),   x | z = k ~ N(means_k, covs_k),
    p(x) = sum_k p(z = k) p(x | z = k).

EM alternates two closed-form steps, and each never decreases log p(x):

* E-step: responsibilities r_nk = p(z = k | x_n) by Bayes' rule.
* M-step: maximise sum_n sum_k r_nk log p(x_n, z = k) in closed form:
  N_k = sum_n r_nk, weights_k = N_k / N, means_k = sum_n r_nk x_n / N_k,
  covs_k = sum_n r_nk (x_n - means_k)(x_n - means_k)^T / N_k + reg I.

Covariances are stored as ``covs`` [K, D, D] for ``covariance_type='full'`` or as
the diagonal variances [K, D] for ``covariance_type='diag'``. The whole EM loop is
one ``jax.lax.scan``, so ``gmm_fit`` under ``jax.jit`` compiles to a single program. The Gaussian
log-densities are ``zoo.distributions``' (``mvn_log_prob``, ``diag_normal_log_prob``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from jax.scipy.special import logsumexp

from zoo._checks import as_int
from zoo.distributions import diag_normal_log_prob, mvn_log_prob

__all__ = [
    "COVARIANCE_TYPES",
    "GMM",
    "gmm_log_prob",
    "gmm_responsibilities",
    "gmm_e_step",
    "gmm_m_step",
    "gmm_fit",
    "gmm_sample",
]

COVARIANCE_TYPES = ("full", "diag")


@struct.dataclass
class GMM:
    """Mixture parameters: weights [K], means [K, D], covs [K, D, D] ('full') or variances [K, D] ('diag')."""

    weights: jax.Array
    means: jax.Array
    covs: jax.Array
    covariance_type: str = struct.field(pytree_node=False, default="full")


# ----------------------------------------------------------------------------- the joint


def _joint_log_prob(params: GMM, x: jax.Array) -> jax.Array:
    """log p(x_n, z = k) = log weights_k + log N(x_n | means_k, covs_k), [N, D] -> [N, K]."""
    if params.covariance_type == "full":
        comp = jax.vmap(mvn_log_prob, in_axes=(None, 0, 0), out_axes=1)(x, params.means, params.covs)
    else:  # covs holds the variances [K, D]
        comp = diag_normal_log_prob(x[:, None, :], params.means, jnp.log(params.covs))
    return jnp.log(params.weights) + comp


# ----------------------------------------------------------------------------- validation


def _check_params(params: GMM, fn: str) -> tuple[int, int]:
    if not isinstance(params, GMM):
        raise ValueError(f"{fn}: params must be a GMM, got {type(params).__name__}")
    ct = params.covariance_type
    if ct not in COVARIANCE_TYPES:
        raise ValueError(f"{fn}: covariance_type must be one of {COVARIANCE_TYPES}, got {ct!r}")
    if jnp.ndim(params.means) != 2:
        raise ValueError(f"{fn}: params.means must have shape [K, D], got {jnp.shape(params.means)}")
    k, d = jnp.shape(params.means)
    want = (k, d, d) if ct == "full" else (k, d)
    if jnp.shape(params.weights) != (k,) or jnp.shape(params.covs) != want:
        raise ValueError(
            f"{fn}: inconsistent GMM shapes for covariance_type={ct!r}: expected weights {(k,)}, "
            f"means {(k, d)}, covs {want}; got weights {jnp.shape(params.weights)}, "
            f"covs {jnp.shape(params.covs)}"
        )
    return k, d


def _check_data(x, d: int | None, fn: str) -> jax.Array:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    if x.ndim != 2 or (d is not None and x.shape[1] != d):
        want = f"[N, {d}]" if d is not None else "[N, D]"
        raise ValueError(f"{fn}: x must have shape {want}, got {x.shape}")
    return x


# ----------------------------------------------------------------------------- inference


def gmm_log_prob(params: GMM, x) -> jax.Array:
    """log p(x_n) = logsumexp_k [log weights_k + log N(x_n | means_k, covs_k)], [N, D] -> [N]."""
    _, d = _check_params(params, "gmm_log_prob")
    x = _check_data(x, d, "gmm_log_prob")
    return logsumexp(_joint_log_prob(params, x), axis=1)


def gmm_responsibilities(params: GMM, x) -> jax.Array:
    """Bayes' rule: p(z = k | x_n) = p(x_n, z = k) / sum_j p(x_n, z = j), [N, D] -> [N, K], rows sum to 1."""
    _, d = _check_params(params, "gmm_responsibilities")
    x = _check_data(x, d, "gmm_responsibilities")
    joint = _joint_log_prob(params, x)
    return jnp.exp(joint - logsumexp(joint, axis=1, keepdims=True))


def _e_step(params: GMM, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    joint = _joint_log_prob(params, x)
    log_px = logsumexp(joint, axis=1, keepdims=True)
    return jnp.exp(joint - log_px), jnp.mean(log_px)


def gmm_e_step(params: GMM, x) -> tuple[jax.Array, jax.Array]:
    """E-step: (responsibilities r_nk = p(z = k | x_n) [N, K], mean log-likelihood (1/N) sum_n log p(x_n))."""
    _, d = _check_params(params, "gmm_e_step")
    x = _check_data(x, d, "gmm_e_step")
    return _e_step(params, x)


def _m_step(x: jax.Array, resp: jax.Array, covariance_type: str, reg) -> GMM:
    n, d = x.shape
    nk = jnp.sum(resp, axis=0) + 10 * jnp.finfo(x.dtype).eps  # guards empty components
    weights = nk / n
    means = (resp.T @ x) / nk[:, None]
    diff = x[None, :, :] - means[:, None, :]  # [K, N, D]
    if covariance_type == "full":
        covs = jnp.einsum("nk,kni,knj->kij", resp, diff, diff) / nk[:, None, None]
        covs = 0.5 * (covs + jnp.swapaxes(covs, 1, 2)) + reg * jnp.eye(d, dtype=x.dtype)
    else:
        covs = jnp.einsum("nk,knd->kd", resp, diff**2) / nk[:, None] + reg
    return GMM(weights=weights / jnp.sum(weights), means=means, covs=covs, covariance_type=covariance_type)


def gmm_m_step(x, resp, *, covariance_type: str = "full", reg: float = 1e-6) -> GMM:
    """M-step: weights, means and covariances from the responsibilities resp [N, K].

    N_k = sum_n r_nk, w_k = N_k / N, mu_k = sum_n r_nk x_n / N_k,
    C_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T / N_k + reg I.
    """
    fn = "gmm_m_step"
    x = _check_data(x, None, fn)
    resp = jnp.asarray(resp, x.dtype)
    if resp.ndim != 2 or resp.shape[0] != x.shape[0]:
        raise ValueError(f"{fn}: resp must have shape [N={x.shape[0]}, K], got {resp.shape}")
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"{fn}: covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}")
    if not reg >= 0:
        raise ValueError(f"{fn}: reg must be >= 0, got {reg}")
    return _m_step(x, resp, covariance_type, reg)


# ----------------------------------------------------------------------------- fitting


def gmm_fit(
    x, num_components: int, *, key: jax.Array, num_iters: int = 100, covariance_type: str = "full", reg: float = 1e-6
) -> tuple[GMM, jax.Array]:
    """Fit a K-component GMM to x [N, D] by EM; returns (params, history).

    ``history[t]`` = (1/N) sum_n log p(x_n) after M-step t+1.

    Means are seeded by k-means++ on ``key``; covariances start at the data
    covariance. ``history[-1]`` is the mean log-likelihood of the returned params.
    ``reg`` is added to every covariance diagonal to keep it positive definite. Under jit, num_components,
    num_iters and covariance_type are static.
    """
    fn = "gmm_fit"
    x = _check_data(x, None, fn)
    n = x.shape[0]
    k = as_int(num_components, "num_components", fn)
    if not 1 <= k <= n:
        raise ValueError(f"{fn}: num_components must be in 1..N={n} (number of rows of x), got {k}")
    num_iters = as_int(num_iters, "num_iters", fn, minimum=1)
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"{fn}: covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}")
    if not reg >= 0:
        raise ValueError(f"{fn}: reg must be >= 0, got {reg}")
    if key is None:
        raise ValueError(f"{fn}: key must be a jax.random key, got None")
    reg = jnp.asarray(reg, x.dtype)
    params = _init_params(key, x, k, covariance_type, reg)
    resp, _ = _e_step(params, x)

    def step(carry, _):
        _, resp = carry
        params = _m_step(x, resp, covariance_type, reg)
        resp, loglik = _e_step(params, x)
        return (params, resp), loglik

    (params, _), history = jax.lax.scan(step, (params, resp), None, length=num_iters)
    return params, history


def _kmeanspp_centers(key: jax.Array, x: jax.Array, k: int) -> jax.Array:
    """k-means++ seeding: each new centre is a data point drawn with probability proportional to D(x)^2."""
    n = x.shape[0]
    keys = jax.random.split(key, k)
    first = x[jax.random.randint(keys[0], (), 0, n)]
    centers = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(first)
    d2 = jnp.sum((x - first) ** 2, axis=1)

    def body(i, carry):
        centers, d2 = carry
        logits = jnp.where(jnp.sum(d2) > 0, jnp.log(jnp.maximum(d2, 0.0)), 0.0)
        c = x[jax.random.categorical(keys[i], logits)]
        return centers.at[i].set(c), jnp.minimum(d2, jnp.sum((x - c) ** 2, axis=1))

    centers, _ = jax.lax.fori_loop(1, k, body, (centers, d2))
    return centers


def _init_params(key: jax.Array, x: jax.Array, k: int, covariance_type: str, reg) -> GMM:
    """Means from k-means++ seeding, every covariance the data covariance, uniform weights."""
    n, d = x.shape
    xc = x - jnp.mean(x, axis=0)
    if covariance_type == "full":
        cov = xc.T @ xc / n + reg * jnp.eye(d, dtype=x.dtype)
        covs = jnp.broadcast_to(cov, (k, d, d))
    else:
        covs = jnp.broadcast_to(jnp.mean(xc**2, axis=0) + reg, (k, d))
    return GMM(
        weights=jnp.full((k,), 1.0 / k, x.dtype),
        means=_kmeanspp_centers(key, x, k),
        covs=covs,
        covariance_type=covariance_type,
    )


# ----------------------------------------------------------------------------- sampling


def gmm_sample(params: GMM, key: jax.Array, n: int) -> jax.Array:
    """Ancestral sampling: z ~ Cat(weights), x = means_z + L_z eps; returns [n, D].

    L_z L_z^T = covs_z and eps ~ N(0, I).
    """
    fn = "gmm_sample"
    _, d = _check_params(params, fn)
    n = as_int(n, "n", fn, minimum=0)
    key_z, key_eps = jax.random.split(key)
    z = jax.random.categorical(key_z, jnp.log(params.weights), shape=(n,))
    eps = jax.random.normal(key_eps, (n, d), jnp.result_type(params.means))
    if params.covariance_type == "full":
        chol = jnp.linalg.cholesky(params.covs)[z]  # [n, D, D]
        noise = jnp.einsum("nij,nj->ni", chol, eps)
    else:
        noise = jnp.sqrt(params.covs)[z] * eps
    return params.means[z] + noise
