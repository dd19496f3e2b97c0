"""train.pca end to end (fit, figures, reuse of the saved PCA), and the command line of every image model."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.configs import read_metrics, smoke_config
from tests.test_train_autoencoder import tiny_npz
from train import pca as train_pca
from train.core.errors import ConfigError
from train.data import images as data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(data_dir, **overrides):
    return smoke_config(train_pca, data_dir, **overrides)


@pytest.fixture(scope="module")
def first_run(data_dir, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("pca"))
    return workdir, train_pca.run(tiny_config(data_dir), workdir)


def test_workdir_layout_and_figures(first_run, data_dir):
    workdir, figures = first_run
    assert os.listdir(os.path.join(workdir, "checkpoints")) == ["pca.npz"]
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["k"] == 5
    records = read_metrics(workdir)
    per_k = [r for r in records if "eval/fd" not in r]
    assert [r["k"] for r in per_k] == [1, 2, 5, 10]
    errors = [r["eval/test_mse"] for r in per_k]
    ratios = [r["eval/explained_variance_ratio"] for r in per_k]
    assert all(a > b for a, b in zip(errors, errors[1:])) and all(a < b for a, b in zip(ratios, ratios[1:]))
    final = records[-1]
    assert final["step"] == 5 and final["eval/test_mse"] == pytest.approx(errors[2])
    for k in ("eval/fd", "eval/precision", "eval/recall", "eval/ref_fd"):
        assert np.isfinite(final[k]) and figures[k] == pytest.approx(final[k])
    assert figures["num_components_fitted"] == 64
    assert sorted(os.listdir(os.path.join(workdir, "samples"))) == [
        "components_000005.png",
        "latent_000005.png",
        "reconstructions_000005.png",
        "samples_000005.png",
    ]

    # The test error at k matches numpy's SVD of the centred train split.
    ds = data.load_images("digits", str(data_dir))
    x = data.as_arrays(ds.train)["image"].reshape(1500, -1) / 255.0
    xt = data.as_arrays(ds.test)["image"].reshape(len(ds.test), -1) / 255.0
    mean = x.mean(0)
    vt = np.linalg.svd(x - mean, full_matrices=False)[2][:5]
    ref = np.mean(((xt - mean) - (xt - mean) @ vt.T @ vt) ** 2)
    assert figures["eval/test_mse"] == pytest.approx(ref, rel=1e-3)


def test_rerun_reuses_the_saved_pca(first_run, data_dir, capsys):
    workdir, figures = first_run
    path = os.path.join(workdir, "checkpoints", "pca.npz")
    mtime = os.path.getmtime(path)
    again = train_pca.run(tiny_config(data_dir), workdir)
    assert "Reusing the PCA" in capsys.readouterr().out
    assert os.path.getmtime(path) == mtime
    assert again == pytest.approx(figures)
    # Evaluation settings may change; fitting settings may not.
    train_pca.run(tiny_config(data_dir, k=2, ks=(1, 2), **{"eval.num_samples": 0}), workdir)
    with pytest.raises(ConfigError, match="holds a PCA fitted with other settings.*num_components"):
        train_pca.run(tiny_config(data_dir, num_components=20), workdir)


def test_npz_dataset_and_gmm_density(data_dir, tmp_path):
    dataset = tiny_npz(tmp_path / "mine.npz")
    figures = train_pca.run(
        tiny_config(
            data_dir,
            dataset=dataset,
            method="randomized",
            num_components=10,
            ks=(1, 5, 64),
            **{"density.kind": "gmm", "density.num_components": 2, "eval.num_samples": 0},
        ),
        str(tmp_path / "run"),
    )
    assert figures["num_components_fitted"] == 10 and np.isfinite(figures["eval/test_mse"])
    assert "eval/fd" not in figures
    assert [r["k"] for r in read_metrics(str(tmp_path / "run"))][:-1] == [1, 5]  # 64 > the 10 fitted: skipped
    assert os.path.exists(tmp_path / "run" / "samples" / "samples_000005.png")


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"method": "qr"}, "config.method='qr' is not accepted; accepted: exact, randomized"),
        ({"density.kind": "flow"}, "accepted: gaussian, gmm"),
        ({"k": 100}, "config.k=100 must be at most min(train images, pixels) = 64"),
        ({"num_components": 65}, "config.num_components=65 must be at most min(train images, pixels) = 64"),
        ({"k": 20, "num_components": 10}, "config.k=20 must be at most config.num_components=10"),
        ({"ks": (0, 3)}, "config.ks=(0, 3) is not accepted; accepted: a non-empty tuple of integers >= 1"),
    ],
)
def test_bad_config_raises_before_any_write(data_dir, tmp_path, overrides, match):
    with pytest.raises(ConfigError, match=match.replace("(", r"\(").replace(")", r"\)")):
        train_pca.run(tiny_config(data_dir, **overrides), str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize(
    "module, override, fragment",
    [
        ("pca", "--config.method=qr", "config.method='qr' is not accepted"),
        ("autoencoder", "--config.loss=l1", "config.loss='l1' is not accepted"),
        ("vae", "--config.beta=-1.0", "config.beta=-1.0 is not accepted"),
        ("gan", "--config.dataset=no_such_dataset", "unknown dataset 'no_such_dataset'"),
    ],
)
def test_cli_rejects_bad_input_with_one_line(tmp_path, module, override, fragment):
    workdir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", f"train.{module}", f"--workdir={workdir}", override, f"--config.data_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and not workdir.exists()


def test_cli_runs_and_prints_the_summary(data_dir, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "train.pca",
            f"--workdir={tmp_path}",
            f"--config.data_dir={data_dir}",
            "--config.eval.num_samples=0",
            "--config.k=3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "figures at k=3" in proc.stdout and "eval/test_mse" in proc.stdout
    assert os.path.exists(tmp_path / "checkpoints" / "pca.npz")
