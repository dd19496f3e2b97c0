"""Latent diffusion (Rombach et al. 2022): a diffusion run on the latents of a trained autoencoder instead of pixels.

`--config.latent.autoencoder=WORKDIR` names a train.vqvae run. Its encoder's outputs before quantisation, z_e(x),
of every training and test image are computed once and cached beside that run (WORKDIR/latents/<key>.npz, the
key a hash of the images' content and of the autoencoder's parameters), scaled by one factor so they have unit
variance (latent.scale; 0: 1 / their standard deviation over the training latents, as Rombach et al. set it), and
the denoiser learns them as it learns images. Samples are latents, divided by the factor, quantised and decoded.

The diffusion run keeps its own copy of the autoencoder (WORKDIR_OF_THE_RUN/autoencoder/: its config, image spec,
parameters and the factor), so load(workdir).sample and --mode=sample decode without the autoencoder's workdir.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import serialization

from train.core import files, saved
from train.core.config import Key
from train.core.errors import ConfigError
from train.data import images

__all__ = ["LATENT_KEYS", "COPY_DIR", "check_latent", "LatentSpace", "autoencoder_of", "latent_space", "latent_data"]

LATENT_KEYS = {
    "latent.autoencoder": Key(
        "",
        "the workdir of a trained train.vqvae run: the denoiser learns its encoder's latents (before quantisation) "
        "and samples are decoded by it ('': pixel space)",
    ),
    "latent.scale": Key(
        0.0, "the latents' scale factor (0: 1 / their standard deviation over the training set)", range=">= 0"
    ),
}
COPY_DIR = "autoencoder"  # in a latent run's workdir: the autoencoder it decodes with


def check_latent(c) -> None:
    """Flips are of images: a latent run, which trains on cached latents, refuses random_flip."""
    if c.latent.autoencoder and c.get("random_flip", False):
        raise ConfigError(
            "config.random_flip=True flips images, and a latent run trains on its autoencoder's cached latents; "
            "accepted: config.random_flip=False with config.latent.autoencoder"
        )


@dataclasses.dataclass(frozen=True)
class LatentSpace:
    """A trained autoencoder as a latent space: its config and image spec, the parameters, the step they are of,
    the scale factor, and where it was read from."""

    config: ml_collections.ConfigDict
    spec: images.ImageSpec
    params: Any
    step: int
    scale: float
    source: str
    image_data: Any = dataclasses.field(default=None, repr=False, compare=False)  # the images, where training
    _fns: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def _module(self):
        from train import vqvae  # the autoencoder's module (imported late: it imports the image side)

        return vqvae

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        m = self.config.model
        return self._module().vqvae.latent_shape(self.spec.image_shape, m.num_levels, m.code_dim)

    def encode(self, images_uint8) -> np.ndarray:
        """scale * z_e(x) of uint8 images [N, H, W, C], float32 [N, h, w, D], in batches."""
        if "encode" not in self._fns:
            self._fns["encode"] = self._module().encoder_of(self.config, self.spec)
        fn = self._fns["encode"]
        return images.batched(lambda x: np.asarray(fn(self.params, x)[0]) * self.scale, images_uint8, batch_size=500)

    def to_uint8(self, latents) -> np.ndarray:
        """uint8 images of scaled latents: divided by the factor, quantised, decoded."""
        if "decode" not in self._fns:
            self._fns["decode"] = self._module().decoder_of(self.config, self.spec)
        return images.unit_to_uint8(self._fns["decode"](self.params, jnp.asarray(latents) / self.scale))

    def save(self, workdir: str) -> None:
        """The copy a latent run keeps in workdir/COPY_DIR (written whole file by file)."""
        where = os.path.join(workdir, COPY_DIR)
        os.makedirs(where, exist_ok=True)
        files.write_json(os.path.join(where, "config.json"), self.config.to_dict())
        files.write_json(os.path.join(where, "spec.json"), self.spec.to_json())
        files.write_json(
            os.path.join(where, "latent.json"), {"scale": self.scale, "step": self.step, "source": self.source}
        )
        with files.atomic_write(os.path.join(where, "params.msgpack")) as f:
            f.write(serialization.msgpack_serialize(jax.device_get(self.params)))

    @classmethod
    def read(cls, workdir: str) -> LatentSpace:
        """The copy in workdir/COPY_DIR; ConfigError when it is missing or damaged."""
        where = os.path.join(workdir, COPY_DIR)
        from train import vqvae

        c = saved.read_config(where, vqvae.SCHEMA)
        spec = images.ImageSpec.from_json(files.read_json(os.path.join(where, "spec.json"), "the autoencoder's spec"))
        info = files.read_json(os.path.join(where, "latent.json"), "the latent space's scale factor")
        try:
            with open(os.path.join(where, "params.msgpack"), "rb") as f:
                params = serialization.msgpack_restore(f.read())
        except (OSError, ValueError) as e:
            raise ConfigError(
                f"{where}/params.msgpack (the autoencoder this latent run decodes with) cannot be read "
                f"({type(e).__name__}: {e}); accepted: the file as the run wrote it"
            ) from None
        params = jax.tree.map(jnp.asarray, params)
        return cls(c, spec, params, int(info["step"]), float(info["scale"]), str(info["source"]))


def _content_key(ds: images.ImageData, params) -> str:
    """A hash of the images (their content key and the config that shaped them) and the autoencoder's parameters."""
    h = hashlib.sha256(json.dumps([ds.content_key, ds.fingerprint], sort_keys=True, default=str).encode())
    for leaf in jax.tree.leaves(jax.device_get(params)):
        h.update(np.ascontiguousarray(leaf).tobytes())
    return h.hexdigest()[:24]


def autoencoder_of(c):
    """The trained train.vqvae run of config.latent.autoencoder (its load()); ConfigError, naming the key, where
    that workdir holds none. Read before the dataset is prepared, so a wrong path writes nothing."""
    from train import vqvae

    try:
        return vqvae.load(os.path.abspath(c.latent.autoencoder))
    except ConfigError as e:
        raise ConfigError(f"config.latent.autoencoder={c.latent.autoencoder!r}: {e}") from None


def latent_space(c, ds: images.ImageData, trained=None) -> tuple[LatentSpace, dict]:
    """(the LatentSpace of config.latent.autoencoder, {'train': (latents, labels), 'test': (...)}) for dataset ds,
    the latents read from the autoencoder's cache or encoded once and cached; ConfigError where the autoencoder's
    images are not this dataset's shape or its workdir holds no train.vqvae run (trained: autoencoder_of(c), read
    already)."""
    trained = trained or autoencoder_of(c)
    source = trained.workdir
    if tuple(trained.spec.image_shape) != tuple(ds.image_shape):
        raise ConfigError(
            f"config.latent.autoencoder={c.latent.autoencoder!r} was trained on {tuple(trained.spec.image_shape)} "
            f"images, and this run's dataset gives {tuple(ds.image_shape)}; accepted: the dataset and image_size it "
            f"was trained on"
        )
    unscaled = LatentSpace(trained.config, trained.spec, trained.params, trained.step, 1.0, source)
    key = _content_key(ds, trained.params)
    path = os.path.join(source, "latents", f"{key}.npz")
    arrays = files.load_npz(path, lambda f: {k: f[k] for k in f.files})
    if arrays is None:
        arrays = {}
        for split, part in (("train", ds.train), ("test", ds.test)):
            rows = images.as_arrays(part)
            arrays[f"{split}_latents"] = unscaled.encode(rows["image"]).astype(np.float32)
            arrays[f"{split}_labels"] = rows["label"]
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            files.save_npz(path, **arrays)
        except OSError as e:  # a read-only autoencoder workdir: encoded again next time
            print(f"latent: could not cache the latents in {path} ({type(e).__name__}: {e})", flush=True)
    scale = c.latent.scale or 1.0 / float(np.std(arrays["train_latents"]))
    space = dataclasses.replace(unscaled, scale=scale)
    splits = {s: (arrays[f"{s}_latents"] * scale, arrays[f"{s}_labels"]) for s in ("train", "test")}
    return space, splits


def latent_data(ds: images.ImageData, space: LatentSpace, splits: dict) -> images.ImageData:
    """The ImageData of the scaled latents: what the denoiser trains and is tested on (float32 'image' rows)."""
    train, test = (images.ArraySource(*splits[s]) for s in ("train", "test"))
    fingerprint = {**ds.fingerprint, "autoencoder": space.source, "autoencoder_step": space.step}
    return images.ImageData(ds.name, train, test, space.latent_shape, ds.num_classes, fingerprint, ds.content_key)
