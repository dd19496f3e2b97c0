"""The shared loop's guarantees (train/loop.py, train/checkpoint.py), on a tiny softmax classifier.

A tiny task keeps compilation to about a second, so each guarantee is checked on real training runs.
"""

import functools
import glob
import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from train.core import checkpoint, config as config_lib, loop
from train.data import images as data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(**overrides):
    c = config_lib.Schema(config_lib.LOOP, config_lib.OPTIMIZER, config_lib.IMAGE_DATA).config()
    c.num_steps, c.batch_size, c.log_every, c.checkpoint_every = 8, 16, 1, 2
    c.warmup_steps, c.learning_rate, c.progress, c.ema_decay = 0, 1e-2, False, 0.9
    c.update(overrides)
    return c


def softmax_task(ds, hidden=4, explode=False):
    """Linear softmax classifier on the pixels; explode=True makes the loss overflow once weights grow."""
    d = int(np.prod(ds.image_shape))

    def init_params(key):
        return {"w": 0.01 * jax.random.normal(key, (d, hidden)), "b": jnp.zeros(hidden)}

    def loss_fn(params, batch, key):
        x = batch["image"].reshape(batch["image"].shape[0], -1).astype(jnp.float32) / 255.0
        x = x + 0.01 * jax.random.normal(key, x.shape)  # uses the step key, so randomness is exercised
        logits = x @ params["w"] + params["b"]
        loss = -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(x.shape[0]), batch["label"] % hidden])
        if explode:
            loss = loss + jnp.exp(jnp.sum(params["w"]) ** 2)  # Adam at lr 1e6 overshoots the minimum to inf
        return loss, {}

    return loop.Task("tiny", init_params, loss_fn=loss_fn, batches=functools.partial(data.batches, ds.train))


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return data.load_images("digits", str(tmp_path_factory.mktemp("tfds")))


def records(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(l) for l in f]


def losses(workdir):
    return [(r["step"], r["loss"]) for r in records(workdir) if "loss" in r]


def final_params(workdir, digits, config):
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), 3)
    state = loop.init_state(softmax_task(digits), config, jax.sharding.Mesh(np.array(jax.devices()), ("data",)))
    restored, step = ckpt.restore_latest(state, data.batches(digits.train, config.batch_size, config.seed))
    ckpt.close()
    return step, jax.device_get(restored)


@pytest.fixture(scope="module")
def reference(digits, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("reference"))
    loop.train(tiny_config(), workdir, softmax_task(digits))
    return workdir


def test_same_seed_same_losses_other_seed_other_losses(digits, reference, tmp_path):
    loop.train(tiny_config(), str(tmp_path / "a"), softmax_task(digits))
    assert losses(str(tmp_path / "a")) == losses(reference)
    loop.train(tiny_config(seed=1), str(tmp_path / "b"), softmax_task(digits))
    assert [l for _, l in losses(str(tmp_path / "b"))] != [l for _, l in losses(reference)]


def test_resume_is_bit_identical(digits, reference, tmp_path):
    workdir = str(tmp_path)
    loop.train(tiny_config(num_steps=4), workdir, softmax_task(digits))
    # A run killed after logging steps 5-6 but before checkpointing them: a torn line too.
    with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
        f.write(json.dumps({"step": 5, "loss": 123.0}) + "\n" + '{"step": 6, "lo')
    loop.train(tiny_config(), workdir, softmax_task(digits))
    assert losses(workdir) == losses(reference)  # stale steps dropped, resumed steps equal bit for bit
    step_a, a = final_params(workdir, digits, tiny_config())
    step_b, b = final_params(reference, digits, tiny_config())
    assert step_a == step_b == 8
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)  # params, optimizer state, EMA: exactly equal


@pytest.mark.parametrize("damage", ["truncate", "garble", "delete_file", "empty_metadata"])
def test_damaged_latest_checkpoint_falls_back(digits, reference, tmp_path, capfd, damage):
    workdir = str(tmp_path)
    loop.train(tiny_config(num_steps=6), workdir, softmax_task(digits))
    files = sorted(f for f in glob.glob(f"{workdir}/checkpoints/6/state/**", recursive=True) if os.path.isfile(f))
    data_files = [f for f in files if "/d/" in f]
    if damage == "truncate":
        for f in data_files:
            with open(f, "r+b") as fh:
                fh.truncate(os.path.getsize(f) // 2)
    elif damage == "garble":
        for f in data_files:
            b = bytearray(open(f, "rb").read())
            b[len(b) // 2 : len(b) // 2 + 16] = bytes(16)[: len(b) - len(b) // 2]
            b[-8:] = b"\xff" * 8
            open(f, "wb").write(bytes(b))
    elif damage == "delete_file":
        os.remove(f"{workdir}/checkpoints/6/state/manifest.ocdbt")
    else:
        open(f"{workdir}/checkpoints/6/state/_METADATA", "w").close()
    good = sorted(os.listdir(f"{workdir}/checkpoints"))
    loop.train(tiny_config(num_steps=6), workdir, softmax_task(digits))  # to 6 again: no rotation of 2 and 4
    err = capfd.readouterr().err
    assert "warning: checkpoint 6" in err and "falling back" in err
    assert len(glob.glob(f"{workdir}/damaged_checkpoints/6-*")) == 1
    assert set(good) - {"6"} <= set(os.listdir(f"{workdir}/checkpoints"))  # the good ones are still there
    assert losses(workdir) == losses(reference)[:6]  # resumed from step 4: steps 5, 6 equal the reference


def test_a_reader_skips_a_damaged_checkpoint_and_moves_nothing(digits, tmp_path, capfd):
    """Checkpointer.read_latest_state (what train/core/saved.py reads a run with), into loop.abstract_state's
    shapes: the newest checkpoint that restores, a damaged newer one left where it is for the run to set aside."""
    workdir, config = str(tmp_path), tiny_config(num_steps=6)
    loop.train(config, workdir, softmax_task(digits))
    for f in glob.glob(f"{workdir}/checkpoints/6/state/**/d/*", recursive=True):
        with open(f, "r+b") as fh:
            fh.truncate(os.path.getsize(f) // 2)
    before = sorted(glob.glob(f"{workdir}/**", recursive=True))
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), 3)
    state, step = ckpt.read_latest_state(loop.abstract_state(softmax_task(digits), config, mesh))
    expected = ckpt.restore_state(4, loop.init_state(softmax_task(digits), config, mesh))
    ckpt.close()
    assert step == 4 and "warning: checkpoint 6" in capfd.readouterr().err
    for x, y in zip(jax.tree.leaves(state), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(x, y)
    assert sorted(glob.glob(f"{workdir}/**", recursive=True)) == before


def test_restore_into_other_shapes_names_the_parameter_and_changes_nothing(digits, tmp_path):
    workdir = str(tmp_path)
    loop.train(tiny_config(num_steps=2), workdir, softmax_task(digits))
    before = {p: os.path.getmtime(p) for p in glob.glob(f"{workdir}/**", recursive=True)}
    with pytest.raises(checkpoint.CheckpointMismatch, match=r"parameter b of shape \(4,\).*has shape \(5,\)"):
        loop.train(tiny_config(num_steps=4), workdir, softmax_task(digits, hidden=5))
    assert {p: os.path.getmtime(p) for p in glob.glob(f"{workdir}/**", recursive=True)} == before


def test_non_finite_loss_stops_without_checkpointing_it(digits, tmp_path):
    workdir = str(tmp_path)
    with pytest.raises(loop.NonFiniteError, match=r"non-finite .*loss=(inf|nan).* at step 2;"):
        loop.train(tiny_config(learning_rate=1e6, num_steps=20), workdir, softmax_task(digits, explode=True))
    for step in os.listdir(f"{workdir}/checkpoints"):
        ckpt = checkpoint.Checkpointer(f"{workdir}/checkpoints", 3)
        # every checkpoint restores (restore() rejects non-finite values)
        state = loop.init_state(
            softmax_task(digits), tiny_config(), jax.sharding.Mesh(np.array(jax.devices()), ("data",))
        )
        ckpt.restore(int(step), state, data.batches(digits.train, 16, 0))
        ckpt.close()


def test_non_finite_steps_are_skipped_when_asked(digits, tmp_path):
    workdir = str(tmp_path)
    figures = loop.train(
        tiny_config(learning_rate=1e6, num_steps=6, nan_policy="skip"), workdir, softmax_task(digits, explode=True)
    )
    logged = [r for r in records(workdir) if "loss" in r]
    assert logged[-1]["skipped_steps"] >= 1 and figures["skipped_steps"] >= 1
    _, state = final_params(workdir, digits, tiny_config())
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(state.params))


def test_second_run_on_same_workdir_is_refused(digits, tmp_path):
    import fcntl

    workdir = str(tmp_path)
    fd = os.open(workdir, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running run holds it
    try:
        with pytest.raises(config_lib.ConfigError, match="in use by another run"):
            loop.train(tiny_config(num_steps=2), workdir, softmax_task(digits))
        assert os.listdir(workdir) == []
    finally:
        os.close(fd)
    loop.train(tiny_config(num_steps=2), workdir, softmax_task(digits))  # free again once the holder is gone


def test_unwritable_workdir(digits, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(config_lib.ConfigError, match="not a writable directory"):
        loop.train(tiny_config(num_steps=2), str(blocker / "run"), softmax_task(digits))


def test_bad_batch_size_for_device_count(digits, tmp_path, monkeypatch):
    monkeypatch.setattr(jax, "device_count", lambda: 3)
    with pytest.raises(config_lib.ConfigError, match="batch_size=16 must be divisible by the device count 3"):
        loop.train(tiny_config(), str(tmp_path / "w"), softmax_task(digits))
    assert not (tmp_path / "w").exists()


# ----------------------------------------------------------------------------- real processes

TRAIN_SCRIPT = """
import sys
from train.core import config as config_lib, loop
from train.data import images as data
from tests.test_loop import softmax_task, tiny_config
ds = data.load_images("digits", sys.argv[2])
loop.train(tiny_config(num_steps=int(sys.argv[3]), checkpoint_every=int(sys.argv[4])), sys.argv[1], softmax_task(ds))
"""


def _env():
    return {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": ROOT,
        "JAX_COMPILATION_CACHE_DIR": os.path.join(ROOT, ".pytest_cache", "jax_subprocess"),
    }


def _start(workdir, data_dir, num_steps, every):
    return subprocess.Popen(
        [sys.executable, "-c", TRAIN_SCRIPT, workdir, data_dir, str(num_steps), str(every)],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_step(workdir, step, proc, timeout=240):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            return
        try:
            if any(r["step"] >= step for r in records(workdir)):
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.02)


def test_kill_9_at_several_points_then_resume_bit_identical(digits, tmp_path):
    data_dir = str(tmp_path / "tfds")
    n, every = 60, 3
    straight = str(tmp_path / "straight")
    proc = _start(straight, data_dir, n, every)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()[-2000:]
    killed = str(tmp_path / "killed")
    # Kill at several points: early, right around checkpoint saves (steps multiple of `every`), late.
    for kill_at in (7, 21, 22, 45):
        proc = _start(killed, data_dir, n, every)
        _wait_for_step(killed, kill_at, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    proc = _start(killed, data_dir, n, every)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()[-2000:]
    assert losses(killed) == losses(straight)
    assert [s for s, _ in losses(killed)] == list(range(1, n + 1))
    for x, y in zip(
        jax.tree.leaves(final_params(killed, digits, tiny_config())[1]),
        jax.tree.leaves(final_params(straight, digits, tiny_config())[1]),
    ):
        np.testing.assert_array_equal(x, y)


def test_sigterm_saves_and_exits_cleanly(digits, tmp_path):
    workdir, data_dir = str(tmp_path / "w"), str(tmp_path / "tfds")
    proc = _start(workdir, data_dir, 100_000, 100_000)  # no periodic checkpoint before the signal
    _wait_for_step(workdir, 5, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "SIGTERM at step" in out
    steps = [int(s) for s in os.listdir(os.path.join(workdir, "checkpoints"))]
    assert len(steps) == 1 and steps[0] >= 5


def test_vmapped_sweep_replicas_equal_single_runs(digits, tmp_path):
    """Three replicas (seed, learning rate) in one compiled program; replica i equals the single run."""
    seeds, lrs = (0, 1, 0), (1e-2, 1e-2, 3e-2)
    c = tiny_config(num_steps=4)
    c.sweep.seeds, c.sweep.learning_rates = seeds, lrs
    sweep_dir = str(tmp_path / "sweep")
    loop.train(c, sweep_dir, softmax_task(digits))
    for i, (seed, lr) in enumerate(zip(seeds, lrs)):
        single = str(tmp_path / f"single{i}")
        loop.train(tiny_config(num_steps=4, seed=seed, learning_rate=lr), single, softmax_task(digits))
        replica = os.path.join(sweep_dir, f"replica_{i}")
        with open(os.path.join(replica, "config.json")) as f:
            assert (json.load(f)["seed"], json.load(open(os.path.join(replica, "config.json")))["learning_rate"]) == (
                seed,
                lr,
            )
        # float32: lr * schedule vs (lr0 * schedule) * (lr / lr0) differ in the last bits only
        np.testing.assert_allclose([l for _, l in losses(replica)], [l for _, l in losses(single)], rtol=1e-5)
    assert losses(os.path.join(sweep_dir, "replica_0")) != losses(os.path.join(sweep_dir, "replica_1"))


def test_sweep_lengths_must_match(digits, tmp_path):
    c = tiny_config()
    c.sweep.seeds, c.sweep.learning_rates = (0, 1), (1e-2,)
    with pytest.raises(config_lib.ConfigError, match="same length"):
        config_lib.check_sweep(c)


def test_skipping_stops_past_the_stated_share(digits, tmp_path):
    """nan_policy=skip stops once more than MAX_SKIPPED_SHARE of the steps (after MIN_STEPS_FOR_SHARE) were
    skipped, and a run that skipped any says so in its summary."""
    c = tiny_config(learning_rate=1e6, num_steps=40, nan_policy="skip", log_every=1)
    with pytest.raises(
        loop.NonFiniteError, match=r"of the \d+ steps since step 0 were non-finite and skipped, more than 10%"
    ):
        loop.train(c, str(tmp_path / "w"), softmax_task(digits, explode=True))
    assert loop.MIN_STEPS_FOR_SHARE == 10 and loop.MAX_SKIPPED_SHARE == 0.1


def test_skipped_steps_are_named_in_the_summary(digits, tmp_path, capsys):
    c = tiny_config(learning_rate=1e6, num_steps=6, nan_policy="skip")
    figures = loop.train(c, str(tmp_path / "w"), softmax_task(digits, explode=True))
    assert (
        f"warning: {figures['skipped_steps']:.0f} of the 6 steps were non-finite and skipped" in capsys.readouterr().out
    )


def test_a_resumed_sweep_logs_each_step_once_in_every_replica(digits, tmp_path):
    """A sweep killed after logging past its last checkpoint: the resume drops those records in the main log and
    in each replica's own log."""
    c = tiny_config(num_steps=4)
    c.sweep.seeds = (0, 1)
    workdir = str(tmp_path / "sweep")
    loop.train(c, workdir, softmax_task(digits))
    for log in ("metrics.jsonl", "replica_0/metrics.jsonl", "replica_1/metrics.jsonl"):
        with open(os.path.join(workdir, log), "a") as f:  # what a kill -9 after logging step 5 leaves behind
            f.write(json.dumps({"step": 5, "loss": 9.0}) + "\n" + '{"step": 6, "lo')
    c.num_steps = 6
    loop.train(c, workdir, softmax_task(digits))
    for log in ("", "replica_0", "replica_1"):
        steps = [s for s, _ in losses(os.path.join(workdir, log))]
        assert steps == [1, 2, 3, 4, 5, 6], log
        assert 9.0 not in [l for _, l in losses(os.path.join(workdir, log))]
