"""zoo.flow against closed forms, diffusers' FlowMatchEulerDiscreteScheduler's values (written out: diffusers 0.42.1
with torch 2.13 on this machine's CPU) and samplers run with the exact velocity of Gaussian data, whose ODE carries
N(0, I) onto the data exactly: x_0 = MU + sqrt(VAR) x_1."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.test_edm import network_calls
from zoo import flow

MU = np.array([0.3, -0.2], np.float32)
VAR = np.array([0.04, 0.25], np.float32)  # diagonal covariance of the Gaussian data
SAMPLE = {"euler": flow.sample_euler, "heun": flow.sample_heun, "midpoint": flow.sample_midpoint}


def exact_velocity(x, t):
    """E[eps - x_0 | x_t = x] for x_0 ~ N(MU, diag VAR): with m = (1 - t) MU and V = (1 - t)^2 VAR + t^2,
    E[eps | x] = t (x - m) / V and E[x_0 | x] = MU + (1 - t) VAR (x - m) / V."""
    t = t.reshape(-1, *([1] * (x.ndim - 1)))
    m, v = (1 - t) * MU, (1 - t) ** 2 * VAR + t**2
    return t * (x - m) / v - (MU + (1 - t) * VAR * (x - m) / v)


def test_the_path_its_velocity_and_the_data_point_it_points_at():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    x0, eps = jax.random.normal(k1, (4, 3, 3, 1)), jax.random.normal(k2, (4, 3, 3, 1))
    t = jax.random.uniform(k3, (4,))
    np.testing.assert_allclose(flow.interpolate(x0, eps, jnp.zeros(4)), x0)
    np.testing.assert_allclose(flow.interpolate(x0, eps, jnp.ones(4)), eps)
    dt = 1e-3  # u is the time derivative of the path (central difference; the path is linear)
    ahead, behind = flow.interpolate(x0, eps, t + dt), flow.interpolate(x0, eps, t - dt)
    np.testing.assert_allclose((ahead - behind) / (2 * dt), flow.velocity_target(x0, eps), atol=2e-3)
    xt = flow.interpolate(x0, eps, t)
    np.testing.assert_allclose(flow.x0_from_velocity(xt, t, flow.velocity_target(x0, eps)), x0, atol=1e-5)


def test_training_times_uniform_and_logit_normal():
    """200k draws: U(0, 1) has mean 1/2 and variance 1/12; logit(t) of the logit-normal is N(m, s^2)."""
    key, n = jax.random.key(1), 200_000
    t = np.asarray(flow.sample_t(key, n))
    assert 0 <= t.min() and t.max() < 1 and abs(t.mean() - 0.5) < 5 * np.sqrt(1 / 12 / n)
    t = np.asarray(flow.sample_t(key, n, "logit_normal", mean=0.5, std=0.8), np.float64)
    logit = np.log(t / (1 - t))
    assert abs(logit.mean() - 0.5) < 5 * 0.8 / np.sqrt(n) and logit.std() == pytest.approx(0.8, rel=0.01)


def test_shifted_schedules_are_diffusers():
    """FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=S).set_timesteps(8).sigmas, S = 3 and 1; its
    timesteps are the sigmas times 1000 without the last."""
    shift3 = [1.0, 0.9475425481796265, 0.8827877640724182, 0.8008373379707336, 0.6937931180000305, 0.5480455756187439,
              0.33797216415405273, 0.00892857182770967, 0.0]  # fmt: skip
    shift1 = [1.0, 0.857285737991333, 0.7145714163780212, 0.5718571543693542, 0.42914286255836487, 0.2864285707473755,
              0.1437142789363861, 0.00100000004749745, 0.0]  # fmt: skip
    np.testing.assert_allclose(flow.flow_sigmas(8, shift=3.0), shift3, rtol=1e-6)
    np.testing.assert_allclose(flow.flow_sigmas(8), shift1, rtol=1e-6)
    t = np.linspace(0, 1, 11)
    np.testing.assert_allclose(flow.shift_t(t, 3.0), 3 * t / (1 + 2 * t))
    np.testing.assert_allclose(flow.flow_sigmas(4, 1.0, None), [1.0, 0.75, 0.5, 0.25, 0.0])
    assert flow.resolution_shift(1024 * 1024) == 4.0 and flow.resolution_shift(28 * 28, 28 * 28) == 1.0


def test_flow_loss_is_the_velocity_error_at_the_drawn_times():
    x0 = jax.random.uniform(jax.random.key(2), (5, 4, 4, 1), minval=-1, maxval=1)
    model = lambda x, t: 0.5 * x + t[:, None, None, None]
    key = jax.random.key(3)
    losses, t = flow.flow_loss(model, x0, key, "logit_normal")
    k_t, k_eps = jax.random.split(key)
    np.testing.assert_array_equal(t, flow.sample_t(k_t, 5, "logit_normal"))
    eps = jax.random.normal(k_eps, x0.shape)
    xt = (1 - t[:, None, None, None]) * x0 + t[:, None, None, None] * eps
    expected = jnp.square(model(xt, t) - (eps - x0)).reshape(5, -1).mean(-1)
    np.testing.assert_allclose(losses, expected, rtol=1e-6)


def test_the_exact_velocity_minimises_the_flow_matching_loss():
    """The marginal velocity has a lower expected loss than velocities a little off it (65k draws, same keys)."""
    x0 = MU + np.sqrt(VAR) * np.asarray(jax.random.normal(jax.random.key(4), (65_536, 2)))
    loss = lambda fn: float(flow.flow_loss(fn, jnp.asarray(x0), jax.random.key(5))[0].mean())
    best = loss(exact_velocity)
    for scale in (0.9, 1.1):
        assert loss(lambda x, t, s=scale: s * exact_velocity(x, t)) > best
    assert loss(lambda x, t: exact_velocity(x, t) + 0.05) > best


def _transport_error(sampler, ts):
    """Max abs error of a sampler against the exact transport x_0 = MU + sqrt(VAR) x_1 from the same noise."""
    key = jax.random.key(6)
    x = SAMPLE[sampler](exact_velocity, ts, (512, 2), key)
    start = np.asarray(jax.random.normal(key, (512, 2)), np.float64)
    return np.abs(np.asarray(x, np.float64) - (MU + np.sqrt(VAR) * start)).max()


@pytest.mark.parametrize("sampler, order, bound", [("euler", 1, 0.04), ("heun", 2, 0.002), ("midpoint", 2, 0.002)])
def test_each_sampler_transports_noise_onto_the_data_at_its_order(sampler, order, bound):
    """With the exact velocity each sampler carries N(0, I) onto N(MU, VAR): within `bound` at 64 steps (twice it on
    the schedule shifted by 3), and doubling the steps from 32 to 64 divides the error by at least about 2^order.
    (Measured at 16/32/64/128 steps: Euler 0.116/0.059/0.030/0.015, Heun 6.2e-3/1.7e-3/4.4e-4/1.1e-4, the midpoint
    rule 2.6e-4/3.3e-5/4.2e-6/1.1e-6: third order on this field.)"""
    error = lambda n, shift=1.0: _transport_error(sampler, flow.flow_sigmas(n, shift, num_train_steps=None))
    assert error(64) < bound and error(64, 3.0) < 2 * bound
    assert error(32) / error(64) > 2**order * 0.75


def test_euler_with_the_exact_velocity_reproduces_the_datas_moments():
    """100k draws on diffusers' schedule of 400 Euler steps: mean within 0.01, variances within 3% (4.3% under at
    100 steps: Euler is first order)."""
    x = np.asarray(flow.sample_euler(exact_velocity, flow.flow_sigmas(400), (100_000, 2), jax.random.key(7)))
    np.testing.assert_allclose(x.mean(0), MU, atol=0.01)
    np.testing.assert_allclose(x.var(0), VAR, rtol=0.03)


def test_guidance_mixes_conditional_and_unconditional_velocities_in_one_call():
    """guided_velocity_fn's doubled batch gives (1 + w) v(x, c) - w v(x, null); w = 0 is the conditional model."""
    calls = []

    def model(x, t, labels):
        calls.append(x.shape[0])
        return x * (1.0 + labels[:, None].astype(jnp.float32)) + t[:, None]

    x, t, labels = jnp.ones((3, 2)), jnp.full((3,), 0.5), jnp.array([0, 1, 2])
    guided = flow.guided_velocity_fn(model, labels, null_label=3, w=2.0)(x, t)
    expected = 3.0 * model(x, t, labels) - 2.0 * model(x, t, jnp.full((3,), 3))
    np.testing.assert_allclose(guided, expected)
    assert calls[0] == 6
    np.testing.assert_allclose(flow.guided_velocity_fn(model, labels, 3, 0.0)(x, t), model(x, t, labels))
    np.testing.assert_allclose(flow.guided_velocity(1.0, 3.0, -1.0), 3.0)


@pytest.mark.parametrize("sampler", flow.SAMPLERS)
def test_each_sampler_calls_the_network_num_evaluations_times(sampler):
    calls = network_calls(SAMPLE[sampler], exact_velocity, flow.flow_sigmas(5), (4, 2))
    assert calls == flow.num_evaluations(sampler, 5) == (5 if sampler == "euler" else 10)


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="distribution='beta' is not one of uniform, logit_normal"):
        flow.sample_t(jax.random.key(0), 4, "beta")
    with pytest.raises(ValueError, match="shift=0 must be > 0"):
        flow.shift_t(0.5, 0)
    with pytest.raises(ValueError, match="num_steps must be a positive integer, got 0"):
        flow.flow_sigmas(0)
    with pytest.raises(ValueError, match="sampler='rk4'"):
        flow.num_evaluations("rk4", 3)


def test_euler_steps_as_diffusers_flow_match_euler_does():
    """Optional (the `diffusers-check` extra): FlowMatchEulerDiscreteScheduler(shift=3) on the exact velocity, 8 steps
    from the same noise (its timesteps are t * 1000), against sample_euler on flow_sigmas(8, 3)."""
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    theirs = diffusers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    theirs.set_timesteps(8)
    key, shape = jax.random.key(9), (64, 2)
    ours = flow.sample_euler(exact_velocity, flow.flow_sigmas(8, 3.0), shape, key)
    x = torch.from_numpy(np.array(jax.random.normal(key, shape)))
    for t in theirs.timesteps:
        v = exact_velocity(jnp.asarray(x.numpy()), jnp.full((64,), float(t) / 1000))
        x = theirs.step(torch.from_numpy(np.array(v)), t, x).prev_sample
    np.testing.assert_allclose(np.asarray(ours), x.numpy(), rtol=1e-4, atol=1e-4)
