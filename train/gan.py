"""Train a GAN: `python -m train.gan [--workdir runs/gan] [--config.key=value ...]`.

Default: an MLP generator and discriminator with the non-saturating loss on the embedded 8x8 digits, a few
minutes on 2 CPU cores. One jitted step updates the discriminator, then (every n_critic-th step) the generator
against the updated discriminator. config.loss: 'minimax' (the lecture's: D maximises V(D, G), G minimises it),
'nonsaturating' (G minimises -log D(G(z))), 'hinge', or 'wgan-gp' (Wasserstein critic + gradient penalty).
Stabilisers: n_critic (critic steps per generator step), d_spectral_norm (D's kernels over their largest
singular value), r1_gamma / r2_gamma / reg_every (gradient penalties on reals / fakes, lazily every k steps),
diffaugment (the same differentiable augmentation of reals and fakes before D). Both networks keep an EMA;
samples come from the EMA generator. Writes checkpoints, metrics.jsonl (losses, the minimax value V(D, G),
sample quality), samples/{samples,interpolation}_*.png.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from train.core import cli, config as config_lib, loop
from train.core.config import ConfigError, Key
from train.data import gan_runs, image_runs, images as data
from train.evaluation import images as evaluation, plots
from zoo import gan

LOSSES = ("minimax", "nonsaturating", "hinge", "wgan-gp")
ARCHS = ("mlp", "dcgan")


def check_stabilisers(c) -> None:
    """ConfigError for a DiffAugment policy with an unknown op, or a reg_every with no R1/R2 to space out."""
    try:
        gan.parse_diffaugment_policy(c.diffaugment)
    except ValueError:
        raise ConfigError(
            f"config.diffaugment={c.diffaugment!r} is not accepted; accepted: a comma-separated subset of "
            f"{', '.join(gan.DIFFAUGMENT_OPS)} (each once), or '' for none"
        ) from None
    if c.reg_every > 1 and not (c.r1_gamma or c.r2_gamma):
        raise ConfigError(
            f"config.reg_every={c.reg_every} spaces out R1/R2, but both are off; accepted: config.reg_every=1, or "
            f"config.r1_gamma or config.r2_gamma > 0"
        )


SCHEMA = config_lib.Schema(
    *config_lib.IMAGE_MODEL,
    {
        "d_learning_rate": Key(
            0.0, "the discriminator's learning rate (0: learning_rate, the generator's)", range=">= 0"
        ),
        "loss": Key("nonsaturating", "the GAN objective", choices=LOSSES),
        "gp_weight": Key(10.0, "lambda of the gradient penalty ('wgan-gp')", range=">= 0"),
        "n_critic": Key(
            1, "discriminator steps per generator step: a train step updates D, every n-th also G", range=">= 1"
        ),
        "d_spectral_norm": Key(False, "divide D's kernels by their largest singular value (one power step a use)"),
        "r1_gamma": Key(0.0, "gamma of R1 = gamma/2 E_real |grad_x D(x)|^2 in D's loss (0: off)", range=">= 0"),
        "r2_gamma": Key(0.0, "gamma of R2 = gamma/2 E_fake |grad_x D(x)|^2 in D's loss (0: off)", range=">= 0"),
        "reg_every": Key(1, "R1/R2 every k-th D step, weighted by k (StyleGAN2's lazy regularisation)", range=">= 1"),
        "diffaugment": Key(
            "", "DiffAugment ops on reals and fakes before D: a comma list of color, translation, cutout ('': off)"
        ),
    },
    config_lib.latent_network_keys(ARCHS, "generator and discriminator", "z", 32, (256, 256), "of both networks"),
    evaluation.eval_keys(num_samples=500),
    evaluation.INTERPOLATION_KEYS,
    image_runs.SAMPLE_KEYS,
    checks=(evaluation.check_eval_config, check_stabilisers),
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


def make_task(c, spec: data.ImageSpec) -> loop.Task:
    """The training part: generator and discriminator of config.model. Each step is one D update; every
    n_critic-th step (step % n_critic == n_critic - 1) also updates G against the updated D, so the position in
    the cycle is the state's step counter and a resume anywhere in it is exact."""
    gen, disc = gan_runs.make_nets(c, spec.image_shape)
    txs = gan_runs.optimizers(c)
    latent = c.model.latent_dim
    g_apply = lambda p, z: gen.apply({"params": p}, z)
    d_in_use = gan_runs.discriminator_in_use(c, disc)
    policy = gan.parse_diffaugment_policy(c.diffaugment)
    augment = lambda x, k: gan.diffaugment(x, k, policy)
    g_loss_of = gan_runs.GENERATOR_LOSSES[c.loss]
    regularised = bool(c.r1_gamma or c.r2_gamma)
    lazy = regularised and c.reg_every > 1

    def init_params(key):
        kg, kd = jax.random.split(key)
        return {
            "generator": gen.init(kg, jnp.zeros((1, latent)))["params"],
            "discriminator": disc.init(kd, jnp.zeros((1, *spec.image_shape)))["params"],
        }

    def d_objective(d_params, xr, xf, key, us):
        per, lr, lf, next_us = gan_runs.d_loss_per_example(c, d_in_use, d_params, xr, xf, key, us)
        loss, reg = jnp.mean(per), jnp.zeros((), jnp.float32)
        if regularised and not lazy:
            reg = jnp.mean(gan_runs.penalties(c, d_in_use, d_params, xr, xf, us))
            loss = loss + reg
        return loss, (lr, lf, next_us, reg)

    def g_objective(g_params, d_params, z, key, us):
        lf, us = d_in_use(d_params, augment(g_apply(g_params, z), key), us)
        return jnp.mean(g_loss_of(lf)), us

    def train_step(state, batch, key):
        k_zd, k_zg, k_gp = jax.random.split(key, 3)
        k_ar, k_af, k_ag = jax.random.split(jax.random.fold_in(key, 1), 3)  # DiffAugment's draws
        real = data.to_signed(batch["image"])
        n = real.shape[0]
        g, d = state.params["generator"], state.params["discriminator"]
        us = state.aux["spectral_u"] if c.d_spectral_norm else None
        fake = jax.lax.stop_gradient(g_apply(g, jax.random.normal(k_zd, (n, latent), jnp.float32)))
        xr, xf = augment(real, k_ar), augment(fake, k_af)
        (d_loss, (lr, lf, next_us, reg)), d_grads = jax.value_and_grad(d_objective, has_aux=True)(d, xr, xf, k_gp, us)
        if lazy:
            reg, reg_grads = gan_runs.lazy_penalties(c, d_in_use, d, xr, xf, us, state.step)
            d_loss, d_grads = d_loss + reg, jax.tree.map(jnp.add, d_grads, reg_grads)
        d_updates, d_opt = txs["discriminator"].update(d_grads, state.opt_state["discriminator"], d)
        d = optax.apply_updates(d, state.scale_updates(d_updates))
        z = jax.random.normal(k_zg, (n, latent), jnp.float32)

        def g_step():
            (g_loss, us), g_grads = jax.value_and_grad(g_objective, has_aux=True)(g, d, z, k_ag, next_us)
            g_updates, g_opt = txs["generator"].update(g_grads, state.opt_state["generator"], g)
            return optax.apply_updates(g, state.scale_updates(g_updates)), g_opt, g_loss, optax.global_norm(g_grads), us

        def critic_only():  # G unchanged; g_loss is G's loss on this step's fakes under the D before its update
            return g, state.opt_state["generator"], jnp.mean(g_loss_of(lf)), jnp.zeros((), jnp.float32), next_us

        if c.n_critic == 1:
            g, g_opt, g_loss, g_grad_norm, us = g_step()
        else:
            g, g_opt, g_loss, g_grad_norm, us = jax.lax.cond(
                state.step % c.n_critic == c.n_critic - 1, g_step, critic_only
            )
        new = state.advance(
            params={"generator": g, "discriminator": d},
            opt_state={"generator": g_opt, "discriminator": d_opt},
            aux={"spectral_u": us} if c.d_spectral_norm else state.aux,
        )
        return new, gan_runs.step_metrics(d_loss, g_loss, lr, lf, d_grads, g_grad_norm, reg if regularised else None)

    init_aux = lambda: gan_runs.init_spectral_vectors(c, disc, spec.image_shape)
    return loop.Task("gan", init_params, train_step=train_step, optimizer=gan_runs.per_network(txs), init_aux=init_aux)


def make_generator(c, spec: data.ImageSpec, num_images: int) -> image_runs.Generator:
    """num_images images a call of the (EMA) generator, from z ~ N(0, I)."""
    gen, _ = gan_runs.make_nets(c, spec.image_shape)
    generate = jax.jit(
        lambda p, k: gen.apply({"params": p["generator"]}, jax.random.normal(k, (num_images, c.model.latent_dim)))
    )
    return image_runs.Generator(lambda p, k, y: data.signed_to_uint8(generate(p, k)))


def make_evaluation(c, ds: data.ImageData) -> dict:
    """{'evaluate'}: samples, an interpolation in z, the test minimax value and sample quality."""
    evaluation.check_dataset_for_eval(c, ds)
    gen, disc = gan_runs.make_nets(c, ds.image_shape)
    latent = c.model.latent_dim
    g_apply = lambda p, z: gen.apply({"params": p}, z)
    d_in_use = gan_runs.discriminator_in_use(c, disc)

    @functools.partial(jax.jit, static_argnums=2)
    def generate(g_params, key, n):
        return g_apply(g_params, jax.random.normal(key, (n, latent)))

    @jax.jit
    def test_value(params, aux, real, key):
        """The lecture's V(D, G) on test images against as many generated ones, and D's mean score of each (no
        DiffAugment; spectral norm's u vectors are read, not advanced)."""
        us = aux["spectral_u"] if c.d_spectral_norm else None
        fake = g_apply(params["generator"], jax.random.normal(key, (real.shape[0], latent)))
        lr, lf = (
            d_in_use(params["discriminator"], data.to_signed(real), us)[0],
            d_in_use(params["discriminator"], fake, us)[0],
        )
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
        value, d_real, d_fake = test_value(state.params, state.aux, test["image"], k_test)
        scalars = {"test_minimax_value": float(value), "test_d_real": float(d_real), "test_d_fake": float(d_fake)}
        if quality.enabled:
            scalars.update(quality(samples[: c.eval.num_samples]))
        return scalars, images

    return {"evaluate": evaluate}


ENTRY = image_runs.ImageModel("gan", SCHEMA, make_task, make_evaluation, make_generator).entry(__doc__, __file__)
run, load, sample_workdir = ENTRY.run, ENTRY.load, ENTRY.sample

if __name__ == "__main__":
    cli.main(ENTRY)
