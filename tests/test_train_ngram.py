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
from train.data import arpa, text as text_data
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
    kinds = ("add_k", "kneser_ney", "modified_kneser_ney")
    assert set(records[2]) == {"step"} | {f"test_perplexity/{k}" for k in kinds}
    kn, mkn = ([r[f"test_perplexity/{k}"] for r in records[1:]] for k in kinds[1:])
    add_k = [r["test_perplexity/add_k"] for r in records]
    assert kn[1] < kn[0] < add_k[0] and add_k[2] < add_k[0]  # context helps; Kneser-Ney beats add-k
    assert mkn[1] < mkn[0] < add_k[0]
    assert figures["kneser_ney_3gram_test_perplexity"] == kn[1]
    assert figures["modified_kneser_ney_3gram_test_perplexity"] == mkn[1]
    with open(os.path.join(workdir, "samples.txt")) as f:
        samples = f.read().splitlines()
    assert (
        len(samples) == 4
        and samples[0].startswith("add_k 3-gram: ")
        and samples[2].startswith("modified_kneser_ney 3-gram: ")
    )
    # model.arpa is the 3-gram modified Kneser-Ney model: loaded, it scores the held-out lines as the run did
    held_out = list(tn.nonblank(text_data.corpus_of(tiny_config()).split("test")))
    loaded = arpa.load_arpa(os.path.join(workdir, tn.ARPA_FILE))
    assert loaded.order == 3 and loaded.perplexity(held_out) == pytest.approx(mkn[1], rel=1e-9)
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
    with pytest.raises(ConfigError, match=r"config.kn_form='katz' is not accepted; accepted: interpolated, backoff"):
        tn.run(tiny_config(kn_form="katz"), str(workdir))
    with pytest.raises(ConfigError, match=r"config.kn_discounts='three' is not accepted; accepted: modified, one"):
        tn.run(tiny_config(kn_discounts="three"), str(workdir))
    assert not workdir.exists()


def test_backoff_form_with_one_discount_writes_that_model_as_arpa(tmp_path):
    rng = np.random.default_rng(1)
    words = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]
    lines = [" ".join(rng.choice(words, size=rng.integers(1, 9))) for _ in range(200)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n")
    c = tiny_config(corpus=f"text:{path}", order=3, kn_form="backoff", kn_discounts="one", smoothing="kneser_ney")
    figures = tn.run(c, str(tmp_path / "run"))
    assert sorted(figures) == [
        f"{k}_{n}gram_test_perplexity" for k in ("kneser_ney", "modified_kneser_ney") for n in (2, 3)
    ]
    held_out = [line.split() for i, line in enumerate(lines) if i % 10 == 9]
    loaded = arpa.load_arpa(tmp_path / "run" / tn.ARPA_FILE)
    assert loaded.perplexity(held_out) == pytest.approx(figures["kneser_ney_3gram_test_perplexity"], rel=1e-9)
    # the same counts fitted here: one-discount backoff Kneser-Ney, D = 0.75 at every order
    model = ngram.ModifiedKneserNeyLM.fit(
        [line.split() for i, line in enumerate(lines) if i % 10 != 9],
        3,
        form="backoff",
        min_count=2,
        discounts=[(0.75,) * 3] * 3,
    )
    assert model.perplexity(held_out) == pytest.approx(figures["kneser_ney_3gram_test_perplexity"], rel=1e-9)
    with open(tmp_path / "run" / "samples.txt") as f:
        assert all(line.startswith("kneser_ney 3-gram: ") for line in f.read().splitlines())
