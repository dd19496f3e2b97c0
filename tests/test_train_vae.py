"""train.vae end to end on tiny configs (a few steps, small nets, a 5-step feature classifier)."""

import dataclasses
import functools
import json
import os

import numpy as np
import pytest
from PIL import Image

from tests.configs import resumed_records, smoke_config, straight_records, train_losses
from tests.test_train_autoencoder import tiny_npz
from train import vae as train_vae
from train.core import loop
from train.core.errors import ConfigError
from train.data import images as data

EVAL_KEYS = (
    "eval/test_elbo_nats",
    "eval/test_iwae4_nats",
    "eval/test_kl_nats",
    "eval/fd",
    "eval/precision",
    "eval/recall",
)


TRAIN = train_vae  # the module conftest's straight_run runs
tiny_config = functools.partial(smoke_config, train_vae)


def test_workdir_layout(straight_run):
    workdir, figures = straight_run
    logged, ev = straight_records(workdir, EVAL_KEYS)
    assert all(r["elbo"] < 0 and r["kl"] >= 0 for r in logged)  # Bernoulli: log p(x|z) <= 0
    assert ev["eval/test_elbo_nats"] < 0
    # IWAE (k=4) >= the one-sample ELBO estimate, on average over the same 64 test images
    assert ev["eval/test_iwae4_nats"] > ev["eval/test_elbo_nats"]
    assert sorted(os.listdir(os.path.join(workdir, "samples"))) == [
        "interpolation_000006.png",
        "latent_000006.png",
        "reconstructions_000006.png",
        "samples_000006.png",
    ]
    strip = np.asarray(Image.open(os.path.join(workdir, "samples", "interpolation_000006.png")))
    # 2 rows of 3 decoded points between the two originals: 5 tiles of 8 px + 6 px padding wide, 2 tiles high
    assert strip.shape[1] / strip.shape[0] == pytest.approx((5 * 9 + 1) / (2 * 9 + 1))


def test_resume_matches_uninterrupted_run(straight_run, data_dir, tmp_path):
    resumed, straight = resumed_records(train_vae, data_dir, str(tmp_path), straight_run[0])
    assert [r["kl"] for r in resumed] == [r["kl"] for r in straight]


def test_npz_conditional_conv_lecture_loss(data_dir, tmp_path):
    dataset = tiny_npz(tmp_path / "mine.npz")
    figures = train_vae.run(
        tiny_config(
            data_dir, num_steps=2, dataset=dataset, loss="lecture", conditional=True, beta=0.5, **{"model.arch": "conv"}
        ),
        str(tmp_path / "run"),
    )
    for k in ("loss", "recon", "eval/test_elbo_nats", "eval/fd"):
        assert np.isfinite(figures[k]), k


def test_conditional_needs_labels(data_dir, tmp_path):
    path = tmp_path / "unlabelled.npz"
    np.savez(path, x=np.zeros((60, 8, 8), np.uint8))
    with pytest.raises(data.DataError, match="conditional=True needs labelled data"):
        train_vae.run(tiny_config(data_dir, dataset=f"npz:{path}", conditional=True), str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()


def _train_without_evaluation(c, workdir):
    """train.vae.run, minus the final evaluation (the sweep's subject is the training step)."""
    train_vae.SCHEMA.check(c)
    ds = data.load_images(c.dataset, c.data_dir)
    return loop.train(
        c, workdir, dataclasses.replace(train_vae.make_task(c, ds.spec), batches=data.training_batches(c, ds))
    )


def test_beta_sweep_replicas_equal_single_runs(data_dir, tmp_path):
    """--config.sweep.beta='(0.0,4.0)': two replicas in one vmapped program; replica i equals the single run
    with beta = betas[i] (same seed), and its config.json says so."""
    betas = (0.0, 4.0)
    c = tiny_config(data_dir, num_steps=4, log_every=1, checkpoint_every=4)
    c.sweep.beta = betas
    _train_without_evaluation(c, str(tmp_path / "sweep"))
    for i, beta in enumerate(betas):
        single = str(tmp_path / f"single{i}")
        _train_without_evaluation(
            tiny_config(data_dir, num_steps=4, log_every=1, checkpoint_every=4, beta=beta), single
        )
        replica = str(tmp_path / "sweep" / f"replica_{i}")
        with open(os.path.join(replica, "config.json")) as f:
            written = json.load(f)
        assert (written["beta"], written["sweep"]["beta"]) == (beta, [])
        # float32 either way; beta a traced replica value vs a constant: equal up to the last bits
        np.testing.assert_allclose(list(train_losses(replica).values()), list(train_losses(single).values()), rtol=1e-5)
    assert train_losses(str(tmp_path / "sweep" / "replica_0")) != train_losses(str(tmp_path / "sweep" / "replica_1"))


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"loss": "mse"}, "config.loss='mse' is not accepted; accepted: elbo, lecture"),
        ({"likelihood": "poisson"}, "accepted: bernoulli, gaussian"),
        ({"beta": -1.0}, "config.beta=-1.0 is not accepted; accepted: a finite number >= 0"),
        ({"C": 0.0}, "config.C=0.0 is not accepted; accepted: a finite number > 0"),
        ({"eval.iwae_k": 0}, "config.eval.iwae_k=0 is not accepted; accepted: an integer >= 1"),
        (
            {"sweep.beta": (0.5, 1.0), "sweep.seeds": (0, 1, 2)},
            "config.sweep.beta=(0.5, 1.0) and config.sweep.seeds=(0, 1, 2) must have the same length",
        ),
        (
            {"sweep.beta": (1.0, -1.0)},
            "config.sweep.beta=(1.0, -1.0) is not accepted; accepted: a tuple of finite numbers >= 0",
        ),
        (
            {"sweep.gamma": (1.0, 2.0)},
            "config.sweep.gamma sweeps no key this module reads per replica; accepted: "
            "config.sweep.seeds, config.sweep.learning_rates, config.sweep.beta",
        ),
        (
            {"sweep.C": (10.0, 50.0)},
            "config.sweep.C sweeps no key this module reads per replica; accepted: "
            "config.sweep.seeds, config.sweep.learning_rates, config.sweep.beta",
        ),
    ],
)
def test_bad_config_raises_before_any_write(data_dir, tmp_path, overrides, match):
    with pytest.raises(ConfigError, match=match.replace("(", r"\(").replace(")", r"\)")):
        train_vae.run(tiny_config(data_dir, **overrides), str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()
