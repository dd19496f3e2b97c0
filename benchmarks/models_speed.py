"""VAE and GAN speed: train-step examples/s, XLA FLOPs per step, achieved GFLOP/s and its share of the fp32
matmul GFLOP/s of this machine, measured in the same run.

    python -m benchmarks.models_speed [--models=vae,gan,autoencoder] [--batch_size=128] [--min_time=5]

Each model runs its default config (train.<model>.get_config()) with the given batch size, through the same
jitted step the training loop uses (loop.compile_step), on one fixed batch of the default dataset.
"""

from __future__ import annotations

from absl import app, flags

from benchmarks.common import device_line, matmul_gflops, train_step_speed
from train import autoencoder, gan, vae

MODULES = {"vae": vae, "gan": gan, "autoencoder": autoencoder}

flags.DEFINE_list("models", ["vae", "gan"], f"Models to time, of {sorted(MODULES)}.")
flags.DEFINE_integer("batch_size", 0, "Global batch per step (0: each model's default).")
flags.DEFINE_float("min_time", 5.0, "Seconds of timed steps per model.")
flags.DEFINE_string("data_dir", "", "TFDS data dir ('' = default).")


def step_speed(name: str, batch_size: int, min_time: float, data_dir: str) -> dict:
    """Seconds per train step, XLA FLOPs per step and the batch size of a model's default config."""
    module = MODULES[name]
    c = module.get_config()
    if batch_size:
        c.batch_size = batch_size
    c.data_dir = data_dir
    module.SCHEMA.check(c)
    secs, flops, _ = train_step_speed(module, c, min_time=min_time)
    return {"secs": secs, "flops": flops, "batch_size": c.batch_size, "arch": c.model.arch}


def main(_):
    f = flags.FLAGS
    unknown = [m for m in f.models if m not in MODULES]
    if unknown:
        raise app.UsageError(f"--models: unknown {unknown}; accepted: {sorted(MODULES)}")
    results = {m: step_speed(m, f.batch_size, f.min_time, f.data_dir) for m in f.models}
    peak = matmul_gflops()  # after the models: the same machine state as their timings
    print(device_line())
    print(f"fp32 matmul (2048^3):                 {peak:10.1f} GFLOP/s")
    for m, r in results.items():
        achieved = r["flops"] / r["secs"] / 1e9
        print(
            f"{m} ({r['arch']}) train step, batch {r['batch_size']}: {r['secs'] * 1e3:8.2f} ms  "
            f"{r['batch_size'] / r['secs']:10.1f} examples/s"
        )
        print(f"  XLA FLOPs per step:                 {r['flops'] / 1e6:10.2f} MFLOP")
        print(
            f"  achieved:                           {achieved:10.2f} GFLOP/s = {100 * achieved / peak:.2f}% of matmul"
        )


if __name__ == "__main__":
    app.run(main)
