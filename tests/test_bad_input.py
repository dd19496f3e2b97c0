"""Bad input is refused at the boundary: one `error: ...` line on stderr naming the value (and what is
accepted), exit code 2, no traceback, and nothing in the workdir created or changed.

CLI cases run as real processes (tests/cli_cases.py says how); a few run on an EXISTING workdir holding a
finished tiny run and check that every file's size and mtime are unchanged.

In-process cases at the end check the zoo's own argument checks (UnknownWordError, ValueError naming a shape).
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

from tests.cli_cases import Case, ForkServer, case, check_refused, cli_args, fill, outcomes_fixture, run_cli
from train import registry

# ----------------------------------------------------------------------------- the table
# args may use {tmp} (the module's data files), {workdir}; fragments must all appear in the error line.


NPZ_ACCEPTED = "accepted: a .npz with uint8 'x' of shape [N,H,W] or [N,H,W,C]"
TWO_DEVICES = (("XLA_FLAGS", "--xla_force_host_platform_device_count=2"),)
UNDER_A_FILE = "{tmp}/a_regular_file/run"

# The finished tiny runs the `existing` cases start from (one per module, flags as --config.KEY=VALUE).
SETUPS = {
    "ngram": {"num_tokens": "20000", "order": "2"},
    "pca": {"dataset": "npz:{tmp}/good.npz", "eval.num_samples": "0", "ks": "(1,2)", "k": "2"},
    "word2vec": {
        "num_tokens": "5000",
        "batch_size": "1024",
        "num_steps": "2",
        "minibatch_size": "256",
        "embed_dim": "8",
        "log_every": "1",
        "checkpoint_every": "1",
        "progress": "False",
    },
}

CLI_CASES = [
    # unknown config keys (typos), top level and nested
    case("ddpm-unknown-key", "ddpm", ["--config.num_stepz=3"], ["num_stepz", 'Did you mean "num_steps"', "accepted"]),
    case("vae-unknown-nested-key", "vae", ["--config.model.latent_dimm=4"], ["latent_dimm", "latent_dim", "accepted"]),
    case("cooccurrence-unknown-key", "cooccurrence", ["--config.windw=4"], ["windw", "window"]),
    # wrong types
    case("ddpm-num-steps-abc", "ddpm", ["--config.num_steps=abc"], ["--config.num_steps=abc", "int()"]),
    case("gan-learning-rate-fast", "gan", ["--config.learning_rate=fast"], ["--config.learning_rate=fast", "float"]),
    case("pca-ks-not-ints", "pca", ["--config.ks=abc"], ["config.ks=('abc',)", "tuple of integers >= 1"]),
    # non-positive sizes and steps
    case("autoencoder-num-steps-0", "autoencoder", ["--config.num_steps=0"], ["config.num_steps=0", "an integer >= 1"]),
    case(
        "pca-fit-examples-negative", "pca", ["--config.fit_examples=-4"], ["config.fit_examples=-4", "an integer >= 0"]
    ),
    case(
        "ngram-max-sample-len-0", "ngram", ["--config.max_sample_len=0"], ["config.max_sample_len=0", "an integer >= 1"]
    ),
    case("vae-eval-every-negative", "vae", ["--config.eval_every=-1"], ["config.eval_every=-1", "an integer >= 0"]),
    case(
        "word2vec-num-steps-negative", "word2vec", ["--config.num_steps=-1"], ["config.num_steps=-1", "an integer >= 0"]
    ),
    # unknown choices of the shared keys
    case("gan-optimizer", "gan", ["--config.optimizer=sgd"], ["'sgd'", "accepted: adam, adamw"]),
    case(
        "autoencoder-lr-schedule",
        "autoencoder",
        ["--config.lr_schedule=step"],
        ["'step'", "accepted: constant, cosine, linear"],
    ),
    case("word2vec-nan-policy", "word2vec", ["--config.nan_policy=ignore"], ["'ignore'", "accepted: stop, skip"]),
    case(
        "word2vec-cpu-devices",
        "word2vec",
        ["--config.cpu_devices=-2"],
        ["config.cpu_devices=-2", "accepted: an integer >= 0"],
    ),
    case(
        "word2vec-sync-minibatches",
        "word2vec",
        ["--config.sync_minibatches=-1"],
        ["config.sync_minibatches=-1", "an integer >= 0"],
    ),
    case("ddpm-dtype", "ddpm", ["--config.dtype=float16"], ["'float16'", "accepted: float32, bfloat16"]),
    *[
        case(f"{m}-bfloat16", m, ["--config.dtype=bfloat16"], ["config.dtype is not a key", "accepted: the keys"])
        for m in ("word2vec", "pca", "ngram", "cooccurrence")
    ],
    # sweeps: lists of different lengths, a key the module cannot sweep
    case(
        "vae-sweep-lengths",
        "vae",
        ["--config.sweep.beta=(0.5,1.0)", "--config.sweep.seeds=(0,1,2)"],
        ["config.sweep.beta=(0.5, 1.0)", "config.sweep.seeds=(0, 1, 2)", "same length"],
    ),
    case(
        "ddpm-sweep-unknown-key",
        "ddpm",
        ["--config.sweep.beta=(1.0,2.0)"],
        ["config.sweep.beta is not a key", "accepted: the keys"],
    ),
    # model-specific choices
    case(
        "ddpm-schedule", "ddpm", ["--config.diffusion.schedule=quadratic"], ["'quadratic'", "accepted: linear, cosine"]
    ),
    case(
        "ddpm-variance",
        "ddpm",
        ["--config.diffusion.variance=small"],
        ["'small'", "accepted: beta, posterior, learned"],
    ),
    case(
        "ddpm-importance-without-learned-variance",
        "ddpm",
        ["--config.diffusion.vlb_sampling=importance"],
        [
            "vlb_sampling='importance'",
            "accepted with config.diffusion.loss='kl' or config.diffusion.variance='learned'",
        ],
    ),
    case("ddpm-loss", "ddpm", ["--config.diffusion.loss=l1"], ["'l1'", "accepted: mse, kl"]),
    case(
        "ddpm-kl-loss-weighted",
        "ddpm",
        ["--config.diffusion.loss=kl", "--config.diffusion.loss_weight=min_snr"],
        ["loss_weight='min_snr'", "accepted with it, config.diffusion.loss_weight='uniform'"],
    ),
    case(
        "ddpm-zero-terminal-snr-eps",
        "ddpm",
        ["--config.diffusion.zero_terminal_snr=True"],
        ["zero_terminal_snr=True", "accepted with config.diffusion.prediction='v'"],
    ),
    case("ddpm-sampler", "ddpm", ["--config.sample.sampler=euler"], ["'euler'", "accepted: ancestral, ddim, dpmpp_2m"]),
    # EDM and flow matching: their samplers, forms and schedules, the U-Net's halvings and labels
    case("edm-form", "edm", ["--config.edm.form=subvp"], ["'subvp'", "accepted: edm, vp, ve"]),
    case("edm-sampler", "edm", ["--config.sample.sampler=midpoint"], ["'midpoint'", "accepted: euler, heun, dpmpp_2m"]),
    case("edm-sigmas-crossed", "edm", ["--config.sample.sigma_min=100"], ["sample.sigma_min=100", "below", "80"]),
    case("edm-guidance-unconditional", "edm", ["--config.sample.guidance=2"], ["sample.guidance=2.0", "conditional"]),
    case("edm-unknown-key", "edm", ["--config.edm.sigma_dat=1"], ["sigma_dat", 'Did you mean "sigma_data"']),
    case(
        "flow-sampler", "flow", ["--config.sample.sampler=dpmpp_2m"], ["'dpmpp_2m'", "accepted: euler, heun, midpoint"]
    ),
    case("flow-t-distribution", "flow", ["--config.flow.t_distribution=beta"], ["'beta'", "uniform, logit_normal"]),
    case(
        "flow-ch-mult-too-deep",
        "flow",
        ["--config.dataset=npz:{tmp}/good.npz", "--config.model.ch_mult=(1,2,2,2,2)"],
        ["ch_mult=(1, 2, 2, 2, 2)", "8x8"],
    ),
    case(
        "edm-num-classes-not-the-datasets",
        "edm",
        ["--config.dataset=npz:{tmp}/three_labels.npz", "--config.model.num_classes=10"],
        ["config.model.num_classes=10 does not match", "which has 3 classes"],
    ),
    case("edm-sample-no-run", "edm", ["--mode=sample"], ["holds no trained run", "config.json is missing"]),
    # --mode=sample: a workdir that holds no run, an override of another key than config.sample's
    case("ddpm-sample-no-run", "ddpm", ["--mode=sample"], ["holds no trained run", "config.json is missing"]),
    case(
        "ddpm-sample-other-override",
        "ddpm",
        ["--mode=sample", "--config.num_steps=3"],
        ["--mode=sample", "--config.num_steps=3 is not accepted", "--config.sample.KEY=VALUE"],
    ),
    # VQ-VAE, DiT and latent diffusion (#32): choices, shapes a network cannot read, an autoencoder that is not there
    case("vqvae-codebook", "vqvae", ["--config.vq.codebook=kmeans"], ["'kmeans'", "accepted: ema, loss"]),
    case(
        "vqvae-levels-beyond-the-images",
        "vqvae",
        ["--config.dataset=npz:{tmp}/good.npz", "--config.model.num_levels=4"],
        ["config.model.num_levels=4 halves the 8x8 images to a non-integer grid", "accepted"],
    ),
    case("ddpm-backbone", "ddpm", ["--config.model.backbone=vit"], ["'vit'", "accepted: unet, dit"]),
    case(
        "edm-dit-patch-not-dividing",
        "edm",
        ["--config.dataset=npz:{tmp}/good.npz", "--config.model.backbone=dit", "--config.model.patch_size=3"],
        ["config.model.patch_size=3 does not divide the 8x8 images", "accepted: a common divisor of 8 and 8"],
    ),
    case(
        "flow-dit-heads-not-dividing",
        "flow",
        ["--config.model.backbone=dit", "--config.model.num_heads=3"],
        ["config.model.hidden=64 must be a multiple of 4 and of config.model.num_heads=3"],
    ),
    case(
        "edm-latent-with-flips",
        "edm",
        ["--config.latent.autoencoder={tmp}/vq", "--config.random_flip=True"],
        ["config.random_flip=True flips images", "accepted: config.random_flip=False"],
    ),
    case(
        "flow-latent-autoencoder-missing",
        "flow",
        ["--config.latent.autoencoder={tmp}/no_vqvae_here"],
        ["config.latent.autoencoder='{tmp}/no_vqvae_here'", "holds no trained run"],
    ),
    case("vae-loss", "vae", ["--config.loss=mse"], ["config.loss='mse'", "accepted: elbo, lecture"]),
    case("vae-likelihood", "vae", ["--config.likelihood=laplace"], ["'laplace'", "accepted: bernoulli, gaussian"]),
    case("gan-loss", "gan", ["--config.loss=wasserstein"], ["'wasserstein'", "minimax", "wgan-gp"]),
    case("gan-diffaugment", "gan", ["--config.diffaugment=colour"], ["'colour'", "color, translation, cutout"]),
    case("gan-reg-every-alone", "gan", ["--config.reg_every=16"], ["config.reg_every=16", "r1_gamma or"]),
    # the in-run evaluation's feature network: Inception needs its weights, named and readable, before any write
    case("vae-eval-features", "vae", ["--config.eval.features=clip"], ["'clip'", "accepted: classifier, inception"]),
    case(
        "gan-inception-without-weights",
        "gan",
        ["--config.eval.features=inception"],
        [
            "config.eval.features=inception needs config.eval.inception_weights=PATH",
            "pt_inception-2015-12-05",
            "nothing is downloaded",
            "config.eval.features=classifier",
        ],
    ),
    case(
        "ddpm-inception-weights-missing",
        "ddpm",
        ["--config.eval.features=inception", "--config.eval.inception_weights={tmp}/pt_inception.pth"],
        ["config.eval.inception_weights={tmp}/pt_inception.pth: no such file", "pt_inception-2015-12-05"],
    ),
    case(
        "autoencoder-inception-weights-a-folder",
        "autoencoder",
        ["--config.eval.features=inception", "--config.eval.inception_weights={tmp}/empty_dir"],
        ["config.eval.inception_weights={tmp}/empty_dir: not a regular file"],
    ),
    case(
        "vae-inception-weights-not-torch",
        "vae",
        ["--config.eval.features=inception", "--config.eval.inception_weights={tmp}/binary.txt"],
        ["inception weights '{tmp}/binary.txt': not a torch state dict of pytorch-fid's FIDInceptionV3"],
    ),
    case(
        "pca-inception-weights-not-torch",
        "pca",
        ["--config.eval.features=inception", "--config.eval.inception_weights={tmp}/binary.txt"],
        ["inception weights '{tmp}/binary.txt': not a torch state dict of pytorch-fid's FIDInceptionV3"],
    ),
    case("autoencoder-loss", "autoencoder", ["--config.loss=l1"], ["'l1'", "accepted: mse, bce"]),
    case("autoencoder-arch", "autoencoder", ["--config.model.arch=resnet"], ["'resnet'", "accepted: mlp, conv"]),
    case("word2vec-model", "word2vec", ["--config.model=glove"], ["'glove'", "accepted: sgns, cbow, skipgram_softmax"]),
    case("word2vec-loss", "word2vec", ["--config.loss=nce"], ["'nce'", "accepted: negative, hs"]),
    case(
        "word2vec-hs-with-full-softmax",
        "word2vec",
        ["--config.model=skipgram_softmax", "--config.loss=hs"],
        ["config.loss='hs'", "model='skipgram_softmax'", "accepted: loss 'hs' with sgns"],
    ),
    case(
        "word2vec-minn-above-maxn",
        "word2vec",
        ["--config.model=fasttext", "--config.minn=5", "--config.maxn=3"],
        ["config.minn=5", "config.maxn=3", "accepted: minn <= maxn"],
    ),
    case("ngram-smoothing", "ngram", ["--config.smoothing=witten_bell"], ["'witten_bell'", "kneser_ney, add_k"]),
    case("ngram-kn-discounts", "ngram", ["--config.kn_discounts=three"], ["'three'", "accepted: modified, one"]),
    case("ngram-kn-form", "ngram", ["--config.kn_form=katz"], ["'katz'", "accepted: interpolated, backoff"]),
    case("ngram-order-0", "ngram", ["--config.order=0"], ["config.order=0", "an integer >= 1"]),
    case(
        "ddpm-ch-mult-too-deep",
        "ddpm",
        ["--config.dataset=npz:{tmp}/good.npz", "--config.model.ch_mult=(1,2,2,2,2)"],
        ["ch_mult=(1, 2, 2, 2, 2)", "8x8"],
    ),
    # datasets: unknown names, npz files missing, empty, corrupt, of the wrong dtype or rank
    case(
        "ddpm-unknown-dataset",
        "ddpm",
        ["--config.dataset=no_such_dataset"],
        ["'no_such_dataset'", "accepted: 'digits', 'npz:PATH'"],
    ),
    case(
        "vae-npz-missing",
        "vae",
        ["--config.dataset=npz:{tmp}/missing.npz"],
        ["missing.npz", "no such file", NPZ_ACCEPTED],
    ),
    case(
        "gan-npz-without-x", "gan", ["--config.dataset=npz:{tmp}/no_x.npz"], ["no_x.npz", "no array 'x'", NPZ_ACCEPTED]
    ),
    case(
        "autoencoder-npz-corrupt",
        "autoencoder",
        ["--config.dataset=npz:{tmp}/corrupt.npz"],
        ["corrupt.npz", "not a readable .npz", NPZ_ACCEPTED],
    ),
    case("pca-npz-float", "pca", ["--config.dataset=npz:{tmp}/float.npz"], ["'x' has dtype float32", NPZ_ACCEPTED]),
    case("ddpm-npz-rank-2", "ddpm", ["--config.dataset=npz:{tmp}/rank2.npz"], ["'x' has shape (10, 64)", NPZ_ACCEPTED]),
    case(
        "vae-npz-rank-5",
        "vae",
        ["--config.dataset=npz:{tmp}/rank5.npz"],
        ["'x' has shape (10, 8, 8, 1, 1)", NPZ_ACCEPTED],
    ),
    case(
        "vae-conditional-unlabelled",
        "vae",
        ["--config.dataset=npz:{tmp}/good.npz", "--config.conditional=True"],
        ["config.conditional=True", "labelled"],
    ),
    case(
        "ddpm-conditional-unlabelled",
        "ddpm",
        ["--config.dataset=npz:{tmp}/good.npz", "--config.model.num_classes=10"],
        ["config.model.num_classes=10 needs labelled data", "good.npz", "has no labels"],
    ),
    case(
        "ddpm-num-classes-not-the-datasets",
        "ddpm",
        ["--config.dataset=npz:{tmp}/three_labels.npz", "--config.model.num_classes=10"],
        ["config.model.num_classes=10 does not match", "which has 3 classes", "accepted: 0 (unconditional) or 3"],
    ),
    # corpora: missing, empty, no word reaching min_count, unknown TFDS name
    case(
        "word2vec-corpus-missing",
        "word2vec",
        ["--config.corpus=text:{tmp}/missing.txt"],
        ["text:{tmp}/missing.txt", "no such file", "accepted: text:PATH"],
    ),
    case(
        "word2vec-corpus-empty",
        "word2vec",
        ["--config.corpus=text:{tmp}/empty.txt"],
        ["empty.txt", "holds no words", "accepted"],
    ),
    case(
        "cooccurrence-below-min-count",
        "cooccurrence",
        ["--config.corpus=text:{tmp}/rare.txt"],
        ["rare.txt", "min_count=5", "accepted: min_count <= 4"],
    ),
    case("ngram-unknown-corpus", "ngram", ["--config.corpus=no_such_corpus"], ["'no_such_corpus'", "'text:PATH'"]),
    # command line: stray argument, partial distributed flags, batch not divisible by the device count
    case(
        "gan-stray-argument",
        "gan",
        ["stray"],
        ["['stray']", "accepted: --workdir DIR, --config=FILE.py and --config.KEY=VALUE"],
    ),
    case(
        "autoencoder-partial-distributed",
        "autoencoder",
        ["--coordinator_address=localhost:1234"],
        ["coordinator_address='localhost:1234'", "num_processes=None", "go together"],
    ),
    case(
        "autoencoder-batch-vs-devices",
        "autoencoder",
        ["--config.dataset=npz:{tmp}/good.npz", "--config.batch_size=3"],
        ["config.batch_size=3", "divisible by the device count 2"],
        env=TWO_DEVICES,
    ),
    case(
        "word2vec-batch-vs-devices",
        "word2vec",
        ["--config.batch_size=1001"],
        ["config.batch_size=1001", "divisible by the device count 2"],
        env=TWO_DEVICES,
    ),
    # an unwritable workdir (a path under a regular file)
    *[
        case(
            f"{m}-unwritable-workdir",
            m,
            extra,
            ["a_regular_file/run", "not a writable directory", "--workdir"],
            workdir=UNDER_A_FILE,
        )
        for m, extra in (
            ("ddpm", ["--config.dataset=npz:{tmp}/good.npz"]),
            ("ngram", ["--config.corpus=text:{tmp}/rare.txt"]),
            ("word2vec", ["--config.num_tokens=5000"]),
            ("pca", ["--config.dataset=npz:{tmp}/good.npz"]),
        )
    ],
    # on an existing workdir holding a finished run: refused, every file unchanged
    case("ngram-existing-order-0", "ngram", ["--config.order=0"], ["config.order=0"], existing=True),
    case(
        "ngram-existing-empty-corpus",
        "ngram",
        ["--config.corpus=text:{tmp}/empty.txt"],
        ["holds no words"],
        existing=True,
    ),
    case("pca-existing-method", "pca", ["--config.method=qr"], ["'qr'", "accepted: exact, randomized"], existing=True),
    case(
        "pca-existing-other-fit",
        "pca",
        ["--config.num_components=3"],
        ["pca.npz holds a PCA fitted with other settings", "num_components"],
        existing=True,
    ),
    case("word2vec-existing-model", "word2vec", ["--config.model=glove"], ["'glove'"], existing=True),
    case(
        "word2vec-existing-other-window",
        "word2vec",
        ["--config.window=2"],
        ["config.window=2 differs from 5", "new --workdir"],
        existing=True,
    ),
]


def out_of_range(module, key, value, shown=None):
    """A value of the right type outside the key's declared range (or not finite): refused at the door."""
    return case(
        f"{module}-{key.replace('.', '-')}-{value}",
        module,
        [f"--config.{key}={value}"],
        [f"config.{key}={shown or value}", "is not accepted; accepted:"],
    )


# Values that pass a type check and would wreck the run (ascent, overflow, a NaN compiled into the step): every
# numeric key declares its range, finite numbers only, and is refused before anything is written.
RANGE_CASES = [
    out_of_range("gan", "min_lr_ratio", "-5", "-5.0"),
    out_of_range("vae", "min_lr_ratio", "1.5"),
    out_of_range("vae", "b1", "1.0"),
    out_of_range("autoencoder", "b2", "nan"),
    out_of_range("gan", "grad_clip", "nan"),
    out_of_range("vae", "learning_rate", "inf"),
    out_of_range("ddpm", "learning_rate", "-0.001"),
    out_of_range("word2vec", "learning_rate", "inf"),
    out_of_range("word2vec", "min_learning_rate", "-1.0"),
    out_of_range("ngram", "k", "inf"),
    out_of_range("ngram", "discount", "1.5"),
    out_of_range("cooccurrence", "ppmi_alpha", "inf"),
    out_of_range("cooccurrence", "embed_dim", "0"),
    out_of_range("ddpm", "seed", str(2**70)),
    out_of_range("vae", "seed", "-1"),
    out_of_range("pca", "seed", str(2**32)),
    out_of_range("word2vec", "seed", str(2**64)),
    out_of_range("ddpm", "model.dropout", "1.5"),
    out_of_range("ddpm", "sample.ddim_eta", "nan"),
    out_of_range("ddpm", "sample.guidance", "nan"),
    out_of_range("ddpm", "diffusion.num_timesteps", "0"),
    out_of_range("edm", "edm.sigma_data", "0"),
    out_of_range("edm", "sample.s_churn", "-1"),
    out_of_range("edm", "sample.steps", "0"),
    out_of_range("flow", "sample.shift", "0"),
    out_of_range("flow", "flow.t_std", "-1"),
    out_of_range("flow", "sample.guidance", "-2"),
    out_of_range("autoencoder", "ema_decay", "1.0"),
    out_of_range("gan", "weight_decay", "-1.0"),
    out_of_range("gan", "gp_weight", "nan"),
    out_of_range("gan", "d_learning_rate", "-1.0"),
    out_of_range("gan", "n_critic", "0"),
    out_of_range("gan", "r1_gamma", "-1", "-1.0"),
    out_of_range("gan", "r2_gamma", "nan"),
    out_of_range("gan", "reg_every", "0"),
    out_of_range("vqvae", "vq.decay", "1.0"),
    out_of_range("vqvae", "model.num_codes", "1"),
    out_of_range("edm", "latent.scale", "-1.0"),
    out_of_range("vae", "beta", "-1.0"),
    out_of_range("vae", "C", "0.0"),
    out_of_range("vae", "eval.iwae_k", "0"),
    out_of_range("autoencoder", "density.num_components", "0"),
    out_of_range("pca", "k", "0"),
    out_of_range("word2vec", "window", "0"),
    out_of_range("word2vec", "bucket", "0"),
    out_of_range("word2vec", "minn", "0"),
    out_of_range("ngram", "min_count", "0"),
    out_of_range("vae", "warmup_steps", "-1"),
    out_of_range("gan", "keep_checkpoints", "0"),
    out_of_range("ddpm", "log_every", "0"),
    out_of_range("autoencoder", "checkpoint_every", "0"),
    case(
        "vae-sweep-learning-rates-inf",
        "vae",
        ["--config.sweep.learning_rates=(0.001,inf)"],
        ["config.sweep.learning_rates=", "inf", "is not accepted; accepted: a tuple of finite numbers > 0"],
    ),
    case(
        "gan-sweep-seeds-negative",
        "gan",
        ["--config.sweep.seeds=(0,-1)"],
        ["config.sweep.seeds=(0, -1)", "is not accepted"],
    ),
    case(
        "vae-sweep-beta-nan",
        "vae",
        ["--config.sweep.beta=(1.0,nan)"],
        ["config.sweep.beta=", "nan", "is not accepted; accepted: a tuple of finite numbers >= 0"],
    ),
    case(
        "ddpm-steps-beyond-T",
        "ddpm",
        ["--config.sample.steps=2000"],
        ["config.sample.steps=2000 (ddim)", "num_timesteps=1000"],
    ),
]

# Data files the loader would accept but the models could not use, or that would crash it: one line naming the
# file and what is wrong, before anything is written.
DATA_FILE_CASES = [
    case("vae-npz-bytes-member", "vae", ["--config.dataset=npz:{tmp}/bytes.npz"], ["bytes.npz", "'x' has dtype |S"]),
    case("gan-npy-renamed", "gan", ["--config.dataset=npz:{tmp}/renamed.npz"], ["renamed.npz", ".npy file?"]),
    case(
        "autoencoder-npz-garbled-stream",
        "autoencoder",
        ["--config.dataset=npz:{tmp}/garbled.npz"],
        ["garbled.npz", "not a readable .npz"],
    ),
    case("pca-npz-truncated", "pca", ["--config.dataset=npz:{tmp}/truncated.npz"], ["truncated.npz", "not a readable"]),
    case("ddpm-npz-empty-file", "ddpm", ["--config.dataset=npz:{tmp}/zero_bytes.npz"], ["zero_bytes.npz", "readable"]),
    case("vae-npz-height-0", "vae", ["--config.dataset=npz:{tmp}/height0.npz"], ["'x' has shape (10, 0, 8)"]),
    case("gan-npz-empty-test", "gan", ["--config.dataset=npz:{tmp}/empty_test.npz"], ["'x_test' holds no image"]),
    case("autoencoder-npz-two-images", "autoencoder", ["--config.dataset=npz:{tmp}/two.npz"], ["'x' holds 2 image"]),
    case("ddpm-npz-one-image-and-test", "ddpm", ["--config.dataset=npz:{tmp}/one_and_test.npz"], ["'x' holds 1 image"]),
    case(
        "ddpm-unet-cannot-halve-width",
        "ddpm",
        ["--config.dataset=npz:{tmp}/wide.npz", "--config.model.ch_mult=(1,2,2,2)"],
        ["halves the 8x12 images 3 times", "at most 2 halvings"],
    ),
    case("vae-npz-huge-labels", "vae", ["--config.dataset=npz:{tmp}/huge_labels.npz"], ["[0, 2^31)", "2147483648"]),
    case("gan-npz-negative-labels", "gan", ["--config.dataset=npz:{tmp}/negative_labels.npz"], ["[0, 2^31)", "-1"]),
    case("pca-npz-test-shape", "pca", ["--config.dataset=npz:{tmp}/test_shape.npz"], ["'x_test' images (4, 4, 1)"]),
    case("vae-npz-four-channels", "vae", ["--config.dataset=npz:{tmp}/rgba.npz"], ["'x' has shape (10, 8, 8, 4)"]),
    case("ddpm-npz-is-a-directory", "ddpm", ["--config.dataset=npz:{tmp}"], ["not a regular file"]),
    *[
        case(f"{m}-corpus-utf16", m, ["--config.corpus=text:{tmp}/utf16.txt"], ["utf16.txt", "NUL bytes", "UTF-16"])
        for m in ("word2vec", "ngram", "cooccurrence")
    ],
    case("word2vec-corpus-binary", "word2vec", ["--config.corpus=text:{tmp}/binary.txt"], ["binary.txt", "NUL bytes"]),
    case(
        "ngram-corpus-latin1-noise",
        "ngram",
        ["--config.corpus=text:{tmp}/noise.txt"],
        ["noise.txt", "is not UTF-8 text", "byte offset 0"],
    ),
    case(
        "cooccurrence-corpus-empty-directory",
        "cooccurrence",
        ["--config.corpus=text:{tmp}/empty_dir"],
        ["empty_dir", "holds no *.txt or *.txt.gz file"],
    ),
    case("ngram-corpus-glob-matches-nothing", "ngram", ["--config.corpus=text:{tmp}/none*.txt"], ["matches no file"]),
    case(
        "word2vec-corpus-broken-gzip",
        "word2vec",
        ["--config.corpus=text:{tmp}/broken.txt.gz"],
        ["broken.txt.gz", "cannot be read (BadGzipFile)"],
    ),
    case("cooccurrence-tokenizer", "cooccurrence", ["--config.tokenizer=bpe"], ["'bpe'", "words, whitespace, chars"]),
    case("ngram-lowercase-not-bool", "ngram", ["--config.lowercase=3"], ["lowercase"]),
]

# Workdirs and data dirs that cannot hold a run.
PLACE_CASES = [
    *[case(f"{m}-empty-workdir", m, [], ["--workdir=''", "names no directory"], workdir="") for m in ("vae", "pca")],
    case("ngram-empty-workdir", "ngram", ["--config.corpus=text:{tmp}/rare.txt"], ["names no directory"], workdir=""),
    *[
        case(
            f"{m}-data-dir-is-a-file",
            m,
            [*extra, "--config.data_dir={tmp}/a_regular_file"],
            ["config.data_dir=", "a_regular_file", "is not a directory"],
        )
        for m, extra in (
            ("vae", ["--config.dataset=npz:{tmp}/good.npz"]),
            ("pca", ["--config.dataset=npz:{tmp}/good.npz"]),
            ("word2vec", ["--config.num_tokens=5000"]),
            ("cooccurrence", []),
        )
    ],
    *[
        case(
            f"{m}-unwritable-workdir",
            m,
            extra,
            ["a_regular_file/run", "not a writable directory", "--workdir"],
            workdir=UNDER_A_FILE,
        )
        for m, extra in (("cooccurrence", []), ("vae", []), ("gan", []), ("autoencoder", []))
    ],
]

CLI_CASES += RANGE_CASES + DATA_FILE_CASES + PLACE_CASES

# ----------------------------------------------------------------------------- running the cases


def _write_data_files(tmp: pathlib.Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp / "good.npz", x=rng.integers(0, 256, (40, 8, 8), dtype=np.uint8))
    np.savez(tmp / "no_x.npz", images=np.zeros((4, 8, 8), np.uint8))
    (tmp / "corrupt.npz").write_bytes(b"PK\x03\x04 not a zip archive at all " * 4)
    np.savez(tmp / "float.npz", x=np.zeros((10, 8, 8), np.float32))
    np.savez(tmp / "rank2.npz", x=np.zeros((10, 64), np.uint8))
    np.savez(tmp / "rank5.npz", x=np.zeros((10, 8, 8, 1, 1), np.uint8))
    (tmp / "empty.txt").write_text("")
    (tmp / "rare.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 2)
    (tmp / "a_regular_file").write_text("not a directory\n")
    x = rng.integers(0, 256, (10, 8, 8), dtype=np.uint8)
    np.savez(tmp / "bytes.npz", x=np.array([b"raw image bytes"] * 10))
    np.save(tmp / "renamed.npy", x)
    os.replace(tmp / "renamed.npy", tmp / "renamed.npz")
    np.savez_compressed(tmp / "garbled.npz", x=rng.integers(0, 4, (200, 8, 8), dtype=np.uint8))
    blob = bytearray((tmp / "garbled.npz").read_bytes())
    blob[len(blob) // 3 : len(blob) // 3 + 64] = bytes(64)  # the deflate stream, not the zip directory
    (tmp / "garbled.npz").write_bytes(bytes(blob))
    (tmp / "truncated.npz").write_bytes((tmp / "good.npz").read_bytes()[:500])
    (tmp / "zero_bytes.npz").write_bytes(b"")
    np.savez(tmp / "height0.npz", x=np.zeros((10, 0, 8), np.uint8))
    np.savez(tmp / "empty_test.npz", x=x, x_test=np.zeros((0, 8, 8), np.uint8))
    np.savez(tmp / "two.npz", x=x[:2])
    np.savez(tmp / "one_and_test.npz", x=x[:1], x_test=x[:2])
    np.savez(tmp / "wide.npz", x=rng.integers(0, 256, (10, 8, 12), dtype=np.uint8))
    np.savez(tmp / "huge_labels.npz", x=x, y=np.array([0] * 9 + [2**31], np.int64))
    np.savez(tmp / "negative_labels.npz", x=x, y=np.array([0] * 9 + [-1], np.int64))
    np.savez(tmp / "test_shape.npz", x=x, x_test=np.zeros((3, 4, 4), np.uint8))
    np.savez(tmp / "rgba.npz", x=np.zeros((10, 8, 8, 4), np.uint8))
    (tmp / "utf16.txt").write_bytes(("the king and the queen\n" * 50).encode("utf-16"))
    (tmp / "binary.txt").write_bytes(bytes(range(256)) * 8)
    (tmp / "empty_dir").mkdir()
    (tmp / "broken.txt.gz").write_bytes(b"not a gzip stream")
    (tmp / "noise.txt").write_bytes(bytes(rng.integers(128, 256, 4000, dtype=np.uint8)))
    np.savez(tmp / "three_labels.npz", x=np.zeros((40, 8, 8), np.uint8), y=np.arange(40) % 3)


outcomes = outcomes_fixture("bad_input", _write_data_files, SETUPS)


@pytest.mark.parametrize("c", CLI_CASES)
def test_cli_refuses_bad_input(c: Case, outcomes):
    tmp = outcomes["_tmp"]
    check_refused(c, outcomes[c.id], tmp)
    assert pathlib.Path(tmp, "a_regular_file").read_text() == "not a directory\n"


def test_a_forked_case_is_what_its_own_process_gives(tmp_path):
    """The table's cases are forked from tests/cli_forkserver.py: the same cases as their own `python -m`
    processes give the same exit codes, stdout and stderr."""
    _write_data_files(tmp_path)
    ids = ("ddpm-unknown-key", "pca-ks-not-ints", "word2vec-corpus-missing", "word2vec-corpus-binary")
    cases = [p.values[0] for p in CLI_CASES if p.values[0].id in ids]
    forks = ForkServer()
    for c in cases:
        args, workdir, tmp = [fill(a, str(tmp_path)) for a in c.args], str(tmp_path / "run"), str(tmp_path)
        forked = forks.run(c.module, cli_args(workdir, args, tmp))
        assert forked[0] == 2 and run_cli(c.module, workdir, args, tmp) == forked
    forks.close()
    assert len(cases) == len(ids)


def test_table_covers_every_training_module():
    modules = {p.values[0].module for p in CLI_CASES}
    assert modules == set(registry.NAMES)
    assert len(CLI_CASES) >= 100 and len({p.values[0].id for p in CLI_CASES}) == len(CLI_CASES)


# ----------------------------------------------------------------------------- the zoo, in process


@pytest.fixture(scope="module")
def tiny_vectors():
    from zoo.text import Vocab

    vocab = Vocab(["king", "queen", "man", "woman"], np.array([4, 3, 2, 1]))
    return np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32), vocab


def test_analogy_with_an_unknown_word_names_it(tiny_vectors):
    from zoo import word_vectors as wv
    from zoo.text import UnknownWordError

    W, vocab = tiny_vectors
    with pytest.raises(UnknownWordError, match="unknown word 'princess'") as e:
        wv.analogy(W, vocab, "man", "king", "princess")
    assert e.value.word == "princess" and "4 words" in str(e.value)


def test_similarity_query_with_an_unknown_word_names_it(tiny_vectors):
    from zoo import word_vectors as wv
    from zoo.text import UnknownWordError

    W, vocab = tiny_vectors
    with pytest.raises(UnknownWordError, match="unknown word 'zebra'"):
        wv.most_similar(wv.normalize(W), vocab, "zebra")
    with pytest.raises(UnknownWordError, match="unknown word 'prince'"):
        wv.most_similar(wv.normalize(W), vocab, "king", exclude=["prince"])
    with pytest.raises(ValueError, match=r"vector of shape \[3\], got shape \(5,\)"):
        wv.most_similar(wv.normalize(W), vocab, np.ones(5))


def test_analogy_and_similarity_check_their_other_arguments(tiny_vectors):
    from zoo import word_vectors as wv

    W, vocab = tiny_vectors
    with pytest.raises(ValueError, match="method='3cosavg' not supported; accepted"):
        wv.analogy(W, vocab, "man", "king", "woman", method="3cosavg")
    with pytest.raises(ValueError, match="topn must be >= 1, got 0"):
        wv.analogy(W, vocab, "man", "king", "woman", topn=0)
    with pytest.raises(ValueError, match=r"W has 3 rows but the vocabulary has 4 words"):
        wv.analogy(W[:3], vocab, "man", "king", "woman")


def _init(module, *args):
    import jax

    return module.init(jax.random.key(0), *args)


@pytest.mark.parametrize(
    "name",
    [
        "ddpm.UNet",
        "autoencoder.ConvEncoder",
        "autoencoder.MLPEncoder",
        "gan.DCDiscriminator",
        "gan.MLPDiscriminator",
        "vae.VAE",
    ],
)
def test_image_of_the_wrong_rank_into_a_zoo_network_names_the_shape(name):
    import jax.numpy as jnp

    from zoo import autoencoder as ae, ddpm, gan, vae

    image = jnp.zeros((8, 8, 1))  # one image without the batch axis
    flat = jnp.zeros((64,))
    calls = {
        "ddpm.UNet": (
            lambda: _init(ddpm.UNet(ch=8, ch_mult=(1, 2), num_res_blocks=1), image, jnp.zeros((1,), jnp.int32)),
            r"\(8, 8, 1\)",
        ),
        "autoencoder.ConvEncoder": (lambda: _init(ae.ConvEncoder(4), image), r"\(8, 8, 1\)"),
        "autoencoder.MLPEncoder": (lambda: _init(ae.MLPEncoder(4), flat), r"\(64,\)"),
        "gan.DCDiscriminator": (lambda: _init(gan.DCDiscriminator(), image), r"\(8, 8, 1\)"),
        "gan.MLPDiscriminator": (lambda: _init(gan.MLPDiscriminator(), flat), r"\(64,\)"),
        "vae.VAE": (lambda: _init(vae.VAE((8, 8, 1), latent_dim=2), flat), r"\(64,\)"),
    }
    call, shape = calls[name]
    with pytest.raises(ValueError, match=rf"{name.split('.')[1]}: x must be .*got shape {shape}"):
        call()


def test_zoo_names_unknown_choices_and_bad_sizes():
    import jax
    import jax.numpy as jnp

    from zoo import ddpm, ngram, pca, vae

    with pytest.raises(ValueError, match="unknown noise schedule 'quadratic'; accepted: 'linear', 'cosine'"):
        ddpm.schedule_from_name("quadratic", 10)
    with pytest.raises(ValueError, match="num_steps must be a positive integer, got 0"):
        ddpm.schedule_from_name("linear", 0)
    with pytest.raises(ValueError, match="likelihood='laplace' not supported; accepted"):
        vae.log_likelihood(jnp.zeros((2, 4)), jnp.zeros((2, 4)), "laplace")
    with pytest.raises(ValueError, match="count_ngrams: order must be >= 1, got 0"):
        ngram.count_ngrams([np.array([2, 3])], 0)
    p = pca.pca_fit(jax.random.normal(jax.random.key(0), (6, 4)), 2)
    with pytest.raises(ValueError, match=r"x must have last dimension 4, got shape \(2, 5\)"):
        pca.pca_transform(p, jnp.zeros((2, 5)))


# ----------------------------------------------------------------------------- the declarations behind the table

TRAIN_MODULES = registry.NAMES


@pytest.mark.parametrize("name", TRAIN_MODULES)
def test_every_numeric_key_declares_its_range(name):
    """The root of the range cases: each int or float key (or tuple of them) says what it accepts, finite numbers
    only, and the seeds stop at 2^32 - 1, which jax.random.key, NumPy and grain all take."""
    import importlib

    module = importlib.import_module(f"train.{name}")
    for key_name, key in module.SCHEMA.keys.items():
        kind = key.element if key.kind is tuple else key.kind
        if kind in (int, float) and not key.choices:
            assert key.range, f"train.{name}: config.{key_name} declares no range"
            for bad in (float("nan"), float("inf"), -float("inf")):
                with pytest.raises(ValueError, match="is not accepted"):
                    key.check(key_name, (bad,) if key.kind is tuple else bad)
    for key_name in {"seed", "sweep.seeds"} & set(module.SCHEMA.keys):
        key = module.SCHEMA.keys[key_name]
        key.check(key_name, (2**32 - 1,) if key.kind is tuple else 2**32 - 1)
        with pytest.raises(ValueError, match=r"in \[0, 4294967295\]"):
            key.check(key_name, (2**32,) if key.kind is tuple else 2**32)
