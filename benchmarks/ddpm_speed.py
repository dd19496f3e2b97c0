"""DDPM speed: train-step examples/s, XLA FLOPs per step, achieved GFLOP/s vs this machine's matmul,
and sampling images/s (ancestral over all T steps; DDIM and DPM-Solver++(2M) over sample.steps).

    python benchmarks/ddpm_speed.py [--config.batch_size=128 ...]   # same overrides as train.ddpm
"""

from __future__ import annotations

import jax
from absl import app, flags
from ml_collections import config_flags

from benchmarks.common import device_line, matmul_gflops, time_fn, train_step_speed
from train import ddpm as train_ddpm
from train.core import parallel
from zoo import ddpm

config_flags.DEFINE_config_dict("config", train_ddpm.get_config())
flags.DEFINE_integer("sample_images", 64, "Batch of images per sampler call.")


def main(_):
    parallel.xla_cpu_convolutions()  # as train.ddpm runs (before JAX's backends start)
    c = flags.FLAGS.config
    secs, flops, (ds, state) = train_step_speed(train_ddpm, c, min_time=5.0)
    peak = matmul_gflops()
    print(device_line())
    print(f"fp32 matmul (2048^3):            {peak:9.1f} GFLOP/s")
    print(f"DDPM train step (batch {c.batch_size}):   {secs * 1e3:9.1f} ms  {c.batch_size / secs:9.1f} examples/s")
    print(f"  XLA FLOPs per step:            {flops / 1e9:9.2f} GFLOP")
    print(
        f"  achieved:                      {flops / secs / 1e9:9.1f} GFLOP/s"
        f" = {100 * flops / secs / 1e9 / peak:.1f}% of matmul"
    )

    image_shape, key, params = ds.image_shape, jax.random.key(0), state.params
    n, T = flags.FLAGS.sample_images, c.diffusion.num_timesteps
    for name in ddpm.SAMPLERS:
        f = train_ddpm.make_sampler(c, image_shape, n, name)
        s = time_fn(f, params, key, min_time=1.0, min_iters=1)
        what = f"{name} {T if name == 'ancestral' else c.sample.steps} steps"
        print(f"sampling {what:<22} {n / s:9.1f} images/s  ({s:.2f} s per {n} images, T={T})")


if __name__ == "__main__":
    app.run(main)
