"""Tests for zoo/vae.py: reparameterisation gradients, ELBO/IWAE on a model with known
log p(x) (linear Gaussian), the lecture loss, and the VAE / CVAE networks."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.stats

from zoo import vae
from zoo.distributions import standard_normal_kl

# --------------------------------------------------------------------------- math


def test_reparameterize_moments_and_gradients():
    mu = jnp.array([[0.7, -1.2, 0.0]])
    log_var = jnp.array([[0.3, -0.5, 0.0]])
    key = jax.random.key(0)
    n = 100_000
    z = vae.reparameterize(key, jnp.broadcast_to(mu, (n, 3)), jnp.broadcast_to(log_var, (n, 3)))
    np.testing.assert_allclose(z.mean(0), mu[0], atol=0.02)  # ~5 std errors
    np.testing.assert_allclose(z.var(0), jnp.exp(log_var[0]), rtol=0.03)

    def second_moment(mu, log_var):  # MC estimate of sum_j E[z_j^2] = sum_j (mu_j^2 + sigma_j^2)
        z = vae.reparameterize(key, jnp.broadcast_to(mu, (n, 3)), jnp.broadcast_to(log_var, (n, 3)))
        return jnp.mean(jnp.sum(z**2, -1))

    g_mu, g_lv = jax.grad(second_moment, argnums=(0, 1))(mu, log_var)
    # exact: d/dmu = 2 mu, d/dlog_var = sigma^2; MC tolerance 0.03 absolute (~5 std errors)
    np.testing.assert_allclose(g_mu, 2 * mu, atol=0.03)
    np.testing.assert_allclose(g_lv, jnp.exp(log_var), atol=0.03)
    assert float(jnp.abs(g_mu).sum()) > 0.5


def test_lecture_loss_and_its_gaussian_elbo_link():
    rng = np.random.default_rng(3)
    x, x_hat = rng.uniform(size=(4, 5)), rng.uniform(size=(4, 5))
    mu, lv = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    kl = 0.5 * (np.exp(lv) + mu**2 - 1 - lv).sum(-1)
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    got = vae.lecture_loss(f32(x), f32(x_hat), f32(mu), f32(lv), C=2.5)
    np.testing.assert_allclose(got, 2.5 * ((x - x_hat) ** 2).sum(-1) + kl, rtol=1e-5)
    # C ||x - x_hat||^2 = -log N(x; x_hat, I / (2C)) - D/2 log(pi / C)
    c = 2.5
    nll = -scipy.stats.norm.logpdf(x, x_hat, math.sqrt(1 / (2 * c))).sum(-1)
    np.testing.assert_allclose(got, nll - 5 / 2 * math.log(math.pi / c) + kl, rtol=1e-5)
    with pytest.raises(ValueError, match="C=0"):
        vae.lecture_loss(f32(x), f32(x_hat), f32(mu), f32(lv), C=0)


# ------------------------------------------------- bounds on a model with known log p(x)


class LinearGaussian(nn.Module):
    """p(z) = N(0, I), p(x|z) = N(W z + b, s2 I); q(z|x) = N(a * posterior mean, c * posterior var).

    W has orthogonal columns, so the true posterior is a diagonal Gaussian: a = c = 1 makes q exact.
    """

    w: np.ndarray
    b: np.ndarray
    s2: float
    a: float = 1.0
    c: float = 1.0

    def posterior(self, x):
        prec = 1.0 + np.sum(self.w**2, 0) / self.s2  # diagonal of I + W^T W / s2
        mean = ((x - self.b) @ self.w / self.s2) / prec
        return mean, jnp.broadcast_to(1.0 / prec, mean.shape)

    def encode(self, x):
        mean, var = self.posterior(x)
        return self.a * mean, jnp.log(self.c * var)

    def decode(self, z):
        return z @ self.w.T + self.b


def _linear_gaussian(a=1.0, c=1.0, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(6, 2)))
    w = (q * np.array([2.0, 1.0])).astype(np.float32)
    b = rng.normal(size=6).astype(np.float32)
    s2 = 0.3
    model = LinearGaussian(w, b, s2, a, c)
    z = rng.normal(size=(16, 2))
    x = (z @ w.T + b + math.sqrt(s2) * rng.normal(size=(16, 6))).astype(np.float32)
    log_px = scipy.stats.multivariate_normal(b, w @ w.T + s2 * np.eye(6)).logpdf(x)  # exact marginal
    return model, jnp.asarray(x), log_px, math.log(s2)


def test_iwae_with_exact_posterior_equals_log_marginal():
    model, x, log_px, obs_lv = _linear_gaussian()
    for k in (1, 7):
        got = jax.jit(
            lambda key: vae.iwae_bound({}, model.apply, x, key, k, likelihood="gaussian", obs_log_var=obs_lv)
        )(jax.random.key(k))
        np.testing.assert_allclose(got, log_px, rtol=1e-4, atol=1e-4)  # zero-variance weights: exact


def test_elbo_matches_closed_form_and_bounds_order():
    model, x, log_px, obs_lv = _linear_gaussian(a=0.6, c=3.0)
    mu, log_var = model.apply({}, x, method="encode")
    mu, var = np.asarray(mu, np.float64), np.exp(np.asarray(log_var, np.float64))
    w, b, s2 = np.asarray(model.w, np.float64), np.asarray(model.b, np.float64), model.s2
    resid = np.asarray(x, np.float64) - mu @ w.T - b
    e_log_lik = -0.5 * (6 * math.log(2 * math.pi * s2) + ((resid**2).sum(-1) + (var * (w**2).sum(0)).sum(-1)) / s2)
    elbo_exact = e_log_lik - 0.5 * (var + mu**2 - 1 - np.log(var)).sum(-1)

    keys = jax.random.split(jax.random.key(0), 400)

    @jax.jit
    def estimates(keys):
        elbo = jax.vmap(lambda k: vae.elbo({}, model.apply, x, k, likelihood="gaussian", obs_log_var=obs_lv))(keys)
        iwae = {
            k: jax.vmap(
                lambda key: vae.iwae_bound({}, model.apply, x, key, k, likelihood="gaussian", obs_log_var=obs_lv)
            )(keys)
            for k in (1, 5, 50)
        }
        return elbo, iwae

    elbo_mc, iwae_all = estimates(keys)
    # mean of 400 one-sample estimates; tolerance 5 standard errors per example
    se = np.asarray(elbo_mc.std(0)) / math.sqrt(400)
    assert np.all(np.abs(np.asarray(elbo_mc.mean(0)) - elbo_exact) < 5 * se + 1e-4)
    assert np.all(elbo_exact < log_px - 0.1)  # q is wrong, so the gap KL[q || p(z|x)] is visible
    # IWAE k=1 is the ELBO in expectation (MC KL instead of closed form): 5 standard errors
    iw1 = iwae_all[1]
    se1 = np.asarray(iw1.std(0)) / math.sqrt(400)
    assert np.all(np.abs(np.asarray(iw1.mean(0)) - elbo_exact) < 5 * se1 + 1e-4)
    iwae = {k: v.mean(0) for k, v in iwae_all.items()}
    m = {k: float(v.mean()) for k, v in iwae.items()}
    assert m[1] + 0.05 < m[5] < m[50] - 0.01, m
    assert m[50] <= float(log_px.mean()) + 1e-3
    assert float(log_px.mean()) - m[50] < 0.5 * (float(log_px.mean()) - m[1])  # k=50 closes most of the gap


# --------------------------------------------------------------------------- networks


@pytest.mark.parametrize(
    "arch,shape,nc",
    [
        ("mlp", (8, 8, 1), 0),
        ("conv", (8, 8, 1), 0),
        ("conv", (28, 28, 1), 10),
        ("conv", (32, 32, 3), 0),
        ("mlp", (28, 28, 1), 10),
    ],
)
def test_vae_shapes(arch, shape, nc):
    model = vae.VAE(shape, latent_dim=3, arch=arch, hidden=(16,), channels=(4, 8), num_classes=nc)
    x = jnp.zeros((2,) + shape)
    labels = jnp.array([1, 7]) if nc else None
    params = jax.eval_shape(model.init, jax.random.key(0), x, None, labels)  # shapes only, no compile
    out, mu, lv = jax.eval_shape(model.apply, params, x, jax.random.key(1), labels)
    assert out.shape == (2,) + shape and mu.shape == lv.shape == (2, 3)
    loss, terms = jax.eval_shape(
        lambda p, x: vae.vae_loss(p, model.apply, x, jax.random.key(2), likelihood="bernoulli", labels=labels),
        params,
        x,
    )
    assert loss.shape == (2,) and all(t.shape == (2,) for t in terms.values())


def _tiny_vae(**kw):
    model = vae.VAE((8, 8, 1), latent_dim=2, hidden=(32,), **kw)
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(8, 8, 8, 1)) > 0.6, jnp.float32)
    labels = jnp.arange(8) % 3 if kw.get("num_classes") else None
    params = jax.jit(lambda x, labels: model.init(jax.random.key(1), x, None, labels))(x, labels)
    return model, params, x, labels


def test_vae_loss_terms_beta_and_lecture():
    model, params, x, _ = _tiny_vae(likelihood="gaussian")
    key = jax.random.key(5)
    loss, t = vae.vae_loss(params, model.apply, x, key, likelihood="gaussian", obs_log_var=-1.0)
    mu, lv = model.apply(params, x, method="encode")
    out = model.apply(params, vae.reparameterize(key, mu, lv), method="decode")
    ll = scipy.stats.norm.logpdf(np.asarray(x), np.asarray(out), math.exp(-0.5)).reshape(8, -1).sum(-1)
    kl = np.asarray(standard_normal_kl(mu, lv))
    np.testing.assert_allclose(t["recon"], -ll, rtol=1e-4)
    np.testing.assert_allclose(t["elbo"], ll - kl, rtol=1e-4)
    np.testing.assert_allclose(loss, -ll + kl, rtol=1e-4)
    loss_b, _ = vae.vae_loss(params, model.apply, x, key, likelihood="gaussian", beta=4.0, obs_log_var=-1.0)
    np.testing.assert_allclose(loss_b, -ll + 4.0 * kl, rtol=1e-4)
    loss_l, t_l = vae.vae_loss(params, model.apply, x, key, likelihood="gaussian", loss="lecture", C=3.0)
    np.testing.assert_allclose(loss_l, vae.lecture_loss(x, out, mu, lv, C=3.0), rtol=1e-5)
    np.testing.assert_allclose(t_l["recon"], 3.0 * np.sum((np.asarray(x) - np.asarray(out)) ** 2, (1, 2, 3)), rtol=1e-4)
    for kw, msg in [
        ({"loss": "mse"}, "loss='mse'"),
        ({"beta": -1.0}, "beta=-1.0"),
        ({"likelihood": "poisson"}, "poisson"),
    ]:
        with pytest.raises(ValueError, match=msg):
            vae.vae_loss(params, model.apply, x, key, **{"likelihood": "gaussian", **kw})


def test_iwae_increases_with_k_on_untrained_vae():
    model, params, x, _ = _tiny_vae()
    keys = jax.random.split(jax.random.key(3), 20)

    @jax.jit
    def bounds(params):
        iw = [
            jax.vmap(lambda key: vae.iwae_bound(params, model.apply, x, key, k, likelihood="bernoulli"))(keys).mean()
            for k in (1, 5, 50)
        ]
        elbo = jax.vmap(lambda key: vae.elbo(params, model.apply, x, key, likelihood="bernoulli"))(keys).mean()
        return elbo, iw

    elbo, (b1, b5, b50) = bounds(params)
    elbo, b1, b5, b50 = float(elbo), float(b1), float(b5), float(b50)
    # averaged over 8 examples x 20 seeds; the increments are >> their MC error (~0.05 nats)
    assert elbo - 0.5 < b1 < b5 - 0.1 < b50 - 0.2, (elbo, b1, b5, b50)
    assert b50 >= elbo


def test_conditional_vae_uses_labels_and_trains():
    model, params, x, labels = _tiny_vae(num_classes=3)
    z = jnp.zeros((3, 2))
    outs = model.apply(params, z, labels=jnp.arange(3), method="decode")
    assert float(jnp.abs(outs[0] - outs[1]).max()) > 1e-4  # the label changes the decoding of z
    mu0, _ = model.apply(params, x, labels=labels, method="encode")
    mu1, _ = model.apply(params, x, labels=(labels + 1) % 3, method="encode")
    assert float(jnp.abs(mu0 - mu1).max()) > 1e-4
    with pytest.raises(ValueError, match="needs labels"):
        model.apply(params, x, method="encode")
    with pytest.raises(ValueError, match="arch='rnn'"):
        vae.VAE((8, 8, 1), arch="rnn").init(jax.random.key(0), x)
    # the IWAE bound tiles the labels with the k samples; k=1 with the same key is the MC-KL ELBO
    iw = vae.iwae_bound(params, model.apply, x, jax.random.key(9), 1, likelihood="bernoulli", labels=labels)
    mu, lv = model.apply(params, x, labels=labels, method="encode")
    z = vae.reparameterize(jax.random.key(9), mu, lv)
    out = model.apply(params, z, labels=labels, method="decode")
    log_w = (
        vae.log_likelihood(x, out, "bernoulli")
        + scipy.stats.norm.logpdf(np.asarray(z)).sum(-1)
        - scipy.stats.norm.logpdf(np.asarray(z), np.asarray(mu), np.exp(0.5 * np.asarray(lv))).sum(-1)
    )
    np.testing.assert_allclose(iw, log_w, rtol=1e-4, atol=1e-3)

    opt = optax.adam(3e-3)

    @jax.jit
    def step(p, s, key):
        f = lambda p: jnp.mean(vae.vae_loss(p, model.apply, x, key, likelihood="bernoulli", labels=labels)[0])
        loss, g = jax.value_and_grad(f)(p)
        upd, s = opt.update(g, s, p)
        return optax.apply_updates(p, upd), s, loss

    state = opt.init(params)
    losses = []
    for i in range(100):
        params, state, loss = step(params, state, jax.random.key(i))
        losses.append(float(loss))
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])
    imgs = vae.sample(params, model.apply, jax.random.key(0), 3, 2, likelihood="bernoulli", labels=jnp.arange(3))
    assert imgs.shape == (3, 8, 8, 1) and float(imgs.min()) >= 0 and float(imgs.max()) <= 1
