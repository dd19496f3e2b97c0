"""An image model on the shared loop, and read back from its workdir without its dataset: what the backbone
(train/core) leaves to the image side.

An image module declares an `ImageModel`: its training part, `make_task(config, spec)`, built from an ImageSpec
(image shape, number of classes) and never from the images; its evaluation part, `make_evaluation(config,
dataset)`, which reads the dataset; and `make_generator(config, spec, n)`, its samples. Training joins the parts
and records the spec in workdir/spec.json, so `load(workdir)` and `--mode=sample` rebuild the model from the
config and the spec alone: no dataset code runs, and a run samples with its dataset moved or offline.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np

from train.core import checkpoint, config as config_lib, files, loop, parallel, saved, workdir as workdir_lib
from train.core.config import Key
from train.core.entry import Entry
from train.core.errors import ConfigError
from train.core.writers import image_grid, save_png
from train.data import images

__all__ = ["SAMPLE_KEYS", "ImageModel", "TrainedImageModel", "Generator"]

# The keys of mode=sample and load().sample every image model has (train.ddpm adds its sampler's).
SAMPLE_KEYS = {
    "sample.num_images": Key(64, "images of mode=sample's samples_<step>.npz", range=">= 1"),
    "sample.batch_size": Key(256, "images per generator call of mode=sample and load().sample", range=">= 1"),
    "sample.seed": Key(
        0, "seed of mode=sample's draws: load(workdir).sample(jax.random.key(seed), n)", range=config_lib.SEED_RANGE
    ),
}
GRID_IMAGES = 256  # mode=sample's PNG shows the first 256 images of its .npz


@dataclasses.dataclass(frozen=True)
class Generator:
    """A model's samples: draw(params, key, labels) -> uint8 images [n, H, W, C], labels int32 [n] for a
    conditional model (num_classes > 0), None for another."""

    draw: Callable[[Any, jax.Array, Any], np.ndarray]
    num_classes: int = 0


@dataclasses.dataclass(frozen=True)
class ImageModel:
    """What an image module declares (see the module docstring); `entry()` makes its Entry.

    make_task(config, spec) -> loop.Task: the training part, from an ImageSpec (an ImageData serves too)
    make_evaluation(config, dataset) -> {Task field: value}: the evaluation part (evaluate; export where the model
      writes what sampling needs beyond its parameters)
    make_generator(config, spec, n) -> Generator of n images a call
    sampling_params(trained run) -> what the generator draws with, where the checkpoint's parameters are not
      all of it (the autoencoder's: its code density too); None: the parameters
    describe(config) -> how mode=sample's line names the draw ('ddim, 50 steps')
    """

    name: str
    schema: config_lib.Schema
    make_task: Callable[..., loop.Task]
    make_evaluation: Callable[..., dict]
    make_generator: Callable[..., Generator]
    sampling_params: Callable[..., Any] | None = None
    describe: Callable[[ml_collections.ConfigDict], str] | None = None
    renamed: dict[str, str] = dataclasses.field(default_factory=dict)

    def entry(self, doc: str, file: str, settings: tuple = ()) -> Entry:
        return Entry(
            self.name,
            doc,
            file,
            self.schema,
            self.train,
            make_task=self.make_task,
            load=self.load,
            sample=self.sample,
            settings=settings,
            renamed=self.renamed,
        )

    def train(self, config, workdir: str) -> dict:
        """Train in workdir: the training part on the dataset's spec, the evaluation part and the batches joined.
        An image folder's decoded cache is written to data_dir by the first call of the batches, once every check
        of the run (the model's, the evaluation's, the loop's, the workdir's) has passed. The Inception weights of
        eval.features=inception are read first: a file that is not the weights is refused before data is prepared."""
        from train.evaluation import images as evaluation  # the sampling side of this module never needs it

        evaluation.feature_network(config)
        ds = images.images_of(config, cache=False)
        task = self.make_task(config, ds.spec)
        task = dataclasses.replace(
            task,
            **self.make_evaluation(config, ds),
            batches=images.training_batches(config, ds),
            spec=ds.spec.to_json(),
        )
        return loop.train(config, workdir, task, ds.fingerprint)

    def load(self, workdir: str) -> TrainedImageModel:
        """The run trained in workdir: its config, the parameters to sample with (the EMA, if kept) of its newest
        checkpoint that restores, shaped by the model its config and spec make; ConfigError when workdir holds no
        checkpoint, or one of another model, or a vmapped sweep."""
        workdir = os.path.abspath(workdir)
        config = saved.read_config(workdir, self.schema, self.renamed, f"train.{self.name}")
        self.schema.check(config)
        if config_lib.sweep_replicas(config):
            raise ConfigError(
                f"{workdir} holds a sweep (config.sweep.*), whose checkpoints stack the replicas; accepted: the "
                f"workdir of a single run"
            )
        directory = os.path.join(workdir, "checkpoints")
        missing = ConfigError(
            f"{workdir} holds no checkpoint to read ({directory} has none); accepted: the --workdir of a run "
            f"trained there (python -m train.{self.name} --workdir {workdir})"
        )
        if not os.path.isdir(directory) or not os.listdir(directory):
            raise missing
        recorded = workdir_lib.read_spec(workdir)
        # A run written before runs recorded their spec is rebuilt from its dataset, as then.
        spec = images.ImageSpec.from_json(recorded) if recorded else images.images_of(config).spec
        task = self.make_task(config, spec)
        ckpt = checkpoint.Checkpointer(directory, config.keep_checkpoints)
        try:
            state, step = ckpt.read_latest_state(loop.abstract_state(task, config, parallel.data_mesh()))
        finally:
            ckpt.close()
        if state is None:
            raise missing
        trained = TrainedImageModel(self, config, state.eval_params, int(step), spec, workdir)
        if self.sampling_params is not None:
            trained = dataclasses.replace(trained, params=self.sampling_params(trained))
        return trained

    def sample(self, workdir: str, overrides: dict) -> str:
        """`--mode=sample`: sample.num_images samples of the run in workdir (config.sample's keys overridden),
        drawn by load(workdir).sample(jax.random.key(sample.seed), ...), into workdir/samples/samples_<step>.npz
        (images uint8 [N, H, W, C], labels int32 [N], -1 for an unconditional model), the same as arr_0 and arr_1
        in samples_<step>_arr.npz (the layout guided-diffusion's sampler writes and its evaluator reads) and a PNG
        grid of the first GRID_IMAGES beside it, each written whole or not at all; returns the first .npz's path."""
        # The overrides, and a place the samples cannot be written to, are refused before the checkpoint is read.
        config = saved.read_config(workdir, self.schema, self.renamed, f"train.{self.name}")
        saved.with_overrides(config, overrides, "sample", self.check)
        workdir_lib.check_writable(os.path.join(workdir, "samples"))
        model = self.load(workdir)
        c = model.configured(**overrides)
        _refuse_more_than_memory(c.sample.num_images, model.image_shape)
        drawn, labels = model.draw(c, jax.random.key(c.sample.seed), c.sample.num_images)
        samples = os.path.join(model.workdir, "samples")
        os.makedirs(samples, exist_ok=True)
        path = os.path.join(samples, f"samples_{model.step:06d}")
        files.save_npz(f"{path}.npz", images=drawn, labels=labels)
        files.save_npz(f"{path}_arr.npz", arr_0=drawn, arr_1=labels)  # guided-diffusion's layout
        save_png(f"{path}.png", image_grid(drawn[:GRID_IMAGES]))
        how = f" ({self.describe(c)})" if self.describe else ""
        print(f"{self.name}: {len(drawn)} samples{how} of step {model.step} in {path}.npz, grid {path}.png", flush=True)
        return f"{path}.npz"

    def check(self, config) -> None:
        self.schema.check(config)


@dataclasses.dataclass
class TrainedImageModel:
    """An image model read back from its workdir by load(): the run's config, the parameters of its newest
    checkpoint (of training step `step`; for the autoencoder, with its code density), its ImageSpec and
    sample()."""

    model: ImageModel = dataclasses.field(repr=False)
    config: ml_collections.ConfigDict
    params: Any
    step: int
    spec: images.ImageSpec
    workdir: str
    _generators: dict = dataclasses.field(default_factory=dict, repr=False)  # compiled, by sample config and batch

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.spec.image_shape)

    def configured(self, **overrides) -> ml_collections.ConfigDict:
        """The run's config with config.sample's keys overridden ({'num_images': 16}), checked; ConfigError naming
        an override that is not a key of config.sample or a value it does not accept."""
        return saved.with_overrides(self.config, overrides, "sample", self.model.check)

    def draw(self, c, key, num_images: int) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 images [N, H, W, C], int32 labels [N]) by config c (configured()'s): batches of
        c.sample.batch_size, batch i drawn from jax.random.fold_in(key, i), the last one cut to num_images; the
        labels of a conditional model are sample.labels (every class when empty or absent) in turn; every label
        is -1 for an unconditional model."""
        if isinstance(num_images, bool) or not isinstance(num_images, (int, np.integer)) or num_images < 1:
            raise ValueError(f"num_images must be a positive integer, got {num_images!r}")
        batch = min(c.sample.batch_size, int(num_images))
        # The whole of config.sample (and the batch), so no setting a generator reads can be left out of the key.
        settings = (json.dumps(c.sample.to_dict(), sort_keys=True, default=str), batch)
        if settings not in self._generators:
            self._generators[settings] = self.model.make_generator(c, self.spec, batch)
        generator = self._generators[settings]
        num_batches = -(-num_images // batch)
        if not generator.num_classes:
            drawn = [generator.draw(self.params, jax.random.fold_in(key, i), None) for i in range(num_batches)]
            return np.concatenate(drawn)[:num_images], np.full((num_images,), -1, np.int32)
        rows = np.asarray(tuple(c.sample.get("labels", ())) or range(generator.num_classes), np.int32)
        labels = np.resize(rows, num_batches * batch)
        drawn = [
            generator.draw(self.params, jax.random.fold_in(key, i), labels[i * batch : (i + 1) * batch])
            for i in range(num_batches)
        ]
        return np.concatenate(drawn)[:num_images], labels[:num_images]

    def sample(self, key, num_images: int, **overrides) -> np.ndarray:
        """num_images uint8 images [N, H, W, C] drawn from key (overrides: any key of config.sample), in batches
        of sample.batch_size images, batch i drawn from jax.random.fold_in(key, i) (the last one cut to
        num_images): the same key, number and settings give the same images."""
        return self.draw(self.configured(**overrides), key, num_images)[0]


def _refuse_more_than_memory(num_images: int, image_shape) -> None:
    """ConfigError when num_images uint8 images of image_shape, held in memory until written, would take more
    than half of this machine's memory."""
    need = num_images * int(np.prod(image_shape))
    budget = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    if need > budget:
        raise ConfigError(
            f"config.sample.num_images={num_images} images of shape {tuple(image_shape)} take {need / 2**30:.1f} "
            f"GiB, more than half of this machine's {2 * budget / 2**30:.0f} GiB; accepted: at most "
            f"{budget // int(np.prod(image_shape))} images here (sample more in several runs with other "
            f"sample.seed values)"
        )
