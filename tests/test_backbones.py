"""benchmarks/backbones.py's figures on a tiny scale: parameters as the network's, XLA FLOPs that count a train step
as about three network calls, and a table that prints them."""

import argparse

import jax
import numpy as np
import pytest

from benchmarks import backbones
from train import flow as train_flow
from train.data import diffusion_runs

SMALL = {"unet": {"model.ch": 8, "model.attn_resolutions": ()}, "dit": {"model.hidden": 16, "model.depth": 1}}


@pytest.mark.parametrize("run", ["dit"])  # the U-Net's step compiles for 30-50 s here: the same code path
def test_step_figures_count_the_networks_parameters_and_a_step_as_about_three_calls(run, data_dir, monkeypatch):
    monkeypatch.setitem(backbones.RUNS, run, {**backbones.RUNS[run], **SMALL[run]})
    args = argparse.Namespace(dataset="digits", data_dir=str(data_dir), vqvae="", steps=4, batch_size=8, num_samples=0)
    c = backbones.config_of(train_flow, args, run)
    figures = backbones.step_figures(train_flow, c, 8, min_time=0.01)
    net = diffusion_runs.make_network(c)
    params = jax.eval_shape(lambda: net.init(jax.random.key(0), np.zeros((1, 8, 8, 1)), np.zeros((1,))))["params"]
    assert figures["parameters"] == sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
    ratio = figures["train_gflops_per_example"] / figures["call_gflops_per_example"]
    assert 2.0 < ratio < 4.5 and figures["train_examples_per_sec"] > 0, figures
    results = {run: {**figures, "train_secs": 60.0, "fd": 1.5, "kid": 2.0, "precision": 0.9, "recall": 0.8}}
    results[run].update(ref_fd=1.0, ref_kid=0.5)
    row = [line for line in backbones.table(results).splitlines() if line.startswith(f"| {run} |")]
    assert row and "| 8x8x1 |" in row[0] and "| 1.0 min | 1.50 | 2.0 | 0.90 / 0.80 |" in row[0]
