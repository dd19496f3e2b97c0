"""train/core/fit.py: the closed-form modules share the loop's workdir: the lock, config.json, metrics.jsonl, the
summary, and the refusal to reuse what a run with other fitting keys made."""

from __future__ import annotations

import fcntl
import json
import os

import pytest

from tests.configs import smoke_config
from train import cooccurrence as tc, ngram as tn
from train.core import fit as fit_lib
from train.core.errors import ConfigError


def _files(workdir):
    return {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns for d, _, fs in os.walk(workdir) for f in fs}


def test_a_rerun_with_changed_fitting_keys_is_refused_and_changes_nothing(tmp_path, capsys):
    workdir = str(tmp_path / "ngram")
    figures = tn.run(smoke_config(tn, num_samples=1), workdir)
    assert json.load(open(os.path.join(workdir, "config.json")))["num_samples"] == 1
    before = _files(workdir)
    with pytest.raises(ConfigError, match=r"config.order=2 differs from 3 of the run that wrote .*ngram_counts.npz"):
        tn.run(smoke_config(tn, order=2), workdir)
    assert _files(workdir) == before
    # keys the counts do not depend on may change: the counts are reused
    again = tn.run(smoke_config(tn, num_samples=2, smoothing="add_k"), workdir)
    assert "loaded the counts" in capsys.readouterr().out
    assert again["add_k_3gram_test_perplexity"] == figures["add_k_3gram_test_perplexity"]


def test_cooccurrence_refuses_another_window_on_its_counts(tmp_path):
    workdir = str(tmp_path / "cooc")
    tc.run(smoke_config(tc, max_vocab=200), workdir)
    with pytest.raises(ConfigError, match="config.window=2 differs from 5"):
        tc.run(smoke_config(tc, max_vocab=200, window=2), workdir)


def test_the_runner_takes_the_workdir_lock_writes_config_and_metrics_and_prints_the_summary(tmp_path, capsys):
    workdir = tmp_path / "w"
    workdir.mkdir()
    c = tn.get_config("smoke")
    calls = []

    def fit_and_evaluate(wd, writer):
        calls.append(wd)
        writer.scalars(1, {"figure": 0.5})
        return {"figure": 0.5}, "toy: fitted", ("  one more line",)

    fd = os.open(workdir, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another run holds it
    try:
        with pytest.raises(ConfigError, match="is in use by another run"):
            fit_lib.run(c, str(workdir), fit_lib.Fit("toy", ("order",), "toy.npz", fit_and_evaluate))
    finally:
        os.close(fd)
    assert not calls and not os.listdir(workdir)
    assert fit_lib.run(c, str(workdir), fit_lib.Fit("toy", ("order",), "toy.npz", fit_and_evaluate)) == {"figure": 0.5}
    assert calls == [str(workdir)]
    assert json.load(open(workdir / "config.json"))["order"] == c.order
    assert [json.loads(line) for line in open(workdir / "metrics.jsonl")] == [{"step": 1, "figure": 0.5}]
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "toy: fitted" and out[1].split() == ["figure", "0.5"] and out[2] == "  one more line"
