"""Score samples of any model against a reference: `python -m train.evaluate --samples=A --reference=B
[--features=classifier|inception] [--inception_weights=PATH] [--save_stats=PATH] [--out=FILE.json]`.

Samples: an .npz of uint8 images [N, H, W, C] or [N, H, W] (this project's samples_<step>.npz `images`,
guided-diffusion's `arr_0`, or a dataset file's `x`), a folder of image files, or the workdir of a trained image
model (its newest samples/samples_<step>.npz, else --num_samples drawn by its load()). Reference: a dataset as
config.dataset names it (digits, a TFDS name, npz:PATH, images:DIR; its test split), an .npz of images or a folder
(all of them), or a statistics file in pytorch-fid's format (an .npz with `mu` and `sigma`).

Features: `classifier`, the offline feature classifier of train.evaluation.images (trained once on a dataset's
train split and cached: the reference's, or --classifier_data's), or `inception`, the pool features and logits of
InceptionV3 from a weights file the user names. Figures (docs/evaluation.md): the Frechet distance `fd` (FID in
inception features), KID (`kid`, `kid_std`), precision/recall where the reference's features are at hand (not
from a statistics file), and the Inception Score (`inception_score`, `inception_score_std`) in inception
features. They are printed as JSON on stdout and written to --out. The reference's statistics and features are
cached under <data_dir>/zoo_reference_stats/ by a hash of the reference's content and of the feature network;
--save_stats=PATH writes the reference's statistics as pytorch-fid writes them (`mu`, `sigma`, float64).

Bad input (a flag, a file that is missing or holds no images, images whose size or channels the features cannot
take, inception without weights) is one `error:` line on stderr and exit code 2, before anything is written.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import sys
import zipfile
import zlib

import numpy as np

from train.core import files, workdir as workdir_lib
from train.core.errors import ConfigError, DataError
from train.data import images as data

__all__ = ["main", "evaluate", "inception_features", "read_npz", "STATS_CACHE"]

STATS_CACHE = "zoo_reference_stats"  # under data_dir: <hash>.npz of mu, sigma, features
IMAGE_KEYS = ("images", "arr_0", "x")  # this project's samples, guided-diffusion's samples and reference batches, data
INTEGER_FLAGS = {  # the least value each takes
    "num_samples": 0,
    "seed": 0,
    "kid_subsets": 1,
    "kid_subset_size": 2,
    "pr_k": 0,
    "is_splits": 1,
    "classifier_steps": 1,
}
SAMPLES_HELP = (
    "an .npz of uint8 images ('images', 'arr_0' or 'x' [N,H,W] or [N,H,W,C]), a folder of image files, or the "
    "workdir of a trained image model"
)
REFERENCE_HELP = (
    "a dataset (digits, a TFDS name, npz:PATH, images:DIR: its test split), an .npz of images or a folder (all "
    "of them), or a statistics .npz with 'mu' and 'sigma' (pytorch-fid's format)"
)
FLAGS_HELP = (
    "--samples, --reference, --features, --inception_weights, --classifier_data, --save_stats, --out, --data_dir, "
    "--num_samples, --seed, --kid_subsets, --kid_subset_size, --pr_k, --is_splits, --classifier_steps"
)


# ----------------------------------------------------------------------------- the command line


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ConfigError(f"{message}; accepted flags: {FLAGS_HELP} (--help lists them)")


def parser() -> argparse.ArgumentParser:
    """The flags of the command, with their defaults and help."""
    p = _Parser(prog="python -m train.evaluate", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--samples", default="", help=f"the images to score: {SAMPLES_HELP}")
    p.add_argument("--reference", default="", help=f"what to score them against: {REFERENCE_HELP}")
    p.add_argument("--features", default="classifier", help="classifier (default, offline) or inception")
    p.add_argument("--inception_weights", default="", help="pytorch-fid's pt_inception-2015-12-05 weights file")
    p.add_argument(
        "--classifier_data", default="", help="the dataset whose feature classifier embeds (default: the reference)"
    )
    p.add_argument("--save_stats", default="", help="write the reference's mu and sigma here (PATH.npz)")
    p.add_argument("--out", default="", help="write the figures here as JSON (they are printed either way)")
    p.add_argument("--data_dir", default="", help="TFDS data dir: datasets, the classifier and the stats cache")
    p.add_argument("--num_samples", type=int, default=0, help="score the first N samples (0: all; a workdir: drawn)")
    p.add_argument("--seed", type=int, default=0, help="seed of the KID subsets and of a workdir's draws")
    p.add_argument("--kid_subsets", type=int, default=100, help="random subsets KID averages over")
    p.add_argument("--kid_subset_size", type=int, default=1000, help="rows per KID subset (at most the sizes)")
    p.add_argument("--pr_k", type=int, default=3, help="neighbours of precision/recall (0: none)")
    p.add_argument("--is_splits", type=int, default=10, help="splits of the Inception Score")
    p.add_argument("--classifier_steps", type=int, default=1000, help="the classifier's eval.classifier_steps")
    return p


def check_flags(args) -> None:
    """ConfigError naming the first flag whose value cannot be used, before anything is read or written."""
    if args.features not in ("classifier", "inception"):
        raise ConfigError(f"--features={args.features!r} is not a feature network; accepted: classifier, inception")
    if not args.reference:
        raise ConfigError(f"--reference is missing; accepted: {REFERENCE_HELP}")
    if not args.samples and not args.save_stats:
        raise ConfigError(f"--samples is missing; accepted: {SAMPLES_HELP} (or only --save_stats=PATH)")
    if args.features == "inception":
        if not args.inception_weights:
            raise ConfigError(
                "--features=inception needs --inception_weights=PATH; accepted: pytorch-fid's "
                "pt_inception-2015-12-05 weights file (nothing is downloaded), or --features=classifier"
            )
        if not os.path.isfile(args.inception_weights):
            why = "not a regular file" if os.path.exists(args.inception_weights) else "no such file"
            raise ConfigError(
                f"--inception_weights={args.inception_weights}: {why}; accepted: pytorch-fid's "
                f"pt_inception-2015-12-05 weights file"
            )
    for name, low in INTEGER_FLAGS.items():
        value = getattr(args, name)
        if value < low or (name == "seed" and value >= 2**32):
            raise ConfigError(
                f"--{name}={value} must be an integer " + ("in 0..2^32-1" if name == "seed" else f">= {low}")
            )
    if args.save_stats and not args.save_stats.endswith(".npz"):
        raise ConfigError(f"--save_stats={args.save_stats} must end in .npz (pytorch-fid reads statistics so named)")
    for name in ("save_stats", "out"):
        path = getattr(args, name)
        parent = os.path.dirname(os.path.abspath(path)) if path else ""
        if path and (os.path.isdir(path) or not os.path.isdir(parent)):
            why = "is a directory" if os.path.isdir(path) else f"its directory {parent} does not exist"
            raise ConfigError(f"--{name}={path} cannot be written: {why}; accepted: a file in an existing directory")


# ----------------------------------------------------------------------------- .npz files


def read_npz(path: str, keys, what: str) -> dict[str, np.ndarray]:
    """The members `keys` that the .npz at path holds, each .npy header first checked against the bytes the
    archive stores for it (a header that claims more is refused before anything is allocated); DataError naming
    `what` (the flag) when the file is missing, not an .npz, or a member is damaged or holds objects."""
    accepted = REFERENCE_HELP if what == "--reference" else SAMPLES_HELP
    refuse = lambda why: DataError(f"{what}={path}: {why}; accepted: {accepted}")
    if not os.path.isfile(path):
        raise refuse("no such file" if not os.path.exists(path) else "not a regular file")
    try:
        if not zipfile.is_zipfile(path):
            raise refuse("not an .npz archive of arrays")
        size = os.path.getsize(path)
        with zipfile.ZipFile(path) as z:
            members = {i.filename.removesuffix(".npy"): i for i in z.infolist()}
            for key in [k for k in keys if k in members]:
                _check_member(z, members[key], size, lambda why, key=key: refuse(f"'{key}' {why}"))
        with np.load(path, allow_pickle=False) as f:
            found = {k: f[k] for k in keys if k in members}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        if isinstance(e, DataError):
            raise
        raise refuse(f"not a readable .npz file ({type(e).__name__})") from None
    found["_members"] = np.asarray(sorted(members))
    return found


def _check_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, file_size: int, refuse) -> None:
    with z.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
        except ValueError:
            raise refuse("is not an array") from None
        header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = header(member)
        header_bytes = member.tell()
    if dtype.hasobject:
        raise refuse(f"holds Python objects (dtype {dtype})")
    needed = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    ratio = {zipfile.ZIP_STORED: 1, zipfile.ZIP_DEFLATED: data.DEFLATE_MAX_RATIO}.get(info.compress_type)
    if (
        needed > info.file_size - header_bytes
        or info.compress_size > file_size
        or (ratio and info.file_size > ratio * info.compress_size)
    ):
        raise refuse(f"claims shape {shape} of {dtype} but the file holds less (truncated or damaged)")


def npz_images(path: str, what: str) -> np.ndarray:
    """uint8 images [N, H, W, C] of an .npz's first member of IMAGE_KEYS; DataError naming the file otherwise."""
    arrays = read_npz(path, IMAGE_KEYS, what)
    key = next((k for k in IMAGE_KEYS if k in arrays), None)
    if key is None:
        found = ", ".join(arrays["_members"]) or "none"
        raise DataError(f"{what}={path} holds no images (its arrays: {found}); accepted: {SAMPLES_HELP}")
    return checked_images(arrays[key], f"{what}={path} ('{key}')")


def checked_images(x: np.ndarray, what: str) -> np.ndarray:
    """x as uint8 [N, H, W, C], C in 1, 3 (a grey [N, H, W] gets its axis); DataError naming `what` otherwise."""
    if x.dtype != np.uint8:
        raise DataError(f"{what} has dtype {x.dtype}; accepted: uint8 pixels 0..255")
    x = x[..., None] if x.ndim == 3 else x
    if x.ndim != 4 or x.shape[-1] not in (1, 3) or min(x.shape[1:3]) < 1 or len(x) < 2:
        raise DataError(f"{what} has shape {x.shape}; accepted: at least 2 images [N,H,W] or [N,H,W,C], C in 1, 3")
    return x


# ----------------------------------------------------------------------------- samples and reference


@dataclasses.dataclass
class Reference:
    """What the samples are scored against: images (with the content they are cached by) or statistics."""

    spec: str
    images: np.ndarray | None = None
    content: str = ""  # what the cache is keyed by (with the network): a hash of the images' source
    dataset: data.ImageData | None = None  # a dataset reference: the classifier may be trained on it
    mu: np.ndarray | None = None
    sigma: np.ndarray | None = None
    network: str = ""  # the feature network a statistics file names ('' for pytorch-fid's own)


def folder_images(path: str, data_dir: str | None, what: str) -> tuple[np.ndarray, str]:
    """(every image of a folder, in sorted order, its content key); read through the data layer's decoder, without
    writing its cache."""
    try:
        ds = data.load_image_folder(path, data_dir, cache=False)
    except DataError as e:
        raise DataError(f"{what}: {e}") from None
    order = np.argsort(np.concatenate([ds.train.index, ds.test.index]))
    images = np.concatenate([data.as_arrays(ds.train)["image"], data.as_arrays(ds.test)["image"]])
    return images[order], ds.content_key


def read_samples(spec: str, args) -> tuple[np.ndarray, str]:
    """(uint8 samples [N, H, W, C], where they came from) of --samples; the first --num_samples when given."""
    path = spec.split(":", 1)[1] if spec.startswith(("npz:", "images:")) else spec
    if spec.startswith("images:") or (os.path.isdir(path) and not os.path.isfile(os.path.join(path, "config.json"))):
        images, source = folder_images(path, args.data_dir or None, "--samples")[0], f"images:{os.path.abspath(path)}"
    elif os.path.isdir(path):
        images, source = workdir_samples(path, args)
    else:
        images, source = npz_images(path, "--samples"), os.path.abspath(path)
    return (images[: args.num_samples] if args.num_samples else images), source


def workdir_samples(workdir: str, args) -> tuple[np.ndarray, str]:
    """The newest samples/samples_<step>.npz of a trained image model's workdir, else --num_samples (default: the
    run's sample.num_images) drawn by its load() with jax.random.key(--seed)."""
    samples = os.path.join(workdir, "samples")
    steps = sorted(
        (int(m.group(1)), n)
        for n in (os.listdir(samples) if os.path.isdir(samples) else ())
        if (m := re.fullmatch(r"samples_(\d+)\.npz", n))
    )
    if steps:
        path = os.path.join(samples, steps[-1][1])
        return npz_images(path, "--samples"), os.path.abspath(path)
    from train import registry

    module = workdir_lib.module_of(workdir)
    name = (module or "").removeprefix("train.")
    if name not in registry.IMAGE_MODELS:
        raise ConfigError(
            f"--samples={workdir} holds no samples/samples_<step>.npz and no run of an image model to draw from "
            f"(its run.json names {module!r}); accepted: the workdir of a run of {', '.join(registry.IMAGE_MODELS)}"
        )
    import jax

    model = registry.entry(name).load(workdir)
    n = args.num_samples or model.config.sample.num_images
    print(f"evaluate: drawing {n} samples of {module} step {model.step} (seed {args.seed})", file=sys.stderr)
    return model.sample(jax.random.key(args.seed), n), f"{os.path.abspath(workdir)} (step {model.step}, drawn)"


def read_reference(spec: str, args) -> Reference:
    """--reference as images or statistics (see REFERENCE_HELP)."""
    data_dir = args.data_dir or None
    dataset = spec.startswith(("npz:", "images:"))
    if not dataset and not os.path.exists(spec) and (os.sep in spec or spec.endswith(".npz")):
        raise DataError(f"--reference={spec}: no such file or directory; accepted: {REFERENCE_HELP}")
    if dataset or not os.path.exists(spec):
        ds = data.load_images(spec, data_dir, cache=False)  # a dataset; an unknown name is its DataError
        images = data.as_arrays(ds.test)["image"]
        content = json.dumps({"dataset": ds.content_key, "fingerprint": ds.fingerprint, "split": "test"})
        return Reference(spec, images, content, ds)
    if os.path.isdir(spec):
        images, key = folder_images(spec, data_dir, "--reference")
        return Reference(spec, images, json.dumps({"folder": key}))
    arrays = read_npz(spec, ("mu", "sigma", "network", *IMAGE_KEYS), "--reference")
    key = next((k for k in IMAGE_KEYS if k in arrays), None)
    if "mu" in arrays and "sigma" in arrays and (args.features == "inception" or key is None):
        return stats_reference(spec, arrays)
    if key is None:
        found = ", ".join(arrays["_members"]) or "none"
        raise DataError(f"--reference={spec} holds neither images nor 'mu' and 'sigma' (its arrays: {found})")
    images = checked_images(arrays[key], f"--reference={spec} ('{key}')")
    return Reference(spec, images, json.dumps({"npz": files.fingerprint(spec), "key": key}))


def stats_reference(spec: str, arrays: dict) -> Reference:
    """A statistics file's mu [D] and sigma [D, D] (finite floats), and the network it names, if any."""
    mu, sigma = arrays["mu"], arrays["sigma"]
    ok = mu.ndim == 1 and sigma.shape == (len(mu), len(mu)) and len(mu) >= 1
    ok = ok and all(np.issubdtype(a.dtype, np.floating) and np.isfinite(a).all() for a in (mu, sigma))
    if not ok:
        raise DataError(
            f"--reference={spec}: 'mu' {mu.dtype} {mu.shape} and 'sigma' {sigma.dtype} {sigma.shape} are not the "
            f"statistics of D-d features; accepted: finite float 'mu' [D] and 'sigma' [D, D]"
        )
    network = str(arrays["network"]) if "network" in arrays and arrays["network"].dtype.kind == "U" else ""
    return Reference(spec, mu=mu.astype(np.float64), sigma=sigma.astype(np.float64), network=network)


# ----------------------------------------------------------------------------- the feature networks


@dataclasses.dataclass
class Network:
    """A feature network: embed(uint8 images) -> (features [N, D], logits [N, K] or None), and what it takes."""

    name: str  # what the cache and a statistics file know it by
    dims: int
    image_shape: tuple | None  # the one image shape it takes; None: any (resized)
    embed: object
    info: dict = dataclasses.field(default_factory=dict)


def classifier_dataset(args, reference: Reference) -> data.ImageData:
    """The dataset whose feature classifier embeds: --classifier_data, else the reference dataset."""
    if args.classifier_data:
        return data.load_images(args.classifier_data, args.data_dir or None, cache=False)
    if reference.dataset is not None:
        return reference.dataset
    raise ConfigError(
        f"--features=classifier embeds by the feature classifier of a dataset, and --reference={reference.spec} "
        f"is none; accepted: a dataset as --reference (digits, a TFDS name, npz:PATH, images:DIR), or "
        f"--classifier_data=DATASET, or --features=inception"
    )


def classifier_network(ds: data.ImageData, args) -> Network:
    """The offline feature classifier of ds: loaded from data_dir's cache, else trained there once."""
    from train.evaluation import images as evaluation

    ext = evaluation.feature_extractor(ds, args.data_dir or None, steps=args.classifier_steps, verbose=False)
    digest = files.fingerprint(ext.cache_path).get("sha256", "")[:16]
    name = f"classifier:{os.path.basename(ext.cache_path).removesuffix('.msgpack')}:{digest}"
    print(f"evaluate: feature classifier of {ds.name} (test accuracy {ext.test_accuracy:.4f})", file=sys.stderr)
    accuracy = None if np.isnan(ext.test_accuracy) else ext.test_accuracy  # NaN: an unlabelled dataset
    info = {"classifier_test_accuracy": accuracy, "classifier_data": ds.name}
    return Network(name, ext.feature_dim, tuple(ds.image_shape), lambda x: ext.logits_and_features(x)[::-1], info)


def inception_features(path: str, images) -> tuple[np.ndarray, np.ndarray]:
    """(pool features float32 [N, 2048], logits [N, 1008]) of uint8 images [N, H, W, C] by the InceptionV3 of the
    weights file at path: train.evaluation.images.InceptionExtractor's (grey repeated to RGB, resized to 299x299 by
    zoo.inception, 50 images a call)."""
    from train.evaluation import images as evaluation

    return evaluation.inception_extractor(path).logits_and_features(images)[::-1]


def inception_network(args) -> Network:
    """InceptionV3 of the weights file --inception_weights names, known by a hash of the file."""
    digest = files.fingerprint(args.inception_weights)
    name = f"inception:{(digest.get('sha256') or digest['sha256_sampled'])[:16]}"
    from train.evaluation import images as evaluation

    dims = evaluation.INCEPTION_DIMS
    return Network(name, dims, None, lambda x: inception_features(args.inception_weights, x))


# ----------------------------------------------------------------------------- checks before the work


def check_images_fit(samples, reference: Reference, image_shape, args) -> None:
    """ConfigError where the images cannot be scored together: samples or reference images of another shape than
    the classifier takes, a statistics file of another network, or too few images for precision/recall."""
    accepted = "accepted: images of the feature classifier's shape, or --features=inception (any size, grey or RGB)"
    for what, images in (("--samples", samples), (f"--reference={reference.spec}", reference.images)):
        if image_shape is not None and images is not None and tuple(images.shape[1:]) != tuple(image_shape):
            raise DataError(
                f"{what} holds images of {_shape(images.shape[1:])}, but the feature classifier of "
                f"{args.classifier_data or reference.spec} takes {_shape(image_shape)}; {accepted}"
            )
    if reference.mu is not None:
        kind = reference.network.split(":")[0] or "inception"  # pytorch-fid's files name no network
        if kind != args.features:
            raise ConfigError(
                f"--reference={reference.spec} holds statistics of {kind} features, not of --features={args.features}"
                f"; accepted: statistics this command wrote (--save_stats) with the same --features"
            )
    sizes = [len(x) for x in (samples, reference.images) if x is not None]
    if args.pr_k and reference.images is not None and samples is not None and min(sizes) < args.pr_k + 1:
        raise ConfigError(
            f"precision/recall with --pr_k={args.pr_k} needs at least {args.pr_k + 1} images on each side, got "
            f"{len(samples)} samples and {len(reference.images)} reference images; accepted: more, or --pr_k=0"
        )


def _shape(shape) -> str:
    return "x".join(map(str, shape))


def check_stats_fit(reference: Reference, network: Network) -> None:
    """ConfigError where a statistics file was made by another network than the one the samples are embedded by."""
    if reference.mu is None:
        return
    if reference.network and reference.network != network.name or len(reference.mu) != network.dims:
        made = reference.network or f"a network of {len(reference.mu)}-d features"
        raise ConfigError(
            f"--reference={reference.spec} holds the statistics of {made}; the samples are embedded by {network.name} "
            f"({network.dims}-d); accepted: statistics of the same network (--save_stats of the same features)"
        )


# ----------------------------------------------------------------------------- statistics and figures


def reference_statistics(reference: Reference, network: Network, args) -> tuple:
    """(mu, sigma, features or None) of the reference: a statistics file's, or its images' through the network,
    cached in <data_dir>/STATS_CACHE/<sha256 of the network's name and the reference's content>.npz."""
    from train.evaluation.images import default_data_dir, gaussian_stats64

    if reference.mu is not None:
        return reference.mu, reference.sigma, None
    digest = hashlib.sha256(f"{network.name}\n{reference.content}".encode()).hexdigest()[:32]
    root = os.path.join(os.path.expanduser(args.data_dir or default_data_dir()), STATS_CACHE)
    path = os.path.join(root, f"{digest}.npz")
    read = lambda f: (f["mu"], f["sigma"], f["features"]) if str(f["network"]) == network.name else None
    cached = files.load_npz(path, read) if os.path.isdir(root) else None
    if cached is not None and cached[2].shape == (len(reference.images), network.dims):
        print(f"evaluate: reference statistics read from {path}", file=sys.stderr)
        return cached
    print(f"evaluate: embedding {len(reference.images)} reference images, to be cached in {path}", file=sys.stderr)
    features = network.embed(reference.images)[0]
    mu, sigma = gaussian_stats64(features)
    os.makedirs(root, exist_ok=True)
    files.save_npz(path, mu=mu, sigma=sigma, features=features, network=np.asarray(network.name))
    return mu, sigma, features


def figures(sample_features, sample_logits, stats: tuple, network: Network, args) -> dict:
    """fd; kid, kid_std and precision, recall where the reference's features are at hand; the Inception Score
    where the network is Inception."""
    import jax

    from train.evaluation.images import frechet_distance64, gaussian_stats64
    from zoo import metrics

    mu, sigma, reference_features = stats
    out = {"fd": frechet_distance64(*gaussian_stats64(sample_features), mu, sigma)}
    if reference_features is not None:
        m = min(args.kid_subset_size, len(sample_features), len(reference_features))
        kid = jax.jit(metrics.kernel_inception_distance, static_argnames=("num_subsets", "subset_size"))
        mean, std = kid(reference_features, sample_features, args.kid_subsets, m, key=jax.random.key(args.seed))
        out.update(kid=float(mean), kid_std=float(std), kid_subsets=args.kid_subsets, kid_subset_size=m)
        if args.pr_k:
            pr = jax.jit(metrics.precision_recall, static_argnames=("k", "batch_size"))
            precision, recall = pr(reference_features, sample_features, k=args.pr_k)
            out.update(precision=float(precision), recall=float(recall), pr_k=args.pr_k)
    if args.features == "inception":
        splits = min(args.is_splits, len(sample_logits))
        with jax.enable_x64(True):
            score = jax.jit(metrics.inception_score, static_argnames=("num_splits",))
            mean, std = score(np.asarray(sample_logits, np.float64), splits)
        out.update(inception_score=float(mean), inception_score_std=float(std), inception_score_splits=splits)
    return out


# ----------------------------------------------------------------------------- the command


def evaluate(argv) -> dict:
    """The figures of a command line's arguments (without the program name), every output written; ConfigError or
    DataError, before anything is written, where its input cannot be used."""
    args = parser().parse_args(argv)
    check_flags(args)
    if args.features == "inception":  # a file that is not the weights: refused before anything is read
        from train.evaluation.images import inception_extractor

        inception_extractor(args.inception_weights)
    samples, source = read_samples(args.samples, args) if args.samples else (None, "")
    reference = read_reference(args.reference, args)
    ds = classifier_dataset(args, reference) if args.features == "classifier" else None
    check_images_fit(samples, reference, ds.image_shape if ds else None, args)
    network = classifier_network(ds, args) if ds else inception_network(args)
    check_stats_fit(reference, network)
    stats = reference_statistics(reference, network, args)
    out = {"features": args.features, "network": network.name, "reference": reference.spec, **network.info}
    if stats[2] is not None:
        out["num_reference"] = len(stats[2])
    if args.save_stats:
        mu, sigma = stats[0], stats[1]
        files.save_npz(args.save_stats, mu=mu, sigma=sigma, network=np.asarray(network.name))
        out["saved_stats"] = os.path.abspath(args.save_stats)
    if samples is not None:
        features, logits = network.embed(samples)
        out.update(samples=source, num_samples=len(samples), **figures(features, logits, stats, network, args))
    if args.out:
        files.write_json(args.out, out)
    return out


def fail(message: str) -> None:
    """One line `error: ...` on stderr and exit code 2 at once (train/core/cli.py's rule)."""
    sys.stdout.flush()
    sys.stderr.write(f"error: {' '.join(str(message).split())}\n")
    sys.stderr.flush()
    os._exit(2)


def main() -> None:
    try:
        with contextlib.redirect_stdout(
            sys.stderr
        ):  # what the libraries print (TFDS preparing a dataset): stdout is JSON
            out = evaluate(sys.argv[1:])
    except (ConfigError, DataError) as e:
        fail(str(e))
    print(json.dumps(out, indent=2, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
