"""Each sampler of a trained DDPM at 10, 20 and 50 network calls against ancestral sampling over all T steps:
sample quality (FD / precision / recall in the feature classifier's space, against the floor of real images at
the same size) and wall time, each from the same keys.

    python -m benchmarks.ddpm_samplers --workdir runs/ddpm [--num 256] [--keys 0,1] [--steps 10,20,50]

The run's own config (its dataset, the classifier its evaluation used) and EMA parameters, read by
train.ddpm.load; seconds are per --num images after one compiling call of the same shape.
"""

from __future__ import annotations

import argparse
import time

import jax

from benchmarks.common import device_line
from train import ddpm
from train.data import images as data
from train.evaluation import images as evaluation


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", required=True, help="a train.ddpm run")
    p.add_argument("--num", type=int, default=256, help="images per sampler and key")
    p.add_argument("--keys", default="0,1", help="comma-separated sampling seeds")
    p.add_argument("--steps", default="10,20,50", help="network calls of ddim and dpmpp_2m")
    p.add_argument("--samplers", default="ddim,dpmpp_2m", help="the few-step samplers")
    a = p.parse_args(argv)
    model = ddpm.load(a.workdir)
    quality = evaluation.SampleQuality(model.config, data.images_of(model.config))
    keys = [int(k) for k in a.keys.split(",")]
    T = model.config.diffusion.num_timesteps
    settings = [("ancestral", T)] + [(s, int(n)) for n in a.steps.split(",") for s in a.samplers.split(",")]
    print(device_line())
    print(f"{a.workdir}: step {model.step}, variance {model.config.diffusion.variance}, {a.num} images per key")
    print("| sampler | network calls | FD (per key) | precision | recall | s per batch | images/s |")
    print("|---|---|---|---|---|---|---|")
    for sampler, steps in settings:
        over = {"sampler": sampler, "steps": min(steps, T), "batch_size": a.num}
        model.sample(jax.random.key(99), a.num, **over)  # compile
        figs, secs = [], []
        for k in keys:
            t0 = time.perf_counter()
            images = model.sample(jax.random.key(k), a.num, **over)
            secs.append(time.perf_counter() - t0)
            figs.append(quality(images))
        col = lambda name, f: " / ".join(f.format(x[name]) for x in figs)
        s = min(secs)
        print(
            f"| {sampler} | {steps} | {col('fd', '{:.2f}')} | {col('precision', '{:.3f}')} | "
            f"{col('recall', '{:.3f}')} | {s:.2f} | {a.num / s:.0f} |",
            flush=True,
        )
    f = figs[0]  # the real-vs-real floor at the same size, from the test split's point of view
    print(
        f"floor (real vs real, {a.num}): FD {f['ref_fd']:.2f} precision {f['ref_precision']:.3f} "
        f"recall {f['ref_recall']:.3f}; classifier test accuracy {f['classifier_test_accuracy']:.4f}"
    )


if __name__ == "__main__":
    main()
