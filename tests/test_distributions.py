"""zoo.distributions against independent computations: scipy.stats densities and cdfs, closed forms in numpy
float64, quadrature and Monte Carlo. jax computes in float32, so exact-formula checks use float32-level
tolerances (stated per check); Monte Carlo checks allow 5 standard errors. Every draw is seeded."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats

from zoo import distributions as dist


def f32(*arrays):
    return [jnp.asarray(a, jnp.float32) for a in arrays]


# ----------------------------------------------------------------------------- 1. log-densities


def test_normal_log_prob_matches_scipy_and_broadcasts():
    rng = np.random.default_rng(0)
    x, mean, log_var = rng.normal(size=(3, 4, 2)), rng.normal(size=(3, 4, 2)), rng.normal(size=(3, 4, 2))
    want = scipy.stats.norm.logpdf(x, mean, np.exp(0.5 * log_var))
    np.testing.assert_allclose(dist.normal_log_prob(*f32(x, mean, log_var)), want, rtol=1e-5, atol=1e-6)  # float32
    # a scalar log variance and a mean per last-axis entry broadcast to x's shape
    got = dist.normal_log_prob(*f32(x, mean[0, 0]), -1.3)
    assert got.shape == x.shape
    np.testing.assert_allclose(got, scipy.stats.norm.logpdf(x, mean[0, 0], math.exp(-0.65)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="normal_log_prob: .*broadcast"):
        dist.normal_log_prob(jnp.zeros((3, 4)), jnp.zeros((3, 5)), 0.0)


def test_diag_normal_log_prob_is_scipys_multivariate_normal_and_differentiable():
    rng = np.random.default_rng(1)
    x, mean, log_var = rng.normal(size=(5, 3)), rng.normal(size=3), rng.uniform(-1, 1, 3)
    want = scipy.stats.multivariate_normal(mean, np.diag(np.exp(log_var))).logpdf(x)
    got = dist.diag_normal_log_prob(*f32(x, mean, log_var))
    assert got.shape == (5,)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)  # float32
    # jit / vmap / grad: d/d mean = (x - mean) / v
    d_mean = jax.vmap(jax.grad(dist.diag_normal_log_prob, argnums=1), in_axes=(0, None, None))
    g = jax.jit(d_mean)(*f32(x, mean, log_var))
    np.testing.assert_allclose(g, (x - mean) / np.exp(log_var), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="at least one axis"):
        dist.diag_normal_log_prob(0.0, 0.0, 0.0)


def test_mvn_log_prob_matches_scipy_with_leading_axes():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(4, 4))
    cov, mean = a @ a.T + 0.5 * np.eye(4), rng.normal(size=4)
    x = rng.normal(size=(2, 3, 4))
    got = dist.mvn_log_prob(*f32(x, mean, cov))
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got, scipy.stats.multivariate_normal(mean, cov).logpdf(x), rtol=1e-4, atol=1e-4)
    # a diagonal covariance is diag_normal_log_prob's Gaussian
    var = rng.uniform(0.5, 2.0, 4)
    np.testing.assert_allclose(
        dist.mvn_log_prob(*f32(x, mean, np.diag(var))),
        dist.diag_normal_log_prob(*f32(x, mean, np.log(var))),
        rtol=1e-5,
        atol=1e-5,
    )
    with pytest.raises(ValueError, match=r"mvn_log_prob: need x \[..., D\]"):
        dist.mvn_log_prob(jnp.zeros((2, 3)), jnp.zeros(4), jnp.eye(4))


def test_bernoulli_log_prob_matches_scipy_and_is_stable():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 2, size=(3, 8, 8, 1)).astype(np.float64)
    logits = rng.normal(scale=2.0, size=x.shape)
    want = scipy.stats.bernoulli.logpmf(x, scipy.special.expit(logits))
    np.testing.assert_allclose(dist.bernoulli_log_prob(*f32(x, logits)), want, rtol=1e-5, atol=1e-6)  # float32
    # fractional targets (grey pixels): x log s(l) + (1 - x) log s(-l); |l| = 100 stays finite (no log of 0)
    x, logits = np.array([0.0, 0.3, 1.0, 0.0, 1.0]), np.array([-1.2, 0.7, 2.5, 100.0, -100.0])
    want = x * scipy.special.log_expit(logits) + (1 - x) * scipy.special.log_expit(-logits)
    np.testing.assert_allclose(dist.bernoulli_log_prob(*f32(x, logits)), want, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- 2. KL divergences


def test_normal_kl_matches_closed_form_quadrature_and_monte_carlo():
    rng = np.random.default_rng(6)
    m1, m2 = rng.normal(size=4), rng.normal(size=4)
    lv1, lv2 = rng.normal(scale=0.5, size=4), rng.normal(scale=0.5, size=4)
    kl = np.asarray(dist.normal_kl(*f32(m1, lv1, m2, lv2)), np.float64)
    s1, s2 = np.exp(0.5 * lv1), np.exp(0.5 * lv2)
    closed = np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
    np.testing.assert_allclose(kl, closed, rtol=1e-5, atol=1e-6)  # float32: 1e-5 relative
    n = 400_000
    for i in range(4):
        p, q = scipy.stats.norm(m1[i], s1[i]), scipy.stats.norm(m2[i], s2[i])
        quad, _ = scipy.integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), -np.inf, np.inf)
        np.testing.assert_allclose(kl[i], quad, rtol=1e-5, atol=1e-6)  # quadrature is ~1e-10 accurate
        x = p.rvs(size=n, random_state=rng)
        lr = p.logpdf(x) - q.logpdf(x)
        assert abs(lr.mean() - kl[i]) < 5 * lr.std() / math.sqrt(n)  # 5 Monte Carlo standard errors
    np.testing.assert_allclose(dist.normal_kl(0.3, 0.2, 0.3, 0.2), 0.0, atol=1e-7)
    assert dist.normal_kl(jnp.zeros((2, 3)), 0.0, 0.0, 0.0).shape == (2, 3)  # broadcast like the arguments


def test_diag_normal_kl_matches_numerical_integral():
    rng = np.random.default_rng(1)
    mu_q, lv_q = rng.normal(size=(4, 3)), rng.uniform(-1.5, 1.5, (4, 3))
    mu_p, lv_p = rng.normal(size=(4, 3)), rng.uniform(-1.5, 1.5, (4, 3))
    kl = np.asarray(dist.diag_normal_kl(*f32(mu_q, lv_q, mu_p, lv_p)))
    assert kl.shape == (4,)
    ref = np.zeros(4)
    for b in range(4):
        for d in range(3):  # a diagonal Gaussian factorises, so KL is the sum of 1-d integrals
            q = scipy.stats.norm(mu_q[b, d], np.exp(0.5 * lv_q[b, d]))
            p = scipy.stats.norm(mu_p[b, d], np.exp(0.5 * lv_p[b, d]))
            ref[b] += scipy.integrate.quad(lambda t: q.pdf(t) * (q.logpdf(t) - p.logpdf(t)), -np.inf, np.inf)[0]
    np.testing.assert_allclose(kl, ref, rtol=1e-5, atol=1e-6)
    # jit / vmap / grad: d KL / d mu_q = (mu_q - mu_p) / v_p
    f = jax.jit(jax.vmap(jax.grad(dist.diag_normal_kl)))
    np.testing.assert_allclose(
        np.asarray(f(*f32(mu_q, lv_q, mu_p, lv_p))), (mu_q - mu_p) / np.exp(lv_p), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match="diag_normal_kl: .*broadcast"):
        dist.diag_normal_kl(np.zeros(3), np.zeros(3), np.zeros(2), np.zeros(2))


def test_standard_normal_kl_matches_monte_carlo_and_the_general_kl():
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(4, 3))
    log_var = rng.normal(scale=0.7, size=(4, 3))
    kl = np.asarray(dist.standard_normal_kl(*f32(mu, log_var)))
    assert kl.shape == (4,)
    n = 200_000
    for b in range(4):
        sd = np.exp(0.5 * log_var[b])
        z = mu[b] + sd * rng.normal(size=(n, 3))
        log_ratio = (scipy.stats.norm.logpdf(z, mu[b], sd) - scipy.stats.norm.logpdf(z)).sum(-1)
        se = log_ratio.std() / math.sqrt(n)
        # tolerance: 5 Monte Carlo standard errors (~1e-2 here)
        assert abs(kl[b] - log_ratio.mean()) < 5 * se, (b, kl[b], log_ratio.mean(), se)
    np.testing.assert_allclose(kl, dist.diag_normal_kl(*f32(mu, log_var), 0.0, 0.0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dist.standard_normal_kl(jnp.zeros((2, 5)), jnp.zeros((2, 5))), 0.0, atol=1e-7)


# ----------------------------------------------------------------------------- 3. discretised Gaussian


def test_standard_normal_cdf_matches_scipy():
    x = np.linspace(-6, 6, 97)
    np.testing.assert_allclose(dist.standard_normal_cdf(*f32(x)), scipy.stats.norm.cdf(x), rtol=1e-5, atol=1e-7)


BIN_CENTRES = -1 + 2 * np.arange(256) / 255  # the 256 pixel levels in [-1, 1]


@pytest.mark.parametrize("mean", [-0.9, 0.0, 0.37, 1.0])
@pytest.mark.parametrize("scale", [0.003, 0.05, 0.5])
def test_discretized_gaussian_bins_sum_to_one_and_match_scipy(mean, scale):
    x = f32(BIN_CENTRES)[0]
    ll = dist.discretized_gaussian_log_likelihood(x, jnp.full_like(x, mean), jnp.full_like(x, math.log(scale)))
    mass = np.exp(np.asarray(ll, np.float64))
    # 256 float32 cdf differences that telescope to 1: tolerance 1e-4
    assert abs(mass.sum() - 1.0) < 1e-4, mass.sum()
    cdf = lambda v: scipy.stats.norm.cdf(v, loc=mean, scale=scale)
    upper = np.where(np.arange(256) == 255, 1.0, cdf(BIN_CENTRES + 1 / 255))  # last bin open to +inf
    lower = np.where(np.arange(256) == 0, 0.0, cdf(BIN_CENTRES - 1 / 255))  # first bin open to -inf
    expected = upper - lower
    # float32 erf-based cdf: 2e-6 per bin, plus the float32 rounding of x (6e-8) magnified by 1/scale;
    # masses below ~1e-8 are lost to float32 cancellation and read as the 1e-12 floor
    np.testing.assert_allclose(mass, np.maximum(expected, 1e-12), atol=2e-6 + 1e-7 / scale)


# ----------------------------------------------------------------------------- all of them


CALLS = {
    "normal_log_prob": (dist.normal_log_prob, 3),
    "diag_normal_log_prob": (dist.diag_normal_log_prob, 3),
    "bernoulli_log_prob": (dist.bernoulli_log_prob, 2),
    "normal_kl": (dist.normal_kl, 4),
    "diag_normal_kl": (dist.diag_normal_kl, 4),
    "standard_normal_kl": (dist.standard_normal_kl, 2),
    "standard_normal_cdf": (dist.standard_normal_cdf, 1),
    "discretized_gaussian_log_likelihood": (dist.discretized_gaussian_log_likelihood, 3),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_jit_vmap_and_grad_agree_with_eager(name):
    fn, arity = CALLS[name]
    args = f32(*np.random.default_rng(7).uniform(-0.9, 0.9, (arity, 4, 3)))
    eager = fn(*args)
    # float32 rounding: XLA fuses a jitted program differently from op-by-op eager (jax 0.11's fusion of the
    # discretised Gaussian's log-CDF differs by 2.6e-6 relative), so agreement is to a few float32 ulps.
    np.testing.assert_allclose(jax.jit(fn)(*args), eager, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(jax.vmap(fn)(*args), eager, rtol=1e-5, atol=1e-7)
    grads = jax.grad(lambda *a: jnp.sum(fn(*a)), argnums=tuple(range(arity)))(*args)
    assert all(bool(jnp.isfinite(g).all()) for g in grads)
    assert set(CALLS) | {"mvn_log_prob"} == set(dist.__all__)
