"""What the diffusion modules share (train.ddpm, train.edm, train.flow): the denoiser's config keys and its
construction (the U-Net, or a DiT by model.backbone='dit'), and, for an objective declared as an `Objective`, the
training part, the evaluation part and the generator of an `ImageModel` (train.data.image_runs).

An Objective says how the denoiser is read and trained and how it is sampled: field(config, apply) turns the
network applied, apply(x, t, labels), into the function its samplers integrate, fn(x, s, labels), s the
objective's noise level (EDM's sigma, the flow's time); losses(config, fn, x0, key) gives per-example losses of a
batch of images in [-1, 1]; samplers maps each value of config.sample.sampler to a function (config, fn(x, s),
shape, key) -> images. Classifier-free guidance is the objective's own: fn~ = (1 + w) fn(x, s, c) - w fn(x, s,
null), one call on the batch doubled (zoo.flow.guided_velocity_fn).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from train.core import config as config_lib, loop, parallel
from train.core.config import Key
from train.core.entry import Entry
from train.core.errors import ConfigError
from train.core.writers import image_grid
from train.data import image_runs, images as data, latents
from train.evaluation import diffusion, images as evaluation
from zoo import ddpm, dit, flow

__all__ = [
    "BACKBONES",
    "DENOISER_KEYS",
    "make_task",
    "make_evaluation",
    "PAPER_RECIPE",
    "VARIANTS",
    "DEFAULTS",
    "check_halvings",
    "check_shape",
    "check_dit",
    "make_network",
    "Objective",
    "make_sampler",
    "image_model",
    "entry",
]

BACKBONES = ("unet", "dit")
DENOISER_KEYS = {
    "model.backbone": Key(
        "unet", "the denoiser: the DDPM's convolutional U-Net, or a diffusion transformer (DiT)", choices=BACKBONES
    ),
    "model.ch": Key(32, "U-Net base channels", range=">= 1"),
    "model.ch_mult": Key((1, 2), "channel multiplier per resolution level", range=">= 1", nonempty=True),
    "model.num_res_blocks": Key(1, "residual blocks per level", range=">= 1"),
    "model.attn_resolutions": Key((4,), "resolutions with self-attention", range=">= 1", item=int),
    "model.dropout": Key(0.0, "dropout in the residual blocks", range="[0, 1)"),
    "model.patch_size": Key(
        2, "DiT: the patches' side p, each a token (p must divide the images' sides)", range=">= 1"
    ),
    "model.hidden": Key(64, "DiT: the tokens' width (a multiple of 4 and of model.num_heads)", range=">= 4"),
    "model.depth": Key(4, "DiT: the transformer blocks", range=">= 1"),
    "model.num_heads": Key(4, "DiT: attention heads", range=">= 1"),
    "model.mlp_ratio": Key(4.0, "DiT: the MLP's width over model.hidden", range="> 0"),
    "model.num_classes": Key(
        0, "class-conditional denoiser on the dataset's labels: their number (0: unconditional)", range=">= 0"
    ),
    "model.class_dropout": Key(
        0.1,
        "share of training labels replaced by the null label, for classifier-free guidance (conditional models)",
        range="[0, 1)",
    ),
}


# The real-dataset variants every U-Net module starts from, at the DDPM paper's sizes and recipe (Ho et al. 2020,
# appendix B: 2 res blocks a level, attention at 16x16, dropout 0.1, Adam 2e-4 at batch 128 after a warmup,
# gradients clipped at norm 1, an EMA of 0.9999), so the objectives compare on one network and budget; and the
# seconds-long 'smoke' run.
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
VARIANTS = {
    # The DDPM paper's CIFAR-10 model: 35.7M parameters.
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
        "sample.num_images": 4,
        "eval.test_examples": 4,
        "eval.num_samples": 0,
    },
}
# The default's recipe: the embedded 8x8 digits in minutes on 2 CPU cores.
DEFAULTS = {
    **config_lib.IMAGE_RECIPE,
    "num_steps": 2000,
    "batch_size": 64,
    "ema_decay": 0.995,
    "log_every": 50,
    "checkpoint_every": 500,
}


def check_halvings(c, image_shape) -> None:
    """ConfigError unless 2^(len(ch_mult) - 1) divides both sides of the images."""
    (height, width), halvings = image_shape[:2], len(c.model.ch_mult) - 1
    if height % 2**halvings or width % 2**halvings:
        divisor = 1
        while height % (divisor * 2) == 0 and width % (divisor * 2) == 0:
            divisor *= 2
        raise ConfigError(
            f"config.model.ch_mult={tuple(c.model.ch_mult)} halves the {height}x{width} images {halvings} times; "
            f"accepted: at most {divisor.bit_length() - 1} halvings (len(ch_mult) - 1), as 2^halvings must divide "
            f"both sides"
        )


def check_dit(c) -> None:
    """A DiT's width is a multiple of 4 (its 2-D sin-cos position code) and of its heads."""
    if c.model.backbone == "dit" and (c.model.hidden % 4 or c.model.hidden % c.model.num_heads):
        raise ConfigError(
            f"config.model.hidden={c.model.hidden} must be a multiple of 4 and of "
            f"config.model.num_heads={c.model.num_heads} (model.backbone='dit')"
        )


def check_shape(c, image_shape) -> None:
    """ConfigError unless the backbone reads images of image_shape: the U-Net's halvings or DiT's patches."""
    if c.model.backbone == "unet":
        return check_halvings(c, image_shape)
    (height, width), p = image_shape[:2], c.model.patch_size
    if height % p or width % p:
        raise ConfigError(
            f"config.model.patch_size={p} does not divide the {height}x{width} images; accepted: a common divisor "
            f"of {height} and {width}"
        )


def make_network(c, learned_variance: bool = False) -> ddpm.UNet | dit.DiT:
    """The denoiser of config.model (U-Net or DiT), computing in config.dtype (outputs doubled for a learned
    variance); both are called as net.apply(params, x, t, labels, train=...)."""
    m = c.model
    if m.backbone == "dit":
        return dit.DiT(
            patch_size=m.patch_size,
            hidden=m.hidden,
            depth=m.depth,
            num_heads=m.num_heads,
            mlp_ratio=m.mlp_ratio,
            num_classes=m.num_classes,
            learned_variance=learned_variance,
            dtype=config_lib.compute_dtype(c),
        )
    return ddpm.UNet(
        ch=c.model.ch,
        ch_mult=tuple(c.model.ch_mult),
        num_res_blocks=c.model.num_res_blocks,
        attn_resolutions=tuple(c.model.attn_resolutions),
        dropout=c.model.dropout,
        dtype=config_lib.compute_dtype(c),
        num_classes=c.model.num_classes,
        learned_variance=learned_variance,
    )


@dataclasses.dataclass(frozen=True)
class Objective:
    """An objective on the denoiser (module docstring): its name, field, losses and samplers."""

    name: str
    field: Callable  # (config, apply(x, t, labels)) -> fn(x, s, labels)
    losses: Callable  # (config, fn(x, s), x0, key) -> per-example losses [B]
    samplers: dict[str, Callable]  # config.sample.sampler -> (config, fn(x, s), shape, key) -> images in [-1, 1]
    num_evaluations: Callable[[str, int], int]  # (sampler, sample.steps) -> network calls

    def describe(self, c) -> str:
        """How mode=sample's line names the draw: 'heun, 35 network calls'."""
        return f"{c.sample.sampler}, {self.num_evaluations(c.sample.sampler, c.sample.steps)} network calls"


def is_latent(c) -> bool:
    """Whether the run learns an autoencoder's latents (config.latent.autoencoder, train.data.latents)."""
    return bool(c.get("latent", {}).get("autoencoder", ""))


def inputs_of(c) -> Callable:
    """What the denoiser learns of a batch's 'image' rows: uint8 images in [-1, 1], or scaled latents as they are."""
    return (lambda x: jnp.asarray(x, jnp.float32)) if is_latent(c) else data.to_signed


def make_task(c, spec: data.ImageSpec, objective: Objective) -> loop.Task:
    """The training part: the denoiser of config.model on spec's images, trained on the objective's mean loss; a
    conditional model's labels dropped to the null label at model.class_dropout (classifier-free guidance)."""
    if c.model.num_classes:
        data.check_labels(spec, "model.num_classes", c.model.num_classes, c.model.num_classes)
    check_shape(c, spec.image_shape)
    net = make_network(c)
    init_labels = jnp.zeros((1,), jnp.int32) if c.model.num_classes else None

    def init_params(key):
        return net.init(key, jnp.zeros((1, *spec.image_shape)), jnp.zeros((1,)), init_labels)["params"]

    def loss_fn(params, batch, key):
        k_loss, k_drop, k_labels = jax.random.split(key, 3)
        labels = None
        if c.model.num_classes:
            labels = ddpm.drop_labels(k_labels, batch["label"], c.model.class_dropout, net.null_label)
        apply = lambda x, t, y: net.apply({"params": params}, x, t, y, train=True, rngs={"dropout": k_drop})
        fn = objective.field(c, apply)
        losses = objective.losses(c, lambda x, s: fn(x, s, labels), inputs_of(c)(batch["image"]), k_loss)
        return jnp.mean(losses), {}

    return loop.Task(objective.name, init_params, loss_fn=loss_fn)


def _field_of(c, net: ddpm.UNet, objective: Objective, params, labels, w):
    """fn(x, s) of the network's parameters: unconditional (labels None) or guided by w towards labels."""
    fn = objective.field(c, lambda x, t, y: net.apply({"params": params}, x, t, y))
    if labels is None:
        return lambda x, s: fn(x, s, None)
    return flow.guided_velocity_fn(fn, labels, net.null_label, w)


def make_sampler(c, objective: Objective, image_shape, num_images: int, sampler: str | None = None):
    """jit (params, key, labels=None) -> num_images images in [-1, 1], float32 [N, H, W, C], by `sampler` (None:
    config.sample.sampler), labels [N] (a conditional model) guided by sample.guidance."""
    c = c.copy_and_resolve_references()  # read when the sampler is traced: later changes must not reach it
    sampler = sampler or c.sample.sampler
    if sampler not in objective.samplers:
        accepted = ", ".join(objective.samplers)
        raise ConfigError(f"config.sample.sampler={sampler!r} is not accepted; accepted: {accepted}")
    net, build, shape = make_network(c), objective.samplers[sampler], (num_images, *image_shape)
    return jax.jit(lambda p, k, y=None: build(c, _field_of(c, net, objective, p, y, c.sample.guidance), shape, k))


def make_evaluation(c, ds: data.ImageData, objective: Objective, space: latents.LatentSpace | None = None) -> dict:
    """{'evaluate': (state, step) -> (scalars, images)}: a grid of sample.sampler's samples, the objective's loss
    on the test split (eval.test_examples, a fixed key, the test labels unguided), and eval.num_samples samples
    scored by FD / KID / precision / recall (evaluation.SampleQuality). A latent run (space given) is tested on ds's
    latents, and its samples are decoded by the space before they are shown and scored against the images."""
    images = space.image_data if space else ds
    evaluation.check_dataset_for_eval(c, images)
    grid_y, grid_columns = diffusion.grid_labels(c)
    grid = make_sampler(c, objective, ds.image_shape, c.sample.num_images if grid_y is None else len(grid_y))
    many = make_sampler(c, objective, ds.image_shape, c.eval.num_samples)
    test = data.as_arrays(ds.test, c.eval.test_examples or None)
    net, conditional, inputs = make_network(c), bool(c.model.num_classes), inputs_of(c)
    to_uint8 = space.to_uint8 if space else data.to_uint8

    @jax.jit
    def test_losses(params, x, y, key):
        fn = objective.field(c, lambda x, t, labels: net.apply({"params": params}, x, t, labels))
        return objective.losses(c, lambda x, s: fn(x, s, y if conditional else None), inputs(x), key)

    quality = evaluation.SampleQuality(c, images)
    many_y = None
    if conditional and quality.enabled:  # the scored samples have the test split's label proportions
        many_y = evaluation.labels_in_proportion(data.as_arrays(ds.test)["label"], c.eval.num_samples).astype(np.int32)

    def evaluate(state, step):
        k_grid, k_test, k_many = jax.random.split(evaluation.eval_key(c.seed, step), 3)
        p = state.eval_params
        images = {c.sample.sampler: image_grid(to_uint8(grid(p, k_grid, grid_y)), grid_columns)}
        parts = range(0, len(test["image"]), 128)
        losses = [
            test_losses(p, jnp.asarray(test["image"][i : i + 128]), test["label"][i : i + 128], k)
            for i, k in zip(parts, jax.random.split(k_test, len(parts)))
        ]
        scalars = {"test_loss": float(jnp.mean(jnp.concatenate(losses)))}
        if quality.enabled:
            drawn = to_uint8(many(p, k_many, many_y))
            scalars.update({f"{c.sample.sampler}_{k}": v for k, v in quality(drawn, many_y).items()})
        return scalars, images

    return {"evaluate": evaluate}


class DiffusionModel(image_runs.ImageModel):
    """The ImageModel of a denoiser trained on an objective, in pixel space or, by config.latent.autoencoder, in a
    trained autoencoder's latent space (train.data.latents): there the dataset is encoded once, the denoiser
    trains on the latents, its spec (workdir/spec.json) is theirs, and it decodes with the copy of the autoencoder
    the run keeps in its workdir."""

    def train(self, config, workdir: str) -> dict:
        if not is_latent(config):
            return super().train(config, workdir)
        evaluation.feature_network(config)
        autoencoder = latents.autoencoder_of(config)
        ds = data.images_of(config, cache=False)
        space, splits = latents.latent_space(config, ds, autoencoder)
        space = dataclasses.replace(space, image_data=ds)
        codes = latents.latent_data(ds, space, splits)
        task = self.make_task(config, codes.spec)
        evaluate = self.make_evaluation(config, codes, space)

        def batches(global_batch_size: int, seed: int, **kw):  # asked for once every check has passed
            data.save_cache(ds)
            space.save(workdir)
            return data.batches(codes.train, global_batch_size, seed, **kw)

        task = dataclasses.replace(task, **evaluate, batches=batches, spec=codes.spec.to_json())
        return loop.train(config, workdir, task, codes.fingerprint)


def sampling_params(trained):
    """What a trained run's generator draws with: its parameters, and for a latent run, {'denoiser': those,
    'space': the autoencoder copy in its workdir (latents.LatentSpace.read)}."""
    if not is_latent(trained.config):
        return trained.params
    return {"denoiser": trained.params, "space": latents.LatentSpace.read(trained.workdir)}


def image_model(name: str, schema: config_lib.Schema, objective: Objective) -> DiffusionModel:
    """The DiffusionModel of a denoiser trained on `objective`: its task, evaluation and generator."""

    def make_generator(c, spec: data.ImageSpec, num_images: int) -> image_runs.Generator:
        sampler = make_sampler(c, objective, spec.image_shape, num_images)
        drawn = lambda p, k, y: sampler(p, k) if y is None else sampler(p, k, jnp.asarray(y))
        if is_latent(c):
            draw = lambda p, k, y: p["space"].to_uint8(drawn(p["denoiser"], k, y))
        else:
            draw = lambda p, k, y: data.to_uint8(drawn(p, k, y))
        return image_runs.Generator(draw, c.model.num_classes)

    return DiffusionModel(
        name,
        schema,
        lambda c, spec: make_task(c, spec, objective),
        lambda c, ds, space=None: make_evaluation(c, ds, objective, space),
        make_generator,
        sampling_params=sampling_params,
        describe=objective.describe,
    )


def entry(schema: config_lib.Schema, objective: Objective, doc: str, file: str) -> Entry:
    """The Entry of the module `file` training a denoiser on `objective` (train.edm, train.flow); the U-Net's
    convolutions on XLA:CPU's own kernels, as train.ddpm's (parallel.xla_cpu_convolutions)."""
    model = image_model(objective.name, schema, objective)
    return model.entry(doc, file, settings=(parallel.xla_cpu_convolutions,))
