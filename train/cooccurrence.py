"""Count-based word vectors: `python -m train.cooccurrence [--workdir runs/cooccurrence] [--config.window=5 ...]`.

The lecture's window co-occurrence matrix, reweighted by positive pointwise mutual information and
factorised by a truncated SVD (zoo.text.cooccurrence_matrix, ppmi, svd_embeddings; Levy, Goldberg &
Dagan 2015). Writes vectors.txt (word2vec text format), vectors.bin, projector/, vocab.txt and
metrics.jsonl with the same analogy and wordsim figures as train.word2vec, and prints
king - man + woman's neighbours. The counts are saved as cooccurrence_counts.npz in the workdir; a
rerun with the same corpus, vocabulary, window and weighting loads them instead of counting again.
Default: the generated 2M-token corpus, window 5, 100 dimensions, well under a minute.
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse

from train.core import cli, config as config_lib, entry, files, fit as fit_lib
from train.core.config import Key
from train.core.errors import ConfigError, DataError
from train.data import text as text_data, vectors
from train.evaluation import words as word_eval
from zoo import text

WEIGHTINGS = ("uniform", "harmonic")
COUNTS_FILE = "cooccurrence_counts.npz"
FIT_KEYS = ("corpus", "num_tokens", "min_count", "max_vocab", "window", "weighting")  # what the saved counts depend on
# The SVD is of a dense V x V matrix (float64, then float32: 12 bytes a cell): 32768 words take 12 GiB.
MAX_WORDS = 32_768
# Counting holds the pairs of up to 1M tokens at each distance 1..window (16 bytes a pair): window 100 is 1.6 GB.
MAX_WINDOW = 100


SCHEMA = config_lib.Schema(
    text_data.CORPUS_KEYS,
    {
        "min_count": Key(5, "words rarer than this are dropped", range=">= 1"),
        "max_vocab": Key(
            10_000,
            f"the most frequent words only: the SVD is of a dense max_vocab^2 matrix (0: all, at most {MAX_WORDS})",
            range=f"[0, {MAX_WORDS}]",
        ),
        "window": Key(5, "context words up to this distance on both sides, within a line", range=f"[1, {MAX_WINDOW}]"),
        "weighting": Key("uniform", "'uniform' counts 1 per pair, 'harmonic' 1/distance (GloVe)", choices=WEIGHTINGS),
        "ppmi_alpha": Key(0.75, "context-distribution smoothing of PPMI (1: plain PPMI)", range="> 0"),
        "embed_dim": Key(100, "dimension of the vectors", range=">= 1"),
        "svd_power": Key(0.5, "vectors U_k S_k^power (0.5: S split between words and contexts)", range=">= 0"),
    },
    word_eval.EVAL_KEYS,
    variants={"smoke": {"num_tokens": 50_000, "embed_dim": 16}},
)


get_config = SCHEMA.config  # get_config() is the default config, get_config('smoke') a seconds-long run


def save_counts(path: str, key: str, counts) -> None:
    x = scipy.sparse.csr_matrix(counts)
    files.save_npz(path, key=np.array(key), data=x.data, indices=x.indices, indptr=x.indptr, shape=np.array(x.shape))


def load_counts(path: str, key: str | None, words: int | None = None):
    """The sparse counts saved under key (any key if None), words x words when given, or None (none, another key,
    or damaged: set aside, counted again)."""

    def read(f):
        if key is not None and str(f["key"]) != key:
            return None
        x = scipy.sparse.csr_matrix((f["data"], f["indices"], f["indptr"]), shape=tuple(f["shape"]))
        x.check_format(full_check=True)  # indices inside the shape: ValueError, not a crash later
        if words is not None and x.shape != (words, words):
            raise ValueError(f"counts of shape {x.shape} where ({words}, {words}) was written")
        if not np.all(np.isfinite(x.data)) or np.any(x.data < 0):
            raise ValueError("counts that are negative or not finite")
        return x

    return files.load_npz(path, read)


def check_corpus(c, corpus: text_data.EncodedCorpus) -> None:
    """The checks that need the corpus, right after it is read and before anything is written: a dense SVD of at
    most MAX_WORDS words, of rank at most the vocabulary, and some line with two words (a pair to count)."""
    words = len(corpus.vocab)
    if words > MAX_WORDS:
        raise ConfigError(
            f"config.max_vocab={c.max_vocab} keeps all {words} words of corpus {corpus.name!r}: the SVD's dense "
            f"{words} x {words} matrix would take {12 * words**2 / 2**30:.0f} GiB; accepted: max_vocab in "
            f"[1, {MAX_WORDS}]"
        )
    if c.embed_dim > words:
        raise ConfigError(
            f"config.embed_dim={c.embed_dim} exceeds the {words} words of corpus {corpus.name!r}; "
            f"accepted: embed_dim <= {words}"
        )
    if corpus.sentence_lengths.max() < 2:
        raise DataError(
            f"corpus {corpus.name!r} has no line with two words kept at min_count={c.min_count}: no pair to count; "
            f"accepted: lines of at least two words (one sentence a line), or a lower min_count"
        )


def fit_vectors(config, workdir: str) -> dict:
    """Count (or reuse) the co-occurrences of a checked config in workdir, fit the vectors, evaluate and write
    them; the figures."""
    c = config
    eval_sets = word_eval.load_eval_sets(c)
    source = text_data.corpus_of(c)
    corpus = text_data.encode_corpus(source, c.min_count, max_vocab=c.max_vocab, cache_dir=workdir)
    check_corpus(c, corpus)
    vocab = corpus.vocab
    # the corpus key is of the bytes read (text.encode_corpus): what a rerun must find again
    path, key = (
        os.path.join(os.path.abspath(workdir), COUNTS_FILE),
        f"{corpus.key}|window={c.window}|weighting={c.weighting}",
    )

    def fit_and_evaluate(workdir, writer):
        counts = load_counts(path, key, len(vocab))
        text_data.save_cached(workdir, corpus.key, corpus)
        if counts is None:
            lines = np.split(corpus.ids, np.cumsum(corpus.sentence_lengths)[:-1])
            counts = text.cooccurrence_matrix(lines, len(vocab), c.window, weighting=c.weighting, sparse=True)
            save_counts(path, key, counts)
            print(
                f"cooccurrence: counted {counts.nnz} word pairs within window {c.window} over {len(corpus.ids)} "
                f"words; saved {path}",
                flush=True,
            )
        else:
            print(f"cooccurrence: loaded the counts from {path}", flush=True)
        W = text.svd_embeddings(text.ppmi(counts, alpha=c.ppmi_alpha), c.embed_dim, power=c.svd_power)
        figures = word_eval.evaluate_vectors(W, vocab, *eval_sets)
        writer.scalars(1, {f"eval/{k}": v for k, v in figures.items()})
        image = word_eval.planted_pairs_figure(W, vocab)
        if image is not None:
            writer.image(1, "planted_pairs_pca", image)
        vectors.export_vectors(workdir, vocab, W)
        print(f"{word_eval.analogy_line(W, vocab)}\nvectors: {os.path.join(workdir, 'vectors.txt')}", flush=True)
        return figures, f"cooccurrence: PPMI + SVD vectors of {len(vocab)} words; workdir {workdir}", ()

    return fit_lib.run(c, workdir, fit_lib.Fit("cooccurrence", FIT_KEYS, COUNTS_FILE, fit_and_evaluate))


ENTRY = entry.Entry("cooccurrence", __doc__, __file__, SCHEMA, fit_vectors)
run = ENTRY.run

if __name__ == "__main__":
    cli.main(ENTRY)
