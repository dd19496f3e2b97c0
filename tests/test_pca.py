"""SVD / PCA checked against numpy.linalg.svd, Eckart-Young and sklearn.decomposition.PCA (float32 in jax)."""

import jax
import numpy as np
import pytest
from sklearn.decomposition import PCA as SkPCA

from zoo import pca


def _rand(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _decaying(m, n, seed=0, rate=0.5):
    """A = U diag(rate^i) V^T with random orthonormal U, V: known singular values."""
    rng = np.random.default_rng(seed)
    r = min(m, n)
    u, _ = np.linalg.qr(rng.normal(size=(m, r)))
    v, _ = np.linalg.qr(rng.normal(size=(n, r)))
    s = rate ** np.arange(r)
    return (u * s) @ v.T, s


def _align_signs(a, b, axis):
    """Flip the vectors of b (columns if axis=0, rows if axis=1) to best match a."""
    signs = np.sign(np.sum(a * b, axis=axis, keepdims=True))
    return b * signs


@pytest.mark.parametrize("shape", [(12, 7), (7, 12)])
def test_svd_reconstructs(shape):
    a = _rand(shape)
    u, s, vt = pca.svd(a)
    r = min(shape)
    assert u.shape == (shape[0], r) and s.shape == (r,) and vt.shape == (r, shape[1])
    np.testing.assert_allclose(np.asarray(u * s @ vt), a, atol=1e-5)  # float32 rounding
    np.testing.assert_allclose(np.asarray(u.T @ u), np.eye(r), atol=1e-5)
    np.testing.assert_allclose(np.asarray(vt @ vt.T), np.eye(r), atol=1e-5)


def test_svd_matches_numpy_up_to_sign():
    a = _rand((10, 6), seed=1)
    u, s, vt = map(np.asarray, pca.svd(a))
    u_np, s_np, vt_np = np.linalg.svd(a.astype(np.float64), full_matrices=False)
    np.testing.assert_allclose(s, s_np, rtol=1e-5)
    np.testing.assert_allclose(np.abs(np.sum(u * u_np, axis=0)), 1.0, atol=1e-4)  # |<u_i, u_np_i>| = 1
    np.testing.assert_allclose(_align_signs(u_np, u, 0), u_np, atol=1e-4)
    np.testing.assert_allclose(_align_signs(vt_np, vt, 1), vt_np, atol=1e-4)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_eckart_young(k):
    a = _rand((9, 6), seed=2)
    s_np = np.linalg.svd(a.astype(np.float64), compute_uv=False)
    err = np.sum((a.astype(np.float64) - np.asarray(pca.low_rank_approx(a, k), np.float64)) ** 2)
    np.testing.assert_allclose(err, np.sum(s_np[k:] ** 2), rtol=1e-4)
    ak = np.asarray(pca.low_rank_approx(a, k))
    assert np.linalg.matrix_rank(ak, tol=1e-4) == k
    u, s, vt = pca.truncated_svd(a, k)
    assert u.shape == (9, k) and s.shape == (k,) and vt.shape == (k, 6)
    np.testing.assert_allclose(np.asarray(s), s_np[:k], rtol=1e-5)


def test_randomized_svd_matches_exact_on_decaying_spectrum():
    a, s_true = _decaying(60, 40, seed=3)
    a = a.astype(np.float32)
    k = 5
    u, s, vt = map(np.asarray, pca.randomized_svd(a, k, key=jax.random.key(0)))
    np.testing.assert_allclose(s, s_true[:k], rtol=1e-4)
    u_np, _, vt_np = np.linalg.svd(a.astype(np.float64), full_matrices=False)
    np.testing.assert_allclose(_align_signs(u_np[:, :k], u, 0), u_np[:, :k], atol=1e-3)
    np.testing.assert_allclose(_align_signs(vt_np[:k], vt, 1), vt_np[:k], atol=1e-3)
    # rank-k reconstruction error close to the optimum sum_{i>k} s_i^2
    err = np.sum((a - (u * s) @ vt).astype(np.float64) ** 2)
    np.testing.assert_allclose(err, np.sum(s_true[k:] ** 2), rtol=1e-2)


def test_randomized_svd_without_power_iters_still_finds_range_of_low_rank():
    rng = np.random.default_rng(4)
    a = (rng.normal(size=(30, 3)) @ rng.normal(size=(3, 20))).astype(np.float32)  # exactly rank 3
    _, s, _ = pca.randomized_svd(a, 3, key=jax.random.key(1), power_iters=0, oversample=2)
    np.testing.assert_allclose(np.asarray(s), np.linalg.svd(a.astype(np.float64), compute_uv=False)[:3], rtol=1e-4)


def _data(n=50, d=6, seed=5):
    rng = np.random.default_rng(seed)
    scales = np.array([3.0, 2.0, 1.0, 0.5, 0.2, 0.1])[:d]
    return (rng.normal(size=(n, d)) * scales @ np.linalg.qr(rng.normal(size=(d, d)))[0] + 1.5).astype(np.float32)


@pytest.mark.parametrize("method", ["exact", "randomized"])
def test_pca_matches_sklearn(method):
    x = _data()
    k = 3
    p = pca.pca_fit(x, k, method=method, key=jax.random.key(2))
    sk = SkPCA(n_components=k, svd_solver="full").fit(x.astype(np.float64))
    np.testing.assert_allclose(np.asarray(p.mean), sk.mean_, atol=1e-5)
    np.testing.assert_allclose(np.asarray(p.explained_variance), sk.explained_variance_, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(p.explained_variance_ratio), sk.explained_variance_ratio_, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(p.singular_values), sk.singular_values_, rtol=1e-4)
    comps = np.asarray(p.components)
    np.testing.assert_allclose(_align_signs(sk.components_, comps, 1), sk.components_, atol=1e-4)
    z = np.asarray(pca.pca_transform(p, x))
    z_sk = sk.transform(x.astype(np.float64))
    np.testing.assert_allclose(_align_signs(z_sk, z, 0), z_sk, atol=1e-4)
    x_hat = np.asarray(pca.pca_inverse_transform(p, z))
    np.testing.assert_allclose(x_hat, sk.inverse_transform(z_sk), atol=1e-4)


def test_pca_component_signs_are_deterministic():
    p = pca.pca_fit(_data(), 3)
    comps = np.asarray(p.components)
    assert np.all(comps[np.arange(3), np.argmax(np.abs(comps), axis=1)] > 0)


def test_reconstruction_error_is_dropped_variance():
    x = _data()
    n, d = x.shape
    k = 2
    p = pca.pca_fit(x, k)
    err = np.asarray(pca.reconstruction_error(p, x))
    assert err.shape == (n,)
    # brute force per example, float64
    xc = x.astype(np.float64) - x.mean(0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    proj = xc @ vt[:k].T @ vt[:k]
    np.testing.assert_allclose(err, np.mean((xc - proj) ** 2, axis=1), atol=1e-5)
    # Eckart-Young on the centred data: total squared error = sum of dropped s_i^2
    np.testing.assert_allclose(err.sum() * d, np.sum(s[k:] ** 2), rtol=1e-4)
    # all components: exact reconstruction
    assert float(np.max(pca.reconstruction_error(pca.pca_fit(x, d), x))) < 1e-10  # float32 rounding only


def test_pca_is_jittable():
    x = _data()
    p = jax.jit(pca.pca_fit, static_argnums=1)(x, 2)
    np.testing.assert_allclose(
        np.asarray(jax.jit(pca.pca_transform)(p, x)), np.asarray(pca.pca_transform(pca.pca_fit(x, 2), x)), atol=1e-5
    )


@pytest.mark.parametrize("k", [0, 8, -1])
def test_bad_k_raises(k):
    a = _rand((7, 9))  # min(m, n) = 7
    for f in (pca.truncated_svd, pca.low_rank_approx, pca.pca_fit):
        with pytest.raises(ValueError, match=rf"k must be in 1\.\.min\(m, n\)=7, got {k}"):
            f(a, k)
    with pytest.raises(ValueError, match=rf"k must be in 1\.\.min\(m, n\)=7, got {k}"):
        pca.randomized_svd(a, k, key=jax.random.key(0))


def test_other_bad_inputs_raise():
    with pytest.raises(ValueError, match="2-D matrix"):
        pca.svd(np.ones(3))
    with pytest.raises(ValueError, match="k must be an integer"):
        pca.truncated_svd(np.ones((3, 3)), 1.5)
    with pytest.raises(ValueError, match="method must be"):
        pca.pca_fit(_data(), 2, method="svd")
    with pytest.raises(ValueError, match="needs key"):
        pca.pca_fit(_data(), 2, method="randomized")
    with pytest.raises(ValueError, match="last dimension 6"):
        pca.pca_transform(pca.pca_fit(_data(), 2), np.ones((4, 5)))
