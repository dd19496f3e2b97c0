"""Train by flow matching (Lipman et al. 2023; rectified flow, Liu et al. 2023): `python -m train.flow [--workdir
runs/flow] [--config.num_steps=...]`.

The DDPM's U-Net (train.ddpm's model keys) regresses the velocity eps - x_0 of the straight path x_t = (1 - t) x_0
+ t eps at times t drawn uniform or logit-normal (SD3's; flow.t_distribution), reading the time as 1000 t (as SD3's
and diffusers' timesteps); sampled from t = 1 to 0 by Euler, Heun or the midpoint rule on sample.steps times,
shifted towards the noise by sample.shift (SD3's). Default: the embedded 8x8 digits, minutes on 2 CPU cores.
Writes checkpoints, metrics.jsonl (the test loss, the samples' FD / KID / precision / recall) and
samples/<sampler>_*.png; `--config.model.num_classes=10` makes it class-conditional, guided by
`--config.sample.guidance=W`. `--mode=sample` draws samples of the run in --workdir; `load(workdir)` gives them in
Python. The math is zoo/flow.py.
"""

from __future__ import annotations

import jax.numpy as jnp

from train.core import cli, config as config_lib
from train.core.config import Key
from train.data import diffusion_runs, latents
from train.evaluation import diffusion, images as evaluation
from zoo import flow

TIME_SCALE = 1000.0  # the U-Net reads time t as 1000 t, the scale of the DDPM's timesteps its embedding was made for

SCHEMA = config_lib.Schema(
    *config_lib.IMAGE_MODEL,
    diffusion_runs.DENOISER_KEYS,
    latents.LATENT_KEYS,
    {
        "flow.t_distribution": Key(
            "uniform",
            "training times: uniform, or logit_normal (sigmoid of N(t_mean, t_std^2), SD3's)",
            choices=flow.T_DISTRIBUTIONS,
        ),
        "flow.t_mean": Key(0.0, "the logit-normal's mean m", range="[-10, 10]"),
        "flow.t_std": Key(1.0, "the logit-normal's standard deviation s", range="> 0"),
    },
    {
        "sample.sampler": Key(
            "euler", "sampler of the evaluation and mode=sample: euler, heun or midpoint", choices=flow.SAMPLERS
        ),
        "sample.steps": Key(
            50, "N, the steps from t = 1 to 0 (euler: N network calls, heun and midpoint 2N)", range=">= 1"
        ),
        "sample.shift": Key(1.0, "the times' shift t' = shift t / (1 + (shift - 1) t) (SD3's; 1: none)", range="> 0"),
        **diffusion.COMMON_SAMPLE_KEYS,
    },
    evaluation.eval_keys(num_samples=256, test_examples=256),
    checks=(diffusion_runs.check_dit, latents.check_latent, diffusion.check_conditioning, evaluation.check_eval_config),
    defaults=diffusion_runs.DEFAULTS,
    variants={**diffusion_runs.VARIANTS, "smoke": {**diffusion_runs.VARIANTS["smoke"], "sample.steps": 3}},
)
get_config = SCHEMA.config  # get_config() is the default config, get_config('smoke') a seconds-long run


def field(c, apply):
    """The velocity v(x, t, labels) of the U-Net, which reads the time as TIME_SCALE t."""
    return lambda x, t, y: apply(x, TIME_SCALE * t, y)


def losses(c, velocity, x0, key):
    f = c.flow
    options = {"mean": f.t_mean, "std": f.t_std} if f.t_distribution == "logit_normal" else {}
    return flow.flow_loss(velocity, x0, key, f.t_distribution, **options)[0]


def times_of(c):
    """sample.steps + 1 times from 1 to 0, shifted by sample.shift (zoo.flow.flow_sigmas without diffusers' 1/T)."""
    return jnp.asarray(flow.flow_sigmas(c.sample.steps, c.sample.shift, None), jnp.float32)


OBJECTIVE = diffusion_runs.Objective(
    "flow",
    field,
    losses,
    {
        name: (lambda sample: lambda c, fn, shape, k: sample(fn, times_of(c), shape, k))(sample)
        for name, sample in (
            ("euler", flow.sample_euler),
            ("heun", flow.sample_heun),
            ("midpoint", flow.sample_midpoint),
        )
    },
    flow.num_evaluations,
)
assert set(OBJECTIVE.samplers) == set(flow.SAMPLERS)
ENTRY = diffusion_runs.entry(SCHEMA, OBJECTIVE, __doc__, __file__)


def make_task(c, spec):
    """The training part, as train.ddpm.make_task: the U-Net on spec's images, trained on this objective's loss."""
    return diffusion_runs.make_task(c, spec, OBJECTIVE)


run, load, sample_workdir = ENTRY.run, ENTRY.load, ENTRY.sample

if __name__ == "__main__":
    cli.main(ENTRY)
