"""train.flow end to end on tiny configs, and its loss and samplers assembled from zoo.flow (the helpers are
tests/test_train_edm.py's: train.data.diffusion_runs is the two modules' common part)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.configs import resumed_records, smoke_config
from tests.test_train_edm import batch_and_unet, check_layout, check_sample_mode, check_samplers
from train import flow as train_flow
from train.data import images as data
from zoo import flow


def tiny_config(data_dir, **overrides):
    return smoke_config(train_flow, data_dir, **overrides)


TRAIN = train_flow  # the module conftest's straight_run runs, with these overrides
STRAIGHT_OVERRIDES = {"eval.num_samples": 8, "eval.classifier_steps": 5}
EVAL_KEYS = tuple(f"eval/{k}" for k in ("test_loss", "euler_fd", "euler_kid", "euler_precision", "euler_ref_fd"))


def test_workdir_layout(straight_run):
    check_layout(straight_run, EVAL_KEYS, "euler")


def test_resume_matches_uninterrupted_run(straight_run, data_dir, tmp_path):
    resumed_records(train_flow, data_dir, str(tmp_path), straight_run[0])


@pytest.mark.parametrize("distribution", flow.T_DISTRIBUTIONS)
def test_the_loss_is_zoo_flows_velocity_loss_of_the_unet_at_1000_t(data_dir, distribution):
    """make_task's loss is zoo.flow.flow_loss of the U-Net reading time t as 1000 t, at the config's times, with the
    key the task splits off for it."""
    overrides = {"flow.t_distribution": distribution, "flow.t_mean": 0.3, "flow.t_std": 0.7}
    c, batch, net, params, task = batch_and_unet(train_flow, data_dir, **overrides)
    key = jax.random.key(1)
    loss, _ = task.loss_fn(params, batch, key)
    velocity = lambda x, t: net.apply({"params": params}, x, 1000.0 * t, None)
    options = {"mean": 0.3, "std": 0.7} if distribution == "logit_normal" else {}
    expected, _ = flow.flow_loss(
        velocity, data.to_signed(batch["image"]), jax.random.split(key, 3)[0], distribution, **options
    )
    np.testing.assert_allclose(loss, jnp.mean(expected), rtol=1e-5)


def test_each_sampler_draws(data_dir):
    check_samplers(train_flow, data_dir, flow.SAMPLERS, **{"sample.shift": 3.0})


def test_load_samples_again(straight_run):
    check_sample_mode(train_flow, straight_run, "heun")


def test_the_objectives_benchmark_writes_a_row_per_sampler_and_budget(straight_run, tmp_path, capsys):
    """benchmarks.objectives on the smoke run at budgets of 2 and 4 calls: Euler at 2 and 4 steps, Heun and the
    midpoint rule at 1 and 2, each row with finite figures, and its JSON, markdown and plot."""
    import json

    from benchmarks import objectives

    objectives.main(["--flow", straight_run[0], "--nfe", "2,4", "--num", "8", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "objectives.json").read_text())
    assert [(r["sampler"], r["steps"], r["nfe"]) for r in rows] == [
        ("euler", 2, 2), ("heun", 1, 2), ("midpoint", 1, 2), ("euler", 4, 4), ("heun", 2, 4), ("midpoint", 2, 4)
    ]  # fmt: skip
    assert all(np.isfinite(r[k]) for r in rows for k in ("fd", "kid", "precision", "recall", "ref_fd"))
    assert (tmp_path / "objectives.png").stat().st_size > 0 and "| flow | heun | 4 |" in capsys.readouterr().out
