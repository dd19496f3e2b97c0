"""Train a DDPM: `python -m train.ddpm [--workdir runs/ddpm] [--config.num_steps=...]`.

Default: a small U-Net on the embedded 8x8 digits, about 10 minutes on 2 CPU cores. Writes
checkpoints, metrics.jsonl, samples/ancestral_*.png and samples/<sample.sampler>_*.png (ddim by
default), and the test-split bits/dim bound at the end. `--config.model.num_classes=10` makes it
class-conditional on the digits' labels, sampled with classifier-free guidance `--config.sample.guidance=W`.
`--mode=sample` draws samples of the run in --workdir into samples/samples_<step>.npz; `load(workdir)`
gives them in Python.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from train.core import cli, config as config_lib, files, loop, parallel, saved
from train.core.config import Key
from train.core.writers import image_grid, save_png
from train.data import image_runs, images as data
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
            "beta",
            "reverse-step variance: beta_t, the posterior's beta~_t, or learned between them (Nichol & Dhariwal "
            "2021; trained by the hybrid loss)",
            choices=ddpm.VARIANCES,
        ),
        "diffusion.vlb_weight": Key(
            0.001, "lambda of the hybrid loss L_simple + lambda L_vlb (variance=learned)", range=">= 0"
        ),
        "diffusion.vlb_sampling": Key(
            "uniform",
            "training timesteps: uniform, or importance (p_t from the running second moments of L_vlb, the loss "
            "weighted by 1 / (T p_t); variance=learned)",
            choices=ddpm.VLB_SAMPLINGS,
        ),
        "sample.sampler": Key(
            "ddim",
            "sampler of the evaluation's samples, its second grid and mode=sample: ancestral (all T steps), ddim "
            "(sample.ddim_eta) or dpmpp_2m (DPM-Solver++(2M), Lu et al. 2022)",
            choices=ddpm.SAMPLERS,
        ),
        "sample.steps": Key(50, "network calls of ddim and dpmpp_2m (at most num_timesteps)", range=">= 1"),
        "sample.timestep_spacing": Key(
            "linspace",
            "the timesteps of ddim and dpmpp_2m: linspace, leading or trailing, as diffusers spaces them",
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
        "sample.num_images": Key(
            64, "images of each sample grid, and of mode=sample's samples_<step>.npz", range=">= 1"
        ),
        "sample.batch_size": Key(256, "images per sampler call of mode=sample and load().sample", range=">= 1"),
        "sample.seed": Key(
            0, "seed of mode=sample's draws: load(workdir).sample(jax.random.key(seed), n)", range=config_lib.SEED_RANGE
        ),
    },
    # Sample quality (FD, precision/recall in the project classifier's features) of num_samples samples of
    # sample.sampler (DDIM by default) and of the ancestral grid; the bits/dim bound on test_examples test images
    # (each costs T network calls).
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
        # Improved DDPM's unconditional ImageNet 64x64 model with the hybrid loss (Nichol & Dhariwal 2021; the
        # improved-diffusion README's flags: ch 128, 3 res blocks, learned sigma, cosine schedule, T = 4000, Adam
        # 1e-4, batch 128, 1.5M steps; batch 2048 is its class-conditional 270M model's). Its create_model sets
        # ch_mult (1, 2, 3, 4) at 64x64 and reads attention_resolutions '16,8' as downsampling rates 64 // 16 = 4
        # and 64 // 8 = 8, i.e. the 16x16 and 8x8 maps: the widths model.attn_resolutions lists. Its defaults:
        # dropout 0 (0.3 is its CIFAR-10 model's), a constant rate without warmup or clipping, EMA 0.9999, no flips.
        # Not in this U-Net: 4 attention heads (one here, the same parameters), the scale-shift time conditioning
        # (use_scale_shift_norm; added here: 5.1M parameters fewer) and timesteps rescaled to [0, 1000).
        # 115.9M parameters here, 121.1M in improved-diffusion's (tests/test_model_sizes.py counts both).
        "imagenet64": {
            "dataset": "imagenet_resized/64x64",
            "model.ch": 128,
            "model.ch_mult": (1, 2, 3, 4),
            "model.num_res_blocks": 3,
            "model.attn_resolutions": (16, 8),
            "model.dropout": 0.0,
            "diffusion.schedule": "cosine",
            "diffusion.num_timesteps": 4000,
            "diffusion.variance": "learned",
            "batch_size": 128,
            "learning_rate": 1e-4,
            "lr_schedule": "constant",
            "warmup_steps": 0,
            "grad_clip": 0.0,
            "ema_decay": 0.9999,
            "eval.num_samples": 1000,
            "num_steps": 1_500_000,
            "log_every": 1000,
            "checkpoint_every": 10_000,
        },
        "smoke": {
            **evaluation.SMOKE_LOOP,
            **config_lib.SMOKE_RECIPE,
            "model.ch": 8,
            "model.num_res_blocks": 1,
            "diffusion.num_timesteps": 20,
            "sample.num_images": 4,
            "sample.steps": 5,
            "eval.test_examples": 4,
            "eval.num_samples": 0,
        },
    },
)


get_config = SCHEMA.config  # get_config() is the default config, get_config('smoke') a seconds-long run


def check_config(c) -> None:
    """ConfigError naming the first value SCHEMA does not accept, or keys that do not fit together."""
    SCHEMA.check(c)
    if c.sample.sampler != "ancestral" and c.sample.steps > c.diffusion.num_timesteps:
        raise config_lib.ConfigError(
            f"config.sample.steps={c.sample.steps} ({c.sample.sampler}) must be at most "
            f"config.diffusion.num_timesteps={c.diffusion.num_timesteps}"
        )
    if c.diffusion.vlb_sampling == "importance" and c.diffusion.variance != "learned":
        raise config_lib.ConfigError(
            "config.diffusion.vlb_sampling='importance' samples t by L_vlb, which only a learned variance trains; "
            f"accepted with config.diffusion.variance='learned' (got {c.diffusion.variance!r}), or "
            "config.diffusion.vlb_sampling='uniform'"
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
    """The U-Net of config.model (outputs doubled for a learned variance), computing in config.dtype."""
    return ddpm.UNet(
        ch=c.model.ch,
        ch_mult=tuple(c.model.ch_mult),
        num_res_blocks=c.model.num_res_blocks,
        attn_resolutions=tuple(c.model.attn_resolutions),
        dropout=c.model.dropout,
        dtype=config_lib.compute_dtype(c),
        num_classes=c.model.num_classes,
        learned_variance=c.diffusion.variance == "learned",
    )


def schedule_of(c) -> ddpm.Schedule:
    """The noise schedule of config.diffusion."""
    return ddpm.schedule_from_name(c.diffusion.schedule, c.diffusion.num_timesteps)


def eps_fn_of(c, sched: ddpm.Schedule, net: ddpm.UNet):
    """(params, labels=None, w=sample.guidance) -> the eps_fn(x_t, t) every sampler and the bound take: the U-Net's
    output converted from what it predicts (config.diffusion.prediction); for labels y [B] (a conditional model)
    guided by w (w = 0: the conditional eps); returning (eps, v) for a learned variance."""
    learned = net.learned_variance

    def eps_fn(params, y=None, w=c.sample.guidance):
        model_fn = lambda x, t, labels=None: net.apply({"params": params}, x, t, labels)
        if y is None:
            return ddpm.as_eps_fn(sched, c.diffusion.prediction, model_fn, learned)
        return ddpm.guided_eps_fn(sched, c.diffusion.prediction, model_fn, y, net.null_label, w, learned)

    return eps_fn


# sample.sampler -> (sched, eps_fn, shape, key, config) -> images: the one place a sampler is added; make_sampler
# and TrainedDDPM's compiled-sampler cache (keyed by the whole of config.sample) both read it.
SAMPLER_BUILDERS = {
    "ancestral": lambda sched, eps_fn, shape, k, c: ddpm.sample_ancestral(
        sched, eps_fn, shape, k, variance=c.diffusion.variance
    ),
    "ddim": lambda sched, eps_fn, shape, k, c: ddpm.sample_ddim(
        sched, eps_fn, shape, k, num_steps=c.sample.steps, eta=c.sample.ddim_eta, spacing=c.sample.timestep_spacing
    ),
    "dpmpp_2m": lambda sched, eps_fn, shape, k, c: ddpm.sample_dpmpp_2m(
        sched, eps_fn, shape, k, num_steps=c.sample.steps, spacing=c.sample.timestep_spacing
    ),
}
assert set(SAMPLER_BUILDERS) == set(ddpm.SAMPLERS)


def make_sampler(c, image_shape, num_images: int, sampler: str | None = None):
    """jit (params, key, labels=None) -> num_images images in [-1, 1], float32 [N, H, W, C], by `sampler` (None:
    config.sample.sampler; SAMPLER_BUILDERS): ancestral over all T steps (diffusion.variance), ddim (ddim_eta) or
    dpmpp_2m over sample.steps timesteps of sample.timestep_spacing; labels [N] (a conditional model) guided by
    sample.guidance."""
    c = c.copy_and_resolve_references()  # the builder reads it when the sampler is traced: later changes must not
    sched, shape = schedule_of(c), (num_images, *image_shape)
    eps_fn = eps_fn_of(c, sched, make_unet(c))
    sampler = sampler or c.sample.sampler
    if sampler not in SAMPLER_BUILDERS:
        raise config_lib.ConfigError(
            f"config.sample.sampler={sampler!r} is not accepted; accepted: {', '.join(SAMPLER_BUILDERS)}"
        )
    build = SAMPLER_BUILDERS[sampler]
    return jax.jit(lambda p, k, y=None: build(sched, eps_fn(p, y), shape, k, c))


def make_task(c, ds: data.ImageData) -> loop.Task:
    check_classes(c, ds)
    sched = schedule_of(c)
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

    d = c.diffusion
    learned = d.variance == "learned"

    def loss_terms(params, batch, key, t=None, weights=None):
        """(mean loss, (metrics, per-example terms)) at timesteps t (None: uniform), the loss weighted by weights."""
        k_loss, k_drop = jax.random.split(key)
        labels = None
        if num_classes:  # classifier-free guidance: a share of the labels replaced by the null label
            k_labels = jax.random.fold_in(key, 2)
            labels = ddpm.drop_labels(k_labels, batch["label"], c.model.class_dropout, net.null_label)
        model_fn = lambda x, t: net.apply({"params": params}, x, t, labels, train=True, rngs={"dropout": k_drop})
        terms = ddpm.training_loss_terms(
            sched,
            model_fn,
            data.to_signed(batch["image"]),
            k_loss,
            prediction=d.prediction,
            loss_weight=d.loss_weight,
            min_snr_gamma=d.min_snr_gamma,
            variance=d.variance,
            vlb_weight=d.vlb_weight,
            t=t,
        )
        loss = terms["loss"] if weights is None else weights * terms["loss"]
        metrics = {"mse": jnp.mean(terms["mse"]), "vb_bpd": jnp.mean(terms["vb"])} if learned else {}
        return jnp.mean(loss), (metrics, terms)

    def loss_fn(params, batch, key):
        loss, (metrics, _) = loss_terms(params, batch, key)
        return loss, metrics

    train_step, init_aux = None, None
    if d.vlb_sampling == "importance":
        # t drawn by the running second moments of L_vlb per timestep, kept in the train state's aux.
        init_aux = lambda: ddpm.loss_history(d.num_timesteps)

        def train_step(state, batch, key):
            k_t, k_loss = jax.random.split(key)
            t, weights = ddpm.importance_timesteps(k_t, state.aux, batch["image"].shape[0])
            grad_fn = jax.value_and_grad(loss_terms, has_aux=True)
            (loss, (metrics, terms)), grads = grad_fn(state.params, batch, k_loss, t, weights)
            aux = ddpm.update_loss_history(state.aux, terms["t"], terms["vb"])
            metrics = {"loss": loss, "grad_norm": optax.global_norm(grads), **metrics}
            return state.apply_gradients(grads=grads, aux=aux), metrics

    eps_fn = eps_fn_of(c, sched, net)
    s = c.sample
    grid_y, grid_columns = grid_labels(c)
    grid_n = s.num_images if grid_y is None else len(grid_y)
    # The evaluation's figures: the ancestral grid, a grid of sample.sampler's (none when that is ancestral) and
    # eval.num_samples of its samples scored by FD / precision / recall, the ancestral grid too when it is another.
    ancestral = make_sampler(c, ds.image_shape, grid_n, "ancestral")
    grid = make_sampler(c, ds.image_shape, grid_n) if s.sampler != "ancestral" else None
    many = make_sampler(c, ds.image_shape, c.eval.num_samples)
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
        k_anc, k_grid, k_nll, k_many = jax.random.split(key, 4)
        p = state.eval_params
        anc = to_uint8(ancestral(p, k_anc, grid_y))
        images = {"ancestral": image_grid(anc, grid_columns)}
        if grid is not None:
            images[s.sampler] = image_grid(to_uint8(grid(p, k_grid, grid_y)), grid_columns)
        scalars = {}
        parts = max(1, len(test["image"]) // 128)
        bpd = [
            bound(p, data.to_signed(jnp.asarray(x)), y if num_classes else None, jax.random.fold_in(k_nll, i))
            for i, (x, y) in enumerate(zip(np.array_split(test["image"], parts), np.array_split(test["label"], parts)))
        ]
        scalars["test_bpd_bound"] = float(jnp.mean(jnp.concatenate(bpd)))
        if quality.enabled:
            scalars.update(
                {f"{s.sampler}_{k}": v for k, v in quality(to_uint8(many(p, k_many, many_y)), many_y).items()}
            )
            if grid is not None and len(anc) > c.eval.pr_k:
                scalars.update({f"ancestral_{k}": v for k, v in quality(anc, grid_y).items()})
        return scalars, images

    return loop.Task(
        "ddpm",
        init_params,
        loss_fn=loss_fn,
        train_step=train_step,
        init_aux=init_aux,
        evaluate=evaluate,
        batches=data.training_batches(c, ds),
    )


def run(config, workdir: str) -> dict:
    """Train in workdir (resuming the run there) and return the last figures."""
    parallel.xla_cpu_convolutions()  # before anything starts JAX's backends: the U-Net's convolutions on XLA:CPU
    return image_runs.train(config, workdir, check_config, make_task)


# ----------------------------------------------------------------------------- a trained run: load, mode=sample

RENAMED_KEYS = {"sample.ddim_steps": "sample.steps"}  # in the config.json of runs written before the rename
GRID_IMAGES = 256  # mode=sample's PNG shows the first 256 images of its .npz


@dataclasses.dataclass
class TrainedDDPM:
    """A DDPM read back from its workdir by load(): the run's config, the EMA parameters of its newest checkpoint
    (of training step `step`) and sample()."""

    config: ml_collections.ConfigDict
    params: Any
    step: int
    image_shape: tuple[int, ...]
    workdir: str
    _samplers: dict = dataclasses.field(default_factory=dict, repr=False)  # compiled, by sample settings and batch

    def configured(self, **overrides) -> ml_collections.ConfigDict:
        """The run's config with config.sample's keys overridden ({'sampler': 'dpmpp_2m', 'steps': 20}), checked;
        ConfigError naming an override that is not a key of config.sample or a value it does not accept."""
        return saved.with_overrides(self.config, overrides, "sample", check_config)

    def draw(self, c, key, num_images: int) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 images [N, H, W, C], int32 labels [N]) by config c (configured()'s): batches of
        c.sample.batch_size, batch i drawn from jax.random.fold_in(key, i), the last one cut to num_images; the
        labels of a conditional model are sample.labels (every class when empty) in turn, guided by sample.guidance;
        every label is -1 for an unconditional model."""
        if isinstance(num_images, bool) or not isinstance(num_images, (int, np.integer)) or num_images < 1:
            raise ValueError(f"num_images must be a positive integer, got {num_images!r}")
        s, batch = c.sample, min(c.sample.batch_size, int(num_images))
        # The whole of config.sample (and the batch), so no setting a sampler reads can be left out of the key.
        settings = (json.dumps(s.to_dict(), sort_keys=True, default=str), batch)
        if settings not in self._samplers:
            self._samplers[settings] = make_sampler(c, self.image_shape, batch)
        sampler = self._samplers[settings]
        num_batches = -(-num_images // batch)
        if not c.model.num_classes:
            batches = [to_uint8(sampler(self.params, jax.random.fold_in(key, i))) for i in range(num_batches)]
            return np.concatenate(batches)[:num_images], np.full((num_images,), -1, np.int32)
        rows = np.asarray(tuple(s.labels) or range(c.model.num_classes), np.int32)
        labels = np.resize(rows, num_batches * batch)
        batches = [
            to_uint8(sampler(self.params, jax.random.fold_in(key, i), jnp.asarray(labels[i * batch : (i + 1) * batch])))
            for i in range(num_batches)
        ]
        return np.concatenate(batches)[:num_images], labels[:num_images]

    def sample(self, key, num_images: int, **overrides) -> np.ndarray:
        """num_images uint8 images [N, H, W, C] drawn from key by config.sample's sampler (overrides: any key of
        config.sample, e.g. sampler='dpmpp_2m', steps=20), in batches of sample.batch_size images, batch i drawn
        from jax.random.fold_in(key, i) (the last one cut to num_images): the same key, number and settings give
        the same images."""
        return self.draw(self.configured(**overrides), key, num_images)[0]


def load(workdir: str) -> TrainedDDPM:
    """The DDPM trained in workdir: its config (workdir/config.json), the EMA parameters of its newest checkpoint
    that restores, and sample(key, num_images, **sample_overrides); ConfigError when workdir holds none."""
    run, ds = image_runs.load(workdir, sys.modules[__name__], RENAMED_KEYS)
    return TrainedDDPM(run.config, run.params, run.step, tuple(ds.image_shape), run.workdir)


def sample_workdir(workdir: str, overrides: dict) -> str:
    """`--mode=sample`: sample.num_images samples of the run in workdir (config.sample's keys overridden), drawn
    by load(workdir).sample(jax.random.key(sample.seed), ...), into workdir/samples/samples_<step>.npz (images
    uint8 [N, H, W, C], labels int32 [N], -1 for an unconditional model) with a PNG grid of the first
    GRID_IMAGES beside it, each written whole or not at all; returns the .npz path."""
    parallel.xla_cpu_convolutions()
    saved.with_overrides(saved.read_config(workdir, SCHEMA, RENAMED_KEYS), overrides, "sample", check_config)
    model = load(workdir)  # the overrides are refused above, before the checkpoint is read
    c = model.configured(**overrides)
    images, labels = model.draw(c, jax.random.key(c.sample.seed), c.sample.num_images)
    samples = os.path.join(model.workdir, "samples")
    os.makedirs(samples, exist_ok=True)
    path = os.path.join(samples, f"samples_{model.step:06d}")
    files.save_npz(f"{path}.npz", images=images, labels=labels)
    save_png(f"{path}.png", image_grid(images[:GRID_IMAGES]))
    how = "ancestral, all T steps" if c.sample.sampler == "ancestral" else f"{c.sample.sampler}, {c.sample.steps} steps"
    print(f"ddpm: {len(images)} samples ({how}) of step {model.step} in {path}.npz, grid {path}.png", flush=True)
    return f"{path}.npz"


if __name__ == "__main__":
    cli.main(sys.modules[__name__])
