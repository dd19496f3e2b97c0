"""train.cooccurrence end to end: counts against a brute-force window count, PPMI + SVD vectors, TFDS text, errors."""

import collections
import json
import os

import numpy as np
import pytest

from tests.configs import smoke_config
from train import cooccurrence as tc
from train.core.errors import ConfigError, DataError
from train.data import text as text_data, vectors
from zoo import text
from zoo.text import tokenize


def tiny_config(**overrides):
    return smoke_config(tc, **overrides)


def test_counts_and_vectors_of_a_text_file_match_brute_force(tmp_path):
    rng = np.random.default_rng(0)
    words = ["Red", "green", "blue", "cyan", "magenta", "yellow", "black", "white", "grey"]
    lines = [" ".join(rng.choice(words, size=rng.integers(1, 8))) + "!" for _ in range(50)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n")
    workdir = str(tmp_path / "run")
    tc.run(tiny_config(corpus=f"text:{path}", window=2, min_count=1, embed_dim=4), workdir)

    sentences = [tokenize(line) for line in lines]
    freq = collections.Counter(w for s in sentences for w in s)
    vocab = sorted(freq, key=lambda w: (-freq[w], w))  # by count, then alphabetically
    index = {w: i for i, w in enumerate(vocab)}
    want = np.zeros((len(vocab), len(vocab)), np.int64)
    for s in sentences:  # both directions, distance 1..2, inside a line
        for i, a in enumerate(s):
            for j in range(max(0, i - 2), min(len(s), i + 3)):
                if j != i:
                    want[index[a], index[s[j]]] += 1
    got = tc.load_counts(os.path.join(workdir, tc.COUNTS_FILE), key=None)
    np.testing.assert_array_equal(got.toarray(), want)
    words_out, W = vectors.load_word2vec_text(os.path.join(workdir, "vectors.txt"))
    assert words_out == vocab
    np.testing.assert_allclose(W, text.svd_embeddings(text.ppmi(want, alpha=0.75), 4, power=0.5), rtol=1e-5, atol=1e-6)


def test_generated_corpus_figures_and_resume(tmp_path, capsys, monkeypatch):
    workdir = str(tmp_path)
    config = dict(max_vocab=400)  # a 400 x 400 SVD: fast, and still 260 planted questions in the vocabulary
    figures = tc.run(tiny_config(**config), workdir)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        (record,) = [json.loads(line) for line in f]
    assert record["eval/analogy_questions"] > 100 and 0 <= record["eval/analogy_accuracy"] <= 1
    assert record["eval/wordsim_spearman"] > 0.2  # count vectors of 50k words already rank the planted pairs
    assert figures["analogy_accuracy"] == record["eval/analogy_accuracy"]
    assert os.listdir(os.path.join(workdir, "samples")) == ["planted_pairs_pca_000001.png"]
    with open(os.path.join(workdir, "vocab.txt")) as f:
        assert len(f.readlines()) == 400
    out = capsys.readouterr().out
    assert "counted" in out and "king - man + woman: man, woman not in the vocabulary" in out
    words, W = vectors.load_word2vec_text(os.path.join(workdir, "vectors.txt"))

    def no_counting(*args, **kwargs):
        raise AssertionError("a rerun must load the saved counts")

    monkeypatch.setattr(text, "cooccurrence_matrix", no_counting)
    assert tc.run(tiny_config(**config), workdir) == figures
    assert "loaded the counts" in capsys.readouterr().out
    np.testing.assert_array_equal(vectors.load_word2vec_text(os.path.join(workdir, "vectors.txt"))[1], W)


def test_tfds_text_dataset_by_name(tmp_path):
    import tensorflow_datasets as tfds

    class TinyTextCorpus(tfds.core.GeneratorBasedBuilder):
        """Two lines per example, prepared as array_record (no TensorFlow needed)."""

        VERSION = tfds.core.Version("1.0.0")

        def __init__(self, **kwargs):
            super().__init__(file_format="array_record", **kwargs)

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self, features=tfds.features.FeaturesDict({"text": tfds.features.Text()})
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for i in range(30):
                yield i, {"text": f"The king and the queen, example {i % 3}.\nA second line of it."}

    data_dir = str(tmp_path / "tfds")
    tfds.disable_progress_bar()
    TinyTextCorpus(data_dir=data_dir).download_and_prepare()
    lines = list(text_data.open_corpus("tiny_text_corpus", data_dir=data_dir).lines())
    assert len(lines) == 60 and "A second line of it." in lines
    figures = tc.run(tiny_config(corpus="tiny_text_corpus", data_dir=data_dir, embed_dim=3), str(tmp_path / "run"))
    assert figures["analogy_questions"] == 0  # none of the planted questions is in this vocabulary
    with pytest.raises(DataError, match=r"unknown corpus 'no_such_corpus'; accepted: 'generated', 'text:PATH'"):
        tc.run(tiny_config(corpus="no_such_corpus", data_dir=data_dir), str(tmp_path / "never"))
    with pytest.raises(DataError, match=r"TFDS dataset 'lm1b' is not prepared .* never downloads"):
        tc.run(tiny_config(corpus="lm1b", data_dir=data_dir), str(tmp_path / "never"))
    assert not (tmp_path / "never").exists()


def test_user_errors_raise_before_touching_the_workdir(tmp_path):
    workdir = tmp_path / "never"
    small = tmp_path / "small.txt"
    small.write_text("one two three\n" * 6)
    with pytest.raises(ConfigError, match=r"config.embed_dim=16 exceeds the 3 words .*accepted: embed_dim <= 3"):
        tc.run(tiny_config(corpus=f"text:{small}"), str(workdir))
    with pytest.raises(DataError, match="no word occurs min_count=7 times"):
        tc.run(tiny_config(corpus=f"text:{small}", min_count=7), str(workdir))
    with pytest.raises(ConfigError, match=r"config.weighting='gaussian' is not accepted; accepted: uniform, harmonic"):
        tc.run(tiny_config(weighting="gaussian"), str(workdir))
    with pytest.raises(DataError, match=r"corpus 'text:' names no file"):
        tc.run(tiny_config(corpus="text:"), str(workdir))
    assert not workdir.exists()
