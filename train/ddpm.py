"""Train a DDPM: `python -m train.ddpm [--workdir runs/ddpm] [--config.num_steps=...]`.

Default: a small U-Net on the embedded 8x8 digits, about 10 minutes on 2 CPU cores. Writes
checkpoints, metrics.jsonl, samples/ancestral_*.png and samples/<sample.sampler>_*.png (ddim by
default), and the test-split bits/dim bound at the end. `--config.model.num_classes=10` makes it
class-conditional on the digits' labels, sampled with classifier-free guidance `--config.sample.guidance=W`.
`--mode=sample` draws samples of the run in --workdir into samples/samples_<step>.npz; `load(workdir)`
gives them in Python.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from train.core import cli, config as config_lib, loop, parallel
from train.core.config import Key
from train.core.errors import ConfigError
from train.data import diffusion_runs, image_runs, images as data
from train.data.images import to_uint8
from train.evaluation import diffusion, images as evaluation
from zoo import ddpm


def check_loss(c) -> None:
    """Importance sampling of t reads L_vlb, which only the kl loss or a learned variance trains; the kl loss takes no
    weight over t; a zero terminal SNR needs a prediction that stays defined at SNR 0."""
    d = c.diffusion
    if d.vlb_sampling == "importance" and d.variance != "learned" and d.loss != "kl":
        raise ConfigError(
            "config.diffusion.vlb_sampling='importance' samples t by L_vlb, which only the kl loss or a learned "
            f"variance trains; accepted with config.diffusion.loss='kl' or config.diffusion.variance='learned' "
            f"(got loss={d.loss!r}, variance={d.variance!r}), or config.diffusion.vlb_sampling='uniform'"
        )
    if d.loss == "kl" and d.loss_weight != "uniform":
        raise ConfigError(
            f"config.diffusion.loss_weight={d.loss_weight!r} weights the mse loss; config.diffusion.loss='kl' is "
            "L_vlb itself: accepted with it, config.diffusion.loss_weight='uniform'"
        )
    if d.zero_terminal_snr and d.prediction != "v":
        raise ConfigError(
            f"config.diffusion.zero_terminal_snr=True makes x_T pure noise, where an {d.prediction!r}-prediction "
            "says nothing of x_0 (Lin et al. 2024); accepted with config.diffusion.prediction='v'"
        )


SCHEMA = config_lib.Schema(
    *config_lib.IMAGE_MODEL,
    diffusion_runs.DENOISER_KEYS,
    {
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
        "diffusion.loss": Key(
            "mse",
            "mse: L_simple (plus lambda L_vlb with variance=learned: the hybrid); kl: L_vlb alone, training mean and "
            "variance (improved-diffusion's use_kl)",
            choices=ddpm.LOSSES,
        ),
        "diffusion.zero_terminal_snr": Key(
            False,
            "rescale the betas so SNR(T) = 0 and x_T is pure noise, as sampling starts (Lin et al. 2024; prediction=v)",
        ),
        "diffusion.vlb_sampling": Key(
            "uniform",
            "training timesteps: uniform, or importance (p_t from the running second moments of L_vlb, the loss "
            "weighted by 1 / (T p_t); loss=kl or variance=learned)",
            choices=ddpm.VLB_SAMPLINGS,
        ),
    },
    diffusion.SAMPLE_KEYS,
    # Sample quality (FD, precision/recall in the project classifier's features) of num_samples samples of
    # sample.sampler (DDIM by default) and of the ancestral grid; the bits/dim bound on test_examples test images
    # (each costs T network calls).
    evaluation.eval_keys(num_samples=256, test_examples=64),
    checks=(
        diffusion.check_steps,
        diffusion_runs.check_dit,
        check_loss,
        diffusion.check_conditioning,
        evaluation.check_eval_config,
    ),
    defaults=diffusion_runs.DEFAULTS,
    variants={
        "cifar10": diffusion_runs.VARIANTS["cifar10"],  # the DDPM paper's CIFAR-10 model and recipe
        "mnist": diffusion_runs.VARIANTS["mnist"],
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
        "smoke": {**diffusion_runs.VARIANTS["smoke"], "diffusion.num_timesteps": 20, "sample.steps": 5},
    },
)


get_config = SCHEMA.config  # get_config() is the default config, get_config('smoke') a seconds-long run


def make_network(c):
    """The denoiser of config.model, U-Net or DiT (outputs doubled for a learned variance), computing in
    config.dtype."""
    return diffusion_runs.make_network(c, learned_variance=c.diffusion.variance == "learned")


def schedule_of(c) -> ddpm.Schedule:
    """The noise schedule of config.diffusion."""
    d = c.diffusion
    return ddpm.schedule_from_name(d.schedule, d.num_timesteps, zero_terminal_snr=d.zero_terminal_snr)


def make_sampler(c, image_shape, num_images: int, sampler: str | None = None):
    """jit (params, key, labels=None) -> num_images images in [-1, 1] by `sampler` (None: config.sample.sampler),
    of the U-Net and schedule of config c (train.evaluation.diffusion.make_sampler)."""
    return diffusion.make_sampler(c, make_network(c), schedule_of(c), image_shape, num_images, sampler)


def make_task(c, spec: data.ImageSpec) -> loop.Task:
    """The training part: the U-Net of config.model on images of spec.image_shape, the loss of config.diffusion."""
    if c.model.num_classes:
        data.check_labels(spec, "model.num_classes", c.model.num_classes, c.model.num_classes)
    diffusion_runs.check_shape(c, spec.image_shape)
    sched, net, d = schedule_of(c), make_network(c), c.diffusion
    init_labels = jnp.zeros((1,), jnp.int32) if c.model.num_classes else None  # an unconditional U-Net takes none

    def init_params(key):
        return net.init(key, jnp.zeros((1, *spec.image_shape)), jnp.zeros((1,), jnp.int32), init_labels)["params"]

    def loss_terms(params, batch, key, t=None, weights=None):
        """(mean loss, (metrics, per-example terms)) at timesteps t (None: uniform), the loss weighted by weights."""
        k_loss, k_drop = jax.random.split(key)
        labels = None
        if c.model.num_classes:  # classifier-free guidance: a share of the labels replaced by the null label
            labels = ddpm.drop_labels(jax.random.fold_in(key, 2), batch["label"], c.model.class_dropout, net.null_label)
        model_fn = lambda x, t: net.apply({"params": params}, x, t, labels, train=True, rngs={"dropout": k_drop})
        x0 = data.to_signed(batch["image"])
        kw = dict(prediction=d.prediction, loss_weight=d.loss_weight, min_snr_gamma=d.min_snr_gamma)
        terms = ddpm.training_loss_terms(
            sched, model_fn, x0, k_loss, **kw, variance=d.variance, vlb_weight=d.vlb_weight, t=t, loss=d.loss
        )
        loss = terms["loss"] if weights is None else weights * terms["loss"]
        with_vb = d.variance == "learned" or d.loss == "kl"
        metrics = {"mse": jnp.mean(terms["mse"]), "vb_bpd": jnp.mean(terms["vb"])} if with_vb else {}
        return jnp.mean(loss), (metrics, terms)

    def loss_fn(params, batch, key):
        loss, (metrics, _) = loss_terms(params, batch, key)
        return loss, metrics

    if d.vlb_sampling != "importance":
        return loop.Task("ddpm", init_params, loss_fn=loss_fn)

    def train_step(state, batch, key):
        """t drawn by the running second moments of L_vlb per timestep, kept in the train state's aux."""
        k_t, k_loss = jax.random.split(key)
        t, weights = ddpm.importance_timesteps(k_t, state.aux, batch["image"].shape[0])
        grad_fn = jax.value_and_grad(loss_terms, has_aux=True)
        (loss, (metrics, terms)), grads = grad_fn(state.params, batch, k_loss, t, weights)
        aux = ddpm.update_loss_history(state.aux, terms["t"], terms["vb"])
        metrics = {"loss": loss, "grad_norm": optax.global_norm(grads), **metrics}
        return state.apply_gradients(grads=grads, aux=aux), metrics

    init_aux = lambda: ddpm.loss_history(d.num_timesteps)
    return loop.Task("ddpm", init_params, loss_fn=loss_fn, train_step=train_step, init_aux=init_aux)


def make_evaluation(c, ds: data.ImageData) -> dict:
    """The evaluation part (train.evaluation.diffusion): sample grids, the bits/dim bound, sample quality."""
    return diffusion.make_evaluation(c, ds, make_network(c), schedule_of(c))


def make_generator(c, spec: data.ImageSpec, num_images: int) -> image_runs.Generator:
    """num_images uint8 samples a call by config.sample's sampler, guided by sample.guidance."""
    sampler = make_sampler(c, spec.image_shape, num_images)
    draw = lambda p, k, y: to_uint8(sampler(p, k) if y is None else sampler(p, k, jnp.asarray(y)))
    return image_runs.Generator(draw, c.model.num_classes)


def describe(c) -> str:
    s = c.sample
    return "ancestral, all T steps" if s.sampler == "ancestral" else f"{s.sampler}, {s.steps} steps"


MODEL = image_runs.ImageModel(
    "ddpm",
    SCHEMA,
    make_task,
    make_evaluation,
    make_generator,
    describe=describe,
    renamed={"sample.ddim_steps": "sample.steps"},  # in the config.json of runs written before the rename
)
# The U-Net's convolutions on XLA:CPU's own kernels: 1.3x faster on the CPU (parallel.xla_cpu_convolutions).
ENTRY = MODEL.entry(__doc__, __file__, settings=(parallel.xla_cpu_convolutions,))
run, load, sample_workdir = ENTRY.run, ENTRY.load, ENTRY.sample

if __name__ == "__main__":
    cli.main(ENTRY)
