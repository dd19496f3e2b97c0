"""DDPM speed: train-step examples/s, XLA FLOPs per step, achieved GFLOP/s vs this machine's matmul,
and sampling images/s (ancestral over all T steps, DDIM).

    python benchmarks/ddpm_speed.py [--config.batch_size=128 ...]   # same overrides as train.ddpm
"""

from __future__ import annotations

import jax
from absl import app, flags
from ml_collections import config_flags

from benchmarks.common import device_line, matmul_gflops, time_fn, train_step_speed
from train import ddpm as train_ddpm
from zoo import ddpm

config_flags.DEFINE_config_dict("config", train_ddpm.get_config())
flags.DEFINE_integer("sample_images", 64, "Batch of images per sampler call.")


def main(_):
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

    sched = ddpm.schedule_from_name(c.diffusion.schedule, c.diffusion.num_timesteps)
    net = train_ddpm.make_unet(c)
    eps_fn = lambda p: ddpm.as_eps_fn(sched, c.diffusion.prediction, lambda x, t: net.apply({"params": p}, x, t))
    shape = (flags.FLAGS.sample_images, *ds.image_shape)
    anc = jax.jit(lambda p, k: ddpm.sample_ancestral(sched, eps_fn(p), shape, k))
    dd = jax.jit(lambda p, k: ddpm.sample_ddim(sched, eps_fn(p), shape, k, num_steps=c.sample.ddim_steps))
    key, params = jax.random.key(0), state.params
    for name, f in (("ancestral", anc), (f"DDIM {c.sample.ddim_steps} steps", dd)):
        s = time_fn(f, params, key, min_time=1.0, min_iters=1)
        print(
            f"sampling {name:<22} {shape[0] / s:9.1f} images/s  ({s:.2f} s per {shape[0]} images, T={sched.num_steps})"
        )


if __name__ == "__main__":
    app.run(main)
