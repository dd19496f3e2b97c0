"""Train a GAN: `python -m train.gan [--workdir runs/gan] [--config.key=value ...]`.

Default: an MLP generator and discriminator with the non-saturating loss on the embedded 8x8 digits, a few
minutes on 2 CPU cores. One jitted step updates the discriminator, then the generator against the updated
discriminator. config.loss: 'minimax' (the lecture's: D maximises V(D, G), G minimises it), 'nonsaturating'
(G minimises -log D(G(z))), 'hinge', or 'wgan-gp' (Wasserstein critic + gradient penalty). Both networks
keep an EMA; samples come from the EMA generator. Writes checkpoints, metrics.jsonl (losses, the minimax
value V(D, G), sample quality), samples/{samples,interpolation}_*.png.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from train.core import cli, config as config_lib, loop, state as state_lib
from train.core.config import Key
from train.data import image_runs, images as data
from train.evaluation import images as evaluation, plots
from zoo import gan

LOSSES = ("minimax", "nonsaturating", "hinge", "wgan-gp")
ARCHS = ("mlp", "dcgan")
NETS = ("generator", "discriminator")


SCHEMA = config_lib.Schema(
    *config_lib.IMAGE_MODEL,
    {
        "d_learning_rate": Key(
            0.0, "the discriminator's learning rate (0: learning_rate, the generator's)", range=">= 0"
        ),
        "loss": Key("nonsaturating", "the GAN objective", choices=LOSSES),
        "gp_weight": Key(10.0, "lambda of the gradient penalty ('wgan-gp')", range=">= 0"),
    },
    config_lib.latent_network_keys(ARCHS, "generator and discriminator", "z", 32, (256, 256), "of both networks"),
    evaluation.eval_keys(num_samples=500),
    evaluation.INTERPOLATION_KEYS,
    image_runs.SAMPLE_KEYS,
    checks=(evaluation.check_eval_config,),
    defaults=dict(
        num_steps=10000,
        batch_size=64,
        learning_rate=2e-4,
        lr_schedule="constant",
        warmup_steps=0,
        b1=0.5,
        b2=0.999,
        grad_clip=0.0,
        ema_decay=0.999,
        log_every=100,
        checkpoint_every=2000,
    ),
    variants={
        # 28x28 digits: the DCGAN generator and discriminator, a 64-d z.
        "mnist": config_lib.mnist_variant("dcgan", 64),
        "smoke": {
            **evaluation.SMOKE,
            **evaluation.SMOKE_LOOP,
            **config_lib.SMOKE_NETWORKS,
            "model.latent_dim": 4,
            "eval.interpolation_rows": 2,
            "eval.interpolation_steps": 3,
        },
    },
)


get_config = SCHEMA.config  # get_config() is the default config, get_config('smoke') a seconds-long run


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


def make_task(c, spec: data.ImageSpec) -> loop.Task:
    """The training part: generator and discriminator of config.model, each step D's update then G's."""
    gen, disc = make_nets(c, spec.image_shape)
    txs = optimizers(c)
    latent = c.model.latent_dim
    g_apply = lambda p, z: gen.apply({"params": p}, z)
    d_apply = lambda p, x: disc.apply({"params": p}, x)

    def init_params(key):
        kg, kd = jax.random.split(key)
        return {
            "generator": gen.init(kg, jnp.zeros((1, latent)))["params"],
            "discriminator": disc.init(kd, jnp.zeros((1, *spec.image_shape)))["params"],
        }

    def d_objective(d_params, real, fake, key):
        lr, lf = d_apply(d_params, real), d_apply(d_params, fake)
        if c.loss in ("minimax", "nonsaturating"):
            per = gan.discriminator_loss(lr, lf)
        elif c.loss == "hinge":
            per = gan.hinge_d_loss(lr, lf)
        else:
            per = gan.wasserstein_d_loss(lr, lf) + c.gp_weight * gan.gradient_penalty(
                d_apply, d_params, real, fake, key
            )
        return jnp.mean(per), (lr, lf)

    def g_objective(g_params, d_params, z):
        lf = d_apply(d_params, g_apply(g_params, z))
        per = {
            "minimax": gan.generator_loss_saturating,
            "nonsaturating": gan.generator_loss_nonsaturating,
            "hinge": gan.hinge_g_loss,
            "wgan-gp": gan.wasserstein_g_loss,
        }[c.loss](lf)
        return jnp.mean(per)

    def train_step(state, batch, key):
        k_zd, k_zg, k_gp = jax.random.split(key, 3)
        real = data.to_signed(batch["image"])
        n = real.shape[0]
        g, d = state.params["generator"], state.params["discriminator"]
        fake = jax.lax.stop_gradient(g_apply(g, jax.random.normal(k_zd, (n, latent), jnp.float32)))
        (d_loss, (lr, lf)), d_grads = jax.value_and_grad(d_objective, has_aux=True)(d, real, fake, k_gp)
        d_updates, d_opt = txs["discriminator"].update(d_grads, state.opt_state["discriminator"], d)
        d = optax.apply_updates(d, state.scale_updates(d_updates))
        g_loss, g_grads = jax.value_and_grad(g_objective)(g, d, jax.random.normal(k_zg, (n, latent), jnp.float32))
        g_updates, g_opt = txs["generator"].update(g_grads, state.opt_state["generator"], g)
        g = optax.apply_updates(g, state.scale_updates(g_updates))
        new = state.advance(
            params={"generator": g, "discriminator": d}, opt_state={"generator": g_opt, "discriminator": d_opt}
        )
        metrics = {
            "loss": d_loss + g_loss,
            "d_loss": d_loss,
            "g_loss": g_loss,
            "minimax_value": gan.minimax_value(lr, lf),
            "d_real": jnp.mean(lr),
            "d_fake": jnp.mean(lf),
            "d_grad_norm": optax.global_norm(d_grads),
            "g_grad_norm": optax.global_norm(g_grads),
        }
        return new, metrics

    return loop.Task("gan", init_params, train_step=train_step, optimizer=per_network(txs))


def make_generator(c, spec: data.ImageSpec, num_images: int) -> image_runs.Generator:
    """num_images images a call of the (EMA) generator, from z ~ N(0, I)."""
    gen, _ = make_nets(c, spec.image_shape)
    generate = jax.jit(
        lambda p, k: gen.apply({"params": p["generator"]}, jax.random.normal(k, (num_images, c.model.latent_dim)))
    )
    return image_runs.Generator(lambda p, k, y: data.signed_to_uint8(generate(p, k)))


def make_evaluation(c, ds: data.ImageData) -> dict:
    """{'evaluate'}: samples, an interpolation in z, the test minimax value and sample quality."""
    evaluation.check_dataset_for_eval(c, ds)
    gen, disc = make_nets(c, ds.image_shape)
    latent = c.model.latent_dim
    g_apply = lambda p, z: gen.apply({"params": p}, z)
    d_apply = lambda p, x: disc.apply({"params": p}, x)

    @functools.partial(jax.jit, static_argnums=2)
    def generate(g_params, key, n):
        return g_apply(g_params, jax.random.normal(key, (n, latent)))

    @jax.jit
    def test_value(params, real, key):
        """The lecture's V(D, G) on test images against as many generated ones, and D's mean score of each."""
        fake = g_apply(params["generator"], jax.random.normal(key, (real.shape[0], latent)))
        lr, lf = d_apply(params["discriminator"], data.to_signed(real)), d_apply(params["discriminator"], fake)
        return gan.minimax_value(lr, lf), jnp.mean(lr), jnp.mean(lf)

    generate_from = jax.jit(g_apply)
    test = data.split_arrays(ds.test, c.eval.test_examples)
    quality = evaluation.SampleQuality(c, ds)
    rows, steps = c.eval.interpolation_rows, c.eval.interpolation_steps

    def evaluate(state, step):
        k_sample, k_interp, k_test = jax.random.split(evaluation.eval_key(c.seed, step), 3)
        g_ema = state.eval_params["generator"]
        n = max(c.eval.num_samples, c.eval.grid_images)
        samples = data.signed_to_uint8(generate(g_ema, k_sample, n))
        z0, z1 = jnp.split(jax.random.normal(k_interp, (2 * rows, latent)), 2)
        strip = data.signed_to_uint8(generate_from(g_ema, plots.interpolate(z0, z1, steps)))
        images = {
            "samples": plots.samples_grid(samples[: c.eval.grid_images]),
            "interpolation": plots.interpolation_strip(strip, rows),
        }
        value, d_real, d_fake = test_value(state.params, test["image"], k_test)
        scalars = {"test_minimax_value": float(value), "test_d_real": float(d_real), "test_d_fake": float(d_fake)}
        if quality.enabled:
            scalars.update(quality(samples[: c.eval.num_samples]))
        return scalars, images

    return {"evaluate": evaluate}


ENTRY = image_runs.ImageModel("gan", SCHEMA, make_task, make_evaluation, make_generator).entry(__doc__, __file__)
run, load, sample_workdir = ENTRY.run, ENTRY.load, ENTRY.sample

if __name__ == "__main__":
    cli.main(ENTRY)
