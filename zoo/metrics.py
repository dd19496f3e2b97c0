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
3. Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))) of a classifier's predictions on the
   samples, p(y) their mean, on consecutive splits of the sample (mean and std over the splits), as the original
   code and torch-fidelity compute it (torch-fidelity shuffles the rows first; pass them shuffled for that).
4. Kernel Inception Distance (Binkowski et al. 2018): the unbiased estimate of the squared MMD between the two
   feature distributions with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets
   of equal size of each set (mean and std over the subsets), as torch-fidelity and clean-fid compute it.

Nothing here is jitted inside: ``jax.jit`` is the caller's (static: ``precision_recall``'s k and batch_size,
``inception_score``'s num_splits, ``kernel_inception_distance``'s num_subsets and subset_size).
"""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp

from zoo._checks import as_int

__all__ = [
    "sqrtm_psd",
    "gaussian_stats",
    "frechet_distance",
    "precision_recall",
    "inception_score",
    "polynomial_mmd2",
    "kernel_inception_distance",
]


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


def _check_feature_pair(a, b, fn: str, names=("real_feats", "fake_feats")) -> tuple[jax.Array, jax.Array]:
    """Features a [N, D] and b [M, D] (arguments `names` of fn), both in their promoted float dtype."""
    real, fake = _check_features(a, fn, names[0]), _check_features(b, fn, names[1])
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"{fn}: {names[0]} and {names[1]} must have the same feature size, got {real.shape[1]} and {fake.shape[1]}"
        )
    dtype = jnp.promote_types(real.dtype, fake.dtype)
    return real.astype(dtype), fake.astype(dtype)


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
    real, fake = _check_feature_pair(real_feats, fake_feats, fn)
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


# ----------------------------------------------------------------------------- Inception Score


def inception_score(logits_or_probs, num_splits: int = 10, *, from_logits: bool = True) -> tuple[jax.Array, jax.Array]:
    """IS = exp(mean_x sum_y p(y|x) (log p(y|x) - log p(y))), p(y) = mean_x p(y|x), on each split; (mean, std).

    Rows [N, K] are logits (softmax taken; from_logits) or probabilities (rows summing to 1); split i holds rows
    i N // num_splits up to (i + 1) N // num_splits, as in Salimans et al.'s code; the std is over the splits
    (ddof 0). Terms with p(y|x) = 0 count 0.
    """
    fn = "inception_score"
    x = _check_features(logits_or_probs, fn, "logits_or_probs")
    num_splits = as_int(num_splits, "num_splits", fn, minimum=1)
    n = x.shape[0]
    if num_splits > n:
        raise ValueError(f"{fn}: num_splits must be at most the number of rows N={n}, got {num_splits}")
    if from_logits:
        log_p = jax.nn.log_softmax(x, axis=-1)
        p = jnp.exp(log_p)
    else:
        p = x
        log_p = jnp.log(jnp.where(p > 0, p, 1.0))
    scores = []
    for i in range(num_splits):
        lo, hi = i * n // num_splits, (i + 1) * n // num_splits
        p_i, log_p_i = p[lo:hi], log_p[lo:hi]
        log_marginal = jnp.log(jnp.maximum(jnp.mean(p_i, axis=0), jnp.finfo(p.dtype).tiny))
        kl = jnp.sum(jnp.where(p_i > 0, p_i * (log_p_i - log_marginal), 0.0), axis=-1)
        scores.append(jnp.exp(jnp.mean(kl)))
    scores = jnp.stack(scores)
    return jnp.mean(scores), jnp.std(scores)


# ----------------------------------------------------------------------------- Kernel Inception Distance


def polynomial_mmd2(x, y) -> jax.Array:
    """Unbiased MMD^2, k(a, b) = (a.b / d + 1)^3: sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) /
    (n(n-1)) - 2 sum_{i,j} k(x_i, y_j) / (m n)."""
    x, y = _check_feature_pair(x, y, "polynomial_mmd2", ("x", "y"))
    if min(x.shape[0], y.shape[0]) < 2:
        raise ValueError(f"polynomial_mmd2: x and y need at least 2 rows each, got {x.shape[0]} and {y.shape[0]}")
    return _polynomial_mmd2(x, y)


def _polynomial_mmd2(x: jax.Array, y: jax.Array) -> jax.Array:
    m, n, d = x.shape[0], y.shape[0], x.shape[1]
    kernel = lambda a, b: (a @ b.T / d + 1.0) ** 3
    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    within_x = (jnp.sum(k_xx) - jnp.trace(k_xx)) / (m * (m - 1))
    within_y = (jnp.sum(k_yy) - jnp.trace(k_yy)) / (n * (n - 1))
    return within_x + within_y - 2.0 * jnp.sum(k_xy) / (m * n)


def kernel_inception_distance(
    real_feats, fake_feats, num_subsets: int = 100, subset_size: int = 1000, *, key
) -> tuple[jax.Array, jax.Array]:
    """KID: mean and std (ddof 0) over subsets s of polynomial_mmd2(real[I_s], fake[J_s]), |I_s| = |J_s| = m.

    m = min(subset_size, N_real, N_fake) (clean-fid's rule; torch-fidelity refuses fewer rows than subset_size);
    I_s, J_s are drawn without replacement by jax.random.choice with the two keys of
    jax.random.split(jax.random.fold_in(key, s)), real first. Under jit, num_subsets and subset_size are static.
    """
    fn = "kernel_inception_distance"
    real, fake = _check_feature_pair(real_feats, fake_feats, fn)
    num_subsets = as_int(num_subsets, "num_subsets", fn, minimum=1)
    subset_size = as_int(subset_size, "subset_size", fn, minimum=2)
    n_real, n_fake = real.shape[0], fake.shape[0]
    if min(n_real, n_fake) < 2:
        raise ValueError(f"{fn}: real_feats and fake_feats need at least 2 rows each, got {n_real} and {n_fake}")
    m = min(subset_size, n_real, n_fake)

    def subset_mmd2(s):
        k_real, k_fake = jax.random.split(jax.random.fold_in(key, s))
        i = jax.random.choice(k_real, n_real, (m,), replace=False)
        j = jax.random.choice(k_fake, n_fake, (m,), replace=False)
        return _polynomial_mmd2(real[i], fake[j])

    mmd2 = jax.lax.map(subset_mmd2, jnp.arange(num_subsets))
    return jnp.mean(mmd2), jnp.std(mmd2)
