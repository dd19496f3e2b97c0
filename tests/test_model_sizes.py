"""The paper-size DDPM configs: their parameter counts (traced, not built) against a closed-form count of the U-Net,
their train step at batch 128 lowering in bfloat16, and benchmarks.model_sizes --quick reporting positive sizes and
fits that agree with their own line (no speed is asserted).

unet_parameters counts the U-Net of zoo.ddpm (and, with scale_shift, improved-diffusion's UNetModel, whose residual
blocks map the time embedding to a scale and a shift) layer by layer, independently of flax: it gives the DDPM
paper's 35.7M for ch 128, ch_mult (1, 2, 2, 2), and improved-diffusion's ImageNet-64 model 121.1M parameters.
"""

import json
import math
import os
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import model_sizes
from tests.configs import table_rows
from train import ddpm as train_ddpm

ROOT = pathlib.Path(__file__).resolve().parent.parent


def unet_parameters(ch, ch_mult, num_res_blocks, attn_resolutions, size, in_ch=3, out_ch=3, scale_shift=False) -> int:
    """Weights and biases of the DDPM U-Net: time embedding MLP (ch -> 4ch -> 4ch), input conv, per level
    num_res_blocks residual blocks (attention after each at the widths in attn_resolutions) and a stride-2 conv,
    middle block, per level num_res_blocks + 1 blocks on the skip-concatenated maps and an upsampling conv, output
    GroupNorm and conv. A residual block: GroupNorm, 3x3 conv, the embedding's Dense (to 2x the channels with
    scale_shift), GroupNorm, 3x3 conv, a 1x1 conv on the skip path when the channels change."""
    emb = 4 * ch
    film = 2 if scale_shift else 1

    def res(a, b):
        return 2 * a + 9 * a * b + b + film * (emb * b + b) + 2 * b + 9 * b * b + b + (a * b + b if a != b else 0)

    def attention(c):
        return 2 * c + 3 * c * c + 3 * c + c * c + c

    n = ch * emb + emb + emb * emb + emb + 9 * in_ch * ch + ch
    skips, c = [ch], ch
    for level, mult in enumerate(ch_mult):
        for _ in range(num_res_blocks):
            n, c = n + res(c, ch * mult), ch * mult
            n += attention(c) if size in attn_resolutions else 0
            skips.append(c)
        if level != len(ch_mult) - 1:
            n, size = n + 9 * c * c + c, size // 2
            skips.append(c)
    n += 2 * res(c, c) + attention(c)
    for level, mult in reversed(list(enumerate(ch_mult))):
        for _ in range(num_res_blocks + 1):
            n, c = n + res(c + skips.pop(), ch * mult), ch * mult
            n += attention(c) if size in attn_resolutions else 0
        if level:
            n, size = n + 9 * c * c + c, size * 2
    return n + 2 * c + 9 * c * out_ch + out_ch


def traced_parameters(c, image_shape) -> int:
    """Parameters of train.ddpm's U-Net for config c, from jax.eval_shape (no arrays)."""
    net = train_ddpm.make_network(c)
    init = lambda key: net.init(key, jnp.zeros((1, *image_shape)), jnp.zeros((1,), jnp.int32))
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(jax.eval_shape(init, jax.random.key(0))))


def closed_form(c, size, **options) -> int:
    m = c.model
    out_ch = 6 if c.diffusion.variance == "learned" else 3
    return unet_parameters(m.ch, m.ch_mult, m.num_res_blocks, m.attn_resolutions, size, out_ch=out_ch, **options)


def test_cifar10_variant_has_the_ddpm_papers_35_7m_parameters():
    c = train_ddpm.get_config("cifar10")
    assert model_sizes.image_shape_of(c) == (32, 32, 3)  # TFDS metadata: nothing downloaded
    n = traced_parameters(c, (32, 32, 3))
    print(f"cifar10: {n} parameters")
    assert abs(n - 35.7e6) <= 0.05e6
    assert n == closed_form(c, 32)


def test_imagenet64_variant_is_improved_diffusions_model_less_its_scale_shift():
    c = train_ddpm.get_config("imagenet64")
    assert model_sizes.image_shape_of(c) == (64, 64, 3)
    m, d = c.model, c.diffusion
    assert (m.ch, tuple(m.ch_mult), m.num_res_blocks, tuple(m.attn_resolutions)) == (128, (1, 2, 3, 4), 3, (16, 8))
    assert (d.variance, d.schedule, d.num_timesteps, d.vlb_weight) == ("learned", "cosine", 4000, 0.001)
    assert (c.learning_rate, c.batch_size, m.dropout, m.num_classes) == (1e-4, 128, 0.0, 0)
    n = traced_parameters(c, (64, 64, 3))
    paper = closed_form(c, 64, scale_shift=True)
    print(f"imagenet64: {n} parameters here, {paper} with improved-diffusion's scale-shift conditioning")
    assert n == closed_form(c, 64) == 115_942_150
    assert paper == 121_063_942  # 5.1M more: each residual block's embedding Dense gives a scale and a shift


def test_cifar10_step_lowers_at_batch_128_with_every_convolution_in_bfloat16():
    c = model_sizes.config_of("cifar10", "bfloat16")
    lowered, state = model_sizes.lower_step(c, 128)
    (_, batch), _ = lowered.args_info
    assert batch["image"].shape == (128, 32, 32, 3)
    assert {p.dtype for p in jax.tree.leaves(state.params)} == {np.dtype(np.float32)}
    signatures = re.findall(r"stablehlo\.convolution.*: \((.*)\) -> (tensor<[^>]*>)", lowered.as_text())
    assert len(signatures) > 100  # forward and backward of every conv of the U-Net
    for operands, result in signatures:
        types = re.findall(r"tensor<(?:\d+x)*([a-z]+\d*)>", operands + result)
        assert types == ["bf16"] * 3, (operands, result)


def test_fast_compile_leaves_flops_and_memory_as_they_are():
    c = model_sizes.config_of("cifar10", "float32", quick=True)
    fast, default = model_sizes.compile_at(c, 2, fast=True), model_sizes.compile_at(c, 2)
    assert fast["params"] == default["params"] > 0
    assert fast["flops"] == default["flops"] > 0
    assert fast["bytes"] == default["bytes"] > 0


@pytest.mark.slow
def test_quick_run_reports_positive_sizes_and_consistent_fits(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".pytest_cache" / "jax"))
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    path = tmp_path / "sizes.json"
    cmd = [sys.executable, "-m", "benchmarks.model_sizes", "--quick", "--configs=cifar10", f"--json={path}"]
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    printed = table_rows(run.stdout, "| config |")
    rows = json.loads(path.read_text())["rows"]
    assert [(r["config"], r["dtype"]) for r in rows] == [
        ("cifar10 (quick)", dtype)
        for dtype in ("float32", "bfloat16")  # imagenet64: the same code, 2x the compiles
    ]
    assert [r["config"] for r in printed] == [r["config"] for r in rows]
    for r, shown in zip(rows, printed):
        assert r["batch"] == 4 and r["params"] > 0 and r["flops_per_example"] > 0 and r["bytes"] > 0, r
        assert r["per_example_bytes"] > 0 and r["compile_seconds"] > 0, r
        assert r["convs_in"] == "f32" or r["dtype"] == "bfloat16", r
        assert 0 < r["batch_16GB"] <= r["batch_80GB"], r
        line = lambda b: r["fixed_bytes"] + r["per_example_bytes"] * b
        assert line(r["batch_16GB"]) <= 16e9 < line(r["batch_16GB"] + 1), r
        assert line(r["batch_80GB"]) <= 80e9 < line(r["batch_80GB"] + 1), r
        assert line(4) == pytest.approx(r["bytes"]), r
        assert float(shown["params (M)"]) == pytest.approx(r["params"] / 1e6, abs=0.005)
        assert int(shown["batch 16GB"]) == r["batch_16GB"] and int(shown["batch 80GB"]) == r["batch_80GB"]
    assert len({r["params"] for r in rows}) == 1  # the dtype changes the compute, not the parameters
    assert all(math.isfinite(r["fixed_bytes"]) for r in rows)
