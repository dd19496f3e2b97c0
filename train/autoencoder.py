"""Train an autoencoder: `python -m train.autoencoder [--workdir runs/autoencoder] [--config.key=value ...]`.

Default: an MLP autoencoder with an 8-d code and the Bernoulli loss on the embedded 8x8 digits, a few
minutes on 2 CPU cores. Generation decodes codes drawn from a density fitted to the training codes
(config.density.kind: 'gaussian' or 'gmm'). Writes checkpoints, metrics.jsonl (test reconstruction
error, sample quality), samples/reconstructions_*.png, samples/samples_*.png, samples/latent_*.png.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np

from train.core import cli, config as config_lib, loop
from train.core.config import Key
from train.data import image_runs, images as data
from train.evaluation import images as evaluation, plots
from zoo import autoencoder as ae

ARCHS = ("mlp", "conv")


SCHEMA = config_lib.Schema(
    *config_lib.IMAGE_MODEL,
    {
        "loss": Key(
            "bce", "'mse' (squared error) or 'bce' (Bernoulli likelihood); pixels in [0, 1]", choices=ae.LOSS_KINDS
        ),
        "model.linear": Key(False, "an MLP without hidden layers, h = Wx + b (spans PCA's subspace with 'mse')"),
        "density.kind": Key(
            "gmm", "density fitted to the training codes, sampled to generate", choices=ae.DENSITY_KINDS
        ),
        "density.num_components": Key(10, "components of the 'gmm' code density", range=">= 1"),
    },
    config_lib.latent_network_keys(ARCHS, "encoder and decoder", "the code", 8, (256, 128), "the decoder mirrors them"),
    evaluation.eval_keys(num_samples=500),
    {"eval.density_examples": Key(10000, "training codes the code density is fitted to", range=">= 1")},
    defaults={**config_lib.IMAGE_RECIPE, "num_steps": 4000, "checkpoint_every": 1000},
    variants={
        # 28x28 digits: conv encoder and decoder, a 16-d code.
        "mnist": config_lib.mnist_variant("conv", 16),
        "smoke": {
            **evaluation.SMOKE,
            **evaluation.SMOKE_LOOP,
            **config_lib.SMOKE_RECIPE,
            **config_lib.SMOKE_NETWORKS,
            "model.latent_dim": 3,
            "density.num_components": 2,
            "eval.density_examples": 64,
        },
    },
)


get_config = SCHEMA.config  # get_config() is the default config, get_config('smoke') a seconds-long run


def check_config(c) -> None:
    """ConfigError naming the first value SCHEMA does not accept, or keys that do not fit together."""
    SCHEMA.check(c)
    evaluation.check_eval_config(c)
    if c.density.kind == "gmm" and c.density.num_components > c.eval.density_examples:
        raise config_lib.ConfigError(
            f"config.density.num_components={c.density.num_components} must be at most "
            f"config.eval.density_examples={c.eval.density_examples}"
        )


def make_net(c, image_shape) -> ae.Autoencoder:
    m, dtype = c.model, config_lib.compute_dtype(c)
    if m.arch == "mlp":
        return ae.Autoencoder(
            ae.MLPEncoder(m.latent_dim, hidden=tuple(m.hidden), linear=m.linear, dtype=dtype),
            ae.MLPDecoder(tuple(image_shape), hidden=tuple(reversed(m.hidden)), linear=m.linear, dtype=dtype),
        )
    return ae.Autoencoder(
        ae.ConvEncoder(m.latent_dim, channels=tuple(m.channels), dtype=dtype),
        ae.ConvDecoder(tuple(image_shape), channels=tuple(m.channels), dtype=dtype),
    )


def make_task(c, ds: data.ImageData) -> loop.Task:
    evaluation.check_dataset_for_eval(c, ds)
    net = make_net(c, ds.image_shape)

    def init_params(key):
        return net.init(key, jnp.zeros((1, *ds.image_shape)))["params"]

    def loss_fn(params, batch, key):
        x = data.to_unit(batch["image"])
        _, out = net.apply({"params": params}, x)
        mse = jnp.mean(jnp.square(x - ae.reconstruction_mean(out, c.loss)))
        return jnp.mean(ae.reconstruction_loss(x, out, c.loss)), {"mse": mse}

    @jax.jit
    def reconstruct(params, images):
        x = data.to_unit(images)
        h, out = net.apply({"params": params}, x)
        r = ae.reconstruction_mean(out, c.loss)
        return h, r, ae.reconstruction_loss(x, out, c.loss), jnp.mean(jnp.square(x - r).reshape(len(x), -1), -1)

    encode = jax.jit(lambda params, images: net.apply({"params": params}, data.to_unit(images), method="encode"))
    decode = jax.jit(
        lambda params, h: ae.reconstruction_mean(net.apply({"params": params}, h, method="decode"), c.loss)
    )
    test = data.split_arrays(ds.test, c.eval.test_examples)
    train_images = data.split_arrays(ds.train, c.eval.density_examples)["image"]
    if c.density.kind == "gmm" and c.density.num_components > len(train_images):
        raise config_lib.ConfigError(
            f"config.density.num_components={c.density.num_components} exceeds the "
            f"{len(train_images)} training codes of dataset {ds.name!r}"
        )
    quality = evaluation.SampleQuality(c, ds)

    def evaluate(state, step):
        params = state.eval_params
        k_fit, k_sample = jax.random.split(evaluation.eval_key(c.seed, step))
        codes, recons, losses, mses = data.batched(lambda x: reconstruct(params, x), test["image"])
        scalars = {"test_loss": float(np.mean(losses)), "test_mse": float(np.mean(mses))}
        n_show = min(32, len(test["image"]))
        images = {
            "reconstructions": plots.reconstruction_grid(test["image"][:n_show], data.unit_to_uint8(recons[:n_show])),
            "latent": plots.latent_scatter(codes, test["label"], f"autoencoder codes of the test split, step {step}"),
        }
        train_codes = data.batched(lambda x: encode(params, x), train_images)
        density = ae.fit_code_density(
            jnp.asarray(train_codes), c.density.kind, key=k_fit, num_components=c.density.num_components
        )
        n = max(c.eval.num_samples, c.eval.grid_images)
        samples = data.unit_to_uint8(decode(params, ae.sample_codes(density, k_sample, n)))
        images["samples"] = plots.samples_grid(samples[: c.eval.grid_images])
        if quality.enabled:
            scalars.update(quality(samples[: c.eval.num_samples]))
        return scalars, images

    return loop.Task(
        "autoencoder", init_params, loss_fn=loss_fn, evaluate=evaluate, batches=data.training_batches(c, ds)
    )


def run(config, workdir: str) -> dict:
    """Train in workdir (resuming the run there) and return the last figures."""
    return image_runs.train(config, workdir, check_config, make_task)


if __name__ == "__main__":
    cli.main(sys.modules[__name__])
