"""Tests for zoo/gan.py: the minimax value and losses vs naive formulas, the optimal discriminator on a
1-D toy (grid search, trained logistic D, numerical integration), the gradient penalty vs finite
differences, and network shapes."""

import math

import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
import scipy.spatial.distance
import scipy.stats

from zoo import gan


def _sigmoid(l):
    return 1.0 / (1.0 + np.exp(-l))


def test_minimax_value_matches_naive_formula():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(scale=3, size=64), rng.normal(scale=3, size=48)  # batch sizes may differ
    naive = np.mean(np.log(_sigmoid(real))) + np.mean(np.log(1 - _sigmoid(fake)))
    got = gan.minimax_value(jnp.asarray(real, jnp.float32), jnp.asarray(fake, jnp.float32)[:, None])
    np.testing.assert_allclose(got, naive, rtol=1e-5)
    # Stable where the naive float32 formula gives log(0) = -inf: exact values are ~0 and -100.
    v = gan.minimax_value(jnp.array([100.0]), jnp.array([100.0]))
    np.testing.assert_allclose(v, -100.0, rtol=1e-6)


def test_losses_match_naive_formulas():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(scale=2, size=32), rng.normal(scale=2, size=32)
    r32, f32 = jnp.asarray(real, jnp.float32), jnp.asarray(fake, jnp.float32)
    d = gan.discriminator_loss(r32, f32)
    np.testing.assert_allclose(d, -np.log(_sigmoid(real)) - np.log(1 - _sigmoid(fake)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jnp.mean(d), -gan.minimax_value(r32, f32), rtol=1e-5)
    np.testing.assert_allclose(gan.generator_loss_saturating(f32), np.log(1 - _sigmoid(fake)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gan.generator_loss_nonsaturating(f32), -np.log(_sigmoid(fake)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        gan.hinge_d_loss(r32, f32), np.maximum(0, 1 - real) + np.maximum(0, 1 + fake), rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(gan.hinge_g_loss(f32), -fake, rtol=1e-6)
    np.testing.assert_allclose(gan.wasserstein_d_loss(r32, f32), fake - real, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="same batch size"):
        gan.discriminator_loss(r32, f32[:5])
    with pytest.raises(ValueError, match=r"\[B\] or \[B, 1\]"):
        gan.hinge_g_loss(jnp.zeros((2, 3)))


def test_saturating_generator_loss_vanishes_when_d_wins():
    # Lecture's remark: with D(G(z)) -> 0, d/dl log(1 - sigmoid(l)) = -sigmoid(l) -> 0 while
    # d/dl -log sigmoid(l) = sigmoid(l) - 1 -> -1.
    l = jnp.array([-8.0, 0.0])
    g_sat = jax.grad(lambda l: gan.generator_loss_saturating(l).sum())(l)
    g_ns = jax.grad(lambda l: gan.generator_loss_nonsaturating(l).sum())(l)
    np.testing.assert_allclose(g_sat, -_sigmoid(np.array([-8.0, 0.0])), rtol=1e-5)
    np.testing.assert_allclose(g_ns, _sigmoid(np.array([-8.0, 0.0])) - 1, rtol=1e-5)
    assert abs(float(g_sat[0])) < 1e-3 < 0.99 < abs(float(g_ns[0]))


P_DATA = scipy.stats.norm(1.0, 1.0)
P_G = scipy.stats.norm(-0.5, 1.5)


def test_optimal_discriminator_maximises_v_pointwise():
    xs = np.linspace(-4, 4, 33)
    pd, pg = P_DATA.pdf(xs), P_G.pdf(xs)
    d_grid = np.linspace(1e-6, 1 - 1e-6, 200_001)  # spacing 5e-6
    integrand = pd[:, None] * np.log(d_grid) + pg[:, None] * np.log1p(-d_grid)
    best = d_grid[np.argmax(integrand, axis=1)]
    np.testing.assert_allclose(gan.optimal_discriminator(pd, pg), best, atol=1e-5)
    np.testing.assert_allclose(gan.optimal_discriminator(jnp.zeros(2), jnp.zeros(2)), 0.5)


def test_trained_logistic_discriminator_approaches_optimum():
    """Minimise discriminator_loss over D(x) = sigmoid(a x^2 + b x + c) on samples: D -> D*.

    The family contains D* exactly (log p_data - log p_g is quadratic for Gaussians).
    """
    rng = np.random.default_rng(2)
    n = 20_000
    real = jnp.asarray(P_DATA.rvs(n, random_state=rng), jnp.float32)
    fake = jnp.asarray(P_G.rvs(n, random_state=rng), jnp.float32)
    feats = lambda x: jnp.stack([x**2, x, jnp.ones_like(x)], -1)
    loss = jax.jit(jax.value_and_grad(lambda w: jnp.mean(gan.discriminator_loss(feats(real) @ w, feats(fake) @ w))))
    res = scipy.optimize.minimize(
        lambda w: tuple(np.asarray(a, np.float64) for a in loss(jnp.asarray(w, jnp.float32))),
        np.zeros(3),
        jac=True,
        method="L-BFGS-B",
    )
    xs = np.linspace(-3, 3, 61)
    d_learned = _sigmoid(np.stack([xs**2, xs, np.ones_like(xs)], -1) @ res.x)
    d_star = np.asarray(gan.optimal_discriminator(P_DATA.pdf(xs), P_G.pdf(xs)))
    # 20k samples per side: the MLE's error in D is ~0.01 on [-3, 3]; tolerance 0.03
    np.testing.assert_allclose(d_learned, d_star, atol=0.03)
    # and the trained D's value is -min loss <= V(D*, G) = -log 4 + 2 JSD (up to sampling error)
    assert -res.fun < -math.log(4) + 2 * _jsd_grid()[0] + 0.01


def _jsd_grid(p=P_DATA, q=P_G):
    xs = np.linspace(-10, 10, 200_001)  # mass outside < 1e-10; densities stay above float32 underflow
    dx = xs[1] - xs[0]
    pd, pg = p.pdf(xs), q.pdf(xs)
    jsd = scipy.spatial.distance.jensenshannon(pd * dx, pg * dx) ** 2  # natural log, independent of zoo
    return jsd, xs, pd, pg


def _v_of_optimal_d(pd, pg, xs):
    d = np.asarray(gan.optimal_discriminator(pd, pg), np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(pd > 0, pd * np.log(d), 0.0) + np.where(pg > 0, pg * np.log1p(-d), 0.0)
    return np.trapezoid(f, xs)


def test_value_at_optimum_is_minus_log4_iff_pg_equals_pdata():
    jsd, xs, pd, _ = _jsd_grid()
    # p_g = p_data: V(D*, G) = -log 4 (grid integration, tolerance 1e-4)
    assert abs(_v_of_optimal_d(pd, pd, xs) + math.log(4)) < 1e-4
    # p_g != p_data: V(D*, G) = -log 4 + 2 JSD(p_data || p_g) > -log 4
    _, _, pd, pg = _jsd_grid()
    v = _v_of_optimal_d(pd, pg, xs)
    assert abs(v - (-math.log(4) + 2 * jsd)) < 1e-4 and jsd > 0.05
    # Monte Carlo with the logits of D*: minimax_value estimates the same V (5 standard errors)
    rng = np.random.default_rng(3)
    xr, xf = P_DATA.rvs(100_000, random_state=rng), P_G.rvs(100_000, random_state=rng)
    logit = lambda x: P_DATA.logpdf(x) - P_G.logpdf(x)
    v_mc = float(gan.minimax_value(jnp.asarray(logit(xr), jnp.float32), jnp.asarray(logit(xf), jnp.float32)))
    se = math.sqrt((np.var(np.log(_sigmoid(logit(xr)))) + np.var(np.log1p(-_sigmoid(logit(xf))))) / 100_000)
    assert abs(v_mc - v) < 5 * se


def test_gradient_penalty_linear_critic():
    key = jax.random.key(0)
    rng = np.random.default_rng(5)
    real = jnp.asarray(rng.normal(size=(6, 4, 4, 2)), jnp.float32)
    fake = jnp.asarray(rng.normal(size=(6, 4, 4, 2)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(32,)), jnp.float32)
    critic = lambda p, x: x.reshape(x.shape[0], -1) @ p["w"] + p["b"]
    unit = {"w": w / jnp.linalg.norm(w), "b": jnp.array(0.3)}
    gp = gan.gradient_penalty(critic, unit, real, fake, key)
    assert gp.shape == (6,)
    np.testing.assert_allclose(gp, 0.0, atol=1e-6)  # 1-Lipschitz, gradient norm exactly 1
    three = {"w": 3 * w / jnp.linalg.norm(w), "b": jnp.array(0.3)}
    np.testing.assert_allclose(gan.gradient_penalty(critic, three, real, fake, key), 4.0, rtol=1e-5)  # (3-1)^2


def test_gradient_penalty_matches_finite_differences():
    rng = np.random.default_rng(4)
    w1 = jnp.asarray(rng.normal(size=(12, 8)) / 2, jnp.float32)
    w2 = jnp.asarray(rng.normal(size=(8,)), jnp.float32)
    critic = lambda p, x: jnp.tanh(x.reshape(x.shape[0], -1) @ p[0]) @ p[1]
    x = jnp.asarray(rng.normal(size=(3, 2, 2, 3)), jnp.float32)
    # real == fake makes x_hat = x whatever the interpolation weights are.
    gp = np.asarray(gan.gradient_penalty(critic, (w1, w2), x, x, jax.random.key(0)))
    h = 1e-2
    for b in range(3):
        xb = np.asarray(x[b], np.float64)
        grad = np.zeros(xb.size)
        for j in range(xb.size):
            e = np.zeros(xb.size)
            e[j] = h
            up = critic((w1, w2), jnp.asarray((xb.ravel() + e).reshape(1, 2, 2, 3), jnp.float32))
            dn = critic((w1, w2), jnp.asarray((xb.ravel() - e).reshape(1, 2, 2, 3), jnp.float32))
            grad[j] = (float(up[0]) - float(dn[0])) / (2 * h)
        expected = (np.linalg.norm(grad) - 1) ** 2
        assert abs(gp[b] - expected) < 1e-3 * max(1.0, expected), (b, gp[b], expected)
    assert gp.max() > 0.01  # not a trivially zero penalty


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (32, 32, 3)])
def test_network_shapes(shape):
    z = jnp.zeros((2, 5))
    for g in (gan.DCGenerator(shape, channels=(4, 8)), gan.MLPGenerator(shape, hidden=(16,))):
        params = jax.eval_shape(g.init, jax.random.key(0), z)  # shapes only, no compile
        assert jax.eval_shape(g.apply, params, z).shape == (2,) + shape
    x = jnp.zeros((2,) + shape)
    for d in (gan.DCDiscriminator(channels=(4, 8)), gan.MLPDiscriminator(hidden=(16,))):
        params = jax.eval_shape(d.init, jax.random.key(0), x)
        assert jax.eval_shape(d.apply, params, x).shape == (2,)


def test_dc_generator_range_and_upsampling():
    g = gan.DCGenerator((8, 8, 1), channels=(4, 8))
    d = gan.DCDiscriminator(channels=(4, 8))
    z = jax.random.normal(jax.random.key(0), (4, 5))

    @jax.jit  # one compiled program: much faster on CPU than eager per-op dispatch
    def run(z):
        x = g.apply(g.init(jax.random.key(1), z), z)
        dp = d.init(jax.random.key(2), x)
        return x, gan.gradient_penalty(d.apply, dp, x, x[::-1], jax.random.key(3))

    with jax.threefry_partitionable(False):  # 4-d kernel inits compile ~10x faster on CPU
        x, gp = run(z)
    assert float(x.min()) >= -1 and float(x.max()) <= 1 and float(x.std()) > 0
    assert gp.shape == (4,) and bool(jnp.all(jnp.isfinite(gp)))
    names = set(jax.eval_shape(g.init, jax.random.key(1), z)["params"])
    assert any(n.startswith("Upsample") for n in names)
    assert not any("ConvTranspose" in n for n in names)


# ----------------------------------------------------------------------------- spectral normalisation


@pytest.mark.parametrize("shape", [(20, 30), (3, 3, 4, 8)])  # a Dense kernel [in, out], a conv kernel
def test_power_iteration_approaches_the_largest_singular_value(shape):
    rng = np.random.default_rng(6)
    kernel = jnp.asarray(rng.normal(size=shape), jnp.float32)
    w = np.asarray(kernel, np.float64).reshape(-1, shape[-1]).T  # [out, in], as the zoo reads a kernel
    s_max = np.linalg.svd(w, compute_uv=False)[0]
    u = jnp.asarray(rng.normal(size=shape[-1]), jnp.float32)
    sigmas = []
    for _ in range(200):
        u, v, sigma = gan.power_iteration(jnp.asarray(w, jnp.float32), u)
        sigmas.append(float(sigma))
    # u^T W v <= |W|_2 at every step (float32 slack 1e-5), rising to it: 200 steps, relative tolerance 1e-4
    assert max(sigmas) <= s_max * (1 + 1e-5) and sigmas[0] < s_max * (1 - 1e-3)
    np.testing.assert_allclose(sigmas[-1], s_max, rtol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(u)), 1.0, rtol=1e-5)
    # the kernel over that estimate has largest singular value ~1 (numpy's SVD of the normalised kernel)
    normalised, u_next = gan.spectral_norm(kernel, u)
    assert normalised.shape == shape and u_next.shape == (shape[-1],)
    top = np.linalg.svd(np.asarray(normalised, np.float64).reshape(-1, shape[-1]), compute_uv=False)[0]
    np.testing.assert_allclose(top, 1.0, rtol=1e-4)


def test_spectral_norm_gradient_holds_u_and_v_constant():
    """d sigma / dW = u v^T (Miyato et al.'s estimator), checked on the normalised kernel's gradient: for
    L = sum(A * W / sigma), dL/dW = A / sigma - (sum(A * W) / sigma^2) u v^T."""
    rng = np.random.default_rng(7)
    kernel = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)  # W = kernel^T [4, 5]
    a = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)
    u0 = jnp.asarray(rng.normal(size=4), jnp.float32)
    grad = jax.grad(lambda k: jnp.sum(a * gan.spectral_norm(k, u0)[0]))(kernel)
    w = np.asarray(kernel, np.float64).T
    v = w.T @ np.asarray(u0, np.float64)
    v /= np.linalg.norm(v)
    u = w @ v
    sigma = np.linalg.norm(u)
    u /= sigma
    a64 = np.asarray(a, np.float64)
    expected = a64 / sigma - (np.sum(a64 * w.T) / sigma**2) * np.outer(u, v).T
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-5)


def test_spectral_normalize_divides_every_kernel_and_nothing_else():
    d = gan.DCDiscriminator(channels=(4, 8))
    params = jax.jit(d.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))["params"]
    us = gan.spectral_norm_vectors(params, jax.random.key(1))
    flat = flax.traverse_util.flatten_dict(params)
    assert set(flax.traverse_util.flatten_dict(us)) == {p for p in flat if p[-1] == "kernel"}
    step = jax.jit(gan.spectral_normalize)
    for _ in range(30):  # u converges under repeated use, as over training steps
        normalised, us = step(params, us)
    for path, leaf in flax.traverse_util.flatten_dict(normalised).items():
        if path[-1] == "kernel":
            top = np.linalg.svd(np.asarray(leaf).reshape(-1, leaf.shape[-1]), compute_uv=False)[0]
            np.testing.assert_allclose(top, 1.0, rtol=1e-3, err_msg=str(path))
        else:
            np.testing.assert_array_equal(leaf, flat[path])


# ----------------------------------------------------------------------------- R1 / R2


def test_r1_and_r2_match_finite_differences_in_float64():
    rng = np.random.default_rng(8)
    w1, w2 = rng.normal(size=(12, 8)) / 2, rng.normal(size=(8,))
    critic = lambda p, x: jnp.tanh(x.reshape(x.shape[0], -1) @ p[0]) @ p[1]
    critic_np = lambda x: np.tanh(x.ravel() @ w1) @ w2  # the same D, in numpy float64: the independent side
    real, fake = rng.normal(size=(3, 2, 2, 3)), rng.normal(size=(3, 2, 2, 3))
    with jax.enable_x64(True):
        params = (jnp.asarray(w1), jnp.asarray(w2))
        r1 = np.asarray(gan.r1_penalty(critic, params, jnp.asarray(real), gamma=10.0))
        r2 = np.asarray(gan.r2_penalty(critic, params, jnp.asarray(fake), gamma=0.5))
    h = 1e-5
    for x, got, gamma in ((real, r1, 10.0), (fake, r2, 0.5)):
        for b in range(3):
            flat = x[b].ravel()
            grad = np.array([(critic_np(flat + h * e) - critic_np(flat - h * e)) / (2 * h) for e in np.eye(flat.size)])
            expected = gamma / 2 * np.sum(grad**2)
            assert abs(got[b] - expected) < 1e-7 * max(1.0, expected), (b, got[b], expected)
    assert r1.min() > 1e-3 and r2.min() > 1e-5  # not trivially zero


# ----------------------------------------------------------------------------- DiffAugment


def _ramp(b=4, h=16, w=16, c=3):
    """Images whose every pixel value is distinct, so where each one went can be read off."""
    return jnp.arange(b * h * w * c, dtype=jnp.float32).reshape(b, h, w, c) / (b * h * w * c) + 0.1


def test_diffaugment_policy_identity_and_refusals():
    x = _ramp()
    assert gan.diffaugment(x, jax.random.key(0), "") is x
    assert gan.parse_diffaugment_policy("color, cutout") == ("color", "cutout")
    for bad in ("colour", "color,color", "translation,", "cutout;color"):
        with pytest.raises(ValueError, match="accepted: a comma-separated subset of color, translation, cutout"):
            gan.parse_diffaugment_policy(bad)
    out = jax.jit(gan.diffaugment, static_argnums=2)(x, jax.random.key(0), "color,translation,cutout")
    assert out.shape == x.shape and not np.allclose(out, x)


def test_colour_ops_do_what_they_say():
    x = jnp.asarray(np.random.default_rng(9).uniform(-1, 1, size=(64, 4, 4, 3)), jnp.float32)
    key = jax.random.key(1)
    shift = np.asarray(gan.augment_brightness(x, key) - x)  # one constant per image, in [-1/2, 1/2)
    np.testing.assert_allclose(shift, shift[:, :1, :1, :1] * np.ones_like(shift), atol=1e-6)
    assert -0.5 <= shift.min() and shift.max() < 0.5 and shift[:, 0, 0, 0].std() > 0.2
    # saturation: each pixel's channel mean kept, its deviations from it scaled by one factor in [0, 2) per image
    out = np.asarray(gan.augment_saturation(x, key))
    xm, om = np.asarray(x).mean(-1, keepdims=True), out.mean(-1, keepdims=True)
    np.testing.assert_allclose(om, xm, atol=1e-6)
    factor = (out - om).ravel().reshape(64, -1) / (np.asarray(x) - xm).reshape(64, -1)
    np.testing.assert_allclose(factor, factor[:, :1] * np.ones_like(factor), rtol=1e-3, atol=1e-3)
    assert factor.min() >= 0 and factor.max() < 2
    np.testing.assert_array_equal(gan.augment_saturation(x[..., :1], key), x[..., :1])  # grey: nothing to saturate
    # contrast: each image's mean kept, deviations scaled by one factor in [1/2, 3/2)
    out = np.asarray(gan.augment_contrast(x, key))
    np.testing.assert_allclose(out.mean((1, 2, 3)), np.asarray(x).mean((1, 2, 3)), atol=1e-6)
    xd, od = np.asarray(x) - np.asarray(x).mean((1, 2, 3), keepdims=True), out - out.mean((1, 2, 3), keepdims=True)
    factor = od.reshape(64, -1) / xd.reshape(64, -1)
    np.testing.assert_allclose(factor, factor[:, :1] * np.ones_like(factor), rtol=1e-3, atol=1e-3)
    assert factor.min() >= 0.5 and factor.max() < 1.5


def _shifts(x, out):
    """(dy, dx) of each image of a translation, read off where x's first pixel went (x all distinct, > 0)."""
    found = []
    for b in range(x.shape[0]):
        hits = [
            (i - a, j - c)
            for a in range(x.shape[1])
            for c in range(x.shape[2])
            for i, j in zip(*np.nonzero(np.isclose(out[b, ..., 0], x[b, a, c, 0])))
        ]
        assert len(hits) >= 1
        found.append(hits[0])
    return found


def test_translation_shifts_with_zero_padding_and_passes_the_shifted_gradient():
    x = np.asarray(_ramp(b=12))
    key = jax.random.key(2)
    out = np.asarray(gan.augment_translation(jnp.asarray(x), key))
    shifts = _shifts(x, out)
    assert all(max(abs(dy), abs(dx)) <= 2 for dy, dx in shifts) and len(set(shifts)) > 1  # 16 / 8 = 2 pixels
    for b, (dy, dx) in enumerate(shifts):  # out[i, j] = x[i - dy, j - dx], 0 outside
        expected = np.zeros_like(x[b])
        expected[max(dy, 0) : 16 + min(dy, 0), max(dx, 0) : 16 + min(dx, 0)] = x[
            b, max(-dy, 0) : 16 + min(-dy, 0), max(-dx, 0) : 16 + min(-dx, 0)
        ]
        np.testing.assert_array_equal(out[b], expected)
    # d/dx sum(g * T(x)) = g shifted back by (dy, dx), 0 where x left the frame
    g = np.random.default_rng(10).normal(size=x.shape).astype(np.float32)
    grad = np.asarray(jax.grad(lambda x: jnp.sum(g * gan.augment_translation(x, key)))(jnp.asarray(x)))
    for b, (dy, dx) in enumerate(shifts):
        expected = np.zeros_like(g[b])
        expected[max(-dy, 0) : 16 + min(-dy, 0), max(-dx, 0) : 16 + min(-dx, 0)] = g[
            b, max(dy, 0) : 16 + min(dy, 0), max(dx, 0) : 16 + min(dx, 0)
        ]
        np.testing.assert_array_equal(grad[b], expected)


def test_cutout_zeroes_one_square_of_half_the_side():
    x = jnp.ones((64, 8, 8, 2))
    out = np.asarray(gan.augment_cutout(x, jax.random.key(3)))
    assert set(np.unique(out)) <= {0.0, 1.0}
    zero = out[..., 0] == 0
    np.testing.assert_array_equal(zero, out[..., 1] == 0)  # all channels of a pixel together
    for b in range(64):
        rows, cols = np.nonzero(zero[b].any(1))[0], np.nonzero(zero[b].any(0))[0]
        assert 1 <= len(rows) <= 4 and 1 <= len(cols) <= 4  # a 4x4 square, clipped at the border
        assert (
            zero[b].sum() == len(rows) * len(cols) and np.ptp(rows) == len(rows) - 1 and np.ptp(cols) == len(cols) - 1
        )
    assert (zero.sum((1, 2)) == 16).mean() > 0.2 and len({tuple(np.argwhere(z)[0]) for z in zero}) > 5


def test_diffaugment_is_differentiable_through_every_op():
    x = _ramp(b=4, h=8, w=8)
    g = jnp.asarray(np.random.default_rng(11).normal(size=x.shape), jnp.float32)
    for policy in ("color", "translation", "cutout", "color,translation,cutout"):
        grad = jax.jit(jax.grad(lambda x: jnp.sum(g * gan.diffaugment(x, jax.random.key(4), policy))))(x)
        assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad).max()) > 0, policy
