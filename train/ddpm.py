"""Train a DDPM: `python -m train.ddpm [--workdir runs/ddpm] [--config.num_steps=...]`.

Default: a small U-Net on the embedded 8x8 digits, about 10 minutes on 2 CPU cores. Writes
checkpoints, metrics.jsonl, samples/ancestral_*.png and samples/ddim_*.png, and the test-split
bits/dim bound at the end.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from train.core import cli, config as config_lib, loop
from train.core.writers import image_grid
from train.data import images as data
from train.data.images import to_uint8
from train.evaluation import images as evaluation
from zoo import ddpm


def get_config() -> ml_collections.ConfigDict:
    c = config_lib.base_config()
    c.num_steps = 2000
    c.batch_size = 64
    c.learning_rate = 1e-3
    c.lr_schedule = "cosine"
    c.warmup_steps = 100
    c.min_lr_ratio = 0.05
    c.ema_decay = 0.995
    c.log_every = 50
    c.checkpoint_every = 500
    c.model = ml_collections.ConfigDict(dict(ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.0))
    c.diffusion = ml_collections.ConfigDict(dict(schedule="linear", num_timesteps=1000, variance="beta"))
    c.sample = ml_collections.ConfigDict(dict(num_images=64, ddim_steps=50, ddim_eta=0.0))
    # Sample quality (FD, precision/recall in the project classifier's features) of num_samples DDIM samples
    # and of the ancestral grid; the bits/dim bound on test_examples test images (each costs T network calls).
    c.eval = evaluation.eval_config(num_samples=256)
    c.eval.test_examples = 64
    return c


def check_config(c) -> None:
    config_lib.check(c, choices={"diffusion.schedule": ("linear", "cosine"), "diffusion.variance": ddpm.VARIANCES})
    for key in ("diffusion.num_timesteps", "sample.num_images", "sample.ddim_steps", "model.ch", "model.num_res_blocks"):
        v = c[key.split(".")[0]][key.split(".")[1]]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise config_lib.ConfigError(f"config.{key}={v!r} must be a positive integer")
    for key in ("ch_mult", "attn_resolutions"):
        v = c.model[key]
        if not isinstance(v, (tuple, list)) or not all(isinstance(m, int) and m > 0 for m in v) or \
                (key == "ch_mult" and not v):
            raise config_lib.ConfigError(f"config.model.{key}={v!r} must be a tuple of positive integers, "
                                         f"e.g. (1, 2)")
    if c.sample.ddim_steps > c.diffusion.num_timesteps:
        raise config_lib.ConfigError(f"config.sample.ddim_steps={c.sample.ddim_steps} must be at most "
                                     f"config.diffusion.num_timesteps={c.diffusion.num_timesteps}")
    evaluation.check_eval_config(c)


def make_task(c, ds: data.ImageData) -> loop.Task:
    sched = ddpm.schedule_from_name(c.diffusion.schedule, c.diffusion.num_timesteps)
    net = ddpm.UNet(ch=c.model.ch, ch_mult=tuple(c.model.ch_mult), num_res_blocks=c.model.num_res_blocks,
                    attn_resolutions=tuple(c.model.attn_resolutions), dropout=c.model.dropout,
                    dtype=config_lib.compute_dtype(c))
    size = ds.image_shape[0]
    if size % 2 ** (len(c.model.ch_mult) - 1):
        raise config_lib.ConfigError(f"config.model.ch_mult={tuple(c.model.ch_mult)} halves the {size}x{size} images "
                                     f"{len(c.model.ch_mult) - 1} times; accepted: at most log2 of a divisor of {size}")

    def init_params(key):
        return net.init(key, jnp.zeros((1, *ds.image_shape)), jnp.zeros((1,), jnp.int32))["params"]

    def loss_fn(params, batch, key):
        k_loss, k_drop = jax.random.split(key)
        eps_fn = lambda x, t: net.apply({"params": params}, x, t, train=True, rngs={"dropout": k_drop})
        loss = jnp.mean(ddpm.training_losses(sched, eps_fn, data.to_signed(batch["image"]), k_loss))
        return loss, {}

    eps_fn = lambda params: (lambda x, t: net.apply({"params": params}, x, t))
    shape = (c.sample.num_images, *ds.image_shape)
    ancestral = jax.jit(lambda p, k: ddpm.sample_ancestral(sched, eps_fn(p), shape, k, variance=c.diffusion.variance))
    ddim = jax.jit(lambda p, k: ddpm.sample_ddim(sched, eps_fn(p), shape, k, num_steps=c.sample.ddim_steps,
                                                 eta=c.sample.ddim_eta))
    quality_shape = (c.eval.num_samples, *ds.image_shape)
    ddim_many = jax.jit(lambda p, k: ddpm.sample_ddim(sched, eps_fn(p), quality_shape, k,
                                                      num_steps=c.sample.ddim_steps, eta=c.sample.ddim_eta))
    bound = jax.jit(lambda p, x, k: ddpm.nll_bound_bpd(sched, eps_fn(p), x, k, variance=c.diffusion.variance)[0])
    test = data.as_arrays(ds.test, c.eval.test_examples or None)
    quality = evaluation.SampleQuality(c, ds)

    def evaluate(state, step):
        key = jax.random.fold_in(jax.random.key(c.seed), 1_000_003 + step)  # independent of training keys
        k_anc, k_ddim, k_nll, k_many = jax.random.split(key, 4)
        anc = to_uint8(ancestral(state.eval_params, k_anc))
        images = {"ancestral": image_grid(anc), "ddim": image_grid(to_uint8(ddim(state.eval_params, k_ddim)))}
        scalars = {}
        bpd = [bound(state.eval_params, data.to_signed(jnp.asarray(x)), jax.random.fold_in(k_nll, i))
               for i, x in enumerate(np.array_split(test["image"], max(1, len(test["image"]) // 128)))]
        scalars["test_bpd_bound"] = float(jnp.mean(jnp.concatenate(bpd)))
        if quality.enabled:
            scalars.update({f"ddim_{k}": v for k, v in quality(to_uint8(ddim_many(state.eval_params, k_many))).items()})
            if len(anc) > c.eval.pr_k:
                scalars.update({f"ancestral_{k}": v for k, v in quality(anc).items()})
        return scalars, images

    return loop.Task("ddpm", init_params, loss_fn=loss_fn, evaluate=evaluate, train_source=ds.train)


def run(config, workdir: str) -> dict:
    check_config(config)
    ds = data.load_images(config.dataset, config.data_dir or None)
    return loop.train(config, workdir, make_task(config, ds))


if __name__ == "__main__":
    cli.main("ddpm", get_config, run)
