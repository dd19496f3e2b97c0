"""Word-vector evaluation: analogy accuracy (3CosAdd) per section, word-similarity Spearman, the king - man + woman
line and a PCA figure of the planted pairs. The question sets are the generated corpus's planted ones
(train/data/corpus.py) or a user's questions-words / WordSim-353 style files."""

from __future__ import annotations

import math
import os

import numpy as np

from train.core.config import Key
from train.core.errors import DataError
from train.data import corpus as planted
from zoo import word_vectors

__all__ = ["EVAL_KEYS", "load_eval_sets", "evaluate_vectors", "analogy_line", "planted_pairs_figure"]

# The files are read whole into lists of questions: Google's questions-words.txt is 0.6 MB, WordSim-353 10 kB.
MAX_EVAL_FILE_BYTES = 64 << 20
EVAL_KEYS = {
    "analogies": Key("", "questions-words file for evaluation ('': the generated corpus's planted sets)"),
    "wordsim": Key("", "word1 word2 score file, WordSim-353 style ('': the planted similarities)"),
}


def load_eval_sets(c):
    """(analogy sections, wordsim pairs): the planted sets of train/data/corpus.py, or the user's files."""

    def read(path, what, parse):
        try:
            _check_eval_file(path, what)
            with open(path, encoding="utf-8") as f:
                return parse(f)
        except OSError as e:
            raise DataError(
                f"config.{what}={path!r} cannot be read ({e.strerror}); accepted: a readable file, or '' "
                f"for the generated corpus's planted set"
            ) from None
        except ValueError as e:
            raise DataError(f"config.{what}={path!r}: {e}") from None

    analogies = (
        read(c.analogies, "analogies", word_vectors.parse_questions_words)
        if c.analogies
        else planted.planted_analogies()
    )
    wordsim = read(c.wordsim, "wordsim", word_vectors.parse_wordsim) if c.wordsim else planted.planted_similarities()
    return analogies, wordsim


def _check_eval_file(path: str, what: str) -> None:
    """DataError unless path is a regular file of at most MAX_EVAL_FILE_BYTES (a FIFO or a device would be read
    forever, a corpus given by mistake whole into memory); OSError when it cannot be looked at."""
    if os.path.exists(path) and not os.path.isfile(path):
        raise DataError(
            f"config.{what}={path!r} is not a regular file; accepted: a {what} file, or '' for the generated corpus's "
            f"planted set"
        )
    size = os.path.getsize(path)
    if size > MAX_EVAL_FILE_BYTES:
        raise DataError(
            f"config.{what}={path!r} holds {size} bytes; accepted: a {what} file of at most {MAX_EVAL_FILE_BYTES} "
            f"bytes (questions-words.txt is 0.6 MB), or '' for the generated corpus's planted set"
        )


def evaluate_vectors(W, vocab, analogies, wordsim) -> dict:
    """Analogy accuracy (3CosAdd) per section and in total, wordsim Spearman; sets without a question are left out."""
    figures = {}
    result = word_vectors.evaluate_analogies(W, vocab, analogies)
    if result["total"]:
        figures["analogy_accuracy"] = result["accuracy"]
        figures.update({f"analogy/{name}": acc for name, acc in result["sections"].items() if not math.isnan(acc)})
    figures["analogy_questions"] = result["total"]
    sim = word_vectors.evaluate_wordsim(W, vocab, wordsim)
    if not math.isnan(sim["spearman"]):
        figures["wordsim_spearman"] = sim["spearman"]
    figures["wordsim_pairs"] = sim["evaluated"]
    return figures


def analogy_line(W, vocab, a="man", b="king", c="woman", topn=5) -> str:
    """'king - man + woman ~ queen (0.81), ...', or why it cannot be asked."""
    missing = [w for w in (a, b, c) if w not in vocab]
    if missing:
        return f"{b} - {a} + {c}: {', '.join(missing)} not in the vocabulary"
    near = word_vectors.analogy(W, vocab, a, b, c, topn=topn)
    return f"{b} - {a} + {c} ~ " + ", ".join(f"{w} ({s:.3f})" for w, s in near)


def planted_pairs_figure(W, vocab):
    """A 2-D PCA of the planted gender and country-capital pairs, one panel each, or None without them."""
    panels = [
        ("king - queen", [(m, f) for m, f, _, _ in planted.GENDER_PAIRS[:10]]),
        ("country - capital", [(c, k) for c, k, _, _ in planted.COUNTRIES[:10]]),
    ]
    panels = [(t, [p for p in pairs if p[0] in vocab and p[1] in vocab]) for t, pairs in panels]
    panels = [(t, pairs) for t, pairs in panels if len(pairs) >= 2]
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5), dpi=80, squeeze=False)
    for ax, (title, pairs) in zip(axes[0], panels):
        words = [w for p in pairs for w in p]
        X = np.asarray(W, np.float64)[[vocab.id(w) for w in words]]
        X -= X.mean(axis=0)
        Z = X @ np.linalg.svd(X, full_matrices=False)[2][:2].T  # numpy: zoo.pca's jitted ops would compile per call
        for k in range(0, len(words), 2):
            ax.annotate("", Z[k + 1], Z[k], arrowprops=dict(arrowstyle="->", color="0.6"))
        ax.scatter(Z[:, 0], Z[:, 1], c=["C0", "C3"] * len(pairs), s=12)
        for w, (x, y) in zip(words, Z):
            ax.annotate(w, (x, y), fontsize=7, xytext=(2, 2), textcoords="offset points")
        ax.set_title(f"{title} (PCA of the vectors)", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image
