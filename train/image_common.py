"""What the image models' entry points share (train.autoencoder, train.pca, train.vae, train.gan).

Pixel scaling (uint8 -> [0, 1] or [-1, 1] and back), the `eval` config block and its checks, the dataset
as arrays, a batched apply, sample-quality figures (train.evaluation's FD and precision/recall against the
test split, next to the real-vs-real floor at the same sample size), and the figures written as PNGs:
reconstruction grids, latent interpolation strips and 2-D latent scatter plots coloured by label.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from train.core import config as config_lib
from train.core.errors import ConfigError
from train.core.writers import image_grid, to_uint8
from train.data import images as data

# ----------------------------------------------------------------------------- pixels

def to_unit(images):
    """uint8 pixels 0..255 -> floats in [0, 1]."""
    return jnp.asarray(images).astype(jnp.float32) / 255.0


def to_signed(images):
    """uint8 pixels 0..255 -> floats in [-1, 1]."""
    return jnp.asarray(images).astype(jnp.float32) / 127.5 - 1.0


def unit_to_uint8(x) -> np.ndarray:
    return to_uint8(np.asarray(x), 0.0, 1.0)


def signed_to_uint8(x) -> np.ndarray:
    return to_uint8(np.asarray(x), -1.0, 1.0)


# ----------------------------------------------------------------------------- config

def eval_config(num_samples: int = 500, **extra) -> ml_collections.ConfigDict:
    """The `eval` block: sample-quality sample size, the feature classifier's training, grids, test examples."""
    return ml_collections.ConfigDict(dict(
        num_samples=num_samples,   # generated images scored by FD / precision / recall (0: skip sample quality)
        classifier_steps=1000,     # steps of the feature classifier (trained once per dataset, cached in data_dir)
        pr_k=3,                    # neighbours of the k-NN precision/recall manifolds
        test_examples=0,           # test images in likelihood / reconstruction figures (0: the whole test split)
        grid_images=64,            # images per samples PNG
        **extra))


def check_values(c, *, positive_ints=(), non_negative_ints=(), positive_floats=(), non_negative_floats=()) -> None:
    """ConfigError naming the first (possibly dotted) key whose value is of the wrong kind; a float key's
    bound holds for its sweep values (config.sweep.<key>) too."""
    config_lib.check(c, positive_ints=positive_ints, non_negative_ints=non_negative_ints)
    for keys, ok, what in ((positive_floats, lambda v: v > 0, "> 0"), (non_negative_floats, lambda v: v >= 0, ">= 0")):
        good = lambda v: not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and ok(v)
        for key in keys:
            found, v = config_lib._lookup(c, key)
            if found and not good(v):
                raise ConfigError(f"config.{key}={v!r} must be a finite number {what}")
            found, values = config_lib._lookup(c, f"sweep.{key}")
            if found and not all(good(v) for v in values):
                raise ConfigError(f"config.sweep.{key}={tuple(values)} must be finite numbers {what}")


def check_eval_config(c) -> None:
    check_values(c, positive_ints=("eval.classifier_steps", "eval.pr_k", "eval.grid_images"),
                 non_negative_ints=("eval.num_samples", "eval.test_examples"))
    if c.eval.num_samples and c.eval.num_samples < c.eval.pr_k + 1:
        raise ConfigError(f"config.eval.num_samples={c.eval.num_samples} must be 0 (no sample quality) or at least "
                          f"config.eval.pr_k + 1 = {c.eval.pr_k + 1}")


def check_dataset_for_eval(c, ds: data.ImageData) -> None:
    """DataError before any write when the test split is too small for the configured figures."""
    if c.eval.num_samples and len(ds.test) < c.eval.pr_k + 1:
        raise data.DataError(f"dataset {ds.name!r}: the test split has {len(ds.test)} images; sample quality needs at "
                             f"least config.eval.pr_k + 1 = {c.eval.pr_k + 1} (or set --config.eval.num_samples=0)")


def check_positive_tuple(c, key: str) -> tuple[int, ...]:
    found, v = config_lib._lookup(c, key)
    try:
        t = tuple(v)
    except TypeError:
        t = None
    if not t or any(isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in t):
        raise ConfigError(f"config.{key}={v!r} must be a non-empty tuple of positive integers")
    return t


# ----------------------------------------------------------------------------- arrays

def split_arrays(source, limit: int = 0) -> dict[str, np.ndarray]:
    """A split as {'image': uint8 [N,H,W,C], 'label': int [N]}; limit 0 = all of it."""
    return data.as_arrays(source, limit or None)


def batched(fn, *arrays, batch_size: int = 1000):
    """fn(*chunks) over chunks of the arrays' leading axis, the last padded to one compiled shape; outputs
    (arrays or tuples of them) concatenated and cut back to the arrays' length."""
    arrays = [np.asarray(a) for a in arrays]
    n = len(arrays[0])
    bs = min(batch_size, n)
    outs = []
    for i in range(0, n, bs):
        chunks = [a[i:i + bs] for a in arrays]
        m = len(chunks[0])
        if m < bs:
            chunks = [np.concatenate([a, np.repeat(a[-1:], bs - m, axis=0)]) for a in chunks]
        outs.append(jax.tree.map(lambda a: np.asarray(a)[:m], fn(*chunks)))
    return jax.tree.map(lambda *a: np.concatenate(a), *outs)


# ----------------------------------------------------------------------------- sample quality

class SampleQuality:
    """FD, precision and recall of generated uint8 images against the test split (train.evaluation), plus the
    real-vs-real floor at the same sample size (ref_*). The feature classifier is built on first use."""

    def __init__(self, c, ds: data.ImageData):
        self.ds, self.data_dir = ds, c.data_dir or None
        self.steps, self.k, self.num_samples = c.eval.classifier_steps, c.eval.pr_k, c.eval.num_samples
        self._evaluator = None

    @property
    def enabled(self) -> bool:
        return self.num_samples > 0

    @property
    def evaluator(self):
        if self._evaluator is None:
            from train.evaluation.images import ImageEvaluator
            self._evaluator = ImageEvaluator(self.ds, self.data_dir, steps=self.steps, k=self.k)
        return self._evaluator

    def __call__(self, images: np.ndarray) -> dict:
        ev = self.evaluator
        q = ev.sample_quality(images)
        out = {"fd": q["fd"], "precision": q["precision"], "recall": q["recall"],
               "classifier_test_accuracy": q["classifier_test_accuracy"]}
        n = len(images)
        if ev.k + 1 <= n <= len(self.ds.train):
            ref = ev.reference_figures(n)
            out.update(ref_fd=ref["ref_fd"], ref_precision=ref["ref_precision"], ref_recall=ref["ref_recall"])
        return out


def eval_key(seed: int, step: int) -> jax.Array:
    """Randomness of the evaluation at `step`, independent of every training key."""
    return jax.random.fold_in(jax.random.key(seed), 1_000_003 + step)


# ----------------------------------------------------------------------------- figures

def samples_grid(images_uint8: np.ndarray, ncol: int | None = None) -> np.ndarray:
    return image_grid(images_uint8, ncol)


def reconstruction_grid(originals: np.ndarray, recons: np.ndarray, ncol: int = 8) -> np.ndarray:
    """Rows alternate: ncol test images, then their reconstructions beneath them."""
    originals, recons = np.asarray(originals), np.asarray(recons)
    n = (len(originals) // ncol) * ncol or len(originals)
    ncol = min(ncol, n)
    rows = []
    for i in range(0, n, ncol):
        rows += [originals[i:i + ncol], recons[i:i + ncol]]
    return image_grid(np.concatenate(rows), ncol)


def interpolate(z0, z1, num_steps: int) -> jax.Array:
    """Linear paths z0 -> z1 of num_steps points (ends included): [P, L], [P, L] -> [P * num_steps, L]."""
    t = jnp.linspace(0.0, 1.0, num_steps)[None, :, None]
    z = (1.0 - t) * z0[:, None, :] + t * z1[:, None, :]
    return z.reshape(-1, z0.shape[-1])


def interpolation_strip(decoded: np.ndarray, num_rows: int, left=None, right=None) -> np.ndarray:
    """One row per path: [left original,] decoded points..., [right original]; decoded [P * n, H, W, C] uint8."""
    decoded = np.asarray(decoded)
    per = decoded.reshape(num_rows, -1, *decoded.shape[1:])
    parts = ([np.asarray(left)[:, None]] if left is not None else []) + [per] + \
            ([np.asarray(right)[:, None]] if right is not None else [])
    rows = np.concatenate(parts, axis=1)
    return image_grid(rows.reshape(-1, *decoded.shape[1:]), rows.shape[1])


def project_2d(codes) -> tuple[np.ndarray, tuple[str, str]]:
    """Codes [N, L] as 2-D points: themselves for L <= 2 (zero-padded), else their top two principal components."""
    codes = np.asarray(codes, np.float32)
    if codes.shape[1] == 1:
        return np.concatenate([codes, np.zeros_like(codes)], 1), ("z1", "")
    if codes.shape[1] == 2:
        return codes, ("z1", "z2")
    from zoo import pca
    p = pca.pca_fit(jnp.asarray(codes), 2)
    return np.asarray(pca.pca_transform(p, jnp.asarray(codes))), ("PC1 of codes", "PC2 of codes")


def latent_scatter(codes, labels, title: str) -> np.ndarray:
    """A 2-D scatter of codes [N, L] (projected by PCA when L > 2) coloured by label, as a uint8 RGB image."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points, (xlabel, ylabel) = project_2d(codes)
    labels = np.asarray(labels)
    fig = Figure(figsize=(5, 4.4), dpi=80)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    classes = np.unique(labels)
    for i, y in enumerate(classes):
        m = labels == y
        ax.scatter(points[m, 0], points[m, 1], s=8, alpha=0.8, color=f"C{i % 10}", label=str(y))
    if 1 < len(classes) <= 20:
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, markerscale=1.5, frameon=False)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()

