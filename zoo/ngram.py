"""Statistical language models: sentence probabilities from n-gram counts.

The lecture's chain rule gives the probability of a sentence exactly,

    P(w_1, ..., w_m) = prod_i P(w_i | w_1, ..., w_{i-1}),

and the n-gram model approximates each factor by forgetting all but the last n - 1
words, P(w_i | w_1..w_{i-1}) ~ P(w_i | w_{i-n+1}..w_{i-1}). The conditionals are
estimated from counts. This module builds, in order:

1. ``count_ngrams``: counts of every k-gram, k = 1..n, of the sentences padded as
   ``<s> w_1 .. w_m </s>``, vectorised over id arrays.
2. ``mle_prob``: the lecture's maximum-likelihood estimate p(w2 | w1) = count(w1, w2) / count(w1).
3. ``AddKLM``: add-k smoothing, so that unseen n-grams keep some probability.
4. ``KneserNeyLM``: interpolated Kneser-Ney, the standard strong n-gram baseline.
5. ``ModifiedKneserNeyLM``: modified Kneser-Ney (three discounts per order from the count-of-counts,
   ``modified_kn_discounts``), interpolated or backoff, as KenLM's lmplz and SRILM estimate it.
6. ``backoff_tables`` and ``BackoffLM``: a Kneser-Ney model as ARPA's tables of log10 probabilities and
   backoff weights, and the model such tables (an ARPA file, train/data/arpa.py) define.

The models give P(w | context) over the vocabulary including ``</s>`` (never ``<s>``,
which only starts sentences), score sentences by the chain rule, report perplexity
and sample sentences. Words outside the vocabulary map to ``<unk>``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from zoo._checks import as_int, as_positive_float
from zoo.text import Vocab, tokenize

__all__ = [
    "BOS",
    "EOS",
    "UNK",
    "ngram_vocab",
    "NGramCounts",
    "count_ngrams",
    "mle_prob",
    "AddKLM",
    "KneserNeyLM",
    "adjusted_levels",
    "FALLBACK_DISCOUNTS",
    "KN_FORMS",
    "count_of_counts",
    "modified_kn_discounts",
    "discount_of",
    "kn_interpolation_weight",
    "kn_backoff_weight",
    "ModifiedKneserNeyLM",
    "backoff_tables",
    "BackoffLM",
]

BOS, EOS, UNK = "<s>", "</s>", "<unk>"


def ngram_vocab(corpus: Iterable, min_count: int = 1, max_size: int | None = None, *, lower: bool = True) -> Vocab:
    """Vocab.build(corpus) with ids 0, 1, 2 = <s>, </s>, <unk>; <unk> counts the tokens left out."""
    return Vocab.build(corpus, min_count=min_count, max_size=max_size, specials=(BOS, EOS), unk=UNK, lower=lower)


# ----------------------------------------------------------------------------- counting


def _unique_rows(rows: np.ndarray, counts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows in lexicographic order with their summed counts (each row counts 1 if counts is None).

    Rows of k ids in [0, B) are sorted as the int64 keys sum_j row_j B^(k-1-j) when
    B^k fits in 63 bits (one 1-D sort), else with np.lexsort over the columns.
    """
    m, k = rows.shape
    if m == 0:
        return rows.astype(np.int32), np.zeros(0, np.int64)
    base = int(rows.max()) + 1
    if base**k < 2**63:
        radix = np.array([base ** (k - 1 - j) for j in range(k)], np.int64)
        keys = rows.astype(np.int64) @ radix
        if counts is None:
            keys = np.sort(keys)
        else:
            order = np.argsort(keys, kind="stable")
            keys, counts = keys[order], counts[order]
        change = np.ones(m, bool)
        change[1:] = keys[1:] != keys[:-1]
        starts = np.flatnonzero(change)
        uniq = (keys[starts, None] // radix) % base
    else:
        order = np.lexsort(rows.T[::-1])
        r = rows[order]
        counts = None if counts is None else counts[order]
        change = np.ones(m, bool)
        change[1:] = np.any(r[1:] != r[:-1], axis=1)
        starts = np.flatnonzero(change)
        uniq = r[starts]
    if counts is None:
        summed = np.diff(np.append(starts, m))
    else:
        summed = np.add.reduceat(counts.astype(np.int64), starts)
    return uniq.astype(np.int32), summed.astype(np.int64)


class _Level:
    """k-grams with a value each (a count), grouped into blocks that share the context (first k - 1 ids).

    Contexts and k-grams are found by binary search on packed int64 keys
    sum_j g_j B^(k-1-j) (B = 1 + the largest id, the order of the sorted rows), or
    through a dict of contexts when B^k overflows int64.
    """

    def __init__(self, grams: np.ndarray, values: np.ndarray):
        self.grams, self.values = grams, values
        m, k = grams.shape
        self.k = k
        ctx = grams[:, :-1]
        change = np.ones(m, bool)
        if m:
            change[1:] = np.any(ctx[1:] != ctx[:-1], axis=1)
        self.starts = np.flatnonzero(change)
        self.ends = np.append(self.starts[1:], m).astype(np.int64)
        self.totals = np.add.reduceat(values, self.starts) if m else np.zeros(0, np.int64)  # sum_w c(h, w)
        self.types = np.diff(np.append(self.starts, m))  # N1+(h .) = #{w : c(h, w) > 0}
        self._base = int(grams.max()) + 1 if m else 1
        if self._base**k < 2**63:
            self._radix = np.array([self._base ** (k - 2 - j) for j in range(k - 1)], np.int64)
            self._gram_keys = grams.astype(np.int64) @ np.append(self._radix * self._base, 1)
            self._keys = self._gram_keys[self.starts] // self._base  # context keys, ascending
            self._index = None
        else:
            self._index = {tuple(c): i for i, c in enumerate(ctx[self.starts].tolist())}

    def block(self, ctx: tuple) -> int | None:
        """Index of the block whose context is ctx, or None if ctx was never seen."""
        if self._index is not None:
            return self._index.get(ctx)
        if any(c >= self._base for c in ctx):
            return None
        key = sum(c * int(r) for c, r in zip(ctx, self._radix))
        i = int(np.searchsorted(self._keys, key))
        return i if i < len(self._keys) and self._keys[i] == key else None

    def lookup(self, ctx: np.ndarray, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row r: the block of context ctx[r] and the value of (ctx[r], words[r]).

        The block is -1 if the context is unseen or holds a negative id.
        """
        blk = np.full(len(words), -1, np.int64)
        val = np.zeros(len(words), self.values.dtype)
        if len(self.starts) == 0:
            return blk, val
        ok = np.all((ctx >= 0) & (ctx < self._base), axis=1) & (words < self._base)
        rows = np.flatnonzero(ok)
        if self._index is None:
            key = ctx[rows] @ self._radix
            i = np.minimum(np.searchsorted(self._keys, key), len(self._keys) - 1)
            hit = self._keys[i] == key
            blk[rows[hit]] = i[hit]
            rows, key = rows[hit], key[hit]
            gkey = key * self._base + words[rows]
            j = np.minimum(np.searchsorted(self._gram_keys, gkey), len(self._gram_keys) - 1)
            hit = self._gram_keys[j] == gkey
            val[rows[hit]] = self.values[j[hit]]
        else:
            for r in rows.tolist():
                i = self._index.get(tuple(ctx[r].tolist()))
                if i is not None:
                    blk[r], val[r] = i, self.value(i, int(words[r]))
        return blk, val

    def words(self, i: int) -> np.ndarray:
        return self.grams[self.starts[i] : self.ends[i], -1]

    def block_values(self, i: int) -> np.ndarray:
        return self.values[self.starts[i] : self.ends[i]]

    def value(self, i: int, w: int) -> int:
        words = self.words(i)
        j = int(np.searchsorted(words, w))
        return int(self.values[self.starts[i] + j]) if j < len(words) and words[j] == w else 0


class NGramCounts:
    """Counts c(g) of every k-gram g, k = 1..order, of sentences padded as <s> w_1 .. w_m </s>.

    ``grams[k - 1]`` is an int32 [m_k, k] array of the distinct k-grams in
    lexicographic order and ``counts[k - 1]`` their int64 counts. As a predicted word
    <s> does not exist: the empty context's total c() counts words and </s> only.
    """

    def __init__(
        self,
        order: int,
        vocab_size: int,
        bos: int,
        eos: int,
        grams: Sequence[np.ndarray],
        counts: Sequence[np.ndarray],
        num_sentences: int,
    ):
        self.order, self.vocab_size, self.bos, self.eos = order, vocab_size, bos, eos
        self.grams, self.counts = tuple(grams), tuple(counts)
        self.num_sentences = num_sentences
        self.unigram = np.zeros(vocab_size, np.int64)  # c(w) for every id, <s> included
        self.unigram[self.grams[0][:, 0]] = self.counts[0]
        not_bos = self.grams[0][:, 0] != bos  # level 1 is P(w) over predicted words: no <s>
        self.levels = (_Level(self.grams[0][not_bos], self.counts[0][not_bos]),) + tuple(
            _Level(g, c) for g, c in zip(self.grams[1:], self.counts[1:])
        )

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k + 1}-grams: {len(c)}" for k, c in enumerate(self.counts))
        return f"NGramCounts(order={self.order}, vocab_size={self.vocab_size}, {sizes})"

    def _check_gram(self, gram, fn: str, name: str, max_len: int) -> tuple:
        g = tuple(as_int(x, f"each id of {name}", fn) for x in gram)
        if len(g) > max_len:
            raise ValueError(
                f"{fn}: {name} has length {len(g)}; these counts hold n-grams up to "
                f"order {self.order}, so it must have at most {max_len} ids"
            )
        for x in g:
            if not 0 <= x < self.vocab_size:
                raise ValueError(f"{fn}: {name} ids must lie in [0, {self.vocab_size}), got {x}")
        return g

    def count(self, gram) -> int:
        """c(g): occurrences of the k-gram g (a sequence of 1..order ids) in the padded sentences."""
        g = self._check_gram(gram, "NGramCounts.count", "gram", self.order)
        if not g:
            raise ValueError("NGramCounts.count: gram must hold at least one id, got an empty sequence")
        if len(g) == 1:
            return int(self.unigram[g[0]])
        lvl = self.levels[len(g) - 1]
        i = lvl.block(g[:-1])
        return 0 if i is None else lvl.value(i, g[-1])

    def context_count(self, context) -> int:
        """c(h) = sum_w c(h, w): how often h (0..order-1 ids) is followed by a word; equals c(h) unless h ends in </s>.

        For the empty context this is the number of predicted tokens (words and </s>, not <s>).
        """
        h = self._check_gram(context, "NGramCounts.context_count", "context", self.order - 1)
        lvl = self.levels[len(h)]
        i = lvl.block(h)
        return 0 if i is None else int(lvl.totals[i])


def count_ngrams(
    sentences_ids: Iterable,
    order: int,
    *,
    vocab_size: int | None = None,
    bos: int = 0,
    eos: int = 1,
    chunk_tokens: int = 1 << 20,
) -> NGramCounts:
    """All k-gram counts, k = 1..order, of <s> w_1 .. w_m </s> for each id array in ``sentences_ids``.

    Sentences are padded with one ``bos`` and one ``eos`` id (so the first word is
    predicted from the context ``<s>`` alone) and consumed in chunks of about
    ``chunk_tokens`` ids: each chunk's k-grams are rows of shifted copies of the
    concatenated ids, kept where all k ids belong to the same sentence, then
    counted by a lexicographic sort. ``vocab_size`` defaults to 1 + the largest id.
    """
    fn = "count_ngrams"
    order = as_int(order, "order", fn, minimum=1)
    bos, eos = as_int(bos, "bos", fn), as_int(eos, "eos", fn)
    if bos == eos or bos < 0 or eos < 0:
        raise ValueError(f"{fn}: bos and eos must be distinct ids >= 0, got bos={bos}, eos={eos}")
    if vocab_size is not None:
        vocab_size = as_int(vocab_size, "vocab_size", fn)
        if vocab_size <= max(bos, eos):
            raise ValueError(f"{fn}: vocab_size must exceed the bos and eos ids ({max(bos, eos)}), got {vocab_size}")
    chunk_tokens = as_int(chunk_tokens, "chunk_tokens", fn, minimum=1)
    if isinstance(sentences_ids, np.ndarray) and sentences_ids.ndim == 1:
        raise ValueError(
            f"{fn}: sentences_ids must be an iterable of 1-D id arrays (one per sentence), "
            "got a single 1-D array; wrap it in a list"
        )

    parts: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(order)]  # per k, each chunk's counts
    max_id, num_sentences, buf, size = max(bos, eos), 0, [], 0
    for seq in sentences_ids:
        a = np.asarray(seq)
        if a.ndim != 1 or (a.size and not np.issubdtype(a.dtype, np.integer)):
            raise ValueError(f"{fn}: each sentence must be a 1-D integer id array, got shape {a.shape} dtype {a.dtype}")
        buf.append(a)
        num_sentences += 1
        size += a.size + 2
        if size >= chunk_tokens:
            max_id = max(max_id, _count_chunk(buf, parts, bos, eos, vocab_size))
            buf, size = [], 0
    if buf:
        max_id = max(max_id, _count_chunk(buf, parts, bos, eos, vocab_size))

    grams, counts = [], []
    for k in range(1, order + 1):
        if parts[k - 1]:
            g, c = _unique_rows(
                np.concatenate([p[0] for p in parts[k - 1]]).astype(np.int64),
                np.concatenate([p[1] for p in parts[k - 1]]),
            )
        else:
            g, c = np.zeros((0, k), np.int32), np.zeros(0, np.int64)
        grams.append(g)
        counts.append(c)
    return NGramCounts(
        order, vocab_size if vocab_size is not None else max_id + 1, bos, eos, grams, counts, num_sentences
    )


def _count_chunk(buf: list[np.ndarray], parts: list[list], bos: int, eos: int, vocab_size: int | None) -> int:
    """Append the distinct k-grams of one chunk of sentences, with their counts, to parts[k - 1] for every k.

    Returns the chunk's largest id (-1 when it holds no words).
    """
    fn = "count_ngrams"
    lengths = np.fromiter((a.size for a in buf), np.int64, count=len(buf))
    raw = np.concatenate(buf).astype(np.int64, copy=False)
    hi = -1
    if raw.size:
        lo, hi = int(raw.min()), int(raw.max())
        if lo < 0 or (vocab_size is not None and hi >= vocab_size):
            limit = vocab_size if vocab_size is not None else "inf"
            raise ValueError(f"{fn}: ids must lie in [0, {limit}), got {lo if lo < 0 else hi}")
        if np.any((raw == bos) | (raw == eos)):
            raise ValueError(
                f"{fn}: sentences must not contain the bos/eos ids ({bos}, {eos}); they are added around each sentence"
            )
    # <s> w_1 .. w_m </s> for every sentence, laid end to end
    padded_len = lengths + 2
    first = np.cumsum(padded_len) - padded_len
    ids = np.empty(int(padded_len.sum()), np.int64)
    inner = np.ones(ids.size, bool)
    inner[first] = inner[first + lengths + 1] = False
    ids[first], ids[first + lengths + 1], ids[inner] = bos, eos, raw
    sent = np.repeat(np.arange(len(buf)), padded_len)
    for k in range(1, len(parts) + 1):
        n = ids.size - k + 1
        if n <= 0:
            continue
        same = sent[:n] == sent[k - 1 :]
        rows = np.stack([ids[j : j + n][same] for j in range(k)], axis=1)
        parts[k - 1].append(_unique_rows(rows))
    return hi


# ----------------------------------------------------------------------------- maximum likelihood


def mle_prob(counts: NGramCounts, context, word) -> float:
    """Maximum likelihood p(w | h) = c(h, w) / c(h), e.g. p(w2 | w1) = count(w1, w2) / count(w1).

    ``context`` is 0..order-1 ids, ``word`` an id. c(h) = sum_w c(h, w), the lecture's
    count(w1) for any w1 but </s> (which is never followed by a word). Raises
    ValueError for a context never seen, where the estimate is 0/0.
    """
    fn = "mle_prob"
    if not isinstance(counts, NGramCounts):
        raise ValueError(f"{fn}: counts must be an NGramCounts from count_ngrams, got {type(counts).__name__}")
    h = counts._check_gram(context, fn, "context", counts.order - 1)
    (w,) = counts._check_gram((word,), fn, "word", 1)
    lvl = counts.levels[len(h)]
    i = lvl.block(h)
    if i is None:
        raise ValueError(
            f"{fn}: context {h} never occurs in the counts, so count(context) = 0 and the "
            "MLE is undefined; use a smoothed model (AddKLM, KneserNeyLM)"
        )
    return lvl.value(i, w) / float(lvl.totals[i])


# ----------------------------------------------------------------------------- language models


class _ChainRuleLM:
    """Shared chain-rule machinery over a vocabulary with <s>, </s> and <unk>.

    Subclasses define ``_probs(ctx, words)`` (vectorised, contexts right-aligned with -1 before a short one) and
    may define a faster ``_dist(h)`` for a normalised context h.
    """

    def _set_vocab(self, vocab: Vocab, order: int, bos: int, eos: int) -> None:
        name = type(self).__name__
        if not isinstance(vocab, Vocab):
            raise ValueError(f"{name}: vocab must be a zoo.text.Vocab (see ngram_vocab), got {type(vocab).__name__}")
        for tok, i in ((BOS, bos), (EOS, eos)):
            if vocab.word_to_id.get(tok) != i:
                raise ValueError(
                    f"{name}: vocab must hold {tok!r} at id {i} (the counts' boundary id); build it with ngram_vocab"
                )
        if vocab.unk is None:
            raise ValueError(f"{name}: vocab needs an unk token for out-of-vocabulary words; build it with ngram_vocab")
        self.vocab, self.order, self.bos, self.eos = vocab, order, bos, eos
        self._predictable = np.ones(len(vocab), bool)  # every word but <s> can be predicted
        self._predictable[bos] = False

    def _dist(self, h: tuple) -> np.ndarray:
        """P(. | h) over the vocabulary by _probs, one row per word."""
        v, n = len(self.vocab), self.order
        row = np.array([-1] * (n - 1 - len(h)) + list(h), np.int64).reshape(1, n - 1)
        return self._probs(np.repeat(row, v, axis=0), np.arange(v, dtype=np.int64))

    def _probs(self, ctx: np.ndarray, words: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # -- ids and contexts

    def _word_id(self, x, fn: str) -> int:
        if isinstance(x, str):
            return self.vocab.word_to_id.get(x, self.vocab.unk_id)
        i = as_int(x, "each word", fn)
        if not 0 <= i < len(self.vocab):
            raise ValueError(f"{fn}: word ids must lie in [0, {len(self.vocab)}), got {i}")
        return i

    def _context(self, context, fn: str) -> tuple:
        """Last order-1 ids of the history, cut after its last <s> (nothing precedes <s>)."""
        if isinstance(context, str):
            raise ValueError(f"{fn}: context must be a sequence of words or ids, got a single str {context!r}")
        h = [self._word_id(x, fn) for x in context]
        if self.bos in h:
            h = h[len(h) - 1 - h[::-1].index(self.bos) :]
        m = min(self.order - 1, len(h))
        return tuple(h[len(h) - m :])

    def _sentence_ids(self, tokens, fn: str) -> list[int]:
        if isinstance(tokens, str):
            tokens = tokenize(tokens, self.vocab.lower)
        elif not isinstance(tokens, (list, tuple, np.ndarray)):
            raise ValueError(
                f"{fn}: a sentence must be a line (str) or a sequence of words/ids, got {type(tokens).__name__}"
            )
        ids = [self._word_id(x, fn) for x in tokens]
        if self.bos in ids or self.eos in ids:
            raise ValueError(f"{fn}: a sentence must not contain {BOS!r} or {EOS!r}; they are added around it")
        return ids

    # -- public API

    def distribution(self, context) -> np.ndarray:
        """P(. | context) over the whole vocabulary: float64 [V], 0 at <s>, summing to 1."""
        return self._dist(self._context(context, f"{type(self).__name__}.distribution"))

    def _windows(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Contexts H [m+1, n-1] (right-aligned, -1 where shorter) and targets [m+1] for <s> w_1..w_m </s>."""
        n = self.order
        targets = np.array(ids + [self.eos], np.int64)
        if n == 1:
            return np.zeros((len(targets), 0), np.int64), targets
        ext = np.array([-1] * (n - 2) + [self.bos] + ids, np.int64)
        return np.lib.stride_tricks.sliding_window_view(ext, n - 1), targets

    def prob(self, context, word) -> float:
        """P(word | last order-1 words of context); words are str (unknown -> <unk>) or ids."""
        fn = f"{type(self).__name__}.prob"
        h = self._context(context, fn)
        row = np.array([[-1] * (self.order - 1 - len(h)) + list(h)], np.int64).reshape(1, self.order - 1)
        return float(self._probs(row, np.array([self._word_id(word, fn)], np.int64))[0])

    def log_prob_sentence(self, tokens) -> float:
        """Sentence log-probability by the chain rule with the n-gram approximation.

        sum_{i=1}^{m+1} log P(w_i | w_{i-n+1}..w_{i-1}), w_0 = <s>, w_{m+1} = </s>.
        """
        fn = f"{type(self).__name__}.log_prob_sentence"
        return math.fsum(np.log(self._probs(*self._windows(self._sentence_ids(tokens, fn)))))

    def perplexity(self, sentences: Iterable, *, chunk_tokens: int = 1 << 16) -> float:
        """exp(-sum log P / N) over the sentences, N = number of predicted tokens (words + one </s> each)."""
        fn = f"{type(self).__name__}.perplexity"
        if isinstance(sentences, str):
            raise ValueError(f"{fn}: sentences must be an iterable of sentences, got a single str; wrap it in a list")
        chunk_tokens = as_int(chunk_tokens, "chunk_tokens", fn, minimum=1)
        total, n, pending = 0.0, 0, 0
        hs, ws = [], []
        for s in sentences:
            h, w = self._windows(self._sentence_ids(s, fn))
            hs.append(h)
            ws.append(w)
            n += len(w)
            pending += len(w)
            if pending >= chunk_tokens:
                total += math.fsum(np.log(self._probs(np.concatenate(hs), np.concatenate(ws))))
                hs, ws, pending = [], [], 0
        if ws:
            total += math.fsum(np.log(self._probs(np.concatenate(hs), np.concatenate(ws))))
        if n == 0:
            raise ValueError(f"{fn}: sentences is empty; perplexity needs at least one sentence")
        return math.exp(-total / n)

    def sample(self, rng: np.random.Generator, max_len: int = 100) -> list[str]:
        """Draw w_i ~ P(. | w_{i-n+1}..w_{i-1}) from <s> until </s> (included) or max_len words."""
        fn = f"{type(self).__name__}.sample"
        if not isinstance(rng, np.random.Generator):
            raise ValueError(
                f"{fn}: rng must be a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}"
            )
        max_len = as_int(max_len, "max_len", fn, minimum=1)
        hist = [self.bos]
        out: list[str] = []
        for _ in range(max_len):
            cdf = np.cumsum(self._dist(tuple(hist[max(0, len(hist) - self.order + 1) :])))
            w = min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), len(cdf) - 1)
            out.append(self.vocab.words[w])
            hist.append(w)
            if w == self.eos:
                break
        return out


class _NGramLM(_ChainRuleLM):
    """A chain-rule model made from NGramCounts (and fitted from a corpus by ``fit``)."""

    def __init__(self, counts: NGramCounts, vocab: Vocab):
        name = type(self).__name__
        if not isinstance(counts, NGramCounts):
            raise ValueError(f"{name}: counts must be an NGramCounts from count_ngrams, got {type(counts).__name__}")
        if isinstance(vocab, Vocab) and len(vocab) != counts.vocab_size:
            raise ValueError(
                f"{name}: vocab has {len(vocab)} words but the counts were made with "
                f"vocab_size={counts.vocab_size}; pass vocab_size=len(vocab) to count_ngrams"
            )
        self._set_vocab(vocab, counts.order, counts.bos, counts.eos)
        if counts.num_sentences == 0:
            raise ValueError(f"{name}: the counts hold no sentences")
        self.counts = counts

    @classmethod
    def fit(
        cls,
        corpus: Iterable,
        order: int,
        *,
        vocab: Vocab | None = None,
        min_count: int = 1,
        max_size: int | None = None,
        lower: bool = True,
        **kwargs,
    ):
        """Build ngram_vocab(corpus) (unless given), count n-grams of the encoded corpus, make the model.

        Without ``vocab`` the corpus is read twice, so it must be re-iterable (a list,
        not a generator).
        """
        name = f"{cls.__name__}.fit"
        if isinstance(corpus, str):
            raise ValueError(f"{name}: corpus must be an iterable of lines or token lists, got a single str")
        if vocab is None:
            if iter(corpus) is corpus:
                raise ValueError(
                    f"{name}: corpus is a one-pass iterator but building the vocabulary and "
                    "counting need two passes; pass a list or a prebuilt vocab="
                )
            vocab = ngram_vocab(corpus, min_count, max_size, lower=lower)
        ids = vocab.encode_lines(corpus, unknown="map")
        counts = count_ngrams(ids, order, vocab_size=len(vocab), bos=vocab.id(BOS), eos=vocab.id(EOS))
        return cls(counts, vocab, **kwargs)


class AddKLM(_NGramLM):
    """Add-k smoothing: P(w | h) = (c(h, w) + k) / (c(h) + k |V'|), V' = vocabulary without <s>.

    h is the last n-1 words (fewer at the start of a sentence); c(h) = sum_w c(h, w).
    ``k=1`` is Laplace smoothing; an unseen context gives the uniform distribution.
    """

    def __init__(self, counts: NGramCounts, vocab: Vocab, k: float = 1.0):
        super().__init__(counts, vocab)
        self.k = as_positive_float(k, "k", "AddKLM")
        self._num_predictable = int(self._predictable.sum())

    def _dist(self, h: tuple) -> np.ndarray:
        lvl = self.counts.levels[len(h)]
        i = lvl.block(h)
        p = np.where(self._predictable, self.k, 0.0)
        c_h = 0
        if i is not None:
            p[lvl.words(i)] += lvl.block_values(i)
            c_h = int(lvl.totals[i])
        return p / (c_h + self.k * self._num_predictable)

    def _probs(self, ctx: np.ndarray, words: np.ndarray) -> np.ndarray:
        """Vectorised P(words[r] | ctx[r]) with ctx right-aligned and -1 before a short context."""
        n = self.order
        length = (ctx >= 0).sum(axis=1)
        p = np.empty(len(words))
        for m in np.unique(length).tolist():
            rows = length == m
            lvl = self.counts.levels[m]
            blk, val = lvl.lookup(ctx[rows][:, n - 1 - m :], words[rows])
            c_h = np.where(blk >= 0, lvl.totals[np.maximum(blk, 0)], 0)
            p[rows] = (val + self.k) / (c_h + self.k * self._num_predictable)
        p[words == self.bos] = 0.0
        return p


def adjusted_levels(counts: NGramCounts) -> tuple:
    """Kneser-Ney's adjusted counts a(g) of every order, as _Level tables of the k-grams with a(g) > 0.

    a(g) = c(g) at the highest order and for g starting with <s> (nothing can precede it), else the
    continuation count N1+(. g) = #{v : c(v, g) > 0}. Every k-gram seen in training has a(g) > 0.
    """
    n, bos = counts.order, counts.bos
    levels = [None] * n
    levels[n - 1] = counts.levels[n - 1]
    for k in range(n - 1, 0, -1):  # adjusted counts of k-grams from the distinct (k+1)-grams
        suffix = counts.grams[k][:, 1:].astype(np.int64)
        g_cont, a_cont = _unique_rows(suffix)
        raw_g, raw_c = counts.grams[k - 1], counts.counts[k - 1]
        starts_bos = raw_g[:, 0] == bos
        if k == 1:
            starts_bos[:] = False  # <s> is never predicted: it gets no unigram mass
        g, a = _unique_rows(
            np.concatenate([g_cont, raw_g[starts_bos]]).astype(np.int64), np.concatenate([a_cont, raw_c[starts_bos]])
        )
        levels[k - 1] = _Level(g, a)
    return tuple(levels)


def _dense_unigram(level: _Level, vocab_size: int, bos: int) -> np.ndarray:
    """The adjusted unigram counts a(w) as a float64 [V] vector, 0 at <s>."""
    a1 = np.zeros(vocab_size, np.float64)
    a1[level.grams[:, 0]] = level.values
    a1[bos] = 0.0
    return a1


class KneserNeyLM(_NGramLM):
    """Interpolated Kneser-Ney (Chen & Goodman 1998), recursively over orders n, n-1, ..., 1:

        P_k(w | h) = max(a(h, w) - D, 0) / a(h) + D N1+(h .) / a(h) * P_{k-1}(w | h minus its first word)
        P_1(w) = max(a(w) - D, 0) / a() + D N1+(.) / a() * 1 / |V'|   (V' = vocabulary without <s>)

    with a(h) = sum_w a(h, w) and N1+(h .) = #{w : a(h, w) > 0}. The adjusted count a is
    the raw count c at the highest order and for n-grams that start with <s> (nothing
    can precede them), and otherwise the continuation count N1+(. g) = #{v : c(v, g) > 0}.
    A context with a(h) = 0 passes P_{k-1} through unchanged.
    """

    def __init__(self, counts: NGramCounts, vocab: Vocab, discount: float = 0.75):
        super().__init__(counts, vocab)
        if self.order < 2:
            raise ValueError(f"KneserNeyLM: needs n-gram counts of order >= 2, got order {self.order}")
        try:
            discount = float(discount)
        except (TypeError, ValueError):
            raise ValueError(f"KneserNeyLM: discount must be a number in (0, 1], got {discount!r}") from None
        if not 0 < discount <= 1:
            raise ValueError(f"KneserNeyLM: discount must be in (0, 1], got {discount!r}")
        self.discount = discount
        self.levels = adjusted_levels(counts)
        # P_1 as a dense vector
        a1 = _dense_unigram(self.levels[0], len(vocab), self.bos)
        total, types = a1.sum(), int((a1 > 0).sum())
        lam = discount * types / total
        self._p1 = np.where(
            self._predictable, np.maximum(a1 - discount, 0.0) / total + lam / self._predictable.sum(), 0.0
        )

    def _dist(self, h: tuple) -> np.ndarray:
        d = self.discount
        p = self._p1.copy()
        for k in range(2, len(h) + 2):  # P_k from P_{k-1}, context = last k-1 ids of h
            lvl = self.levels[k - 1]
            i = lvl.block(h[len(h) - (k - 1) :])
            if i is None:
                continue
            a_h = float(lvl.totals[i])
            p *= d * int(lvl.types[i]) / a_h
            p[lvl.words(i)] += np.maximum(lvl.block_values(i) - d, 0.0) / a_h
        return p

    def _probs(self, ctx: np.ndarray, words: np.ndarray) -> np.ndarray:
        """Vectorised P(words[r] | ctx[r]) with ctx right-aligned and -1 before a short context."""
        d, n = self.discount, self.order
        p = self._p1[words]
        for k in range(2, n + 1):
            lvl = self.levels[k - 1]
            blk, val = lvl.lookup(ctx[:, n - k :], words)
            seen = blk >= 0
            b = blk[seen]
            a_h = lvl.totals[b].astype(np.float64)
            p[seen] = d * lvl.types[b] / a_h * p[seen] + np.maximum(val[seen] - d, 0.0) / a_h
        return p

    def _weights(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Per context block of order k >= 2: the weights of P_{k-1} for seen and unseen words, both D N1+(h .)/a(h)."""
        lvl = self.levels[k - 1]
        gamma = self.discount * lvl.types / lvl.totals.astype(np.float64)
        return gamma, gamma


# ----------------------------------------------------------------------------- modified Kneser-Ney

# lmplz --discount_fallback's discounts (D1, D2, D3+), used where the count-of-counts cannot give them
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)
KN_FORMS = ("interpolated", "backoff")


def count_of_counts(counts, max_count: int = 4) -> np.ndarray:
    """n_r = #{g : c(g) = r} for r = 1..max_count, as int64 [max_count] (n_1 first)."""
    c = np.asarray(counts)
    if c.ndim != 1 or (c.size and not np.issubdtype(c.dtype, np.integer)):
        raise ValueError(f"count_of_counts: counts must be a 1-D integer array, got shape {c.shape} dtype {c.dtype}")
    max_count = as_int(max_count, "max_count", "count_of_counts", minimum=1)
    c = c.astype(np.int64)
    return np.bincount(c[(c >= 1) & (c <= max_count)], minlength=max_count + 1)[1:].astype(np.int64)


def modified_kn_discounts(count_of_counts) -> tuple[float, float, float]:
    """(D1, D2, D3+) = (1 - 2Y n2/n1, 2 - 3Y n3/n2, 3 - 4Y n4/n3) with Y = n1 / (n1 + 2 n2) (Chen & Goodman 1998).

    Falls back to FALLBACK_DISCOUNTS (0.5, 1, 1.5), as ``lmplz --discount_fallback`` does, when n1, n2 or n3
    is 0 (a ratio is undefined) or a discount D_i leaves (0, i]: a discount <= 0 would give a context
    no mass to pass down, and D_i > i a negative count. Only D2 <= 0 or D3+ <= 0 can happen with
    n1..n3 > 0 (D1 > 0 and D_i <= i always hold), on small or artificial data.
    """
    n = np.asarray(count_of_counts, np.float64)
    if n.shape != (4,) or not np.all(np.isfinite(n)) or np.any(n < 0):
        raise ValueError(
            f"modified_kn_discounts: count_of_counts must be 4 counts (n1..n4) >= 0, got {count_of_counts!r}"
        )
    n1, n2, n3, n4 = n.tolist()
    if n1 == 0 or n2 == 0 or n3 == 0:
        return FALLBACK_DISCOUNTS
    y = n1 / (n1 + 2 * n2)
    d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    if not all(0 < d_i <= i for i, d_i in enumerate(d, start=1)):
        return FALLBACK_DISCOUNTS
    return d


def discount_of(counts: np.ndarray, discounts) -> np.ndarray:
    """D(c) = 0, D1, D2, D3+ for c = 0, 1, 2, >= 3, elementwise."""
    table = np.array((0.0, *discounts), np.float64)
    return table[np.minimum(np.asarray(counts, np.int64), 3)]


def kn_interpolation_weight(n1, n2, n3_plus, total, discounts) -> np.ndarray:
    """gamma(h) = (D1 N1(h .) + D2 N2(h .) + D3+ N3+(h .)) / c(h): the mass the discounts free in context h."""
    d1, d2, d3 = discounts
    return (d1 * np.asarray(n1) + d2 * np.asarray(n2) + d3 * np.asarray(n3_plus)) / np.asarray(total, np.float64)


def kn_backoff_weight(gamma, seen_lower_mass) -> np.ndarray:
    """alpha(h) = gamma(h) / (1 - sum_{w : c(h, w) > 0} P_lower(w | h')): the freed mass spread over unseen words."""
    return np.asarray(gamma, np.float64) / (1.0 - np.asarray(seen_lower_mass, np.float64))


def _check_discounts(discounts, order: int, fn: str) -> tuple:
    """order triples (D1, D2, D3+) with 0 < D_i <= i, one per order 1..order."""
    try:
        d = np.asarray(discounts, np.float64)
    except (TypeError, ValueError):
        d = None
    if d is None or d.shape != (order, 3) or not np.all(np.isfinite(d)) or np.any(d <= 0) or np.any(d > [1, 2, 3]):
        raise ValueError(
            f"{fn}: discounts must be {order} triples (D1, D2, D3+), one per order, with 0 < D1 <= 1, "
            f"0 < D2 <= 2, 0 < D3+ <= 3, or None (estimated from the counts), got {discounts!r}"
        )
    return tuple(tuple(row) for row in d.tolist())


class ModifiedKneserNeyLM(_NGramLM):
    """Modified Kneser-Ney (Chen & Goodman 1998): discounts D1, D2, D3+ per order, interpolated or backoff form.

        interpolated: P_k(w | h) = (a(h, w) - D(a(h, w))) / a(h) + gamma(h) P_{k-1}(w | h')
        backoff:      P_k(w | h) = (a(h, w) - D(a(h, w))) / a(h) if a(h, w) > 0, else alpha(h) P_{k-1}(w | h')
        P_1(w) = (a(w) - D(a(w))) / a() + gamma() / |V'|   (both forms; V' = vocabulary without <s>)

    with h' = h minus its first word, the adjusted counts a of ``adjusted_levels`` (continuation counts
    below the highest order), gamma = ``kn_interpolation_weight`` and alpha = ``kn_backoff_weight``. Each
    order's discounts come from the count-of-counts n1..n4 of its adjusted counts (``modified_kn_discounts``)
    unless ``discounts`` gives one triple per order ((D, D, D) at every order is one-discount Kneser-Ney).
    A context with a(h) = 0 passes P_{k-1} through. In the backoff form a context followed by every word
    but <s> has no unseen word to give alpha's mass to: it keeps the interpolated form, so P still sums to 1.
    """

    def __init__(self, counts: NGramCounts, vocab: Vocab, form: str = "interpolated", discounts=None):
        super().__init__(counts, vocab)
        fn = "ModifiedKneserNeyLM"
        if self.order < 2:
            raise ValueError(f"{fn}: needs n-gram counts of order >= 2, got order {self.order}")
        if form not in KN_FORMS:
            raise ValueError(f"{fn}: form must be one of {', '.join(KN_FORMS)}, got {form!r}")
        self.form = form
        self.levels = adjusted_levels(counts)
        if discounts is None:
            discounts = [modified_kn_discounts(count_of_counts(lvl.values)) for lvl in self.levels]
        self.discounts = _check_discounts(discounts, self.order, fn)
        a1 = _dense_unigram(self.levels[0], len(vocab), self.bos)
        a1_int = a1.astype(np.int64)
        gamma0 = kn_interpolation_weight(
            (a1_int == 1).sum(), (a1_int == 2).sum(), (a1_int >= 3).sum(), a1.sum(), self.discounts[0]
        )
        self._p1 = np.where(
            self._predictable,
            (a1 - discount_of(a1_int, self.discounts[0])) / a1.sum() + gamma0 / self._predictable.sum(),
            0.0,
        )
        self._seen_weight, self._unseen_weight = [None, None], [None, None]  # per block of orders 2..n
        for k in range(2, self.order + 1):
            seen, unseen = self._level_weights(k)
            self._seen_weight.append(seen)
            self._unseen_weight.append(unseen)

    def _level_weights(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The weights of P_{k-1} in each order-k context for seen and for unseen words (orders < k ready)."""
        lvl = self.levels[k - 1]
        a = lvl.values
        block_sum = lambda x: np.add.reduceat(x.astype(np.int64), lvl.starts)  # noqa: E731
        gamma = kn_interpolation_weight(
            block_sum(a == 1), block_sum(a == 2), block_sum(a >= 3), lvl.totals, self.discounts[k - 1]
        )
        if self.form == "interpolated":
            return gamma, gamma
        n = self.order  # backoff: P_{k-1}(w | h') of every seen (h, w), summed per context
        ctx = np.full((len(a), n - 1), -1, np.int64)
        ctx[:, n - k + 1 :] = lvl.grams[:, 1:-1]
        lower = self._probs_to(ctx, lvl.grams[:, -1].astype(np.int64), k - 1)
        seen_mass = np.add.reduceat(lower, lvl.starts)
        covered = lvl.types == self._predictable.sum()  # no unseen word: keep this context interpolated
        alpha = np.where(covered, gamma, kn_backoff_weight(gamma, np.where(covered, 0.0, seen_mass)))
        return np.where(covered, gamma, 0.0), alpha

    def _weights(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Per context block of order k >= 2: the weights of P_{k-1} for seen and unseen words."""
        return self._seen_weight[k], self._unseen_weight[k]

    def _probs_to(self, ctx: np.ndarray, words: np.ndarray, top: int) -> np.ndarray:
        """P_top(words[r] | ctx[r]): the recursion up to order top, ctx [m, order-1] right-aligned, -1 padded."""
        n = self.order
        p = self._p1[words]
        for k in range(2, top + 1):
            lvl = self.levels[k - 1]
            blk, val = lvl.lookup(ctx[:, n - k :], words)
            rows = np.flatnonzero(blk >= 0)
            b, v, lower = blk[rows], val[rows], p[rows]
            disc = (v - discount_of(v, self.discounts[k - 1])) / lvl.totals[b]
            p[rows] = np.where(v > 0, disc + self._seen_weight[k][b] * lower, self._unseen_weight[k][b] * lower)
        return p

    def _probs(self, ctx: np.ndarray, words: np.ndarray) -> np.ndarray:
        """Vectorised P(words[r] | ctx[r]) with ctx right-aligned and -1 before a short context."""
        return self._probs_to(ctx, words, self.order)


# ----------------------------------------------------------------------------- backoff tables (ARPA's form)


def backoff_tables(model) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A Kneser-Ney model in ARPA's backoff form: per order k, (k-grams [m, k], log10 P, log10 backoff weight).

    The k-grams are those with adjusted count a > 0 (order 1: every word, <s> included with log10 P = -99,
    SRILM's "never"), each with the model's probability P_k(w | h), the interpolated one for an interpolated
    model as KenLM writes it. The backoff weight of a k-gram g (k < n) is the weight of P_k given to the
    words never seen after g (gamma(g) interpolated, alpha(g) backoff), 1 (log 0) where nothing follows g.
    Then P(w | h) = P(h, w) if listed, else bow(h) P(w | h') is the model's probability for every h and w.
    """
    if not isinstance(model, (KneserNeyLM, ModifiedKneserNeyLM)):
        raise ValueError(
            f"backoff_tables: model must be a KneserNeyLM or ModifiedKneserNeyLM, got {type(model).__name__}"
        )
    n, v = model.order, len(model.vocab)
    tables = []
    for k in range(1, n + 1):
        grams = np.arange(v, dtype=np.int64)[:, None] if k == 1 else model.levels[k - 1].grams.astype(np.int64)
        ctx = np.full((len(grams), n - 1), -1, np.int64)
        ctx[:, n - k :] = grams[:, :-1]
        with np.errstate(divide="ignore"):
            logp = np.log10(model._probs(ctx, grams[:, -1]))
        if k == 1:
            logp[model.bos] = -99.0
        logbow = np.zeros(len(grams))
        if k < n:
            blk, _ = model.levels[k].lookup(grams, np.zeros(len(grams), np.int64))
            has = blk >= 0
            logbow[has] = np.log10(model._weights(k + 1)[1][blk[has]])
        tables.append((grams, logp, logbow))
    return tables


class BackoffLM(_ChainRuleLM):
    """A backoff n-gram model from its tables, the model an ARPA file holds (see ``backoff_tables``):

        P(w | h) = 10^logp(h, w) if (h, w) is listed, else 10^logbow(h) P(w | h')   (logbow = 0 if h is not listed)

    ``tables[k - 1]`` = (k-grams int [m_k, k] of vocab ids, log10 P [m_k], log10 backoff weight [m_k]). Every
    word but <s> must have a unigram; P(<s>) is 0 whatever its table entry says.
    """

    def __init__(self, vocab: Vocab, tables):
        fn = "BackoffLM"
        if not isinstance(vocab, Vocab):
            raise ValueError(f"{fn}: vocab must be a zoo.text.Vocab, got {type(vocab).__name__}")
        tables = list(tables)
        if not tables:
            raise ValueError(f"{fn}: tables must hold at least the unigrams, got none")
        if BOS not in vocab.word_to_id or EOS not in vocab.word_to_id:
            raise ValueError(f"{fn}: vocab must hold {BOS!r} and {EOS!r}")
        self._set_vocab(vocab, len(tables), vocab.id(BOS), vocab.id(EOS))
        v = len(vocab)
        self._levels, self._logp, self._logbow = [], [], []
        for k, (grams, logp, logbow) in enumerate(tables, start=1):
            grams, logp, logbow = np.asarray(grams), np.asarray(logp, np.float64), np.asarray(logbow, np.float64)
            m = len(grams)
            if grams.shape != (m, k) or logp.shape != (m,) or logbow.shape != (m,):
                raise ValueError(
                    f"{fn}: order {k}'s table must be k-grams [m, {k}] with m log10 probabilities and backoff "
                    f"weights, got shapes {grams.shape}, {logp.shape}, {logbow.shape}"
                )
            if m and (not np.issubdtype(grams.dtype, np.integer) or grams.min() < 0 or grams.max() >= v):
                raise ValueError(f"{fn}: order {k}'s k-grams must be ids in [0, {v})")
            if np.any(np.isnan(logp)) or not np.all(np.isfinite(logbow)):
                raise ValueError(f"{fn}: order {k}'s log10 probabilities must not be NaN and its backoffs finite")
            order = np.lexsort(grams.T[::-1]) if m else np.zeros(0, np.int64)
            g = grams[order].astype(np.int64)
            if m > 1 and np.any(np.all(g[1:] == g[:-1], axis=1)):
                raise ValueError(f"{fn}: order {k} lists a k-gram twice")
            self._levels.append(_Level(g, np.arange(1, m + 1, dtype=np.int64)))  # value = row + 1, 0 = unlisted
            self._logp.append(logp[order])
            self._logbow.append(logbow[order])
        listed = np.zeros(v, bool)
        listed[self._levels[0].grams[:, 0]] = True
        if not np.all(listed | ~self._predictable):
            missing = vocab.words[int(np.flatnonzero(~listed & self._predictable)[0])]
            raise ValueError(f"{fn}: every word but <s> needs a unigram; {missing!r} has none")
        self._logp1 = np.zeros(v)
        self._logp1[self._levels[0].grams[:, 0]] = self._logp[0]
        self._logbow1 = np.zeros(v)
        self._logbow1[self._levels[0].grams[:, 0]] = self._logbow[0]

    def _context_logbow(self, h: np.ndarray) -> np.ndarray:
        """log10 backoff weight of each row's context h [m, j] (right-aligned), 0 where h is unlisted or short."""
        j = h.shape[1]
        if j == 1:
            return np.where(h[:, 0] >= 0, self._logbow1[np.maximum(h[:, 0], 0)], 0.0)
        _, row = self._levels[j - 1].lookup(h[:, :-1], np.maximum(h[:, -1], 0))
        return np.where(row > 0, self._logbow[j - 1][np.maximum(row - 1, 0)], 0.0)

    def log10_probs(self, ctx: np.ndarray, words: np.ndarray) -> np.ndarray:
        """log10 P(words[r] | ctx[r]) by the backoff recursion, ctx [m, order-1] right-aligned, -1 padded."""
        n = self.order
        logp = self._logp1[words]
        for k in range(2, n + 1):
            _, row = self._levels[k - 1].lookup(ctx[:, n - k :], words)
            listed = row > 0
            backed_off = logp + self._context_logbow(ctx[:, n - k :])
            logp = np.where(listed, self._logp[k - 1][np.maximum(row - 1, 0)], backed_off)
        return logp

    def _probs(self, ctx: np.ndarray, words: np.ndarray) -> np.ndarray:
        p = 10.0 ** self.log10_probs(ctx, words)
        p[words == self.bos] = 0.0
        return p
