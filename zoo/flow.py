"""Flow matching and rectified flow (Lipman et al. 2023; Liu, Gong & Liu 2023), the math in one module.

Conventions are SD3's (Esser et al. 2024) and diffusers' FlowMatchEulerDiscreteScheduler's: time t in [0, 1], t = 0
the data and t = 1 the noise, the straight path x_t = (1 - t) x_0 + t eps between a data point and its noise, and the
network regresses its velocity u = dx_t/dt = eps - x_0 (conditional flow matching: the minimiser is the marginal
velocity v(x, t) = E[eps - x_0 | x_t = x]). Sampling integrates dx/dt = v from t = 1, x ~ N(0, I), down to t = 0.

A velocity field is any `velocity_fn(x, t) -> v` on batches x [B, ...] with t [B]; samplers take one and a
descending array of times from 1 to 0 (`flow_sigmas`), each one `lax.scan`. SD3 trains with t drawn logit-normal
and shifts the schedule towards noise for larger images (`shift_t`, `resolution_shift`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "VelocityFn",
    "interpolate",
    "velocity_target",
    "x0_from_velocity",
    "T_DISTRIBUTIONS",
    "sample_t",
    "shift_t",
    "resolution_shift",
    "flow_sigmas",
    "flow_loss",
    "guided_velocity",
    "guided_velocity_fn",
    "sample_euler",
    "sample_heun",
    "sample_midpoint",
    "SAMPLERS",
    "num_evaluations",
]

VelocityFn = Callable[[jax.Array, jax.Array], jax.Array]  # (x [B, ...], t [B]) -> v
T_DISTRIBUTIONS = ("uniform", "logit_normal")
SAMPLERS = ("euler", "heun", "midpoint")


def _col(a, x):
    """a [B] (or a scalar) shaped to broadcast against x [B, ...]."""
    a = jnp.asarray(a, jnp.float32)
    return a.reshape(a.shape + (1,) * (x.ndim - a.ndim))


# ----------------------------------------------------------------------------- the path and its velocity


def interpolate(x0, eps, t):
    """x_t = (1 - t) x_0 + t eps, t [B]."""
    t = _col(t, x0)
    return (1.0 - t) * x0 + t * eps


def velocity_target(x0, eps):
    """u = dx_t/dt = eps - x_0, the conditional velocity the network regresses."""
    return eps - x0


def x0_from_velocity(xt, t, v):
    """x_0 = x_t - t v: the data point a velocity points at (exact for the conditional velocity)."""
    return xt - _col(t, xt) * v


# ----------------------------------------------------------------------------- training times and the schedule


def sample_t(key, n: int, distribution: str = "uniform", *, mean: float = 0.0, std: float = 1.0):
    """n training times: t ~ U(0, 1), or logit-normal, t = sigmoid(m + s z), z ~ N(0, 1) (SD3's lognorm(0, 1))."""
    if distribution == "uniform":
        return jax.random.uniform(key, (n,), jnp.float32)
    if distribution == "logit_normal":
        return jax.nn.sigmoid(mean + std * jax.random.normal(key, (n,), jnp.float32))
    raise ValueError(f"sample_t: distribution={distribution!r} is not one of {', '.join(T_DISTRIBUTIONS)}")


def shift_t(t, shift: float):
    """t' = shift t / (1 + (shift - 1) t): the timestep shift (SD3 eq. 23), towards noise for shift > 1."""
    if isinstance(shift, (int, float)) and not shift > 0:
        raise ValueError(f"shift_t: shift={shift!r} must be > 0")
    return shift * t / (1.0 + (shift - 1.0) * t)


def resolution_shift(num_pixels: int, base_pixels: int = 256 * 256) -> float:
    """sqrt(m / n): SD3's shift for images of m pixels from a schedule tuned at n (it then chose 3.0 at 1024^2)."""
    if num_pixels < 1 or base_pixels < 1:
        raise ValueError(f"resolution_shift: pixel counts must be >= 1, got {num_pixels}, {base_pixels}")
    return float(np.sqrt(num_pixels / base_pixels))


def flow_sigmas(num_steps: int, shift: float = 1.0, num_train_steps: int | None = 1000) -> np.ndarray:
    """num_steps + 1 descending times from 1 to 0 to sample on. With num_train_steps (diffusers'
    FlowMatchEulerDiscreteScheduler.set_timesteps): shift_t of linspace(1, shift_t(1 / T), num_steps), then 0 (its
    last level is shifted twice, as there); with None, shift_t of linspace(1, 0, num_steps + 1). Float64."""
    if not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
        raise ValueError(f"flow_sigmas: num_steps must be a positive integer, got {num_steps!r}")
    if num_train_steps is None:
        return np.asarray(shift_t(np.linspace(1.0, 0.0, num_steps + 1), shift), np.float64)
    end = shift_t(1.0 / num_train_steps, shift)
    return np.append(shift_t(np.linspace(1.0, end, num_steps), shift), 0.0).astype(np.float64)


def flow_loss(velocity_fn: VelocityFn, x0, key, distribution: str = "uniform", **t_options):
    """Per-example mean over pixels of (v(x_t, t) - (eps - x_0))^2, t ~ sample_t and eps ~ N(0, I) from the key's
    two halves. Returns (losses [B], t [B])."""
    k_t, k_eps = jax.random.split(key)
    t = sample_t(k_t, x0.shape[0], distribution, **t_options)
    eps = jax.random.normal(k_eps, x0.shape, x0.dtype)
    err = jnp.square(velocity_fn(interpolate(x0, eps, t), t) - velocity_target(x0, eps))
    return err.reshape(x0.shape[0], -1).mean(-1), t


# ----------------------------------------------------------------------------- guidance


def guided_velocity(v_cond, v_uncond, w):
    """v~ = (1 + w) v(x, c) - w v(x, null), zoo.ddpm.guided_eps's convention: w = 0 conditional, w = -1 not."""
    return (1.0 + w) * v_cond - w * v_uncond


def guided_velocity_fn(model_fn, labels, null_label: int, w: float) -> VelocityFn:
    """The velocity_fn of model_fn(x, t, labels) guided by w towards labels [B]: guided_velocity of one call on the
    batch doubled ([x; x], [c; null]); at w = 0 one call on the batch."""
    labels = jnp.asarray(labels, jnp.int32)
    if isinstance(w, (int, float)) and w == 0:
        return lambda x, t: model_fn(x, t, labels)
    both = jnp.concatenate([labels, jnp.full_like(labels, null_label)])

    def guided(x, t):
        v_cond, v_uncond = jnp.split(model_fn(jnp.concatenate([x, x]), jnp.concatenate([t, t]), both), 2)
        return guided_velocity(v_cond, v_uncond, w)

    return guided


# ----------------------------------------------------------------------------- samplers


def _start(ts, shape, key):
    return jnp.asarray(ts, jnp.float32), jax.random.normal(key, tuple(shape), jnp.float32)


def _scan(step, x, ts):
    x, _ = jax.lax.scan(lambda x, s: (step(x, s[0], s[1]), None), x, jnp.stack([ts[:-1], ts[1:]], axis=1))
    return x


def _v(velocity_fn, x, t):
    return velocity_fn(x, jnp.full(x.shape[:1], t, jnp.float32))


def sample_euler(velocity_fn: VelocityFn, ts, shape, key):
    """Euler from x ~ N(0, I) at ts[0]: x_{i+1} = x_i + (t_{i+1} - t_i) v(x_i, t_i) (diffusers'
    FlowMatchEulerDiscreteScheduler). N network calls for N steps."""
    ts, x = _start(ts, shape, key)
    return _scan(lambda x, t, t_next: x + (t_next - t) * _v(velocity_fn, x, t), x, ts)


def sample_heun(velocity_fn: VelocityFn, ts, shape, key):
    """Heun (the trapezoid rule): x' = x_i + h v(x_i, t_i), x_{i+1} = x_i + h (v(x_i, t_i) + v(x', t_{i+1})) / 2,
    h = t_{i+1} - t_i, at every step (v is defined at t = 0). 2N network calls."""
    ts, x = _start(ts, shape, key)

    def step(x, t, t_next):
        v = _v(velocity_fn, x, t)
        x_euler = x + (t_next - t) * v
        return x + (t_next - t) * 0.5 * (v + _v(velocity_fn, x_euler, t_next))

    return _scan(step, x, ts)


def sample_midpoint(velocity_fn: VelocityFn, ts, shape, key):
    """The explicit midpoint rule: x_{i+1} = x_i + h v(x_i + h/2 v(x_i, t_i), t_i + h/2). 2N network calls."""
    ts, x = _start(ts, shape, key)

    def step(x, t, t_next):
        h = t_next - t
        return x + h * _v(velocity_fn, x + 0.5 * h * _v(velocity_fn, x, t), t + 0.5 * h)

    return _scan(step, x, ts)


def num_evaluations(sampler: str, num_steps: int) -> int:
    """Network calls of a sampler over num_steps steps (NFE): euler N, heun and midpoint 2N."""
    if sampler not in SAMPLERS:
        raise ValueError(f"num_evaluations: sampler={sampler!r} is not one of {', '.join(SAMPLERS)}")
    return num_steps if sampler == "euler" else 2 * num_steps
