"""train.ngram end to end: held-out perplexities against a brute-force add-k model, saved counts, user errors."""

import collections
import json
import math
import os

import numpy as np
import pytest

from tests.configs import smoke_config
from train import ngram as tn
from train.core.errors import ConfigError, DataError
from zoo import ngram
from zoo.text import tokenize


def tiny_config(**overrides):
    return smoke_config(tn, **overrides)


def read_metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_generated_corpus_perplexities_samples_and_resume(tmp_path, capsys, monkeypatch):
    workdir = str(tmp_path)
    figures = tn.run(tiny_config(), workdir)
    records = read_metrics(workdir)
    assert [r["step"] for r in records] == [1, 2, 3]
    assert set(records[0]) == {"step", "test_perplexity/add_k"}
    assert set(records[2]) == {"step", "test_perplexity/add_k", "test_perplexity/kneser_ney"}
    kn = [r["test_perplexity/kneser_ney"] for r in records[1:]]
    add_k = [r["test_perplexity/add_k"] for r in records]
    assert kn[1] < kn[0] < add_k[0] and add_k[2] < add_k[0]  # context helps; Kneser-Ney beats add-k
    assert figures["kneser_ney_3gram_test_perplexity"] == kn[1]
    with open(os.path.join(workdir, "samples.txt")) as f:
        samples = f.read().splitlines()
    assert (
        len(samples) == 4 and samples[0].startswith("add_k 3-gram: ") and samples[2].startswith("kneser_ney 3-gram: ")
    )
    assert "counted" in capsys.readouterr().out

    def no_counting(*args, **kwargs):
        raise AssertionError("a rerun must load the saved counts")

    monkeypatch.setattr(ngram, "count_ngrams", no_counting)
    again = tn.run(tiny_config(), workdir)
    assert again == figures and "loaded the counts" in capsys.readouterr().out


def _brute_force_add_k_bigram_perplexity(lines, k, min_count):
    """The add-k bigram model written out with Counters, on the same train/held-out split (every 10th line)."""
    train = [tokenize(line) for i, line in enumerate(lines) if i % 10 != 9]
    test = [tokenize(line) for i, line in enumerate(lines) if i % 10 == 9]
    counts = collections.Counter(w for s in train for w in s)
    vocab = {w for w, n in counts.items() if n >= min_count} | {"<unk>", "</s>"}  # predictable words: not <s>
    pad = lambda s: ["<s>"] + [w if w in vocab else "<unk>" for w in s] + ["</s>"]
    bigrams = collections.Counter(b for s in map(pad, train) for b in zip(s, s[1:]))
    followed = collections.Counter(h for h, _ in bigrams.elements())
    log_p, n = 0.0, 0
    for s in map(pad, test):
        for h, w in zip(s, s[1:]):
            log_p += math.log((bigrams[h, w] + k) / (followed[h] + k * len(vocab)))
            n += 1
    return math.exp(-log_p / n)


def test_add_k_perplexity_of_a_text_file_matches_brute_force(tmp_path):
    rng = np.random.default_rng(0)
    words = ["Alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]
    lines = [" ".join(rng.choice(words, size=rng.integers(1, 7), p=np.arange(8, 0, -1) / 36)) + "." for _ in range(60)]
    lines[9] += " unseen"  # a held-out word the train part never saw: <unk>
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n")
    c = tiny_config(corpus=f"text:{path}", order=2, smoothing="add_k", k=0.5, min_count=2)
    figures = tn.run(c, str(tmp_path / "run"))
    assert list(figures) == ["add_k_1gram_test_perplexity", "add_k_2gram_test_perplexity"]
    assert figures["add_k_2gram_test_perplexity"] == pytest.approx(
        _brute_force_add_k_bigram_perplexity(lines, 0.5, 2), rel=1e-9
    )


def test_user_errors_raise_before_touching_the_workdir(tmp_path):
    workdir = tmp_path / "never"
    with pytest.raises(DataError, match="no such file"):
        tn.run(tiny_config(corpus=f"text:{tmp_path / 'missing.txt'}"), str(workdir))
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DataError, match="holds no words"):
        tn.run(tiny_config(corpus=f"text:{empty}"), str(workdir))
    once = tmp_path / "once.txt"
    once.write_text("\n".join(f"line {i} has word{i}" for i in range(30)))
    with pytest.raises(DataError, match="no word occurs min_count=40 times"):
        tn.run(tiny_config(corpus=f"text:{once}", min_count=40), str(workdir))
    short = tmp_path / "short.txt"
    short.write_text("a b c\n" * 9)
    with pytest.raises(DataError, match="no held-out line"):
        tn.run(tiny_config(corpus=f"text:{short}", min_count=1), str(workdir))
    with pytest.raises(
        ConfigError, match=r"config.smoothing='witten_bell' is not accepted; accepted: all, kneser_ney, add_k"
    ):
        tn.run(tiny_config(smoothing="witten_bell"), str(workdir))
    with pytest.raises(
        ConfigError, match=r"config.discount=1.5 is not accepted; accepted: a finite number in \(0, 1\]"
    ):
        tn.run(tiny_config(discount=1.5), str(workdir))
    assert not workdir.exists()
