"""What a run finds in its workdir and data: a resume on changed data is refused, damaged files other than the
Orbax checkpoints are set aside and made again (or reported in one line), the logs never hold a step twice
and stay strict JSON, and a full disk is one line with the last checkpoint kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.configs import read_metrics, smoke_config
from train import (
    cooccurrence as train_cooc,
    ngram as train_ngram,
    pca as train_pca,
    vae as train_vae,
    word2vec as train_w2v,
)
from train.core.errors import ConfigError
from train.core.writers import MetricsWriter, truncate_records
from train.data import corpus as generated

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def snapshot(root: str) -> dict:
    """path -> (size, mtime_ns, content hash) of every file under root."""
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            p = os.path.join(dirpath, name)
            st = os.stat(p)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns, hash(f.read()))
    return out


def write_npz(path, seed: int, n: int = 40) -> str:
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.integers(0, 256, (n, 8, 8), dtype=np.uint8), y=rng.integers(0, 3, n))
    return f"npz:{path}"


@pytest.fixture(scope="module")
def corpus_lines():
    return list(generated.generate_corpus(20_000, 0))


# ----------------------------------------------------------------------------- resume on other data


def test_word2vec_resume_on_a_rewritten_corpus_is_refused(data_dir, tmp_path, corpus_lines):
    """Same path, same words and counts (so the same vocabulary), other sentences: the fingerprint of the
    content, not the path or the vocabulary, tells the runs apart. Touching the file changes nothing."""
    path = tmp_path / "corpus.txt"
    path.write_text("".join(corpus_lines))
    workdir = str(tmp_path / "w")
    c = lambda steps: smoke_config(train_w2v, data_dir, corpus=f"text:{path}", num_steps=steps, min_count=1)
    train_w2v.run(c(2), workdir)
    os.utime(path)  # a new mtime, the same bytes: resumes
    train_w2v.run(c(4), workdir)
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints")))[-1] == "4"
    path.write_text("".join(" ".join(reversed(line.split())) + "\n" for line in corpus_lines))
    before = snapshot(workdir)
    with pytest.raises(ConfigError, match=r"the data differ from those the run that wrote .*checkpoints.* corpus was"):
        train_w2v.run(c(6), workdir)
    assert snapshot(workdir) == before


def test_vae_resume_on_a_rewritten_npz_is_refused(data_dir, tmp_path):
    dataset = write_npz(tmp_path / "mine.npz", seed=0)
    workdir = str(tmp_path / "w")
    train_vae.run(smoke_config(train_vae, data_dir, dataset=dataset, num_steps=2, **{"eval.num_samples": 0}), workdir)
    write_npz(tmp_path / "mine.npz", seed=1)
    before = snapshot(workdir)
    with pytest.raises(ConfigError, match=r"the data differ .* sha256 was '[0-9a-f]{64}', now '[0-9a-f]{64}'"):
        train_vae.run(smoke_config(train_vae, data_dir, dataset=dataset, num_steps=4), workdir)
    assert snapshot(workdir) == before


def test_pca_reuses_its_fit_only_on_the_same_data(data_dir, tmp_path):
    dataset = write_npz(tmp_path / "mine.npz", seed=0)
    workdir = str(tmp_path / "w")
    c = smoke_config(train_pca, data_dir, dataset=dataset, **{"eval.num_samples": 0})
    first = train_pca.run(c, workdir)
    assert train_pca.run(c, workdir) == first  # reused: same figures
    write_npz(tmp_path / "mine.npz", seed=1)
    with pytest.raises(ConfigError, match="the data differ"):
        train_pca.run(c, workdir)


# ----------------------------------------------------------------------------- damaged files


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage"])
def test_a_damaged_pca_fit_is_set_aside_and_fitted_again(data_dir, tmp_path, capsys, damage):
    workdir = str(tmp_path / "w")
    c = smoke_config(train_pca, data_dir, **{"eval.num_samples": 0})
    first = train_pca.run(c, workdir)
    steps = [r["step"] for r in read_metrics(workdir)]
    path = os.path.join(workdir, "checkpoints", "pca.npz")
    blob = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write({"truncate": blob[: len(blob) // 2], "empty": b"", "garbage": b"PK\x03\x04" + bytes(300)}[damage])
    capsys.readouterr()
    again = train_pca.run(c, workdir)
    out = capsys.readouterr().out
    assert f"warning: {path} is damaged" in out and "making it again" in out
    assert os.path.exists(path + ".damaged") and os.path.getsize(path) == len(blob)
    assert again == pytest.approx(first)
    assert [r["step"] for r in read_metrics(workdir)] == steps  # logged afresh: no record twice


@pytest.mark.parametrize(
    "module, cache, extra",
    [
        (train_ngram, "ngram_counts.npz", {}),
        (train_cooc, "cooccurrence_counts.npz", {}),
        (train_cooc, "corpus.npz", {}),
    ],
    ids=["ngram-counts", "cooccurrence-counts", "cooccurrence-corpus"],
)
def test_a_damaged_cache_is_rebuilt_from_its_source(module, cache, extra, data_dir, tmp_path, capsys):
    workdir = str(tmp_path / "w")
    c = smoke_config(module, data_dir, **extra)
    first = module.run(c, workdir)
    records = read_metrics(workdir)
    path = os.path.join(workdir, cache)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 3)
    capsys.readouterr()
    again = module.run(c, workdir)
    assert f"warning: {path} is damaged" in capsys.readouterr().out
    assert again == pytest.approx(first)
    assert read_metrics(workdir) == records  # logged afresh, not appended: no record twice


@pytest.mark.parametrize("damage", [b"", b"{not json", b"[1, 2]"])
def test_a_corrupt_config_json_is_named_in_one_line(data_dir, tmp_path, damage):
    workdir = str(tmp_path / "w")
    c = smoke_config(train_pca, data_dir, **{"eval.num_samples": 0})
    train_pca.run(c, workdir)
    with open(os.path.join(workdir, "config.json"), "wb") as f:
        f.write(damage)
    before = snapshot(workdir)
    with pytest.raises(ConfigError, match=r"config\.json \(the config of the run that wrote .*pca\.npz\)"):
        train_pca.run(c, workdir)
    assert snapshot(workdir) == before


# ----------------------------------------------------------------------------- logs


def test_metrics_are_strict_json_with_non_finite_values_as_strings(tmp_path):
    w = MetricsWriter(str(tmp_path))
    w.scalars(1, {"loss": float("nan"), "up": float("inf"), "down": -np.inf, "ok": np.float32(0.5)})
    w.close()

    def refuse(name):
        raise AssertionError(f"bare {name} in metrics.jsonl")

    (line,) = open(tmp_path / "metrics.jsonl").read().splitlines()
    record = json.loads(line, parse_constant=refuse)
    assert record == {"step": 1, "loss": "nan", "up": "inf", "down": "-inf", "ok": 0.5}
    assert np.isnan(float(record["loss"])) and float(record["down"]) == -np.inf


def test_truncate_records_drops_later_steps_and_a_torn_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"step": 4, "lo')
    truncate_records(str(path), 2)
    assert path.read_text() == '{"step": 1}\n{"step": 2}\n'
    truncate_records(str(path), 0)
    assert path.read_text() == ""


def test_a_rerun_without_checkpoints_logs_afresh(data_dir, tmp_path):
    """checkpoints/ deleted, metrics.jsonl kept: the run starts at step 0 and its log holds each step once."""
    workdir = str(tmp_path / "w")
    c = smoke_config(train_vae, data_dir, **{"eval.num_samples": 0})
    train_vae.run(c, workdir)
    first = read_metrics(workdir)
    for name in os.listdir(os.path.join(workdir, "checkpoints")):
        subprocess.run(["rm", "-rf", os.path.join(workdir, "checkpoints", name)], check=True)
    train_vae.run(c, workdir)
    steps = [r["step"] for r in read_metrics(workdir) if "loss" in r]
    assert steps == sorted(set(steps)) == [r["step"] for r in first if "loss" in r]


# ----------------------------------------------------------------------------- a full disk

FULL_DISK = """
import errno, sys
from train.core import checkpoint, cli
from train import vae
saves = []
original = checkpoint.Checkpointer.save
def save(self, step, *args, **kwargs):
    if saves:
        raise OSError(errno.ENOSPC, "No space left on device")
    saves.append(step)
    return original(self, step, *args, **kwargs)
checkpoint.Checkpointer.save = save
sys.argv = ["train.vae", *sys.argv[1:]]
cli.main(vae.ENTRY)
"""


def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(data_dir, tmp_path):
    workdir = str(tmp_path / "w")
    args = [
        f"--workdir={workdir}",
        "--config=train/vae.py:smoke",
        f"--config.data_dir={data_dir}",
        "--config.eval.num_samples=0",
    ]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    p = subprocess.run(
        [sys.executable, "-c", FULL_DISK, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: no space left on the device"), lines
    assert "rerun the same command to resume" in lines[0]
    assert os.listdir(os.path.join(workdir, "checkpoints")) == ["2"]
    resumed = subprocess.run(
        [sys.executable, "-m", "train.vae", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0 and "Resuming" in resumed.stdout, resumed.stderr[-3000:]
