"""train/data/image_runs.py: every image model trained on the loop is read back with its dataset gone. The walk from
load(workdir) to a sample touches no dataset code, its samples equal the in-run evaluation's bit for bit, and
--mode=sample writes them, for the autoencoder, the VAE, the GAN and the DDPM alike."""

from __future__ import annotations

import importlib
import math
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from tests.configs import override
from train import registry
from train.core.errors import DataError
from train.core.writers import image_grid
from train.data import images as data
from train.evaluation import images as evaluation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = registry.IMAGE_MODELS
# The U-Net models' smoke U-Net at one resolution, attention at 8x8: about half their compiling. What is read back
# (the config, the spec, the parameters, the samples) does not depend on how many levels the U-Net has.
SMALL_UNET = {"model.ch_mult": (1,), "model.attn_resolutions": (8,)}
UNET_MODELS = ("ddpm", "edm", "flow")


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
    """{name: workdir} of each image model's smoke run on the digits saved as an .npz, deleted after training."""
    ds = data.load_images("digits", str(data_dir))
    root = tmp_path_factory.mktemp("image_runs")
    train, test = data.as_arrays(ds.train), data.as_arrays(ds.test)
    npz = root / "digits.npz"
    np.savez(npz, x=train["image"], y=train["label"], x_test=test["image"], y_test=test["label"])
    workdirs = {}
    for name in MODELS:
        module = importlib.import_module(f"train.{name}")
        c = override(module.get_config("smoke"), SMALL_UNET if name in UNET_MODELS else {})
        c.dataset, c.data_dir = f"npz:{npz}", str(data_dir)
        module.run(c, str(root / name))
        workdirs[name] = str(root / name)
    npz.unlink()
    return workdirs


@pytest.fixture
def no_dataset_code(monkeypatch):
    """Every way to the images raises: what runs under it reads no dataset."""

    def refuse(*args, **kwargs):
        raise AssertionError("dataset code ran")

    for name in ("images_of", "load_images", "load_npz", "load_tfds", "load_image_folder"):
        monkeypatch.setattr(data, name, refuse)


def in_run_grid(name: str, model) -> tuple[str, np.ndarray]:
    """(PNG name, the grid the run's last evaluation drew), drawn again by the loaded model's generator with the
    evaluation's key of that step."""
    c, step = model.config, model.step
    key = evaluation.eval_key(c.seed, step)
    if name == "ddpm":  # the grid of sample.sampler: the second of four keys, sample.num_images images
        generator = model.model.make_generator(c, model.spec, c.sample.num_images)
        return f"ddim_{step:06d}.png", image_grid(generator.draw(model.params, jax.random.split(key, 4)[1], None))
    if name in ("edm", "flow"):  # train.data.diffusion_runs: the grid of sample.sampler, the first of three keys
        generator = model.model.make_generator(c, model.spec, c.sample.num_images)
        grid = image_grid(generator.draw(model.params, jax.random.split(key, 3)[0], None))
        return f"{c.sample.sampler}_{step:06d}.png", grid
    second = lambda: jax.random.split(key)[1]
    k_sample = {"autoencoder": second, "vae": second, "vqvae": second}.get(name, lambda: jax.random.split(key, 3)[0])()
    n = max(c.eval.num_samples, c.eval.grid_images)
    drawn = model.model.make_generator(c, model.spec, n).draw(model.params, k_sample, None)
    return f"samples_{step:06d}.png", image_grid(drawn[: c.eval.grid_images])


def read_png(path: str, shape) -> np.ndarray:
    """The grid save_png wrote, at its own size (save_png enlarges by a whole factor)."""
    image = np.asarray(Image.open(path))
    scale = max(1, math.ceil(256 / max(shape[:2])))
    return image[::scale, ::scale].reshape(shape)


@pytest.mark.parametrize("name", MODELS)
def test_load_samples_with_the_dataset_gone_as_the_run_did(runs, name, no_dataset_code):
    model = importlib.import_module(f"train.{name}").load(runs[name])
    assert model.step == 4 and model.spec == data.ImageSpec(model.config.dataset, (8, 8, 1), 10)
    png, grid = in_run_grid(name, model)
    np.testing.assert_array_equal(read_png(os.path.join(runs[name], "samples", png), grid.shape), grid)
    first = model.sample(jax.random.key(0), 3, batch_size=2)
    assert first.shape == (3, 8, 8, 1) and first.dtype == np.uint8
    np.testing.assert_array_equal(model.sample(jax.random.key(0), 3, batch_size=2), first)
    assert not np.array_equal(model.sample(jax.random.key(1), 3, batch_size=2), first)


@pytest.mark.parametrize("name", MODELS)
def test_mode_sample_writes_what_load_samples(runs, name, tmp_path, no_dataset_code):
    workdir = shutil.copytree(runs[name], tmp_path / "run")
    entry = registry.entry(name)
    path = entry.sample(str(workdir), {"sample.num_images": 5, "sample.batch_size": 2, "sample.seed": 3})
    assert path == str(workdir / "samples" / "samples_000004.npz") and os.path.isfile(path[:-4] + ".png")
    with np.load(path) as f:
        drawn, labels = f["images"], f["labels"]
        assert sorted(f.files) == ["images", "labels"]
    assert drawn.shape == (5, 8, 8, 1) and labels.tolist() == [-1] * 5
    with np.load(path[: -len(".npz")] + "_arr.npz") as f:  # guided-diffusion's layout: arr_0 images, arr_1 labels
        assert sorted(f.files) == ["arr_0", "arr_1"]
        np.testing.assert_array_equal(f["arr_0"], drawn)
        np.testing.assert_array_equal(f["arr_1"], labels)
    again = entry.load(str(workdir)).sample(jax.random.key(3), 5, batch_size=2)
    np.testing.assert_array_equal(again, drawn)


def test_a_run_without_its_records_names_what_is_missing(runs, tmp_path):
    """A run written before spec.json (or an autoencoder's without its code density) is rebuilt from its dataset;
    with that gone too, one DataError names the file."""
    workdir = shutil.copytree(runs["autoencoder"], tmp_path / "ae")
    os.remove(workdir / "code_density.npz")
    with pytest.raises(DataError, match="holds no code_density.npz of step 4 .*digits.npz"):
        registry.entry("autoencoder").load(str(workdir))
    workdir = shutil.copytree(runs["gan"], tmp_path / "gan")
    os.remove(workdir / "spec.json")
    with pytest.raises(DataError, match="digits.npz"):
        registry.entry("gan").load(str(workdir))


def test_mode_sample_from_the_shell(runs, tmp_path):
    workdir = shutil.copytree(runs["vae"], tmp_path / "run")
    cmd = [sys.executable, "-m", "train.vae", f"--workdir={workdir}", "--mode=sample", "--config.sample.num_images=3"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(jax.config.jax_compilation_cache_dir)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "vae: 3 samples of step 4" in proc.stdout
    with np.load(workdir / "samples" / "samples_000004.npz") as f:
        assert f["images"].shape == (3, 8, 8, 1)
    bad = subprocess.run([*cmd, "--config.beta=2"], capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert bad.returncode == 2 and "--config.beta=2 is not accepted" in bad.stderr
