"""The three passes of the U-Net's 3x3 convolutions on the CPU: XLA's, in two layouts, against torch's.

    python -m benchmarks.conv_passes [--shapes=32:32:64,32:16:128,32:8:128] [--rounds=3] [--quick]

The DDPM U-Net's train step spends 80% of its time in convolutions, 45% in their backward pass (docs/performance.md,
"Where the time goes"), and at 32x32 batch 32 it trains at 0.91-1.00x denoising-diffusion-pytorch's images/s while
its forward runs 1.3-1.5x faster. This splits one 3x3 'SAME' convolution (stride 1, C in and C out channels) into
its passes, each jitted and timed alone: the forward, the input's gradient and the kernel's gradient (jax.vjp's two
cotangents, each computed on its own). XLA:CPU runs them in NHWC with HWIO kernels (flax's layout) and in NCHW with
OIHW kernels (torch's), with the convolutions on XLA's own kernels, as train.ddpm runs them
(train.core.parallel.xla_cpu_convolutions). torch runs F.conv2d and torch.autograd.grad on its own NCHW tensors,
on as many threads as XLA (the machine's cores). Each SHAPE is BATCH:SIDE:CHANNELS. Each round times every pass
of every system for at least --min_time seconds, and the figures are medians over the rounds, with GFLOP/s
(2 * B * H * W * 9 * C * C a pass) and the ratio torch s / XLA s (above 1: XLA is faster). The libraries share a
process: torch is imported only when its rows are timed. --quick (the test's) is one 4:8:8 shape, one round, no
minimum time.
"""

from __future__ import annotations

import os
import statistics

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from benchmarks import unet_speed  # noqa: F401  its --rounds, --min_time and --quick serve here too
from benchmarks.common import device_line, time_fn
from train.core import parallel

flags.FLAGS.set_default("rounds", 3)
flags.DEFINE_list("shapes", ["32:32:64", "32:16:128", "32:8:128"], "BATCH:SIDE:CHANNELS of each convolution.")
flags.DEFINE_bool("torch", True, "Also time torch's passes (if installed).")

PASSES = ("forward", "input grad", "kernel grad")
LAYOUTS = {"NHWC": ("NHWC", "HWIO", "NHWC"), "NCHW": ("NCHW", "OIHW", "NCHW")}


def parse_shape(text: str) -> tuple[int, int, int]:
    parts = text.split(":")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise app.UsageError(f"--shapes: {text!r} is not BATCH:SIDE:CHANNELS, three positive integers")
    return tuple(map(int, parts))


def xla_passes(batch: int, side: int, ch: int, layout: str) -> dict:
    """{pass: a blocking call} of one convolution in `layout`, each pass its own jitted program."""
    dims = LAYOUTS[layout]
    rng = np.random.default_rng(0)
    x_shape = (batch, side, side, ch) if layout == "NHWC" else (batch, ch, side, side)
    k_shape = (3, 3, ch, ch) if layout == "NHWC" else (ch, ch, 3, 3)
    x, k, g = (jnp.asarray(rng.standard_normal(s, np.float32)) for s in (x_shape, k_shape, x_shape))

    def conv(x, k):
        return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=dims)

    forward = jax.jit(conv)
    input_grad = jax.jit(lambda k, g: jax.vjp(lambda x: conv(x, k), x)[1](g)[0])
    kernel_grad = jax.jit(lambda x, g: jax.vjp(lambda k: conv(x, k), k)[1](g)[0])
    return {
        "forward": lambda: jax.block_until_ready(forward(x, k)),
        "input grad": lambda: jax.block_until_ready(input_grad(k, g)),
        "kernel grad": lambda: jax.block_until_ready(kernel_grad(x, g)),
    }


def torch_passes(batch: int, side: int, ch: int) -> dict:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, ch, side, side, generator=gen, requires_grad=True)
    k = torch.randn(ch, ch, 3, 3, generator=gen, requires_grad=True)
    g = torch.randn(batch, ch, side, side, generator=gen)

    def forward():
        with torch.no_grad():
            return F.conv2d(x, k, padding=1)

    def grad(of):  # one cotangent alone, as XLA's rows compute it
        return lambda: torch.autograd.grad(F.conv2d(x, k, padding=1), of, g)[0]

    return {"forward": forward, "input grad": grad(x), "kernel grad": grad(k)}


def main(_):
    f = flags.FLAGS
    parallel.xla_cpu_convolutions()  # as train.ddpm runs them (before JAX's backends start)
    shapes = [(4, 8, 8)] if f.quick else [parse_shape(s) for s in f.shapes]
    rounds, min_time = (1, 0.0) if f.quick else (f.rounds, f.min_time)
    systems = {}
    for shape in shapes:
        for layout in LAYOUTS:
            systems[(shape, f"XLA {layout}")] = xla_passes(*shape, layout)
        if f.torch:
            try:
                systems[(shape, "torch NCHW")] = torch_passes(*shape)
            except ImportError:
                pass
    for calls in systems.values():  # compile and warm up before any timing
        for call in calls.values():
            call()
    secs = {}
    for _ in range(rounds):
        for key, calls in systems.items():
            for name, call in calls.items():
                secs.setdefault((*key, name), []).append(time_fn(call, warmup=0, min_time=min_time, min_iters=2))
    print(device_line(), f"| {len(os.sched_getaffinity(0))} threads | medians of {rounds} round(s)")
    print("| batch:side:channels | pass | system | ms | GFLOP/s | torch s / this s |")
    print("|---|---|---|---|---|---|")
    for shape in shapes:
        flop = 2 * shape[0] * shape[1] ** 2 * 9 * shape[2] ** 2
        for name in PASSES:
            torch_s = secs.get((shape, "torch NCHW", name))
            for system in (s for (sh, s) in systems if sh == shape):
                s = statistics.median(secs[(shape, system, name)])
                ratio = f"{statistics.median(torch_s) / s:.2f}" if torch_s else "-"
                label = ":".join(map(str, shape))
                print(f"| {label} | {name} | {system} | {1e3 * s:.2f} | {flop / s / 1e9:.1f} | {ratio} |")


if __name__ == "__main__":
    app.run(main)
