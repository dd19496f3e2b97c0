"""Train an autoencoder: `python -m train.autoencoder [--workdir runs/autoencoder] [--config.key=value ...]`.

Default: an MLP autoencoder with an 8-d code and the Bernoulli loss on the embedded 8x8 digits, a few
minutes on 2 CPU cores. Generation decodes codes drawn from a density fitted to the training codes
(config.density.kind: 'gaussian' or 'gmm'). Writes checkpoints, metrics.jsonl (test reconstruction
error, sample quality), samples/reconstructions_*.png, samples/samples_*.png, samples/latent_*.png.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from train.core import cli, config as config_lib, files, loop
from train.core.config import Key
from train.data import image_runs, images as data
from train.evaluation import images as evaluation, plots
from zoo import autoencoder as ae, gmm

ARCHS = ("mlp", "conv")
DENSITY_FILE = "code_density.npz"  # the code density of the last step, written at the end of a run


def check_density(c) -> None:
    """A GMM of at most eval.density_examples components."""
    if c.density.kind == "gmm" and c.density.num_components > c.eval.density_examples:
        raise config_lib.ConfigError(
            f"config.density.num_components={c.density.num_components} must be at most "
            f"config.eval.density_examples={c.eval.density_examples}"
        )


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
    image_runs.SAMPLE_KEYS,
    checks=(evaluation.check_eval_config, check_density),
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


def make_task(c, spec: data.ImageSpec) -> loop.Task:
    """The training part: encoder and decoder of config.model, the reconstruction loss of config.loss."""
    net = make_net(c, spec.image_shape)

    def init_params(key):
        return net.init(key, jnp.zeros((1, *spec.image_shape)))["params"]

    def loss_fn(params, batch, key):
        x = data.to_unit(batch["image"])
        _, out = net.apply({"params": params}, x)
        mse = jnp.mean(jnp.square(x - ae.reconstruction_mean(out, c.loss)))
        return jnp.mean(ae.reconstruction_loss(x, out, c.loss)), {"mse": mse}

    return loop.Task("autoencoder", init_params, loss_fn=loss_fn)


def decoder_of(c, spec):
    """jit (params, codes) -> the decoded images' means in [0, 1]."""
    net = make_net(c, spec.image_shape)
    return jax.jit(lambda params, h: ae.reconstruction_mean(net.apply({"params": params}, h, method="decode"), c.loss))


def density_fitter(c, ds: data.ImageData):
    """(params, step) -> the code density of config.density fitted to the codes of eval.density_examples training
    images, with the evaluation's key of that step (the same density in the evaluation and in DENSITY_FILE)."""
    net = make_net(c, ds.image_shape)
    encode = jax.jit(lambda params, images: net.apply({"params": params}, data.to_unit(images), method="encode"))
    train_images = data.split_arrays(ds.train, c.eval.density_examples)["image"]
    if c.density.kind == "gmm" and c.density.num_components > len(train_images):
        raise config_lib.ConfigError(
            f"config.density.num_components={c.density.num_components} exceeds the "
            f"{len(train_images)} training codes of dataset {ds.name!r}"
        )

    def fit(params, step):
        k_fit = jax.random.split(evaluation.eval_key(c.seed, step))[0]
        codes = jnp.asarray(data.batched(lambda x: encode(params, x), train_images))
        return ae.fit_code_density(codes, c.density.kind, key=k_fit, num_components=c.density.num_components)

    return fit


def make_evaluation(c, ds: data.ImageData) -> dict:
    """{'evaluate', 'export'}: test reconstruction error, reconstructions, codes, samples decoded from the code
    density and their quality; at the end, the density of the last step in workdir/DENSITY_FILE."""
    evaluation.check_dataset_for_eval(c, ds)
    net, decode, fit = make_net(c, ds.image_shape), decoder_of(c, ds), density_fitter(c, ds)

    @jax.jit
    def reconstruct(params, images):
        x = data.to_unit(images)
        h, out = net.apply({"params": params}, x)
        r = ae.reconstruction_mean(out, c.loss)
        return h, r, ae.reconstruction_loss(x, out, c.loss), jnp.mean(jnp.square(x - r).reshape(len(x), -1), -1)

    test = data.split_arrays(ds.test, c.eval.test_examples)
    quality = evaluation.SampleQuality(c, ds)

    def evaluate(state, step):
        params = state.eval_params
        k_sample = jax.random.split(evaluation.eval_key(c.seed, step))[1]
        codes, recons, losses, mses = data.batched(lambda x: reconstruct(params, x), test["image"])
        scalars = {"test_loss": float(np.mean(losses)), "test_mse": float(np.mean(mses))}
        n_show = min(32, len(test["image"]))
        images = {
            "reconstructions": plots.reconstruction_grid(test["image"][:n_show], data.unit_to_uint8(recons[:n_show])),
            "latent": plots.latent_scatter(codes, test["label"], f"autoencoder codes of the test split, step {step}"),
        }
        n = max(c.eval.num_samples, c.eval.grid_images)
        samples = data.unit_to_uint8(decode(params, ae.sample_codes(fit(params, step), k_sample, n)))
        images["samples"] = plots.samples_grid(samples[: c.eval.grid_images])
        if quality.enabled:
            scalars.update(quality(samples[: c.eval.num_samples]))
        return scalars, images

    def export(state, workdir):
        step = int(state.step)
        save_density(os.path.join(workdir, DENSITY_FILE), fit(state.eval_params, step), step)

    return {"evaluate": evaluate, "export": export}


def save_density(path: str, density: ae.CodeDensity, step: int) -> None:
    params = serialization.to_state_dict(jax.device_get(density.params))  # a GMM's arrays by field name
    files.save_npz(
        path, kind=np.array(density.kind), step=np.array(step), **{f"params.{k}": v for k, v in params.items()}
    )


def read_density(path: str, step: int) -> ae.CodeDensity | None:
    """The code density in path (save_density) when it is of training step `step`, else None."""

    def read(f):
        params = {k.removeprefix("params."): jnp.asarray(f[k]) for k in f.files if k.startswith("params.")}
        kind = str(f["kind"])
        return int(f["step"]), ae.CodeDensity(gmm.GMM(**params) if kind == "gmm" else params, kind)

    found = files.load_npz(path, read)
    return found[1] if found and found[0] == step else None


def sampling_params(trained) -> dict:
    """{'params', 'density'}: the density of the run's last step (DENSITY_FILE); for a checkpoint without one (a
    run stopped before its end), fitted again to the dataset's training codes, as the evaluation fits it."""
    density = read_density(os.path.join(trained.workdir, DENSITY_FILE), trained.step)
    if density is None:
        try:
            ds = data.images_of(trained.config)
        except data.DataError as e:
            raise data.DataError(
                f"{trained.workdir} holds no {DENSITY_FILE} of step {trained.step} (a run writes it at its end), "
                f"and fitting the code density again needs the training images: {e}"
            ) from None
        density = density_fitter(trained.config, ds)(trained.params, trained.step)
    return {"params": trained.params, "density": density}


def make_generator(c, spec: data.ImageSpec, num_images: int) -> image_runs.Generator:
    """num_images decoded codes a call, drawn from the code density."""
    decode = decoder_of(c, spec)
    draw = lambda p, k, y: data.unit_to_uint8(decode(p["params"], ae.sample_codes(p["density"], k, num_images)))
    return image_runs.Generator(draw)


MODEL = image_runs.ImageModel(
    "autoencoder", SCHEMA, make_task, make_evaluation, make_generator, sampling_params=sampling_params
)
ENTRY = MODEL.entry(__doc__, __file__)
run, load, sample_workdir = ENTRY.run, ENTRY.load, ENTRY.sample

if __name__ == "__main__":
    cli.main(ENTRY)
