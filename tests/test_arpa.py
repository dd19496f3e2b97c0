"""ARPA files (train/data/arpa.py): the backoff form of the Kneser-Ney models scores as the model does, by a
dict-based ARPA scorer written here, by the loaded BackoffLM and, where the kenlm module is installed, by KenLM."""

import io
import math

import numpy as np
import pytest

from tests.test_ngram import _markov_corpus
from train.data.arpa import ArpaFileError, MissingArpaFileError, load_arpa, parse_arpa, save_arpa
from zoo.ngram import BOS, EOS, UNK, BackoffLM, KneserNeyLM, ModifiedKneserNeyLM, backoff_tables

MODELS = [
    ("kneser_ney", KneserNeyLM, {}),
    ("modified_interpolated", ModifiedKneserNeyLM, {"form": "interpolated"}),
    ("modified_backoff", ModifiedKneserNeyLM, {"form": "backoff"}),
]
LOG10 = math.log(10)


def _fit(cls, kwargs, order, seed=3, n=150):
    return cls.fit(_markov_corpus(seed, n), order, min_count=2, **kwargs)


def _read_entries(text):
    """{words tuple: (log10 P, log10 bow)} of an ARPA text, by plain splitting (no zoo code)."""
    entries, order = {}, 0
    for line in text.splitlines():
        if line.startswith("\\") and line.endswith("-grams:"):
            order = int(line[1 : line.index("-")])
        elif order and line and not line.startswith("\\"):
            parts = line.split("\t")
            words = tuple(parts[1].split(" "))
            assert len(words) == order
            entries[words] = (float(parts[0]), float(parts[2]) if len(parts) == 3 else 0.0)
    return entries


def _arpa_log10_prob(entries, h, w):
    """ARPA's backoff rule: log10 P(w | h) = logp(h w) if listed, else bow(h) + log10 P(w | h minus its first word)."""
    if (*h, w) in entries:
        return entries[(*h, w)][0]
    return entries.get(tuple(h), (0.0, 0.0))[1] + _arpa_log10_prob(entries, h[1:], w)


def _contexts(model):
    """Every context the model saw, with unseen ones (an unseen word, </s> followed by a word)."""
    v, n = model.vocab, model.order
    seen = {tuple(g) for lvl in model.levels[1:] for g in lvl.grams[lvl.starts, :-1].tolist()}
    words = [v.words[i] for i in range(len(v))]
    out = [[words[i] for i in h] for h in sorted(seen)] + [[], [UNK], [EOS, "w1"], ["w1", UNK, "w2"][-(n - 1) :]]
    return [h for h in out if len(h) <= n - 1]


@pytest.mark.parametrize("order", [2, 3, 4])
@pytest.mark.parametrize("name,cls,kwargs", MODELS)
def test_the_arpa_file_scores_as_the_model_and_round_trips(tmp_path, order, name, cls, kwargs):
    model = _fit(cls, kwargs, order)
    path = tmp_path / f"{name}.arpa"
    save_arpa(path, model)
    text = path.read_text()
    assert text.startswith("\\data\\\nngram 1=") and text.endswith("\\end\\\n")
    entries = _read_entries(text)
    loaded = load_arpa(path)
    assert isinstance(loaded, BackoffLM) and loaded.order == order
    assert set(loaded.vocab.words) == set(model.vocab.words) and loaded.vocab.words[:3] == [BOS, EOS, UNK]
    # every entry read back: the loaded tables hold the written numbers, to 1e-6 in log10
    for k, (grams, logp, logbow) in enumerate(backoff_tables(model), start=1):
        assert sum(len(g) == k for g in entries) == len(grams)
        for g, lp, lb in zip(grams.tolist(), logp.tolist(), logbow.tolist()):
            written = entries[tuple(model.vocab.words[i] for i in g)]
            assert written == pytest.approx((lp, lb), abs=1e-6)
    # every (context, word): the ARPA backoff rule on the file, and the loaded model, give the model's log10 P
    for h in _contexts(model):
        p = model.distribution(h)
        q = loaded.distribution(h)
        for w, word in enumerate(model.vocab.words):
            if word == BOS:
                assert p[w] == q[loaded.vocab.id(BOS)] == 0.0
                continue
            expected = math.log10(p[w])
            assert _arpa_log10_prob(entries, tuple(h), word) == pytest.approx(expected, abs=1e-9), (h, word)
            assert math.log10(q[loaded.vocab.id(word)]) == pytest.approx(expected, abs=1e-9), (h, word)
        assert math.fsum(q) == pytest.approx(1.0, abs=1e-9)
    held_out = _markov_corpus(8, 30) + [["w1", "never-seen", "w2"]]
    assert loaded.perplexity(held_out) == pytest.approx(model.perplexity(held_out), rel=1e-9)


def test_save_to_an_open_file_and_parse_lines():
    model = _fit(ModifiedKneserNeyLM, {}, 3)
    buf = io.StringIO()
    save_arpa(buf, model)
    loaded = parse_arpa(buf.getvalue().splitlines())
    s = ["w1", "w2", "w3", "unseen"]
    assert loaded.log_prob_sentence(s) == pytest.approx(model.log_prob_sentence(s), rel=1e-12)


@pytest.mark.parametrize("name,cls,kwargs", MODELS)
def test_kenlm_scores_our_arpa_file_as_our_model(tmp_path, name, cls, kwargs):
    kenlm = pytest.importorskip("kenlm")
    model = _fit(cls, kwargs, 4, n=300)
    path = tmp_path / "model.arpa"
    save_arpa(path, model)
    lm = kenlm.Model(str(path))
    assert lm.order == 4
    for s in _markov_corpus(9, 40) + [["w1", "never-seen", "w2"], ["w3"]]:
        ours = model.log_prob_sentence(s) / LOG10
        assert lm.score(" ".join(s), bos=True, eos=True) == pytest.approx(ours, abs=1e-4)
        hist = [BOS] + s + [EOS]
        for i, (logp, _, oov) in enumerate(lm.full_scores(" ".join(s), bos=True, eos=True), start=1):
            assert oov == (hist[i] not in model.vocab.word_to_id)
            assert logp == pytest.approx(math.log10(model.prob(hist[max(0, i - 3) : i], hist[i])), abs=1e-4)


def _write(tmp_path, text):
    path = tmp_path / "bad.arpa"
    path.write_text(text)
    return path


GOOD = (
    "\\data\\\nngram 1=3\nngram 2=1\n\n"
    "\\1-grams:\n-1\t</s>\t0\n-99\t<s>\t-0.5\n-0.5\ta\t0\n\n"
    "\\2-grams:\n-0.2\t<s> a\n\n\\end\\\n"
)


def test_a_hand_written_file_is_read_with_missing_unk_added_and_malformed_files_name_the_line(tmp_path):
    model = load_arpa(_write(tmp_path, GOOD))
    # P(a | <s>) is listed; P(</s> | <s>) backs off: bow(<s>) P(</s>) = 10^-0.5 10^-1; <unk> gets KenLM's -100
    assert model.prob([BOS], "a") == pytest.approx(10**-0.2, rel=1e-12)
    assert model.prob([BOS], EOS) == pytest.approx(10**-1.5, rel=1e-12)
    assert model.prob([], "zzz") == pytest.approx(1e-100, rel=1e-12)
    cases = [
        (GOOD.replace("\\end\\\n", ""), r"bad.arpa: not an ARPA file: no \\end\\ line"),
        (GOOD.replace("ngram 2=1", "ngram 2=2"), "declares 2 2-grams but the file lists 1"),
        (GOOD.replace("-0.2\t<s> a", "-0.2\t<s> b"), r"line 11: the word 'b' has no unigram"),
        (GOOD.replace("-0.5\ta\t0", "x\ta\t0"), r"line 8: not a number"),
        (GOOD.replace("-0.2\t<s> a", "-0.2\t<s> a\t-1"), r"line 11: a 2-gram line must be"),
        (GOOD.replace("-1\t</s>\t0", "-1\t</t>\t0"), "no </s> unigram"),
        (GOOD.replace("\\2-grams:", "\\3-grams:"), r"expected \\2-grams:"),
        ("hello\n", r"no \\data\\ line"),
    ]
    for text, message in cases:
        with pytest.raises(ArpaFileError, match=message):
            load_arpa(_write(tmp_path, text))
    with pytest.raises(MissingArpaFileError, match="no such ARPA file"):
        load_arpa(tmp_path / "missing.arpa")


def test_backoff_tables_refuse_a_model_without_backoff_form():
    from zoo.ngram import AddKLM

    with pytest.raises(ValueError, match="KneserNeyLM or ModifiedKneserNeyLM, got AddKLM"):
        backoff_tables(AddKLM.fit(_markov_corpus(1, 20), 2))
    assert np.isfinite(backoff_tables(_fit(KneserNeyLM, {}, 2))[0][2]).all()
