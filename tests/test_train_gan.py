"""train.gan end to end on tiny configs, and its alternating step for every loss."""

import functools
import itertools
import math
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from tests.configs import read_metrics, resumed_records, smoke_config, straight_records
from tests.test_train_autoencoder import tiny_npz
from train import gan as train_gan
from train.core import checkpoint, config as config_lib, loop, parallel
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
        ({"n_critic": 0}, "config.n_critic=0 is not accepted; accepted: an integer >= 1"),
        ({"r1_gamma": -1.0}, "config.r1_gamma=-1.0 is not accepted; accepted: a finite number >= 0"),
        ({"diffaugment": "colour"}, "config.diffaugment='colour' is not accepted; accepted: a comma-separated subset"),
        ({"reg_every": 4}, "config.reg_every=4 spaces out R1/R2, but both are off"),
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


STABILISED = {
    "n_critic": 3,
    "d_spectral_norm": True,
    "r1_gamma": 1.0,
    "reg_every": 2,
    "diffaugment": "color,translation,cutout",
    "eval.num_samples": 0,
}


def test_stabilised_steps_follow_the_step_counter(data_dir):
    """n_critic 3: D and spectral norm's u vectors move every step, G at steps 3, 6, ... only (state.step % 3 == 2);
    lazy R1 every 2nd step (state.step % 2 == 0), weighted by 2, and 0 between."""
    c = tiny_config(data_dir, **STABILISED)
    ds = data.load_images("digits", str(data_dir))
    task, mesh = train_gan.make_task(c, ds), parallel.data_mesh()
    state, step = loop.init_state(task, c, mesh), loop.compile_step(task, c, mesh)
    batches = data.batches(ds.train, c.batch_size, 0)
    moved = lambda a, b: max(jax.tree.leaves(jax.tree.map(lambda x, y: float(np.abs(x - y).max()), a, b)))
    for s in range(6):
        before = jax.device_get(state)
        state, metrics, finite = step(state, parallel.shard_batch(next(batches), mesh))
        after, metrics = jax.device_get(state), jax.device_get(metrics)
        assert finite and int(after.step) == s + 1
        assert moved(before.params["discriminator"], after.params["discriminator"]) > 0, s
        assert moved(before.aux["spectral_u"], after.aux["spectral_u"]) > 0, s
        g_moved = moved(before.params["generator"], after.params["generator"])
        assert (g_moved > 0) == (s % 3 == 2) and (metrics["g_grad_norm"] > 0) == (s % 3 == 2), (s, g_moved)
        assert (metrics["d_penalty"] > 0) == (s % 2 == 0), (s, metrics["d_penalty"])


# A run killed (SIGKILL, nothing saved on the way out) right after logging step `kill_after`.
KILL_SCRIPT = """
import os, signal, sys
import jax
jax.config.update("jax_threefry_partitionable", False)  # as tests/conftest.py: the in-process runs' draws
jax.config.update("jax_num_cpu_devices", 1)
from tests.test_train_gan import STABILISED, tiny_config
from train import gan as train_gan
from train.core import loop
log, kill_after = loop._Steps.log, int(sys.argv[3])
def log_then_die(self, s):
    log(self, s)
    if s == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)
loop._Steps.log = log_then_die
train_gan.run(tiny_config(sys.argv[2], num_steps=12, log_every=1, checkpoint_every=4, **STABILISED), sys.argv[1])
"""


def _final_state(workdir, c, ds):
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), c.keep_checkpoints)
    try:
        state, step = ckpt.read_latest_state(loop.abstract_state(train_gan.make_task(c, ds), c, parallel.data_mesh()))
    finally:
        ckpt.close()
    return int(step), jax.device_get(state)


def test_kill_9_mid_cycle_then_resume_is_bit_identical(data_dir, tmp_path):
    """n_critic 3, lazy R1 every 2, spectral norm, DiffAugment: killed after step 10, its last committed checkpoint
    at step 4 or 8 (saves are asynchronous), one or two critic steps into a cycle, then resumed to step 12: the
    same losses at every step and the same final state, bit for bit, as a run that was never interrupted."""
    c = tiny_config(data_dir, num_steps=12, log_every=1, checkpoint_every=4, **STABILISED)
    ds = data.load_images("digits", str(data_dir))
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    train_gan.run(c, straight)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": root}
    env["JAX_COMPILATION_CACHE_DIR"] = os.path.join(root, ".pytest_cache", "jax_subprocess")
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, killed, str(data_dir), "10"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    committed = [int(s) for s in os.listdir(os.path.join(killed, "checkpoints")) if s.isdigit()]
    assert max(committed) in (4, 8), os.listdir(os.path.join(killed, "checkpoints"))  # 4 % 3, 8 % 3: mid-cycle
    train_gan.run(c, killed)  # resumes there
    per_step = lambda w: [(r["step"], r["d_loss"], r["g_loss"], r["d_penalty"]) for r in read_metrics(w) if "loss" in r]
    assert [s for s, *_ in per_step(killed)] == list(range(1, 13))
    assert per_step(killed) == per_step(straight)
    (step_a, a), (step_b, b) = _final_state(killed, c, ds), _final_state(straight, c, ds)
    assert step_a == step_b == 12
    jax.tree.map(
        np.testing.assert_array_equal,
        (a.params, a.opt_state, a.ema_params, a.aux),
        (b.params, b.opt_state, b.ema_params, b.aux),
    )
