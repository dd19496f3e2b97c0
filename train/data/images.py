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
import functools
import hashlib
import json
import os
import re
import struct
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

    @property
    def spec(self) -> ImageSpec:
        return ImageSpec(self.name, tuple(self.image_shape), self.num_classes)


class _ArraySource:
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


def load_npz(path: str) -> ImageData:
    """The images of a user's .npz, every member checked before anything is trained (DataError naming the file)."""
    if not os.path.isfile(path):
        raise _npz_error(path, "no such file" if not os.path.exists(path) else "not a regular file")
    try:
        f = np.load(path, allow_pickle=False)
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise _npz_error(path, f"a single {type(f).__name__} (a .npy file?), not an .npz archive of arrays")
        with f:
            arrays = {k: f[k] for k in f.files}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, TypeError, AttributeError) as e:
        raise _npz_error(path, f"not a readable .npz file ({type(e).__name__})") from None
    if "x" not in arrays:
        raise _npz_error(path, f"no array 'x' (found {sorted(arrays) or 'none'})")

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
        _ArraySource(x, y),
        _ArraySource(xt, yt),
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
        tfds.disable_progress_bar()
        try:
            builder.download_and_prepare()
        except ImportError as e:
            raise DataError(
                f"TFDS dataset {name!r} needs TensorFlow to prepare ({e.name or e}); pip install 'jax-zoo[tf]' "
                f"(on Colab it is there), then run the same command again"
            ) from None
        except Exception as e:
            why = (str(e).strip().splitlines() or [""])[0][:200]
            raise DataError(
                f"TFDS dataset {name!r} could not be downloaded and prepared in {where} ({type(e).__name__}: "
                f"{why}); offline? prepare it where there is internet and pass --config.data_dir=DIR, or set "
                f"--config.download=False"
            ) from None
    return builder


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
) -> ImageData:
    """Resolve a `dataset` config value to its train and test sources, resized to image_size when > 0."""
    if not isinstance(dataset, str) or not dataset:
        raise DataError(
            f"dataset must be a non-empty string, got {dataset!r}; accepted: 'digits', 'npz:PATH', 'images:DIR', "
            f"or a TFDS image dataset name"
        )
    if dataset.startswith("npz:"):
        ds = load_npz(dataset[4:])
    elif dataset.startswith("images:"):
        return load_image_folder(dataset[len("images:") :], data_dir, image_size, channels, skip_bad_images)
    else:
        ds = load_tfds(dataset, data_dir, download)
    return resized(ds, image_size)


def images_of(c) -> ImageData:
    """The dataset a config's IMAGE_DATA keys name."""
    return load_images(
        c.dataset,
        c.data_dir or None,
        image_size=c.get("image_size", 0),
        channels=c.get("channels", 0),
        skip_bad_images=c.get("skip_bad_images", False),
        download=c.get("download", True),
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
    if isinstance(ds.train, _ArraySource) and isinstance(ds.test, _ArraySource):  # small: once, in memory
        train, test = (
            _ArraySource(np.stack([resize_and_crop(x, size) for x in s.images]), s.labels) for s in (ds.train, ds.test)
        )
    else:
        train, test = _Resized(ds.train, size), _Resized(ds.test, size)
    shape = (size, size, ds.image_shape[2])
    return dataclasses.replace(
        ds, train=train, test=test, image_shape=shape, fingerprint={**ds.fingerprint, "image_size": size}
    )


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
FOLDER_CACHE = "image_folders"  # under data_dir: one decoded copy of each folder, keyed by its files


def _folder_error(path: str, what: str) -> DataError:
    return DataError(
        f"dataset 'images:{path}': {what}; accepted: a directory of PNG/JPEG/BMP/WebP files (labels from the "
        f"first-level subfolders, in sorted order; none: unlabelled), at least 3 images"
    )


def load_image_folder(
    path: str, data_dir: str | None, image_size: int = 0, channels: int = 0, skip_bad: bool = False
) -> ImageData:
    """Every image file below path, decoded once into a memory-mapped cache in data_dir (keyed by the files'
    names, sizes and mtimes, the channels and the size), so a rerun does not decode again; every 10th file in
    sorted order is the held-out split."""
    if not os.path.isdir(path):
        raise _folder_error(path, "no such directory" if not os.path.exists(path) else "not a directory")
    root = os.path.abspath(path)
    found = sorted(
        os.path.relpath(os.path.join(d, n), root)
        for d, _, names in os.walk(root)
        for n in names
        if n.lower().endswith(IMAGE_SUFFIXES)
    )
    if not found:
        raise _folder_error(path, "holds no image file")
    classes = sorted({f.split(os.sep)[0] for f in found if os.sep in f})
    if classes and any(os.sep not in f for f in found):
        loose = next(f for f in found if os.sep not in f)
        raise _folder_error(path, f"{loose} lies beside the class subfolders {classes[:3]}; put it in one")
    stats = [os.stat(os.path.join(root, f)) for f in found]
    listing = "\n".join(f"{f}:{s.st_size}:{s.st_mtime_ns}" for f, s in zip(found, stats))
    digest = hashlib.sha256(f"{listing}\nchannels={channels}\nsize={image_size}".encode()).hexdigest()
    cache = os.path.join(data_dir or os.path.expanduser("~/tensorflow_datasets"), FOLDER_CACHE, digest[:32])
    if not os.path.exists(os.path.join(cache, "info.json")):
        _decode_folder(path, root, found, classes, channels, image_size, skip_bad, cache)
    with open(os.path.join(cache, "info.json")) as f:
        info = json.load(f)
    images = np.load(os.path.join(cache, "images.npy"), mmap_mode="r")
    labels = np.load(os.path.join(cache, "labels.npy"))
    held_out = np.arange(len(images)) % 10 == 9
    train, test = _Rows(images, labels, np.flatnonzero(~held_out)), _Rows(images, labels, np.flatnonzero(held_out))
    fingerprint = {"dataset": f"images:{root}", "sha256": digest, "files": len(found), "skipped": info["skipped"]}
    shape, num_classes = tuple(images.shape[1:]), max(1, len(classes))
    return ImageData(f"images:{path}", train, test, shape, num_classes, fingerprint, f"images-{digest[:20]}")


def _decode_folder(path, root, found, classes, channels, image_size, skip_bad, cache) -> None:
    from PIL import Image, UnidentifiedImageError

    decoded, labels, modes, skipped = [], [], [], 0
    for f in found:
        try:
            with Image.open(os.path.join(root, f)) as im:
                im.load()
                modes.append(im.mode)
                decoded.append(im.copy())
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
            if not skip_bad:
                raise _folder_error(
                    path,
                    f"{f} cannot be decoded ({type(e).__name__}); fix or remove it, or set "
                    f"config.skip_bad_images=True to skip such files",
                ) from None
            skipped += 1
            continue
        labels.append(classes.index(f.split(os.sep)[0]) if classes else 0)
    if skipped:
        print(f"warning: images:{path}: skipped {skipped} file(s) that cannot be decoded", flush=True)
    grey = sum(m in ("1", "L", "LA", "I", "I;16", "F") for m in modes)
    c = channels or (1 if grey * 2 > len(modes) else 3)
    arrays = []
    for im in decoded:
        x = np.asarray(im.convert("L" if c == 1 else "RGB"), np.uint8)
        x = x[..., None] if x.ndim == 2 else x
        arrays.append(resize_and_crop(x, image_size) if image_size else x)
    sizes = sorted({a.shape[:2] for a in arrays})
    if len(sizes) > 1:
        raise _folder_error(
            path,
            f"images of {len(sizes)} sizes ({', '.join(f'{h}x{w}' for h, w in sizes[:3])}, ...); set "
            f"config.image_size to resize and centre-crop them all",
        )
    if len(arrays) < 3:
        raise _folder_error(path, f"{len(arrays)} image(s) could be decoded")
    os.makedirs(cache, exist_ok=True)
    with files.atomic_write(os.path.join(cache, "images.npy")) as f:
        np.save(f, np.stack(arrays))
    with files.atomic_write(os.path.join(cache, "labels.npy")) as f:
        np.save(f, np.asarray(labels, np.int32))
    files.write_json(os.path.join(cache, "info.json"), {"classes": classes, "skipped": skipped, "channels": c})


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
    random_flip (AUGMENTATION) says so."""
    return functools.partial(batches, ds.train, flip=c.get("random_flip", False))


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
