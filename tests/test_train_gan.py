"""train.gan end to end on tiny configs, and its alternating step for every loss."""

import functools
import itertools
import math
import os
import sys

import jax
import numpy as np
import pytest

from tests.configs import resumed_records, smoke_config, straight_records
from tests.test_train_autoencoder import tiny_npz
from train import gan as train_gan
from train.core import config as config_lib, loop, parallel
from train.core.errors import ConfigError
from train.data import images as data

EVAL_KEYS = ("eval/fd", "eval/precision", "eval/recall", "eval/ref_fd", "eval/test_minimax_value")


TRAIN = train_gan  # the module conftest's straight_run runs
tiny_config = functools.partial(smoke_config, train_gan)


def test_workdir_layout(straight_run):
    workdir, figures = straight_run
    logged, ev = straight_records(workdir, EVAL_KEYS)
    for r in logged:
        # non-saturating: D's loss is -V(D, G) of the same batch
        assert r["d_loss"] == pytest.approx(-r["minimax_value"], rel=1e-5)
        assert r["loss"] == pytest.approx(r["d_loss"] + r["g_loss"], rel=1e-5)
    assert ev["eval/test_minimax_value"] < 0  # log D + log(1 - D) <= 0
    assert sorted(os.listdir(os.path.join(workdir, "samples"))) == ["interpolation_000006.png", "samples_000006.png"]


def test_resume_matches_uninterrupted_run(straight_run, data_dir, tmp_path):
    resumed, straight = resumed_records(train_gan, data_dir, str(tmp_path), straight_run[0])
    assert [(r["d_loss"], r["g_loss"]) for r in resumed] == [(r["d_loss"], r["g_loss"]) for r in straight]


@pytest.mark.parametrize("loss", train_gan.LOSSES)
def test_one_step_updates_both_networks_and_their_ema(data_dir, loss):
    c = tiny_config(data_dir, loss=loss)
    ds = data.load_images("digits", str(data_dir))
    task = train_gan.make_task(c, ds)
    mesh = parallel.data_mesh()
    state = loop.init_state(task, c, mesh)
    before = jax.device_get(state)
    step = loop.compile_step(task, c, mesh)
    state, metrics = step(state, parallel.shard_batch(next(data.batches(ds.train, 8, 0)), mesh))[:2]
    after = jax.device_get(state)
    assert int(after.step) == 1 and all(np.isfinite(float(v)) for v in metrics.values())
    for net in ("generator", "discriminator"):
        moved = jax.tree.leaves(jax.tree.map(lambda a, b: np.abs(a - b).max(), before.params[net], after.params[net]))
        assert max(moved) > 0, net
        # EMA moves by (1 - decay) of the step
        ema = jax.tree.map(
            lambda e, p: c.ema_decay * e + (1 - c.ema_decay) * p, before.ema_params[net], after.params[net]
        )
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), ema, after.ema_params[net])


def test_learning_rate_sweep_replicas_equal_single_runs(data_dir):
    """The GAN's own step applies a learning-rate sweep's per-replica scale to both networks' updates."""
    lrs = (2e-4, 1e-3)
    c = tiny_config(data_dir)
    c.sweep.learning_rates = lrs
    ds, mesh = data.load_images("digits", str(data_dir)), parallel.data_mesh()
    replicas = config_lib.sweep_replicas(c)
    batches = list(itertools.islice(data.batches(ds.train, c.batch_size, c.seed), 2))
    task = train_gan.make_task(c, ds)
    state, step = loop.init_state(task, c, mesh, replicas), loop.compile_step(task, c, mesh, replicas)
    for b in batches:
        state = step(state, parallel.shard_batch(jax.tree.map(lambda x: np.stack([x, x]), b), mesh, axis=1))[0]
    for i, lr in enumerate(lrs):
        single = tiny_config(data_dir, learning_rate=lr)
        task = train_gan.make_task(single, ds)
        one, one_step = loop.init_state(task, single, mesh), loop.compile_step(task, single, mesh)
        for b in batches:
            one = one_step(one, parallel.shard_batch(b, mesh))[0]
        # Adam's update is linear in the learning rate: lr * u vs (lr0 * u) * (lr / lr0), equal to float32 rounding
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-7),
            jax.device_get(state.params),
            jax.device_get(one.params),
        )


def test_npz_dcgan_wgan_gp(data_dir, tmp_path):
    dataset = tiny_npz(tmp_path / "mine.npz")
    figures = train_gan.run(
        tiny_config(
            data_dir, num_steps=2, dataset=dataset, loss="wgan-gp", d_learning_rate=1e-3, **{"model.arch": "dcgan"}
        ),
        str(tmp_path / "run"),
    )
    for k in ("loss", "d_loss", "g_loss", "eval/fd"):
        assert np.isfinite(figures[k]), k


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"loss": "lsgan"}, "config.loss='lsgan' is not accepted; accepted: minimax, nonsaturating, hinge, wgan-gp"),
        ({"model.arch": "stylegan"}, "accepted: mlp, dcgan"),
        ({"gp_weight": -1.0}, "config.gp_weight=-1.0 is not accepted; accepted: a finite number >= 0"),
        ({"model.hidden": ()}, "config.model.hidden=() is not accepted; accepted: a non-empty tuple of integers >= 1"),
    ],
)
def test_bad_config_raises_before_any_write(data_dir, tmp_path, overrides, match):
    with pytest.raises(ConfigError, match=match.replace("(", r"\(").replace(")", r"\)")):
        train_gan.run(tiny_config(data_dir, **overrides), str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()


def test_in_run_evaluation_in_inception_space(data_dir, tmp_path, monkeypatch):
    """eval.features=inception (a stand-in network, tests/test_evaluate.py's): the run's evaluation reports FD,
    KID, precision/recall and the Inception Score in its space, with their real-vs-real floor, and no classifier
    figure."""
    from tests.test_evaluate import stand_in_inception

    monkeypatch.setitem(sys.modules, "train.evaluation.inception_weights", stand_in_inception([], dims=32)[0])
    (tmp_path / "w.pth").write_bytes(b"stand-in weights")
    c = tiny_config(data_dir, num_steps=2)
    c.eval.features, c.eval.inception_weights = "inception", str(tmp_path / "w.pth")
    figures = train_gan.run(c, str(tmp_path / "run"))
    for k in ("fd", "kid", "precision", "recall", "inception_score"):
        assert math.isfinite(figures[f"eval/{k}"]) and math.isfinite(figures[f"eval/ref_{k}"]), k
    assert figures["eval/inception_score"] >= 1 and not any("classifier" in k for k in figures), figures
