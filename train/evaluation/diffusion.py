"""The DDPM's samplers built from its config, and its evaluation: the figures and grids a run logs.

Samplers come from one registry, SAMPLER_BUILDERS (sample.sampler -> builder): make_sampler, the evaluation and a
trained run's compiled samplers (train.data.image_runs, keyed by the whole of config.sample) all read it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from train.core import config as config_lib
from train.core.config import Key
from train.core.writers import image_grid
from train.data import images as data
from train.evaluation import images as evaluation
from zoo import ddpm, edm

__all__ = [
    "COMMON_SAMPLE_KEYS",
    "KARRAS_SAMPLERS",
    "SAMPLE_KEYS",
    "check_steps",
    "check_conditioning",
    "SAMPLER_BUILDERS",
    "eps_fn_of",
    "make_sampler",
    "grid_labels",
    "make_evaluation",
]


# The keys of every U-Net model's samples (train.ddpm, train.edm, train.flow): guidance, the grids' labels,
# mode=sample's count, batch and seed.
COMMON_SAMPLE_KEYS = {
    "sample.guidance": Key(
        0.0,
        "classifier-free guidance w: f = (1 + w) f(x, c) - w f(x, null) of the network's prediction f; 0 "
        "conditional, -1 unconditional",
        range=">= -1",
    ),
    "sample.labels": Key(
        (), "labels of the sample grids, one row per label (empty: every class in turn)", item=int, range=">= 0"
    ),
    "sample.num_images": Key(64, "images of each sample grid, and of mode=sample's samples_<step>.npz", range=">= 1"),
    "sample.batch_size": Key(256, "images per sampler call of mode=sample and load().sample", range=">= 1"),
    "sample.seed": Key(
        0, "seed of mode=sample's draws: load(workdir).sample(jax.random.key(seed), n)", range=config_lib.SEED_RANGE
    ),
}
KARRAS_SAMPLERS = tuple(f"karras_{s}" for s in edm.SAMPLERS)  # a DDPM's network on the Karras sigmas (zoo.edm)
# The DDPM's sampler keys: of the evaluation's grids and samples, mode=sample and load(workdir).sample.
SAMPLE_KEYS = {
    "sample.sampler": Key(
        "ddim",
        "sampler of the evaluation's samples, its second grid and mode=sample: ancestral (all T steps), ddim "
        "(sample.ddim_eta), dpmpp_2m (DPM-Solver++(2M), Lu et al. 2022), or karras_euler, karras_heun, "
        "karras_dpmpp_2m (on sample.steps Karras sigmas spanning the trained ones, EDM's)",
        choices=ddpm.SAMPLERS + KARRAS_SAMPLERS,
    ),
    "sample.steps": Key(
        50, "steps of ddim and dpmpp_2m (at most num_timesteps) and the karras_ samplers", range=">= 1"
    ),
    "sample.timestep_spacing": Key(
        "linspace",
        "the timesteps of ddim and dpmpp_2m: linspace, leading or trailing, as diffusers spaces them",
        choices=ddpm.SPACINGS,
    ),
    "sample.ddim_eta": Key(0.0, "DDIM's eta: 0 deterministic, 1 DDPM-like", range="[0, 1]"),
    "sample.rho": Key(7.0, "rho of the karras_ samplers' sigmas (EDM's eq. 5)", range="> 0"),
    **COMMON_SAMPLE_KEYS,
}


def check_steps(c) -> None:
    """ddim and dpmpp_2m take at most T steps."""
    if c.sample.sampler in ("ddim", "dpmpp_2m") and c.sample.steps > c.diffusion.num_timesteps:
        raise config_lib.ConfigError(
            f"config.sample.steps={c.sample.steps} ({c.sample.sampler}) must be at most "
            f"config.diffusion.num_timesteps={c.diffusion.num_timesteps}"
        )


def check_conditioning(c) -> None:
    """Guidance and labels only of a conditional model, labels below model.num_classes."""
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


def eps_fn_of(c, sched: ddpm.Schedule, net: ddpm.UNet, convert: bool = True):
    """(params, labels=None, w=sample.guidance) -> the eps_fn(x_t, t) every sampler and the bound take: the U-Net's
    output converted from what it predicts (config.diffusion.prediction; with convert=False left as it is, for a
    sampler that converts it at fractional timesteps); for labels y [B] (a conditional model) guided by w (w = 0:
    the conditional one); returning (eps, v) for a learned variance."""
    learned, prediction = net.learned_variance, c.diffusion.prediction if convert else "eps"

    def eps_fn(params, y=None, w=c.sample.guidance):
        model_fn = lambda x, t, labels=None: net.apply({"params": params}, x, t, labels)
        if y is None:
            return ddpm.as_eps_fn(sched, prediction, model_fn, learned)
        return ddpm.guided_eps_fn(sched, prediction, model_fn, y, net.null_label, w, learned)

    return eps_fn


def _karras(sampler: str):
    """A DDPM's network (its own prediction: eps_fn_of(..., convert=False)) sampled by zoo.edm's sampler on
    sample.steps Karras sigmas from its largest trained sigma to its smallest (diffusers' use_karras_sigmas), as
    zoo.edm.ddpm_denoiser reads it at fractional timesteps, x_0 clipped to [-1, 1] as the other samplers clip it;
    the result, EDM's scaled-out x at sigma = 0, is x_0."""
    sample = {"euler": edm.sample_euler, "heun": edm.sample_heun, "dpmpp_2m": edm.sample_dpmpp_2m}[sampler]

    def build(sched, model_fn, shape, k, c):
        trained = edm.ddpm_sigmas(sched)
        sigmas = jnp.asarray(edm.karras_sigmas(c.sample.steps, trained[0], trained[-1], c.sample.rho), jnp.float32)
        denoise = edm.ddpm_denoiser(sched, c.diffusion.prediction, model_fn, clip_x0=True)
        return sample(denoise, sigmas, shape, k)

    return build


# sample.sampler -> (sched, eps_fn, shape, key, config) -> images: the one place a sampler is added.
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
    **{name: _karras(name.removeprefix("karras_")) for name in KARRAS_SAMPLERS},
}
assert set(SAMPLER_BUILDERS) == set(ddpm.SAMPLERS + KARRAS_SAMPLERS)


def make_sampler(c, net: ddpm.UNet, sched: ddpm.Schedule, image_shape, num_images: int, sampler: str | None = None):
    """jit (params, key, labels=None) -> num_images images in [-1, 1], float32 [N, H, W, C], by `sampler` (None:
    config.sample.sampler; SAMPLER_BUILDERS): ancestral over all T steps (diffusion.variance), ddim (ddim_eta) or
    dpmpp_2m over sample.steps timesteps of sample.timestep_spacing; labels [N] (a conditional model) guided by
    sample.guidance."""
    c = c.copy_and_resolve_references()  # the builder reads it when the sampler is traced: later changes must not
    shape = (num_images, *image_shape)
    sampler = sampler or c.sample.sampler
    eps_fn = eps_fn_of(c, sched, net, convert=sampler not in KARRAS_SAMPLERS)
    if sampler not in SAMPLER_BUILDERS:
        raise config_lib.ConfigError(
            f"config.sample.sampler={sampler!r} is not accepted; accepted: {', '.join(SAMPLER_BUILDERS)}"
        )
    build = SAMPLER_BUILDERS[sampler]
    return jax.jit(lambda p, k, y=None: build(sched, eps_fn(p, y), shape, k, c))


def grid_labels(c) -> tuple[np.ndarray | None, int | None]:
    """(labels, columns) of the sample grids: one row per label of sample.labels (every class in turn when empty),
    sample.num_images // rows images each (at least one); (None, None) for an unconditional model."""
    if not c.model.num_classes:
        return None, None
    rows = tuple(c.sample.labels) or tuple(range(c.model.num_classes))
    columns = max(1, c.sample.num_images // len(rows))
    return np.repeat(np.asarray(rows, np.int32), columns), columns


def make_evaluation(c, ds: data.ImageData, net: ddpm.UNet, sched: ddpm.Schedule) -> dict:
    """{'evaluate': (state, step) -> (scalars, images)}: the ancestral grid, a grid of sample.sampler's (none when
    that is ancestral), the test-split bits/dim bound, and eval.num_samples of sample.sampler's samples scored by
    FD / precision / recall (the ancestral grid too when sample.sampler is another)."""
    s, num_classes, eps_fn = c.sample, c.model.num_classes, eps_fn_of(c, sched, net)
    grid_y, grid_columns = grid_labels(c)
    grid_n = s.num_images if grid_y is None else len(grid_y)
    ancestral = make_sampler(c, net, sched, ds.image_shape, grid_n, "ancestral")
    grid = make_sampler(c, net, sched, ds.image_shape, grid_n) if s.sampler != "ancestral" else None
    many = make_sampler(c, net, sched, ds.image_shape, c.eval.num_samples)
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
        anc = data.to_uint8(ancestral(p, k_anc, grid_y))
        images = {"ancestral": image_grid(anc, grid_columns)}
        if grid is not None:
            images[s.sampler] = image_grid(data.to_uint8(grid(p, k_grid, grid_y)), grid_columns)
        parts = max(1, len(test["image"]) // 128)
        bpd = [
            bound(p, data.to_signed(jnp.asarray(x)), y if num_classes else None, jax.random.fold_in(k_nll, i))
            for i, (x, y) in enumerate(zip(np.array_split(test["image"], parts), np.array_split(test["label"], parts)))
        ]
        scalars = {"test_bpd_bound": float(jnp.mean(jnp.concatenate(bpd)))}
        if quality.enabled:
            drawn = data.to_uint8(many(p, k_many, many_y))
            scalars.update({f"{s.sampler}_{k}": v for k, v in quality(drawn, many_y).items()})
            if grid is not None and len(anc) > c.eval.pr_k:
                scalars.update({f"ancestral_{k}": v for k, v in quality(anc, grid_y).items()})
        return scalars, images

    return {"evaluate": evaluate}
