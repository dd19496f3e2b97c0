"""Sample-quality figures computed in a feature space.

Given features of real and generated samples (from any fixed embedding network):

1. Frechet distance (FID when the features are Inception's; Heusel et al. 2017):
   fit a Gaussian to each set and compute the 2-Wasserstein distance between them,
       d^2 = ||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1^{1/2} C2 C1^{1/2})^{1/2}).
   The symmetric form C1^{1/2} C2 C1^{1/2} is PSD, so both square roots are taken
   with ``eigh`` on symmetric matrices (no complex parts, unlike sqrtm(C1 C2)).
   Everything runs in the dtype given: float32 unless ``jax_enable_x64`` is set
   and float64 inputs are passed. Rounding can leave a tiny negative value when
   the true distance is 0; it is not clipped.
2. k-NN precision and recall (Kynkaanniemi et al. 2019): the real manifold is the
   union of balls around each real feature with radius its distance to its k-th
   nearest real neighbour; precision is the fraction of fake features inside it,
   recall the fraction of real features inside the fake manifold built the same way.

Nothing here is jitted inside: ``jax.jit`` is the caller's (static: ``precision_recall``'s k and batch_size).
"""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp

__all__ = ["sqrtm_psd", "gaussian_stats", "frechet_distance", "precision_recall"]


# ----------------------------------------------------------------------------- validation


def _check_float(a, fn: str, name: str) -> jax.Array:
    a = jnp.asarray(a)
    if not jnp.issubdtype(a.dtype, jnp.floating):
        a = a.astype(jnp.float32)
    return a


def _check_square(a, fn: str, name: str) -> jax.Array:
    a = _check_float(a, fn, name)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"{fn}: {name} must be a square matrix [..., D, D], got shape {a.shape}")
    return a


def _check_features(x, fn: str, name: str) -> jax.Array:
    x = _check_float(x, fn, name)
    if x.ndim != 2:
        raise ValueError(f"{fn}: {name} must have shape [N, D], got {x.shape}")
    return x


# ----------------------------------------------------------------------------- Gaussian statistics


def sqrtm_psd(a) -> jax.Array:
    """Principal square root of a symmetric PSD matrix: A = V diag(w) V^T -> V diag(sqrt(max(w, 0))) V^T."""
    a = _check_square(a, "sqrtm_psd", "a")
    return _sqrtm_psd(a)


def _sqrtm_psd(a: jax.Array) -> jax.Array:
    w, v = jnp.linalg.eigh(0.5 * (a + jnp.swapaxes(a, -1, -2)))
    return (v * jnp.sqrt(jnp.maximum(w, 0.0))[..., None, :]) @ jnp.swapaxes(v, -1, -2)


def gaussian_stats(features) -> tuple[jax.Array, jax.Array]:
    """Sample mean mu = (1/N) sum_n f_n and unbiased covariance C = sum_n (f_n - mu)(f_n - mu)^T / (N - 1)."""
    f = _check_features(features, "gaussian_stats", "features")
    n = f.shape[0]
    if n < 2:
        raise ValueError(f"gaussian_stats: features needs at least 2 rows to estimate a covariance, got {n}")
    mu = jnp.mean(f, axis=0)
    fc = f - mu
    return mu, fc.T @ fc / (n - 1)


def frechet_distance(mu1, cov1, mu2, cov2) -> jax.Array:
    """Squared Frechet (2-Wasserstein) distance of two Gaussians N(mu1, C1) and N(mu2, C2).

    ||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1^{1/2} C2 C1^{1/2})^{1/2}).
    """
    fn = "frechet_distance"
    mu1, mu2 = _check_float(mu1, fn, "mu1"), _check_float(mu2, fn, "mu2")
    cov1, cov2 = _check_square(cov1, fn, "cov1"), _check_square(cov2, fn, "cov2")
    if mu1.ndim != 1:
        raise ValueError(f"{fn}: mu1 must be a vector [D], got shape {mu1.shape}")
    d = mu1.shape[0]
    for name, arr, want in (("mu2", mu2, (d,)), ("cov1", cov1, (d, d)), ("cov2", cov2, (d, d))):
        if arr.shape != want:
            raise ValueError(f"{fn}: {name} must have shape {want} to match mu1 [D={d}], got {arr.shape}")
    s1 = _sqrtm_psd(cov1)
    m = s1 @ cov2 @ s1
    w = jnp.linalg.eigvalsh(0.5 * (m + m.T))
    tr_covmean = jnp.sum(jnp.sqrt(jnp.maximum(w, 0.0)))  # Tr (C1^{1/2} C2 C1^{1/2})^{1/2}
    diff = mu1 - mu2
    return diff @ diff + jnp.trace(cov1) + jnp.trace(cov2) - 2.0 * tr_covmean


# ----------------------------------------------------------------------------- k-NN precision / recall


def precision_recall(real_feats, fake_feats, k: int = 3, *, batch_size: int = 256) -> tuple[jax.Array, jax.Array]:
    """k-NN manifold precision and recall (Kynkaanniemi et al. 2019).

    precision = mean_fake 1[fake in real manifold], recall = mean_real 1[real in fake manifold].

    Pairwise distances are computed ``batch_size`` query rows at a time, so
    memory is O(batch_size * N) rather than O(N^2). Under jit, k and batch_size are static.
    """
    fn = "precision_recall"
    real = _check_features(real_feats, fn, "real_feats")
    fake = _check_features(fake_feats, fn, "fake_feats")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"{fn}: real_feats and fake_feats must have the same feature size, got {real.shape[1]} and {fake.shape[1]}"
        )
    try:
        k = operator.index(k)
        batch_size = operator.index(batch_size)
    except TypeError:
        raise ValueError(f"{fn}: k and batch_size must be integers, got k={k!r}, batch_size={batch_size!r}") from None
    n_min = min(real.shape[0], fake.shape[0])
    if not 1 <= k <= n_min - 1:
        raise ValueError(f"{fn}: k must be in 1..min(N_real, N_fake) - 1={n_min - 1}, got {k}")
    if batch_size < 1:
        raise ValueError(f"{fn}: batch_size must be >= 1, got {batch_size}")
    dtype = jnp.promote_types(real.dtype, fake.dtype)
    real, fake = real.astype(dtype), fake.astype(dtype)
    real_r2 = _knn_radii_sq(real, k, batch_size)
    fake_r2 = _knn_radii_sq(fake, k, batch_size)
    return _coverage(fake, real, real_r2, batch_size), _coverage(real, fake, fake_r2, batch_size)


def _sq_dists(q: jax.Array, refs: jax.Array) -> jax.Array:
    """||q - r||^2 = ||q||^2 + ||r||^2 - 2 q.r, clipped at 0; q [D], refs [M, D] -> [M]."""
    return jnp.maximum(q @ q + jnp.sum(refs**2, axis=1) - 2.0 * refs @ q, 0.0)


def _knn_radii_sq(feats: jax.Array, k: int, batch_size: int) -> jax.Array:
    """Squared distance from each row to its k-th nearest other row (the row itself excluded), [N, D] -> [N]."""

    def radius(args):
        i, q = args
        d2 = _sq_dists(q, feats).at[i].set(jnp.inf)
        return -jax.lax.top_k(-d2, k)[0][-1]

    return jax.lax.map(radius, (jnp.arange(feats.shape[0]), feats), batch_size=batch_size)


def _coverage(queries: jax.Array, refs: jax.Array, radii_sq: jax.Array, batch_size: int) -> jax.Array:
    """Fraction of queries inside the union of balls: mean_q 1[exists j: ||q - r_j||^2 <= radius_j^2]."""
    inside = jax.lax.map(lambda q: jnp.any(_sq_dists(q, refs) <= radii_sq), queries, batch_size=batch_size)
    return jnp.mean(inside.astype(queries.dtype))
