"""Fit n-gram language models: `python -m train.ngram [--workdir runs/ngram] [--config.order=3 ...]`.

Counts every k-gram (k = 1..order) of the train part of the corpus (9 lines in 10; every 10th line is
held out, train/data/text.py), fits add-k, Kneser-Ney (one discount) and modified Kneser-Ney models of every
order from them (zoo.ngram; both Kneser-Ney models in the `kn_form`, interpolated or backoff) and reports each
one's held-out perplexity in metrics.jsonl, one record per order n (step = n). Writes the highest-order
Kneser-Ney model that `kn_discounts` names as model.arpa (train/data/arpa.py; KenLM and SRILM read it), and
prints and writes (samples.txt) sentences sampled from it and from add-k. The counts are saved as
ngram_counts.npz in the workdir; a rerun with the same corpus, min_count and order loads them instead of
counting again. Default: the generated 2M-token corpus, order 3, < 1 minute.
"""

from __future__ import annotations

import os

import numpy as np

from train.core import cli, config as config_lib, entry, files, fit as fit_lib
from train.core.config import Key
from train.core.errors import ConfigError, DataError
from train.data import arpa, text as text_data
from zoo import ngram
from zoo.text import Vocab, tokenize

SMOOTHINGS = ("all", "kneser_ney", "add_k")
COUNTS_FILE = "ngram_counts.npz"
ARPA_FILE = "model.arpa"
KN_DISCOUNTS = ("modified", "one")
KN_KINDS = {"one": "kneser_ney", "modified": "modified_kneser_ney"}  # kn_discounts -> the model's name
FIT_KEYS = ("corpus", "num_tokens", "min_count", "max_vocab", "order")  # what the saved counts depend on
# The counts hold about tokens x order^2 / 2 ids, and beyond this almost every n-gram of a corpus occurs once.
MAX_ORDER = 10


def check_order(c) -> None:
    """Kneser-Ney discounts lower orders: order >= 2; and order <= MAX_ORDER, whose counts fit in memory."""
    if c.smoothing == "kneser_ney" and c.order < 2:
        raise ConfigError(
            f"config.order={c.order} is too small for Kneser-Ney; accepted: order >= 2 (or smoothing='add_k')"
        )
    if c.order > MAX_ORDER:
        raise ConfigError(
            f"config.order={c.order} is too large: the counts hold about corpus tokens x order^2 / 2 ids; "
            f"accepted: order <= {MAX_ORDER}"
        )


SCHEMA = config_lib.Schema(
    {"seed": config_lib.LOOP["seed"]},
    text_data.CORPUS_KEYS,
    {
        "min_count": Key(
            2, "rarer train words become <unk>, so <unk> has a probability on held-out text", range=">= 1"
        ),
        "max_vocab": Key(0, "keep only the most frequent words (0: no limit)", range=">= 0"),
        "order": Key(3, "n: models of every order 1..n (Kneser-Ney: 2..n) are fitted and reported", range=">= 1"),
        "smoothing": Key("all", "the models fitted: all, both Kneser-Ney models, or add-k", choices=SMOOTHINGS),
        "discount": Key(0.75, "Kneser-Ney's absolute discount D", range="(0, 1]"),
        "kn_discounts": Key(
            "modified",
            "the Kneser-Ney model written as model.arpa and sampled: modified (D1, D2, D3+ per order "
            "from the count-of-counts) or one (D = discount)",
            choices=KN_DISCOUNTS,
        ),
        "kn_form": Key(
            "interpolated",
            "both Kneser-Ney models' form: interpolated, or backoff (the lower order for unseen words only)",
            choices=ngram.KN_FORMS,
        ),
        "k": Key(0.01, "add-k's pseudo-count (k = 1: Laplace, add-one)", range="> 0"),
        "num_samples": Key(5, "sentences sampled from each highest-order model", range=">= 0"),
        "max_sample_len": Key(30, "words per sampled sentence at most", range=">= 1"),
    },
    checks=(check_order,),
    variants={"smoke": {"num_tokens": 20_000, "num_samples": 2}},
)


get_config = SCHEMA.config  # get_config() is the default config, get_config('smoke') a seconds-long run


# ----------------------------------------------------------------------------- counts, saved and loaded


def counts_key(fingerprint: str, c) -> str:
    """What the counts depend on: the corpus (the fingerprint of the bytes read) and the counting keys."""
    return f"{fingerprint}|min_count={c.min_count}|max_vocab={c.max_vocab}|order={c.order}"


def save_counts(path: str, key: str, vocab: Vocab, counts: ngram.NGramCounts) -> None:
    arrays = {f"grams{k}": g for k, g in enumerate(counts.grams)}
    arrays.update({f"counts{k}": n for k, n in enumerate(counts.counts)})
    files.save_npz(
        path,
        key=np.array(key),
        words=np.array(vocab.words),
        word_counts=vocab.counts,
        num_sentences=counts.num_sentences,
        **arrays,
    )


def load_counts(path: str, key: str, order: int):
    """(vocab, counts) saved under key, or None (none, another key, or damaged: set aside, counted again)."""

    def read(f):
        if str(f["key"]) != key:
            return None
        vocab = Vocab([str(w) for w in f["words"]], f["word_counts"], unk=ngram.UNK)
        grams, counts = [f[f"grams{k}"] for k in range(order)], [f[f"counts{k}"] for k in range(order)]
        for k, (g, n) in enumerate(zip(grams, counts)):
            if g.ndim != 2 or g.shape[1] != k + 1 or n.shape != (len(g),) or (g.size and g.min() < 0):
                raise ValueError(f"the {k + 1}-grams have shape {g.shape} with {n.shape} counts")
            if g.size and g.max() >= len(vocab):
                raise ValueError(f"{k + 1}-grams with ids outside the vocabulary of {len(vocab)} words")
        bos, eos = vocab.id(ngram.BOS), vocab.id(ngram.EOS)
        return vocab, ngram.NGramCounts(order, len(vocab), bos, eos, grams, counts, int(f["num_sentences"]))

    return files.load_npz(path, read)


def nonblank(source: text_data.TextSource):
    """The token lists of the non-blank lines: blank lines are layout, not empty sentences (which would inflate
    P(</s> | <s>))."""
    return (tokenize(line, source.lowercase, source.tokenizer) for line in source.lines() if line.strip())


def count_corpus(train: text_data.TextSource, c) -> tuple[Vocab, ngram.NGramCounts]:
    """Vocabulary (with <s>, </s>, <unk>) and k-gram counts of the train lines: two streamed passes, the order
    checked against the longest line between them."""
    longest = [0]

    def measured(lines):
        for words in lines:
            longest[0] = max(longest[0], len(words))
            yield words

    vocab = ngram.ngram_vocab(measured(nonblank(train)), c.min_count, c.max_vocab or None)
    if 0 < longest[0] and c.order > longest[0] + 2:
        raise DataError(
            f"config.order={c.order} is longer than every train line of corpus {train.name!r} with its <s> and </s> "
            f"(the longest holds {longest[0]} words): no {c.order}-gram to count; accepted: order <= {longest[0] + 2}"
        )
    words = len(vocab) - 3  # <s>, </s>, <unk> come first
    if words == 0:
        if vocab.counts[vocab.unk_id] == 0:
            raise DataError(
                f"corpus {train.name!r} holds no words; accepted: text with at least one word (letters or digits)"
            )
        raise DataError(
            f"corpus {train.name!r}: no word occurs min_count={c.min_count} times; accepted: a smaller "
            f"min_count or a larger corpus"
        )
    counts = ngram.count_ngrams(
        vocab.encode_lines(nonblank(train), unknown="map"),
        c.order,
        vocab_size=len(vocab),
        bos=vocab.id(ngram.BOS),
        eos=vocab.id(ngram.EOS),
    )
    return vocab, counts


def refuse_without_held_out(source: text_data.TextSource) -> None:
    """The DataError of a corpus without a held-out line: it holds no word at all, or too few lines."""
    if not any(words for words in nonblank(source)):
        raise DataError(
            f"corpus {source.name!r} holds no words; accepted: text with at least one word (letters or digits)"
        )
    raise DataError(
        f"corpus {source.name!r} has no held-out line (every {text_data.HELD_OUT_EVERY}th line); "
        f"accepted: a corpus of at least {text_data.HELD_OUT_EVERY} lines"
    )


def truncate(counts: ngram.NGramCounts, order: int) -> ngram.NGramCounts:
    """The counts of orders 1..order only (a lower-order model from the same pass)."""
    return ngram.NGramCounts(
        order,
        counts.vocab_size,
        counts.bos,
        counts.eos,
        counts.grams[:order],
        counts.counts[:order],
        counts.num_sentences,
    )


def make_model(kind: str, counts: ngram.NGramCounts, vocab: Vocab, c):
    if kind == "add_k":
        return ngram.AddKLM(counts, vocab, k=c.k)
    if kind == "modified_kneser_ney":
        return ngram.ModifiedKneserNeyLM(counts, vocab, form=c.kn_form)
    if c.kn_form == "interpolated":
        return ngram.KneserNeyLM(counts, vocab, discount=c.discount)
    return ngram.ModifiedKneserNeyLM(counts, vocab, form="backoff", discounts=[(c.discount,) * 3] * counts.order)


# ----------------------------------------------------------------------------- run


def count_and_evaluate(config, workdir: str) -> dict:
    """Count (or reuse) the n-grams of a checked config in workdir, evaluate and sample the model; the figures."""
    c = config
    source = text_data.corpus_of(c)
    held_out = list(nonblank(source.split("test")))  # a whole pass: the counts are keyed by the bytes it read
    if not held_out:
        refuse_without_held_out(source)
    path, key = os.path.join(os.path.abspath(workdir), COUNTS_FILE), counts_key(source.counted_fingerprint(), c)
    loaded = load_counts(path, key, c.order)
    if loaded is None:
        vocab, counts = count_corpus(source.split("train"), c)
        key = counts_key(source.counted_fingerprint(), c)  # DataError if the corpus changed between the passes
    else:
        vocab, counts = loaded

    kinds = {"all": ("add_k", "kneser_ney", "modified_kneser_ney"), "add_k": ("add_k",)}.get(
        c.smoothing, ("kneser_ney", "modified_kneser_ney")
    )
    sampled = [k for k in kinds if k in ("add_k", KN_KINDS[c.kn_discounts])]

    def fit_and_evaluate(workdir, writer):
        if loaded is None:
            save_counts(path, key, vocab, counts)
            print(
                f"ngram: counted {', '.join(f'{len(g)} {k + 1}-grams' for k, g in enumerate(counts.grams))} of "
                f"{counts.num_sentences} train lines ({len(vocab)} words with <s>, </s>, <unk>); saved {path}",
                flush=True,
            )
        else:
            print(f"ngram: loaded the counts of {counts.num_sentences} train lines from {path}", flush=True)
        figures, top = {}, {}
        for n in range(1, c.order + 1):
            record = {}
            for kind in kinds:
                if kind != "add_k" and n < 2:
                    continue
                model = make_model(kind, truncate(counts, n), vocab, c)
                record[f"test_perplexity/{kind}"] = model.perplexity(held_out)
                top[kind] = model
            writer.scalars(n, record)
            figures.update({f"{k.split('/')[1]}_{n}gram_test_perplexity": v for k, v in record.items()})
        extra = ()
        if "kneser_ney" in kinds:
            model, arpa_path = top[KN_KINDS[c.kn_discounts]], os.path.join(workdir, ARPA_FILE)
            arpa.save_arpa(arpa_path, model)
            extra = (f"{c.kn_form} {KN_KINDS[c.kn_discounts]} {model.order}-gram model: {arpa_path}",)
            if "modified_kneser_ney" in top:
                d = "; ".join(
                    f"{k}-grams {', '.join(f'{x:.3f}' for x in ds)}"
                    for k, ds in enumerate(top["modified_kneser_ney"].discounts, start=1)
                )
                extra += (f"modified Kneser-Ney discounts D1, D2, D3+: {d}",)
        rng = np.random.default_rng(c.seed)
        lines = []
        for kind in sampled:
            model = top[kind]
            for _ in range(c.num_samples):
                words = model.sample(rng, c.max_sample_len)
                lines.append(f"{kind} {model.order}-gram: {' '.join(w for w in words if w != ngram.EOS)}")
        with files.atomic_write(os.path.join(workdir, "samples.txt"), "w", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in lines)
        print("\n".join(lines))
        return figures, f"ngram: held-out perplexity of {len(held_out)} lines; workdir {workdir}", extra

    return fit_lib.run(c, workdir, fit_lib.Fit("ngram", FIT_KEYS, COUNTS_FILE, fit_and_evaluate))


ENTRY = entry.Entry("ngram", __doc__, __file__, SCHEMA, count_and_evaluate)
run = ENTRY.run

if __name__ == "__main__":
    cli.main(ENTRY)
