"""Seconds per training step of the feature classifier's large recipes on 5000 real 28x28 MNIST digits.

    python -m benchmarks.classifier_steps --out DIR [--steps 100]

times `--steps` steps (after one compiled warm-up step) of recipe v2 (widths 32-64-128, two convs per stage: 3000
steps on mnist5k) and of today's large recipe (train.evaluation.images.classifier_recipe) at batch 128 with shifted
copies, and prints each one's seconds per step and its steps on mnist5k times that (the training time without the
held-out checks). DIR/mnist5k.npz is written as benchmarks.real_digits writes it when missing.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="directory of mnist5k.npz")
    p.add_argument("--steps", type=int, default=100, help="timed steps per recipe")
    a = p.parse_args(argv)
    import optax

    from benchmarks.real_digits import mnist5k
    from train.evaluation import images as evaluation
    from zoo.classifier import Classifier

    path = os.path.join(a.out, "mnist5k.npz")
    if not os.path.exists(path):
        os.makedirs(a.out, exist_ok=True)
        np.savez(path, **mnist5k())
    d = np.load(path)
    new = evaluation.classifier_recipe((28, 28, 1))
    recipes = {
        "v2 (widths 32-64-128, 2 convs per stage)": (dict(widths=(32, 64, 128), convs_per_stage=2), 3000, 2e-3),
        f"{new.name}": (new.arch, evaluation.DEFAULT_STEPS * new.steps_factor, new.learning_rate),
    }
    for name, (arch, steps, lr) in recipes.items():
        net = Classifier(num_classes=10, **arch)
        params = net.init(jax.random.key(0), np.zeros((1, 28, 28, 1), np.float32))["params"]
        tx = optax.adam(lr)
        opt_state = tx.init(params)
        step = evaluation._classifier_step(net, tx, d["x"], d["y"], 128, evaluation.SHIFT, scheduled=False)
        params, opt_state, loss = jax.block_until_ready(step(params, opt_state, jax.random.key(1), 0.0))
        t0 = time.perf_counter()
        for s in range(a.steps):
            params, opt_state, loss = step(params, opt_state, jax.random.key(s + 2), 0.0)
        jax.block_until_ready(params)
        per_step = (time.perf_counter() - t0) / a.steps
        print(f"{name}: {per_step:.3f} s/step x {steps} steps = {per_step * steps / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
