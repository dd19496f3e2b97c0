"""train.autoencoder end to end on tiny configs (a few steps, small nets, a 5-step feature classifier)."""

import functools
import json
import os

import numpy as np
import pytest
from PIL import Image

from tests.configs import resumed_records, smoke_config, straight_records
from train import autoencoder as train_ae
from train.core.errors import ConfigError

EVAL_KEYS = ("eval/test_loss", "eval/test_mse", "eval/fd", "eval/precision", "eval/recall", "eval/ref_fd")


TRAIN = train_ae  # the module conftest's straight_run runs
tiny_config = functools.partial(smoke_config, train_ae)


def tiny_npz(path, n=40, n_test=10, classes=3):
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x=rng.integers(0, 256, (n, 8, 8), dtype=np.uint8),
        y=rng.integers(0, classes, n),
        x_test=rng.integers(0, 256, (n_test, 8, 8), dtype=np.uint8),
        y_test=rng.integers(0, classes, n_test),
    )
    return f"npz:{path}"


def test_workdir_layout(straight_run):
    workdir, figures = straight_run
    _, ev = straight_records(workdir, EVAL_KEYS)
    for k in EVAL_KEYS:
        assert figures[k] == pytest.approx(ev[k])
    assert 0 <= ev["eval/precision"] <= 1 and ev["eval/test_mse"] < 1
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["loss"] == "bce"
    assert sorted(os.listdir(os.path.join(workdir, "samples"))) == [
        "latent_000006.png",
        "reconstructions_000006.png",
        "samples_000006.png",
    ]
    scatter = np.asarray(Image.open(os.path.join(workdir, "samples", "latent_000006.png")))
    assert scatter.ndim == 3 and scatter.shape[2] == 3 and scatter.std() > 0
    grid = np.asarray(Image.open(os.path.join(workdir, "samples", "reconstructions_000006.png")))
    assert grid.ndim == 2 and max(grid.shape) >= 256


def test_resume_matches_uninterrupted_run(straight_run, data_dir, tmp_path):
    resumed_records(train_ae, data_dir, str(tmp_path), straight_run[0])


def test_npz_conv_mse_gaussian(data_dir, tmp_path):
    dataset = tiny_npz(tmp_path / "mine.npz")
    figures = train_ae.run(
        tiny_config(
            data_dir, num_steps=2, dataset=dataset, loss="mse", **{"model.arch": "conv", "density.kind": "gaussian"}
        ),
        str(tmp_path / "run"),
    )
    assert np.isfinite(figures["loss"]) and np.isfinite(figures["eval/test_mse"]) and np.isfinite(figures["eval/fd"])


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"loss": "l1"}, "config.loss='l1' is not accepted; accepted: mse, bce"),
        ({"model.arch": "resnet"}, "config.model.arch='resnet'"),
        ({"density.kind": "flow"}, "accepted: gaussian, gmm"),
        ({"model.latent_dim": 0}, "config.model.latent_dim=0 is not accepted; accepted: an integer >= 1"),
        ({"eval.num_samples": 2}, "eval.num_samples=2 must be 0"),
        ({"density.num_components": 100}, "density.num_components=100"),
    ],
)
def test_bad_config_raises_before_any_write(data_dir, tmp_path, overrides, match):
    with pytest.raises(ConfigError, match=match.replace("(", r"\(").replace(")", r"\)")):
        train_ae.run(tiny_config(data_dir, **overrides), str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()
