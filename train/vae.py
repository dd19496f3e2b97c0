"""Train a VAE: `python -m train.vae [--workdir runs/vae] [--config.key=value ...]`.

Default: an MLP VAE with an 8-d latent and a Bernoulli decoder on the embedded 8x8 digits, a few minutes
on 2 CPU cores. config.loss selects the negative ELBO ('elbo', times beta on the KL) or the lecture's
C ||x - x_hat||^2 + beta KL ('lecture'); config.conditional=True makes a conditional VAE on the labels.
Writes checkpoints, metrics.jsonl (test ELBO and IWAE log-likelihood in nats per image, sample quality),
samples/{reconstructions,samples,interpolation,latent}_*.png.

Likelihoods: pixels are scaled to [0, 1]. likelihood='bernoulli' scores each grey level as a Bernoulli
probability (the usual convention; not a normalised density of grey levels); likelihood='gaussian' is
N(x_hat, 1/(2C)) per pixel, the decoder under which the lecture's loss is exactly -ELBO + const.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from train.core import cli, config as config_lib, loop
from train.core.config import Key
from train.data import image_runs, images as data
from train.evaluation import images as evaluation, plots
from zoo import vae

SCHEMA = config_lib.Schema(
    *config_lib.IMAGE_MODEL,
    {
        "loss": Key(
            "elbo", "'elbo': -log p(x|z) + beta KL; 'lecture': C ||x - x_hat||^2 + beta KL", choices=vae.LOSSES
        ),
        "likelihood": Key(
            "bernoulli", "the decoder's p(x|z): Bernoulli, or Gaussian of variance 1/(2C)", choices=vae.LIKELIHOODS
        ),
        "beta": Key(1.0, "weight of the KL term (a beta-VAE when != 1)", range=">= 0"),
        "sweep.beta": Key(
            (), "a sweep over beta: one value per replica, e.g. (0.5, 1.0, 4.0)", item=float, range=">= 0"
        ),
        "C": Key(50.0, "the lecture's C; also the gaussian decoder's variance 1/(2C)", range="> 0"),
        "conditional": Key(False, "condition encoder and decoder on the labels (a CVAE)"),
    },
    config_lib.latent_network_keys(vae.ARCHS, "encoder and decoder", "z", 8, (256, 128), "the decoder mirrors them"),
    evaluation.eval_keys(num_samples=500),
    evaluation.INTERPOLATION_KEYS,
    image_runs.SAMPLE_KEYS,
    {"eval.iwae_k": Key(100, "importance samples of the IWAE bound on log p(x)", range=">= 1")},
    checks=(evaluation.check_eval_config,),
    defaults={**config_lib.IMAGE_RECIPE, "num_steps": 10000, "checkpoint_every": 2000},
    variants={
        # 28x28 digits: conv encoder and decoder, a 16-d z.
        "mnist": config_lib.mnist_variant("conv", 16),
        "smoke": {
            **evaluation.SMOKE,
            **evaluation.SMOKE_LOOP,
            **config_lib.SMOKE_RECIPE,
            **config_lib.SMOKE_NETWORKS,
            "model.latent_dim": 3,
            "eval.iwae_k": 4,
            "eval.test_examples": 64,
            "eval.interpolation_rows": 2,
            "eval.interpolation_steps": 3,
        },
    },
)


get_config = SCHEMA.config  # get_config() is the default config, get_config('smoke') a seconds-long run


def make_net(c, spec: data.ImageSpec) -> vae.VAE:
    """The VAE of config.model on images of spec.image_shape, conditioned on spec's labels for a CVAE."""
    return vae.VAE(
        tuple(spec.image_shape),
        latent_dim=c.model.latent_dim,
        arch=c.model.arch,
        likelihood=c.likelihood,
        hidden=tuple(c.model.hidden),
        channels=tuple(c.model.channels),
        num_classes=spec.num_classes if c.conditional else 0,
        dtype=config_lib.compute_dtype(c),
    )


def labels_of(c):
    return (lambda y: jnp.asarray(y, jnp.int32)) if c.conditional else (lambda y: None)


def decoder_kwargs(c) -> dict:
    """The likelihood of the decoder: Bernoulli, or Gaussian of variance 1/(2C)."""
    return dict(likelihood=c.likelihood, obs_log_var=math.log(1.0 / (2.0 * c.C)))


def make_task(c, spec: data.ImageSpec) -> loop.Task:
    """The training part: the VAE of config.model, the loss of config.loss (times beta on the KL)."""
    if c.conditional:
        data.check_labels(spec, "conditional", True)
    net = make_net(c, spec)
    apply = lambda params, x, **kw: net.apply({"params": params}, x, **kw)
    y_of = labels_of(c)

    def init_params(key):
        y = jnp.zeros((1,), jnp.int32) if c.conditional else None
        return net.init(key, jnp.zeros((1, *spec.image_shape)), labels=y)["params"]

    def loss_fn(params, batch, key, beta=c.beta):  # beta: a sweep's replica passes its own (config.sweep.beta)
        x, y = data.to_unit(batch["image"]), y_of(batch["label"])
        per, terms = vae.vae_loss(params, apply, x, key, loss=c.loss, beta=beta, C=c.C, labels=y, **decoder_kwargs(c))
        return jnp.mean(per), {k: jnp.mean(v) for k, v in terms.items()}

    return loop.Task("vae", init_params, loss_fn=loss_fn, hparams=("beta",))


def make_generator(c, spec: data.ImageSpec, num_images: int) -> image_runs.Generator:
    """num_images decoded draws of the prior a call (the decoder's mean), of the labels given for a CVAE."""
    net = make_net(c, spec)
    apply = lambda params, x, **kw: net.apply({"params": params}, x, **kw)
    generate = jax.jit(
        lambda p, k, y: vae.sample(p, apply, k, num_images, c.model.latent_dim, likelihood=c.likelihood, labels=y)
    )
    draw = lambda p, k, y: data.unit_to_uint8(generate(p, k, None if y is None else jnp.asarray(y, jnp.int32)))
    return image_runs.Generator(draw, spec.num_classes if c.conditional else 0)


def make_evaluation(c, ds: data.ImageData) -> dict:
    """{'evaluate'}: the test ELBO and IWAE bound, reconstructions, the latent means, samples, interpolations."""
    evaluation.check_dataset_for_eval(c, ds)
    net, y_of, kw = make_net(c, ds), labels_of(c), decoder_kwargs(c)
    apply = lambda params, x, **kw: net.apply({"params": params}, x, **kw)
    num_classes = ds.num_classes if c.conditional else 0

    @jax.jit
    def test_figures(params, images, labels, key):
        x, y = data.to_unit(images), y_of(labels)
        k_elbo, k_iwae = jax.random.split(key)
        _, terms = vae.vae_loss(params, apply, x, k_elbo, loss="elbo", labels=y, **kw)
        iwae = vae.iwae_bound(params, apply, x, k_iwae, c.eval.iwae_k, labels=y, **kw)
        out, mu, _ = net.apply({"params": params}, x, labels=y)  # z = mu: the reconstruction shown
        return terms["elbo"], iwae, terms["kl"], mu, vae.likelihood_mean(out, c.likelihood)

    @functools.partial(jax.jit, static_argnums=3)
    def generate(params, key, labels, n):
        return vae.sample(params, apply, key, n, c.model.latent_dim, likelihood=c.likelihood, labels=labels)

    @jax.jit
    def decode(params, z, labels):
        return vae.likelihood_mean(net.apply({"params": params}, z, labels=labels, method="decode"), c.likelihood)

    test = data.split_arrays(ds.test, c.eval.test_examples)
    quality = evaluation.SampleQuality(c, ds)
    rows, steps = min(c.eval.interpolation_rows, len(test["image"])), c.eval.interpolation_steps
    starts, ends = interpolation_pairs(test["label"], rows, same_label=c.conditional)

    def evaluate(state, step):
        params = state.eval_params
        k_test, k_sample = jax.random.split(evaluation.eval_key(c.seed, step))
        elbo, iwae, kl, mu, recons = data.batched(
            lambda x, y, i: test_figures(params, x, y, jax.random.fold_in(k_test, int(i[0]))),
            test["image"],
            test["label"],
            np.arange(len(test["image"])),
            batch_size=500,
        )
        scalars = {
            "test_elbo_nats": float(np.mean(elbo)),
            f"test_iwae{c.eval.iwae_k}_nats": float(np.mean(iwae)),
            "test_kl_nats": float(np.mean(kl)),
        }
        n_show = min(32, len(test["image"]))
        images = {
            "reconstructions": plots.reconstruction_grid(test["image"][:n_show], data.unit_to_uint8(recons[:n_show])),
            "latent": plots.latent_scatter(mu, test["label"], f"VAE posterior means of the test split, step {step}"),
        }
        n = max(c.eval.num_samples, c.eval.grid_images)
        y = jnp.arange(n, dtype=jnp.int32) % num_classes if c.conditional else None
        samples = data.unit_to_uint8(generate(params, k_sample, y, n))
        images["samples"] = plots.samples_grid(samples[: c.eval.grid_images], num_classes or None)
        z = plots.interpolate(jnp.asarray(mu[starts]), jnp.asarray(mu[ends]), steps)
        y = jnp.repeat(jnp.asarray(test["label"][starts], jnp.int32), steps) if c.conditional else None
        images["interpolation"] = plots.interpolation_strip(
            data.unit_to_uint8(decode(params, z, y)), rows, test["image"][starts], test["image"][ends]
        )
        if quality.enabled:
            scalars.update(quality(samples[: c.eval.num_samples]))
        return scalars, images

    return {"evaluate": evaluate}


def interpolation_pairs(labels, rows: int, same_label: bool) -> tuple[np.ndarray, np.ndarray]:
    """Test-image index pairs (start i, end j): j the next image with another label (with the same for a CVAE)."""
    labels = np.asarray(labels)
    n = len(labels)
    starts, ends = np.arange(rows), []
    for i in starts:
        cand = [j for j in range(i + 1, n) if (labels[j] == labels[i]) == same_label] or [(i + 1) % n]
        ends.append(cand[0])
    return starts, np.asarray(ends)


ENTRY = image_runs.ImageModel("vae", SCHEMA, make_task, make_evaluation, make_generator).entry(__doc__, __file__)
run, load, sample_workdir = ENTRY.run, ENTRY.load, ENTRY.sample

if __name__ == "__main__":
    cli.main(ENTRY)
