"""train.ddpm and the shared backbone end to end, on tiny configs (a few steps, T=20)."""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from tests.configs import read_metrics, smoke_config, straight_records, train_losses
from train import ddpm as train_ddpm
from train.core.errors import ConfigError
from train.data import images as data
from train.evaluation import diffusion
from zoo import ddpm


def tiny_config(data_dir, **overrides):
    return smoke_config(train_ddpm, data_dir, **overrides)


# The smoke U-Net at one resolution, attention at 8x8: about half the compiling. The runs of a variant (sharding,
# learned variance, bfloat16, v-prediction, class conditioning, Karras samplers) take it; the straight run and the
# runs compared with it keep the smoke config's two levels.
SMALL_UNET = {"model.ch_mult": (1,), "model.attn_resolutions": (8,)}


TRAIN = train_ddpm  # the module conftest's straight_run runs, with these overrides
STRAIGHT_OVERRIDES = {"eval.num_samples": 8, "eval.classifier_steps": 5}
EVAL_KEYS = tuple(
    f"eval/{k}" for k in ("test_bpd_bound", "ddim_fd", "ddim_precision", "ddim_recall", "ddim_ref_fd", "ancestral_fd")
)


def test_workdir_layout(straight_run):
    workdir, figures = straight_run
    logged, _ = straight_records(workdir, EVAL_KEYS)
    for r in logged:
        assert np.isfinite(r["loss"]) and r["examples_per_sec"] > 0
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["num_steps"] == 6
    samples = sorted(os.listdir(os.path.join(workdir, "samples")))
    assert samples == ["ancestral_000006.png", "ddim_000006.png"]
    img = np.asarray(Image.open(os.path.join(workdir, "samples", samples[0])))
    assert img.ndim == 2 and min(img.shape) >= 256
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(workdir, "tensorboard")))
    assert figures["loss"] == pytest.approx(logged[-1]["loss"])


def test_resume_continues_and_matches_uninterrupted_run(straight_run, data_dir, tmp_path):
    workdir = str(tmp_path)
    train_ddpm.run(tiny_config(data_dir, num_steps=4), workdir)
    assert sorted(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints"))) == [2, 4]
    train_ddpm.run(tiny_config(data_dir, num_steps=6), workdir)  # resumes at 4, not 0
    steps = [r["step"] for r in read_metrics(workdir) if "loss" in r]
    assert steps == [2, 4, 6]
    # Same seed and config: the resumed run's losses equal the uninterrupted run's (CPU is deterministic).
    assert train_losses(workdir) == train_losses(straight_run[0])


def test_npz_dataset(data_dir, tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(path, x=rng.integers(0, 256, (20, 8, 8), dtype=np.uint8), y=rng.integers(0, 3, 20))
    ds = data.load_images(f"npz:{path}")
    assert ds.image_shape == (8, 8, 1) and len(ds.train) == 18 and len(ds.test) == 2 and ds.num_classes <= 3
    np.testing.assert_array_equal(ds.test[1]["image"][..., 0], np.load(path)["x"][19])
    figures = train_ddpm.run(tiny_config(data_dir, num_steps=2, dataset=f"npz:{path}"), str(tmp_path / "run"))
    assert np.isfinite(figures["loss"])


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": np.zeros((4, 8, 8), np.float32)}, "dtype float32"),
        ({"images": np.zeros((4, 8, 8), np.uint8)}, "no array 'x'"),
        ({"x": np.zeros((4, 8), np.uint8)}, "shape (4, 8)"),
        ({"x": np.zeros((4, 8, 8, 2), np.uint8)}, "shape (4, 8, 8, 2)"),
        ({"x": np.zeros((4, 8, 8), np.uint8), "y": np.zeros(3, np.int64)}, "'y' must be"),
    ],
)
def test_bad_npz_files(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(data.DataError, match="npz:.*" + message.replace("(", r"\(").replace(")", r"\)")):
        data.load_images(f"npz:{path}")


def test_missing_and_corrupt_npz(tmp_path):
    with pytest.raises(data.DataError, match="no such file"):
        data.load_images(f"npz:{tmp_path / 'absent.npz'}")
    (tmp_path / "corrupt.npz").write_bytes(b"not a zip file")
    with pytest.raises(data.DataError, match="not a readable .npz"):
        data.load_images(f"npz:{tmp_path / 'corrupt.npz'}")


def test_tfds_by_name_with_mock_data(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DOWNLOAD_HOST", "")  # TFDS's mock stands in for the download: no host to probe
    with tfds.testing.mock_data(num_examples=8):
        ds = data.load_images("mnist", str(tmp_path))
        assert ds.image_shape == (28, 28, 1) and ds.num_classes == 10
        batch = next(data.batches(ds.train, 4, seed=0))
        assert batch["image"].shape == (4, 28, 28, 1) and batch["image"].dtype == np.uint8
        assert batch["label"].shape == (4,)


def test_unknown_and_unprepared_tfds_names(tmp_path):
    with pytest.raises(data.DataError, match="unknown dataset 'no_such_dataset'"):
        data.load_images("no_such_dataset", str(tmp_path))
    with pytest.raises(data.DataError, match=r"'mnist' is not prepared as array_record .*config\.download=False"):
        data.load_images("mnist", str(tmp_path), download=False)


def test_digits_dataset(data_dir):
    from sklearn.datasets import load_digits

    ds = data.load_images("digits", str(data_dir))
    assert (len(ds.train), len(ds.test), ds.image_shape, ds.num_classes) == (1500, 297, (8, 8, 1), 10)
    # Each example is one of sklearn's digits, rescaled 0..16 -> 0..255, with its label.
    ref = load_digits()
    ex = ds.test[0]
    matches = np.where((np.round(ref.images * 255 / 16).astype(np.uint8) == ex["image"][..., 0]).all(axis=(1, 2)))[0]
    assert len(matches) >= 1 and ref.target[matches[0]] == ex["label"]


def test_batches_are_a_function_of_seed_and_step(data_dir):
    ds = data.load_images("digits", str(data_dir))
    a, b = data.batches(ds.train, 16, seed=3), data.batches(ds.train, 16, seed=3)
    first = [next(a)["label"] for _ in range(3)]
    np.testing.assert_array_equal(first, [next(b)["label"] for _ in range(3)])
    # One epoch of 1500 examples covers every example once (94 batches of 16 = 1504 draws cross the boundary).
    c = data.batches(ds.train, 100, seed=0)
    seen = np.concatenate([next(c)["image"].reshape(100, -1) for _ in range(15)])
    assert len(np.unique(seen, axis=0)) == len(
        np.unique(np.stack([ds.train[i]["image"].reshape(-1) for i in range(1500)]), axis=0)
    )


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("--config.num_steps=0", "config.num_steps=0 is not accepted; accepted: an integer >= 1"),
        ("--config.optimizer=sgd", "config.optimizer='sgd' is not accepted; accepted: adam, adamw"),
        ("--config.dataset=no_such_dataset", "unknown dataset 'no_such_dataset'"),
        ("--config.diffusion.schedule=quadratic", "accepted: linear, cosine"),
    ],
)
def test_cli_rejects_bad_input_with_one_line(tmp_path, override, fragment):
    workdir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "train.ddpm", f"--workdir={workdir}", override, f"--config.data_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not workdir.exists()


def test_config_errors_raise_before_any_write(data_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"sample.steps=50 \(ddim\) must be at most"):
        train_ddpm.run(tiny_config(data_dir, **{"sample.steps": 50}), str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_mode_sample_writes_the_npz_that_load_samples_again(straight_run, tmp_path):
    """`--mode=sample` on a copy of the straight run, whose config.json is made as this module wrote it before
    sample.ddim_steps became sample.steps: images uint8 [N,H,W,C] and labels int32 -1 in samples_<step>.npz, a
    PNG beside it, and load(workdir).sample with the same key and settings gives the same images."""
    workdir = tmp_path / "run"
    shutil.copytree(straight_run[0], workdir)
    with open(workdir / "config.json") as f:
        config = json.load(f)
    config["sample"] = {
        k: v for k, v in config["sample"].items() if k in ("num_images", "ddim_eta", "timestep_spacing")
    }
    config["sample"]["ddim_steps"] = 5
    (workdir / "config.json").write_text(json.dumps(config))
    overrides = {"sampler": "dpmpp_2m", "num_images": 5, "batch_size": 2, "seed": 7}
    cmd = [sys.executable, "-m", "train.ddpm", f"--workdir={workdir}", "--mode=sample"]
    cmd += [f"--config.sample.{k}={v}" for k, v in overrides.items()]
    # the subprocess draws with the threefry lowering of this test process (tests/conftest.py), to compare its images
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "JAX_COMPILATION_CACHE_DIR": str(jax.config.jax_compilation_cache_dir),
        "JAX_THREEFRY_PARTITIONABLE": str(jax.config.jax_threefry_partitionable),
    }
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "5 samples (dpmpp_2m, 5 steps) of step 6" in proc.stdout
    with np.load(workdir / "samples" / "samples_000006.npz") as f:
        assert sorted(f.files) == ["images", "labels"]
        images, labels = f["images"], f["labels"]
    assert images.shape == (5, 8, 8, 1) and images.dtype == np.uint8
    assert labels.dtype == np.int32 and labels.tolist() == [-1] * 5
    assert (workdir / "samples" / "samples_000006.png").is_file()

    model = train_ddpm.load(str(workdir))
    assert model.step == 6 and model.config.sample.steps == 5 and model.config.num_steps == 6
    again = model.sample(jax.random.key(7), 5, sampler="dpmpp_2m", batch_size=2)
    np.testing.assert_array_equal(again, images)
    other = model.sample(jax.random.key(8), 5, sampler="dpmpp_2m", batch_size=2)
    assert other.shape == images.shape and not np.array_equal(other, images)
    with pytest.raises(ConfigError, match="'temperature' is not a key of config.sample; accepted: batch_size"):
        model.sample(jax.random.key(0), 2, temperature=2.0)
    with pytest.raises(ConfigError, match=r"config.sample.steps=50 \(dpmpp_2m\) must be at most"):
        model.sample(jax.random.key(0), 2, sampler="dpmpp_2m", steps=50)


def test_every_sample_setting_keys_the_compiled_sampler_cache(straight_run):
    """load(workdir)'s compiled samplers are keyed by the whole of config.sample: a changed setting draws anew
    (never a stale sampler), the same settings reuse theirs; samplers come from one registry."""
    assert set(diffusion.SAMPLER_BUILDERS) == set(ddpm.SAMPLERS + diffusion.KARRAS_SAMPLERS)
    model, key = train_ddpm.load(straight_run[0]), jax.random.key(3)
    deterministic = model.sample(key, 2, sampler="ddim", ddim_eta=0.0)
    noisy = model.sample(key, 2, sampler="ddim", ddim_eta=1.0)
    assert len(model._generators) == 2 and not np.array_equal(deterministic, noisy)
    np.testing.assert_array_equal(model.sample(key, 2, sampler="ddim", ddim_eta=0.0), deterministic)
    assert len(model._generators) == 2
    with pytest.raises(ConfigError, match="sampler=.euler. is not accepted"):
        train_ddpm.make_sampler(model.config, model.image_shape, 2, "euler")


def test_load_refuses_a_workdir_without_a_trained_run(straight_run, tmp_path):
    with pytest.raises(ConfigError, match="holds no trained run .*config.json is missing"):
        train_ddpm.load(str(tmp_path))
    shutil.copy(os.path.join(straight_run[0], "config.json"), tmp_path / "config.json")
    with pytest.raises(ConfigError, match="holds no checkpoint to read .*python -m train.ddpm --workdir"):
        train_ddpm.load(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["config.json"]


def test_the_sampler_benchmark_prints_a_row_per_sampler(straight_run, capsys):
    """benchmarks.ddpm_samplers on the smoke run: ancestral over all T = 20 steps, then ddim and dpmpp_2m at 2
    and 4 calls, each row with finite FD, precision, recall, seconds and images/s for the one key."""
    from benchmarks import ddpm_samplers

    ddpm_samplers.main(["--workdir", straight_run[0], "--num", "8", "--keys", "0", "--steps", "2,4"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split(" | ")[:2] for r in rows[1:]] == [
        ["| ancestral", "20"],
        ["| ddim", "2"],
        ["| dpmpp_2m", "2"],
        ["| ddim", "4"],
        ["| dpmpp_2m", "4"],
    ]
    for r in rows[1:]:
        values = [float(v) for v in r.strip("| ").split(" | ")[2:]]
        assert len(values) == 5 and all(np.isfinite(values)) and values[-1] > 0
