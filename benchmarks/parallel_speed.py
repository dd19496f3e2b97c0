"""Step time of each image model on 1 and on N devices, and model FLOPs utilisation (MFU) on accelerators.

    python -m benchmarks.parallel_speed [--devices=8] [--models=ddpm,vae,gan,autoencoder] [--dtype=bfloat16]

On CPU, N devices are simulated (XLA_FLAGS=--xla_force_host_platform_device_count=N) in a child process:
the figures say nothing about speed, they show the overhead of sharding the batch over N devices.
On a GPU/TPU, the table adds MFU = XLA FLOPs per step / step time / the chip's peak (--peak_tflops,
or the known dense peak of H100/H200/A100 and TPU v4/v5e for the chosen dtype).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

from absl import app, flags

flags.DEFINE_integer("devices", 8, "Simulated CPU devices for the N-device column.")
flags.DEFINE_string("models", "ddpm,vae,gan,autoencoder", "Comma-separated train modules with make_task(c, ds).")
flags.DEFINE_string("dtype", "float32", "Compute dtype: float32 or bfloat16.")
flags.DEFINE_integer("batch_size", 64, "Global batch size.")
flags.DEFINE_float("peak_tflops", 0.0, "Peak TFLOP/s of one device for MFU (0: look it up by device kind).")
flags.DEFINE_bool("child", False, "Internal: measure in this process and print JSON.")

# Dense peak TFLOP/s per chip (vendor figures, no sparsity).
PEAKS = {
    "H100": {"float32": 67.0, "bfloat16": 989.0},
    "H200": {"float32": 67.0, "bfloat16": 989.0},
    "A100": {"float32": 19.5, "bfloat16": 312.0},
    "TPU v4": {"bfloat16": 275.0},
    "TPU v5 lite": {"bfloat16": 197.0},
}


def measure(model: str, dtype: str, batch_size: int) -> dict:
    import jax

    from benchmarks.common import flops_of, time_fn
    from train.core import loop, parallel
    from train.data import images as data

    module = importlib.import_module(f"train.{model}")
    c = module.get_config()
    c.batch_size, c.dtype = batch_size, dtype
    ds = data.load_images(c.dataset, c.data_dir or None)
    task = module.make_task(c, ds)
    mesh = parallel.data_mesh()
    state, step = loop.init_state(task, c, mesh), loop.compile_step(task, c, mesh)
    batch = parallel.shard_batch(next(data.batches(ds.train, c.batch_size, 0)), mesh)
    flops = flops_of(step, state, batch)  # per device program: XLA counts the partitioned module
    holder = [state]

    def one():
        holder[0], metrics, _ = step(holder[0], batch)
        return metrics

    secs = time_fn(one, min_time=3.0)
    dev = jax.devices()[0]
    return {
        "model": model,
        "devices": jax.device_count(),
        "kind": dev.device_kind,
        "platform": dev.platform,
        "step_ms": 1e3 * secs,
        "examples_per_sec": batch_size / secs,
        "gflops_per_step": flops / 1e9,
    }


def main(_):
    f = flags.FLAGS
    models = [m for m in f.models.split(",") if m]
    if f.child:
        for m in models:
            print("RESULT " + json.dumps(measure(m, f.dtype, f.batch_size)), flush=True)
        return
    rows = {}
    for n in (1, f.devices):
        env = dict(os.environ)
        import jax

        if jax.default_backend() == "cpu":
            env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={n}".strip()
        elif n != jax.device_count() and n != 1:
            continue
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.parallel_speed",
                "--child",
                f"--models={f.models}",
                f"--dtype={f.dtype}",
                f"--batch_size={f.batch_size}",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for line in out.splitlines():
            if line.startswith("RESULT "):
                r = json.loads(line[7:])
                rows[(r["model"], r["devices"])] = r
    print(f"{'model':<12} {'devices':>7} {'step ms':>9} {'examples/s':>11} {'GFLOP/step':>11} {'MFU':>6}")
    for (model, n), r in sorted(rows.items()):
        peak = f.peak_tflops or next((p.get(f.dtype, 0.0) for k, p in PEAKS.items() if k in r["kind"]), 0.0)
        mfu = (
            f"{100 * r['gflops_per_step'] / (r['step_ms'] / 1e3) / (peak * 1e3):5.1f}%"
            if peak and r["platform"] != "cpu"
            else "    -"
        )
        print(
            f"{model:<12} {n:>7} {r['step_ms']:>9.1f} {r['examples_per_sec']:>11.1f}"
            f" {r['gflops_per_step']:>11.2f} {mfu}"
        )


if __name__ == "__main__":
    app.run(main)
