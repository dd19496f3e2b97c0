"""Train a DDPM: `python -m train.ddpm [--workdir runs/ddpm] [--config.num_steps=...]`.

Default: a small U-Net on the embedded 8x8 digits, about 10 minutes on 2 CPU cores. Writes
checkpoints, metrics.jsonl, samples/ancestral_*.png and samples/ddim_*.png, and the test-split
bits/dim bound at the end. `--config.model.num_classes=10` makes it class-conditional on the digits' labels,
sampled with classifier-free guidance `--config.sample.guidance=W`.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np

from train.core import cli, config as config_lib, loop
from train.core.config import Key
from train.core.writers import image_grid
from train.data import images as data
from train.data.images import to_uint8
from train.evaluation import images as evaluation
from zoo import ddpm

# What the DDPM paper's models share: 2 res blocks a level, attention at 16x16, dropout 0.1, Adam 2e-4 at batch
# 128 after a warmup, gradients clipped at norm 1, an EMA of 0.9999.
PAPER_RECIPE = {
    "model.num_res_blocks": 2,
    "model.attn_resolutions": (16,),
    "model.dropout": 0.1,
    "batch_size": 128,
    "learning_rate": 2e-4,
    "lr_schedule": "constant",
    "grad_clip": 1.0,
    "ema_decay": 0.9999,
    "eval.num_samples": 1000,
}

SCHEMA = config_lib.Schema(
    *config_lib.IMAGE_MODEL,
    {
        "model.ch": Key(32, "U-Net base channels", range=">= 1"),
        "model.ch_mult": Key((1, 2), "channel multiplier per resolution level", range=">= 1", nonempty=True),
        "model.num_res_blocks": Key(1, "residual blocks per level", range=">= 1"),
        "model.attn_resolutions": Key((4,), "resolutions with self-attention", range=">= 1", item=int),
        "model.dropout": Key(0.0, "dropout in the residual blocks", range="[0, 1)"),
        "model.num_classes": Key(
            0, "class-conditional U-Net on the dataset's labels: their number (0: unconditional)", range=">= 0"
        ),
        "model.class_dropout": Key(
            0.1,
            "share of training labels replaced by the null label, for classifier-free guidance (conditional models)",
            range="[0, 1)",
        ),
        "diffusion.schedule": Key("linear", "beta schedule", choices=("linear", "cosine")),
        "diffusion.num_timesteps": Key(1000, "T, the diffusion steps", range=">= 1"),
        "diffusion.prediction": Key(
            "eps", "what the U-Net predicts: eps (DDPM), x0, or v (Salimans & Ho 2022)", choices=ddpm.PREDICTIONS
        ),
        "diffusion.loss_weight": Key(
            "uniform",
            "loss weight over t: uniform (DDPM's simple loss) or min_snr (Hang et al. 2023)",
            choices=ddpm.LOSS_WEIGHTS,
        ),
        "diffusion.min_snr_gamma": Key(5.0, "gamma of the min_snr weight, min(SNR, gamma)", range="> 0"),
        "diffusion.variance": Key(
            "beta", "reverse-step variance: beta_t or the posterior's beta~_t", choices=ddpm.VARIANCES
        ),
        "sample.num_images": Key(64, "images of the ancestral and DDIM sample grids", range=">= 1"),
        "sample.ddim_steps": Key(50, "DDIM sampling steps (at most num_timesteps)", range=">= 1"),
        "sample.timestep_spacing": Key(
            "linspace",
            "DDIM's timesteps: linspace, leading or trailing, as diffusers spaces them",
            choices=ddpm.SPACINGS,
        ),
        "sample.ddim_eta": Key(0.0, "DDIM's eta: 0 deterministic, 1 DDPM-like", range="[0, 1]"),
        "sample.guidance": Key(
            0.0,
            "classifier-free guidance w: eps = (1 + w) eps(x, c) - w eps(x, null); 0 conditional, -1 unconditional",
            range=">= -1",
        ),
        "sample.labels": Key(
            (), "labels of the sample grids, one row per label (empty: every class in turn)", item=int, range=">= 0"
        ),
    },
    # Sample quality (FD, precision/recall in the project classifier's features) of num_samples DDIM samples
    # and of the ancestral grid; the bits/dim bound on test_examples test images (each costs T network calls).
    evaluation.eval_keys(num_samples=256, test_examples=64),
    defaults={
        **config_lib.IMAGE_RECIPE,
        "num_steps": 2000,
        "batch_size": 64,
        "ema_decay": 0.995,
        "log_every": 50,
        "checkpoint_every": 500,
    },
    variants={
        # The DDPM paper's CIFAR-10 model and recipe (Ho et al. 2020, appendix B): 35.7M parameters.
        "cifar10": {
            **PAPER_RECIPE,
            "dataset": "cifar10",
            "random_flip": True,
            "model.ch": 128,
            "model.ch_mult": (1, 2, 2, 2),
            "warmup_steps": 5000,
            "num_steps": 800_000,
            "log_every": 1000,
            "checkpoint_every": 10_000,
        },
        # The same recipe at MNIST's size: 28x28 digits resized to 32 so ch_mult (1, 2, 2) halves them twice.
        "mnist": {
            **PAPER_RECIPE,
            "dataset": "mnist",
            "image_size": 32,
            "model.ch": 64,
            "model.ch_mult": (1, 2, 2),
            "warmup_steps": 1000,
            "num_steps": 100_000,
            "log_every": 500,
            "checkpoint_every": 5000,
        },
        "smoke": {
            **evaluation.SMOKE_LOOP,
            **config_lib.SMOKE_RECIPE,
            "model.ch": 8,
            "model.num_res_blocks": 1,
            "diffusion.num_timesteps": 20,
            "sample.num_images": 4,
            "sample.ddim_steps": 5,
            "eval.test_examples": 4,
            "eval.num_samples": 0,
        },
    },
)


get_config = SCHEMA.config  # get_config() is the default config, get_config('smoke') a seconds-long run


def check_config(c) -> None:
    """ConfigError naming the first value SCHEMA does not accept, or keys that do not fit together."""
    SCHEMA.check(c)
    if c.sample.ddim_steps > c.diffusion.num_timesteps:
        raise config_lib.ConfigError(
            f"config.sample.ddim_steps={c.sample.ddim_steps} must be at most "
            f"config.diffusion.num_timesteps={c.diffusion.num_timesteps}"
        )
    check_conditioning(c)
    evaluation.check_eval_config(c)


def check_conditioning(c) -> None:
    """ConfigError where guidance or labels are asked of an unconditional model, or labels >= model.num_classes."""
    k, s = c.model.num_classes, c.sample
    if not k and (s.guidance or s.labels):
        key = "guidance" if s.guidance else "labels"
        raise config_lib.ConfigError(
            f"config.sample.{key}={s[key]!r} needs a class-conditional model; accepted: config.model.num_classes "
            f"> 0 (the dataset's number of labels)"
        )
    if any(y >= k for y in s.labels):
        raise config_lib.ConfigError(
            f"config.sample.labels={tuple(s.labels)} is not accepted; accepted: labels in [0, {k}) "
            f"(config.model.num_classes={k})"
        )


def check_classes(c, ds: data.ImageData) -> None:
    """DataError for a conditional model of unlabelled data, ConfigError unless model.num_classes fits the labels."""
    k = c.model.num_classes
    if k and ds.num_classes < 2:
        raise data.DataError(
            f"config.model.num_classes={k} needs labelled data; dataset {ds.name!r} has no labels "
            f"({ds.num_classes} class); accepted: config.model.num_classes=0"
        )
    if k and k != ds.num_classes:
        raise config_lib.ConfigError(
            f"config.model.num_classes={k} does not match dataset {ds.name!r}, which has {ds.num_classes} classes; "
            f"accepted: 0 (unconditional) or {ds.num_classes}"
        )


def grid_labels(c) -> tuple[np.ndarray | None, int | None]:
    """(labels, columns) of the sample grids: one row per label of sample.labels (every class in turn when empty),
    sample.num_images // rows images each (at least one); (None, None) for an unconditional model."""
    if not c.model.num_classes:
        return None, None
    rows = tuple(c.sample.labels) or tuple(range(c.model.num_classes))
    columns = max(1, c.sample.num_images // len(rows))
    return np.repeat(np.asarray(rows, np.int32), columns), columns


def make_unet(c) -> ddpm.UNet:
    """The eps-prediction U-Net of config.model, computing in config.dtype."""
    return ddpm.UNet(
        ch=c.model.ch,
        ch_mult=tuple(c.model.ch_mult),
        num_res_blocks=c.model.num_res_blocks,
        attn_resolutions=tuple(c.model.attn_resolutions),
        dropout=c.model.dropout,
        dtype=config_lib.compute_dtype(c),
        num_classes=c.model.num_classes,
    )


def make_task(c, ds: data.ImageData) -> loop.Task:
    check_classes(c, ds)
    sched = ddpm.schedule_from_name(c.diffusion.schedule, c.diffusion.num_timesteps)
    net = make_unet(c)
    height, width = ds.image_shape[:2]
    halvings = len(c.model.ch_mult) - 1
    if height % 2**halvings or width % 2**halvings:
        divisor = 1
        while height % (divisor * 2) == 0 and width % (divisor * 2) == 0:
            divisor *= 2
        raise config_lib.ConfigError(
            f"config.model.ch_mult={tuple(c.model.ch_mult)} halves the {height}x{width} images {halvings} times; "
            f"accepted: at most {divisor.bit_length() - 1} halvings (len(ch_mult) - 1), as 2^halvings must divide "
            f"both sides"
        )

    num_classes = c.model.num_classes
    init_labels = jnp.zeros((1,), jnp.int32) if num_classes else None  # None: an unconditional U-Net takes none

    def init_params(key):
        return net.init(key, jnp.zeros((1, *ds.image_shape)), jnp.zeros((1,), jnp.int32), init_labels)["params"]

    def loss_fn(params, batch, key):
        k_loss, k_drop = jax.random.split(key)
        labels = None
        if num_classes:  # classifier-free guidance: a share of the labels replaced by the null label
            k_labels = jax.random.fold_in(key, 2)
            labels = ddpm.drop_labels(k_labels, batch["label"], c.model.class_dropout, net.null_label)
        model_fn = lambda x, t: net.apply({"params": params}, x, t, labels, train=True, rngs={"dropout": k_drop})
        x0 = data.to_signed(batch["image"])
        d = c.diffusion
        loss = jnp.mean(
            ddpm.training_losses(
                sched,
                model_fn,
                x0,
                k_loss,
                prediction=d.prediction,
                loss_weight=d.loss_weight,
                min_snr_gamma=d.min_snr_gamma,
            )
        )
        return loss, {}

    # The samplers and the bound take eps: the U-Net's output converted from what it predicts; for labels y [B]
    # (a conditional model), guided by sample.guidance w (w = 0: the conditional eps).
    def eps_fn(params, y=None, w=c.sample.guidance):
        model_fn = lambda x, t, labels=None: net.apply({"params": params}, x, t, labels)
        if y is None:
            return ddpm.as_eps_fn(sched, c.diffusion.prediction, model_fn)
        return ddpm.guided_eps_fn(sched, c.diffusion.prediction, model_fn, y, net.null_label, w)

    grid_y, grid_columns = grid_labels(c)
    shape = (c.sample.num_images if grid_y is None else len(grid_y), *ds.image_shape)
    ancestral = jax.jit(
        lambda p, k, y: ddpm.sample_ancestral(sched, eps_fn(p, y), shape, k, variance=c.diffusion.variance)
    )
    s = c.sample
    ddim_of = lambda n: jax.jit(
        lambda p, k, y: ddpm.sample_ddim(
            sched,
            eps_fn(p, y),
            (n, *ds.image_shape),
            k,
            num_steps=s.ddim_steps,
            eta=s.ddim_eta,
            spacing=s.timestep_spacing,
        )
    )
    ddim, ddim_many = ddim_of(shape[0]), ddim_of(c.eval.num_samples)
    # The bound of a conditional model is on -log p(x | y), the test images' labels y, unguided.
    bound = jax.jit(
        lambda p, x, y, k: ddpm.nll_bound_bpd(sched, eps_fn(p, y, 0.0), x, k, variance=c.diffusion.variance)[0]
    )
    test = data.as_arrays(ds.test, c.eval.test_examples or None)
    quality = evaluation.SampleQuality(c, ds)
    # A conditional model's scored samples have the test split's (FD's reference) label proportions.
    many_y = None
    if num_classes and quality.enabled:
        many_y = evaluation.labels_in_proportion(data.as_arrays(ds.test)["label"], c.eval.num_samples).astype(np.int32)

    def evaluate(state, step):
        key = jax.random.fold_in(jax.random.key(c.seed), 1_000_003 + step)  # independent of training keys
        k_anc, k_ddim, k_nll, k_many = jax.random.split(key, 4)
        p = state.eval_params
        anc = to_uint8(ancestral(p, k_anc, grid_y))
        images = {
            "ancestral": image_grid(anc, grid_columns),
            "ddim": image_grid(to_uint8(ddim(p, k_ddim, grid_y)), grid_columns),
        }
        scalars = {}
        parts = max(1, len(test["image"]) // 128)
        bpd = [
            bound(p, data.to_signed(jnp.asarray(x)), y if num_classes else None, jax.random.fold_in(k_nll, i))
            for i, (x, y) in enumerate(zip(np.array_split(test["image"], parts), np.array_split(test["label"], parts)))
        ]
        scalars["test_bpd_bound"] = float(jnp.mean(jnp.concatenate(bpd)))
        if quality.enabled:
            many = to_uint8(ddim_many(p, k_many, many_y))
            scalars.update({f"ddim_{k}": v for k, v in quality(many, many_y).items()})
            if len(anc) > c.eval.pr_k:
                scalars.update({f"ancestral_{k}": v for k, v in quality(anc, grid_y).items()})
        return scalars, images

    return loop.Task("ddpm", init_params, loss_fn=loss_fn, evaluate=evaluate, train_source=ds.train)


def run(config, workdir: str) -> dict:
    """Train in workdir (resuming the run there) and return the last figures."""
    return loop.train_images(config, workdir, check_config, make_task)


if __name__ == "__main__":
    cli.main(sys.modules[__name__])
