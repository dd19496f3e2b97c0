"""Words as vectors: from one-hot symbols to count-based distributed representations.

The module follows the lecture's path:

1. ``tokenize`` and ``Vocab``: text -> words -> integer ids, streamed over an
   iterable of lines so a corpus never has to sit in memory as one list.
2. word2vec's frequency tables: ``subsample_keep_prob`` (dropping frequent words)
   and ``noise_distribution`` (the unigram^0.75 negative-sampling distribution).
3. ``one_hot``: the 1-of-N code. Distinct words are orthogonal (cosine 0, so
   "motel" and "hotel" look unrelated), and one_hot(ids) @ W = W[ids] is a row lookup.
4. ``cooccurrence_matrix``: "you shall know a word by the company it keeps" -- count
   the words within a window around each word (the lecture's I / like / enjoy table).
5. ``ppmi`` and ``svd_embeddings``: reweight the counts by positive pointwise mutual
   information and factorise them into dense low-dimensional word vectors.
"""

from __future__ import annotations

import collections
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from zoo._checks import as_int, as_positive_float

__all__ = [
    "UnknownWordError",
    "tokenize",
    "TOKENIZERS",
    "Vocab",
    "subsample_keep_prob",
    "noise_distribution",
    "one_hot",
    "cooccurrence_matrix",
    "ppmi",
    "svd_embeddings",
]


# ----------------------------------------------------------------------------- errors and validation


class UnknownWordError(KeyError, ValueError):
    """A word looked up in a Vocab that does not contain it: a KeyError (as gensim raises) and a ValueError."""

    def __init__(self, word: str, vocab_size: int):
        self.word = word
        self.vocab_size = vocab_size
        super().__init__(f"unknown word {word!r}: not in the vocabulary of {vocab_size} words")

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.args[0]


def _as_ids(ids, vocab_size: int, fn: str, name: str = "ids") -> np.ndarray:
    """Integer array with every entry in [0, vocab_size), as int64."""
    a = np.asarray(ids)
    if a.size == 0:
        return a.astype(np.int64)
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{fn}: {name} must be an integer array of word ids, got dtype {a.dtype}")
    lo, hi = int(a.min()), int(a.max())
    if lo < 0 or hi >= vocab_size:
        bad = lo if lo < 0 else hi
        raise ValueError(f"{fn}: {name} must lie in [0, {vocab_size}), got id {bad}")
    return a.astype(np.int64, copy=False)


def _as_counts(counts, fn: str) -> np.ndarray:
    """1-D non-negative float64 vector with a positive sum."""
    c = np.asarray(counts)
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"{fn}: counts must be a non-empty 1-D array, got shape {c.shape}")
    if not (np.issubdtype(c.dtype, np.integer) or np.issubdtype(c.dtype, np.floating)):
        raise ValueError(f"{fn}: counts must be numeric, got dtype {c.dtype}")
    c = c.astype(np.float64)
    if not np.all(np.isfinite(c)) or np.any(c < 0):
        raise ValueError(f"{fn}: counts must be finite and >= 0, got min {c.min()}")
    if c.sum() <= 0:
        raise ValueError(f"{fn}: counts must have a positive sum, got all zeros")
    return c


# ----------------------------------------------------------------------------- tokens and vocabulary


_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
TOKENIZERS = ("words", "whitespace", "chars")


def tokenize(line: str, lower: bool = True, kind: str = "words") -> list[str]:
    """Tokens of a line. 'words': runs of letters/digits joined by inner apostrophes ("don't"), punctuation
    dropped; 'whitespace': the whitespace-separated pieces (pre-tokenised text), punctuation at their ends split
    off and kept as tokens ("learning." -> "learning", "."); 'chars': every non-space character (Chinese, Japanese)."""
    if not isinstance(line, str):
        raise ValueError(f"tokenize: line must be a str, got {type(line).__name__}")
    if lower:
        line = line.lower()
    if kind == "words":
        return _WORD.findall(line)
    if kind == "whitespace":
        return [t for piece in line.split() for t in _split_piece(piece)]
    if kind == "chars":
        return [ch for ch in line if not ch.isspace()]
    raise ValueError(f"tokenize: kind must be one of {', '.join(TOKENIZERS)}, got {kind!r}")


def _split_piece(piece: str) -> list[str]:
    """Leading and trailing punctuation marks of a piece as tokens of their own, the middle kept whole."""
    start, end = 0, len(piece)
    while start < end and not (piece[start].isalnum() or piece[start] == "_"):
        start += 1
    while end > start and not (piece[end - 1].isalnum() or piece[end - 1] == "_"):
        end -= 1
    return [*piece[:start], *([piece[start:end]] if start < end else []), *piece[end:]]


def _tokens_of(item, lower: bool, fn: str) -> Sequence[str]:
    """A str is a line to tokenize; a sequence of str is already tokens (used verbatim)."""
    if isinstance(item, str):
        return tokenize(item, lower)
    if isinstance(item, (list, tuple)):
        for t in item:
            if not isinstance(t, str):
                raise ValueError(f"{fn}: token lists must hold str tokens, got {type(t).__name__} {t!r}")
        return item
    raise ValueError(f"{fn}: each item must be a line (str) or a list/tuple of str tokens, got {type(item).__name__}")


class Vocab:
    """Word <-> id table: ``words[i]`` is the word with id i, ``counts[i]`` its corpus count.

    ``Vocab.build`` orders words by count descending, then alphabetically, after any
    special tokens. With ``unk`` set, unknown words can be mapped to that token.
    ``lower`` is how lines (str) are tokenized by ``encode`` (token lists are used verbatim).
    """

    def __init__(self, words: Sequence[str], counts=None, *, unk: str | None = None, lower: bool = True):
        words = list(words)
        for w in words:
            if not isinstance(w, str):
                raise ValueError(f"Vocab: words must be str, got {type(w).__name__} {w!r}")
        word_to_id = {w: i for i, w in enumerate(words)}
        if len(word_to_id) != len(words):
            dup = next(w for w, n in collections.Counter(words).items() if n > 1)
            raise ValueError(f"Vocab: words must be unique, got {dup!r} more than once")
        if counts is None:
            counts = np.zeros(len(words), np.int64)
        counts = np.asarray(counts)
        if counts.shape != (len(words),) or not np.issubdtype(counts.dtype, np.integer) or np.any(counts < 0):
            raise ValueError(
                f"Vocab: counts must be {len(words)} non-negative integers (one per word), "
                f"got shape {counts.shape} dtype {counts.dtype}"
            )
        if unk is not None and unk not in word_to_id:
            raise ValueError(f"Vocab: unk token {unk!r} must be one of the words")
        self.words: list[str] = words
        self.counts: np.ndarray = counts.astype(np.int64)
        self.word_to_id: dict[str, int] = word_to_id
        self.unk: str | None = unk
        self.unk_id: int | None = None if unk is None else word_to_id[unk]
        self.lower: bool = bool(lower)

    @classmethod
    def build(
        cls,
        source: Iterable,
        min_count: int = 5,
        max_size: int | None = None,
        *,
        specials: Sequence[str] = (),
        unk: str | None = None,
        lower: bool = True,
        chunk_lines: int = 10_000,
    ) -> Vocab:
        """Count words over ``source`` in chunks of lines; keep count >= min_count, the top max_size, after specials.

        ``source`` yields lines (tokenized with ``tokenize(line, lower)``) or token
        lists (used verbatim); it is consumed once. ``specials`` come first (ids
        0, 1, ...) with count 0, then ``unk`` (if given and not among them) whose count
        is the number of dropped tokens, then the kept words. ``max_size`` bounds the
        kept corpus words, not the specials.
        """
        fn = "Vocab.build"
        min_count = as_int(min_count, "min_count", fn, minimum=1)
        if max_size is not None:
            max_size = as_int(max_size, "max_size", fn, minimum=0)
        chunk_lines = as_int(chunk_lines, "chunk_lines", fn, minimum=1)
        if isinstance(source, str):
            raise ValueError(f"{fn}: source must be an iterable of lines or token lists, got a single str")
        specials = list(specials)
        if unk is not None and unk not in specials:
            specials.append(unk)
        if len(set(specials)) != len(specials):
            raise ValueError(f"{fn}: specials must be unique, got {specials}")

        counter: collections.Counter = collections.Counter()
        it = iter(source)
        while True:
            chunk = list(itertools.islice(it, chunk_lines))
            if not chunk:
                break
            counter.update(itertools.chain.from_iterable(_tokens_of(x, lower, fn) for x in chunk))

        reserved = set(specials)
        ranked = sorted(((w, c) for w, c in counter.items() if w not in reserved), key=lambda wc: (-wc[1], wc[0]))
        kept = [(w, c) for w, c in ranked if c >= min_count]
        if max_size is not None:
            kept = kept[:max_size]
        words = specials + [w for w, _ in kept]
        counts = np.zeros(len(words), np.int64)
        counts[len(specials) :] = [c for _, c in kept]
        if unk is not None:
            total = sum(c for w, c in counter.items() if w not in reserved)
            counts[specials.index(unk)] = total - int(counts[len(specials) :].sum())
        return cls(words, counts, unk=unk, lower=lower)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word) -> bool:
        return word in self.word_to_id

    def __repr__(self) -> str:
        head = ", ".join(repr(w) for w in self.words[:5])
        return f"Vocab({len(self)} words: {head}{', ...' if len(self) > 5 else ''})"

    def id(self, word: str) -> int:
        """Id of ``word``; raises UnknownWordError if it is not in the vocabulary."""
        try:
            return self.word_to_id[word]
        except (KeyError, TypeError):
            raise UnknownWordError(word, len(self)) from None

    def _unknown_mode(self, unknown: str | None, fn: str) -> str:
        if unknown is None:
            return "map" if self.unk is not None else "drop"
        if unknown not in ("drop", "map", "raise"):
            raise ValueError(f"{fn}: unknown must be 'drop', 'map', 'raise' or None, got {unknown!r}")
        if unknown == "map" and self.unk is None:
            raise ValueError(f"{fn}: unknown='map' needs a vocabulary built with an unk token")
        return unknown

    def encode(self, tokens, *, unknown: str | None = None, lower: bool | None = None) -> np.ndarray:
        """int32 ids of tokens (a line is tokenized first); unknown words 'drop', 'map' to unk, or 'raise'.

        The default (``unknown=None``) maps to the unk token when the vocabulary has
        one and drops unknown words otherwise. ``lower=None`` lowercases lines as the
        vocabulary was built.
        """
        fn = "Vocab.encode"
        mode = self._unknown_mode(unknown, fn)
        tokens = _tokens_of(tokens, self.lower if lower is None else lower, fn)
        get = self.word_to_id.get
        ids = np.fromiter((get(t, -1) for t in tokens), dtype=np.int32, count=len(tokens))
        missing = ids < 0
        if missing.any():
            if mode == "raise":
                raise UnknownWordError(tokens[int(np.argmax(missing))], len(self))
            if mode == "map":
                ids[missing] = self.unk_id
            else:
                ids = ids[~missing]
        return ids

    def encode_lines(
        self, lines: Iterable, *, unknown: str | None = None, lower: bool | None = None
    ) -> Iterator[np.ndarray]:
        """Stream of int32 id arrays, one per line (or token list) of ``lines``; nothing is held beyond one line."""
        if isinstance(lines, str):
            raise ValueError("Vocab.encode_lines: lines must be an iterable of lines or token lists, got a single str")
        self._unknown_mode(unknown, "Vocab.encode_lines")
        for line in lines:
            yield self.encode(line, unknown=unknown, lower=lower)

    def decode(self, ids) -> list[str]:
        """Words of a 1-D id array: [words[i] for i in ids]."""
        a = _as_ids(ids, len(self), "Vocab.decode")
        if a.ndim != 1:
            raise ValueError(f"Vocab.decode: ids must be 1-D, got shape {a.shape}")
        words = self.words
        return [words[i] for i in a.tolist()]


# ----------------------------------------------------------------------------- word2vec frequency tables


def subsample_keep_prob(counts, t: float = 1e-3) -> np.ndarray:
    """Keep probability of each occurrence: min(1, (sqrt(f / t) + 1) * t / f) with f = count / sum(counts).

    This is the formula in Mikolov's word2vec.c (``ran = (sqrt(cn / (sample *
    train_words)) + 1) * (sample * train_words) / cn``), not the sqrt(t / f) of the
    paper (Mikolov et al. 2013, "Distributed Representations of Words and Phrases").
    Words with count 0 get 1.
    """
    fn = "subsample_keep_prob"
    c = _as_counts(counts, fn)
    t = as_positive_float(t, "t", fn)
    f = c / c.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = (np.sqrt(f / t) + 1.0) * t / f
    return np.where(f > 0, np.minimum(keep, 1.0), 1.0)


def noise_distribution(counts, power: float = 0.75) -> np.ndarray:
    """Negative-sampling distribution P_n(w) = count(w)^power / sum_v count(v)^power (word2vec: power 3/4)."""
    fn = "noise_distribution"
    c = _as_counts(counts, fn)
    power = as_positive_float(power, "power", fn)
    p = c**power
    return p / p.sum()


# ----------------------------------------------------------------------------- one-hot


def one_hot(ids, vocab_size: int, dtype=np.float32) -> np.ndarray:
    """1-of-N code: out[..., j] = 1 if ids[...] == j else 0, shape ids.shape + (vocab_size,)."""
    fn = "one_hot"
    vocab_size = as_int(vocab_size, "vocab_size", fn, minimum=1)
    a = _as_ids(ids, vocab_size, fn)
    out = np.zeros(a.shape + (vocab_size,), dtype)
    np.put_along_axis(out, a[..., None], 1, axis=-1)
    return out


# ----------------------------------------------------------------------------- co-occurrence


_SPARSE_ABOVE = 10_000  # default: dense up to this vocabulary size (a 10k x 10k float64 matrix is 800 MB)


def _sentence_chunks(id_sequences, vocab_size: int, fn: str, chunk_tokens: int):
    """Concatenated chunks of sentences: (ids, sentence index per token), each roughly chunk_tokens long."""
    if isinstance(id_sequences, np.ndarray) and id_sequences.ndim == 1:
        raise ValueError(
            f"{fn}: id_sequences must be an iterable of 1-D id arrays (one per sentence), "
            f"got a single 1-D array; wrap it in a list"
        )
    buf: list[np.ndarray] = []
    size = 0
    for seq in id_sequences:
        a = _as_ids(seq, vocab_size, fn, "each sentence")
        if a.ndim != 1:
            raise ValueError(f"{fn}: each sentence must be a 1-D id array, got shape {a.shape}")
        buf.append(a)
        size += a.size
        if size >= chunk_tokens:
            yield _concat(buf)
            buf, size = [], 0
    if buf:
        yield _concat(buf)


def _concat(buf: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter((a.size for a in buf), np.int64, count=len(buf))
    return np.concatenate(buf), np.repeat(np.arange(len(buf)), lengths)


def cooccurrence_matrix(
    id_sequences,
    vocab_size: int,
    window: int,
    *,
    symmetric: bool = True,
    weighting: str = "uniform",
    sparse: bool | None = None,
    chunk_tokens: int = 1 << 20,
):
    """Co-occurrence matrix X[i, j] = sum_{t, d} w(d) [w_t = i, w_{t+d} = j] (+ transpose).

    The sum runs over positions t and offsets 1 <= d <= window within a sentence.

    ``symmetric=True`` counts context words on both sides (X + X^T of the
    right-context counts), as in the lecture's table; ``symmetric=False`` counts only
    words to the right of the centre word. ``weighting='uniform'`` uses w(d) = 1
    (int64 counts), ``'harmonic'`` uses w(d) = 1/d (float64, as in GloVe). Windows never
    cross sentence boundaries. Returns a dense ndarray, or a scipy.sparse CSR matrix
    when ``sparse`` is True (default: sparse when vocab_size > 10000).
    """
    import scipy.sparse  # here, not at the top: a module that only tokenizes keeps its 11 MB of memory

    fn = "cooccurrence_matrix"
    vocab_size = as_int(vocab_size, "vocab_size", fn, minimum=1)
    window = as_int(window, "window", fn, minimum=1)
    if weighting not in ("uniform", "harmonic"):
        raise ValueError(f"{fn}: weighting must be 'uniform' or 'harmonic', got {weighting!r}")
    if sparse is None:
        sparse = vocab_size > _SPARSE_ABOVE
    if sparse not in (True, False):
        raise ValueError(f"{fn}: sparse must be True, False or None, got {sparse!r}")
    chunk_tokens = as_int(chunk_tokens, "chunk_tokens", fn, minimum=1)
    dtype = np.int64 if weighting == "uniform" else np.float64
    V = vocab_size

    total = scipy.sparse.csr_matrix((V, V), dtype=dtype) if sparse else np.zeros(V * V, dtype)
    for ids, sent in _sentence_chunks(id_sequences, V, fn, chunk_tokens):
        rows, cols, wts = [], [], []
        for d in range(1, min(window, ids.size - 1) + 1):
            same = sent[:-d] == sent[d:]
            rows.append(ids[:-d][same])
            cols.append(ids[d:][same])
            wts.append(np.full(int(same.sum()), 1 if weighting == "uniform" else 1.0 / d, dtype))
        if not rows:
            continue
        r, c, w = np.concatenate(rows), np.concatenate(cols), np.concatenate(wts)
        if sparse:
            total = total + scipy.sparse.csr_matrix((w, (r, c)), shape=(V, V), dtype=dtype)
        else:
            keys, inv = np.unique(r * V + c, return_inverse=True)
            total[keys] += np.bincount(inv.ravel(), weights=w).astype(dtype)
    if sparse:
        x = (total + total.T) if symmetric else total
        x = scipy.sparse.csr_matrix(x, dtype=dtype)
        x.sum_duplicates()
        return x
    x = total.reshape(V, V)
    return x + x.T if symmetric else x


# ----------------------------------------------------------------------------- PPMI and SVD embeddings


def ppmi(counts, alpha: float = 0.75):
    """PPMI(w, c) = max(0, log[P(w, c) / (P(w) P_alpha(c))]), P_alpha(c) = #(c)^alpha / sum_c' #(c')^alpha.

    ``counts`` is a word x context count matrix (dense or scipy.sparse); P(w, c) =
    #(w, c) / D, P(w) = #(w) / D with #(w) the row sums, #(c) the column sums and D
    the total. ``alpha`` < 1 smooths the context distribution (Levy, Goldberg & Dagan
    2015 use 0.75); ``alpha=1`` is plain PPMI. Cells with zero count are 0. Returns
    float64, sparse CSR for sparse input.
    """
    import scipy.sparse

    fn = "ppmi"
    alpha = as_positive_float(alpha, "alpha", fn)
    is_sparse = scipy.sparse.issparse(counts)
    if is_sparse:
        x = scipy.sparse.coo_matrix(counts, dtype=np.float64)
        x.sum_duplicates()
        vals = x.data
    else:
        x = np.asarray(counts)
        if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
            raise ValueError(f"{fn}: counts must be numeric, got dtype {x.dtype}")
        x = x.astype(np.float64)
        vals = x
    if x.ndim != 2:
        raise ValueError(f"{fn}: counts must be a 2-D word x context matrix, got shape {x.shape}")
    if vals.size and (not np.all(np.isfinite(vals)) or vals.min() < 0):
        raise ValueError(f"{fn}: counts must be finite and >= 0")
    total = float(vals.sum())
    if total <= 0:
        raise ValueError(f"{fn}: counts must have a positive sum, got all zeros")
    row = np.asarray(x.sum(axis=1)).ravel()
    col = np.asarray(x.sum(axis=0)).ravel()
    col_a = col**alpha
    p_ctx = col_a / col_a.sum()
    if is_sparse:
        keep = x.data > 0
        r, c, v = x.row[keep], x.col[keep], x.data[keep]
        pmi = np.log(v / total) - np.log(row[r] / total) - np.log(p_ctx[c])
        pos = pmi > 0
        return scipy.sparse.csr_matrix((pmi[pos], (r[pos], c[pos])), shape=x.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(x / total) - np.log(row / total)[:, None] - np.log(p_ctx)[None, :]
    return np.where(x > 0, np.maximum(pmi, 0.0), 0.0)


def svd_embeddings(matrix, dim: int, *, power: float = 0.5) -> np.ndarray:
    """Word vectors E = U_k diag(S_k)^power from the truncated SVD M ~ U_k S_k V_k^T (zoo.pca.truncated_svd).

    ``power=1`` gives the rank-k row space scaled as in M; ``power=0.5`` (the
    default, Levy et al. 2015) splits S evenly between word and context vectors;
    ``power=0`` uses U_k alone. Sparse input is densified. Returns float32 [rows, dim].
    """
    import scipy.sparse

    from zoo.pca import truncated_svd  # lazy: keeps `import zoo.text` free of JAX start-up

    fn = "svd_embeddings"
    if scipy.sparse.issparse(matrix):
        matrix = matrix.toarray()
    m = np.asarray(matrix)
    if m.ndim != 2:
        raise ValueError(f"{fn}: matrix must be 2-D, got shape {m.shape}")
    if not (np.issubdtype(m.dtype, np.integer) or np.issubdtype(m.dtype, np.floating)):
        raise ValueError(f"{fn}: matrix must be numeric, got dtype {m.dtype}")
    dim = as_int(dim, "dim", fn)
    if not 1 <= dim <= min(m.shape):
        raise ValueError(f"{fn}: dim must be in 1..min(matrix.shape)={min(m.shape)}, got {dim}")
    try:
        power = float(power)
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: power must be a number >= 0, got {power!r}") from None
    if not np.isfinite(power) or power < 0:
        raise ValueError(f"{fn}: power must be a finite number >= 0, got {power!r}")
    u, s, _ = truncated_svd(m.astype(np.float32), dim)
    u, s = np.asarray(u), np.asarray(s)
    return (u * s[None, :] ** power).astype(np.float32)
