"""Elucidating the design space of diffusion models (Karras, Aittala, Aila & Laine 2022, "EDM"), the math in one module.

It reads as the paper's Table 1. A diffusion is x = s(t) (y + sigma(t) n), y the data, n ~ N(0, I); every sampler
here works in the scaled-out coordinates x / s(t), where the marginal at noise level sigma is the data plus
N(0, sigma^2 I) and the probability-flow ODE is dx/dsigma = (x - D(x; sigma)) / sigma, D the denoiser
(the posterior mean E[y | x]). The forms differ in how D is built around a network F (the preconditioning), in the
distribution of training noise levels and in the loss weight:

- 'edm': c_skip = sd^2 / (sigma^2 + sd^2), c_out = sigma sd / sqrt(sigma^2 + sd^2), c_in = 1 / sqrt(sigma^2 + sd^2),
  c_noise = ln(sigma) / 4; ln sigma ~ N(P_mean, P_std^2); lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2.
- 'vp' (Song et al. 2021's VP SDE): sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1); c_skip = 1, c_out = -sigma,
  c_in = 1 / sqrt(sigma^2 + 1), c_noise = (M - 1) t(sigma); t ~ U(eps_t, 1); lambda = 1 / sigma^2.
- 've' (Song et al. 2021's VE SDE): c_skip = 1, c_out = sigma, c_in = 1, c_noise = ln(sigma / 2);
  ln sigma ~ U(ln sigma_min, ln sigma_max); lambda = 1 / sigma^2.

A trained DDPM (zoo.ddpm: x_t = sqrt(abar_t) y + sqrt(1 - abar_t) eps) is the VP form at sigma_t =
sqrt((1 - abar_t) / abar_t): `ddpm_denoiser` makes its eps/x0/v network a denoiser at any sigma (the fractional
timestep by interpolating log sigma, as diffusers' `use_karras_sigmas` does), so it samples on Karras sigmas with
`sample_euler`, `sample_heun` and `sample_dpmpp_2m`.

A denoiser is any `denoise(x, sigma) -> D` on batches x [B, ...] with sigma [B]; samplers take one and a descending
array of noise levels ending in 0 (`karras_sigmas`). Every sampler is one `lax.scan`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from zoo import ddpm

__all__ = [
    "Denoiser",
    "FORMS",
    "SIGMA_DATA",
    "P_MEAN",
    "P_STD",
    "VP_BETA_D",
    "VP_BETA_MIN",
    "VP_M",
    "VP_EPS_T",
    "VE_SIGMA_MIN",
    "VE_SIGMA_MAX",
    "vp_sigma",
    "vp_sigma_inv",
    "preconditioning",
    "precondition",
    "loss_weight",
    "sample_sigmas",
    "denoiser_loss",
    "karras_sigmas",
    "ddpm_sigmas",
    "ddpm_timestep",
    "ddpm_denoiser",
    "ode_derivative",
    "sample_euler",
    "sample_heun",
    "sample_dpmpp_2m",
    "SAMPLERS",
    "num_evaluations",
]

Denoiser = Callable[[jax.Array, jax.Array], jax.Array]  # (x [B, ...], sigma [B]) -> D(x; sigma)

FORMS = ("edm", "vp", "ve")
SIGMA_DATA, P_MEAN, P_STD = 0.5, -1.2, 1.2  # the paper's EDM training (Table 1)
VP_BETA_D, VP_BETA_MIN, VP_M, VP_EPS_T = 19.9, 0.1, 1000, 1e-5  # VP: beta_d, beta_min, M, the least training t
VE_SIGMA_MIN, VE_SIGMA_MAX = 0.02, 100.0  # VE's training range
SAMPLERS = ("euler", "heun", "dpmpp_2m")


def _col(a, x):
    """a [B] (or a scalar) shaped to broadcast against x [B, ...]."""
    a = jnp.asarray(a, jnp.float32)
    return a.reshape(a.shape + (1,) * (x.ndim - a.ndim))


# ----------------------------------------------------------------------------- the forms (Table 1)


def vp_sigma(t, beta_d: float = VP_BETA_D, beta_min: float = VP_BETA_MIN):
    """sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1): the VP SDE's noise level at time t in [0, 1]."""
    return jnp.sqrt(jnp.expm1(0.5 * beta_d * jnp.square(t) + beta_min * t))


def vp_sigma_inv(sigma, beta_d: float = VP_BETA_D, beta_min: float = VP_BETA_MIN):
    """t(sigma) = (sqrt(beta_min^2 + 2 beta_d ln(sigma^2 + 1)) - beta_min) / beta_d, the inverse of vp_sigma."""
    return (jnp.sqrt(beta_min**2 + 2 * beta_d * jnp.log1p(jnp.square(sigma))) - beta_min) / beta_d


def _check_form(form: str, fn: str) -> None:
    if form not in FORMS:
        raise ValueError(f"{fn}: form={form!r} is not one of {', '.join(FORMS)}")


def preconditioning(sigma, form: str = "edm", sigma_data: float = SIGMA_DATA):
    """(c_skip, c_out, c_in, c_noise) of noise levels sigma in a form of Table 1 (module docstring)."""
    _check_form(form, "preconditioning")
    sigma = jnp.asarray(sigma, jnp.float32)
    if form == "edm":
        norm = jnp.sqrt(jnp.square(sigma) + sigma_data**2)
        return sigma_data**2 / jnp.square(norm), sigma * sigma_data / norm, 1.0 / norm, jnp.log(sigma) / 4
    one = jnp.ones_like(sigma)
    if form == "vp":
        return one, -sigma, 1.0 / jnp.sqrt(jnp.square(sigma) + 1), (VP_M - 1) * vp_sigma_inv(sigma)
    return one, sigma, one, jnp.log(0.5 * sigma)


def precondition(net_fn, form: str = "edm", sigma_data: float = SIGMA_DATA) -> Denoiser:
    """D(x; sigma) = c_skip x + c_out F(c_in x, c_noise) of a network net_fn(x, c_noise) -> F (any extra arguments
    of the network closed over by the caller)."""
    _check_form(form, "precondition")

    def denoise(x, sigma):
        c_skip, c_out, c_in, c_noise = preconditioning(sigma, form, sigma_data)
        return _col(c_skip, x) * x + _col(c_out, x) * net_fn(_col(c_in, x) * x, c_noise)

    return denoise


def loss_weight(sigma, form: str = "edm", sigma_data: float = SIGMA_DATA):
    """lambda(sigma): (sigma^2 + sd^2) / (sigma sd)^2 for 'edm' (= 1 / c_out^2), 1 / sigma^2 for 'vp' and 've'."""
    _check_form(form, "loss_weight")
    sigma = jnp.asarray(sigma, jnp.float32)
    if form == "edm":
        return (jnp.square(sigma) + sigma_data**2) / jnp.square(sigma * sigma_data)
    return 1.0 / jnp.square(sigma)


def sample_sigmas(key, n: int, form: str = "edm", *, p_mean: float = P_MEAN, p_std: float = P_STD):
    """n training noise levels: ln sigma ~ N(p_mean, p_std^2) ('edm'), sigma(t) with t ~ U(eps_t, 1) ('vp'),
    ln sigma ~ U(ln sigma_min, ln sigma_max) ('ve')."""
    _check_form(form, "sample_sigmas")
    if form == "edm":
        return jnp.exp(p_mean + p_std * jax.random.normal(key, (n,), jnp.float32))
    u = jax.random.uniform(key, (n,), jnp.float32)
    if form == "vp":
        return vp_sigma(1 + u * (VP_EPS_T - 1))
    return VE_SIGMA_MIN * (VE_SIGMA_MAX / VE_SIGMA_MIN) ** u


def denoiser_loss(denoise: Denoiser, y, key, form: str = "edm", sigma_data: float = SIGMA_DATA, **sigma_options):
    """Per-example lambda(sigma) ||D(y + sigma n; sigma) - y||^2 averaged over pixels, sigma ~ sample_sigmas and
    n ~ N(0, I) drawn from key (training/loss.py's EDMLoss, VPLoss, VELoss; their sum over pixels is this mean
    times the pixel count). Returns (losses [B], sigma [B])."""
    k_sigma, k_noise = jax.random.split(key)
    sigma = sample_sigmas(k_sigma, y.shape[0], form, **sigma_options)
    noisy = y + _col(sigma, y) * jax.random.normal(k_noise, y.shape, y.dtype)
    err = jnp.square(denoise(noisy, sigma) - y).reshape(y.shape[0], -1).mean(-1)
    return loss_weight(sigma, form, sigma_data) * err, sigma


# ----------------------------------------------------------------------------- noise levels to sample on


def karras_sigmas(num_steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> np.ndarray:
    """sigma_i = (sigma_max^(1/rho) + i / (N - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho for i < N, then
    sigma_N = 0 (eq. 5): N + 1 descending levels, in float64."""
    if not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
        raise ValueError(f"karras_sigmas: num_steps must be a positive integer, got {num_steps!r}")
    if not 0 < sigma_min < sigma_max or rho <= 0:
        raise ValueError(
            f"karras_sigmas: needs 0 < sigma_min < sigma_max and rho > 0, got {sigma_min}, {sigma_max}, {rho}"
        )
    ramp = np.linspace(0.0, 1.0, num_steps) if num_steps > 1 else np.zeros(1)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return np.append((hi + ramp * (lo - hi)) ** rho, 0.0)


def ddpm_sigmas(sched: ddpm.Schedule) -> np.ndarray:
    """sigma_t = sqrt((1 - abar_t) / abar_t) of a DDPM schedule's timesteps t = 0..T-1 (ascending), in float64."""
    ab = np.asarray(sched.alpha_bars, np.float64)
    return np.sqrt((1.0 - ab) / ab)


def ddpm_timestep(sched: ddpm.Schedule, sigma):
    """The fractional timestep of noise level sigma: log sigma interpolated linearly between the schedule's
    log sigma_t (diffusers' _sigma_to_t), clamped to [0, T - 1]."""
    log_sigmas = jnp.log(jnp.asarray(ddpm_sigmas(sched), jnp.float32))
    return jnp.interp(jnp.log(jnp.maximum(sigma, 1e-10)), log_sigmas, jnp.arange(len(log_sigmas), dtype=jnp.float32))


def ddpm_denoiser(sched: ddpm.Schedule, prediction: str, model_fn, clip_x0: bool = False) -> Denoiser:
    """A DDPM network model_fn(x_t, t) -> eps, x0 or v as a denoiser at any sigma: x_t = x / sqrt(1 + sigma^2) (so
    abar = 1 / (1 + sigma^2)), t = ddpm_timestep(sigma), D = its x0 prediction (clipped to [-1, 1] with clip_x0).
    A learned-variance network's v output is dropped."""
    if prediction not in ddpm.PREDICTIONS:
        raise ValueError(f"ddpm_denoiser: prediction={prediction!r} is not one of {', '.join(ddpm.PREDICTIONS)}")

    def denoise(x, sigma):
        sigma = jnp.broadcast_to(jnp.asarray(sigma, jnp.float32), x.shape[:1])
        alpha, s = _col(1 / jnp.sqrt(1 + jnp.square(sigma)), x), _col(sigma / jnp.sqrt(1 + jnp.square(sigma)), x)
        xt = alpha * x
        out = model_fn(xt, ddpm_timestep(sched, sigma))
        out = out[0] if isinstance(out, tuple) else out
        x0 = {"eps": lambda: (xt - s * out) / alpha, "x0": lambda: out, "v": lambda: alpha * xt - s * out}[prediction]()
        return jnp.clip(x0, -1.0, 1.0) if clip_x0 else x0

    return denoise


# ----------------------------------------------------------------------------- samplers


def ode_derivative(denoise: Denoiser, x, sigma):
    """dx/dsigma = (x - D(x; sigma)) / sigma, the probability-flow ODE in scaled-out coordinates (eq. 3, s = 1)."""
    sigma = jnp.broadcast_to(jnp.asarray(sigma, jnp.float32), x.shape[:1])
    return (x - denoise(x, sigma)) / _col(sigma, x)


def _start(sigmas, shape, key):
    sigmas = jnp.asarray(sigmas, jnp.float32)
    k_init, k_steps = jax.random.split(key)
    return sigmas, sigmas[0] * jax.random.normal(k_init, tuple(shape), jnp.float32), k_steps


def sample_euler(denoise: Denoiser, sigmas, shape, key):
    """Euler on the ODE: x_{i+1} = x_i + (sigma_{i+1} - sigma_i) d_i, x_0 = sigma_0 n drawn from key (diffusers'
    EulerDiscreteScheduler on the same sigmas). N network calls for N steps."""
    sigmas, x, _ = _start(sigmas, shape, key)

    def step(x, s):
        return x + (s[1] - s[0]) * ode_derivative(denoise, x, s[0]), None

    x, _ = jax.lax.scan(step, x, jnp.stack([sigmas[:-1], sigmas[1:]], axis=1))
    return x


def sample_heun(
    denoise: Denoiser,
    sigmas,
    shape,
    key,
    *,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
):
    """EDM's Algorithm 2 (Algorithm 1 at s_churn = 0): at each step noise is added to raise sigma_i to
    sigma^ = sigma_i (1 + gamma_i), gamma_i = min(s_churn / N, sqrt(2) - 1) where s_tmin <= sigma_i <= s_tmax,
    x^ = x_i + sqrt(sigma^2 - sigma_i^2) s_noise z; then an Euler step to sigma_{i+1} corrected by the trapezoid
    rule (Heun), except the last, to sigma = 0, which stays Euler. 2N - 1 network calls for N steps."""
    sigmas, x, k_steps = _start(sigmas, shape, key)
    n = len(sigmas) - 1
    gamma = jnp.where((sigmas[:-1] >= s_tmin) & (sigmas[:-1] <= s_tmax), min(s_churn / n, math.sqrt(2) - 1), 0.0)

    def step(x, inp):
        s, s_next, g, k = inp
        s_hat = s * (1 + g)
        x_hat = x + jnp.sqrt(jnp.maximum(s_hat**2 - s**2, 0.0)) * s_noise * jax.random.normal(k, x.shape, x.dtype)
        d = ode_derivative(denoise, x_hat, s_hat)
        x_next = x_hat + (s_next - s_hat) * d

        def corrected():
            d_next = ode_derivative(denoise, x_next, s_next)
            return x_hat + (s_next - s_hat) * (0.5 * d + 0.5 * d_next)

        return jax.lax.cond(s_next > 0, corrected, lambda: x_next), None

    inputs = (sigmas[:-1], sigmas[1:], gamma, jax.random.split(k_steps, n))
    x, _ = jax.lax.scan(step, x, inputs)
    return x


def sample_dpmpp_2m(denoise: Denoiser, sigmas, shape, key):
    """DPM-Solver++(2M) (Lu et al. 2022) in scaled-out coordinates, where lambda = -ln sigma:
    x_{i+1} = (sigma_{i+1} / sigma_i) x_i - expm1(-h_i) ((1 + 1/(2 r_i)) D_i - D_{i-1} / (2 r_i)),
    h_i = ln(sigma_i / sigma_{i+1}), r_i = h_{i-1} / h_i; first order at the first step and at the last (to
    sigma = 0, which returns D). N network calls (k-diffusion's sample_dpmpp_2m; diffusers' multistep scheduler
    with use_karras_sigmas, whose VP coordinates give the same steps)."""
    sigmas, x, _ = _start(sigmas, shape, key)
    n = len(sigmas) - 1
    s, s_next = sigmas[:-1], sigmas[1:]
    h = jnp.log(s) - jnp.log(jnp.where(s_next > 0, s_next, 1.0))  # the last step's h is unused
    h_prev = jnp.concatenate([jnp.ones((1,)), h[:-1]])
    second = (jnp.arange(n) > 0) & (s_next > 0)
    w = jnp.where(second, h / (2 * h_prev), 0.0)  # 1 / (2 r_i)

    def step(carry, inp):
        x, d_prev = carry
        si, si_next, hi, wi = inp
        d = denoise(x, jnp.full(x.shape[:1], si))
        d_mix = (1 + wi) * d - wi * d_prev
        x_next = jnp.where(si_next > 0, (si_next / si) * x - jnp.expm1(-hi) * d_mix, d)
        return (x_next, d), None

    (x, _), _ = jax.lax.scan(step, (x, jnp.zeros_like(x)), (s, s_next, h, w))
    return x


def num_evaluations(sampler: str, num_steps: int) -> int:
    """Network calls of a sampler over num_steps steps (NFE): euler and dpmpp_2m N, heun 2N - 1."""
    if sampler not in SAMPLERS:
        raise ValueError(f"num_evaluations: sampler={sampler!r} is not one of {', '.join(SAMPLERS)}")
    return 2 * num_steps - 1 if sampler == "heun" else num_steps
