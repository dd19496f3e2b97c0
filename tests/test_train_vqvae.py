"""train.vqvae end to end on tiny configs; its step against zoo.vqvae's moving averages; a short run on the digits
uses most of its codebook."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.configs import resumed_records, smoke_config, straight_records
from train import vqvae as train_vqvae
from train.core import loop, parallel
from train.data import images as data
from zoo import vqvae

TRAIN = train_vqvae  # the module conftest's straight_run runs
tiny_config = functools.partial(smoke_config, train_vqvae)
EVAL_KEYS = tuple(
    f"eval/{k}" for k in ("test_mse", "test_perplexity", "test_codes_used", "recon_fd", "fd", "recon_kid")
)


def test_workdir_layout(straight_run):
    workdir, figures = straight_run
    logged, evaluated = straight_records(workdir, EVAL_KEYS)
    assert all(np.isfinite(r["loss"]) and 1 <= r["perplexity"] <= 8 for r in logged)
    assert 1 <= evaluated["eval/test_codes_used"] <= 8
    assert sorted(os.listdir(os.path.join(workdir, "samples"))) == ["reconstructions_000006.png", "samples_000006.png"]


def test_resume_matches_uninterrupted_run(straight_run, data_dir, tmp_path):
    """The codebook's moving averages and the restarts' keys are part of the checkpointed state."""
    resumed_records(train_vqvae, data_dir, str(tmp_path), straight_run[0])


def _one_step(c, data_dir):
    ds = data.load_images("digits", str(data_dir))
    task = train_vqvae.make_task(c, ds.spec)
    state = loop.init_state(task, c, parallel.data_mesh())
    batch = next(data.batches(ds.train, 16, 0))
    new, metrics = jax.jit(task.train_step)(state, batch, jax.random.key(3))
    return task, state, new, metrics, data.to_unit(batch["image"])


@pytest.mark.parametrize("codebook", train_vqvae.CODEBOOKS)
def test_a_step_moves_the_codebook_by_zoo_vqvaes_moving_averages_or_its_gradient(codebook, data_dir):
    c = smoke_config(train_vqvae, data_dir, **{"vq.codebook": codebook, "vq.restart_below": 0.0, "warmup_steps": 0})
    c.vq.decay = 0.5
    _, state, new, metrics, x = _one_step(c, data_dir)
    net = train_vqvae.make_net(c, data.load_images("digits", str(data_dir)).spec)
    before = state.params["vqvae"]
    z = net.apply({"params": before}, x, method="encode")
    idx = vqvae.nearest_codes(z, before["codebook"])
    stats, ema_codebook = vqvae.ema_update(vqvae.CodebookStats(**state.params["stats"]), z, idx, 0.5, c.vq.epsilon)
    np.testing.assert_allclose(new.params["stats"]["counts"], stats.counts, rtol=1e-5)
    np.testing.assert_allclose(new.params["stats"]["sums"], stats.sums, rtol=1e-4, atol=1e-6)
    after = new.params["vqvae"]["codebook"]
    if codebook == "ema":
        np.testing.assert_allclose(after, ema_codebook, rtol=1e-4, atol=1e-6)
    else:  # moved by Adam on the codebook term, not to the averages
        assert float(jnp.max(jnp.abs(after - before["codebook"]))) > 0
        assert float(jnp.max(jnp.abs(after - ema_codebook))) > 1e-4
    counts = vqvae.code_histogram(idx, c.model.num_codes)
    assert float(metrics["perplexity"]) == pytest.approx(float(vqvae.perplexity(counts)), rel=1e-5)


def test_a_short_run_on_the_digits_uses_most_of_its_codebook(data_dir):
    """150 steps of 64 of the default config (64 codes, ema, restarts): the test split's codes use at least 3/4 of the
    codebook, with a perplexity of at least 24 (a collapsed codebook has a few)."""
    c = train_vqvae.get_config()
    c.data_dir, c.num_steps, c.warmup_steps, c.batch_size = str(data_dir), 150, 10, 64
    ds = data.load_images("digits", str(data_dir))
    task = train_vqvae.make_task(c, ds.spec)
    state = loop.init_state(task, c, parallel.data_mesh())
    step = jax.jit(task.train_step)
    for i, batch in zip(range(c.num_steps), data.batches(ds.train, c.batch_size, 0)):
        state, _ = step(state, batch, jax.random.key(i))
    encode = train_vqvae.encoder_of(c, ds.spec)
    _, idx = encode(state.eval_params, data.as_arrays(ds.test)["image"])
    counts = np.bincount(np.asarray(idx).reshape(-1), minlength=64)
    assert np.sum(counts > 0) >= 48 and float(vqvae.perplexity(jnp.asarray(counts, jnp.float32))) >= 24, counts
