"""Gaussian mixture / EM checked against scipy.stats densities, numpy loops, sklearn and Monte Carlo.

The jax side runs in float32.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture

from zoo.gmm import GMM, gmm_e_step, gmm_fit, gmm_log_prob, gmm_m_step, gmm_responsibilities, gmm_sample

# the zoo leaves jit to its caller: one compiled EM program per fit, as before
fit = jax.jit(gmm_fit, static_argnames=("num_components", "num_iters", "covariance_type"))
TRUE_MEANS = np.array([[-6.0, 0.0], [6.0, 0.0], [0.0, 8.0]])
TRUE_WEIGHTS = np.array([0.5, 0.3, 0.2])


def _random_params(covariance_type, k=3, d=2, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.5, 1.5, k)
    means = rng.normal(scale=2.0, size=(k, d))
    if covariance_type == "full":
        a = rng.normal(size=(k, d, d))
        covs = a @ a.transpose(0, 2, 1) + 0.5 * np.eye(d)
    else:
        covs = rng.uniform(0.3, 2.0, size=(k, d))
    return GMM(
        weights=jnp.asarray(w / w.sum(), jnp.float32),
        means=jnp.asarray(means, jnp.float32),
        covs=jnp.asarray(covs, jnp.float32),
        covariance_type=covariance_type,
    )


def _dense_covs(p):
    c = np.asarray(p.covs, np.float64)
    return c if p.covariance_type == "full" else np.stack([np.diag(v) for v in c])


def _scipy_joint(p, x):
    """p(x_n, z=k) by a loop over components with scipy.stats.multivariate_normal, float64, [N, K]."""
    covs = _dense_covs(p)
    return np.stack(
        [
            float(p.weights[k]) * multivariate_normal(np.asarray(p.means[k], np.float64), covs[k]).pdf(x)
            for k in range(len(covs))
        ],
        axis=1,
    )


def _clusters(n=600, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.choice(3, size=n, p=TRUE_WEIGHTS)
    return (TRUE_MEANS[z] + rng.normal(size=(n, 2))).astype(np.float32)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_log_prob_and_responsibilities_match_scipy(covariance_type):
    p = _random_params(covariance_type)
    x = np.random.default_rng(1).normal(scale=2.0, size=(25, 2)).astype(np.float32)
    joint = _scipy_joint(p, x.astype(np.float64))
    lp = np.asarray(gmm_log_prob(p, x))
    assert lp.shape == (25,)
    np.testing.assert_allclose(lp, np.log(joint.sum(1)), rtol=1e-5, atol=1e-5)  # float32 rounding
    r = np.asarray(gmm_responsibilities(p, x))
    np.testing.assert_allclose(r.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(r, joint / joint.sum(1, keepdims=True), atol=1e-5)  # Bayes' rule
    r_e, ll = gmm_e_step(p, x)
    np.testing.assert_allclose(np.asarray(r_e), r, atol=1e-6)
    np.testing.assert_allclose(float(ll), np.mean(np.log(joint.sum(1))), rtol=1e-5)


def test_log_prob_far_from_all_components_is_finite():
    p = _random_params("full")
    lp = np.asarray(gmm_log_prob(p, np.full((2, 2), 60.0, np.float32)))  # densities underflow float32
    assert np.all(np.isfinite(lp)) and np.all(lp < -100)
    assert np.all(np.isfinite(np.asarray(gmm_responsibilities(p, np.full((2, 2), 60.0, np.float32)))))


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_m_step_matches_weighted_loops(covariance_type):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 3)).astype(np.float32)
    resp = rng.dirichlet(np.ones(4), size=30).astype(np.float32)
    p = gmm_m_step(x, resp, covariance_type=covariance_type, reg=0.0)
    x64, r64 = x.astype(np.float64), resp.astype(np.float64)
    for k in range(4):
        nk = r64[:, k].sum()
        mu = sum(r64[n, k] * x64[n] for n in range(30)) / nk
        cov = sum(r64[n, k] * np.outer(x64[n] - mu, x64[n] - mu) for n in range(30)) / nk
        np.testing.assert_allclose(float(p.weights[k]), nk / 30, rtol=1e-5)
        np.testing.assert_allclose(np.asarray(p.means[k]), mu, atol=1e-5)
        want = cov if covariance_type == "full" else np.diag(cov)
        np.testing.assert_allclose(np.asarray(p.covs[k]), want, atol=1e-5)
    p_reg = gmm_m_step(x, resp, covariance_type=covariance_type, reg=0.25)
    np.testing.assert_allclose(
        _dense_covs(p_reg) - _dense_covs(p),
        np.broadcast_to(0.25 * np.eye(3), (4, 3, 3)) if covariance_type == "full" else np.stack([0.25 * np.eye(3)] * 4),
        atol=1e-6,
    )


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_em_log_likelihood_never_decreases(covariance_type):
    rng = np.random.default_rng(3)  # overlapping blobs: EM takes many small steps
    x = np.concatenate([rng.normal(size=(80, 2)), rng.normal(size=(80, 2)) * [2.0, 0.5] + [1.5, 1.0]]).astype(
        np.float32
    )
    p, hist = fit(x, 3, key=jax.random.key(0), num_iters=60, covariance_type=covariance_type)
    hist = np.asarray(hist)
    assert hist.shape == (60,) and np.all(np.isfinite(hist))
    drops = hist[:-1] - hist[1:]
    assert np.all(drops <= 1e-4 * np.abs(hist[1:])), drops.max()  # float32: 1e-4 relative
    assert hist[-1] > hist[0]
    # history[-1] is the mean log-likelihood of the returned params (brute force with scipy)
    np.testing.assert_allclose(hist[-1], np.mean(np.log(_scipy_joint(p, x.astype(np.float64)).sum(1))), rtol=1e-5)
    np.testing.assert_allclose(float(jnp.sum(p.weights)), 1.0, atol=1e-6)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_fit_recovers_separated_clusters(covariance_type):
    x = _clusters()
    p, hist = fit(x, 3, key=jax.random.key(1), num_iters=50, covariance_type=covariance_type)
    means = np.asarray(p.means)
    rows, cols = linear_sum_assignment(((means[:, None] - TRUE_MEANS[None]) ** 2).sum(-1))
    # Monte Carlo: each mean is an average of >= ~100 unit-variance points, sd <= 0.1 -> 0.35 is > 3 sd
    np.testing.assert_allclose(means[rows], TRUE_MEANS[cols], atol=0.35)
    np.testing.assert_allclose(np.asarray(p.weights)[rows], TRUE_WEIGHTS[cols], atol=0.07)  # binomial sd <= 0.02
    np.testing.assert_allclose(_dense_covs(p)[rows], np.broadcast_to(np.eye(2), (3, 2, 2)), atol=0.35)
    # same optimum as sklearn's EM (independent implementation), mean log-likelihood per example
    sk = GaussianMixture(3, covariance_type=covariance_type, random_state=0, tol=1e-8, max_iter=500).fit(x)
    np.testing.assert_allclose(hist[-1], sk.score(x), rtol=1e-4)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_samples_match_mixture_moments(covariance_type):
    p = _random_params(covariance_type, seed=4)
    n = 20000
    xs = np.asarray(gmm_sample(p, jax.random.key(2), n), np.float64)
    assert xs.shape == (n, 2)
    w, mu, covs = np.asarray(p.weights, np.float64), np.asarray(p.means, np.float64), _dense_covs(p)
    mean = w @ mu  # E[x] = sum_k w_k mu_k
    second = np.einsum("k,kij->ij", w, covs + np.einsum("ki,kj->kij", mu, mu))
    cov = second - np.outer(mean, mean)  # law of total covariance
    # Monte Carlo tolerance: 5 standard errors of the sample mean / covariance entries
    se_mean = np.sqrt(np.diag(cov) / n)
    np.testing.assert_array_less(np.abs(xs.mean(0) - mean), 5 * se_mean)
    centred = xs - mean
    prods = np.einsum("ni,nj->nij", centred, centred)
    se_cov = prods.std(0) / np.sqrt(n)
    np.testing.assert_array_less(np.abs(np.cov(xs, rowvar=False) - cov), 5 * se_cov + 1e-3)
    # every sample is attributed with the right frequency to each component: E[p(z|x)] = w
    np.testing.assert_allclose(np.asarray(gmm_responsibilities(p, xs.astype(np.float32))).mean(0), w, atol=0.02)


def test_bad_inputs_raise():
    x = _clusters(20)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"num_components must be in 1\.\.N=20"):
        gmm_fit(x, 21, key=key)
    with pytest.raises(ValueError, match="num_components must be in"):
        gmm_fit(x, 0, key=key)
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        gmm_fit(x, 2, key=key, covariance_type="spherical")
    with pytest.raises(ValueError, match="num_iters must be >= 1"):
        gmm_fit(x, 2, key=key, num_iters=0)
    with pytest.raises(ValueError, match="key must be"):
        gmm_fit(x, 2, key=None)
    with pytest.raises(ValueError, match=r"x must have shape \[N, D\]"):
        gmm_fit(x[0], 2, key=key)
    p = _random_params("full")
    with pytest.raises(ValueError, match=r"x must have shape \[N, 2\]"):
        gmm_log_prob(p, np.ones((4, 3)))
    bad = GMM(weights=p.weights, means=p.means, covs=jnp.ones((3, 2)), covariance_type="full")
    with pytest.raises(ValueError, match="inconsistent GMM shapes"):
        gmm_log_prob(bad, x)
    with pytest.raises(ValueError, match="n must be >= 0"):
        gmm_sample(p, key, -1)
    with pytest.raises(ValueError, match=r"resp must have shape \[N=20, K\]"):
        gmm_m_step(x, np.ones((19, 2)))
