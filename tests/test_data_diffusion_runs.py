"""train.data.diffusion_runs' choice of denoiser: model.backbone=dit gives every diffusion objective a DiT, which
trains on the digits; the shapes and widths a DiT cannot read are refused in one line."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.configs import smoke_config
from train import ddpm as train_ddpm, edm as train_edm, flow as train_flow
from train.core.errors import ConfigError
from train.data import diffusion_runs, images as data
from zoo import dit

DIT = {"model.backbone": "dit", "model.hidden": 16, "model.depth": 1, "model.num_heads": 2}


@pytest.mark.parametrize("module", [train_ddpm, train_edm, train_flow], ids=lambda m: m.__name__)
def test_every_objective_trains_a_dit_when_asked(module, data_dir):
    """The task's parameters are the DiT's of config.model (and its loss is finite and zero-output at init)."""
    c = smoke_config(module, data_dir, **DIT, **{"model.num_classes": 10})
    ds = data.load_images("digits", str(data_dir))
    task = module.make_task(c, ds.spec)
    params = jax.jit(task.init_params)(jax.random.key(0))
    assert set(params) >= {"x_embed", "block_0", "final", "y_embed"} and "block_1" not in params
    net = train_ddpm.make_network(c) if module is train_ddpm else diffusion_runs.make_network(c)
    assert isinstance(net, dit.DiT) and net.num_classes == 10
    loss, _ = jax.jit(task.loss_fn)(params, next(data.batches(ds.train, 8, 0)), jax.random.key(1))
    assert np.isfinite(float(loss))


def test_a_dit_learns_the_flow_of_the_digits(data_dir):
    """60 Adam steps on the flow-matching loss take a 2-block DiT's loss from its zero-output value (E|eps - x0|^2,
    about 1.5 on the digits) to below 0.75 of it."""
    c = smoke_config(train_flow, data_dir, **{**DIT, "model.hidden": 32, "model.depth": 2})
    ds = data.load_images("digits", str(data_dir))
    task, tx = train_flow.make_task(c, ds.spec), optax.adam(3e-3)
    params = task.init_params(jax.random.key(0))

    @jax.jit
    def step(params, opt_state, batch, key):
        (loss, _), grads = jax.value_and_grad(task.loss_fn, has_aux=True)(params, batch, key)
        updates, opt_state = tx.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state, losses, batches = tx.init(params), [], data.batches(ds.train, 64, 0)
    for i in range(60):
        params, opt_state, loss = step(params, opt_state, next(batches), jax.random.key(i))
        losses.append(float(loss))
    first, last = np.mean(losses[:5]), np.mean(losses[-10:])
    assert first > 1.0 and last < 0.75 * first, (first, last)


def test_patches_that_do_not_tile_the_images_and_widths_heads_cannot_split_are_refused(data_dir):
    c = smoke_config(train_edm, data_dir, **{**DIT, "model.patch_size": 3})
    with pytest.raises(ConfigError, match=r"config.model.patch_size=3 does not divide the 8x8 images; accepted"):
        train_edm.make_task(c, data.load_images("digits", str(data_dir)).spec)
    c = smoke_config(train_edm, data_dir, **{**DIT, "model.num_heads": 3})
    with pytest.raises(ConfigError, match=r"config.model.hidden=16 must be a multiple of 4 and of .*num_heads=3"):
        train_edm.SCHEMA.check(c)
    c.model.backbone = "unet"  # the DiT's keys are the U-Net's to ignore
    train_edm.SCHEMA.check(c)
    assert jnp.ndim(diffusion_runs.make_network(c).ch) == 0
