"""Train an EDM (Karras et al. 2022): `python -m train.edm [--workdir runs/edm] [--config.num_steps=...]`.

The DDPM's U-Net (train.ddpm's model keys) as the network F of EDM's preconditioned denoiser D(x; sigma) =
c_skip x + c_out F(c_in x, c_noise), trained on lambda(sigma) ||D(y + sigma n; sigma) - y||^2 at log-normal
noise levels (edm.form='edm'; the paper's VP and VE forms as 'vp', 've'), sampled by Heun's method on the Karras
sigmas (18 steps, 35 network calls), or Euler or DPM-Solver++(2M) there (sample.sampler). Default: the embedded
8x8 digits, minutes on 2 CPU cores. Writes checkpoints, metrics.jsonl (the test loss, the samples' FD / KID /
precision / recall) and samples/<sampler>_*.png; `--config.model.num_classes=10` makes it class-conditional, guided by
`--config.sample.guidance=W`. `--mode=sample` draws samples of the run in --workdir; `load(workdir)` gives them
in Python. The math is zoo/edm.py.
"""

from __future__ import annotations

import jax.numpy as jnp

from train.core import cli, config as config_lib
from train.core.config import Key
from train.core.errors import ConfigError
from train.data import diffusion_runs, latents
from train.evaluation import diffusion, images as evaluation
from zoo import edm


def check_sigmas(c) -> None:
    """The Karras sigmas need sample.sigma_min < sample.sigma_max."""
    if not c.sample.sigma_min < c.sample.sigma_max:
        raise ConfigError(
            f"config.sample.sigma_min={c.sample.sigma_min} must be below config.sample.sigma_max={c.sample.sigma_max}"
        )


SCHEMA = config_lib.Schema(
    *config_lib.IMAGE_MODEL,
    diffusion_runs.DENOISER_KEYS,
    latents.LATENT_KEYS,
    {
        "edm.form": Key(
            "edm",
            "the preconditioning, loss weight and training noise levels: edm, or the paper's vp or ve (Table 1)",
            choices=edm.FORMS,
        ),
        "edm.sigma_data": Key(
            0.5, "sigma_data: the data's standard deviation the preconditioning assumes", range="> 0"
        ),
        "edm.p_mean": Key(-1.2, "P_mean: the mean of ln sigma in training (form edm)", range="[-10, 10]"),
        "edm.p_std": Key(1.2, "P_std: the standard deviation of ln sigma in training (form edm)", range="> 0"),
    },
    {
        "sample.sampler": Key(
            "heun", "sampler of the evaluation and mode=sample: heun (EDM's), euler or dpmpp_2m", choices=edm.SAMPLERS
        ),
        "sample.steps": Key(18, "N, the Karras steps (heun: 2N - 1 network calls, the others N)", range=">= 1"),
        "sample.sigma_min": Key(0.002, "the smallest nonzero sigma of the Karras sigmas", range="> 0"),
        "sample.sigma_max": Key(80.0, "the largest sigma, where sampling starts", range="> 0"),
        "sample.rho": Key(7.0, "rho of the Karras sigmas (eq. 5)", range="> 0"),
        "sample.s_churn": Key(0.0, "S_churn of the stochastic Heun sampler (0: deterministic)", range=">= 0"),
        "sample.s_tmin": Key(0.0, "S_tmin: the least sigma that gets churn", range=">= 0"),
        "sample.s_tmax": Key(1e6, "S_tmax: the largest sigma that gets churn", range=">= 0"),
        "sample.s_noise": Key(1.0, "S_noise: the churn noise's scale", range="> 0"),
        **diffusion.COMMON_SAMPLE_KEYS,
    },
    evaluation.eval_keys(num_samples=256, test_examples=256),
    checks=(
        diffusion_runs.check_dit,
        latents.check_latent,
        check_sigmas,
        diffusion.check_conditioning,
        evaluation.check_eval_config,
    ),
    defaults=diffusion_runs.DEFAULTS,
    variants={**diffusion_runs.VARIANTS, "smoke": {**diffusion_runs.VARIANTS["smoke"], "sample.steps": 3}},
)
get_config = SCHEMA.config  # get_config() is the default config, get_config('smoke') a seconds-long run


def field(c, apply):
    """The preconditioned denoiser D(x; sigma, labels) of the U-Net, F(c_in x, c_noise, labels)."""
    e = c.edm
    return lambda x, sigma, y: edm.precondition(lambda xin, cn: apply(xin, cn, y), e.form, e.sigma_data)(x, sigma)


def losses(c, denoise, x0, key):
    e = c.edm
    return edm.denoiser_loss(denoise, x0, key, e.form, e.sigma_data, **_sigma_options(c))[0]


def _sigma_options(c) -> dict:
    return {"p_mean": c.edm.p_mean, "p_std": c.edm.p_std} if c.edm.form == "edm" else {}


def sigmas_of(c):
    s = c.sample
    return jnp.asarray(edm.karras_sigmas(s.steps, s.sigma_min, s.sigma_max, s.rho), jnp.float32)


OBJECTIVE = diffusion_runs.Objective(
    "edm",
    field,
    losses,
    {
        "heun": lambda c, fn, shape, k: edm.sample_heun(
            fn,
            sigmas_of(c),
            shape,
            k,
            s_churn=c.sample.s_churn,
            s_tmin=c.sample.s_tmin,
            s_tmax=c.sample.s_tmax,
            s_noise=c.sample.s_noise,
        ),  # fmt: skip
        "euler": lambda c, fn, shape, k: edm.sample_euler(fn, sigmas_of(c), shape, k),
        "dpmpp_2m": lambda c, fn, shape, k: edm.sample_dpmpp_2m(fn, sigmas_of(c), shape, k),
    },
    edm.num_evaluations,
)
assert set(OBJECTIVE.samplers) == set(edm.SAMPLERS)
ENTRY = diffusion_runs.entry(SCHEMA, OBJECTIVE, __doc__, __file__)


def make_task(c, spec):
    """The training part, as train.ddpm.make_task: the U-Net on spec's images, trained on this objective's loss."""
    return diffusion_runs.make_task(c, spec, OBJECTIVE)


run, load, sample_workdir = ENTRY.run, ENTRY.load, ENTRY.sample

if __name__ == "__main__":
    cli.main(ENTRY)
