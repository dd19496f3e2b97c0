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

import ml_collections
import numpy as np
import scipy.sparse

from train.core import cli, config as config_lib
from train.core.errors import ConfigError
from train.core.writers import MetricsWriter
from train.data import text as text_data, vectors
from train.evaluation import words as word_eval
from zoo import text

WEIGHTINGS = ("uniform", "harmonic")
COUNTS_FILE = "cooccurrence_counts.npz"


def get_config() -> ml_collections.ConfigDict:
    c = config_lib.base_config()
    c.corpus = text_data.GENERATED  # 'generated' | 'text:PATH' | a prepared TFDS text dataset name
    c.num_tokens = 2_000_000    # size of the generated corpus
    c.min_count = 5
    c.max_vocab = 10_000        # the most frequent words only: the SVD is of a dense max_vocab^2 matrix
    c.window = 5                # context words up to this distance on both sides, within a line
    c.weighting = "uniform"     # 'uniform' counts 1 per pair, 'harmonic' 1/distance (GloVe)
    c.ppmi_alpha = 0.75         # context-distribution smoothing of PPMI (1 = plain PPMI)
    c.embed_dim = 100
    c.svd_power = 0.5           # vectors U_k S_k^power (0.5: S split between words and contexts)
    c.analogies = ""            # questions-words file; '' = the generated corpus's planted sets
    c.wordsim = ""              # word1 word2 score file; '' = the planted similarities
    return c


def check_config(c) -> None:
    config_lib.check(c, choices={"weighting": WEIGHTINGS, **config_lib.FLOAT32_ONLY},
                     positive_ints=("num_tokens", "min_count", "window", "embed_dim"),
                     non_negative_ints=("max_vocab",))
    if not (isinstance(c.ppmi_alpha, (int, float)) and c.ppmi_alpha > 0):
        raise ConfigError(f"config.ppmi_alpha={c.ppmi_alpha!r} must be > 0 (1 = plain PPMI, 0.75 = smoothed)")
    if not (isinstance(c.svd_power, (int, float)) and c.svd_power >= 0):
        raise ConfigError(f"config.svd_power={c.svd_power!r} must be >= 0")


def save_counts(path: str, key: str, counts) -> None:
    x = scipy.sparse.csr_matrix(counts)
    with open(path + ".tmp", "wb") as f:  # whole file, then rename: an interrupted run leaves no half file
        np.savez(f, key=np.array(key), data=x.data, indices=x.indices, indptr=x.indptr, shape=np.array(x.shape))
    os.replace(path + ".tmp", path)


def load_counts(path: str, key: str | None):
    """The sparse counts saved under key (any key if None), or None."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if key is not None and str(f["key"]) != key:
                return None
            return scipy.sparse.csr_matrix((f["data"], f["indices"], f["indptr"]), shape=tuple(f["shape"]))
    except (OSError, KeyError, ValueError):
        return None


def run(config, workdir: str) -> dict:
    c = config
    check_config(c)
    eval_sets = word_eval.load_eval_sets(c)
    source = text_data.open_corpus(c.corpus, num_tokens=c.num_tokens, data_dir=c.data_dir or None)
    corpus_key = text_data.cache_key(source, c.min_count, c.max_vocab)
    corpus = text_data.encode_corpus(source, c.min_count, max_vocab=c.max_vocab, cache_dir=workdir)
    vocab = corpus.vocab
    if c.embed_dim > len(vocab):
        raise ConfigError(f"config.embed_dim={c.embed_dim} exceeds the {len(vocab)} words of corpus {corpus.name!r}; "
                          f"accepted: embed_dim <= {len(vocab)}")
    path, key = os.path.join(workdir, COUNTS_FILE), f"{corpus_key}|window={c.window}|weighting={c.weighting}"
    counts = load_counts(path, key)
    os.makedirs(workdir, exist_ok=True)
    text_data.save_cached(workdir, corpus_key, corpus)
    if counts is None:
        lines = np.split(corpus.ids, np.cumsum(corpus.sentence_lengths)[:-1])
        counts = text.cooccurrence_matrix(lines, len(vocab), c.window, weighting=c.weighting, sparse=True)
        save_counts(path, key, counts)
        print(f"cooccurrence: counted {counts.nnz} word pairs within window {c.window} over {len(corpus.ids)} words; "
              f"saved {path}", flush=True)
    else:
        print(f"cooccurrence: loaded the counts from {path}", flush=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(c.to_json_best_effort(indent=2, sort_keys=True) + "\n")

    W = text.svd_embeddings(text.ppmi(counts, alpha=c.ppmi_alpha), c.embed_dim, power=c.svd_power)
    figures = word_eval.evaluate_vectors(W, vocab, *eval_sets)
    writer = MetricsWriter(workdir)
    try:
        writer.scalars(1, {f"eval/{k}": v for k, v in figures.items()})
        image = word_eval.planted_pairs_figure(W, vocab)
        if image is not None:
            writer.image(1, "planted_pairs_pca", image)
    finally:
        writer.close()
    vectors.export_vectors(workdir, vocab, W)
    print("\n".join([word_eval.analogy_line(W, vocab), f"vectors: {os.path.join(workdir, 'vectors.txt')}",
                     f"cooccurrence: PPMI + SVD vectors of {len(vocab)} words; workdir {workdir}"]
                    + [f"  {k:<36} {v:.6g}" if isinstance(v, float) else f"  {k:<36} {v}"
                       for k, v in sorted(figures.items())]), flush=True)
    return figures


if __name__ == "__main__":
    cli.main("cooccurrence", get_config, run)
