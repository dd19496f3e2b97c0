"""SVD and PCA: the linear baseline every autoencoder is measured against.

A linear autoencoder with a k-unit bottleneck trained on squared error learns the
same subspace as PCA (Baldi & Hornik 1989), and by Eckart-Young the best rank-k
approximation of a matrix is its truncated SVD. This module builds that baseline
from the SVD up:

1. ``svd``, ``truncated_svd``, ``low_rank_approx``: A = U S V^T and A_k = U_k S_k V_k^T.
2. ``randomized_svd``: the range finder of Halko, Martinsson & Tropp (2011), which
   sketches A with a Gaussian test matrix instead of factorising it whole.
3. PCA: centre the data, keep the top-k right singular vectors as components.

All functions take and return jnp arrays and are jit-able with ``k`` static.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from zoo._checks import as_int

__all__ = [
    "svd",
    "truncated_svd",
    "low_rank_approx",
    "randomized_svd",
    "PCA",
    "pca_fit",
    "pca_transform",
    "pca_inverse_transform",
    "reconstruction_error",
]


# ----------------------------------------------------------------------------- validation


def _check_matrix(a, fn: str, name: str = "a") -> jax.Array:
    a = jnp.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{fn}: {name} must be a 2-D matrix, got shape {a.shape}")
    if not jnp.issubdtype(a.dtype, jnp.floating):
        a = a.astype(jnp.float32)
    return a


def _check_rank(k, m: int, n: int, fn: str) -> int:
    k = as_int(k, "k", fn)
    if not 1 <= k <= min(m, n):
        raise ValueError(f"{fn}: k must be in 1..min(m, n)={min(m, n)}, got {k}")
    return k


def _sign_flip(u: jax.Array, vt: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Deterministic signs: the largest-|.| entry of each row of V^T is made positive (u_i, v_i -> -u_i, -v_i)."""
    idx = jnp.argmax(jnp.abs(vt), axis=1)
    signs = jnp.sign(vt[jnp.arange(vt.shape[0]), idx])
    signs = jnp.where(signs == 0, 1.0, signs).astype(vt.dtype)
    return u * signs[None, :], vt * signs[:, None]


# ----------------------------------------------------------------------------- SVD


def svd(a) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Thin SVD A = U diag(s) V^T with U [m, r], s [r] descending, V^T [r, n], r = min(m, n)."""
    a = _check_matrix(a, "svd")
    return jnp.linalg.svd(a, full_matrices=False)


def truncated_svd(a, k: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Top-k singular triplets: U_k = U[:, :k], s_k = s[:k], V_k^T = V^T[:k]."""
    a = _check_matrix(a, "truncated_svd")
    k = _check_rank(k, *a.shape, "truncated_svd")
    u, s, vt = jnp.linalg.svd(a, full_matrices=False)
    return u[:, :k], s[:k], vt[:k]


def low_rank_approx(a, k: int) -> jax.Array:
    """Best rank-k approximation (Eckart-Young): A_k = U_k diag(s_k) V_k^T, ||A - A_k||_F^2 = sum_{i>k} s_i^2."""
    a = _check_matrix(a, "low_rank_approx")
    k = _check_rank(k, *a.shape, "low_rank_approx")
    u, s, vt = jnp.linalg.svd(a, full_matrices=False)
    return (u[:, :k] * s[:k]) @ vt[:k]


def _orthonormal_basis(y: jax.Array) -> jax.Array:
    """Q with orthonormal columns spanning range(Y): the Q of the thin QR of Y."""
    q, _ = jnp.linalg.qr(y, mode="reduced")
    return q


def randomized_svd(
    a, k: int, *, key: jax.Array, oversample: int = 10, power_iters: int = 2
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Halko et al. (2011): Q = orth((A A^T)^q A Omega), B = Q^T A = U_B S V^T, then U = Q U_B; returns the top k.

    ``Omega`` is an [n, k + oversample] standard Gaussian test matrix (capped at
    min(m, n) columns). Each power iteration re-orthonormalises between the
    products with A^T and A, so the decay of the spectrum is sharpened to
    s_i^(2q+1) without losing precision to rounding.
    """
    fn = "randomized_svd"
    a = _check_matrix(a, fn)
    m, n = a.shape
    k = _check_rank(k, m, n, fn)
    oversample = as_int(oversample, "oversample", fn)
    power_iters = as_int(power_iters, "power_iters", fn)
    if oversample < 0:
        raise ValueError(f"{fn}: oversample must be >= 0, got {oversample}")
    if power_iters < 0:
        raise ValueError(f"{fn}: power_iters must be >= 0, got {power_iters}")
    if key is None:
        raise ValueError(f"{fn}: key must be a jax.random key, got None")
    ell = min(k + oversample, m, n)
    omega = jax.random.normal(key, (n, ell), a.dtype)
    q = _orthonormal_basis(a @ omega)
    for _ in range(power_iters):
        q = _orthonormal_basis(a.T @ q)
        q = _orthonormal_basis(a @ q)
    b = q.T @ a  # [ell, n]
    ub, s, vt = jnp.linalg.svd(b, full_matrices=False)
    u = q @ ub
    return u[:, :k], s[:k], vt[:k]


# ----------------------------------------------------------------------------- PCA


@struct.dataclass
class PCA:
    """Fitted PCA: x ~ mean + z @ components, z = (x - mean) @ components^T.

    mean [D]; components [k, D] (orthonormal rows, the top right singular vectors
    of the centred data); singular_values [k]; explained_variance [k] = s^2 / (N - 1);
    explained_variance_ratio [k] = explained_variance / total variance.
    """

    mean: jax.Array
    components: jax.Array
    singular_values: jax.Array
    explained_variance: jax.Array
    explained_variance_ratio: jax.Array


def pca_fit(x, k: int, *, method: str = "exact", key: jax.Array | None = None) -> PCA:
    """PCA of rows of x [N, D]: X_c = X - mean = U S V^T, components = V_k^T, variances s_k^2 / (N - 1).

    ``method='exact'`` uses the full thin SVD; ``method='randomized'`` uses
    ``randomized_svd`` (needs ``key``). Total variance for the ratio is
    ||X_c||_F^2 / (N - 1), so the ratio is exact for both methods. Component
    signs are fixed so that each component's largest-magnitude entry is positive.
    """
    fn = "pca_fit"
    x = _check_matrix(x, fn, "x")
    n, d = x.shape
    if n < 2:
        raise ValueError(f"{fn}: x needs at least 2 rows (examples) to estimate a variance, got {n}")
    k = _check_rank(k, n, d, fn)
    if method not in ("exact", "randomized"):
        raise ValueError(f"{fn}: method must be 'exact' or 'randomized', got {method!r}")
    mean = jnp.mean(x, axis=0)
    xc = x - mean
    if method == "exact":
        u, s, vt = jnp.linalg.svd(xc, full_matrices=False)
        u, s, vt = u[:, :k], s[:k], vt[:k]
    else:
        if key is None:
            raise ValueError(f"{fn}: method='randomized' needs key=jax.random.key(...), got None")
        u, s, vt = randomized_svd(xc, k, key=key)
    u, vt = _sign_flip(u, vt)
    explained_variance = s**2 / (n - 1)
    total_variance = jnp.sum(xc**2) / (n - 1)
    return PCA(
        mean=mean,
        components=vt,
        singular_values=s,
        explained_variance=explained_variance,
        explained_variance_ratio=explained_variance / total_variance,
    )


def _check_features(p: PCA, x, fn: str, name: str, width: int) -> jax.Array:
    x = jnp.asarray(x)
    if x.ndim < 1 or x.shape[-1] != width:
        raise ValueError(f"{fn}: {name} must have last dimension {width}, got shape {x.shape}")
    return x


def pca_transform(p: PCA, x) -> jax.Array:
    """Project onto the components: z = (x - mean) @ components^T, [..., D] -> [..., k]."""
    x = _check_features(p, x, "pca_transform", "x", p.components.shape[1])
    return (x - p.mean) @ p.components.T


def pca_inverse_transform(p: PCA, z) -> jax.Array:
    """Map codes back to data space: x_hat = z @ components + mean, [..., k] -> [..., D]."""
    z = _check_features(p, z, "pca_inverse_transform", "z", p.components.shape[0])
    return z @ p.components + p.mean


def reconstruction_error(p: PCA, x) -> jax.Array:
    """Per-example mean squared error: mean_d (x - x_hat)_d^2 with x_hat = inverse(transform(x)), [..., D] -> [...]."""
    x = _check_features(p, x, "reconstruction_error", "x", p.components.shape[1])
    x_hat = pca_inverse_transform(p, pca_transform(p, x))
    return jnp.mean((x - x_hat) ** 2, axis=-1)
