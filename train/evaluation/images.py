"""Sample quality without downloads, shared by every image model.

Frechet distance (FD) and k-NN precision/recall (zoo.metrics) need a fixed embedding of images. We
train one: zoo.classifier.Classifier on the dataset's own train split (Adam, a fixed number of steps,
seeded), report its test accuracy, and embed images with its pooled penultimate features. It is
trained once per (dataset, image shape, classes, steps, seed) and cached in the data dir:

    <data_dir>/zoo_feature_classifier/<key>.msgpack   flax.serialization bytes of the parameters
    <data_dir>/zoo_feature_classifier/<key>.json      test accuracy, sizes, training time

<key> names the dataset (a TFDS name, or for 'npz:PATH' a hash of the file's content), the image
shape and the classifier's settings. A file lock (fcntl.flock on <key>.lock) makes concurrent
processes train it once; files are written to temporary names and renamed into place, so a
crash never leaves a half-written cache behind.

Reading the figures. FD is a squared distance between Gaussians fitted to the two feature sets;
it is biased upwards for small sample sizes (the covariance estimates are noisy), so compare FDs
only at equal sample sizes. `ImageEvaluator.reference_figures(n)` gives the real-vs-real floor
(n train images against the test split) to compare a model's `sample_quality` of n images with.
Precision is the fraction of generated images inside the k-NN manifold of the test images
(fidelity), recall the fraction of test images inside the manifold of the generated ones
(coverage; it too grows with the number of generated images).

Example:
    ev = ImageEvaluator(data.load_images('digits', data_dir), data_dir)
    ev.sample_quality(uint8_samples)   # {'fd': ..., 'precision': ..., 'recall': ..., 'fd_num_samples': ...}
    ev.reference_figures(len(uint8_samples))
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import importlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from train.core import files
from train.core.config import Key
from train.core.errors import ConfigError
from train.data import images as data
from zoo import classifier as classifier_lib, metrics

CACHE_SUBDIR = "zoo_feature_classifier"
# Two recipes by image size. Images under LARGE_FROM pixels a side (the embedded 8x8 digits) keep the small network,
# its budget and every figure measured with it; larger ones (28x28 digits, 32x32 photos) get a deeper network (a
# fourth stage: 28 -> 14 -> 7 -> 4 pixels) trained on copies shifted by up to SHIFT pixels (zero padded) for
# LARGE_STEPS_FACTOR times the configured steps at LARGE_LEARNING_RATE, which the small one could not use (0.88 test
# accuracy on real 28x28 digits in 1000 steps). Recipe v3's step takes a fifth of the time of v2's (widths 32-64-128,
# two convs per stage; a ninth of its FLOPs) and it runs two thirds of v2's steps: about 3 min instead of 13-20 on 2
# CPU cores for 5000 real digits, test accuracy 0.982 and 0.984 (two seeds; v1/v2: 0.984; docs/images.md).
SMALL_ARCH = dict(widths=(16, 32, 64), convs_per_stage=1)  # part of the cache key: change it and the key changes
LARGE_ARCH = dict(widths=(16, 32, 64, 128), convs_per_stage=1)
LARGE_FROM, SHIFT, LARGE_STEPS_FACTOR, LARGE_LEARNING_RATE = 16, 2, 2, 1e-2
DEFAULT_STEPS = 1000
# The budget scales with the dataset: the recipe's steps up to SCALE_FROM train images, proportionally more beyond
# (at most MAX_STEPS); a budget beyond the recipe's steps holds out VALIDATION_SHARE of the train split (at most
# MAX_VALIDATION images) and stops once its accuracy has not improved for PATIENCE checks, CHECK_EVERY steps apart.
SCALE_FROM, MAX_STEPS, CHECK_EVERY, PATIENCE = 4000, 20_000, 500, 3
# ... then cools the rate down linearly over COOLDOWN_SHARE of the steps run (from COOLDOWN_FROM of the budget
# on at the latest): _train_classifier.
COOLDOWN_FROM, COOLDOWN_SHARE = 0.8, 0.25
VALIDATION_SHARE, MAX_VALIDATION = 0.1, 5000
BATCH_SIZE = 128
LEARNING_RATE = 2e-3
FEATURE_BATCH = 500
INCEPTION_BATCH = 50  # pytorch-fid's default batch
INCEPTION_DIMS = 2048
FEATURES = ("classifier", "inception")
INCEPTION_ACCEPTED = "pytorch-fid's pt_inception-2015-12-05 weights file (nothing is downloaded)"


# ----------------------------------------------------------------------------- cache key and files


def default_data_dir() -> str:
    from tensorflow_datasets.core import constants

    return constants.DATA_DIR


def dataset_key(ds: data.ImageData) -> str:
    """The name of the dataset's content its source declares (ImageData.content_key: the TFDS name, or npz- or
    images- and a hash of the bytes read), so the classifier's cache follows the content, not the path."""
    if not ds.content_key:
        raise ValueError(f"dataset {ds.name!r} declares no content_key; its source must name its content")
    return ds.content_key


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How the feature classifier of one image size is built and trained."""

    arch: dict
    shift: int  # training images are shifted by up to this many pixels (0: as they are)
    steps_factor: int  # times the configured steps
    version: str  # part of the cache key: a change of how it trains changes the key
    learning_rate: float = LEARNING_RATE  # Adam's peak rate

    @property
    def name(self) -> str:
        widths = "-".join(map(str, self.arch["widths"]))
        return f"{self.version}-w{widths}-n{self.arch['convs_per_stage']}" + (f"-s{self.shift}" if self.shift else "")


def classifier_recipe(image_shape) -> Recipe:
    """The small recipe for images under LARGE_FROM pixels a side, the large one from there."""
    if min(image_shape[:2]) < LARGE_FROM:
        return Recipe(SMALL_ARCH, 0, 1, "v1")
    # v2: the cooldown after the plateau; v3: the cheaper network at a higher rate
    return Recipe(LARGE_ARCH, SHIFT, LARGE_STEPS_FACTOR, "v3", LARGE_LEARNING_RATE)


def cache_key(ds: data.ImageData, *, steps: int, seed: int) -> str:
    h, w, c = ds.image_shape
    recipe = classifier_recipe(ds.image_shape)
    return f"{dataset_key(ds)}_{h}x{w}x{c}_c{ds.num_classes}_{recipe.name}_steps{steps}_seed{seed}"


@contextlib.contextmanager
def _file_lock(path: str):
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _atomic_write(path: str, payload: bytes) -> None:
    with files.atomic_write(path) as f:
        f.write(payload)


# ----------------------------------------------------------------------------- training


def _train_classifier(
    net: classifier_lib.Classifier,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    steps: int,
    seed: int,
    batch_size: int = BATCH_SIZE,
    learning_rate: float = LEARNING_RATE,
    validate: Callable | None = None,
    shift: int = 0,
    bar=None,
):
    """Adam on random minibatches (with replacement) of the train split; with shift > 0 each image of a minibatch
    is moved by a uniform integer offset in [-shift, shift] per axis (zero padded). Returns (params, steps run).

    Without `validate`: warmup + cosine decay over `steps`. With `validate` (params -> (held-out accuracy, loss)):
    the rate of PlateauCooldown, and the parameters of the best check (a higher accuracy, or the same with a lower
    loss). Early stopping under a cosine schedule stopped where the rate was still high (0.989 test accuracy on
    10,000 real digits); a cooldown after the plateau gains what the decay would (0.9925; docs/images.md).
    `bar` (a tqdm bar, or None) is advanced by the steps run."""
    key = jax.random.key(seed)
    params = net.init(jax.random.fold_in(key, -1 & 0x7FFFFFFF), data.to_signed(images[:1]))["params"]
    if steps == 0:
        return params, 0
    warmup = min(50, steps // 4)
    if validate is None:
        tx = optax.adam(optax.warmup_cosine_decay_schedule(0.0, learning_rate, warmup, steps, end_value=0.0))
    else:  # the rate comes with each step (it depends on the checks)
        tx = optax.inject_hyperparams(optax.adam)(learning_rate=0.0)
    opt_state = tx.init(params)
    step = _classifier_step(net, tx, images, labels, batch_size, shift, scheduled=validate is not None)
    advance = _advance(bar)

    if validate is None:
        for s in range(steps):
            params, opt_state, loss = step(params, opt_state, jax.random.fold_in(key, s), 0.0)
            advance(s, loss)
        return jax.block_until_ready(params), steps

    plan, best, best_score = PlateauCooldown(steps, learning_rate, warmup), params, (-1.0, 0.0)
    for s in range(steps):
        params, opt_state, loss = step(params, opt_state, jax.random.fold_in(key, s), plan.rate(s))
        advance(s, loss)
        if not plan.checks_after(s):
            continue
        acc, loss = validate(params)
        improved = (acc, -loss) > best_score  # a higher accuracy, or the same with a lower loss
        if improved:
            best, best_score = params, (acc, -loss)
        if plan.check(s, improved):
            return jax.block_until_ready(best), s + 1
    return jax.block_until_ready(best), steps


def _classifier_step(net, tx, images, labels, batch_size: int, shift: int, *, scheduled: bool):
    """The jitted step (params, opt_state, key, rate) -> (params, opt_state, loss) on a random minibatch; `rate`
    is the learning rate of an optimizer made with optax.inject_hyperparams when `scheduled`, else unused."""
    x_all, y_all = jnp.asarray(images), jnp.asarray(labels, jnp.int32)
    n = len(images)
    bs = min(batch_size, n)

    @jax.jit
    def step(params, opt_state, k, lr):
        k_idx, k_shift = jax.random.split(k)
        idx = jax.random.randint(k_idx, (bs,), 0, n)
        x = shifted(x_all[idx], jax.random.randint(k_shift, (bs, 2), -shift, shift + 1), shift) if shift else x_all[idx]

        def loss_fn(p):
            return classifier_lib.cross_entropy_loss(net.apply({"params": p}, data.to_signed(x)), y_all[idx])

        if scheduled:
            opt_state = opt_state._replace(hyperparams={**opt_state.hyperparams, "learning_rate": lr})
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


BAR_EVERY = 10  # the bar waits for the step in flight every this many steps (JAX dispatches steps ahead)


def _advance(bar) -> Callable:
    """(s, loss) -> None: moves `bar` to step s + 1 every BAR_EVERY steps, once the step has run (no-op without
    a bar, or a disabled one)."""
    if bar is None or bar.disable:
        return lambda s, loss: None

    def advance(s, loss):
        if (s + 1) % BAR_EVERY == 0:
            jax.block_until_ready(loss)
            bar.update(s + 1 - bar.n)

    return advance


BAR_PURPOSE = "training the feature classifier for sample-quality figures (once per dataset; cached in {root})"
# the counters and ETA first, so that a narrow terminal trims the purpose rather than the ETA
BAR_FORMAT = "{percentage:3.0f}%|{bar:12}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}] {desc}"


def classifier_bar(total: int, root: str, verbose: bool):
    """The tqdm bar on stderr of the classifier's training: its steps, ETA and what it is for. Disabled when not
    verbose, off the lead process, or (tqdm decides) when stderr is not a terminal."""
    return tqdm(
        total=total,
        desc=BAR_PURPOSE.format(root=root),
        unit="step",
        bar_format=BAR_FORMAT,
        file=sys.stderr,
        leave=False,
        disable=None if verbose and jax.process_index() == 0 else True,
    )


@dataclasses.dataclass
class PlateauCooldown:
    """The rate of an early-stopped run: linear warmup over `warmup` steps, then `peak` until PATIENCE checks
    (every CHECK_EVERY steps) brought no improvement or COOLDOWN_FROM of `steps` have run, then a linear cooldown
    to 0 over COOLDOWN_SHARE of the steps run so far (at least CHECK_EVERY, within `steps`), then stop."""

    steps: int
    peak: float
    warmup: int
    since: int = 0  # checks without improvement
    cool_start: int | None = None
    cool_len: int = 0

    def rate(self, s: int) -> float:
        if s < self.warmup:
            return self.peak * (s + 1) / self.warmup
        if self.cool_start is None or s < self.cool_start:
            return self.peak
        return self.peak * max(0.0, 1.0 - (s - self.cool_start) / self.cool_len)

    def _cooled(self, s: int) -> bool:
        return self.cool_start is not None and s + 1 >= self.cool_start + self.cool_len

    def checks_after(self, s: int) -> bool:
        """Whether the held-out set is checked after step s (0-based): every CHECK_EVERY, at the end of the
        cooldown and of the budget."""
        return (s + 1) % CHECK_EVERY == 0 or s + 1 == self.steps or self._cooled(s)

    def check(self, s: int, improved: bool) -> bool:
        """Records the check after step s; True: stop here (the cooldown is over, or no step is left for one)."""
        self.since = 0 if improved else self.since + 1
        if self._cooled(s):
            return True
        if self.cool_start is None and (self.since >= PATIENCE or s + 1 >= COOLDOWN_FROM * self.steps):
            self.cool_start = s + 1
            self.cool_len = min(max(CHECK_EVERY, math.ceil(COOLDOWN_SHARE * self.cool_start)), self.steps - s - 1)
            return self.cool_len <= 0
        return False


def shifted(images: jax.Array, offsets: jax.Array, max_shift: int) -> jax.Array:
    """images [B, H, W, C] moved by integer offsets [B, 2] in [-max_shift, max_shift] (rows, columns; positive:
    down, right), zero padded."""
    h, w, c = images.shape[1:]
    padded = jnp.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)))
    take = lambda im, o: jax.lax.dynamic_slice(im, (max_shift - o[0], max_shift - o[1], 0), (h, w, c))
    return jax.vmap(take)(padded, offsets)


def classifier_budget(num_train: int, steps: int) -> int:
    """Steps of the feature classifier: `steps` for up to SCALE_FROM train images, steps * num_train / SCALE_FROM
    beyond, at most MAX_STEPS (and never fewer than `steps`)."""
    return max(steps, min(MAX_STEPS, math.ceil(steps * num_train / SCALE_FROM)))


@dataclasses.dataclass
class FeatureExtractor:
    """A trained classifier's feature map: features(uint8 [N,H,W,C]) -> float32 [N, D]."""

    kind = "classifier"

    net: classifier_lib.Classifier
    params: Any
    image_shape: tuple[int, int, int]
    test_accuracy: float
    info: dict
    cache_path: str
    batch_size: int = FEATURE_BATCH

    def __post_init__(self):
        self._apply = jax.jit(lambda p, x: self.net.apply({"params": p}, data.to_signed(x), features=True))

    @property
    def feature_dim(self) -> int:
        return int(self.net.widths[-1])

    def check_images(self, images, fn: str = "features") -> np.ndarray:
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise ValueError(
                f"{fn}: images must be uint8 pixels 0..255 of shape [N, {', '.join(map(str, self.image_shape))}]"
                f", got dtype {images.dtype}"
            )
        if images.ndim == 3 and self.image_shape[-1] == 1:
            images = images[..., None]
        if images.ndim != 4 or tuple(images.shape[1:]) != tuple(self.image_shape):
            raise ValueError(
                f"{fn}: images must have shape [N, {', '.join(map(str, self.image_shape))}] (the "
                f"dataset's image shape), got {images.shape}"
            )
        return images

    def logits_and_features(self, images, params=None) -> tuple[np.ndarray, np.ndarray]:
        """(logits, features) of uint8 images, with the extractor's parameters or the given ones."""
        params = self.params if params is None else params
        images = self.check_images(images)
        n, bs = len(images), self.batch_size
        logits, feats = [], []
        for i in range(0, n, bs):
            chunk = images[i : i + bs]
            if len(chunk) < bs and n > bs:  # pad to one compiled shape
                chunk = np.concatenate([chunk, np.zeros((bs - len(chunk), *chunk.shape[1:]), np.uint8)])
            lg, ft = self._apply(params, chunk)
            m = min(bs, n - i)
            logits.append(np.asarray(lg)[:m])
            feats.append(np.asarray(ft)[:m])
        if not feats:
            return np.zeros((0, 0), np.float32), np.zeros((0, self.feature_dim), np.float32)
        return np.concatenate(logits), np.concatenate(feats)

    def features(self, images) -> np.ndarray:
        """Pooled penultimate features, float32 [N, feature_dim]."""
        return self.logits_and_features(images)[1]

    def accuracy(self, images, labels, params=None) -> float:
        return self.accuracy_and_loss(images, labels, params)[0]

    def accuracy_and_loss(self, images, labels, params=None) -> tuple[float, float]:
        """(accuracy, mean cross-entropy) on labelled uint8 images."""
        logits, _ = self.logits_and_features(images, params)
        labels = np.asarray(labels)
        loss = float(classifier_lib.cross_entropy_loss(jnp.asarray(logits), jnp.asarray(labels, jnp.int32)))
        return float(np.mean(np.argmax(logits, -1) == labels)), loss


class InceptionExtractor:
    """pytorch-fid's InceptionV3 of a weights file as the feature map: logits_and_features(uint8 [N, H, W, 1 or 3])
    -> (1008-way logits, pool features float32 [N, 2048]), any size (zoo.inception resizes to 299x299), grey images
    repeated to RGB as PIL's convert('RGB') does, INCEPTION_BATCH images a call."""

    kind = "inception"
    feature_dim = INCEPTION_DIMS
    test_accuracy = float("nan")  # not a classifier of the dataset

    def __init__(self, path: str):
        try:  # imported here: train.evaluate's tests stand a small network in for it
            weights = importlib.import_module("train.evaluation.inception_weights")
        except ModuleNotFoundError:
            raise ConfigError(
                "features=inception: this version has no Inception network; accepted: classifier"
            ) from None
        module, variables = weights.load_inception(path)
        apply = jax.jit(module.apply)
        self.path, self._apply = path, lambda images: apply(variables, images)

    def check_images(self, images, fn: str = "features") -> np.ndarray:
        images = np.asarray(images)
        images = images[..., None] if images.ndim == 3 else images
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(
                f"{fn}: images must be uint8 pixels 0..255 of shape [N, H, W, 1 or 3], got {images.dtype} "
                f"{images.shape}"
            )
        return images

    def logits_and_features(self, images) -> tuple[np.ndarray, np.ndarray]:
        images = self.check_images(images, "logits_and_features")
        rgb = np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images
        pool, logits = data.batched(self._apply, rgb, batch_size=INCEPTION_BATCH)
        return np.asarray(logits, np.float32), np.asarray(pool, np.float32)

    def features(self, images) -> np.ndarray:
        return self.logits_and_features(images)[1]


@functools.cache
def inception_extractor(path: str) -> InceptionExtractor:
    """The InceptionExtractor of a weights file, loaded once a process; DataError when the file is not the weights."""
    return InceptionExtractor(path)


def _check_int(name, v, low):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
        raise ValueError(f"feature_extractor: {name}={v!r} must be an integer >= {low}")
    return int(v)


def _cached_extractor(net, template, image_shape, params_path: str, info_path: str) -> FeatureExtractor | None:
    """The feature classifier cached in params_path, with its info_path; None where there is none, or where it is
    damaged (truncated, garbled, or of another network): then the damaged file is set aside with one warning, so
    the classifier is trained again."""
    files.remove_temporaries(os.path.dirname(params_path) or ".")  # of writes a kill cut short
    if not (os.path.exists(info_path) and os.path.exists(params_path)):  # info is renamed in last: it marks completion
        return None
    reading = info_path
    try:
        with open(info_path, encoding="utf-8") as f:
            info = json.load(f)
        test_accuracy = float(info["test_accuracy"])
        reading = params_path
        with open(params_path, "rb") as f:
            params = flax.serialization.from_bytes(template, f.read())
        shapes = jax.tree.map(lambda a: tuple(np.shape(a)), params)
        if shapes != jax.tree.map(lambda a: tuple(a.shape), template):
            raise ValueError("its parameter shapes are not the classifier's")
    except Exception as e:  # msgpack and flax raise many types for a damaged file; any of them means: train again
        files.set_aside(reading, f"{type(e).__name__}: {e}")
        return None
    params = jax.tree.map(jnp.asarray, params)
    return FeatureExtractor(net, params, image_shape, test_accuracy, info, params_path)


def _classifier_info(ds, key, recipe, ext, train, test, labelled, budget, steps_run, seed) -> dict:
    """What the cache's .json records of a trained feature classifier (its accuracies and time are added)."""
    return dict(
        dataset=ds.name,
        key=key,
        image_shape=list(ds.image_shape),
        num_classes=ds.num_classes,
        steps=steps_run,
        budget=budget if labelled else 0,
        stopped_early=bool(labelled and steps_run < budget),
        seed=seed,
        batch_size=BATCH_SIZE,
        learning_rate=recipe.learning_rate,
        arch={k: list(v) if isinstance(v, tuple) else v for k, v in recipe.arch.items()},
        shift=recipe.shift,
        feature_dim=ext.feature_dim,
        num_train=len(train["image"]),
        num_test=len(test["image"]),
        note="" if labelled else "no labels: untrained random-feature network",
    )


def feature_extractor(
    ds: data.ImageData, data_dir: str | None, *, seed: int = 0, steps: int = DEFAULT_STEPS, verbose: bool = True
) -> FeatureExtractor:
    """The dataset's feature classifier: loaded from the cache in data_dir, else trained on ds.train and cached.

    Datasets without labels (num_classes < 2) get the untrained, seeded network (random conv features)
    and test_accuracy NaN.
    """
    seed = _check_int("seed", seed, 0)
    steps = _check_int("steps", steps, 0)
    data_dir = data_dir or default_data_dir()
    root = os.path.join(os.path.expanduser(data_dir), CACHE_SUBDIR)
    os.makedirs(root, exist_ok=True)
    recipe = classifier_recipe(ds.image_shape)
    budget = classifier_budget(len(ds.train), steps * recipe.steps_factor)
    key = cache_key(ds, steps=steps, seed=seed) + (f"_budget{budget}" if budget > steps else "")
    params_path, info_path = os.path.join(root, key + ".msgpack"), os.path.join(root, key + ".json")
    net = classifier_lib.Classifier(num_classes=max(ds.num_classes, 1), **recipe.arch)
    template = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((1, *ds.image_shape)))["params"])

    with _file_lock(os.path.join(root, key + ".lock")):
        cached = _cached_extractor(net, template, tuple(ds.image_shape), params_path, info_path)
        if cached is not None:
            return cached

        train = data.as_arrays(ds.train)
        test = data.as_arrays(ds.test)
        labelled = ds.num_classes >= 2
        fit, validate = train, None
        if budget > steps * recipe.steps_factor and labelled:  # a large dataset: hold out a slice to stop on
            n_val = min(MAX_VALIDATION, int(VALIDATION_SHARE * len(train["image"])))
            fit = {k: v[:-n_val] for k, v in train.items()}
            val = {k: v[-n_val:] for k, v in train.items()}
            probe = FeatureExtractor(net, None, tuple(ds.image_shape), float("nan"), {}, params_path)
            validate = lambda p: probe.accuracy_and_loss(val["image"], val["label"], params=p)
        t0 = time.perf_counter()
        with classifier_bar(budget, root, verbose and labelled) as bar:
            params, steps_run = _train_classifier(
                net,
                fit["image"],
                fit["label"],
                steps=budget if labelled else 0,
                seed=seed,
                validate=validate,
                learning_rate=recipe.learning_rate,
                shift=recipe.shift,
                bar=bar,
            )
        train_secs = time.perf_counter() - t0
        ext = FeatureExtractor(net, params, tuple(ds.image_shape), float("nan"), {}, params_path)
        acc = ext.accuracy(test["image"], test["label"]) if labelled else float("nan")
        train_acc = ext.accuracy(train["image"], train["label"]) if labelled else float("nan")
        info = _classifier_info(ds, key, recipe, ext, train, test, labelled, budget, steps_run, seed)
        info.update(train_accuracy=train_acc, test_accuracy=acc, train_secs=train_secs)
        _atomic_write(params_path, flax.serialization.to_bytes(jax.device_get(params)))
        _atomic_write(info_path, (json.dumps(info, indent=2) + "\n").encode())
        ext.test_accuracy, ext.info = acc, info
        if verbose and jax.process_index() == 0:
            print(
                f"Feature classifier for {ds.name}: trained {info['steps']} steps in {train_secs:.1f}s, "
                f"test accuracy {acc:.4f}; cached in {params_path}",
                flush=True,
            )
        return ext


# ----------------------------------------------------------------------------- the evaluator

# one compiled program each (the zoo leaves jit to its callers); k and batch_size pick the k-NN program
_frechet_distance = jax.jit(metrics.frechet_distance)
_precision_recall = jax.jit(metrics.precision_recall, static_argnames=("k", "batch_size"))
_kid = jax.jit(metrics.kernel_inception_distance, static_argnames=("num_subsets", "subset_size"))
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000  # clean-fid's and torch-fidelity's defaults
IS_SPLITS = 10


def gaussian_stats64(feats) -> tuple[np.ndarray, np.ndarray]:
    """zoo.metrics.gaussian_stats in float64 (FD of nearly equal sets is a difference of large traces)."""
    with jax.enable_x64(True):
        mu, cov = metrics.gaussian_stats(np.asarray(feats, np.float64))
        return np.asarray(mu), np.asarray(cov)


def frechet_distance64(mu1, cov1, mu2, cov2) -> float:
    """zoo.metrics.frechet_distance in float64: float32 leaves ~1e-2 of rounding on 64-d features."""
    with jax.enable_x64(True):
        return float(_frechet_distance(*(np.asarray(a, np.float64) for a in (mu1, cov1, mu2, cov2))))


class ImageEvaluator:
    """FD, KID and precision/recall of generated images against the test split, in the feature space of the
    dataset's classifier or of the given extractor (an InceptionExtractor adds the Inception Score)."""

    def __init__(
        self,
        ds: data.ImageData,
        data_dir: str | None,
        *,
        seed: int = 0,
        steps: int = DEFAULT_STEPS,
        k: int = 3,
        extractor: FeatureExtractor | None = None,
    ):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"ImageEvaluator: k={k!r} must be a positive integer (neighbours in precision/recall)")
        self.ds, self.k, self.seed = ds, int(k), seed
        self.extractor = extractor or feature_extractor(ds, data_dir, seed=seed, steps=steps)
        test = data.as_arrays(ds.test)["image"]
        if len(test) < self.k + 1:
            raise ValueError(
                f"ImageEvaluator: the test split of {ds.name!r} has {len(test)} images; at least "
                f"k+1={self.k + 1} are needed"
            )
        self.test_features = self.extractor.features(test)
        self.mu, self.cov = gaussian_stats64(self.test_features)
        self._reference: dict[int, dict] = {}

    @property
    def num_reference(self) -> int:
        return len(self.test_features)

    def compare_features(self, feats: np.ndarray, logits: np.ndarray | None = None) -> dict:
        """fd, kid (mean over KID_SUBSETS subsets), precision, recall of features against the test split's; with an
        Inception extractor's logits, the Inception Score (IS_SPLITS splits, fewer for fewer images)."""
        n = len(feats)
        fd = frechet_distance64(*gaussian_stats64(feats), self.mu, self.cov)
        precision, recall = _precision_recall(self.test_features, feats, k=self.k)
        m = min(KID_SUBSET_SIZE, n, self.num_reference)
        kid, _ = _kid(self.test_features, feats, KID_SUBSETS, m, key=jax.random.key(self.seed))
        out = {"fd": fd, "kid": float(kid), "precision": float(precision), "recall": float(recall)}
        out.update(fd_num_samples=n, fd_num_reference=self.num_reference, pr_k=self.k)
        if self.extractor.kind == "classifier":
            out["classifier_test_accuracy"] = self.extractor.test_accuracy
        elif logits is not None:
            with jax.enable_x64(True):
                score, _ = metrics.inception_score(np.asarray(logits, np.float64), min(IS_SPLITS, n))
            out["inception_score"] = float(score)
        return out

    def sample_quality(self, images, labels=None) -> dict:
        """fd, kid, precision, recall (inception_score in Inception's space) of uint8 images [N,H,W,C] vs the whole
        test split, with the sample sizes; given the labels [N] the images were generated for, also the feature
        classifier's accuracy on them: class_accuracy (the
        share of images it labels as generated) and class_accuracy_<c> (the share of class c's images labelled c).

        FD grows as N shrinks: compare with reference_figures(N), the real-vs-real floor at the same N.
        """
        images = self.extractor.check_images(images, "sample_quality")
        if len(images) < self.k + 1:
            raise ValueError(
                f"sample_quality: needs at least k+1={self.k + 1} images (k-NN radii, covariance), got {len(images)}"
            )
        logits, feats = self.extractor.logits_and_features(images)
        out = self.compare_features(feats, logits)
        if labels is not None and self.extractor.kind == "classifier":  # Inception's 1008 classes are not these
            labels = np.asarray(labels)
            out["class_accuracy"] = float(classifier_lib.accuracy(logits, labels))
            per_class = np.asarray(classifier_lib.per_class_accuracy(logits, labels, self.ds.num_classes))
            out.update({f"class_accuracy_{c}": float(a) for c, a in enumerate(per_class)})
        return out

    def reference_figures(self, num_samples: int | None = None) -> dict:
        """The real-vs-real floor: sample_quality of `num_samples` train images (default: all), seeded choice.

        Keys are prefixed 'ref_' (ref_fd, ref_precision, ref_recall, ref_fd_num_samples, ...). Cached per size.
        """
        n_train = len(self.ds.train)
        n = n_train if num_samples is None else num_samples
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not self.k + 1 <= n <= n_train:
            raise ValueError(
                f"reference_figures: num_samples={num_samples!r} must be an integer in "
                f"{self.k + 1}..{n_train} (the train split's size)"
            )
        n = int(n)
        if n not in self._reference:
            idx = np.sort(np.random.default_rng(self.seed).choice(n_train, n, replace=False))
            images = np.stack([self.ds.train[int(i)]["image"] for i in idx])
            figures = self.compare_features(*self.extractor.logits_and_features(images)[::-1])
            self._reference[n] = {f"ref_{k}": v for k, v in figures.items() if k != "classifier_test_accuracy"}
        return dict(self._reference[n])


# ----------------------------------------------------------------------------- the image models' `eval` block


def eval_keys(num_samples: int = 500, test_examples: int = 0) -> dict:
    """The `eval` block of the image models: sample-quality sample size, the feature classifier, grids, test images."""
    return {
        "eval.num_samples": Key(
            num_samples,
            "generated images scored by FD / precision / recall (0: no sample quality; else at least pr_k + 1)",
            range=">= 0",
        ),
        "eval.classifier_steps": Key(
            1000,
            "steps of the feature classifier up to 4000 train images, proportionally more beyond (x2 from 16 "
            "pixels a side; at most 20000, stopping early on a held-out slice); trained once per dataset, cached "
            "in data_dir",
            range=">= 1",
        ),
        "eval.features": Key(
            "classifier",
            "the feature space of FD / KID / precision / recall: classifier (the dataset's own, offline) or "
            "inception (pytorch-fid's InceptionV3, from eval.inception_weights; adds the Inception Score)",
            choices=FEATURES,
        ),
        "eval.inception_weights": Key("", f"eval.features=inception: {INCEPTION_ACCEPTED}"),
        "eval.pr_k": Key(3, "neighbours of the k-NN precision/recall manifolds", range=">= 1"),
        "eval.test_examples": Key(
            test_examples, "test images in likelihood / reconstruction figures (0: the whole test split)", range=">= 0"
        ),
        "eval.grid_images": Key(64, "images per samples PNG", range=">= 1"),
    }


# The latent interpolation strips of the generative models (train.vae, train.gan).
INTERPOLATION_KEYS = {
    "eval.interpolation_rows": Key(8, "latent interpolation paths in the PNG", range=">= 1"),
    "eval.interpolation_steps": Key(10, "points per interpolation path", range=">= 1"),
}

# The eval block of every image module's 'smoke' variant: a 5-step classifier, 8 samples, 16 test images.
SMOKE = {"eval.classifier_steps": 5, "eval.num_samples": 8, "eval.grid_images": 8, "eval.test_examples": 16}
# ... and of their loop: 4 steps of batch 8, logged and saved every 2, no progress bar.
SMOKE_LOOP = {"num_steps": 4, "batch_size": 8, "log_every": 2, "checkpoint_every": 2, "progress": False}


def check_eval_config(c) -> None:
    """ConfigError unless eval.num_samples is 0 or enough for the k-NN manifolds, and eval.features=inception names
    a weights file that is there."""
    if c.eval.num_samples and c.eval.num_samples < c.eval.pr_k + 1:
        raise ConfigError(
            f"config.eval.num_samples={c.eval.num_samples} must be 0 (no sample quality) or at least "
            f"config.eval.pr_k + 1 = {c.eval.pr_k + 1}"
        )
    path = c.eval.inception_weights
    if c.eval.features == "inception" and not path:
        raise ConfigError(
            f"config.eval.features=inception needs config.eval.inception_weights=PATH; accepted: {INCEPTION_ACCEPTED}"
            f", or config.eval.features=classifier"
        )
    if c.eval.features == "inception" and not os.path.isfile(os.path.expanduser(path)):
        why = "not a regular file" if os.path.exists(os.path.expanduser(path)) else "no such file"
        raise ConfigError(f"config.eval.inception_weights={path}: {why}; accepted: {INCEPTION_ACCEPTED}")


def feature_network(c):
    """The Inception extractor of eval.inception_weights when eval.features=inception (DataError, before any write,
    when the file is not the weights), else None: the dataset's classifier, built on first use."""
    if c.eval.features != "inception" or not c.eval.num_samples:
        return None
    return inception_extractor(os.path.abspath(os.path.expanduser(c.eval.inception_weights)))


def check_dataset_for_eval(c, ds: data.ImageData) -> None:
    """DataError before any write when the test split is too small for the configured figures."""
    if c.eval.num_samples and len(ds.test) < c.eval.pr_k + 1:
        raise data.DataError(
            f"dataset {ds.name!r}: the test split has {len(ds.test)} images; sample quality needs at "
            f"least config.eval.pr_k + 1 = {c.eval.pr_k + 1} (or set --config.eval.num_samples=0)"
        )


WARN_ACCURACY = 0.97  # below it, a run says its sample-quality figures stand on weak features


class SampleQuality:
    """FD, KID, precision and recall of generated uint8 images against the test split (train.evaluation), in
    eval.features's space (Inception adds its score), plus the real-vs-real floor at the same sample size (ref_*).
    The Inception weights are read here, before training; the feature classifier is built on first use."""

    def __init__(self, c, ds: data.ImageData):
        self.ds, self.data_dir = ds, c.data_dir or None
        self.steps, self.k, self.num_samples = c.eval.classifier_steps, c.eval.pr_k, c.eval.num_samples
        self.extractor = feature_network(c)
        self._evaluator = None

    @property
    def enabled(self) -> bool:
        return self.num_samples > 0

    @property
    def evaluator(self):
        if self._evaluator is None:
            self._evaluator = ImageEvaluator(
                self.ds, self.data_dir, steps=self.steps, k=self.k, extractor=self.extractor
            )
            acc = self._evaluator.extractor.test_accuracy
            if acc < WARN_ACCURACY and jax.process_index() == 0:  # NaN (no labels) compares False: no warning
                print(
                    f"warning: the feature classifier of {self.ds.name} reaches test accuracy {acc:.3f} < "
                    f"{WARN_ACCURACY}: FD / precision / recall stand on weak features (raise "
                    f"config.eval.classifier_steps)",
                    flush=True,
                )
        return self._evaluator

    def __call__(self, images: np.ndarray, labels=None) -> dict:
        """The figures of uint8 images; with the labels they were generated for, the class accuracies too."""
        ev = self.evaluator
        q = ev.sample_quality(images, labels)
        keep = ("fd", "kid", "precision", "recall", "inception_score", "classifier_test_accuracy")
        out = {k: v for k, v in q.items() if k in keep or k.startswith("class_accuracy")}
        n = len(images)
        if ev.k + 1 <= n <= len(self.ds.train):
            ref = ev.reference_figures(n)
            out.update({f"ref_{k}": ref[f"ref_{k}"] for k in keep if f"ref_{k}" in ref})
        return out


def labels_in_proportion(labels, n: int) -> np.ndarray:
    """n labels in the proportions of the N `labels`, each class's count within 1 of n N_c / N: the sorted labels
    at the midpoints, sort(labels)[floor((i + 1/2) N / n)] for i < n."""
    labels = np.sort(np.asarray(labels))
    return labels[((np.arange(n) + 0.5) * len(labels) / n).astype(int)]


def eval_key(seed: int, step: int) -> jax.Array:
    """Randomness of the evaluation at `step`, independent of every training key."""
    return jax.random.fold_in(jax.random.key(seed), 1_000_003 + step)
