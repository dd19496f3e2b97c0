"""Tests for zoo/ddpm.py: schedules, forward process, posterior, reverse process, the simple loss, the
ancestral, DDIM and DPM-Solver++(2M) samplers, the bits/dim variational bound, and the U-Net.

Every check is against an independent computation (closed form in numpy float64, Monte Carlo, a Python
loop, scipy). Timesteps are 0-based (index t is the paper's t+1). The implementation stores its
schedule in float32, so exact-formula comparisons use float32-level tolerances (stated per check).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from zoo import ddpm
from zoo.layers import sinusoidal_embedding

# --------------------------------------------------------------------------- independent helpers


def np_schedule(betas):
    """Every schedule constant from the DDPM paper, by explicit Python loops in float64."""
    betas = [float(b) for b in betas]
    T = len(betas)
    ab, prod = [], 1.0
    for b in betas:
        prod *= 1.0 - b
        ab.append(prod)
    abp = [1.0] + ab[:-1]
    post_var = [betas[t] * (1.0 - abp[t]) / (1.0 - ab[t]) for t in range(T)]
    c0 = [math.sqrt(abp[t]) * betas[t] / (1.0 - ab[t]) for t in range(T)]
    ct = [math.sqrt(1.0 - betas[t]) * (1.0 - abp[t]) / (1.0 - ab[t]) for t in range(T)]
    a = lambda v: np.asarray(v, np.float64)
    return dict(betas=a(betas), ab=a(ab), abp=a(abp), post_var=a(post_var), c0=a(c0), ct=a(ct))


def gaussian_posterior(x0, xt, ab_prev, alpha):
    """q(x_{t-1} | x_t, x_0) by conditioning the 2x2 joint Gaussian of (x_{t-1}, x_t) given x_0."""
    m1, v1 = math.sqrt(ab_prev) * x0, 1.0 - ab_prev  # x_{t-1} | x_0
    m2, v2 = math.sqrt(alpha) * m1, alpha * v1 + (1.0 - alpha)  # x_t | x_0
    c12 = math.sqrt(alpha) * v1  # Cov(x_{t-1}, x_t | x_0)
    return m1 + c12 / v2 * (xt - m2), v1 - c12**2 / v2


def gaussian_eps_fn(alpha_bars, s):
    """The exact E[eps | x_t] when x_0 ~ N(0, s^2 I): sqrt(1 - abar_t) x_t / (abar_t s^2 + 1 - abar_t)."""
    ab = jnp.asarray(alpha_bars, jnp.float32)

    def eps_fn(x, t):
        a = ab[t].reshape(t.shape + (1,) * (x.ndim - 1))
        return jnp.sqrt(1.0 - a) * x / (a * s * s + 1.0 - a)

    return eps_fn


def f32(a):
    return jnp.asarray(a, jnp.float32)


# --------------------------------------------------------------------------- 1. schedules


def test_linear_betas_endpoints_and_spacing():
    b = ddpm.linear_betas(1000)
    assert b.shape == (1000,)
    # exact endpoints (float64 linspace), spacing constant to 1e-15
    assert b[0] == pytest.approx(1e-4, abs=1e-15) and b[-1] == pytest.approx(0.02, abs=1e-15)
    np.testing.assert_allclose(np.diff(b), (0.02 - 1e-4) / 999, rtol=0, atol=1e-15)


def test_schedule_from_name_linear_rescales_with_T():
    # T=1000 is the paper's schedule; T=100 keeps the per-step noise scale: beta in [1e-3, 0.2].
    # float32 storage: rtol 1e-6
    np.testing.assert_allclose(ddpm.schedule_from_name("linear", 1000).betas, np.linspace(1e-4, 0.02, 1000), rtol=1e-6)
    np.testing.assert_allclose(ddpm.schedule_from_name("linear", 100).betas, np.linspace(1e-3, 0.2, 100), rtol=1e-6)


def test_cosine_betas_match_closed_form():
    T, s = 1000, 0.008
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    abar = lambda t: f(t) / f(0)
    expected = [min(max(1.0 - abar(t + 1) / abar(t), 0.0), 0.999) for t in range(T)]
    # both float64: 1e-12 relative
    np.testing.assert_allclose(ddpm.cosine_betas(T), expected, rtol=1e-12, atol=1e-15)
    assert ddpm.cosine_betas(T)[-1] == pytest.approx(0.999)  # the clip is active at the end


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_make_schedule_matches_python_loops(name):
    betas = ddpm.linear_betas(1000) if name == "linear" else ddpm.cosine_betas(1000)
    sched, ref = ddpm.make_schedule(betas), np_schedule(betas)
    # float32 storage of float64 values: rtol 1e-6 (float32 eps is 6e-8)
    tol = dict(rtol=1e-6, atol=0)
    np.testing.assert_allclose(sched.betas, ref["betas"], **tol)
    np.testing.assert_allclose(sched.alpha_bars, ref["ab"], **tol)
    np.testing.assert_allclose(sched.alpha_bars_prev, ref["abp"], **tol)
    np.testing.assert_allclose(sched.posterior_variance, ref["post_var"], **tol)
    np.testing.assert_allclose(sched.posterior_mean_coef_x0, ref["c0"], **tol)
    np.testing.assert_allclose(sched.posterior_mean_coef_xt, ref["ct"], **tol)
    assert ref["post_var"][0] == 0.0 and float(sched.posterior_variance[0]) == 0.0
    # log variance: log beta~_t for t >= 1, and t = 0 clipped to beta~_1 (beta~_0 = 0). abs 1e-5 in log
    expected_log = np.log(np.append(ref["post_var"][1], ref["post_var"][1:]))
    np.testing.assert_allclose(sched.posterior_log_variance, expected_log, rtol=0, atol=1e-5)
    assert sched.num_steps == 1000
    # alpha_bar_T is ~4e-5 (linear) and ~2e-9 (cosine): x_T is essentially pure noise
    bound = 1e-4 if name == "linear" else 1e-6
    assert 0 < ref["ab"][-1] < bound and 0 < float(sched.alpha_bars[-1]) < bound


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_zero_terminal_snr_betas_are_lin_et_als_rescale(name):
    """Lin et al. 2024, Algorithm 1, written out: sqrt(abar_t) mapped linearly so that sqrt(abar_1) stays and
    sqrt(abar_T) becomes 0; the rescaled betas give exactly those abar (float64, 1e-12), the last abar is 0 (beta_T
    = 1); the Schedule keeps abar_T as min(2^-24, abar_{T-1} / 2) so every constant stays finite."""
    T = 1000
    betas = ddpm.linear_betas(T) if name == "linear" else ddpm.cosine_betas(T)
    root = [math.sqrt(np.prod(1.0 - betas[: t + 1])) for t in range(T)]
    want = [(r - root[-1]) / (root[0] - root[-1]) * root[0] for r in root]
    new = ddpm.zero_terminal_snr_betas(betas)
    got = np.sqrt(np.cumprod(1.0 - new))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert got[-1] == 0.0 and new[-1] == 1.0 and got[0] == pytest.approx(root[0], rel=1e-15)
    assert np.all((new[:-1] > 0) & (new[:-1] < 1)) and np.all(np.diff(got) < 0)
    sched = ddpm.schedule_from_name(name, T, zero_terminal_snr=True)
    np.testing.assert_allclose(float(sched.alpha_bars[-1]), min(2.0**-24, got[-2] ** 2 / 2), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(sched.alpha_bars[:-1]), got[:-1] ** 2, rtol=2e-6, atol=1e-12)
    for field in sched.__dataclass_fields__:
        assert np.all(np.isfinite(np.asarray(getattr(sched, field)))), field
    with pytest.raises(ValueError, match="2 values"):
        ddpm.zero_terminal_snr_betas(betas[:1])


def test_the_optimal_v_predictor_samples_the_data_from_a_zero_terminal_snr():
    """At SNR(T) = 0 x_T is pure noise, and a v-prediction still says what x_0 is: the closed-form optimal predictor
    of N(mu, Sigma) makes the ancestral sampler and DDIM (all 1000 steps, its steps trailing) and DPM-Solver++(2M)
    (100 steps) reproduce mu and Sigma (20k samples: Monte Carlo errors ~0.002 and ~0.001, as above)."""
    sched = ddpm.schedule_from_name("linear", 1000, zero_terminal_snr=True)
    eps_fn = ddpm.as_eps_fn(sched, "v", optimal_gaussian_predictor(sched, "v"))
    runs = {
        "ancestral": ddpm.sample_ancestral(
            sched, eps_fn, (20_000, 2), _rbg_key(1), variance="posterior", clip_x0=False
        ),
        "ddim": ddpm.sample_ddim(
            sched, eps_fn, (20_000, 2), _rbg_key(2), num_steps=1000, clip_x0=False, spacing="trailing"
        ),
        "dpmpp_2m": ddpm.sample_dpmpp_2m(sched, eps_fn, (20_000, 2), _rbg_key(3), num_steps=100, clip_x0=False),
    }
    for name, x in runs.items():
        x = np.asarray(x, np.float64)
        assert np.all(np.isfinite(x)), name
        np.testing.assert_allclose(x.mean(0), MU_2D, atol=0.01, err_msg=name)
        np.testing.assert_allclose(np.cov(x.T), SIGMA_2D, atol=0.006, err_msg=name)


def test_schedule_bad_inputs_raise():
    for bad in (
        lambda: ddpm.linear_betas(0),
        lambda: ddpm.cosine_betas(0),
        lambda: ddpm.linear_betas(-3),
        lambda: ddpm.make_schedule([1.0, 0.1]),  # only the last beta may be 1 (a zero terminal SNR)
        lambda: ddpm.make_schedule([0.1, 1.5]),
        lambda: ddpm.make_schedule([0.0, 0.1]),
        lambda: ddpm.make_schedule([0.1, -0.2]),
        lambda: ddpm.make_schedule(np.full((2, 2), 0.1)),
        lambda: ddpm.schedule_from_name("quadratic", 10),
    ):
        with pytest.raises(ValueError):
            bad()


# --------------------------------------------------------------------------- 2. forward process


def test_iterated_q_step_matches_closed_form_kernel():
    T, n = 100, 200_000
    sched = ddpm.schedule_from_name("linear", T)
    ab = np_schedule(np.asarray(sched.betas, np.float64))["ab"]
    x0 = np.array([0.7, -0.3], np.float32)
    x = jnp.broadcast_to(f32(x0), (n, 2))
    rng = np.random.default_rng(0)
    step = jax.jit(lambda x, t, eps: ddpm.q_step_sample(sched, x, jnp.full((n,), t), eps))
    check_at = {0, 9, 49, 99}
    for t in range(T):  # x_t from x_{t-1}: t + 1 single steps from x_0 give x_t (0-based)
        x = step(x, t, rng.standard_normal((n, 2), np.float32))
        if t in check_at:
            xs = np.asarray(x, np.float64)
            mean, var = math.sqrt(ab[t]) * x0, 1.0 - ab[t]
            # tolerance: 5 Monte Carlo standard errors, sqrt(var/n) for the mean, var*sqrt(2/(n-1)) for the variance
            np.testing.assert_array_less(np.abs(xs.mean(0) - mean), 5 * math.sqrt(var / n))
            np.testing.assert_array_less(np.abs(xs.var(0, ddof=1) - var), 5 * var * math.sqrt(2 / (n - 1)))


def test_q_step_mean_variance_closed_form():
    sched = ddpm.make_schedule(np.linspace(1e-2, 0.2, 10))
    x = f32([[0.5], [-1.0]])
    mean, var = ddpm.q_step_mean_variance(sched, x, jnp.array([0, 9]))
    b = np.linspace(1e-2, 0.2, 10)[[0, 9]][:, None]
    # float32 arithmetic: 1e-6
    np.testing.assert_allclose(mean, np.sqrt(1 - b) * np.array([[0.5], [-1.0]]), atol=1e-6)
    np.testing.assert_allclose(var, b, atol=1e-6)


def test_q_sample_moments_match_q_mean_variance():
    T, n = 50, 200_000
    sched = ddpm.schedule_from_name("cosine", T)
    ab = np_schedule(np.asarray(sched.betas, np.float64))["ab"]
    x0 = np.array([[0.9, -0.5, 0.0]], np.float32)
    for i, t in enumerate((0, 20, 49)):
        tb = jnp.full((n,), t)
        eps = f32(np.random.default_rng(i).standard_normal((n, 3)))
        xs = np.asarray(ddpm.q_sample(sched, jnp.broadcast_to(f32(x0), (n, 3)), tb, eps), np.float64)
        mean, var = ddpm.q_mean_variance(sched, f32(x0), jnp.array([t]))
        # the function's moments are the closed form (float32: 1e-6)
        np.testing.assert_allclose(mean, math.sqrt(ab[t]) * x0, atol=1e-6)
        np.testing.assert_allclose(np.broadcast_to(var, (1, 3)), np.full((1, 3), 1 - ab[t]), atol=1e-6)
        v = 1 - ab[t]
        # empirical moments: 5 Monte Carlo standard errors
        np.testing.assert_array_less(np.abs(xs.mean(0) - np.asarray(mean)[0]), 5 * math.sqrt(v / n))
        np.testing.assert_array_less(np.abs(xs.var(0, ddof=1) - v), 5 * v * math.sqrt(2 / (n - 1)))


# --------------------------------------------------------------------------- 3. posterior


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_q_posterior_equals_gaussian_conditioning(name):
    T = 100
    sched = ddpm.schedule_from_name(name, T)
    ref = np_schedule(np.asarray(sched.betas, np.float64))
    rng = np.random.default_rng(3)
    ts = np.array([0, 1, 2, 37, 98, 99])
    x0 = rng.uniform(-1, 1, size=(len(ts), 2, 2, 1)).astype(np.float32)
    xt = rng.normal(size=x0.shape).astype(np.float32)
    mean, var, log_var = ddpm.q_posterior(sched, f32(x0), f32(xt), jnp.asarray(ts))
    assert mean.shape == x0.shape and var.shape == (len(ts), 1, 1, 1)
    for i, t in enumerate(ts):
        m_ref, v_ref = gaussian_posterior(
            x0[i].astype(np.float64), xt[i].astype(np.float64), ref["abp"][t], 1 - ref["betas"][t]
        )
        # float32 coefficients applied to O(1) inputs: atol 2e-6
        np.testing.assert_allclose(mean[i], m_ref, atol=2e-6)
        np.testing.assert_allclose(float(var[i].squeeze()), v_ref, rtol=1e-5, atol=1e-12)
        if t >= 1:  # at t=0 beta~ = 0 and the log variance is clipped to t=1 (checked in the schedule test)
            np.testing.assert_allclose(float(log_var[i].squeeze()), math.log(v_ref), atol=1e-5)
    # at t=0 (paper t=1) the posterior is a point mass at x_0
    np.testing.assert_allclose(mean[0], x0[0], atol=1e-6)


def test_predict_x0_from_eps_inverts_q_sample():
    T = 100
    sched = ddpm.schedule_from_name("linear", T)
    ab = np_schedule(np.asarray(sched.betas, np.float64))["ab"]
    rng = np.random.default_rng(4)
    t = np.arange(T)
    x0 = rng.uniform(-1, 1, size=(T, 3, 3, 2)).astype(np.float32)
    eps = rng.normal(size=x0.shape).astype(np.float32)
    xt = ddpm.q_sample(sched, f32(x0), jnp.asarray(t), f32(eps))
    rec = np.asarray(ddpm.predict_x0_from_eps(sched, xt, jnp.asarray(t), f32(eps)))
    # float32 rounding of x_t (~1e-7 * |x_t|) is amplified by 1/sqrt(abar_t): tolerance 1e-6 * (1 + 4/sqrt(abar_t))
    tol = 1e-6 * (1 + 4 / np.sqrt(ab))[:, None, None, None]
    assert np.all(np.abs(rec - x0) <= tol), np.max(np.abs(rec - x0) / tol)


# --------------------------------------------------------------------------- 4. reverse model


def test_p_mean_variance_with_true_eps_is_the_posterior():
    T = 100
    sched = ddpm.schedule_from_name("linear", T)
    ref = np_schedule(np.asarray(sched.betas, np.float64))
    rng = np.random.default_rng(5)
    t = np.array([0, 1, 5, 50, 98, 99])
    x0 = rng.uniform(-1, 1, size=(len(t), 4)).astype(np.float32)
    eps = rng.normal(size=x0.shape).astype(np.float32)
    xt = ddpm.q_sample(sched, f32(x0), jnp.asarray(t), f32(eps))
    mean, log_var, x0_hat = ddpm.p_mean_variance(
        sched, f32(eps), xt, jnp.asarray(t), variance="posterior", clip_x0=False
    )
    post_mean, _, post_log_var = ddpm.q_posterior(sched, f32(x0), xt, jnp.asarray(t))
    # x0_hat error ~1e-6/sqrt(abar_t) times coef_x0 (small where abar_t is small): atol 1e-5
    np.testing.assert_allclose(x0_hat, x0, atol=2e-6 / math.sqrt(ref["ab"][-1]))
    np.testing.assert_allclose(mean, post_mean, atol=1e-5)
    xt64 = np.asarray(xt, np.float64)
    for i, ti in enumerate(t):
        m_ref, _ = gaussian_posterior(x0[i].astype(np.float64), xt64[i], ref["abp"][ti], 1 - ref["betas"][ti])
        np.testing.assert_allclose(mean[i], m_ref, atol=1e-5)
    np.testing.assert_allclose(log_var, post_log_var, atol=0)

    # 'beta': log beta_t for t > 0 ("fixedlarge"; t=0 uses beta~_1); 'posterior': log beta~_t (t=0 clipped). atol 1e-5
    ts = jnp.arange(T)
    x = jnp.zeros((T, 1))
    _, lv_beta, _ = ddpm.p_mean_variance(sched, x, x, ts, variance="beta")
    _, lv_post, _ = ddpm.p_mean_variance(sched, x, x, ts, variance="posterior")
    np.testing.assert_allclose(lv_beta[1:, 0], np.log(ref["betas"][1:]), atol=1e-5)
    np.testing.assert_allclose(float(lv_beta[0, 0]), math.log(ref["post_var"][1]), atol=1e-5)
    np.testing.assert_allclose(lv_post[1:, 0], np.log(ref["post_var"][1:]), atol=1e-5)
    np.testing.assert_allclose(float(lv_post[0, 0]), math.log(ref["post_var"][1]), atol=1e-5)
    with pytest.raises(ValueError, match="needs the network's v"):
        ddpm.p_mean_variance(sched, x, x, ts, variance="learned")
    with pytest.raises(ValueError, match="learned_log_variance"):
        ddpm.model_log_variance(sched, "learned")
    with pytest.raises(ValueError, match="accepted: beta, posterior, learned"):
        ddpm.model_log_variance(sched, "fixedsmall")


def test_p_mean_variance_clips_x0():
    sched = ddpm.make_schedule(np.linspace(1e-2, 0.2, 10))
    x = jnp.full((2, 1), 5.0)
    _, _, x0_hat = ddpm.p_mean_variance(sched, jnp.zeros((2, 1)), x, jnp.array([0, 9]), clip_x0=True)
    _, _, x0_raw = ddpm.p_mean_variance(sched, jnp.zeros((2, 1)), x, jnp.array([0, 9]), clip_x0=False)
    ab = np_schedule(np.linspace(1e-2, 0.2, 10))["ab"][[0, 9]]
    np.testing.assert_allclose(x0_raw[:, 0], 5.0 / np.sqrt(ab), rtol=1e-5)  # eps=0: x0 = x_t / sqrt(abar)
    np.testing.assert_allclose(x0_hat, 1.0)


def test_p_sample_is_mean_plus_scaled_noise_except_at_t0():
    sched = ddpm.schedule_from_name("linear", 20)
    ref = np_schedule(np.asarray(sched.betas, np.float64))
    eps_fn = lambda x, t: 0.3 * x
    xt = f32(np.random.default_rng(1).standard_normal((3, 2)))
    t = jnp.array([0, 7, 19])
    key = jax.random.PRNGKey(2)
    out = ddpm.p_sample(sched, eps_fn, xt, t, key, variance="beta", clip_x0=False)
    z = np.asarray(jax.random.normal(key, (3, 2)), np.float64)
    xt64 = np.asarray(xt, np.float64)
    for i, ti in enumerate([0, 7, 19]):
        x0_hat = (xt64[i] - math.sqrt(1 - ref["ab"][ti]) * 0.3 * xt64[i]) / math.sqrt(ref["ab"][ti])
        mean = ref["c0"][ti] * x0_hat + ref["ct"][ti] * xt64[i]
        sd = 0.0 if ti == 0 else math.sqrt(ref["betas"][ti])
        np.testing.assert_allclose(out[i], mean + sd * z[i], rtol=1e-5, atol=1e-5)  # float32: 1e-5


# --------------------------------------------------------------------------- 5. loss


def _toy_eps_fn(x, t):
    return jnp.tanh(x) * 0.5 + 0.01 * t.astype(jnp.float32).reshape(t.shape + (1,) * (x.ndim - 1))


def test_training_losses_matches_manual_recomputation():
    T, B = 50, 6
    sched = ddpm.schedule_from_name("cosine", T)
    ab = np_schedule(np.asarray(sched.betas, np.float64))["ab"]
    x0 = f32(np.random.default_rng(0).uniform(-1, 1, (B, 4, 4, 2)))
    key = jax.random.PRNGKey(42)
    loss = np.asarray(ddpm.training_losses(sched, _toy_eps_fn, x0, key))
    assert loss.shape == (B,) and np.all(loss >= 0)

    k_t, k_eps = jax.random.split(key)
    t = np.asarray(jax.random.randint(k_t, (B,), 0, T))
    eps = np.asarray(jax.random.normal(k_eps, x0.shape), np.float64)
    x064 = np.asarray(x0, np.float64)
    xt = np.sqrt(ab[t])[:, None, None, None] * x064 + np.sqrt(1 - ab[t])[:, None, None, None] * eps
    eps_hat = np.tanh(xt) * 0.5 + 0.01 * t[:, None, None, None]
    expected = ((eps - eps_hat) ** 2).reshape(B, -1).mean(-1)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)  # float32 vs float64: 1e-5 relative


def test_training_losses_is_per_example_and_vmappable():
    T, B = 30, 6
    sched = ddpm.schedule_from_name("linear", T)
    x0 = f32(np.random.default_rng(1).uniform(-1, 1, (B, 4, 4, 2)))
    keys = jax.random.split(jax.random.PRNGKey(7), B)
    per_example = lambda x, k: ddpm.training_losses(sched, _toy_eps_fn, x[None], k)[0]
    vm = np.asarray(jax.jit(jax.vmap(per_example))(x0, keys))
    single = jax.jit(per_example)
    loop = np.array([float(single(x0[i], keys[i])) for i in range(B)])
    np.testing.assert_allclose(vm, loop, rtol=1e-6)  # same float32 ops batched vs not: 1e-6
    # the batched call: loss[0] does not depend on the other examples
    key = jax.random.PRNGKey(3)
    a = ddpm.training_losses(sched, _toy_eps_fn, x0, key)
    b = ddpm.training_losses(sched, _toy_eps_fn, x0.at[1:].set(0.0), key)
    assert float(a[0]) == float(b[0]) and not np.allclose(a[1:], b[1:])
    # eps_loss is the per-example mean squared error
    e1, e2 = np.random.default_rng(0).normal(size=(2, B, 7)).astype(np.float32)
    np.testing.assert_allclose(ddpm.eps_loss(f32(e1), f32(e2)), ((e1 - e2) ** 2).mean(-1), rtol=1e-6)


def test_training_loss_zero_for_true_eps():
    T, B = 100, 6
    sched = ddpm.schedule_from_name("linear", T)
    ab = f32(np_schedule(np.asarray(sched.betas, np.float64))["ab"])
    x0 = f32(np.random.default_rng(5).uniform(-1, 1, (B, 4, 4, 2)))

    def oracle(xt, t):  # eps recovered from x_t, x_0 and the closed-form kernel
        a = ab[t][:, None, None, None]
        return (xt - jnp.sqrt(a) * x0) / jnp.sqrt(1 - a)

    loss = ddpm.training_losses(sched, oracle, x0, jax.random.PRNGKey(9))
    # float32 rounding amplified by 1/sqrt(1 - abar_0) = 1/sqrt(beta_0) ~ 30: squared error < 1e-8
    np.testing.assert_array_less(np.asarray(loss), 1e-8)
    assert float(ddpm.training_losses(sched, lambda x, t: jnp.zeros_like(x), x0, jax.random.PRNGKey(9)).min()) > 0.1


# --------------------------------------------------------------------------- 6. samplers


def _ancestral_variance(ref, s, sigma2):
    """Exact output variance of ancestral sampling with the Gaussian-optimal denoiser (every step is linear)."""
    ab, c0, ct, pv = ref["ab"], ref["c0"], ref["ct"], sigma2
    V = 1.0
    for t in range(len(ab) - 1, -1, -1):
        k = math.sqrt(1 - ab[t]) / (ab[t] * s * s + 1 - ab[t])
        A = c0[t] * (1 - math.sqrt(1 - ab[t]) * k) / math.sqrt(ab[t]) + ct[t]
        V = A * A * V + (pv[t] if t > 0 else 0.0)
    return V


def _ddim_variance(ref, s, ts, eta):
    ab = ref["ab"]
    V = 1.0
    for i, t in enumerate(ts):
        a = ab[t]
        ap = ab[ts[i + 1]] if i + 1 < len(ts) else 1.0
        k = math.sqrt(1 - a) / (a * s * s + 1 - a)
        sig = eta * math.sqrt((1 - ap) / (1 - a) * (1 - a / ap))
        A = math.sqrt(ap) * (1 - math.sqrt(1 - a) * k) / math.sqrt(a) + math.sqrt(max(1 - ap - sig * sig, 0.0)) * k
        V = A * A * V + sig * sig
    return V


def _rbg_key(seed):
    # the samplers accept any key type; RBG keys compile and run much faster than threefry on CPU
    return jax.random.key(seed, impl="rbg")


S, N_SAMPLES = 0.5, 50_000
# 5 Monte Carlo standard errors of a sample variance: 5 * V * sqrt(2 / (n - 1)) ~ 0.0016 for V=0.25 (0.6% of s^2)
_mc_tol = lambda V: 5 * V * math.sqrt(2 / (N_SAMPLES - 1))


@pytest.mark.parametrize("T, variance, rel", [(1000, "posterior", 0.02), (100, "posterior", 0.15), (100, "beta", 0.15)])
def test_ancestral_sampler_recovers_gaussian_data_variance(T, variance, rel):
    sched = ddpm.schedule_from_name("linear", T)
    ref = np_schedule(np.asarray(sched.betas, np.float64))
    x = np.asarray(
        ddpm.sample_ancestral(
            sched, gaussian_eps_fn(ref["ab"], S), (N_SAMPLES, 1), _rbg_key(0), variance=variance, clip_x0=False
        ),
        np.float64,
    )
    assert x.shape == (N_SAMPLES, 1) and np.all(np.isfinite(x))
    V = _ancestral_variance(ref, S, ref["post_var"] if variance == "posterior" else ref["betas"])
    # the exact sampler variance (a linear-Gaussian recursion) is within 2% of s^2 at T=1000; at T=100 the
    # discretisation bias is larger (posterior: 12% low, beta: 3% high), so 15%. The two T=100 cases differ
    # by 15%, far beyond the Monte Carlo tolerance, so the check below tells the variances apart
    assert abs(V - S * S) < rel * S * S, V
    assert abs(x.var(ddof=1) - V) < _mc_tol(V), (x.var(), V)
    assert abs(x.var(ddof=1) - S * S) < rel * S * S + _mc_tol(V)
    assert abs(x.mean()) < 5 * math.sqrt(V / N_SAMPLES)  # 5 standard errors


@pytest.mark.parametrize("num_steps", [50, 1000])
def test_ddim_sampler_recovers_gaussian_data_variance(num_steps):
    T = 1000
    sched = ddpm.schedule_from_name("linear", T)
    ref = np_schedule(np.asarray(sched.betas, np.float64))
    sample = jax.jit(
        lambda k, eta: ddpm.sample_ddim(
            sched, gaussian_eps_fn(ref["ab"], S), (N_SAMPLES, 1), k, num_steps=num_steps, eta=eta, clip_x0=False
        )
    )
    # independent sub-sequence: 50 (or 1000) evenly spaced timesteps, T-1 first
    ts = [round(i * (T - 1) / (num_steps - 1)) for i in range(num_steps)][::-1]
    for eta in (0.0, 1.0):
        x = np.asarray(sample(_rbg_key(1), eta), np.float64)
        assert x.shape == (N_SAMPLES, 1) and np.all(np.isfinite(x))
        V = _ddim_variance(ref, S, ts, eta)
        assert abs(x.var(ddof=1) - V) < _mc_tol(V), (eta, x.var(), V)
        assert abs(x.mean()) < 5 * math.sqrt(V / N_SAMPLES)
        # every DDIM step shrinks the variance a little (Cauchy-Schwarz), more with coarse steps and eta=1:
        # with all 1000 steps within 2% of s^2; with 50 steps within 25%
        rel = 0.02 if num_steps == T else 0.25
        assert abs(V - S * S) < rel * S * S and abs(x.var(ddof=1) - S * S) < rel * S * S + _mc_tol(V), (eta, V)


def test_sample_ancestral_deterministic_and_equals_python_loop_over_p_sample():
    T, shape = 20, (3, 4, 4, 2)
    sched = ddpm.schedule_from_name("linear", T)
    sample = jax.jit(lambda k: ddpm.sample_ancestral(sched, _toy_eps_fn, shape, k, variance="beta", clip_x0=True))
    key = jax.random.PRNGKey(11)
    out, again, other = sample(key), sample(key), sample(jax.random.PRNGKey(1))
    assert out.shape == shape and out.dtype == jnp.float32
    np.testing.assert_array_equal(out, again)  # same key, same samples
    assert np.max(np.abs(np.asarray(out) - np.asarray(other))) > 1e-3  # another key, other samples

    p_sample = jax.jit(lambda x, t, k: ddpm.p_sample(sched, _toy_eps_fn, x, t, k, variance="beta", clip_x0=True))
    k_init, k_steps = jax.random.split(key)
    x = jax.random.normal(k_init, shape)
    step_keys = jax.random.split(k_steps, T)
    for i, t in enumerate(range(T - 1, -1, -1)):  # the i-th step (t = T-1-i) uses the i-th key
        x = p_sample(x, jnp.full((shape[0],), t), step_keys[i])
    np.testing.assert_allclose(out, x, atol=1e-5)  # scan vs separate float32 steps: 1e-5


def test_sample_ddim_deterministic_and_equals_python_loop():
    """sample_ddim against a float64 loop of the DDIM step, the clipped x0 and its re-derived eps; the toy eps
    drives x0_hat outside [-1, 1] at some steps, so the clipping path is exercised (asserted)."""
    T, n, eta, shape = 40, 8, 0.7, (3, 4, 4, 2)
    sched = ddpm.schedule_from_name("cosine", T)
    ab = np_schedule(np.asarray(sched.betas, np.float64))["ab"]
    sample = jax.jit(lambda k: ddpm.sample_ddim(sched, _toy_eps_fn, shape, k, num_steps=n, eta=eta, clip_x0=True))
    key = jax.random.PRNGKey(12)
    out, again, other = sample(key), sample(key), sample(jax.random.PRNGKey(1))
    assert out.shape == shape and out.dtype == jnp.float32
    np.testing.assert_array_equal(out, again)
    assert np.max(np.abs(np.asarray(out) - np.asarray(other))) > 1e-3

    ts = [round(i * (T - 1) / (n - 1)) for i in range(n)][::-1]
    k_init, k_steps = jax.random.split(key)
    x = np.asarray(jax.random.normal(k_init, shape), np.float64)
    keys = jax.random.split(k_steps, n)
    clipped = 0
    for i, t in enumerate(ts):  # the i-th step uses the i-th key; after the last step abar_prev = 1
        a = ab[t]
        ap = ab[ts[i + 1]] if i + 1 < n else 1.0
        eps_hat = np.tanh(x) * 0.5 + 0.01 * t
        x0_raw = (x - math.sqrt(1 - a) * eps_hat) / math.sqrt(a)
        clipped += int(np.any(np.abs(x0_raw) > 1))
        x0_hat = np.clip(x0_raw, -1, 1)
        eps_hat = (x - math.sqrt(a) * x0_hat) / math.sqrt(1 - a)  # re-derived from the clipped x0 (improved-diffusion)
        sig = eta * math.sqrt((1 - ap) / (1 - a) * (1 - a / ap))
        z = np.asarray(jax.random.normal(keys[i], shape), np.float64)
        x = math.sqrt(ap) * x0_hat + math.sqrt(1 - ap - sig**2) * eps_hat + sig * z
    np.testing.assert_allclose(out, x, atol=1e-4)  # float32 scan vs float64 loop over 8 steps: 1e-4
    assert clipped >= 1


@pytest.mark.parametrize("T", [10, 100, 1000])
def test_ddim_timesteps(T):
    for n in sorted({2, 3, 7, min(50, T), T}):
        ts = ddpm.ddim_timesteps(T, n)
        assert len(ts) == n and ts[0] == T - 1 and ts[-1] == 0
        assert np.all(np.diff(ts) < 0)  # strictly descending, hence unique
        assert ts.min() >= 0 and ts.max() <= T - 1
    np.testing.assert_array_equal(ddpm.ddim_timesteps(T, T), np.arange(T)[::-1])
    for bad in (0, -1, T + 1):
        with pytest.raises(ValueError):
            ddpm.ddim_timesteps(T, bad)


def test_ddim_single_step_starts_at_last_timestep():
    T = 100
    assert list(ddpm.ddim_timesteps(T, 1)) == [T - 1]
    sched = ddpm.schedule_from_name("linear", T)
    ref = np_schedule(np.asarray(sched.betas, np.float64))
    x = ddpm.sample_ddim(sched, gaussian_eps_fn(ref["ab"], S), (N_SAMPLES, 1), _rbg_key(2), num_steps=1, clip_x0=False)
    # one step from x_{T-1} straight to E[x_0 | x_{T-1}]: variance abar s^4 / (abar s^2 + 1 - abar) ~ 0, far below 1
    assert float(jnp.var(x)) < 0.1


# --------------------------------------------------------------------------- 7. bound

BIN_CENTRES = -1 + 2 * np.arange(256) / 255  # the 256 pixel levels in [-1, 1]


def test_prior_bpd_equals_kl_to_standard_normal():
    rng = np.random.default_rng(8)
    x0 = rng.uniform(-1, 1, size=(3, 4, 4, 2)).astype(np.float32)
    for T, tol in ((10, dict(rtol=1e-5, atol=0)), (1000, dict(rtol=0, atol=1e-6))):
        sched = ddpm.make_schedule(ddpm.linear_betas(T, 0.01, 0.1)) if T == 10 else ddpm.schedule_from_name("linear", T)
        abT = np_schedule(np.asarray(sched.betas, np.float64))["ab"][-1]
        m, v = math.sqrt(abT) * x0.astype(np.float64), 1 - abT
        kl = 0.5 * (-math.log(v) + v + m**2 - 1)  # KL(N(m, v) || N(0, 1)) in nats
        expected = kl.reshape(3, -1).mean(-1) / math.log(2)
        # T=10 (beta 0.01..0.1): abar_T ~0.56, relative 1e-5. T=1000: abar_T ~4e-5 and the KL is ~1e-5 bits; float32
        # cancellation in -log v + v - 1 costs ~1e-7 absolute, so atol 1e-6 bits
        np.testing.assert_allclose(ddpm.prior_bpd(sched, f32(x0)), expected, **tol)
    assert np.all(np.asarray(ddpm.prior_bpd(ddpm.schedule_from_name("linear", 1000), f32(x0))) < 1e-4)


def _quantized_gaussian_data(seed, shape, s):
    x = np.clip(s * np.random.default_rng(seed).standard_normal(shape), -1, 1)
    return f32(np.round((x + 1) * 127.5) / 127.5 - 1)  # on the 256-level grid


def test_nll_bound_equals_prior_plus_python_loop_of_terms():
    T, s = 20, 0.5
    # short, gentle schedule (abar_T ~0.3) so that the prior term is far from negligible
    sched = ddpm.make_schedule(ddpm.linear_betas(T, 1e-3, 0.1))
    ref = np_schedule(np.asarray(sched.betas, np.float64))
    eps_fn = gaussian_eps_fn(ref["ab"], s)
    x0 = _quantized_gaussian_data(0, (3, 2, 2, 1), s)
    key = jax.random.PRNGKey(4)
    total, terms, prior = ddpm.nll_bound_bpd(sched, eps_fn, x0, key, variance="beta", clip_x0=True)
    assert total.shape == (3,) and terms.shape == (T, 3) and prior.shape == (3,)
    keys = jax.random.split(key, T)
    x064 = np.asarray(x0, np.float64)

    @jax.jit
    def term(tb, k):
        xt = ddpm.q_sample(sched, x0, tb, jax.random.normal(k, x0.shape))
        return xt, ddpm.vb_term_bpd(sched, eps_fn, x0, xt, tb, variance="beta", clip_x0=True)

    loop_terms, indep_terms = [], []
    for t in range(T):  # the t-th key draws the noise of x_t
        xt, lt = term(jnp.full((3,), t), keys[t])
        loop_terms.append(np.asarray(lt))
        # independent L_t: Gaussian-conditioning posterior vs the model, or the scipy bin mass at t=0
        xt64 = np.asarray(xt, np.float64)
        a = ref["ab"][t]
        eps_hat = math.sqrt(1 - a) * xt64 / (a * s * s + 1 - a)
        x0_hat = np.clip((xt64 - math.sqrt(1 - a) * eps_hat) / math.sqrt(a), -1, 1)
        m_model, _ = gaussian_posterior(x0_hat, xt64, ref["abp"][t], 1 - ref["betas"][t])
        v_model = ref["betas"][t] if t > 0 else ref["post_var"][1]
        if t > 0:
            m_true, v_true = gaussian_posterior(x064, xt64, ref["abp"][t], 1 - ref["betas"][t])
            kl = 0.5 * (np.log(v_model / v_true) + (v_true + (m_true - m_model) ** 2) / v_model - 1)
            indep_terms.append(kl.reshape(3, -1).mean(-1) / math.log(2))
        else:
            sd = math.sqrt(v_model)
            hi = np.where(x064 > 0.999, 1.0, scipy.stats.norm.cdf(x064 + 1 / 255, m_model, sd))
            lo = np.where(x064 < -0.999, 0.0, scipy.stats.norm.cdf(x064 - 1 / 255, m_model, sd))
            indep_terms.append(-np.log(hi - lo).reshape(3, -1).mean(-1) / math.log(2))
    loop_terms, indep_terms = np.stack(loop_terms), np.stack(indep_terms)
    # same float32 ops, scan vs loop: 1e-5 relative
    np.testing.assert_allclose(terms, loop_terms, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(total, prior + loop_terms.sum(0), rtol=1e-5)
    np.testing.assert_allclose(prior, ddpm.prior_bpd(sched, x0), rtol=1e-6)
    assert np.all(np.asarray(prior) > 0.01)  # the prior matters in the sum at this abar_T
    # float32 vs float64 re-derivation: 1e-3 relative (KLs of nearly equal Gaussians lose digits in float32)
    np.testing.assert_allclose(terms, indep_terms, rtol=1e-3, atol=1e-5)


def test_nll_bound_for_optimal_gaussian_denoiser_is_finite_positive_and_above_entropy():
    T, s, B = 1000, 0.5, 64
    sched = ddpm.schedule_from_name("linear", T)
    ab = np_schedule(np.asarray(sched.betas, np.float64))["ab"]
    x0 = _quantized_gaussian_data(1, (B, 2, 2, 1), s)
    total, terms, prior = ddpm.nll_bound_bpd(sched, gaussian_eps_fn(ab, s), x0, _rbg_key(2), variance="beta")
    total = np.asarray(total)
    assert np.all(np.isfinite(total)) and np.all(total > 0) and np.all(np.isfinite(np.asarray(terms)))
    assert np.all(np.asarray(terms)[1:] >= -1e-6)  # KL terms are non-negative (float32 slack 1e-6)
    # a bound on -log2 p(x) is, on average, at least the entropy of the quantized data per dim (scipy):
    # margin 5 standard errors of the batch mean
    edges = np.concatenate([[-np.inf], BIN_CENTRES[:-1] + 1 / 255, [np.inf]])
    p = np.diff(scipy.stats.norm.cdf(edges, scale=s))
    entropy_bits = scipy.stats.entropy(p, base=2)
    assert total.mean() > entropy_bits - 5 * total.std() / math.sqrt(B), (total.mean(), entropy_bits)


# --------------------------------------------------------------------------- 8. UNet


def _tiny_unet():
    return ddpm.UNet(ch=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,))


# XLA:CPU compile time dominates the U-Net tests; skipping the expensive LLVM passes halves it
_FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


@pytest.mark.parametrize("shape", [(2, 8, 8, 1), (1, 16, 16, 3)])
def test_unet_output_shape(shape):
    # shapes only (traced with eval_shape, no compile); the real forward pass is run in the test below
    net = _tiny_unet()
    x, t = jax.ShapeDtypeStruct(shape, jnp.float32), jax.ShapeDtypeStruct((shape[0],), jnp.int32)
    params = jax.eval_shape(net.init, _rbg_key(0), x, t)
    out = jax.eval_shape(net.apply, params, x, t)
    assert out.shape == shape and out.dtype == jnp.float32
    assert params["params"]["Conv_0"]["kernel"].shape == (3, 3, shape[-1], 16)


def test_unet_zero_init_output_and_gradients():
    net = _tiny_unet()
    sched = ddpm.schedule_from_name("linear", 100)
    x0 = f32(np.random.default_rng(0).uniform(-1, 1, (2, 8, 8, 1)))
    t_probe = jnp.array([3, 90])
    out, params = jax.jit(net.init_with_output, compiler_options=_FAST_COMPILE)(_rbg_key(1), x0, t_probe)
    assert out.shape == x0.shape and out.dtype == jnp.float32

    def loss_fn(p):
        return ddpm.training_losses(sched, lambda x, t: net.apply(p, x, t), x0, _rbg_key(2)).mean()

    step = jax.jit(jax.value_and_grad(loss_fn), compiler_options=_FAST_COMPILE)
    loss0, g0 = step(params)
    np.testing.assert_array_equal(out, 0.0)  # the final conv is zero-initialised: a fresh net predicts eps_hat = 0
    leaves = jax.tree_util.tree_leaves(g0)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in leaves)
    convs = sorted((k for k in params["params"] if k.startswith("Conv_")), key=lambda k: int(k.split("_")[1]))
    assert np.any(
        np.asarray(g0["params"][convs[-1]]["kernel"]) != 0
    )  # the zero-initialised output conv gets a gradient
    # one Adam step from zero moments moves every parameter by lr * sign(grad)
    params1 = jax.tree_util.tree_map(lambda p, g: np.asarray(p) - 1e-3 * np.sign(np.asarray(g)), params, g0)
    loss1, g1 = step(params1)
    assert float(loss1) < float(loss0)  # one step lowers this batch's loss
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree_util.tree_leaves(g1))
    # once the output conv is off zero, gradient flows back through the residual paths to the input conv
    assert np.any(np.asarray(g1["params"]["Conv_0"]["kernel"]) != 0)
    n_nonzero = sum(bool(np.any(np.asarray(g) != 0)) for g in jax.tree_util.tree_leaves(g1))
    assert n_nonzero > len(leaves) // 4


def test_a_conditional_unet_adds_a_class_embedding_to_the_unconditional_parameters_and_reads_the_labels():
    # 40 channels: GroupNorm groups of 2 (at <= 32 channels each group is one channel, and normalising it removes
    # any per-channel offset, the embeddings' included)
    small = dict(ch=40, ch_mult=(1,), num_res_blocks=1, attn_resolutions=())
    uncond, cond = ddpm.UNet(**small), ddpm.UNet(**small, num_classes=10)
    x, t = f32(np.random.default_rng(0).uniform(-1, 1, (3, 4, 4, 1))), jnp.array([3, 50, 90])
    init = jax.jit(
        lambda net, y: net.init(_rbg_key(0), x, t, y)["params"], static_argnums=0, compiler_options=_FAST_COMPILE
    )
    p0, p1 = init(uncond, None), init(cond, jnp.zeros(3, jnp.int32))
    # num_classes = 10: the unconditional parameters, same values, plus an embedding of 10 labels and the null label
    assert p1["class_embedding"]["embedding"].shape == (11, 4 * 40) and cond.null_label == 10
    jax.tree.map(np.testing.assert_array_equal, p0, {k: v for k, v in p1.items() if k != "class_embedding"})
    # off the zero-initialised convs (every block starts as the identity), the labels change the output; None is
    # the null label
    p1 = jax.jit(lambda p: jax.tree.map(lambda v: v + 0.1 * jax.random.normal(_rbg_key(1), v.shape), p))(p1)
    apply = jax.jit(lambda y: cond.apply({"params": p1}, x, t, y), compiler_options=_FAST_COMPILE)
    a, b, null = apply(jnp.array([0, 0, 0])), apply(jnp.array([1, 1, 1])), apply(jnp.full(3, 10))
    assert np.max(np.abs(np.asarray(a) - np.asarray(b))) > 1e-3
    np.testing.assert_allclose(apply(None), null, atol=1e-6)  # two compilations of the same network: float32 slack
    with pytest.raises(ValueError, match="labels need num_classes >= 1"):
        uncond.apply({"params": p0}, x, t, jnp.zeros(3, jnp.int32))
    with pytest.raises(ValueError, match=r"labels must have shape \[B\] = \(3,\)"):
        cond.apply({"params": p1}, x, t, jnp.zeros(2, jnp.int32))


def test_unet_rejects_indivisible_size():
    net = _tiny_unet()
    t = jax.ShapeDtypeStruct((1,), jnp.int32)
    with pytest.raises(ValueError):
        jax.eval_shape(net.init, _rbg_key(0), jax.ShapeDtypeStruct((1, 7, 7, 1), jnp.float32), t)
    with pytest.raises(ValueError):  # 6 is divisible by 2 but not by 4 = 2^(3-1)
        jax.eval_shape(
            ddpm.UNet(ch=16, ch_mult=(1, 2, 2), num_res_blocks=1).init,
            _rbg_key(0),
            jax.ShapeDtypeStruct((1, 6, 6, 1), jnp.float32),
            t,
        )
    with pytest.raises(ValueError):  # non-square: width 10 is not divisible by 4
        jax.eval_shape(
            ddpm.UNet(ch=16, ch_mult=(1, 2, 2), num_res_blocks=1).init,
            _rbg_key(0),
            jax.ShapeDtypeStruct((1, 8, 10, 1), jnp.float32),
            t,
        )


def test_sinusoidal_embedding_matches_numpy():
    dim = 16
    t = np.array([0, 1, 7, 250, 999])
    half = dim // 2
    w = 10_000.0 ** (-np.arange(half) / half)
    expected = np.concatenate([np.sin(t[:, None] * w), np.cos(t[:, None] * w)], axis=-1)
    # float32 rounding of t * w (|t w| <= 1000, ulp 6e-5): atol 2e-4
    np.testing.assert_allclose(sinusoidal_embedding(jnp.asarray(t), dim), expected, atol=2e-4)
    with pytest.raises(ValueError):
        sinusoidal_embedding(jnp.asarray(t), 15)


# ----------------------------------------------------------------------------- eps, x0 and v predictions


def test_eps_x0_v_round_trips():
    sched = ddpm.schedule_from_name("cosine", 200)
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    x0 = jax.random.uniform(k1, (64, 4, 4, 1), minval=-1, maxval=1)
    eps = jax.random.normal(k2, x0.shape)
    t = jax.random.randint(k3, (64,), 0, 200)
    xt = ddpm.q_sample(sched, x0, t, eps)
    v = ddpm.v_from_x0_eps(sched, x0, eps, t)
    # v = sqrt(abar) eps - sqrt(1 - abar) x0, by hand
    ab = np.asarray(sched.alpha_bars)[np.asarray(t)][:, None, None, None]
    np.testing.assert_allclose(v, np.sqrt(ab) * eps - np.sqrt(1 - ab) * x0, atol=1e-6)
    np.testing.assert_allclose(ddpm.eps_from_v(sched, xt, t, v), eps, atol=2e-4)
    np.testing.assert_allclose(ddpm.x0_from_v(sched, xt, t, v), x0, atol=2e-4)
    far = np.asarray(t) > 5  # eps from x0 divides by sqrt(1 - abar_t), tiny at the first steps
    np.testing.assert_allclose(ddpm.eps_from_x0(sched, xt, t, x0)[far], eps[far], atol=2e-3)
    for prediction in ddpm.PREDICTIONS:
        target = ddpm.prediction_target(sched, prediction, x0, eps, t)
        np.testing.assert_allclose(ddpm.eps_from_prediction(sched, prediction, target, xt, t)[far], eps[far], atol=2e-3)
    with pytest.raises(ValueError, match="unknown prediction 'score'; accepted: eps, x0, v"):
        ddpm.as_eps_fn(sched, "score", lambda x, t: x)


def gaussian_optimal_model(sched, mus, sigma, prediction):
    """model_fn(x_t, t, y=None) predicting `prediction` optimally for x_0 | c ~ N(mu_c, Sigma), c uniform over the
    rows of mus: E[x_0 | x_t, c] = mu_c + sqrt(abar) Sigma C_t^-1 (x_t - sqrt(abar) mu_c), C_t = abar Sigma +
    (1 - abar) I. y = None or len(mus) (the null label) gives the data's E[x_0 | x_t] =
    sum_c p(c | x_t) E[x_0 | x_t, c], p(c | x_t) proportional to N(x_t; sqrt(abar) mu_c, C_t); eps and v follow
    from x_0 by the kernel, written out."""
    mus = jnp.asarray(mus)
    null = len(mus)

    def model_fn(xt, t, y=None):
        ab = sched.alpha_bars[t][:, None]
        a, s = jnp.sqrt(ab), jnp.sqrt(1.0 - ab)
        prec = jnp.linalg.inv(ab[:, :, None] * sigma + (1.0 - ab)[:, :, None] * jnp.eye(2))  # C_t^-1, [B, 2, 2]
        d = xt[None] - a[None] * mus[:, None]  # x_t - sqrt(abar) mu_c, [K, B, 2]
        x0_c = mus[:, None] + a[None] * jnp.einsum("ij,bjk,cbk->cbi", sigma, prec, d)
        p_c = jax.nn.softmax(-0.5 * jnp.einsum("cbi,bij,cbj->cb", d, prec, d), axis=0)  # equal C_t: no log det
        x0_mix = jnp.sum(p_c[..., None] * x0_c, axis=0)
        if y is None:
            x0 = x0_c[0] if null == 1 else x0_mix  # one class: its own posterior mean, without the mixture's work
        else:
            x0_given_y = jnp.take_along_axis(x0_c, jnp.minimum(y, null - 1)[None, :, None], axis=0)[0]
            x0 = jnp.where((y == null)[:, None], x0_mix, x0_given_y)
        eps = (xt - a * x0) / s
        return {"x0": x0, "eps": eps, "v": a * eps - s * x0}[prediction]

    return model_fn


GAUSS_MU = jnp.array([0.3, -0.2])
GAUSS_SIGMA = jnp.array([[0.09, 0.03], [0.03, 0.04]])


MU_2D, SIGMA_2D = np.array([0.3, -0.2]), np.array([[0.09, 0.03], [0.03, 0.04]])  # correlated 2-d Gaussian data


def optimal_gaussian_predictor(sched, prediction, mu=MU_2D, sigma=SIGMA_2D):
    """The closed-form optimal predictor of data N(mu, Sigma) in `prediction`'s terms: the posterior mean
    E[x0 | x_t] = mu + a Sigma (a^2 Sigma + s^2 I)^-1 (x_t - a mu), a = sqrt(abar_t), s = sqrt(1 - abar_t), its gain
    matrices computed per t in float64; eps = (x_t - a x0) / s and v = a eps - s x0 from it."""
    ab = np.asarray(sched.alpha_bars, np.float64)
    a_all, s_all = np.sqrt(ab), np.sqrt(1.0 - ab)
    gains = f32([a * sigma @ np.linalg.inv(a * a * sigma + s * s * np.eye(len(mu))) for a, s in zip(a_all, s_all)])
    a_all, s_all, mu = f32(a_all), f32(s_all), f32(mu)

    def predict(xt, t):
        a, s = a_all[t][:, None], s_all[t][:, None]
        x0 = mu + jnp.einsum("bij,bj->bi", gains[t], xt - a * mu)
        eps = (xt - a * x0) / s
        return {"x0": x0, "eps": eps, "v": a * eps - s * x0}[prediction]

    return predict


@pytest.mark.parametrize("prediction", ddpm.PREDICTIONS)
def test_the_optimal_predictor_of_gaussian_data_samples_the_data(prediction):
    """For data N(mu, Sigma) the posterior mean E[x0 | x_t] is known in closed form; the predictor of each kind
    built from it, through as_eps_fn, makes the ancestral sampler reproduce mu and Sigma (Monte Carlo: 20k samples)."""
    sched = ddpm.schedule_from_name("linear", 1000)
    eps_fn = ddpm.as_eps_fn(sched, prediction, gaussian_optimal_model(sched, GAUSS_MU[None], GAUSS_SIGMA, prediction))
    x = ddpm.sample_ancestral(sched, eps_fn, (20_000, 2), jax.random.key(1), variance="posterior", clip_x0=False)
    x = np.asarray(x, np.float64)
    # MC standard error of the mean ~ sqrt(0.09 / 20000) = 0.002; of the covariance entries ~ 0.001
    np.testing.assert_allclose(x.mean(0), GAUSS_MU, atol=0.01)
    np.testing.assert_allclose(np.cov(x.T), GAUSS_SIGMA, atol=0.006)


# ----------------------------------------------------------------------------- classifier-free guidance

TWO_MUS = jnp.array([[0.3, -0.2], [-0.3, 0.25]])  # two classes N(mu_c, GAUSS_SIGMA), equally likely


def _toy_conditional_model(x, t, y):
    return jnp.tanh(x) * 0.5 + 0.01 * t[:, None].astype(jnp.float32) + 0.1 * y[:, None].astype(jnp.float32)


def test_guided_eps_is_the_papers_combination():
    c, u = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(ddpm.guided_eps(c, u, 0.0), c)  # w = 0: the conditional model, exactly
    np.testing.assert_array_equal(ddpm.guided_eps(c, u, -1.0), u)  # w = -1: the unconditional model, exactly
    np.testing.assert_allclose(ddpm.guided_eps(c, u, 3.0), 4.0 * c - 3.0 * u, rtol=1e-6)  # (1 + w) c - w u


@pytest.mark.parametrize("prediction", ddpm.PREDICTIONS)
def test_guidance_at_its_ends_is_the_conditional_and_the_unconditional_model(prediction):
    """guided_eps_fn at w = 0 is the conditional eps_fn (one call, the batch as it is), at w = -1 the null label's
    (one call on the doubled batch), bit for bit, whatever the network predicts."""
    sched = ddpm.schedule_from_name("linear", 100)
    x = f32(np.random.default_rng(1).normal(size=(4, 3)))
    t, y, null = jnp.array([3, 30, 60, 99]), jnp.array([0, 2, 1, 2]), 3
    seen = []

    def model_fn(xt, tt, labels):
        seen.append(tuple(labels.tolist()))
        return _toy_conditional_model(xt, tt, labels)

    cond = ddpm.as_eps_fn(sched, prediction, lambda a, b: model_fn(a, b, y))(x, t)
    uncond = ddpm.as_eps_fn(sched, prediction, lambda a, b: model_fn(a, b, jnp.full(4, null)))(x, t)
    seen.clear()
    np.testing.assert_array_equal(ddpm.guided_eps_fn(sched, prediction, model_fn, y, null, 0.0)(x, t), cond)
    assert seen == [(0, 2, 1, 2)]
    seen.clear()
    np.testing.assert_array_equal(ddpm.guided_eps_fn(sched, prediction, model_fn, y, null, -1.0)(x, t), uncond)
    assert seen == [(0, 2, 1, 2, 3, 3, 3, 3)]  # one call: the labels, then the null label
    guided = ddpm.guided_eps_fn(sched, prediction, model_fn, y, null, 2.5)(x, t)
    np.testing.assert_allclose(guided, 3.5 * np.asarray(cond, np.float64) - 2.5 * np.asarray(uncond), atol=1e-5)
    with pytest.raises(ValueError, match="w=nan must be finite"):
        ddpm.guided_eps_fn(sched, prediction, model_fn, y, null, float("nan"))


def test_guidance_is_applied_to_eps_whatever_the_network_predicts():
    """The optimal predictors of two-class Gaussian data in x_0 and v imply, guided, the eps-predictor's guided eps
    (Monte Carlo-free: the same closed form through each prediction's conversion)."""
    sched = ddpm.schedule_from_name("linear", 1000)
    rng = np.random.default_rng(2)
    x, t = f32(rng.normal(size=(6, 2))), jnp.array([10, 100, 300, 500, 800, 999])
    y = jnp.array([0, 1, 0, 1, 0, 1])
    model = lambda p: gaussian_optimal_model(sched, TWO_MUS, GAUSS_SIGMA, p)

    @jax.jit
    def eps_and_guided(x, t):
        guided = {p: ddpm.guided_eps_fn(sched, p, model(p), y, 2, 1.5)(x, t) for p in ddpm.PREDICTIONS}
        return model("eps")(x, t, y), model("eps")(x, t, jnp.full(6, 2)), guided

    eps_c, eps_u, guided = jax.tree.map(lambda a: np.asarray(a, np.float64), eps_and_guided(x, t))
    for prediction in ddpm.PREDICTIONS:
        # float32 conversions; x_0 -> eps divides by sqrt(1 - abar_10) ~ 0.035: atol 1e-4
        np.testing.assert_allclose(guided[prediction], 2.5 * eps_c - 1.5 * eps_u, atol=1e-4)


def test_the_optimal_conditional_predictor_samples_each_class_and_guidance_sharpens_it():
    """Two classes N(mu_c, Sigma): the optimal conditional eps guided at w = 0 makes the ancestral sampler reproduce
    each class's mean and covariance (10k samples a class); DDIM does too, and at w = 2 moves each class away from
    the other and narrows it along the line between the means."""
    sched = ddpm.schedule_from_name("linear", 1000)
    model_fn = gaussian_optimal_model(sched, TWO_MUS, GAUSS_SIGMA, "eps")
    n = 10_000
    labels = jnp.repeat(jnp.arange(2), n)
    eps_fn = lambda w: ddpm.guided_eps_fn(sched, "eps", model_fn, labels, 2, w)
    key = jax.random.key(1)
    x = np.asarray(
        ddpm.sample_ancestral(sched, eps_fn(0.0), (2 * n, 2), key, variance="posterior", clip_x0=False), np.float64
    )
    for c in range(2):
        xc = x[c * n : (c + 1) * n]
        # MC standard errors at 10k samples: mean sqrt(0.09 / 1e4) = 0.003, variance 0.09 sqrt(2 / 1e4) = 0.0013;
        # 5 of them, plus the T=1000 sampler's 2% variance bias (0.002): atol 0.015 and 0.008
        np.testing.assert_allclose(xc.mean(0), TWO_MUS[c], atol=0.015)
        np.testing.assert_allclose(np.cov(xc.T), GAUSS_SIGMA, atol=0.008)
    ddim = jax.jit(lambda w: ddpm.sample_ddim(sched, eps_fn(w), (2 * n, 2), key, num_steps=50, clip_x0=False))
    plain, guided = np.asarray(ddim(0.0), np.float64), np.asarray(ddim(2.0), np.float64)
    for c in range(2):
        away = np.asarray(TWO_MUS[c] - TWO_MUS[1 - c], np.float64)
        away /= np.linalg.norm(away)
        p, g = plain[c * n : (c + 1) * n], guided[c * n : (c + 1) * n]
        np.testing.assert_allclose(p.mean(0), TWO_MUS[c], atol=0.015)
        # measured: the guided mean moves ~0.2 away from the other class, the spread along the line shrinks
        assert (g.mean(0) - TWO_MUS[c]) @ away > 0.1, g.mean(0)
        assert np.var(g @ away) < 0.8 * np.var(p @ away)


def test_drop_labels_replaces_the_configured_share_by_the_null_label():
    n, rate, null = 200_000, 0.1, 10
    labels = jnp.arange(n, dtype=jnp.int32) % 10
    out = np.asarray(ddpm.drop_labels(jax.random.key(0), labels, rate, null))
    dropped = out == null
    # binomial share: 5 standard errors sqrt(rate (1 - rate) / n) = 0.0034 overall, 0.011 in each class (n / 10)
    assert abs(dropped.mean() - rate) < 5 * math.sqrt(rate * (1 - rate) / n)
    for c in range(10):
        assert abs(dropped[np.asarray(labels) == c].mean() - rate) < 5 * math.sqrt(rate * (1 - rate) / (n / 10))
    np.testing.assert_array_equal(out[~dropped], np.asarray(labels)[~dropped])  # the others are kept
    assert out.dtype == np.int32
    np.testing.assert_array_equal(ddpm.drop_labels(jax.random.key(1), labels, 0.0, null), labels)
    assert np.all(np.asarray(ddpm.drop_labels(jax.random.key(1), labels[:10], 1.0, null)) == null)
    with pytest.raises(ValueError, match="rate=1.5"):
        ddpm.drop_labels(jax.random.key(1), labels, 1.5, null)


@pytest.mark.parametrize("prediction", ddpm.PREDICTIONS)
def test_training_losses_regress_on_the_predictions_target(prediction):
    sched = ddpm.schedule_from_name("linear", 100)
    x0 = jnp.zeros((8, 4, 4, 1)) + 0.5
    key = jax.random.key(3)
    k_t, k_eps = jax.random.split(key)
    t = jax.random.randint(k_t, (8,), 0, 100)
    eps = jax.random.normal(k_eps, x0.shape)
    target = ddpm.prediction_target(sched, prediction, x0, eps, t)
    # the model that outputs the target exactly has zero loss; the one that outputs zero has ||target||^2
    perfect = lambda xt, tt: target
    np.testing.assert_allclose(ddpm.training_losses(sched, perfect, x0, key, prediction=prediction), 0, atol=1e-10)
    zero = lambda xt, tt: jnp.zeros_like(xt)
    np.testing.assert_allclose(
        ddpm.training_losses(sched, zero, x0, key, prediction=prediction),
        jnp.mean(jnp.square(target).reshape(8, -1), -1),
        rtol=1e-6,
    )


def test_min_snr_weights_are_the_papers_and_weigh_the_same_x0_error_in_every_prediction():
    """Hang et al. 2023: w = min(SNR, gamma) on the x_0 error. The same imperfect model, asked in each prediction's
    terms, then has the same weighted loss, min(SNR, gamma) ||x_0 - x0_hat||^2."""
    sched = ddpm.schedule_from_name("linear", 1000)
    t = jnp.arange(0, 1000, 37)
    ab = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))[np.asarray(t)]
    snr = ab / (1 - ab)
    np.testing.assert_allclose(ddpm.snr(sched, t), snr, rtol=1e-3)  # float32: 1 - abar_0 = 1e-4 to 4 digits
    for prediction, by_hand in (
        ("x0", np.minimum(snr, 5)),
        ("eps", np.minimum(snr, 5) / snr),
        ("v", np.minimum(snr, 5) / (snr + 1)),
    ):
        np.testing.assert_allclose(ddpm.min_snr_weight(sched, t, prediction, 5.0), by_hand, rtol=1e-3)
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    x0 = jax.random.uniform(k1, (len(t), 8), minval=-1, maxval=1)
    eps = jax.random.normal(k2, x0.shape)
    x0_hat = x0 + 0.1 * jax.random.normal(k3, x0.shape)  # an imperfect model
    xt = ddpm.q_sample(sched, x0, t, eps)
    eps_hat = ddpm.eps_from_x0(sched, xt, t, x0_hat)
    outputs = {"x0": x0_hat, "eps": eps_hat, "v": ddpm.v_from_x0_eps(sched, x0_hat, eps_hat, t)}
    x0_error = np.mean(np.square(np.asarray(x0 - x0_hat, np.float64)), -1)
    for prediction, out in outputs.items():
        err = ddpm.eps_loss(out, ddpm.prediction_target(sched, prediction, x0, eps, t))
        weighted = ddpm.min_snr_weight(sched, t, prediction, 5.0) * err
        np.testing.assert_allclose(weighted, np.minimum(snr, 5) * x0_error, rtol=2e-3)
    with pytest.raises(ValueError, match="unknown loss_weight 'p2'"):
        ddpm.training_losses(sched, lambda x, tt: x, x0, k1, loss_weight="p2")


# The spacings of diffusers' schedulers (steps_offset 0), written out for T=1000, n=10: DDIMScheduler.set_timesteps,
# and DPMSolverMultistepScheduler.set_timesteps, which takes n+1 points and drops the last (0), its last step going to
# sigma = 0.
DIFFUSERS_TIMESTEPS = {
    "ddim": (
        ddpm.ddim_timesteps,
        {
            "linspace": [999, 888, 777, 666, 555, 444, 333, 222, 111, 0],
            "leading": [900, 800, 700, 600, 500, 400, 300, 200, 100, 0],
            "trailing": [999, 899, 799, 699, 599, 499, 399, 299, 199, 99],
        },
    ),
    "dpm_solver": (
        ddpm.dpm_solver_timesteps,
        {
            "linspace": [999, 899, 799, 699, 599, 500, 400, 300, 200, 100],
            "leading": [900, 810, 720, 630, 540, 450, 360, 270, 180, 90],
            "trailing": [999, 899, 799, 699, 599, 499, 399, 299, 199, 99],
        },
    ),
}


@pytest.mark.parametrize("scheduler", DIFFUSERS_TIMESTEPS)
def test_timestep_spacings_are_diffusers(scheduler):
    timesteps, expected = DIFFUSERS_TIMESTEPS[scheduler]
    for spacing, ts in expected.items():
        assert list(timesteps(1000, 10, spacing)) == ts, spacing
    for spacing in ddpm.SPACINGS:  # every spacing: n distinct descending steps in 0..T-1
        ts = timesteps(1000, 37, spacing)
        assert len(set(ts)) == 37 and np.all(np.diff(ts) < 0) and 0 <= ts.min() and ts.max() <= 999
    with pytest.raises(ValueError, match="unknown timestep spacing 'karras'"):
        timesteps(1000, 10, "karras")


def test_ddim_runs_over_every_spacing():
    sched = ddpm.schedule_from_name("linear", 100)
    zero = lambda xt, t: jnp.zeros_like(xt)  # predicts no noise: x0_hat = x_t / sqrt(abar_t)
    for spacing in ddpm.SPACINGS:
        x = ddpm.sample_ddim(sched, zero, (4, 2), jax.random.key(0), num_steps=10, spacing=spacing)
        assert x.shape == (4, 2) and np.all(np.isfinite(x)) and np.all(np.abs(x) <= 1.0), spacing


# ----------------------------------------------------------------------------- DPM-Solver++(2M)


def test_dpm_solver_timesteps_take_1_to_T_steps():
    for spacing in ddpm.SPACINGS:  # every spacing, every n: distinct descending steps in 0..T-1; n = T takes all
        for n in (1, 2, 37, 99, 100):
            ts = ddpm.dpm_solver_timesteps(100, n, spacing)
            assert len(ts) == n and np.all(np.diff(ts) < 0) and 0 <= ts.min() and ts.max() <= 99, (spacing, n)
        assert list(ddpm.dpm_solver_timesteps(100, 100, spacing)) == list(range(99, -1, -1))
    for bad in (0, 101):
        with pytest.raises(ValueError, match="DPM-Solver num_steps must be in 1..100"):
            ddpm.dpm_solver_timesteps(100, bad)


def test_dpmpp_2m_equals_a_python_loop_of_the_papers_update():
    """Lu et al. 2022, DPM-Solver++(2M) (their Algorithm 2) in float64: lambda = log(alpha / sigma), h_i, r_i =
    h_{i-1} / h_i, first order at the first step, and the last step to sigma = 0 returning the x_0 prediction."""
    T, n, shape = 40, 8, (3, 4, 4, 2)
    sched = ddpm.schedule_from_name("cosine", T)
    ab = np_schedule(np.asarray(sched.betas, np.float64))["ab"]
    sample = jax.jit(lambda k: ddpm.sample_dpmpp_2m(sched, _toy_eps_fn, shape, k, num_steps=n, clip_x0=True))
    key = jax.random.PRNGKey(13)
    out, again, other = sample(key), sample(key), sample(jax.random.PRNGKey(1))
    assert out.shape == shape and out.dtype == jnp.float32
    np.testing.assert_array_equal(out, again)
    assert np.max(np.abs(np.asarray(out) - np.asarray(other))) > 1e-3

    ts = [int(t) for t in np.linspace(0, T - 1, n + 1).round()[::-1][:-1]]  # diffusers' linspace
    lam = lambda t: math.log(math.sqrt(ab[t]) / math.sqrt(1 - ab[t]))
    x = np.asarray(jax.random.normal(jax.random.split(key)[0], shape), np.float64)
    d_prev = h_prev = None
    for i, t in enumerate(ts):
        eps_hat = np.tanh(x) * 0.5 + 0.01 * t
        d = np.clip((x - math.sqrt(1 - ab[t]) * eps_hat) / math.sqrt(ab[t]), -1, 1)
        if i == n - 1:
            x = d  # sigma_{t_n} = 0, alpha = 1: x = sigma_n / sigma_i x - alpha_n (e^{-inf} - 1) D = D
            break
        s = ts[i + 1]
        h = lam(s) - lam(t)
        big_d = d  # first order at the first step
        if i > 0:
            r = h_prev / h
            big_d = (1 + 1 / (2 * r)) * d - 1 / (2 * r) * d_prev
        x = math.sqrt(1 - ab[s]) / math.sqrt(1 - ab[t]) * x - math.sqrt(ab[s]) * (math.exp(-h) - 1) * big_d
        d_prev, h_prev = d, h
    np.testing.assert_allclose(out, x, atol=1e-4)  # float32 scan vs float64 loop over 8 steps: 1e-4
    for spacing in ddpm.SPACINGS:
        y = ddpm.sample_dpmpp_2m(sched, lambda xt, t: jnp.zeros_like(xt), (4, 2), key, num_steps=5, spacing=spacing)
        assert y.shape == (4, 2) and np.all(np.isfinite(y)) and np.all(np.abs(y) <= 1.0), spacing


@pytest.mark.parametrize("prediction", ddpm.PREDICTIONS)
def test_dpmpp_2m_with_the_optimal_predictor_samples_gaussian_data(prediction):
    """The closed-form optimal predictor of N(mu, Sigma), in each prediction through as_eps_fn: 100 DPM-Solver++(2M)
    steps reproduce mu and Sigma. Every step is linear in x here, so the sampler's exact output moments follow from
    its linear map: mean within 5e-4 of mu, covariance within 1.3e-3 of Sigma at 100 steps (measured); 20k samples
    add Monte Carlo standard errors of ~0.002 (mean) and ~0.001 (covariance)."""
    sched = ddpm.schedule_from_name("linear", 1000)
    eps_fn = ddpm.as_eps_fn(sched, prediction, optimal_gaussian_predictor(sched, prediction))
    x = ddpm.sample_dpmpp_2m(sched, eps_fn, (20_000, 2), _rbg_key(3), num_steps=100, clip_x0=False)
    x = np.asarray(x, np.float64)
    np.testing.assert_allclose(x.mean(0), MU_2D, atol=0.01)
    np.testing.assert_allclose(np.cov(x.T), SIGMA_2D, atol=0.006)


def test_dpmpp_2m_converges_to_the_probability_flow_ode_and_beats_ddim_at_few_steps():
    """Gaussian data, the same x_T for every sampler. The probability-flow ODE of N(mu, Sigma) is solved in closed
    form (each eigen-direction of Sigma keeps its standardised coordinate: x0 = mu + sqrt(v / (abar v + 1 - abar))
    (x_T - sqrt(abar) mu) there), and DDIM with eta = 0 over all T steps is the usual reference for it. DPM-Solver++
    (2M) approaches the reference as the steps grow, with all T steps is as close to it as it is to the exact solution
    and ten times closer to that solution, and at 10-20 steps is closer to the reference than DDIM at as many steps."""
    T, n_x = 1000, 1000
    sched = ddpm.schedule_from_name("linear", T)
    eps_fn = optimal_gaussian_predictor(sched, "eps")
    key = _rbg_key(4)
    dpm = {
        n: np.asarray(ddpm.sample_dpmpp_2m(sched, eps_fn, (n_x, 2), key, num_steps=n, clip_x0=False))
        for n in (10, 20, 100, T)
    }
    ddim = {
        n: np.asarray(ddpm.sample_ddim(sched, eps_fn, (n_x, 2), key, num_steps=n, clip_x0=False)) for n in (10, 20, T)
    }
    x_T = np.asarray(jax.random.normal(jax.random.split(key)[0], (n_x, 2)), np.float64)
    abar = float(np.float64(sched.alpha_bars[-1]))
    v, q = np.linalg.eigh(SIGMA_2D)
    exact = MU_2D + ((x_T - math.sqrt(abar) * MU_2D) @ q * np.sqrt(v / (abar * v + 1 - abar))) @ q.T
    rms = lambda a, b: float(np.sqrt(np.mean(np.square(np.asarray(a, np.float64) - b))))
    reference = np.asarray(ddim[T], np.float64)
    to_reference = {n: rms(x, reference) for n, x in dpm.items()}
    # measured: 0.098, 0.046, 0.0023 at 10, 20, 100 steps; DDIM-T's own distance to the exact solution is 0.0015
    assert to_reference[10] > to_reference[20] > to_reference[100] and to_reference[100] < 0.003, to_reference
    assert to_reference[T] < 1.2 * rms(reference, exact), (to_reference[T], rms(reference, exact))  # 0.0014, 0.0015
    assert rms(dpm[T], exact) < 0.1 * rms(reference, exact), (rms(dpm[T], exact), rms(reference, exact))  # 1.3e-4
    for n in (10, 20):  # measured: 0.098 vs 0.105 at 10 steps, 0.046 vs 0.057 at 20
        assert to_reference[n] < rms(ddim[n], reference), (n, to_reference[n], rms(ddim[n], reference))


# ----------------------------------------------------------------------------- learned variance (Nichol & Dhariwal)


def test_learned_log_variance_interpolates_log_beta_and_log_posterior_variance():
    """log Sigma = u log beta_t + (1 - u) log beta~_t, u = (v + 1) / 2, against the float64 loop schedule: v = 1 is
    beta_t, v = -1 is beta~_t (t = 0 clipped to t = 1), v = 0 their geometric mean. atol 1e-5 (float32 logs)."""
    T = 50
    sched = ddpm.schedule_from_name("cosine", T)
    ref = np_schedule(np.asarray(sched.betas, np.float64))
    post = np.log(np.append(ref["post_var"][1], ref["post_var"][1:]))
    ts = jnp.arange(T)
    for v, want in [(1.0, np.log(ref["betas"])), (-1.0, post), (0.0, 0.5 * (np.log(ref["betas"]) + post))]:
        got = ddpm.learned_log_variance(sched, jnp.full((T, 3), v), ts)
        np.testing.assert_allclose(got, np.repeat(want[:, None], 3, 1), atol=1e-5)
    # p_mean_variance takes it per pixel: each pixel's own v
    v = jnp.linspace(-1, 1, T * 2).reshape(T, 2)
    _, lv, _ = ddpm.p_mean_variance(sched, jnp.zeros((T, 2)), jnp.zeros((T, 2)), ts, variance="learned", v=v)
    u = (np.asarray(v, np.float64) + 1) / 2
    np.testing.assert_allclose(lv, u * np.log(ref["betas"])[:, None] + (1 - u) * post[:, None], atol=1e-5)


def test_a_denoiser_returning_eps_and_v_samples_and_bounds_as_its_fixed_variance_does():
    """v = -1 everywhere is the posterior variance, v = 1 beta_t: the ancestral sampler (same key) and every bound
    term match the fixed variances' (exactly up to float32 rounding, atol 1e-5), except at t = 0 for 'beta', whose
    "fixedlarge" uses beta~_1 where v = 1 gives beta_0; DDIM and DPM-Solver++ use eps_hat only."""
    T = 30
    sched = ddpm.schedule_from_name("linear", T)
    eps_fn = gaussian_eps_fn(sched.alpha_bars, 0.4)
    with_v = lambda v: lambda x, t: (eps_fn(x, t), jnp.full_like(x, v))
    key, shape = jax.random.key(3), (64, 2)
    for v, variance in [(-1.0, "posterior"), (1.0, "beta")]:
        a = ddpm.sample_ancestral(sched, with_v(v), shape, key, variance="learned", clip_x0=False)
        b = ddpm.sample_ancestral(sched, eps_fn, shape, key, variance=variance, clip_x0=False)
        if variance == "posterior":  # for beta, t = 0 adds no noise either way, but the mean is the same
            np.testing.assert_allclose(a, b, atol=1e-5)
        x0 = jax.random.uniform(jax.random.key(4), (16, 2), minval=-1, maxval=1)
        _, terms_l, _ = ddpm.nll_bound_bpd(sched, with_v(v), x0, key, variance="learned", clip_x0=False)
        _, terms_f, _ = ddpm.nll_bound_bpd(sched, eps_fn, x0, key, variance=variance, clip_x0=False)
        np.testing.assert_allclose(terms_l[1:], terms_f[1:], atol=1e-5)
        if variance == "posterior":
            np.testing.assert_allclose(terms_l[0], terms_f[0], atol=1e-5)
    for sample in (ddpm.sample_ddim, ddpm.sample_dpmpp_2m):
        np.testing.assert_array_equal(
            sample(sched, with_v(0.3), shape, key, num_steps=10), sample(sched, eps_fn, shape, key, num_steps=10)
        )


@pytest.mark.parametrize("t", [10, 30, 100])
def test_the_learned_variance_minimising_l_vlb_is_the_true_reverse_variance(t):
    """For data N(0, s^2) and the exact E[eps | x_t], the v minimising E[L_t] (a grid over [-1.5, 1.5], L_t from
    training_loss_terms' 'vb' on 20k Monte Carlo x_0) is the v whose learned_log_variance is the true
    Var(x_{t-1} | x_t) of the joint Gaussian (x_{t-1}, x_t), computed in float64: within 0.03 (grid step 0.005 and
    Monte Carlo), the optimum moving from near beta_t (v ~ 0.9 at t = 10) towards beta~_t (v ~ -0.45 at t = 100;
    later the two differ by under 1% and float32 cannot place v)."""
    T, s = 1000, 0.2
    sched = ddpm.schedule_from_name("linear", T)
    ref = np_schedule(np.asarray(sched.betas, np.float64))
    eps_exact = gaussian_eps_fn(sched.alpha_bars, s)
    x0 = s * jax.random.normal(jax.random.key(0), (20_000, 1))
    tb = jnp.full((x0.shape[0],), t)

    def expected_vb(v):
        model = lambda x, tt: jnp.concatenate([eps_exact(x, tt), jnp.full_like(x, v)], axis=-1)
        return ddpm.training_loss_terms(sched, model, x0, jax.random.key(1), variance="learned", t=tb)["vb"].mean()

    grid = jnp.linspace(-1.5, 1.5, 601)
    v_best = float(grid[jnp.argmin(jax.jit(jax.vmap(expected_vb))(grid))])
    v_prev = ref["abp"][t] * s * s + 1 - ref["abp"][t]  # Var(x_{t-1}); x_t = sqrt(alpha) x_{t-1} + sqrt(beta) z
    alpha, beta = 1 - ref["betas"][t], ref["betas"][t]
    true = v_prev - alpha * v_prev**2 / (alpha * v_prev + beta)
    log_lo, log_hi = math.log(ref["post_var"][t]), math.log(beta)
    v_true = 2 * (math.log(true) - log_lo) / (log_hi - log_lo) - 1
    assert -1 < v_true < 1
    assert v_best == pytest.approx(v_true, abs=0.03)


def test_the_hybrid_loss_trains_the_mean_by_l_simple_and_the_variance_by_l_vlb():
    """loss = mse + vlb_weight * T * vb, vb being vb_term_bpd of the output's eps and v; the mean's parameter gets
    the gradient of the mse alone (L_vlb's is stopped), the variance's that of vlb_weight * T * vb alone."""
    T = 40
    sched = ddpm.schedule_from_name("linear", T)
    x0 = jax.random.uniform(jax.random.key(0), (32, 3), minval=-1, maxval=1)
    key = jax.random.key(1)

    def terms(params, weight=0.001):
        model = lambda x, t: jnp.concatenate([params["a"] * jnp.tanh(x), params["b"] + 0 * x], axis=-1)
        return ddpm.training_loss_terms(sched, model, x0, key, variance="learned", vlb_weight=weight)

    params = {"a": jnp.float32(0.7), "b": jnp.float32(0.2)}
    out = terms(params)
    # the same x_t and t, recomputed by hand: eps = N(0, I) from the loss's key split, as training_loss_terms draws
    t, eps = out["t"], jax.random.normal(jax.random.split(key)[1], x0.shape)
    xt = ddpm.q_sample(sched, x0, t, eps)
    eps_hat = 0.7 * jnp.tanh(xt)
    np.testing.assert_allclose(out["mse"], np.mean((np.asarray(eps) - np.asarray(eps_hat)) ** 2, -1), rtol=1e-5)
    vb = ddpm.vb_term_bpd(
        sched, lambda *_: (eps_hat, jnp.full_like(xt, 0.2)), x0, xt, t, variance="learned", clip_x0=False
    )
    np.testing.assert_allclose(out["vb"], vb, rtol=1e-5)
    np.testing.assert_allclose(out["loss"], out["mse"] + 0.001 * T * out["vb"], rtol=1e-6)
    g = jax.grad(lambda p: terms(p)["loss"].mean())(params)
    g_mse = jax.grad(lambda p: terms(p)["mse"].mean())(params)
    g_vb = jax.grad(lambda p: 0.001 * T * terms(p)["vb"].mean())(params)
    assert float(g_vb["a"]) == 0.0 and float(g_mse["b"]) == 0.0 and float(g_vb["b"]) != 0.0
    np.testing.assert_allclose(float(g["a"]), float(g_mse["a"]), rtol=1e-6)
    np.testing.assert_allclose(float(g["b"]), float(g_vb["b"]), rtol=1e-6)
    # fixed variances: vb is 0 and the loss is the simple one, as training_losses gives it
    fixed = ddpm.training_loss_terms(sched, lambda x, t: jnp.tanh(x), x0, key)
    np.testing.assert_array_equal(fixed["vb"], 0.0)
    np.testing.assert_array_equal(fixed["loss"], ddpm.training_losses(sched, lambda x, t: jnp.tanh(x), x0, key))


@pytest.mark.parametrize("variance", ["posterior", "learned"])
def test_the_kl_loss_is_l_vlb_alone_through_mean_and_variance(variance):
    """loss='kl': 'loss' is vb_term_bpd of the output (eps and, if learned, v) recomputed by hand at the same x_t
    and t, and unlike the hybrid's L_vlb its gradient reaches the mean's parameter; a weight over t is refused."""
    T = 40
    sched = ddpm.schedule_from_name("linear", T)
    x0 = jax.random.uniform(jax.random.key(0), (32, 3), minval=-1, maxval=1)
    key = jax.random.key(1)
    learned = variance == "learned"

    def terms(params):
        model = lambda x, t: (
            jnp.concatenate([params["a"] * jnp.tanh(x), params["b"] + 0 * x], -1)
            if learned
            else params["a"] * jnp.tanh(x)
        )
        return ddpm.training_loss_terms(sched, model, x0, key, variance=variance, loss="kl")

    params = {"a": jnp.float32(0.7), "b": jnp.float32(0.2)}
    out = terms(params)
    t, eps = out["t"], jax.random.normal(jax.random.split(key)[1], x0.shape)
    xt = ddpm.q_sample(sched, x0, t, eps)
    eps_hat = 0.7 * jnp.tanh(xt)
    fn = (lambda *_: (eps_hat, jnp.full_like(xt, 0.2))) if learned else (lambda *_: eps_hat)
    vb = ddpm.vb_term_bpd(sched, fn, x0, xt, t, variance=variance, clip_x0=False)
    np.testing.assert_allclose(out["loss"], vb, rtol=1e-5)
    np.testing.assert_array_equal(out["vb"], out["loss"])
    g = jax.grad(lambda p: terms(p)["loss"].mean())(params)
    assert float(g["a"]) != 0.0 and (float(g["b"]) != 0.0) == learned
    with pytest.raises(ValueError, match="no weight over t"):
        ddpm.training_loss_terms(sched, lambda x, t: x, x0, key, loss="kl", loss_weight="min_snr")
    with pytest.raises(ValueError, match="accepted: mse, kl"):
        ddpm.training_loss_terms(sched, lambda x, t: x, x0, key, loss="l1")


def test_the_loss_history_keeps_the_last_values_of_each_timestep():
    """update_loss_history against a Python loop of per-timestep lists cut to their last K values."""
    T, K = 7, 4
    rng = np.random.default_rng(0)
    hist = ddpm.loss_history(T, K)
    ref = {t: [] for t in range(T)}
    for _ in range(6):
        t = rng.integers(0, T, 9)  # repeats within a batch are appended in order
        losses = rng.uniform(0, 3, 9).astype(np.float32)
        hist = jax.jit(ddpm.update_loss_history)(hist, t, losses)
        for ti, li in zip(t, losses):
            ref[ti] = (ref[ti] + [li])[-K:]
    for ti in range(T):
        assert int(hist.counts[ti]) == len(ref[ti])
        np.testing.assert_array_equal(hist.values[ti, : len(ref[ti])], ref[ti])


def test_importance_sampling_follows_the_second_moments_and_its_weights_are_unbiased():
    """Uniform until every timestep's history is full; then p_t = (1 - u) rms_t / sum rms + u / T; draws follow p
    (200k draws, atol 0.004) and the weights 1 / (T p_t) make E_p[w L_t] = mean_t L_t (exactly, in float64)."""
    T, K = 5, 3
    hist = ddpm.loss_history(T, K)
    hist = ddpm.update_loss_history(hist, jnp.array([0, 1, 2, 3]), jnp.ones(4))
    np.testing.assert_allclose(ddpm.importance_probs(hist), np.full(T, 1 / T), rtol=1e-6)  # t = 4 is not seen yet
    values = np.array([[1, 1, 1], [2, 2, 2], [0.5, 1.5, 1.0], [4, 0, 0], [3, 3, 3]], np.float32)
    t = np.repeat(np.arange(T), K)
    hist = ddpm.update_loss_history(ddpm.loss_history(T, K), t, values.reshape(-1))
    rms = np.sqrt(np.mean(values.astype(np.float64) ** 2, axis=1))
    want = 0.9 * rms / rms.sum() + 0.1 / T
    p = np.asarray(ddpm.importance_probs(hist, uniform_share=0.1), np.float64)
    np.testing.assert_allclose(p, want, rtol=1e-6)
    ts, w = ddpm.importance_timesteps(jax.random.key(0), hist, 200_000, uniform_share=0.1)
    np.testing.assert_allclose(np.bincount(np.asarray(ts), minlength=T) / len(ts), want, atol=0.004)
    np.testing.assert_allclose(np.asarray(w), 1 / (T * p[np.asarray(ts)]), rtol=1e-5)
    L = rms
    assert float(np.sum(p * (1 / (T * p)) * L)) == pytest.approx(L.mean(), rel=1e-12)


def test_a_learned_variance_unet_outputs_the_prediction_and_v():
    """learned_variance doubles the output channels (zero-initialised: v = 0, the geometric mean of the two)."""
    net = ddpm.UNet(ch=8, ch_mult=(1,), num_res_blocks=1, attn_resolutions=(), learned_variance=True)
    x, t = jax.ShapeDtypeStruct((2, 4, 4, 3), jnp.float32), jax.ShapeDtypeStruct((2,), jnp.int32)
    params = jax.eval_shape(net.init, _rbg_key(0), x, t)
    assert jax.eval_shape(net.apply, params, x, t).shape == (2, 4, 4, 6)


def test_the_learned_variance_kl_term_is_a_monte_carlo_kl():
    """vb_term_bpd with a per-pixel learned variance, t > 0, against log q(x_{t-1} | x_t, x_0) - log p_theta(x_{t-1}
    | x_t) averaged over 400k draws from q per pixel (scipy densities; standard error ~ 0.3% here: rtol 2%)."""
    T = 100
    sched = ddpm.schedule_from_name("linear", T)
    rng = np.random.default_rng(3)
    t = jnp.array([2, 40, 90])
    x0 = f32(rng.uniform(-1, 1, (3, 4)))
    xt = ddpm.q_sample(sched, x0, t, f32(rng.normal(size=(3, 4))))
    eps_hat, v = f32(rng.normal(size=(3, 4))), f32(rng.uniform(-1, 1, (3, 4)))
    bpd = np.asarray(ddpm.vb_term_bpd(sched, lambda *_: (eps_hat, v), x0, xt, t, variance="learned", clip_x0=False))
    q_mean, _, q_log_var = ddpm.q_posterior(sched, x0, xt, t)
    p_mean, p_log_var, _ = ddpm.p_mean_variance(sched, eps_hat, xt, t, variance="learned", clip_x0=False, v=v)
    q_mean, q_sd = np.asarray(q_mean, np.float64), np.exp(0.5 * np.asarray(q_log_var, np.float64))
    p_mean, p_sd = np.asarray(p_mean, np.float64), np.exp(0.5 * np.asarray(p_log_var, np.float64))
    draws = q_mean + q_sd * rng.normal(size=(400_000, 3, 4))
    log_ratio = scipy.stats.norm.logpdf(draws, q_mean, q_sd) - scipy.stats.norm.logpdf(draws, p_mean, p_sd)
    mc = log_ratio.mean(axis=0).mean(axis=-1) / math.log(2.0)
    np.testing.assert_allclose(bpd, mc, rtol=0.02)


def test_guidance_of_a_learned_variance_model_guides_eps_and_keeps_the_conditional_v():
    """guided_eps_fn with learned_variance: ((1 + w) eps_c - w eps_null, v_c), from the model's [prediction, v]
    output computed by hand per label."""
    sched = ddpm.schedule_from_name("linear", 50)
    model = lambda x, t, y: jnp.concatenate([jnp.tanh(x) + 0.1 * y[:, None], 0.5 * x - 0.05 * y[:, None]], axis=-1)
    x, t, y = f32(np.random.default_rng(0).normal(size=(4, 3))), jnp.array([1, 10, 30, 49]), jnp.array([0, 1, 2, 1])
    eps, v = ddpm.guided_eps_fn(sched, "eps", model, y, 3, 2.0, learned_variance=True)(x, t)
    cond, null = np.split(np.asarray(model(x, t, y)), 2, axis=-1), np.split(np.asarray(model(x, t, 0 * y + 3)), 2, -1)
    np.testing.assert_allclose(eps, 3.0 * cond[0] - 2.0 * null[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v, cond[1], rtol=1e-6)
