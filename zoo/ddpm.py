"""Denoising diffusion probabilistic models (Ho, Jain & Abbeel 2020), the math in one module.

Conventions: timesteps are 0-based, t in {0, ..., T-1}; index t here is the paper's t+1,
so `alpha_bars[t] = prod_{s<=t} (1 - beta_s)`. Images live in [-1, 1] with 256 levels.
A denoiser is any function `eps_fn(x_t, t) -> eps_hat` on batches (t has shape [B]);
`UNet.apply` closed over its parameters is one. A denoiser with a learned variance (Nichol & Dhariwal 2021)
returns `(eps_hat, v)`, v interpolating the reverse step's log variance (learned_log_variance); every
sampler and the bound take either kind, the DDIM and DPM-Solver ones using eps_hat only.
A class-conditional U-Net (num_classes > 0) takes labels too; `guided_eps_fn` closes it over given labels,
classifier-free guided, as such an eps_fn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from zoo.distributions import discretized_gaussian_log_likelihood, normal_kl
from zoo.layers import Downsample, ResBlock, SelfAttention, Upsample, num_groups, sinusoidal_embedding

__all__ = [
    "EpsFn",
    "VARIANCES",
    "linear_betas",
    "cosine_betas",
    "Schedule",
    "make_schedule",
    "zero_terminal_snr_betas",
    "schedule_from_name",
    "q_step_mean_variance",
    "q_step_sample",
    "q_mean_variance",
    "q_sample",
    "q_posterior",
    "predict_x0_from_eps",
    "PREDICTIONS",
    "eps_from_x0",
    "v_from_x0_eps",
    "eps_from_v",
    "x0_from_v",
    "prediction_target",
    "eps_from_prediction",
    "as_eps_fn",
    "drop_labels",
    "guided_eps",
    "guided_eps_fn",
    "LOSS_WEIGHTS",
    "LOSSES",
    "snr",
    "min_snr_weight",
    "model_log_variance",
    "learned_log_variance",
    "p_mean_variance",
    "eps_loss",
    "training_losses",
    "training_loss_terms",
    "VLB_SAMPLINGS",
    "LossHistory",
    "loss_history",
    "importance_probs",
    "importance_timesteps",
    "update_loss_history",
    "p_sample",
    "sample_ancestral",
    "SPACINGS",
    "ddim_timesteps",
    "sample_ddim",
    "dpm_solver_timesteps",
    "half_log_snr",
    "dpmpp_2m_coefficients",
    "sample_dpmpp_2m",
    "SAMPLERS",
    "vb_term_bpd",
    "prior_bpd",
    "nll_bound_bpd",
    "UNet",
]

EpsFn = Callable[[jax.Array, jax.Array], jax.Array]  # or returning (eps_hat, v) with a learned variance


def _eps_and_v(out):
    """(eps_hat, v) of a denoiser's output: v is None for a denoiser with a fixed variance."""
    return out if isinstance(out, tuple) else (out, None)


VARIANCES = ("beta", "posterior", "learned")
VLB_SAMPLINGS = ("uniform", "importance")  # of the training timesteps: uniform, or by L_vlb's second moments
PREDICTIONS = ("eps", "x0", "v")  # what the network outputs
LOSS_WEIGHTS = ("uniform", "min_snr")
LOSSES = ("mse", "kl")  # L_simple (+ lambda L_vlb with a learned variance: the hybrid), or L_vlb alone
SPACINGS = ("linspace", "leading", "trailing")  # of the sampling timesteps, as diffusers names them
SAMPLERS = ("ancestral", "ddim", "dpmpp_2m")  # sample_ancestral, sample_ddim, sample_dpmpp_2m


# ----------------------------------------------------------------------------- schedules


def linear_betas(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    """beta_t linear from beta_start to beta_end (DDPM paper: 1e-4 to 0.02, T = 1000)."""
    _check_steps(num_steps)
    return np.linspace(beta_start, beta_end, num_steps, dtype=np.float64)


def cosine_betas(num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """beta_t = 1 - abar_t / abar_{t-1}, abar(u) = cos^2((u + s)/(1 + s) * pi/2) (Nichol & Dhariwal)."""
    _check_steps(num_steps)
    u = np.arange(num_steps + 1, dtype=np.float64) / num_steps
    f = np.cos((u + s) / (1 + s) * np.pi / 2) ** 2
    return np.clip(1.0 - f[1:] / f[:-1], 0.0, max_beta)


def _check_steps(num_steps):
    if not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")


@flax.struct.dataclass
class Schedule:
    """Every per-timestep constant of the forward and posterior processes, as [T] float32 arrays."""

    betas: jax.Array
    alpha_bars: jax.Array  # abar_t = prod_{s<=t} (1 - beta_s)
    alpha_bars_prev: jax.Array  # abar_{t-1}, with abar_{-1} = 1
    posterior_variance: jax.Array  # beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t)
    posterior_log_variance: jax.Array  # log beta~_t, with t=0 clipped to t=1 (beta~_0 = 0)
    posterior_mean_coef_x0: jax.Array  # sqrt(abar_{t-1}) beta_t / (1 - abar_t)
    posterior_mean_coef_xt: jax.Array  # sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t)

    @property
    def num_steps(self) -> int:
        return self.betas.shape[0]


def make_schedule(betas) -> Schedule:
    """All constants derived from beta_1..beta_T (computed in float64, stored in float32)."""
    betas = np.asarray(betas, dtype=np.float64)
    if betas.ndim != 1 or not np.all((betas[:-1] > 0) & (betas[:-1] < 1)) or not 0 < betas[-1] <= 1:
        raise ValueError("betas must be a 1-D array with every value in (0, 1), the last in (0, 1]")
    alpha_bars = np.cumprod(1.0 - betas)
    if alpha_bars[-1] == 0:
        # A zero terminal SNR: abar_T = 0 is kept as 2^-24, as diffusers does, or as half of abar_{T-1} where that
        # is smaller (abar must decrease), so that x_0 from eps, the log-SNR and the samplers stay finite.
        alpha_bars[-1] = min(2.0**-24, alpha_bars[-2] / 2) if len(betas) > 1 else 2.0**-24
        betas = np.append(betas[:-1], 1.0 - alpha_bars[-1] / (alpha_bars[-2] if len(betas) > 1 else 1.0))
    alpha_bars_prev = np.append(1.0, alpha_bars[:-1])
    post_var = betas * (1.0 - alpha_bars_prev) / (1.0 - alpha_bars)
    post_log_var = np.log(np.append(post_var[1], post_var[1:])) if len(betas) > 1 else np.log(betas)
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    return Schedule(
        betas=f32(betas),
        alpha_bars=f32(alpha_bars),
        alpha_bars_prev=f32(alpha_bars_prev),
        posterior_variance=f32(post_var),
        posterior_log_variance=f32(post_log_var),
        posterior_mean_coef_x0=f32(np.sqrt(alpha_bars_prev) * betas / (1.0 - alpha_bars)),
        posterior_mean_coef_xt=f32(np.sqrt(1.0 - betas) * (1.0 - alpha_bars_prev) / (1.0 - alpha_bars)),
    )


def zero_terminal_snr_betas(betas) -> np.ndarray:
    """Betas whose sqrt(abar_t) is the original's shifted and scaled to end at 0 and keep sqrt(abar_1): SNR(T) = 0
    (Lin et al. 2024, Algorithm 1). The last beta is 1; only a v- (or x_0-) predicting model can use it."""
    betas = np.asarray(betas, dtype=np.float64)
    if betas.ndim != 1 or len(betas) < 2 or not np.all((betas > 0) & (betas < 1)):
        raise ValueError("zero_terminal_snr_betas: betas must be a 1-D array of >= 2 values in (0, 1)")
    root = np.sqrt(np.cumprod(1.0 - betas))
    first, last = root[0], root[-1]
    root = (root - last) * first / (first - last)
    alpha_bars = root**2
    alphas = np.append(alpha_bars[0], alpha_bars[1:] / alpha_bars[:-1])
    return 1.0 - alphas


def schedule_from_name(name: str, num_steps: int = 1000, zero_terminal_snr: bool = False) -> Schedule:
    """make_schedule(linear_betas(T)) or make_schedule(cosine_betas(T)) by name, rescaled to a zero terminal SNR
    (zero_terminal_snr_betas) if asked."""
    _check_steps(num_steps)
    if name == "linear":
        # Keep the paper's per-step noise scale when T differs from 1000.
        scale = 1000 / num_steps
        betas = linear_betas(num_steps, 1e-4 * scale, min(0.02 * scale, 0.999))
    elif name == "cosine":
        betas = cosine_betas(num_steps)
    else:
        raise ValueError(f"unknown noise schedule {name!r}; accepted: 'linear', 'cosine'")
    return make_schedule(zero_terminal_snr_betas(betas) if zero_terminal_snr else betas)


def _bcast(a: jax.Array, t: jax.Array, x: jax.Array) -> jax.Array:
    """a[t] shaped [B, 1, 1, ...] to broadcast against x."""
    return a[t].reshape(t.shape + (1,) * (x.ndim - t.ndim))


# ----------------------------------------------------------------------------- forward process


def q_step_mean_variance(sched: Schedule, x_prev, t):
    """q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)."""
    beta = _bcast(sched.betas, t, x_prev)
    return jnp.sqrt(1.0 - beta) * x_prev, beta


def q_step_sample(sched: Schedule, x_prev, t, eps):
    """x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps."""
    mean, var = q_step_mean_variance(sched, x_prev, t)
    return mean + jnp.sqrt(var) * eps


def q_mean_variance(sched: Schedule, x0, t):
    """Diffusion kernel q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)."""
    ab = _bcast(sched.alpha_bars, t, x0)
    return jnp.sqrt(ab) * x0, 1.0 - ab


def q_sample(sched: Schedule, x0, t, eps):
    """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps."""
    mean, var = q_mean_variance(sched, x0, t)
    return mean + jnp.sqrt(var) * eps


def q_posterior(sched: Schedule, x0, xt, t):
    """q(x_{t-1} | x_t, x_0) = N(c0_t x_0 + ct_t x_t, beta~_t I); returns (mean, variance, log variance)."""
    mean = _bcast(sched.posterior_mean_coef_x0, t, xt) * x0 + _bcast(sched.posterior_mean_coef_xt, t, xt) * xt
    return mean, _bcast(sched.posterior_variance, t, xt), _bcast(sched.posterior_log_variance, t, xt)


def predict_x0_from_eps(sched: Schedule, xt, t, eps):
    """x_0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t), the kernel solved for x_0."""
    ab = _bcast(sched.alpha_bars, t, xt)
    return (xt - jnp.sqrt(1.0 - ab) * eps) / jnp.sqrt(ab)


def eps_from_x0(sched: Schedule, xt, t, x0):
    """eps = (x_t - sqrt(abar_t) x_0) / sqrt(1 - abar_t), the kernel solved for the noise."""
    ab = _bcast(sched.alpha_bars, t, xt)
    return (xt - jnp.sqrt(ab) * x0) / jnp.sqrt(1.0 - ab)


def v_from_x0_eps(sched: Schedule, x0, eps, t):
    """v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0 (Salimans & Ho 2022), the velocity of x_t on its circle."""
    ab = _bcast(sched.alpha_bars, t, x0)
    return jnp.sqrt(ab) * eps - jnp.sqrt(1.0 - ab) * x0


def eps_from_v(sched: Schedule, xt, t, v):
    """eps = sqrt(1 - abar_t) x_t + sqrt(abar_t) v."""
    ab = _bcast(sched.alpha_bars, t, xt)
    return jnp.sqrt(1.0 - ab) * xt + jnp.sqrt(ab) * v


def x0_from_v(sched: Schedule, xt, t, v):
    """x_0 = sqrt(abar_t) x_t - sqrt(1 - abar_t) v."""
    ab = _bcast(sched.alpha_bars, t, xt)
    return jnp.sqrt(ab) * xt - jnp.sqrt(1.0 - ab) * v


def prediction_target(sched: Schedule, prediction: str, x0, eps, t):
    """What a network trained for `prediction` regresses on: eps, x_0 or v."""
    if prediction == "eps":
        return eps
    if prediction == "x0":
        return x0
    if prediction == "v":
        return v_from_x0_eps(sched, x0, eps, t)
    raise ValueError(f"unknown prediction {prediction!r}; accepted: {', '.join(PREDICTIONS)}")


def eps_from_prediction(sched: Schedule, prediction: str, out, xt, t):
    """The noise a network's output implies at (x_t, t), whichever of eps, x_0 or v it predicts."""
    if prediction == "eps":
        return out
    if prediction == "x0":
        return eps_from_x0(sched, xt, t, out)
    if prediction == "v":
        return eps_from_v(sched, xt, t, out)
    raise ValueError(f"unknown prediction {prediction!r}; accepted: {', '.join(PREDICTIONS)}")


def as_eps_fn(sched: Schedule, prediction: str, model_fn: EpsFn, learned_variance: bool = False) -> EpsFn:
    """model_fn(x_t, t) predicting `prediction`, as the eps_fn every sampler and the bound take; with
    learned_variance its output has twice the channels, [prediction, v], and the eps_fn returns (eps_hat, v)."""
    if prediction not in PREDICTIONS:
        raise ValueError(f"unknown prediction {prediction!r}; accepted: {', '.join(PREDICTIONS)}")
    if not learned_variance:
        return lambda xt, t: eps_from_prediction(sched, prediction, model_fn(xt, t), xt, t)

    def eps_and_v(xt, t):
        out, v = jnp.split(model_fn(xt, t), 2, axis=-1)
        return eps_from_prediction(sched, prediction, out, xt, t), v

    return eps_and_v


# ----------------------------------------------------------------------------- classifier-free guidance


def drop_labels(key, labels, rate: float, null_label: int):
    """Classifier-free guidance's label dropout: each label replaced by null_label with probability rate."""
    if isinstance(rate, (int, float)) and not 0.0 <= rate <= 1.0:
        raise ValueError(f"drop_labels: rate={rate!r} must be in [0, 1]")
    labels = jnp.asarray(labels)
    return jnp.where(jax.random.uniform(key, labels.shape, jnp.float32) < rate, null_label, labels).astype(labels.dtype)


def guided_eps(eps_cond, eps_uncond, w):
    """eps~ = (1 + w) eps(x_t, c) - w eps(x_t, null) (Ho & Salimans 2022): w = 0 conditional, w = -1 unconditional."""
    return (1.0 + w) * eps_cond - w * eps_uncond


def guided_eps_fn(
    sched: Schedule, prediction: str, model_fn, labels, null_label: int, w: float, learned_variance: bool = False
) -> EpsFn:
    """The eps_fn of model_fn(x_t, t, labels) predicting `prediction`, guided by w towards `labels` [B]: guided_eps of
    the conditional and null-label eps, from one call on the batch doubled ([x; x], [c; null]); at w = 0 one call.
    With learned_variance (see as_eps_fn) it returns (guided eps_hat, the conditional v), as GLIDE guides."""
    if isinstance(w, (int, float)) and not math.isfinite(w):
        raise ValueError(f"guided_eps_fn: the guidance w={w!r} must be finite")
    labels = jnp.asarray(labels, jnp.int32)
    if isinstance(w, (int, float)) and w == 0:
        return as_eps_fn(sched, prediction, lambda xt, t: model_fn(xt, t, labels), learned_variance)
    both = jnp.concatenate([labels, jnp.full_like(labels, null_label)])
    eps_fn = as_eps_fn(sched, prediction, lambda xt, t: model_fn(xt, t, both), learned_variance)

    def guided(xt, t):
        eps, v = _eps_and_v(eps_fn(jnp.concatenate([xt, xt]), jnp.concatenate([t, t])))
        eps_cond, eps_uncond = jnp.split(eps, 2)
        if v is None:
            return guided_eps(eps_cond, eps_uncond, w)
        return guided_eps(eps_cond, eps_uncond, w), jnp.split(v, 2)[0]

    return guided


# ----------------------------------------------------------------------------- reverse process


def model_log_variance(sched: Schedule, variance: str) -> jax.Array:
    """Fixed reverse variances: 'beta' (sigma_t^2 = beta_t) or 'posterior' (sigma_t^2 = beta~_t)."""
    if variance == "beta":
        # DDPM's "fixedlarge": beta~_1 at t=0 so the decoder's variance is not too wide.
        return jnp.log(jnp.concatenate([sched.posterior_variance[1:2], sched.betas[1:]]))
    if variance == "posterior":
        return sched.posterior_log_variance
    if variance == "learned":
        raise ValueError("the 'learned' reverse variance is the network's, per pixel: see learned_log_variance")
    raise ValueError(f"unknown reverse variance {variance!r}; accepted: {', '.join(VARIANCES)}")


def learned_log_variance(sched: Schedule, v, t):
    """log Sigma_theta(x_t, t) = u log beta_t + (1 - u) log beta~_t, u = (v + 1) / 2 (Nichol & Dhariwal 2021, eq. 15).

    v is the network's output, per pixel, read as lying in [-1, 1] (v = 1: beta_t, v = -1: beta~_t, t = 0's
    beta~ clipped to t = 1's); it is not squashed, as in improved-diffusion, so the loss keeps it there."""
    u = (v + 1.0) / 2.0
    return u * _bcast(jnp.log(sched.betas), t, v) + (1.0 - u) * _bcast(sched.posterior_log_variance, t, v)


def p_mean_variance(sched: Schedule, eps_hat, xt, t, *, variance: str = "beta", clip_x0: bool = True, v=None):
    """p_theta(x_{t-1} | x_t) = N(mu~(x_t, x0_hat(eps_hat)), sigma_t^2 I); returns (mean, log variance, x0_hat).
    variance='learned' takes the network's v (learned_log_variance)."""
    x0_hat = predict_x0_from_eps(sched, xt, t, eps_hat)
    if clip_x0:
        x0_hat = jnp.clip(x0_hat, -1.0, 1.0)
    mean, _, _ = q_posterior(sched, x0_hat, xt, t)
    if variance == "learned":
        if v is None:
            raise ValueError("variance='learned' needs the network's v: a denoiser returning (eps_hat, v)")
        return mean, learned_log_variance(sched, v, t), x0_hat
    return mean, _bcast(model_log_variance(sched, variance), t, xt), x0_hat


# ----------------------------------------------------------------------------- training loss


def eps_loss(eps_hat, eps):
    """The "simple" loss ||eps - eps_theta(x_t, t)||^2, averaged over the pixels of each example."""
    return jnp.mean(jnp.square(eps - eps_hat).reshape(eps.shape[0], -1), axis=-1)


def snr(sched: Schedule, t):
    """The signal-to-noise ratio of x_t, SNR(t) = abar_t / (1 - abar_t)."""
    ab = sched.alpha_bars[t]
    return ab / (1.0 - ab)


def min_snr_weight(sched: Schedule, t, prediction: str, gamma: float = 5.0):
    """Min-SNR-gamma loss weights (Hang et al. 2023) in the chosen prediction's loss: min(SNR, gamma) on the x_0
    error, i.e. min(SNR, gamma) / SNR for eps and min(SNR, gamma) / (SNR + 1) for v."""
    s = snr(sched, t)
    clipped = jnp.minimum(s, gamma)
    if prediction == "x0":
        return clipped
    if prediction == "eps":
        return clipped / s
    if prediction == "v":
        return clipped / (s + 1.0)
    raise ValueError(f"unknown prediction {prediction!r}; accepted: {', '.join(PREDICTIONS)}")


def training_losses(sched: Schedule, model_fn: EpsFn, x0, key, **options):
    """Per-example loss w(t) ||target - model(x_t, t)||^2 with t ~ U{0..T-1} and eps ~ N(0, I), the target being
    eps (DDPM), x_0 or v by `prediction`, w = 1 ('uniform', DDPM's simple loss) or 'min_snr'; returns [B]. The
    options are training_loss_terms' (prediction, loss_weight, min_snr_gamma, ...); this is its 'loss'."""
    return training_loss_terms(sched, model_fn, x0, key, **options)["loss"]


def training_loss_terms(
    sched: Schedule,
    model_fn: EpsFn,
    x0,
    key,
    *,
    prediction: str = "eps",
    loss_weight: str = "uniform",
    min_snr_gamma: float = 5.0,
    variance: str = "beta",
    vlb_weight: float = 0.001,
    t=None,
    loss: str = "mse",
) -> dict:
    """The per-example terms [B] of the loss at x_t = q_sample(x_0, t, eps), eps ~ N(0, I), t ~ U{0..T-1} unless given:
    'mse' w(t) ||target - model(x_t, t)||^2 (training_losses), 'vb' L_t in bits/dim, 'loss' and 't'.

    With variance='learned' model_fn outputs [prediction, v] (twice the channels) and 'loss' is the hybrid
    L_simple + lambda L_vlb (Nichol & Dhariwal 2021), L_vlb = T L_t (vb_term_bpd of the learned variance, the
    mean's gradient stopped, x_0 unclipped): lambda = vlb_weight = 0.001 is improved-diffusion's 'hybrid' loss;
    otherwise 'vb' is 0 and 'loss' is 'mse'. loss='kl' makes 'loss' L_t alone, through mean and variance alike
    (improved-diffusion's use_kl; its mean over t ~ U is L_vlb / T, less the constant L_T)."""
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; accepted: {', '.join(LOSSES)}")
    if loss == "kl" and loss_weight != "uniform":
        raise ValueError(f"loss='kl' is L_vlb itself, which takes no weight over t; got loss_weight={loss_weight!r}")
    k_t, k_eps = jax.random.split(key)
    if t is None:
        t = jax.random.randint(k_t, (x0.shape[0],), 0, sched.num_steps)
    eps = jax.random.normal(k_eps, x0.shape, x0.dtype)
    xt = q_sample(sched, x0, t, eps)
    out, v = model_fn(xt, t), None
    if variance == "learned":
        out, v = jnp.split(out, 2, axis=-1)
    elif variance not in VARIANCES:
        raise ValueError(f"unknown reverse variance {variance!r}; accepted: {', '.join(VARIANCES)}")
    mse = eps_loss(out, prediction_target(sched, prediction, x0, eps, t))
    if loss_weight == "min_snr":
        mse = min_snr_weight(sched, t, prediction, min_snr_gamma) * mse
    elif loss_weight != "uniform":
        raise ValueError(f"unknown loss_weight {loss_weight!r}; accepted: {', '.join(LOSS_WEIGHTS)}")
    if loss == "kl":
        eps_hat = eps_from_prediction(sched, prediction, out, xt, t)
        vb = vb_term_bpd(sched, lambda *_: (eps_hat, v), x0, xt, t, variance=variance, clip_x0=False)
        return {"loss": vb, "mse": mse, "vb": vb, "t": t}
    if v is None:
        return {"loss": mse, "mse": mse, "vb": jnp.zeros_like(mse), "t": t}
    # L_vlb trains only the variance: the mean is L_simple's (improved-diffusion's frozen_out).
    frozen = eps_from_prediction(sched, prediction, jax.lax.stop_gradient(out), xt, t)
    vb = vb_term_bpd(sched, lambda *_: (frozen, v), x0, xt, t, variance="learned", clip_x0=False)
    return {"loss": mse + vlb_weight * sched.num_steps * vb, "mse": mse, "vb": vb, "t": t}


# ----------------------------------------------------------------------------- importance-sampled timesteps


@flax.struct.dataclass
class LossHistory:
    """The last K values of L_t seen at each timestep (improved-diffusion's LossSecondMomentResampler)."""

    values: jax.Array  # [T, K] float32, filled left to right, then shifted
    counts: jax.Array  # [T] int32: how many of a row are filled (at most K)


def loss_history(num_steps: int, size: int = 10) -> LossHistory:
    """An empty history of `size` values per timestep."""
    return LossHistory(jnp.zeros((num_steps, size), jnp.float32), jnp.zeros((num_steps,), jnp.int32))


def importance_probs(hist: LossHistory, uniform_share: float = 0.001) -> jax.Array:
    """p_t proportional to sqrt(E[L_t^2]) over the history, mixed with uniform_share of U{0..T-1}; uniform until
    every timestep has a full history."""
    T = hist.counts.shape[0]
    rms = jnp.sqrt(jnp.mean(jnp.square(hist.values), axis=-1))
    total = jnp.sum(rms)
    p = rms / jnp.where(total > 0, total, 1.0) * (1.0 - uniform_share) + uniform_share / T
    warm = jnp.all(hist.counts >= hist.values.shape[1]) & (total > 0)
    return jnp.where(warm, p, jnp.full((T,), 1.0 / T, p.dtype))


def importance_timesteps(key, hist: LossHistory, batch_size: int, uniform_share: float = 0.001):
    """(t [B] drawn from importance_probs, weights 1 / (T p_t) [B]): E[weight L_t] over t ~ p is the mean of L_t."""
    p = importance_probs(hist, uniform_share)
    t = jax.random.choice(key, p.shape[0], (batch_size,), p=p)
    return t, 1.0 / (p.shape[0] * p[t])


def update_loss_history(hist: LossHistory, t, losses) -> LossHistory:
    """The history with each (t_i, L_i) of the batch appended in turn, a full row dropping its oldest value."""
    size = hist.values.shape[1]

    def one(h, inp):
        ti, li = inp
        row, n = h.values[ti], h.counts[ti]
        row = jnp.where(n >= size, jnp.roll(row, -1).at[-1].set(li), row.at[jnp.minimum(n, size - 1)].set(li))
        return LossHistory(h.values.at[ti].set(row), h.counts.at[ti].set(jnp.minimum(n + 1, size))), None

    hist, _ = jax.lax.scan(one, hist, (jnp.asarray(t), jnp.asarray(losses, jnp.float32)))
    return hist


# ----------------------------------------------------------------------------- samplers


def p_sample(sched: Schedule, eps_fn: EpsFn, xt, t, key, *, variance="beta", clip_x0=True):
    """x_{t-1} = mu_theta(x_t, t) + sigma_t z, with no noise added at the last step (t = 0)."""
    eps_hat, v = _eps_and_v(eps_fn(xt, t))
    mean, log_var, _ = p_mean_variance(sched, eps_hat, xt, t, variance=variance, clip_x0=clip_x0, v=v)
    noise = jax.random.normal(key, xt.shape, xt.dtype)
    nonzero = (t > 0).astype(xt.dtype).reshape(t.shape + (1,) * (xt.ndim - t.ndim))
    return mean + nonzero * jnp.exp(0.5 * log_var) * noise


def sample_ancestral(sched: Schedule, eps_fn: EpsFn, shape: Sequence[int], key, *, variance="beta", clip_x0=True):
    """x_T ~ N(0, I), then x_{t-1} ~ p_theta(x_{t-1} | x_t) for t = T..1, as one lax.scan."""
    k_init, k_steps = jax.random.split(key)
    x = jax.random.normal(k_init, tuple(shape), jnp.float32)
    ts = jnp.arange(sched.num_steps - 1, -1, -1)

    def step(x, inp):
        t, k = inp
        return p_sample(sched, eps_fn, x, jnp.full((shape[0],), t), k, variance=variance, clip_x0=clip_x0), None

    x, _ = jax.lax.scan(step, x, (ts, jax.random.split(k_steps, sched.num_steps)))
    return x


def ddim_timesteps(num_train_steps: int, num_steps: int, spacing: str = "linspace") -> np.ndarray:
    """num_steps timesteps of 0..T-1, descending (DDIM's sub-sequence tau), spaced as diffusers' schedulers space
    them: 'linspace' from T-1 to 0 evenly (rounded), 'leading' k*(T // n) for k = n-1..0, 'trailing'
    round(T - k*T/n) - 1 for k = 0..n-1 (starting at T-1, Lin et al. 2024's fix of the leading gap)."""
    if not 1 <= num_steps <= num_train_steps:
        raise ValueError(f"DDIM num_steps must be in 1..{num_train_steps}, got {num_steps}")
    T, n = num_train_steps, num_steps
    if spacing == "linspace":
        ts = np.linspace(T - 1, 0, n).round()
    elif spacing == "leading":
        ts = (np.arange(n) * (T // n))[::-1]
    elif spacing == "trailing":
        ts = np.round(T - np.arange(n) * (T / n)) - 1
    else:
        raise ValueError(f"unknown timestep spacing {spacing!r}; accepted: {', '.join(SPACINGS)}")
    return ts.astype(np.int32)


def sample_ddim(
    sched: Schedule,
    eps_fn: EpsFn,
    shape: Sequence[int],
    key,
    *,
    num_steps=50,
    eta=0.0,
    clip_x0=True,
    spacing: str = "linspace",
):
    """DDIM (Song et al. 2021): x_prev = sqrt(abar') x0_hat + sqrt(1 - abar' - s^2) eps_hat + s z, over the
    ddim_timesteps of `spacing`. With clip_x0, x0_hat is clipped to [-1, 1] and eps_hat re-derived from it,
    (x_t - sqrt(abar) x0_hat) / sqrt(1 - abar), as improved-diffusion's and GLIDE's ddim_sample do (diffusers'
    use_clipped_model_output=True)."""
    ts = ddim_timesteps(sched.num_steps, num_steps, spacing)
    ts_prev = np.append(ts[1:], -1)
    k_init, k_steps = jax.random.split(key)
    x = jax.random.normal(k_init, tuple(shape), jnp.float32)
    ab_all = jnp.concatenate([sched.alpha_bars, jnp.ones((1,), sched.alpha_bars.dtype)])  # index -1 reads abar = 1

    def step(x, inp):
        t, t_prev, k = inp
        tb = jnp.full((shape[0],), t)
        eps_hat = _eps_and_v(eps_fn(x, tb))[0]
        ab, ab_prev = ab_all[t], ab_all[t_prev]
        x0_hat = (x - jnp.sqrt(1 - ab) * eps_hat) / jnp.sqrt(ab)
        if clip_x0:  # and eps re-derived from the clipped x0, or a guided eps far off [-1, 1] drives the step
            x0_hat = jnp.clip(x0_hat, -1.0, 1.0)
            eps_hat = (x - jnp.sqrt(ab) * x0_hat) / jnp.sqrt(1 - ab)
        sigma = eta * jnp.sqrt((1 - ab_prev) / (1 - ab)) * jnp.sqrt(1 - ab / ab_prev)
        direction = jnp.sqrt(jnp.maximum(1 - ab_prev - sigma**2, 0.0)) * eps_hat
        return jnp.sqrt(ab_prev) * x0_hat + direction + sigma * jax.random.normal(k, x.shape, x.dtype), None

    x, _ = jax.lax.scan(step, x, (jnp.asarray(ts), jnp.asarray(ts_prev), jax.random.split(k_steps, len(ts))))
    return x


def dpm_solver_timesteps(num_train_steps: int, num_steps: int, spacing: str = "linspace") -> np.ndarray:
    """num_steps timesteps of 0..T-1, descending, as diffusers' DPMSolverMultistepScheduler spaces them, its last
    step then going to sigma = 0: 'linspace' linspace(0, T-1, n+1) rounded, without its 0; 'leading' k*(T // (n+1))
    for k = n..1; 'trailing' as ddim_timesteps; num_steps = T takes every timestep."""
    if not 1 <= num_steps <= num_train_steps:
        raise ValueError(f"DPM-Solver num_steps must be in 1..{num_train_steps}, got {num_steps}")
    T, n = num_train_steps, num_steps
    if spacing not in SPACINGS:
        raise ValueError(f"unknown timestep spacing {spacing!r}; accepted: {', '.join(SPACINGS)}")
    if n == T:
        return np.arange(T - 1, -1, -1, dtype=np.int32)
    if spacing == "linspace":
        ts = np.linspace(0, T - 1, n + 1).round()[::-1][:-1]
    elif spacing == "leading":
        ts = (np.arange(n + 1) * (T // (n + 1)))[::-1][:-1]
    else:
        ts = ddim_timesteps(T, n, "trailing")
    return ts.astype(np.int32)


def half_log_snr(sched: Schedule, t):
    """lambda_t = log(alpha_t / sigma_t) = log(abar_t / (1 - abar_t)) / 2, DPM-Solver's time variable."""
    ab = sched.alpha_bars[t]
    return 0.5 * (jnp.log(ab) - jnp.log1p(-ab))


def dpmpp_2m_coefficients(sched: Schedule, ts):
    """(c_x, c_d, w) of each step of DPM-Solver++(2M) over the descending timesteps ts, the step being
    x_{i+1} = c_x x_i + c_d ((1 + w) D_i - w D_{i-1}): c_x = sigma_{i+1} / sigma_i, c_d = -alpha_{i+1} expm1(-h_i),
    w = h_i / (2 h_{i-1}), h_i = lambda_{i+1} - lambda_i; w = 0 (first order) at the first step and at the last,
    which goes to sigma = 0 (c_x = 0, c_d = 1: x = D_{n-1})."""
    ts = jnp.asarray(ts)
    ab = sched.alpha_bars[ts]
    alpha, sigma, lam = jnp.sqrt(ab), jnp.sqrt(1.0 - ab), half_log_snr(sched, ts)
    h = lam[1:] - lam[:-1]  # [n - 1]: the steps between the timesteps
    c_x = jnp.append(sigma[1:] / sigma[:-1], jnp.zeros((1,), ab.dtype))
    c_d = jnp.append(-alpha[1:] * jnp.expm1(-h), jnp.ones((1,), ab.dtype))
    w = jnp.concatenate([jnp.zeros((1,), h.dtype), h[1:] / (2.0 * h[:-1]), jnp.zeros((1,), h.dtype)])[: len(ts)]
    return c_x, c_d, w


def sample_dpmpp_2m(
    sched: Schedule,
    eps_fn: EpsFn,
    shape: Sequence[int],
    key,
    *,
    num_steps: int = 20,
    spacing: str = "linspace",
    clip_x0: bool = True,
):
    """DPM-Solver++(2M) (Lu et al. 2022): x_{i+1} = (sigma_{i+1}/sigma_i) x_i - alpha_{i+1} (e^{-h_i} - 1)
    ((1 + 1/(2 r_i)) D_i - D_{i-1} / (2 r_i)), r_i = h_{i-1} / h_i, D the x_0 prediction, over dpm_solver_timesteps.

    One network call per timestep. The first step is first order (there is no D_{i-1} yet); the last one, from the
    last timestep to sigma = 0, is first order too and returns that step's x_0 prediction D_{n-1} (diffusers'
    final_sigmas_type='zero', whose last step is always first order). x_T ~ N(0, I) is drawn from `key` as
    sample_ddim and sample_ancestral draw it, so the same key starts the three samplers from the same noise.
    """
    ts = dpm_solver_timesteps(sched.num_steps, num_steps, spacing)
    c_x, c_d, w = dpmpp_2m_coefficients(sched, ts)
    k_init, _ = jax.random.split(key)
    x = jax.random.normal(k_init, tuple(shape), jnp.float32)

    def step(carry, inp):
        x, d_prev = carry
        t, cx, cd, wi = inp
        tb = jnp.full((shape[0],), t)
        d = predict_x0_from_eps(sched, x, tb, _eps_and_v(eps_fn(x, tb))[0])
        if clip_x0:
            d = jnp.clip(d, -1.0, 1.0)
        return (cx * x + cd * ((1.0 + wi) * d - wi * d_prev), d), None

    (x, _), _ = jax.lax.scan(step, (x, jnp.zeros_like(x)), (jnp.asarray(ts), c_x, c_d, w))
    return x


# ----------------------------------------------------------------------------- likelihood bound


def _per_example_mean(a):
    return jnp.mean(a.reshape(a.shape[0], -1), axis=-1)


def vb_term_bpd(sched: Schedule, eps_fn: EpsFn, x0, xt, t, *, variance="beta", clip_x0=True):
    """L_{t} in bits/dim: KL(q(x_{t-1}|x_t,x_0) || p_theta(x_{t-1}|x_t)) for t > 0, -log p(x_0|x_1) at t = 0."""
    true_mean, _, true_log_var = q_posterior(sched, x0, xt, t)
    eps_hat, v = _eps_and_v(eps_fn(xt, t))
    mean, log_var, _ = p_mean_variance(sched, eps_hat, xt, t, variance=variance, clip_x0=clip_x0, v=v)
    kl = _per_example_mean(normal_kl(true_mean, true_log_var, mean, log_var)) / math.log(2.0)
    nll = -_per_example_mean(discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_var)) / math.log(2.0)
    return jnp.where(t == 0, nll, kl)


def prior_bpd(sched: Schedule, x0):
    """L_T in bits/dim: KL(q(x_T | x_0) || N(0, I))."""
    t = jnp.full((x0.shape[0],), sched.num_steps - 1)
    mean, var = q_mean_variance(sched, x0, t)
    return _per_example_mean(normal_kl(mean, jnp.log(var), 0.0, 0.0)) / math.log(2.0)


def nll_bound_bpd(sched: Schedule, eps_fn: EpsFn, x0, key, *, variance="beta", clip_x0=True):
    """Variational bound on -log p(x_0) in bits/dim: L_T + sum_t L_{t-1}, one lax.scan over all T steps.

    Returns (total [B], per-timestep terms [T, B], prior [B]).
    """

    def term(_, inp):
        t, k = inp
        tb = jnp.full((x0.shape[0],), t)
        xt = q_sample(sched, x0, tb, jax.random.normal(k, x0.shape, x0.dtype))
        return None, vb_term_bpd(sched, eps_fn, x0, xt, tb, variance=variance, clip_x0=clip_x0)

    ts = jnp.arange(sched.num_steps)
    _, terms = jax.lax.scan(term, None, (ts, jax.random.split(key, sched.num_steps)))
    prior = prior_bpd(sched, x0)
    return terms.sum(axis=0) + prior, terms, prior


# ----------------------------------------------------------------------------- the network


class UNet(nn.Module):
    """The DDPM U-Net: sinusoidal time embedding, GroupNorm residual blocks, self-attention at low resolution.

    `attn_resolutions` lists the feature-map widths that get attention (e.g. (4,) for 8x8 inputs). With
    num_classes > 0 it is class-conditional: a learned embedding of the label (num_classes + 1 rows, the last,
    `null_label`, meaning no label) is added to the time embedding; `__call__(x, t, labels)` takes labels [B]
    (None: the null label). num_classes = 0 (default): unconditional, no labels, no embedding parameters.
    """

    ch: int = 64
    ch_mult: Sequence[int] = (1, 2)
    num_res_blocks: int = 2
    attn_resolutions: Sequence[int] = (4,)
    dropout: float = 0.0
    out_ch: int | None = None
    dtype: jnp.dtype | None = None
    num_classes: int = 0
    learned_variance: bool = False  # outputs twice the channels: the prediction and v (learned_log_variance)

    @property
    def null_label(self) -> int:
        """The label of the unconditional model (classifier-free guidance): num_classes."""
        return self.num_classes

    @nn.compact
    def __call__(self, x, t, labels=None, *, train: bool = False):
        if x.ndim != 4:
            raise ValueError(f"UNet: x must be NHWC images [B, H, W, C], got shape {x.shape}")
        if self.num_classes < 0 or (labels is not None and not self.num_classes):
            raise ValueError(f"UNet: labels need num_classes >= 1, got num_classes={self.num_classes}")
        size = x.shape[1]
        if x.shape[1] % 2 ** (len(self.ch_mult) - 1) or x.shape[2] % 2 ** (len(self.ch_mult) - 1):
            raise ValueError(
                f"UNet: image size {x.shape[1:3]} must be divisible by 2^{len(self.ch_mult) - 1} "
                f"for ch_mult={tuple(self.ch_mult)}"
            )
        emb = sinusoidal_embedding(t, self.ch)
        emb = nn.Dense(4 * self.ch, dtype=self.dtype)(emb)
        emb = nn.Dense(4 * self.ch, dtype=self.dtype)(nn.swish(emb))
        if self.num_classes:
            labels = jnp.full(x.shape[:1], self.null_label) if labels is None else jnp.asarray(labels, jnp.int32)
            if labels.shape != x.shape[:1]:
                raise ValueError(f"UNet: labels must have shape [B] = {x.shape[:1]}, got {labels.shape}")
            emb = emb + nn.Embed(self.num_classes + 1, 4 * self.ch, dtype=self.dtype, name="class_embedding")(labels)

        h = nn.Conv(self.ch, (3, 3), dtype=self.dtype)(x)
        hs = [h]
        for level, mult in enumerate(self.ch_mult):
            for _ in range(self.num_res_blocks):
                h = ResBlock(self.ch * mult, self.dropout, dtype=self.dtype)(h, emb, train=train)
                if size in self.attn_resolutions:
                    h = SelfAttention(dtype=self.dtype)(h)
                hs.append(h)
            if level != len(self.ch_mult) - 1:
                h = Downsample(h.shape[-1], dtype=self.dtype)(h)
                size //= 2
                hs.append(h)

        h = ResBlock(h.shape[-1], self.dropout, dtype=self.dtype)(h, emb, train=train)
        h = SelfAttention(dtype=self.dtype)(h)
        h = ResBlock(h.shape[-1], self.dropout, dtype=self.dtype)(h, emb, train=train)

        for level, mult in reversed(list(enumerate(self.ch_mult))):
            for _ in range(self.num_res_blocks + 1):
                h = ResBlock(self.ch * mult, self.dropout, dtype=self.dtype)(
                    jnp.concatenate([h, hs.pop()], axis=-1), emb, train=train
                )
                if size in self.attn_resolutions:
                    h = SelfAttention(dtype=self.dtype)(h)
            if level != 0:
                h = Upsample(h.shape[-1], dtype=self.dtype)(h)
                size *= 2

        h = nn.swish(nn.GroupNorm(num_groups(h.shape[-1]), dtype=self.dtype)(h))
        out_ch = (self.out_ch or x.shape[-1]) * (2 if self.learned_variance else 1)
        out = nn.Conv(out_ch, (3, 3), kernel_init=nn.initializers.zeros, dtype=self.dtype)(h)
        return out.astype(jnp.float32)
