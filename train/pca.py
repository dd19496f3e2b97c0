"""Fit PCA: `python -m train.pca [--workdir runs/pca] [--config.key=value ...]`.

PCA has no gradient loop: zoo.pca is fitted once on the train split (pixels in [0, 1], flattened) and
saved as checkpoints/pca.npz; a rerun in the same workdir reuses it (and refuses a workdir whose PCA was
fitted with other settings). Writes config.json, metrics.jsonl (one record per k in config.ks with the
test reconstruction error and the explained variance, then the figures at config.k with sample
quality), samples/{reconstructions,samples,components,latent}_*.png, and prints the summary.
Generation decodes codes drawn from a density fitted to the training codes (gaussian or gmm), as for
the autoencoder. The step of every record is the number of components k.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from train.core import cli, config as config_lib, entry, files, fit as fit_lib
from train.core.config import Key
from train.core.writers import MetricsWriter, image_grid
from train.data import images as data
from train.data.images import to_uint8
from train.evaluation import images as evaluation, plots
from zoo import autoencoder as ae, pca as pca_lib

METHODS = ("exact", "randomized")
PCA_FIELDS = ("mean", "components", "singular_values", "explained_variance", "explained_variance_ratio")
FIT_KEYS = ("dataset", "num_components", "method", "seed", "fit_examples")  # what the saved PCA depends on


def check_k(c) -> None:
    """k of at most num_components components (when set)."""
    if c.num_components and c.k > c.num_components:
        raise config_lib.ConfigError(f"config.k={c.k} must be at most config.num_components={c.num_components}")


SCHEMA = config_lib.Schema(
    {"seed": config_lib.LOOP["seed"]},
    config_lib.IMAGE_DATA,
    {
        "num_components": Key(0, "components fitted (0: min(N, D), every one)", range=">= 0"),
        "method": Key("exact", "'exact' SVD, or 'randomized' (Halko et al.) for large D", choices=METHODS),
        "fit_examples": Key(0, "train images the PCA is fitted on (0: all)", range=">= 0"),
        "k": Key(8, "components used for reconstructions, samples and sample quality", range=">= 1"),
        "ks": Key(
            (1, 2, 4, 8, 16, 32, 64),
            "numbers of components whose test reconstruction error is reported",
            range=">= 1",
            nonempty=True,
        ),
        "density.kind": Key(
            "gaussian", "density fitted to the training codes, sampled to generate", choices=ae.DENSITY_KINDS
        ),
        "density.num_components": Key(10, "components of the 'gmm' code density", range=">= 1"),
    },
    evaluation.eval_keys(num_samples=500),
    checks=(evaluation.check_eval_config, check_k),
    variants={"smoke": {**evaluation.SMOKE, "k": 5, "ks": (1, 2, 5, 10), "eval.test_examples": 0}},
)


get_config = SCHEMA.config  # get_config() is the default config, get_config('smoke') a seconds-long run


def flatten(images) -> jax.Array:
    return data.to_unit(images).reshape(len(images), -1)


def fit(c, ds: data.ImageData, max_rank: int) -> pca_lib.PCA:
    x = flatten(data.split_arrays(ds.train, c.fit_examples)["image"])
    return pca_lib.pca_fit(x, c.num_components or max_rank, method=c.method, key=jax.random.key(c.seed))


def save(path: str, p: pca_lib.PCA, fingerprint: dict) -> None:
    files.save_npz(
        path, fingerprint=json.dumps(fingerprint, sort_keys=True), **{k: np.asarray(getattr(p, k)) for k in PCA_FIELDS}
    )


def load(path: str) -> tuple[pca_lib.PCA, dict] | None:
    """(the PCA, its fit settings) saved in path; None when there is none, or it is damaged (then set aside, so
    the fit is redone)."""
    return files.load_npz(
        path, lambda f: (pca_lib.PCA(**{k: jnp.asarray(f[k]) for k in PCA_FIELDS}), json.loads(str(f["fingerprint"])))
    )


def truncate(p: pca_lib.PCA, k: int) -> pca_lib.PCA:
    return pca_lib.PCA(
        p.mean, p.components[:k], p.singular_values[:k], p.explained_variance[:k], p.explained_variance_ratio[:k]
    )


def fit_and_evaluate(config, workdir: str) -> dict:
    """Fit (or reuse) the PCA of a checked config in workdir, evaluate it at every k of config.ks, write the
    figures; the last figures."""
    c = config
    evaluation.feature_network(c)  # the Inception weights, read before data is prepared
    ds = data.images_of(c, cache=False)  # an image folder's decoded cache is written once the checks have passed
    evaluation.check_dataset_for_eval(c, ds)
    n_fit = min(c.fit_examples or len(ds.train), len(ds.train))
    dim = int(np.prod(ds.image_shape))
    max_rank = min(n_fit, dim)
    rank = c.num_components or max_rank
    for key, v in (("num_components", rank), ("k", c.k)):
        if v > max_rank:
            raise config_lib.ConfigError(
                f"config.{key}={v} must be at most min(train images, pixels) = {max_rank} for dataset {ds.name!r}"
            )
    if n_fit < 2:
        raise data.DataError(f"dataset {ds.name!r}: PCA needs at least 2 training images, got {n_fit}")
    if c.density.kind == "gmm" and c.density.num_components > n_fit:
        raise config_lib.ConfigError(
            f"config.density.num_components={c.density.num_components} exceeds the "
            f"{n_fit} training codes of dataset {ds.name!r}"
        )
    fingerprint = {k: c[k] for k in FIT_KEYS}
    ckpt_dir = os.path.join(os.path.abspath(workdir), "checkpoints")
    path = os.path.join(ckpt_dir, "pca.npz")
    saved = load(path)
    if saved is not None and saved[1] != fingerprint:
        diff = {k: (saved[1].get(k), v) for k, v in fingerprint.items() if saved[1].get(k) != v}
        raise config_lib.ConfigError(
            f"{path} holds a PCA fitted with other settings (saved, now: {diff}); "
            f"use another --workdir or the saved settings"
        )

    def fit_and_evaluate(workdir, writer):
        data.save_cache(ds)
        if saved is not None:
            p = saved[0]
            print(f"Reusing the PCA in {path} ({p.components.shape[0]} components).", flush=True)
        else:
            p = fit(c, ds, max_rank)
            os.makedirs(ckpt_dir, exist_ok=True)
            save(path, p, fingerprint)
        figures = evaluate(c, ds, p, writer)
        headline = (
            f"pca: {int(p.components.shape[0])} components fitted on {ds.name}; figures at k={c.k}; workdir {workdir}"
        )
        return (
            figures,
            headline,
            (
                f"  per-k test_mse / explained variance in {os.path.join(workdir, 'metrics.jsonl')}; "
                f"PNGs in {os.path.join(workdir, 'samples')}/",
            ),
        )

    return fit_lib.run(
        c,
        workdir,
        fit_lib.Fit("pca", FIT_KEYS, os.path.join("checkpoints", "pca.npz"), fit_and_evaluate, ds.fingerprint),
    )


def evaluate(c, ds: data.ImageData, p: pca_lib.PCA, writer: MetricsWriter) -> dict:
    test = data.split_arrays(ds.test, c.eval.test_examples)
    x_test = flatten(test["image"])
    cum = np.cumsum(np.asarray(p.explained_variance_ratio))
    for k in sorted({k for k in c.ks if k <= p.components.shape[0]} | {c.k}):  # ks beyond the rank are skipped
        err = float(jnp.mean(pca_lib.reconstruction_error(truncate(p, k), x_test)))
        writer.scalars(k, {"k": k, "eval/test_mse": err, "eval/explained_variance_ratio": float(cum[k - 1])})

    pk = truncate(p, c.k)
    shape = ds.image_shape
    codes = pca_lib.pca_transform(pk, x_test)
    recons = pca_lib.pca_inverse_transform(pk, codes).reshape(-1, *shape)
    figures = {
        "k": c.k,
        "eval/test_mse": float(jnp.mean(pca_lib.reconstruction_error(pk, x_test))),
        "eval/explained_variance_ratio": float(cum[c.k - 1]),
        "num_components_fitted": int(p.components.shape[0]),
    }
    n_show = min(32, len(test["image"]))
    images = {
        "reconstructions": plots.reconstruction_grid(test["image"][:n_show], data.unit_to_uint8(recons[:n_show])),
        "latent": plots.latent_scatter(codes[:, :2], test["label"], "test split on the first two principal components"),
        "components": components_grid(p, shape, min(c.eval.grid_images, p.components.shape[0])),
    }
    k_fit, k_sample = jax.random.split(evaluation.eval_key(c.seed, c.k))
    fit_images = data.split_arrays(ds.train, c.fit_examples)["image"]
    density = ae.fit_code_density(
        pca_lib.pca_transform(pk, flatten(fit_images)),
        c.density.kind,
        key=k_fit,
        num_components=c.density.num_components,
    )
    n = max(c.eval.num_samples, c.eval.grid_images)
    samples = data.unit_to_uint8(
        pca_lib.pca_inverse_transform(pk, ae.sample_codes(density, k_sample, n)).reshape(-1, *shape)
    )
    images["samples"] = plots.samples_grid(samples[: c.eval.grid_images])
    if c.eval.num_samples:
        figures.update(
            {f"eval/{k}": v for k, v in evaluation.SampleQuality(c, ds)(samples[: c.eval.num_samples]).items()}
        )
    writer.scalars(c.k, {k: v for k, v in figures.items()})
    for name, image in images.items():
        writer.image(c.k, name, image)
    return figures


def components_grid(p: pca_lib.PCA, shape, n: int) -> np.ndarray:
    """The mean image, then the first n-1 principal components, each scaled to its own [-max|.|, max|.|]."""
    comps = np.asarray(p.components[: n - 1]).reshape(-1, *shape)
    scale = np.max(np.abs(comps), axis=tuple(range(1, comps.ndim)), keepdims=True) + 1e-12
    tiles = np.concatenate([data.unit_to_uint8(np.asarray(p.mean).reshape(1, *shape)), to_uint8(comps / scale)])
    return image_grid(tiles)


ENTRY = entry.Entry("pca", __doc__, __file__, SCHEMA, fit_and_evaluate)
run = ENTRY.run

if __name__ == "__main__":
    cli.main(ENTRY)
