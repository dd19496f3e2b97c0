"""The one data layer: image datasets as random-access sources, fed through grain.

`dataset` values every training module accepts:
  digits         scikit-learn's 8x8 handwritten digits, prepared once (offline) as a TFDS dataset
  <tfds name>    any TFDS image dataset already prepared in `data_dir` (mnist, fashion_mnist, cifar10, ...)
  npz:PATH       a user's images: uint8 `x` of shape [N,H,W] or [N,H,W,C], optional int `y`;
                 optional `x_test`/`y_test`, else the last 10% of `x` is the test split.
Every example is {'image': uint8 [H,W,C], 'label': int32}; models scale pixels themselves on device.
The batch at step s is a pure function of (seed, s): grain's shuffle draws a new permutation per epoch
from the seed, so resuming at a step resumes the stream exactly.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import hashlib
import json
import math
import os
import re
import shutil
import socket
import stat
import struct
import threading
import urllib.parse
import urllib.request
import zipfile
import zlib
from typing import Any

import grain
import jax
import jax.numpy as jnp
import numpy as np

from train.core import files, parallel
from train.core.errors import ConfigError, DataError, quiet_library_logs

DIGITS = "digits"


# ----------------------------------------------------------------------------- the embedded dataset


@functools.cache  # defining a builder class registers it with TFDS: do it once
def _digits_builder_cls():
    import tensorflow_datasets as tfds

    class Digits(tfds.core.GeneratorBasedBuilder):
        """scikit-learn's 1797 8x8 digits (UCI), pixels 0..16 rescaled to 0..255; 1500 train / 297 test."""

        name = "sklearn_digits"
        VERSION = tfds.core.Version("1.0.0")
        RELEASE_NOTES = {"1.0.0": "From sklearn.datasets.load_digits; fixed permutation, seed 0."}

        def __init__(self, **kwargs):
            # array_record needs no TensorFlow to write or read.
            super().__init__(file_format="array_record", **kwargs)

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                description="8x8 handwritten digits shipped with scikit-learn.",
                features=tfds.features.FeaturesDict(
                    {
                        "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.uint8),
                        "label": tfds.features.ClassLabel(num_classes=10),
                    }
                ),
                supervised_keys=("image", "label"),
            )

        def _split_generators(self, dl_manager):
            from sklearn.datasets import load_digits

            d = load_digits()
            images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
            order = np.random.default_rng(0).permutation(len(images))
            return {
                "train": self._generate_examples(images, d.target, order[:1500]),
                "test": self._generate_examples(images, d.target, order[1500:]),
            }

        def _generate_examples(self, images, labels, idx):
            for i in idx:
                yield int(i), {"image": images[i], "label": int(labels[i])}

    return Digits


def prepare_digits(data_dir: str | None = None):
    """Build the digits TFDS dataset into data_dir once (no download, no TensorFlow); return its builder."""
    import tensorflow_datasets as tfds

    builder = _digits_builder_cls()(data_dir=data_dir)
    if not builder.is_prepared():
        tfds.disable_progress_bar()
        builder.download_and_prepare()
    return builder


# ----------------------------------------------------------------------------- sources


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """What an image model is built from, without the images: the dataset's name, the image shape [H, W, C] and
    the number of classes (1: unlabelled). A run records it (workdir/spec.json) to be rebuilt without its data."""

    name: str
    image_shape: tuple[int, int, int]
    num_classes: int

    def to_json(self) -> dict:
        return {"dataset": self.name, "image_shape": list(self.image_shape), "num_classes": self.num_classes}

    @classmethod
    def from_json(cls, d: dict) -> ImageSpec:
        return cls(str(d["dataset"]), tuple(int(n) for n in d["image_shape"]), int(d["num_classes"]))


def check_labels(spec: ImageSpec, key: str, value, num_classes: int = 0) -> None:
    """DataError where config.<key>=value asks for the labels of an unlabelled dataset; ConfigError where a model
    of num_classes classes (> 0) does not fit the dataset's number of labels."""
    if spec.num_classes < 2:
        raise DataError(
            f"config.{key}={value!r} needs labelled data; dataset {spec.name!r} has no labels ({spec.num_classes} "
            f"class); accepted: config.{key}={0 if num_classes else False}"
        )
    if num_classes and num_classes != spec.num_classes:
        raise ConfigError(
            f"config.{key}={value!r} does not match dataset {spec.name!r}, which has {spec.num_classes} classes; "
            f"accepted: 0 (unconditional) or {spec.num_classes}"
        )


@dataclasses.dataclass(frozen=True)
class ImageData:
    """A dataset's two splits as random-access sources, and what a model needs to know of them."""

    name: str
    train: Any
    test: Any
    image_shape: tuple[int, int, int]
    num_classes: int
    fingerprint: dict = dataclasses.field(default_factory=dict)  # what a resumed run must find again
    # A file-name-safe name of the images' content, which keys caches made from them (the feature classifier):
    # each source declares its own (the TFDS name; npz- or images- and a hash of the bytes read).
    content_key: str = ""
    # Freshly decoded images:DIR images waiting in memory for the run's checks (images_of(c, cache=False)):
    # save_cache(data) writes them to data_dir's cache.
    unsaved_cache: Any = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def spec(self) -> ImageSpec:
        return ImageSpec(self.name, tuple(self.image_shape), self.num_classes)


class ArraySource:
    """A random-access source over in-memory arrays (grain needs __len__ and __getitem__)."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "label": self.labels[i]}


class _TfdsSource:
    """Keep only image/label of a TFDS data source, under the names every model uses."""

    def __init__(self, source, image_key, label_key):
        self.source, self.image_key, self.label_key = source, image_key, label_key

    def __len__(self):
        return len(self.source)

    def __getitem__(self, i):
        ex = self.source[i]
        image = np.asarray(ex[self.image_key])
        if image.ndim == 2:
            image = image[..., None]
        label = np.int32(ex[self.label_key]) if self.label_key else np.int32(0)
        return {"image": image, "label": label}


def _npz_error(path, what):
    return DataError(
        f"dataset 'npz:{path}': {what}; accepted: a .npz with uint8 'x' of shape [N,H,W] or [N,H,W,C] "
        f"(C in 1, 3, H and W >= 1), N >= 3 (or N >= 2 and a non-empty 'x_test'), optional integer 'y' of length N"
    )


MIN_TRAIN_IMAGES = 2  # a split a batch can be drawn from, and a held-out split of at least one image
MAX_LABEL = 2**31 - 1  # labels are int32 on device


NPZ_KEYS = ("x", "y", "x_test", "y_test")  # the members read; any other is left unread
# The most a deflated member expands: DEFLATE's limit is about 1032:1 (a 258-byte match coded in 2 bits); a margin.
DEFLATE_MAX_RATIO = 1100


def _npz_arrays(path: str) -> dict[str, np.ndarray]:
    """The NPZ_KEYS members of the .npz at path, each one's .npy header first checked against the bytes the archive
    holds for it, so a header that claims more than the file holds is refused before anything is allocated."""
    try:
        if not zipfile.is_zipfile(path):
            with open(path, "rb") as f:
                npy = f.read(len(np.lib.format.MAGIC_PREFIX)) == np.lib.format.MAGIC_PREFIX
            raise _npz_error(
                path,
                "a single array (a .npy file?), not an .npz archive of arrays" if npy else "not a readable .npz file",
            )
        with zipfile.ZipFile(path) as z:
            members = {_npz_key(info.filename): info for info in z.infolist()}
            if "x" not in members:
                raise _npz_error(path, f"no array 'x' (found {sorted(members) or 'none'})")
            for key in NPZ_KEYS:
                if key in members:
                    _check_npz_member(path, z, key, members[key], os.path.getsize(path))
        with np.load(path, allow_pickle=False) as f:
            return {key: f[key] for key in NPZ_KEYS if key in members}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, TypeError, AttributeError) as e:
        raise _npz_error(path, f"not a readable .npz file ({type(e).__name__})") from None


def _npz_key(member: str) -> str:
    """The name np.load gives an archive member: 'x.npy' -> 'x' (a member without the suffix keeps its name)."""
    return member[: -len(".npy")] if member.endswith(".npy") else member


def _check_npz_member(path: str, z: zipfile.ZipFile, key: str, info: zipfile.ZipInfo, file_size: int) -> None:
    """DataError unless the member is an .npy array whose header's shape and dtype need no more bytes than the
    member stores, and the member no more than its compressed bytes in the file can hold."""
    with z.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
        except ValueError:
            raise _npz_error(path, f"'{key}' is not an array (its member {info.filename!r} holds raw bytes)") from None
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(member)
        header_bytes = member.tell()
    if dtype.hasobject:
        raise _npz_error(path, f"'{key}' holds Python objects (dtype {dtype})")
    needed = math.prod(shape) * dtype.itemsize
    expands = {zipfile.ZIP_STORED: 1, zipfile.ZIP_DEFLATED: DEFLATE_MAX_RATIO}.get(info.compress_type)
    stored = info.file_size - header_bytes
    if needed > stored or info.compress_size > file_size or (expands and info.file_size > expands * info.compress_size):
        raise _npz_error(
            path,
            f"the header of '{key}' claims shape {shape} of {dtype} ({needed:,} bytes) but the file holds "
            f"{max(0, min(stored, file_size)):,} bytes of it (truncated or damaged)",
        )


def load_npz(path: str) -> ImageData:
    """The images of a user's .npz, every member checked before anything is trained (DataError naming the file)."""
    if not os.path.isfile(path):
        raise _npz_error(path, "no such file" if not os.path.exists(path) else "not a regular file")
    arrays = _npz_arrays(path)

    def images(key):
        x = arrays[key]
        if x.dtype != np.uint8:
            raise _npz_error(path, f"'{key}' has dtype {x.dtype}")
        if x.ndim == 3:
            x = x[..., None]
        if x.ndim != 4 or x.shape[-1] not in (1, 3) or min(x.shape[1:3], default=0) < 1:
            raise _npz_error(path, f"'{key}' has shape {arrays[key].shape}")
        return x

    def labels(key, n):
        if key not in arrays:
            return np.zeros(n, np.int32)
        y = arrays[key]
        if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer) or (n and (y.min() < 0 or y.max() > MAX_LABEL)):
            raise _npz_error(
                path,
                f"'{key}' must be integers in [0, 2^31) of shape ({n},), got {y.dtype} {y.shape}"
                + (f" with values in [{y.min()}, {y.max()}]" if y.size and np.issubdtype(y.dtype, np.integer) else ""),
            )
        return y.astype(np.int32)

    x = images("x")
    if len(x) < MIN_TRAIN_IMAGES + ("x_test" not in arrays):
        raise _npz_error(path, f"'x' holds {len(x)} image(s)")
    y = labels("y", len(x))
    if "x_test" in arrays:
        xt = images("x_test")
        yt = labels("y_test", len(xt))
        if not len(xt):
            raise _npz_error(path, "'x_test' holds no image")
        if xt.shape[1:] != x.shape[1:]:
            raise _npz_error(path, f"'x_test' images {xt.shape[1:]} differ from 'x' images {x.shape[1:]}")
    else:
        cut = len(x) - max(1, len(x) // 10)
        x, xt, y, yt = x[:cut], x[cut:], y[:cut], y[cut:]
    num_classes = int(max(y.max(initial=0), yt.max(initial=0))) + 1
    name = f"npz:{path}"
    fingerprint = {"dataset": f"npz:{os.path.abspath(path)}", **files.fingerprint(path)}
    return ImageData(
        name,
        ArraySource(x, y),
        ArraySource(xt, yt),
        tuple(x.shape[1:]),
        num_classes,
        fingerprint,
        "npz-" + (fingerprint.get("sha256") or fingerprint["sha256_sampled"])[:20],
    )


def prepared_builder(name: str, data_dir: str | None, download: bool = True):
    """The TFDS builder of `name`, prepared as ArrayRecord in data_dir: downloaded and prepared once when it is not
    (and download), as Flax's examples do; DataError in one line naming the dataset, the dir and what to do."""
    import tensorflow_datasets as tfds

    where = data_dir or "the default TFDS data dir (~/tensorflow_datasets)"
    with quiet_library_logs():
        try:
            builder = tfds.builder(name, data_dir=data_dir)  # the format it was prepared in, if it was
        except Exception as e:  # tfds raises several types for unknown names
            raise DataError(
                f"unknown dataset {name!r}; accepted: 'digits', 'npz:PATH', 'images:DIR', or a TFDS image dataset "
                f"name such as mnist, fashion_mnist, cifar10 ({type(e).__name__})"
            ) from None
        if builder.is_prepared():
            if builder.info.file_format.value == "tfrecord":
                tfrecord_to_array_record(builder.data_dir)
                return tfds.builder(name, data_dir=data_dir)
            return builder
        builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
        if not download:
            raise DataError(
                f"TFDS dataset {name!r} is not prepared as array_record in {where} and config.download=False; "
                f"prepare it where there is internet (python -m train.<model> --config.dataset={name} "
                f"--config.data_dir=DIR), then pass --config.data_dir=DIR"
            )
        refuse_unreachable(name, where)
        _download_and_prepare(builder, name, where, data_dir)
    return builder


def _download_and_prepare(builder, name: str, where: str, data_dir: str | None) -> None:
    """builder.download_and_prepare(), its failures one DataError line, the temporary downloads of a failed one
    removed (a retry downloads afresh what did not finish; what did finish stays)."""
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    before = _entries(data_dir)
    try:
        builder.download_and_prepare()
    except BaseException as e:
        _remove_failed_download(data_dir, before)
        if isinstance(e, ImportError):
            raise DataError(
                f"TFDS dataset {name!r} needs TensorFlow to prepare ({e.name or e}); pip install 'jax-zoo[tf]' "
                f"(on Colab it is there), then run the same command again"
            ) from None
        if not isinstance(e, Exception):  # Ctrl-C
            raise
        why = (str(e).strip().splitlines() or [""])[0][:200]
        raise DataError(
            f"TFDS dataset {name!r} could not be downloaded and prepared in {where} ({type(e).__name__}: "
            f"{why}); offline? prepare it where there is internet and pass --config.data_dir=DIR, or set "
            f"--config.download=False"
        ) from None


# Where a download is first tried: the host most TFDS datasets (mnist, fashion_mnist, ...) come from. The environment
# variable names another as HOST:PORT, or '' for no probe (docs/images.md#data).
DOWNLOAD_HOST, DOWNLOAD_HOST_VARIABLE = "storage.googleapis.com:443", "ZOO_DOWNLOAD_HOST"
PROBE_SECONDS = 10  # TFDS itself retries an unreachable host for minutes, silently


def refuse_unreachable(name: str, where: str) -> None:
    """DataError, within PROBE_SECONDS and before anything is written, where the download host (or the HTTPS proxy
    the environment names for it) takes no TCP connection."""
    target = os.environ.get(DOWNLOAD_HOST_VARIABLE, DOWNLOAD_HOST)
    if not target:
        return
    host, _, port = target.rpartition(":")
    proxy = urllib.request.getproxies().get("https")
    if proxy and not urllib.request.proxy_bypass(host):
        url = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = url.hostname or host, url.port or (443 if url.scheme == "https" else 80)
    failure = []

    def connect():
        try:
            socket.create_connection((host, int(port)), timeout=PROBE_SECONDS).close()
        except (OSError, ValueError) as e:  # name resolution, refused, unreachable, timed out; a bad port
            failure.append(f"{type(e).__name__}: {e}")

    probe = threading.Thread(target=connect, daemon=True)  # a name lookup has no timeout of its own
    probe.start()
    probe.join(PROBE_SECONDS)
    if probe.is_alive() or failure:
        why = failure[0] if failure else f"no answer in {PROBE_SECONDS} s"
        raise DataError(
            f"TFDS dataset {name!r} is not prepared in {where} and cannot be downloaded: {host}:{port} cannot be "
            f"reached ({why}); offline? prepare it where there is internet and pass --config.data_dir=DIR, or set "
            f"--config.download=False"
        )


def _entries(data_dir: str | None) -> set[str]:
    """Every file and folder under data_dir (the default TFDS data dir for None), data_dir itself included."""
    from tensorflow_datasets.core import constants

    root = os.path.expanduser(data_dir or constants.DATA_DIR)
    return {root, *(os.path.join(d, n) for d, dirs, names in os.walk(root) for n in dirs + names)}


def _remove_failed_download(data_dir: str | None, before: set[str]) -> None:
    """Remove what a failed download_and_prepare made under data_dir that is of no use to a retry: its temporary
    downloads (<name>.tmp.<32 hex digits>, files or folders) and the folders it made that are left empty."""
    made = _entries(data_dir) - before
    for path in sorted(made, key=len, reverse=True):  # the deepest first, so a folder is emptied before it is tried
        if re.search(r"\.tmp\.[0-9a-f]{32}$", os.path.basename(path)):
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.lexists(path):
                os.remove(path)
        elif os.path.isdir(path) and not os.listdir(path):
            os.rmdir(path)


def tfrecord_records(path: str):
    """The records of a TFRecord file (uint64 length, its CRC, the bytes, their CRC; the CRCs are not checked)."""
    with open(path, "rb") as f:
        while head := f.read(12):
            (n,) = struct.unpack("<Q", head[:8]) if len(head) == 12 else (-1,)
            record = f.read(n + 4) if n >= 0 else b""
            if n < 0 or len(record) != n + 4:
                raise DataError(f"{path} is a truncated TFRecord file; prepare the dataset again")
            yield record[:n]


def tfrecord_to_array_record(dataset_dir: str) -> int:
    """Convert a TFDS dataset prepared as TFRecord to ArrayRecord in place, once, without TensorFlow: both formats
    hold the same serialized examples, so each shard's records are copied into an ArrayRecord shard beside it and
    dataset_info.json then names array_record (the TFRecord shards stay). Returns the records copied."""
    from array_record.python.array_record_module import ArrayRecordWriter

    shards = sorted(p for p in os.listdir(dataset_dir) if ".tfrecord-" in p)
    print(f"Converting the TFRecord dataset in {dataset_dir} to ArrayRecord once ({len(shards)} shards).", flush=True)
    copied = 0
    for shard in shards:
        target = os.path.join(dataset_dir, shard.replace(".tfrecord-", ".array_record-"))
        writer = ArrayRecordWriter(target + ".tmp", "group_size:1")
        for record in tfrecord_records(os.path.join(dataset_dir, shard)):
            writer.write(record)
            copied += 1
        writer.close()
        os.replace(target + ".tmp", target)
    info_path = os.path.join(dataset_dir, "dataset_info.json")
    with open(info_path, encoding="utf-8") as f:
        info = json.load(f)
    files.write_json(info_path, {**info, "fileFormat": "array_record"})
    return copied


def load_tfds(name: str, data_dir: str | None, download: bool = True) -> ImageData:
    import tensorflow_datasets as tfds

    builder = prepare_digits(data_dir) if name == DIGITS else prepared_builder(name, data_dir, download)

    def source(split):
        try:
            if name == DIGITS:
                return builder.as_data_source(split=split)
            return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
        except Exception as e:
            raise DataError(f"TFDS dataset {name!r} has no readable split {split!r} ({type(e).__name__})") from None

    train = source("train")
    test = None
    for split in ("test", "validation"):
        try:
            test = source(split)
            break
        except DataError:
            pass
    if test is None:  # no held-out split: hold out the last 10% of train
        train, test = source("train[:90%]"), source("train[90%:]")
    features = train.dataset_info.features
    image_key = next((k for k in ("image", "img") if k in features), None)
    if image_key is None:
        raise DataError(
            f"TFDS dataset {name!r} has no 'image' feature (features: {sorted(features)}); accepted: image datasets"
        )
    label_key = "label" if "label" in features else None
    shape = tuple(features[image_key].shape)
    if len(shape) == 2:
        shape = shape + (1,)
    if None in shape:
        raise DataError(f"TFDS dataset {name!r} has images of varying size {shape}; accepted: fixed-size images")
    num_classes = features[label_key].num_classes if label_key else 1
    fingerprint = {
        "dataset": name,
        "version": str(train.dataset_info.version),
        "train_examples": len(train),
        "test_examples": len(test),
    }
    return ImageData(
        name,
        _TfdsSource(train, image_key, label_key),
        _TfdsSource(test, image_key, label_key),
        shape,
        int(num_classes),
        fingerprint,
        re.sub(r"[^A-Za-z0-9_.-]+", "_", name),
    )


def load_images(
    dataset: str,
    data_dir: str | None = None,
    *,
    image_size: int = 0,
    channels: int = 0,
    skip_bad_images: bool = False,
    download: bool = True,
    cache: bool = True,
) -> ImageData:
    """Resolve a `dataset` config value to its train and test sources, resized to image_size when > 0 (cache: see
    load_image_folder)."""
    if not isinstance(dataset, str) or not dataset:
        raise DataError(
            f"dataset must be a non-empty string, got {dataset!r}; accepted: 'digits', 'npz:PATH', 'images:DIR', "
            f"or a TFDS image dataset name"
        )
    if dataset.startswith("npz:"):
        ds = load_npz(dataset[4:])
    elif dataset.startswith("images:"):
        return load_image_folder(dataset[len("images:") :], data_dir, image_size, channels, skip_bad_images, cache)
    else:
        ds = load_tfds(dataset, data_dir, download)
    return resized(ds, image_size)


def images_of(c, cache: bool = True) -> ImageData:
    """The dataset a config's IMAGE_DATA keys name (cache: see load_image_folder)."""
    return load_images(
        c.dataset,
        c.data_dir or None,
        image_size=c.get("image_size", 0),
        channels=c.get("channels", 0),
        skip_bad_images=c.get("skip_bad_images", False),
        download=c.get("download", True),
        cache=cache,
    )


# ----------------------------------------------------------------------------- image size and folders


def resize_and_crop(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 [H, W, C] -> [size, size, C]: the shorter side resized to size (antialiased Lanczos), then the centre
    crop, as torchvision's Resize(size) + CenterCrop(size) and the DDPM codebases take it."""
    from PIL import Image

    h, w, c = image.shape
    if (h, w) == (size, size):
        return image
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    pil = Image.fromarray(image[..., 0] if c == 1 else image)
    pil = pil.resize((nw, nh), Image.Resampling.LANCZOS)
    top, left = (nh - size) // 2, (nw - size) // 2
    out = np.asarray(pil.crop((left, top, left + size, top + size)), np.uint8)
    return out[..., None] if out.ndim == 2 else out


class _Resized:
    """A source whose images are resize_and_crop'ed to size as they are read."""

    def __init__(self, source, size: int):
        self.source, self.size = source, size

    def __len__(self):
        return len(self.source)

    def __getitem__(self, i):
        ex = self.source[i]
        return {"image": resize_and_crop(np.asarray(ex["image"]), self.size), "label": ex["label"]}


class _Rows:
    """The rows `index` of (memory-mapped) arrays, read only when asked for: a folder larger than memory streams."""

    def __init__(self, images, labels, index):
        self.images, self.labels, self.index = images, labels, index

    def __len__(self):
        return len(self.index)

    def __getitem__(self, i):
        j = self.index[i]
        return {"image": np.asarray(self.images[j]), "label": self.labels[j]}


def resized(ds: ImageData, size: int) -> ImageData:
    """ds with every image resized and centre-cropped to size x size (size 0, or the stored size: ds itself)."""
    if not size or ds.image_shape[:2] == (size, size):
        return ds
    if isinstance(ds.train, ArraySource) and isinstance(ds.test, ArraySource):  # small: once, in memory
        train, test = (
            ArraySource(np.stack([resize_and_crop(x, size) for x in s.images]), s.labels) for s in (ds.train, ds.test)
        )
    else:
        train, test = _Resized(ds.train, size), _Resized(ds.test, size)
    shape = (size, size, ds.image_shape[2])
    return dataclasses.replace(
        ds, train=train, test=test, image_shape=shape, fingerprint={**ds.fingerprint, "image_size": size}
    )


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
FOLDER_CACHE = "image_folders"  # under data_dir: one decoded copy of each folder, keyed by its files' bytes
FOLDER_DECODER = 2  # part of the cache key: a change of how files become pixels must not read an older cache
HELD_OUT_EVERY = 10  # every 10th image in sorted order is the held-out split, so a folder needs at least 10


def _folder_error(path: str, what: str) -> DataError:
    return DataError(
        f"dataset 'images:{path}': {what}; accepted: a directory of PNG/JPEG/BMP/WebP files (labels from the "
        f"first-level subfolders, in sorted order; none: unlabelled), at least {HELD_OUT_EVERY} images (every "
        f"{HELD_OUT_EVERY}th is held out)"
    )


def _bad_file(path: str, name: str, why: str) -> DataError:
    return _folder_error(path, f"{name} {why}; fix or remove it, or set config.skip_bad_images=True to skip such files")


def load_image_folder(
    path: str, data_dir: str | None, image_size: int = 0, channels: int = 0, skip_bad: bool = False, cache=True
) -> ImageData:
    """Every image file below path (symlinked folders followed), decoded once into a memory-mapped cache in data_dir
    keyed by the files' names and bytes, the channels and the size, so a rerun does not decode again; every 10th
    file in sorted order is the held-out split. cache=False: freshly decoded images wait in memory until
    save_cache(the data), so a run refused by a check of the data leaves no cache behind."""
    root, found, classes = _folder_files(path)
    settings = f"decoder={FOLDER_DECODER}\nchannels={channels}\nsize={image_size}"
    digest, readable, unreadable = _content_digest(path, root, found, skip_bad, settings)
    cache_dir = os.path.join(data_dir or os.path.expanduser("~/tensorflow_datasets"), FOLDER_CACHE, digest[:32])
    cached = _read_folder_cache(cache_dir)
    unsaved = None
    if cached is None:
        images, labels, undecodable = _decode_folder(path, root, readable, classes, channels, image_size, skip_bad)
        skipped = sorted(unreadable + undecodable)
        if skipped:
            print(f"warning: images:{path}: skipped {len(skipped)} file(s) that cannot be read or decoded", flush=True)
        info = {"classes": classes, "skipped": len(skipped), "skipped_files": skipped, "count": len(images)}
        info["channels"] = images.shape[-1]
        unsaved = functools.cache(functools.partial(_write_folder_cache, cache_dir, images, labels, info))  # once
        if cache:
            unsaved()
            info, images, labels = _read_folder_cache(cache_dir) or (info, images, labels)
            unsaved = None
    else:
        info, images, labels = cached
        if info["skipped_files"] and not skip_bad:
            raise _bad_file(path, info["skipped_files"][0], "cannot be read or decoded (it was skipped before)")
    held_out = np.arange(len(images)) % HELD_OUT_EVERY == HELD_OUT_EVERY - 1
    train, test = _Rows(images, labels, np.flatnonzero(~held_out)), _Rows(images, labels, np.flatnonzero(held_out))
    fingerprint = {"dataset": f"images:{root}", "sha256": digest, "files": len(found), "skipped": info["skipped"]}
    shape, num_classes = tuple(images.shape[1:]), max(1, len(classes))
    return ImageData(
        f"images:{path}", train, test, shape, num_classes, fingerprint, f"images-{digest[:20]}", unsaved_cache=unsaved
    )


def _folder_files(path: str) -> tuple[str, list[str], list[str]]:
    """(the folder's absolute path, its image files relative to it in sorted order, the class subfolders); DataError
    before anything is read where it cannot give both splits an image."""
    if not os.path.isdir(path):
        raise _folder_error(path, "no such directory" if not os.path.exists(path) else "not a directory")
    root = os.path.abspath(path)
    found = []
    for d, dirs, names in os.walk(root, followlinks=True):  # a symlinked class folder is a class folder
        dirs[:] = [n for n in dirs if not _loops_back(os.path.join(d, n), root)]
        found += [os.path.relpath(os.path.join(d, n), root) for n in names if n.lower().endswith(IMAGE_SUFFIXES)]
    found.sort()
    if not found:
        raise _folder_error(path, "holds no image file")
    classes = sorted({f.split(os.sep)[0] for f in found if os.sep in f})
    if classes and any(os.sep not in f for f in found):
        loose = next(f for f in found if os.sep not in f)
        raise _folder_error(path, f"{loose} lies beside the class subfolders {classes[:3]}; put it in one")
    if len(found) < HELD_OUT_EVERY:
        raise _folder_error(path, f"holds {len(found)} image file(s), which leave the held-out split empty")
    return root, found, classes


def _loops_back(d: str, root: str) -> bool:
    """Whether directory d (below root) is a link to itself or a folder above it: walking it would never end."""
    real, up = os.path.realpath(d), d
    while up != root:
        up = os.path.dirname(up)
        if os.path.realpath(up) == real:
            return True
    return False


def _content_digest(path, root, found, skip_bad, settings) -> tuple[str, list[str], list[str]]:
    """(the sha256 of the files' names and bytes and the settings, the files that can be read, those that cannot);
    a file that cannot be read (a dangling symbolic link, a FIFO or device, no permission) is DataError naming it,
    unless skip_bad."""
    lines, readable, unreadable = [], [], []
    for f in found:
        why = _unreadable(os.path.join(root, f))
        if why is None:
            try:
                fp = files.fingerprint(os.path.join(root, f))
            except OSError as e:
                why = f"cannot be read ({e.strerror or type(e).__name__})"
        if why is not None:
            if not skip_bad:
                raise _bad_file(path, f, why)
            unreadable.append(f)
            continue
        readable.append(f)
        lines.append(f"{f}:{fp['size']}:{fp.get('sha256') or fp['sha256_sampled']}")
    lines += [f"unreadable:{f}" for f in unreadable] + [settings]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest(), readable, unreadable


def _unreadable(p: str) -> str | None:
    """Why the file at p cannot be read as an image file, or None: reading a FIFO or a device would block or never
    end, so only regular files are opened."""
    try:
        mode = os.stat(p).st_mode
    except OSError as e:
        if os.path.islink(p) and e.errno == errno.ENOENT:
            return f"is a symbolic link to {os.readlink(p)}, which does not exist"
        return f"cannot be read ({e.strerror or type(e).__name__})"
    return None if stat.S_ISREG(mode) else "is not a regular file"


def _read_folder_cache(cache: str) -> tuple[dict, np.ndarray, np.ndarray] | None:
    """(info, images memory-mapped, labels) of a folder's cache, or None where there is none; a damaged one (a file
    truncated, garbled or missing, or the files disagreeing) is set aside with one warning and None returned, so the
    folder is decoded again."""
    info_path = os.path.join(cache, "info.json")
    if os.path.isdir(cache):
        files.remove_temporaries(cache)  # of writes a kill cut short
    if not os.path.exists(info_path):  # written last: without it the cache was never finished
        return None
    reading = info_path
    try:
        with open(info_path, encoding="utf-8") as f:
            info = json.load(f)
        reading = os.path.join(cache, "images.npy")
        images = np.load(reading, mmap_mode="r")
        reading = os.path.join(cache, "labels.npy")
        labels = np.load(reading, allow_pickle=False)
        reading = info_path
        _check_folder_cache(info, images, labels)
    except (OSError, ValueError, EOFError, KeyError, TypeError, AttributeError) as e:
        files.set_aside(reading if os.path.exists(reading) else info_path, f"{type(e).__name__}: {e}")
        return None
    return info, images, labels


def _check_folder_cache(info, images, labels) -> None:
    """ValueError where a folder cache's three files disagree."""
    n = info["count"]
    if not (isinstance(info["skipped_files"], list) and info["skipped"] == len(info["skipped_files"])):
        raise ValueError(f"skipped {info['skipped']!r} does not count skipped_files")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] != n or images.shape[-1] != info["channels"]:
        raise ValueError(
            f"images.npy holds {images.dtype} {images.shape}, not {n} uint8 images of {info['channels']} channel(s)"
        )
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels.npy holds {labels.dtype} {labels.shape}, not {n} integer labels")


def _write_folder_cache(cache: str, images: np.ndarray, labels: np.ndarray, info: dict) -> None:
    os.makedirs(cache, exist_ok=True)
    with files.atomic_write(os.path.join(cache, "images.npy")) as f:
        np.save(f, images)
    with files.atomic_write(os.path.join(cache, "labels.npy")) as f:
        np.save(f, labels)
    files.write_json(os.path.join(cache, "info.json"), info)  # last: it marks the cache complete


def save_cache(ds: ImageData) -> None:
    """Write the decoded images that waited for the run's checks (images_of(c, cache=False)) to their cache in
    data_dir, so the next run reads them without decoding; nothing for data that has no such images."""
    if ds.unsaved_cache is not None:
        ds.unsaved_cache()


def _decode_folder(path, root, found, classes, channels, image_size, skip_bad) -> tuple[np.ndarray, np.ndarray, list]:
    """(uint8 images [N, H, W, C], int32 labels [N], the files skipped) of the files that decode (pixels());
    C is `channels`, or 0: 1 where most files are grey, else 3."""
    from PIL import Image

    decoded, labels, skipped = [], [], []
    for f in found:
        try:
            with Image.open(os.path.join(root, f)) as im:
                im.load()
                decoded.append(pixels(im))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            if not skip_bad:
                why = str(e) if isinstance(e, UnsupportedPixels) else type(e).__name__
                raise _bad_file(path, f, f"cannot be decoded ({why})") from None
            skipped.append(f)
            continue
        labels.append(classes.index(f.split(os.sep)[0]) if classes else 0)
    c = channels or (1 if sum(x.ndim == 2 for x in decoded) * 2 > len(decoded) else 3)
    arrays = [with_channels(x, c) for x in decoded]
    arrays = [resize_and_crop(x, image_size) for x in arrays] if image_size else arrays
    sizes = sorted({a.shape[:2] for a in arrays})
    if len(sizes) > 1:
        raise _folder_error(
            path,
            f"images of {len(sizes)} sizes ({', '.join(f'{h}x{w}' for h, w in sizes[:3])}, ...); set "
            f"config.image_size to resize and centre-crop them all",
        )
    if len(arrays) < HELD_OUT_EVERY:
        raise _folder_error(path, f"{len(arrays)} image(s) could be decoded")
    return np.stack(arrays), np.asarray(labels, np.int32), skipped


# ----------------------------------------------------------------------------- pixel modes
# How each PIL mode becomes uint8 pixels, explicitly (docs/images.md#pixel-modes), as PIL's own convert('L') clips a
# 16-bit image (almost every pixel 255) instead of scaling it.


class UnsupportedPixels(ValueError):
    """An image whose pixels have no one mapping to 0..255 (a 32-bit float image, LAB)."""


SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
STRAIGHT_ALPHA = {"LA": "LA", "La": "LA", "RGBA": "RGBA", "RGBa": "RGBA", "RGBX": "RGBA", "P": "RGBA", "PA": "RGBA"}


def pixels(im) -> np.ndarray:
    """A decoded PIL image's pixels as uint8 [H, W] (grey) or [H, W, 3] (colour), by its mode:
    L, RGB as they are; 1 as 0 or 255;
    16-bit grey (I;16*, and I whose values lie in 0..65535, as PIL opens 16-bit PNG and TIFF) as x >> 8, the high
      byte, as PIL itself reduces 16-bit colour and grey-alpha PNGs: a grey and a colour copy of one 16-bit image
      agree, and an 8-bit image stored as 16 bits (v * 257) comes back exactly;
    alpha (LA, RGBA, PA, and the premultiplied La, RGBa made straight first) dropped, the stored colour kept, as
      PIL's convert('RGB') and torchvision's ImageFolder loader do; palettes (P, PA) looked up;
    CMYK, YCbCr, HSV by PIL's conversion to RGB (CMYK: R = (255 - C)(255 - K) / 255, rounded);
    refused (UnsupportedPixels): F (32-bit float: no one scale to 0..255), I outside 0..65535, LAB."""
    mode = im.mode
    if mode in ("L", "RGB"):
        return np.asarray(im, np.uint8)
    if mode == "1":
        return np.asarray(im, np.uint8) * np.uint8(255)
    if mode in SIXTEEN_BIT or mode == "I":
        x = np.asarray(im).astype(np.int64)
        if x.size and (x.min() < 0 or x.max() > 0xFFFF):
            raise UnsupportedPixels(f"mode I pixels in [{x.min()}, {x.max()}], outside the 16-bit range 0..65535")
        return (x >> 8).astype(np.uint8)
    if mode in STRAIGHT_ALPHA:
        straight = np.asarray(im.convert(STRAIGHT_ALPHA[mode]), np.uint8)
        return straight[..., 0] if STRAIGHT_ALPHA[mode] == "LA" else straight[..., :3]
    if mode in ("CMYK", "YCbCr", "HSV"):
        return np.asarray(im.convert("RGB"), np.uint8)
    raise UnsupportedPixels(
        f"mode {mode} ({'32-bit float' if mode == 'F' else 'no one mapping to 0..255'}); accepted: 8- or 16-bit "
        f"grey, palette, RGB(A), CMYK or YCbCr images"
    )


def with_channels(x: np.ndarray, c: int) -> np.ndarray:
    """uint8 [H, W] or [H, W, 3] -> [H, W, c]: colour to grey by PIL's ITU-R 601-2 luma (L = 0.299 R + 0.587 G +
    0.114 B), grey to colour by repeating it."""
    from PIL import Image

    if c == 1:
        return (np.asarray(Image.fromarray(x).convert("L"), np.uint8) if x.ndim == 3 else x)[..., None]
    return np.repeat(x[..., None], 3, axis=-1) if x.ndim == 2 else x


def as_arrays(source, limit: int | None = None) -> dict[str, np.ndarray]:
    """The first `limit` examples of a source as stacked arrays (for evaluation)."""
    n = len(source) if limit is None else min(limit, len(source))
    examples = [source[i] for i in range(n)]
    return {"image": np.stack([e["image"] for e in examples]), "label": np.array([e["label"] for e in examples])}


def split_arrays(source, limit: int = 0) -> dict[str, np.ndarray]:
    """A split as {'image': uint8 [N,H,W,C], 'label': int [N]}; limit 0 = all of it."""
    return as_arrays(source, limit or None)


def batched(fn, *arrays, batch_size: int = 1000):
    """fn(*chunks) over chunks of the arrays' leading axis, the last padded to one compiled shape; outputs
    (arrays or tuples of them) concatenated and cut back to the arrays' length."""
    arrays = [np.asarray(a) for a in arrays]
    n = len(arrays[0])
    bs = min(batch_size, n)
    outs = []
    for i in range(0, n, bs):
        chunks = [a[i : i + bs] for a in arrays]
        m = len(chunks[0])
        if m < bs:
            chunks = [np.concatenate([a, np.repeat(a[-1:], bs - m, axis=0)]) for a in chunks]
        outs.append(jax.tree.map(lambda a: np.asarray(a)[:m], fn(*chunks)))
    return jax.tree.map(lambda *a: np.concatenate(a), *outs)


# ----------------------------------------------------------------------------- pixels
# Datasets hold uint8 pixels; models scale them on device to [0, 1] (likelihood models) or [-1, 1]
# (GAN, DDPM, the feature classifier), and figures map model outputs back to uint8.


def to_unit(images):
    """uint8 pixels 0..255 -> floats in [0, 1]."""
    return jnp.asarray(images).astype(jnp.float32) / 255.0


def to_signed(images):
    """uint8 pixels 0..255 -> floats in [-1, 1]."""
    return jnp.asarray(images).astype(jnp.float32) / 127.5 - 1.0


def to_uint8(x, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """Floats in [low, high] -> uint8 0..255 (clipped)."""
    x = (np.asarray(x, np.float32) - low) / (high - low)
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def unit_to_uint8(x) -> np.ndarray:
    """Floats in [0, 1] -> uint8 0..255 (clipped)."""
    return to_uint8(x, 0.0, 1.0)


def signed_to_uint8(x) -> np.ndarray:
    """Floats in [-1, 1] -> uint8 0..255 (clipped)."""
    return to_uint8(x, -1.0, 1.0)


# ----------------------------------------------------------------------------- batches

IN_MEMORY_BYTES = 1 << 31  # train splits up to this size are read once and batched from memory


class InMemoryBatches:
    """Batches of a split held in memory: step i's global batch is positions i*B .. i*B+B-1 of the stream of
    epoch permutations (epoch e shuffled by rng(seed, e)); each process gets its contiguous share.

    One grain record per step (a numpy gather) instead of one per example: reading and stacking examples
    one by one costs more, on 2 CPU cores, than a small model's whole train step.
    """

    def __init__(self, source):
        arrays = as_arrays(source)
        self.images, self.labels = arrays["image"], arrays["label"].astype(np.int32)
        if len(self.images) == 0:
            raise DataError("the training split is empty")
        self._perms: dict[tuple[int, int], np.ndarray] = {}

    def _perm(self, seed: int, epoch: int) -> np.ndarray:
        if (seed, epoch) not in self._perms:
            if len(self._perms) > 8:
                self._perms.clear()
            self._perms[seed, epoch] = np.random.default_rng([seed, epoch]).permutation(len(self.images))
        return self._perms[seed, epoch]

    def indices(self, seed: int, step: int, global_batch_size: int) -> np.ndarray:
        """Example indices of the global batch of `step` (0-based)."""
        n = len(self.images)
        pos = step * global_batch_size + np.arange(global_batch_size)
        epochs, within = np.divmod(pos, n)
        out = np.empty(global_batch_size, np.int64)
        for e in np.unique(epochs):
            m = epochs == e
            out[m] = self._perm(seed, int(e))[within[m]]
        return out

    def __call__(self, global_batch_size: int, seed: int, *, num_threads: int | None = None, flip: bool = False):
        nproc, p = jax.process_count(), jax.process_index()
        if global_batch_size % nproc:
            raise DataError(f"batch_size {global_batch_size} is not divisible by the number of processes {nproc}")

        def record(step):
            idx = np.split(self.indices(seed, step, global_batch_size), nproc)[p]
            images = self.images[idx]
            if flip:  # drawn for the global batch from (seed, step): the same flips on any number of processes
                flips = np.split(np.random.default_rng([seed, step, 1]).random(global_batch_size) < 0.5, nproc)[p]
                images = mirror_rows(images, flips)
            return {"image": images, "label": self.labels[idx]}

        ds = grain.MapDataset.range(0, 1 << 62).map(record)
        return iter(ds.to_iter_dataset(parallel.read_options(1, num_threads)))


def mirror_rows(images: np.ndarray, flips: np.ndarray) -> np.ndarray:
    """A copy of images [B,H,W,C] with the images where flips is True mirrored left-right, each pixel's C values
    moved as one item (a void view). np.where(flips, images[:, :, ::-1], images) gives the same but takes ~8x as
    long (3.3 ms against 0.4 ms for 128 32x32x3 images on 2 CPU cores): 342 against 1,479 flipped in-memory batches/s
    (benchmarks.input_speed)."""
    out = np.array(images, order="C")
    pixels = out.view(np.dtype((np.void, out.shape[-1] * out.itemsize)))[..., 0]
    rows = np.flatnonzero(flips)
    pixels[rows] = pixels[rows, :, ::-1]
    return out


def _flip_half(batch, rng: np.random.Generator):
    flips = rng.random(len(batch["image"])) < 0.5
    return {**batch, "image": mirror_rows(batch["image"], flips)}


def training_batches(c, ds: ImageData):
    """Task.batches of an image model: (global_batch_size, seed) -> batches(ds.train, ...), flipped when the config's
    random_flip (AUGMENTATION) says so. Its first call writes the decoded images that wait for the run's checks
    (images_of(c, cache=False)) to their folder cache: the loop asks for batches once every check has passed."""

    def training(global_batch_size: int, seed: int, **kw):
        save_cache(ds)
        return batches(ds.train, global_batch_size, seed, flip=c.get("random_flip", False), **kw)

    return training


def batches(source, global_batch_size: int, seed: int, *, num_threads: int | None = None, flip: bool = False):
    """An endless, checkpointable grain iterator of this process's rows of each global batch.

    The global batch at step s is the same whatever the number of processes; process p of n feeds rows
    [p*b, (p+1)*b) of it, b = global_batch_size / n, and so never an example another host feeds at that
    step. Splits that fit in memory (IN_MEMORY_BYTES) are read once and batched by index (InMemoryBatches);
    larger ones are read example by example through grain's shuffled stream. num_threads: grain's read threads
    (None: parallel.input_threads, 1 in memory and 2 streamed on the CPU, up to 8 beside an accelerator).
    """
    n, p = jax.process_count(), jax.process_index()
    if global_batch_size % n:
        raise DataError(f"batch_size {global_batch_size} is not divisible by the number of processes {n}")
    if len(source) == 0:
        raise DataError("the training split is empty")
    if len(source) * source[0]["image"].nbytes <= IN_MEMORY_BYTES:
        return InMemoryBatches(source)(global_batch_size, seed, num_threads=num_threads, flip=flip)
    ds = grain.MapDataset.source(source).shuffle(seed=seed).repeat().batch(global_batch_size // n, drop_remainder=True)
    if n > 1:
        ds = ds[p::n]
    if flip:
        ds = ds.random_map(_flip_half, seed=seed + 1)
    return iter(ds.to_iter_dataset(parallel.read_options(2, num_threads)))
