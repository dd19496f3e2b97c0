"""zoo.edm against the paper's closed forms, diffusers' values (written out: diffusers 0.42.1 with torch 2.13 on
this machine's CPU, the script in each test's docstring) and samplers run with the exact denoiser of Gaussian data,
whose probability-flow ODE has a closed-form solution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import ddpm, edm

MU = np.array([0.3, -0.2], np.float32)
VAR = np.array([0.04, 0.25], np.float32)  # diagonal covariance of the Gaussian data
SAMPLE = {"euler": edm.sample_euler, "heun": edm.sample_heun, "dpmpp_2m": edm.sample_dpmpp_2m}


def exact_denoiser(x, sigma):
    """E[y | y + sigma n = x] for y ~ N(MU, diag VAR): MU + VAR / (VAR + sigma^2) (x - MU)."""
    s2 = jnp.square(sigma).reshape(-1, *([1] * (x.ndim - 1)))
    return MU + VAR / (VAR + s2) * (x - MU)


def exact_ode_solution(x_start, sigma_start):
    """The probability-flow ODE from sigma_start to 0: x - MU scales by sqrt((VAR + sigma^2) / (VAR + sigma0^2))."""
    return MU + np.sqrt(VAR / (VAR + sigma_start**2)) * (x_start - MU)


# ----------------------------------------------------------------------------- the forms


def test_karras_sigmas_are_diffusers_edm_schedulers():
    """diffusers.EDMEulerScheduler().set_timesteps(6).sigmas (sigma_min 0.002, sigma_max 80, rho 7)."""
    theirs = [80.0, 24.408342361450195, 5.8389477729797363, 0.96541690826416016, 0.085087202489376068, 0.002, 0.0]
    np.testing.assert_allclose(edm.karras_sigmas(6), theirs, rtol=1e-6)
    one = edm.karras_sigmas(1, 0.1, 10.0)
    np.testing.assert_allclose(one, [10.0, 0.0], rtol=1e-12)
    s = edm.karras_sigmas(18)
    roots = s[:-1] ** (1 / 7)  # evenly spaced in sigma^(1/rho), from sigma_max to sigma_min
    np.testing.assert_allclose(np.diff(roots), np.diff(roots)[0], rtol=1e-9)
    assert s[0] == pytest.approx(80.0) and s[-2] == pytest.approx(0.002) and s[-1] == 0


def test_edm_preconditioning_is_diffusers_edm_schedulers():
    """diffusers.EDMEulerScheduler()'s precondition_inputs / precondition_noise / precondition_outputs at sigma =
    0.002, 0.5, 3, 80 (sigma_data 0.5)."""
    sigma = np.array([0.002, 0.5, 3.0, 80.0])
    c_skip, c_out, c_in, c_noise = (np.asarray(a) for a in edm.preconditioning(sigma))
    np.testing.assert_allclose(c_in, [1.9999840259552, 1.4142135381699, 0.32879799604415, 0.012499755248427], rtol=1e-6)
    np.testing.assert_allclose(
        c_noise, [-1.553652048110962, -0.1732867956161, 0.2746530771255, 1.0955066680908], rtol=1e-6
    )
    np.testing.assert_allclose(
        c_out, [0.0019999840296805, 0.35355338454246, 0.49319699406624, 0.49999022483826], rtol=1e-6
    )
    np.testing.assert_allclose(c_skip, [0.9999840259552, 0.5, 0.027027027681470, 3.9060974813765e-05], rtol=1e-5)


@pytest.mark.parametrize("sigma_data", [0.5, 1.3])
def test_preconditioning_gives_unit_variance_network_inputs_and_targets(sigma_data):
    """For data of variance sd^2 (here uniform, not Gaussian) and every sigma: c_in (y + sigma n) and the effective
    target (y - c_skip (y + sigma n)) / c_out have unit variance (the paper's eqs. 114-117), and lambda = 1 / c_out^2,
    so the loss weights the network's error equally at every sigma; closed form and Monte Carlo (200k draws)."""
    sigma = np.array([0.002, 0.05, 0.5, 2.0, 80.0], np.float32)
    c_skip, c_out, c_in, _ = (np.asarray(a, np.float64) for a in edm.preconditioning(sigma, "edm", sigma_data))
    np.testing.assert_allclose(c_in**2 * (sigma_data**2 + sigma.astype(np.float64) ** 2), 1.0, rtol=1e-6)
    target_var = ((1 - c_skip) ** 2 * sigma_data**2 + c_skip**2 * sigma.astype(np.float64) ** 2) / c_out**2
    np.testing.assert_allclose(target_var, 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(edm.loss_weight(sigma, "edm", sigma_data)), 1 / c_out**2, rtol=1e-5)
    rng = np.random.default_rng(0)
    y = rng.uniform(-1, 1, (200_000, 1)) * sigma_data * np.sqrt(3)  # variance sd^2
    noisy = y + sigma * rng.normal(size=(200_000, len(sigma)))
    np.testing.assert_allclose((c_in * noisy).var(0), 1.0, rtol=0.02)
    np.testing.assert_allclose(((y - c_skip * noisy) / c_out).var(0), 1.0, rtol=0.02)


def test_vp_and_ve_forms_as_table_1_writes_them():
    t = np.linspace(1e-3, 1.0, 7)
    sigma = np.sqrt(np.expm1(0.5 * 19.9 * t**2 + 0.1 * t))
    np.testing.assert_allclose(np.asarray(edm.vp_sigma(t)), sigma, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(edm.vp_sigma_inv(sigma)), t, rtol=1e-4)
    c_skip, c_out, c_in, c_noise = (np.asarray(a) for a in edm.preconditioning(sigma, "vp"))
    np.testing.assert_allclose(c_out, -sigma, rtol=1e-6)
    np.testing.assert_allclose(c_in, 1 / np.sqrt(sigma**2 + 1), rtol=1e-6)
    np.testing.assert_allclose(c_noise, 999 * t, rtol=1e-4)
    assert np.all(c_skip == 1)
    c_skip, c_out, c_in, c_noise = (np.asarray(a) for a in edm.preconditioning(sigma, "ve"))
    np.testing.assert_allclose(c_out, sigma, rtol=1e-6) and np.testing.assert_allclose(
        c_noise, np.log(sigma / 2), rtol=1e-5
    )
    assert np.all(c_skip == 1) and np.all(c_in == 1)
    np.testing.assert_allclose(np.asarray(edm.loss_weight(sigma, "vp")), 1 / sigma**2, rtol=1e-5)


def test_training_noise_levels_follow_each_forms_distribution():
    """200k draws: ln sigma ~ N(-1.2, 1.2^2) for edm; t(sigma) ~ U(1e-5, 1) for vp; ln sigma ~ U(ln 0.02, ln 100) for
    ve (means within 5 standard errors, ranges exact)."""
    key, n = jax.random.key(0), 200_000
    log_s = np.log(np.asarray(edm.sample_sigmas(key, n, "edm")))
    assert abs(log_s.mean() + 1.2) < 5 * 1.2 / np.sqrt(n) and log_s.std() == pytest.approx(1.2, rel=0.01)
    t = np.asarray(edm.vp_sigma_inv(edm.sample_sigmas(key, n, "vp")))
    assert t.min() >= 1e-5 - 1e-6 and t.max() <= 1 + 1e-5 and abs(t.mean() - 0.5) < 5 * np.sqrt(1 / 12 / n)
    log_s = np.log(np.asarray(edm.sample_sigmas(key, n, "ve")))
    lo, hi = np.log(0.02), np.log(100.0)
    assert lo - 1e-5 <= log_s.min() and log_s.max() <= hi + 1e-5
    assert abs(log_s.mean() - (lo + hi) / 2) < 5 * (hi - lo) / np.sqrt(12 * n)


@pytest.mark.parametrize("form", edm.FORMS)
def test_denoiser_loss_is_the_weighted_error_at_the_drawn_levels(form):
    """With F = 1 everywhere, D = c_skip x + c_out: the loss is lambda(sigma) mean((c_skip (y + sigma n) + c_out -
    y)^2), sigma and n drawn from the key's two halves as sample_sigmas and normal draw them."""
    y = jax.random.uniform(jax.random.key(1), (6, 4, 4, 1), minval=-1, maxval=1)
    denoise = edm.precondition(lambda x, c_noise: jnp.ones_like(x), form)
    key = jax.random.key(2)
    losses, sigma = edm.denoiser_loss(denoise, y, key, form)
    k_sigma, k_noise = jax.random.split(key)
    np.testing.assert_array_equal(sigma, edm.sample_sigmas(k_sigma, 6, form))
    noisy = y + sigma[:, None, None, None] * jax.random.normal(k_noise, y.shape)
    c_skip, c_out, _, _ = edm.preconditioning(sigma, form)
    d = c_skip[:, None, None, None] * noisy + c_out[:, None, None, None]
    expected = edm.loss_weight(sigma, form) * jnp.square(d - y).reshape(6, -1).mean(-1)
    np.testing.assert_allclose(losses, expected, rtol=1e-5)


# ----------------------------------------------------------------------------- samplers, with the exact denoiser


def _moments(x):
    x = np.asarray(x, np.float64)
    return x.mean(0), x.var(0)


def _start_variance(key, shape):
    """The variance of each dimension of the start noise the samplers draw from key (sigma_0 n, k_init's n): a
    deterministic sampler's output variance is VAR times it, up to the discretization error, free of sampling error."""
    k_init, _ = jax.random.split(key)
    return np.asarray(jax.random.normal(k_init, shape), np.float64).var(0)


@pytest.mark.parametrize(
    "sampler, num_steps, rtol", [("euler", 256, 0.04), ("heun", 64, 0.015), ("dpmpp_2m", 64, 0.015)]
)
def test_each_sampler_with_the_exact_denoiser_reproduces_the_datas_mean_and_covariance(sampler, num_steps, rtol):
    """100k draws of 2-d Gaussian data from sigma 80: mean within 0.01, variances within rtol of VAR times the start
    noise's own variance. (Measured: Euler 0.956 of it at 128 steps, 0.91 at 64; Heun and DPM-Solver++(2M) 1.04 at
    32 steps, 1.007 at 64: the data's std of 0.2 against sigma_data 0.5 puts the ODE's curvature at small sigma.)"""
    fn = SAMPLE[sampler]
    key, shape = jax.random.key(3), (100_000, 2)
    x = jax.jit(lambda k: fn(exact_denoiser, edm.karras_sigmas(num_steps), shape, k))(key)
    mean, var = _moments(x)
    np.testing.assert_allclose(mean, MU, atol=0.01)
    np.testing.assert_allclose(var, VAR * _start_variance(key, shape), rtol=rtol)


def test_the_stochastic_sampler_with_churn_reproduces_them_too():
    """Algorithm 2 with gamma at its cap sqrt(2) - 1 between S_tmin 0.05 and S_tmax 50, on 256 steps: mean within
    0.01, variances within 3% (2.1-2.4% over at 128 steps, 0.5-0.7% at 256: the churn needs more steps)."""
    x = edm.sample_heun(
        exact_denoiser, edm.karras_sigmas(256), (100_000, 2), jax.random.key(4), s_churn=320, s_tmin=0.05, s_tmax=50
    )
    mean, var = _moments(x)
    np.testing.assert_allclose(mean, MU, atol=0.01)
    np.testing.assert_allclose(var, VAR, rtol=0.03)


def _ode_error(fn, num_steps):
    """Max abs error of a deterministic sampler against the exact ODE solution from the same start."""
    sigmas = edm.karras_sigmas(num_steps, sigma_min=0.01, sigma_max=10.0)
    key = jax.random.key(5)
    x = np.asarray(fn(exact_denoiser, sigmas, (256, 2), key), np.float64)
    k_init, _ = jax.random.split(key)
    start = sigmas[0] * np.asarray(jax.random.normal(k_init, (256, 2)), np.float64)
    return np.abs(x - exact_ode_solution(start, sigmas[0])).max()


@pytest.mark.parametrize("sampler, order", [("euler", 1), ("heun", 2), ("dpmpp_2m", 2)])
def test_convergence_order_in_the_step_count(sampler, order):
    """Doubling the steps from 16 to 32 divides the error against the exact ODE solution by about 2^order."""
    fn = SAMPLE[sampler]
    ratio = _ode_error(fn, 16) / _ode_error(fn, 32)
    assert 2**order * 0.75 < ratio < 2**order * 1.4, ratio


def network_calls(sample, model, *args) -> int:
    """How many times jit(sample)(model counted, *args, key) calls the model: a debug callback counts them at run
    time (a call in a branch lax.cond does not take is not counted)."""
    calls = []

    def counted(*inputs):
        jax.debug.callback(lambda: calls.append(1))
        return model(*inputs)

    jax.block_until_ready(jax.jit(lambda k: sample(counted, *args, k))(jax.random.key(0)))
    jax.effects_barrier()
    return len(calls)


@pytest.mark.parametrize("sampler", edm.SAMPLERS)
def test_each_sampler_calls_the_network_num_evaluations_times(sampler):
    calls = network_calls(SAMPLE[sampler], exact_denoiser, edm.karras_sigmas(7), (4, 2))
    assert calls == edm.num_evaluations(sampler, 7) == (13 if sampler == "heun" else 7)


# ----------------------------------------------------------------------------- a DDPM sampled on Karras sigmas


def test_ddpm_karras_sigmas_and_timesteps_are_diffusers():
    """diffusers' EulerDiscreteScheduler(beta_schedule='linear', use_karras_sigmas=True).set_timesteps(10): its
    sigmas span the trained ones (sigma_0 .. sigma_999) and its timesteps interpolate log sigma. diffusers computes
    abar in float32, so sigma_0 differs by 1e-4 relative."""
    sched = ddpm.schedule_from_name("linear", 1000)
    trained = edm.ddpm_sigmas(sched)
    sigmas = edm.karras_sigmas(10, trained[0], trained[-1])
    theirs = [157.40727233886719, 85.710731506347656, 44.047649383544922, 21.10560417175293, 9.2747402191162109,
              3.6526403427124023, 1.2463603019714355, 0.34970614314079285, 0.073930285871028900, 0.010001329705119133,
              0.0]  # fmt: skip
    np.testing.assert_allclose(sigmas, theirs, rtol=2e-4)
    timesteps = [999.0, 936.9221801757812, 863.8296508789062, 775.1343383789062, 662.638916015625, 510.7070007324219,
                 300.9902648925781, 102.16522979736328, 18.309188842773438, 0.0]  # fmt: skip
    np.testing.assert_allclose(np.asarray(edm.ddpm_timestep(sched, jnp.asarray(sigmas[:-1]))), timesteps, atol=0.05)


@pytest.mark.parametrize("prediction", ddpm.PREDICTIONS)
def test_ddpm_denoiser_inverts_each_prediction(prediction):
    """A DDPM network built from the exact denoiser (x_t = alpha x, abar = 1 / (1 + sigma^2) at the fractional
    timestep's sigma, its eps, x0 or v written from D as zoo.ddpm writes them) is, through ddpm_denoiser, D again."""
    sched = ddpm.schedule_from_name("cosine", 1000)
    log_sigmas = np.log(edm.ddpm_sigmas(sched)).astype(np.float32)

    def model_fn(xt, t):
        sigma = jnp.exp(jnp.interp(t, jnp.arange(1000.0), log_sigmas))
        ab = (1 / (1 + sigma**2))[:, None]
        x0 = exact_denoiser(xt / jnp.sqrt(ab), sigma)
        eps = (xt - jnp.sqrt(ab) * x0) / jnp.sqrt(1 - ab)
        return {"eps": eps, "x0": x0, "v": jnp.sqrt(ab) * eps - jnp.sqrt(1 - ab) * x0}[prediction]

    denoise = edm.ddpm_denoiser(sched, prediction, model_fn)
    x = jax.random.normal(jax.random.key(6), (5, 2)) * 3
    sigma = jnp.array([0.05, 0.3, 1.0, 7.0, 60.0])
    np.testing.assert_allclose(denoise(x, sigma), exact_denoiser(x, sigma), rtol=2e-4, atol=2e-5)


def test_a_ddpm_model_samples_on_karras_sigmas():
    """The exact eps-model of Gaussian data on the linear schedule, on 64 Karras steps with DPM-Solver++(2M) from
    the largest trained sigma (157): mean within 0.01, variances within 1.5% of VAR times the start noise's."""
    sched = ddpm.schedule_from_name("linear", 1000)
    trained = edm.ddpm_sigmas(sched)
    log_sigmas = np.log(trained).astype(np.float32)

    def eps_model(xt, t):
        sigma = jnp.exp(jnp.interp(t, jnp.arange(1000.0), log_sigmas))
        ab = (1 / (1 + sigma**2))[:, None]
        return (xt - jnp.sqrt(ab) * exact_denoiser(xt / jnp.sqrt(ab), sigma)) / jnp.sqrt(1 - ab)

    denoise = edm.ddpm_denoiser(sched, "eps", eps_model)
    key, shape = jax.random.key(7), (100_000, 2)
    x = edm.sample_dpmpp_2m(denoise, edm.karras_sigmas(64, trained[0], trained[-1]), shape, key)
    mean, var = _moments(x)
    np.testing.assert_allclose(mean, MU, atol=0.01)
    np.testing.assert_allclose(var, VAR * _start_variance(key, shape), rtol=0.015)


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="form='vpp' is not one of edm, vp, ve"):
        edm.preconditioning(1.0, "vpp")
    with pytest.raises(ValueError, match="num_steps must be a positive integer, got 0"):
        edm.karras_sigmas(0)
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        edm.karras_sigmas(4, 10.0, 1.0)
    with pytest.raises(ValueError, match="prediction='score'"):
        edm.ddpm_denoiser(ddpm.schedule_from_name("linear", 10), "score", None)
    with pytest.raises(ValueError, match="sampler='lms'"):
        edm.num_evaluations("lms", 4)


def test_euler_on_karras_sigmas_steps_as_diffusers_does():
    """Optional (the `diffusers-check` extra): diffusers' EulerDiscreteScheduler(use_karras_sigmas=True) on the
    exact eps-model of Gaussian data and the linear schedule, 10 steps from the same noise, against sample_euler on
    ddpm_denoiser of the same model; EDMEulerScheduler on the exact EDM network (F = (D - c_skip x) / c_out) against
    sample_euler on its preconditioning."""
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    sched = ddpm.schedule_from_name("linear", 1000)
    log_sigmas = np.log(edm.ddpm_sigmas(sched)).astype(np.float32)

    def eps_model(xt, t):
        sigma = jnp.exp(
            jnp.interp(jnp.broadcast_to(jnp.asarray(t, jnp.float32), xt.shape[:1]), jnp.arange(1000.0), log_sigmas)
        )
        ab = (1 / (1 + sigma**2))[:, None]
        return (xt - jnp.sqrt(ab) * exact_denoiser(xt / jnp.sqrt(ab), sigma)) / jnp.sqrt(1 - ab)

    theirs = diffusers.EulerDiscreteScheduler(
        num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", use_karras_sigmas=True
    )
    theirs.set_timesteps(10)
    key, shape = jax.random.key(8), (64, 2)
    ours = edm.sample_euler(
        edm.ddpm_denoiser(sched, "eps", eps_model), np.asarray(theirs.sigmas, np.float64), shape, key
    )
    k_init, _ = jax.random.split(key)
    x = torch.from_numpy(np.array(jax.random.normal(k_init, shape))) * theirs.init_noise_sigma
    for t in theirs.timesteps:
        eps = eps_model(jnp.asarray(theirs.scale_model_input(x, t).numpy()), float(t))
        x = theirs.step(torch.from_numpy(np.array(eps)), t, x).prev_sample
    np.testing.assert_allclose(np.asarray(ours), x.numpy(), rtol=1e-3, atol=1e-3)

    theirs = diffusers.EDMEulerScheduler()
    theirs.set_timesteps(12)

    def net(x_in, c_noise):  # the exact F, from c_noise back to sigma
        sigma = jnp.exp(4 * jnp.asarray(c_noise, jnp.float32)) * jnp.ones(x_in.shape[:1])
        c_skip, c_out, c_in, _ = edm.preconditioning(sigma)
        x = x_in / c_in[:, None]
        return (exact_denoiser(x, sigma) - c_skip[:, None] * x) / c_out[:, None]

    ours = edm.sample_euler(edm.precondition(net), edm.karras_sigmas(12), shape, key)
    x = torch.from_numpy(np.array(jax.random.normal(k_init, shape))) * theirs.init_noise_sigma
    for t in theirs.timesteps:
        out = net(jnp.asarray(theirs.scale_model_input(x, t).numpy()), float(t))
        x = theirs.step(torch.from_numpy(np.array(out)), t, x).prev_sample
    np.testing.assert_allclose(np.asarray(ours), x.numpy(), rtol=1e-3, atol=1e-3)
