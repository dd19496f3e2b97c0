"""Tests for zoo/autoencoder.py: losses vs brute force, the linear-AE / PCA link, code densities, shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

from zoo import autoencoder as ae


def test_mse_loss_matches_brute_force():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(3, 4, 5, 2)).astype(np.float32)
    r = rng.normal(size=(3, 4, 5, 2)).astype(np.float32)
    expected = np.zeros(3)
    for b in range(3):
        for idx in np.ndindex(4, 5, 2):
            expected[b] += (float(x[b][idx]) - float(r[b][idx])) ** 2
    got = np.asarray(ae.mse_loss(jnp.asarray(x), jnp.asarray(r)))
    assert got.shape == (3,)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_bernoulli_loss_matches_naive_formula_and_is_stable():
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(4, 6, 6, 1))
    logits = rng.normal(scale=3.0, size=x.shape)
    p = 1.0 / (1.0 + np.exp(-logits))
    expected = -(x * np.log(p) + (1 - x) * np.log(1 - p)).reshape(4, -1).sum(-1)
    got = np.asarray(ae.bernoulli_loss(jnp.asarray(x, jnp.float32), jnp.asarray(logits, jnp.float32)))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Extreme logits: the naive float32 formula overflows to inf/nan, ours stays exact.
    x = jnp.array([[1.0, 0.0]])
    big = jnp.array([[-200.0, 200.0]])  # both pixels badly wrong: loss = 200 + 200
    np.testing.assert_allclose(np.asarray(ae.bernoulli_loss(x, big)), [400.0], rtol=1e-6)


def test_reconstruction_loss_dispatch_and_validation():
    x = jnp.full((2, 3), 0.5)
    out = jnp.zeros((2, 3))
    np.testing.assert_allclose(ae.reconstruction_loss(x, out, "mse"), [0.75, 0.75], rtol=1e-6)
    np.testing.assert_allclose(ae.reconstruction_loss(x, out, "bce"), [3 * np.log(2)] * 2, rtol=1e-6)
    np.testing.assert_allclose(ae.reconstruction_mean(out, "bce"), 0.5)
    with pytest.raises(ValueError, match="kind='l1'"):
        ae.reconstruction_loss(x, out, "l1")
    with pytest.raises(ValueError, match="same shape"):
        ae.mse_loss(x, jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="batched"):
        ae.bernoulli_loss(jnp.zeros(3), jnp.zeros(3))


def _low_rank_data(n=200, d=10, k=3, seed=0):
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(d, k)))
    scores = rng.normal(size=(n, k)) * np.array([3.0, 2.0, 1.5])
    return (scores @ basis.T + 0.05 * rng.normal(size=(n, d)) + rng.normal(size=d)).astype(np.float32)


def test_linear_autoencoder_spans_pca_subspace():
    """Lecture: a linear AE trained with squared error recovers the top-k principal subspace."""
    k = 3
    x = _low_rank_data(k=k)
    model = ae.Autoencoder(ae.MLPEncoder(k, linear=True), ae.MLPDecoder((10,), linear=True))
    params = model.init(jax.random.key(0), x[:2])
    opt = optax.adam(3e-2)

    def loss_fn(p):
        _, r = model.apply(p, x)
        return jnp.mean(ae.mse_loss(x, r))

    @jax.jit
    def train(params):
        def step(carry, _):
            p, s = carry
            loss, g = jax.value_and_grad(loss_fn)(p)
            upd, s = opt.update(g, s, p)
            return (optax.apply_updates(p, upd), s), loss

        (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), None, length=500)
        return params, losses

    params, losses = train(params)
    # Independent reference: SVD of the centred data.
    xc = x - x.mean(0)
    _, s, vt = np.linalg.svd(xc.astype(np.float64), full_matrices=False)
    pcs = vt[:k].T  # [10, k]
    w_dec = np.asarray(params["params"]["decoder"]["Dense_0"]["kernel"], np.float64).T  # [10, k]
    # Reconstructions r = W_dec h + b lie in span(W_dec): it must be the principal subspace.
    # (The encoder's components along the tiny noise directions converge far more slowly, since
    # their gradient scales with the noise variance, so only the decoder's span is tested.)
    tol_deg = 2.0
    assert np.degrees(scipy.linalg.subspace_angles(w_dec, pcs).max()) < tol_deg
    # Eckart-Young: no rank-k linear map beats PCA's error sum(discarded sigma^2) / n, and training
    # must get within 0.5% of the total variance of it.
    pca_err = np.sum(s[k:] ** 2) / x.shape[0]
    total_var = np.sum(s**2) / x.shape[0]
    assert pca_err * (1 - 1e-3) <= float(losses[-1]) <= pca_err + 0.005 * total_var


def _codes(seed=3, n=500):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(3, 3))
    return jnp.asarray(rng.normal(size=(n, 3)) @ a + np.array([1.0, -2.0, 0.5]), jnp.float32)


def test_gaussian_code_density_is_the_codes_mean_and_covariance():
    codes = _codes()
    dens = ae.fit_code_density(codes, "gaussian")
    np.testing.assert_allclose(dens.params["mean"], np.mean(np.asarray(codes), 0), atol=1e-5)
    np.testing.assert_allclose(dens.params["cov"], np.cov(np.asarray(codes).T, bias=True), rtol=1e-4, atol=1e-5)


# MC error of the mean is ~ sqrt(diag(cov)/n) ~ 1e-2 at n = 100k; a fitted mixture reproduces the data's first two
# moments too (EM's M-step preserves them), less tightly from 50k samples of a 3-component fit.
@pytest.mark.parametrize(
    "kind, n, mean_atol, cov_rtol", [("gaussian", 100_000, 0.05, 0.03), ("gmm", 50_000, 0.08, 0.05)]
)
def test_code_density_samples_match_code_moments(kind, n, mean_atol, cov_rtol):
    codes = _codes()
    dens = ae.fit_code_density(codes, kind, key=jax.random.key(0), num_components=3)
    z = np.asarray(ae.sample_codes(dens, jax.random.key(1), n), np.float64)
    assert z.shape == (n, 3)
    cov = np.cov(np.asarray(codes).T, bias=True)
    np.testing.assert_allclose(z.mean(0), np.asarray(codes).mean(0), atol=mean_atol)
    np.testing.assert_allclose(np.cov(z.T), cov, atol=cov_rtol * np.abs(cov).max())


def test_code_density_validation():
    with pytest.raises(ValueError, match="kind='uniform'"):
        ae.fit_code_density(_codes(), "uniform")
    with pytest.raises(ValueError, match="needs key"):
        ae.fit_code_density(_codes(), "gmm")
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        ae.fit_code_density(jnp.zeros(5))
    with pytest.raises(ValueError, match="n=0"):
        ae.sample_codes(ae.fit_code_density(_codes()), jax.random.key(0), 0)


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (32, 32, 3)])
def test_conv_autoencoder_shapes(shape):
    model = ae.Autoencoder(ae.ConvEncoder(4, channels=(4, 8)), ae.ConvDecoder(shape, channels=(4, 8)))
    x = jnp.zeros((2,) + shape)
    params = jax.eval_shape(model.init, jax.random.key(1), x)  # shapes only: no XLA compile
    h, r = jax.eval_shape(model.apply, params, x)
    assert h.shape == (2, 4) and r.shape == (2,) + shape


def test_conv_autoencoder_call_is_decode_of_encode():
    shape = (8, 8, 1)
    model = ae.Autoencoder(ae.ConvEncoder(4, channels=(4, 8)), ae.ConvDecoder(shape, channels=(4, 8)))
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(2,) + shape), jnp.float32)

    @jax.jit  # one compiled program: much faster on CPU than eager per-op dispatch
    def run(x):
        params = model.init(jax.random.key(1), x)
        h, r = model.apply(params, x)
        return h, r, model.apply(params, x, method="encode"), model.apply(params, h, method="decode")

    with jax.threefry_partitionable(False):  # 4-d kernel inits compile ~10x faster on CPU
        h, r, h2, r2 = run(x)
    np.testing.assert_allclose(h2, h, rtol=1e-6)
    np.testing.assert_allclose(r2, r, rtol=1e-5, atol=1e-6)
    assert h.shape == (2, 4) and r.shape == (2,) + shape
    assert float(jnp.std(r)) > 0  # the decoder really depends on its input


def test_mlp_autoencoder_trains_and_decodes_sampled_codes():
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(16, 8, 8, 1)) < 0.3, jnp.float32)
    model = ae.Autoencoder(ae.MLPEncoder(4, hidden=(32,)), ae.MLPDecoder((8, 8, 1), hidden=(32,)))
    params = jax.jit(model.init)(jax.random.key(1), x)
    opt = optax.adam(1e-2)
    state = opt.init(params)

    @jax.jit
    def step(p, s):
        loss, g = jax.value_and_grad(lambda p: jnp.mean(ae.reconstruction_loss(x, model.apply(p, x)[1], "bce")))(p)
        upd, s = opt.update(g, s, p)
        return optax.apply_updates(p, upd), s, loss

    first = None
    for _ in range(150):
        params, state, loss = step(params, state)
        first = loss if first is None else first
    assert float(loss) < 0.5 * float(first)
    codes, _ = model.apply(params, x)
    z = ae.sample_codes(ae.fit_code_density(codes), jax.random.key(2), 5)
    img = ae.reconstruction_mean(model.apply(params, z, method="decode"), "bce")
    assert img.shape == (5, 8, 8, 1) and float(img.min()) >= 0 and float(img.max()) <= 1
