"""The GAN's training pieces, for train/gan.py: its two networks and optimizers, the discriminator as trained
(spectrally normalised or not), the R1/R2 penalties (lazily or every step), D's loss per example and what a step
logs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from train.core import config as config_lib, state as state_lib
from zoo import gan

NETS = ("generator", "discriminator")


def make_nets(c, image_shape):
    m, dtype = c.model, config_lib.compute_dtype(c)
    if m.arch == "mlp":
        return (
            gan.MLPGenerator(tuple(image_shape), hidden=tuple(m.hidden), dtype=dtype),
            gan.MLPDiscriminator(hidden=tuple(m.hidden), dtype=dtype),
        )
    return (
        gan.DCGenerator(tuple(image_shape), channels=tuple(m.channels), dtype=dtype),
        gan.DCDiscriminator(channels=tuple(m.channels), dtype=dtype),
    )


def optimizers(c) -> dict[str, optax.GradientTransformation]:
    """One optimizer per network, each with the config's schedule (the discriminator's at d_learning_rate)."""
    d = c.copy_and_resolve_references()
    d.learning_rate = c.d_learning_rate or c.learning_rate
    return {"generator": state_lib.make_optimizer(c), "discriminator": state_lib.make_optimizer(d)}


def per_network(txs: dict) -> optax.GradientTransformation:
    """An optimizer over {'generator': ..., 'discriminator': ...} whose state is one sub-state per network,
    so a step may update the two networks one after the other (txs[name].update on opt_state[name])."""

    def init(params):
        return {k: txs[k].init(params[k]) for k in NETS}

    def update(grads, opt_state, params=None):
        out = {k: txs[k].update(grads[k], opt_state[k], None if params is None else params[k]) for k in NETS}
        return {k: out[k][0] for k in NETS}, {k: out[k][1] for k in NETS}

    return optax.GradientTransformation(init, update)


GENERATOR_LOSSES = {
    "minimax": gan.generator_loss_saturating,
    "nonsaturating": gan.generator_loss_nonsaturating,
    "hinge": gan.hinge_g_loss,
    "wgan-gp": gan.wasserstein_g_loss,
}


def discriminator_in_use(c, disc):
    """d(params, x, us) -> (scores, next us): D as trained, spectrally normalised when d_spectral_norm (one power
    step from the state's u vectors, us) or as it is (us None)."""

    def apply(params, x, us):
        if c.d_spectral_norm:
            params, us = gan.spectral_normalize(params, us)
        return disc.apply({"params": params}, x), us

    return apply


def init_spectral_vectors(c, disc, image_shape):
    """The train state's aux: {'spectral_u': a unit u per kernel of D} when d_spectral_norm, else None."""
    if not c.d_spectral_norm:
        return None
    shapes = jax.eval_shape(disc.init, jax.random.key(0), jnp.zeros((1, *image_shape)))["params"]
    return {"spectral_u": gan.spectral_norm_vectors(shapes, jax.random.key(1))}  # any unit start converges


def penalties(c, d_in_use, d_params, xr, xf, us):
    """R1 on the (augmented) reals plus R2 on the fakes, per pair [B], through D as trained (d_in_use)."""
    d_apply = lambda p, x: d_in_use(p, x, us)[0]
    per = jnp.zeros(xr.shape[0], jnp.float32)
    if c.r1_gamma:
        per = per + gan.r1_penalty(d_apply, d_params, xr, c.r1_gamma)
    if c.r2_gamma:
        per = per + gan.r2_penalty(d_apply, d_params, xf, c.r2_gamma)
    return per


def lazy_penalties(c, d_in_use, d_params, xr, xf, us, step):
    """StyleGAN2's lazy regularisation: (k times the penalties' mean, k times its gradient) every k-th D step
    (step % reg_every == 0), zeros between."""

    def on():
        value, grads = jax.value_and_grad(lambda p: jnp.mean(penalties(c, d_in_use, p, xr, xf, us)))(d_params)
        return c.reg_every * value, jax.tree.map(lambda g: c.reg_every * g, grads)

    off = lambda: (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, d_params))
    return jax.lax.cond(step % c.reg_every == 0, on, off)


def d_loss_per_example(c, d_in_use, d_params, xr, xf, key, us):
    """(D's loss of config.loss per example [B], its logits on reals and fakes, the advanced spectral vectors)."""
    (lr, next_us), (lf, _) = d_in_use(d_params, xr, us), d_in_use(d_params, xf, us)
    if c.loss in ("minimax", "nonsaturating"):
        per = gan.discriminator_loss(lr, lf)
    elif c.loss == "hinge":
        per = gan.hinge_d_loss(lr, lf)
    else:
        d_apply = lambda p, x: d_in_use(p, x, us)[0]
        per = gan.wasserstein_d_loss(lr, lf) + c.gp_weight * gan.gradient_penalty(d_apply, d_params, xr, xf, key)
    return per, lr, lf, next_us


def step_metrics(d_loss, g_loss, lr, lf, d_grads, g_grad_norm, penalty=None) -> dict:
    """What a step logs; g_grad_norm is 0 on critic-only steps, penalty (R1 + R2 in d_loss this step, k times it
    every k-th step when lazy) is logged when a penalty is configured."""
    metrics = {
        "loss": d_loss + g_loss,
        "d_loss": d_loss,
        "g_loss": g_loss,
        "minimax_value": gan.minimax_value(lr, lf),
        "d_real": jnp.mean(lr),
        "d_fake": jnp.mean(lf),
        "d_grad_norm": optax.global_norm(d_grads),
        "g_grad_norm": g_grad_norm,
    }
    return metrics if penalty is None else {**metrics, "d_penalty": penalty}
