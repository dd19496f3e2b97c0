"""train.edm end to end on tiny configs, and its loss and samplers assembled from zoo.edm (train.flow's tests share
the helpers here: train.data.diffusion_runs is their common part)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.configs import resumed_records, smoke_config, straight_records
from train import edm as train_edm
from train.data import diffusion_runs, images as data
from zoo import edm


def tiny_config(data_dir, **overrides):
    return smoke_config(train_edm, data_dir, **overrides)


TRAIN = train_edm  # the module conftest's straight_run runs, with these overrides
STRAIGHT_OVERRIDES = {"eval.num_samples": 8, "eval.classifier_steps": 5}
EVAL_KEYS = tuple(f"eval/{k}" for k in ("test_loss", "heun_fd", "heun_kid", "heun_precision", "heun_ref_fd"))
# The smoke U-Net at one resolution, attention at 8x8: about half the compiling, for the checks of the loss, the
# samplers and conditioning, which do not depend on the U-Net's depth (the straight run keeps the smoke config's).
SMALL_UNET = {"model.ch_mult": (1,), "model.attn_resolutions": (8,)}


def check_layout(straight_run, eval_keys, grid: str) -> None:
    """A 6-step smoke run: losses at 2, 4, 6, one evaluation with every key finite, the sampler's grid PNG."""
    workdir, figures = straight_run
    logged, _ = straight_records(workdir, eval_keys)
    assert all(np.isfinite(r["loss"]) for r in logged) and figures["loss"] == pytest.approx(logged[-1]["loss"])
    assert sorted(os.listdir(os.path.join(workdir, "samples"))) == [f"{grid}_000006.png"]


def test_workdir_layout(straight_run):
    check_layout(straight_run, EVAL_KEYS, "heun")


def test_resume_matches_uninterrupted_run(straight_run, data_dir, tmp_path):
    resumed_records(train_edm, data_dir, str(tmp_path), straight_run[0])


def batch_and_unet(module, data_dir, **overrides):
    """(config, a batch of 4 digits, the U-Net, its initial parameters) of module's smoke config with SMALL_UNET."""
    c = smoke_config(module, data_dir, **{**SMALL_UNET, **overrides})
    ds = data.load_images("digits", str(data_dir))
    batch = next(data.batches(ds.train, 4, 0))
    net = diffusion_runs.make_network(c)
    task = diffusion_runs.make_task(c, ds.spec, module.OBJECTIVE)
    return c, batch, net, task.init_params(jax.random.key(0)), task


@pytest.mark.parametrize("form", edm.FORMS)
def test_the_loss_is_zoo_edms_denoiser_loss_of_the_preconditioned_unet(data_dir, form):
    """make_task's loss is zoo.edm.denoiser_loss of precondition(U-Net(c_in x, c_noise)) in the config's form, with
    the key the task splits off for it (the dropout and label keys are the others)."""
    c, batch, net, params, task = batch_and_unet(train_edm, data_dir)
    c.edm.form = form
    task = diffusion_runs.make_task(c, data.load_images("digits", str(data_dir)).spec, train_edm.OBJECTIVE)
    key = jax.random.key(1)
    loss, _ = task.loss_fn(params, batch, key)
    denoise = edm.precondition(lambda x, cn: net.apply({"params": params}, x, cn, None), form)
    options = {"p_mean": -1.2, "p_std": 1.2} if form == "edm" else {}
    expected = edm.denoiser_loss(denoise, data.to_signed(batch["image"]), jax.random.split(key, 3)[0], form, **options)
    np.testing.assert_allclose(loss, jnp.mean(expected[0]), rtol=1e-5)


def check_samplers(module, data_dir, samplers, **overrides) -> None:
    """Every sampler of the module draws finite images of the data's shape from initial parameters."""
    c, _, _, params, _ = batch_and_unet(module, data_dir, **overrides)
    for name in samplers:
        images = diffusion_runs.make_sampler(c, module.OBJECTIVE, (8, 8, 1), 3, name)(params, jax.random.key(2))
        assert images.shape == (3, 8, 8, 1) and np.all(np.isfinite(images)), name


def test_each_sampler_draws(data_dir):
    check_samplers(train_edm, data_dir, edm.SAMPLERS, **{"sample.s_churn": 10.0})


def check_sample_mode(module, straight_run, sampler: str) -> None:
    """load(workdir).sample: seeded, of the data's shape, uint8; another key draws others."""
    model = module.load(straight_run[0])
    first = model.sample(jax.random.key(5), 3, sampler=sampler)
    assert first.shape == (3, 8, 8, 1) and first.dtype == np.uint8
    np.testing.assert_array_equal(model.sample(jax.random.key(5), 3, sampler=sampler), first)
    assert not np.array_equal(model.sample(jax.random.key(6), 3, sampler=sampler), first)


def test_load_samples_again(straight_run):
    check_sample_mode(train_edm, straight_run, "dpmpp_2m")


def test_a_conditional_run_guides_its_samples(data_dir, tmp_path):
    """num_classes=10 (the zero-initialised convs let the labels reach the output from the third step): the run
    trains and evaluates; its samples guided at w = 2 are (1 + w) D(x, c) - w D(x, null)
    at every step, so they differ from the unguided ones (w = 0) of the same key, and load(workdir) draws uint8
    images for given labels."""
    overrides = {"model.num_classes": 10, "sample.num_images": 10, "ema_decay": 0.0, **SMALL_UNET}  # trained params
    c = smoke_config(train_edm, data_dir, num_steps=4, **overrides)  # from step 3 the labels reach the output
    figures = train_edm.run(c, str(tmp_path))
    assert np.isfinite(figures["eval/test_loss"])
    model = train_edm.load(str(tmp_path))
    drawn = {}
    for w in (0.0, 2.0):
        config = model.configured(guidance=w)
        sampler = diffusion_runs.make_sampler(config, train_edm.OBJECTIVE, (8, 8, 1), 3)
        drawn[w] = np.asarray(sampler(model.params, jax.random.key(0), jnp.arange(3)))
    assert np.all(np.isfinite(drawn[2.0])) and np.abs(drawn[2.0] - drawn[0.0]).max() > 0
    images = model.sample(jax.random.key(0), 3, labels=(0, 1, 2), guidance=2.0)
    assert images.shape == (3, 8, 8, 1) and images.dtype == np.uint8
