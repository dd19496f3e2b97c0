"""Queries and evaluation of any word-vector table: word2vec's and the co-occurrence SVD's alike.

A table is W [V, D], one row per word of a vocabulary (a ``zoo.text.Vocab`` or a plain sequence of words);
its rows need not have unit length: every function here takes the vectors as they are and normalises them
itself, so cosine similarity is what ranks words.

1. Unit rows: ``normalize`` (cosine similarity becomes a dot product).
2. Nearest words, gensim's ``KeyedVectors`` methods with its names, arguments and results:
   ``most_similar`` (positive and negative terms), ``most_similar_cosmul``, ``similarity``, ``doesnt_match``
   (``train.data.vectors.WordVectors`` is the class over them, with the files).
3. Analogies a:b :: c:? as in king - man + woman = queen: ``analogy`` (3CosAdd and 3CosMul),
   ``evaluate_analogies`` on Google questions-words style sections (``parse_questions_words``), and
   gensim's ``evaluate_word_analogies``.
4. Word similarity: ``evaluate_wordsim`` (Spearman rank correlation with human similarity judgements) on
   WordSim-353 style lines (``parse_wordsim``), and gensim's ``evaluate_word_pairs``.

Unknown words raise ``zoo.text.UnknownWordError`` (a KeyError and a ValueError).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import jax.numpy as jnp
import numpy as np

from zoo._checks import as_int, as_positive_float
from zoo.text import Vocab

__all__ = [
    "ANALOGY_METHODS",
    "normalize",
    "most_similar",
    "most_similar_cosmul",
    "similarity",
    "doesnt_match",
    "analogy",
    "evaluate_analogies",
    "evaluate_word_analogies",
    "parse_questions_words",
    "parse_wordsim",
    "evaluate_wordsim",
    "evaluate_word_pairs",
]

ANALOGY_METHODS = ("3cosadd", "3cosmul")


# ----------------------------------------------------------------------------- validation


def _as_vocab(vocab, fn: str):
    """A Vocab (anything with .words and .id) as it is; a sequence of words made into one."""
    if hasattr(vocab, "words") and hasattr(vocab, "id"):
        return vocab
    if isinstance(vocab, str) or not isinstance(vocab, Iterable):
        raise ValueError(
            f"{fn}: vocab must be a zoo.text.Vocab or a sequence of words, got {type(vocab).__name__} {vocab!r:.60}"
        )
    try:
        return Vocab(list(vocab))
    except ValueError as e:
        raise ValueError(f"{fn}: {e}") from None


def _words(vocab) -> Sequence[str]:
    """The words of a Vocab, row by row."""
    return vocab.words


def _word_id(vocab, word: str) -> int:
    """The row of ``word`` (UnknownWordError naming it when the vocabulary lacks it)."""
    return vocab.id(word)


def _check_table(W, vocab, fn: str, name: str = "W"):
    """(W as a float array [V, D], vocab as a Vocab) with one row per word."""
    vocab = _as_vocab(vocab, fn)
    W = np.asarray(W)
    if W.ndim != 2 or not np.issubdtype(W.dtype, np.floating):
        raise ValueError(f"{fn}: {name} must be a 2-D float array [V, D], got dtype {W.dtype} shape {W.shape}")
    if W.shape[0] != len(_words(vocab)):
        raise ValueError(f"{fn}: {name} has {W.shape[0]} rows but the vocabulary has {len(_words(vocab))} words")
    return W, vocab


def _check_topn(topn, fn: str) -> int:
    """topn as an int >= 1."""
    return as_int(topn, "topn", fn, minimum=1)


def _check_restrict(restrict_vocab, vocab_size: int, fn: str) -> int:
    """How many leading rows are candidates: all for None, else min(restrict_vocab, V)."""
    if restrict_vocab is None:
        return vocab_size
    return min(as_int(restrict_vocab, "restrict_vocab", fn, minimum=1), vocab_size)


def _check_query(W, vocab, topn, exclude, restrict_vocab, fn: str):
    """(W, vocab, topn or None, ids of the excluded words, number of candidate rows) after their checks."""
    W, vocab = _check_table(W, vocab, fn)
    topn = None if topn is None else _check_topn(topn, fn)
    if isinstance(exclude, str):
        exclude = (exclude,)
    banned = [_word_id(vocab, w) for w in exclude]
    return W, vocab, topn, banned, _check_restrict(restrict_vocab, W.shape[0], fn)


def _check_method(method, fn: str) -> str:
    """method, one of ANALOGY_METHODS."""
    if method not in ANALOGY_METHODS:
        raise ValueError(f"{fn}: method={method!r} not supported; accepted: {ANALOGY_METHODS}")
    return method


# ----------------------------------------------------------------------------- unit rows


def normalize(W, eps: float = 1e-12):
    """Rows scaled to unit L2 norm (zero rows stay zero): cosine similarity becomes a dot product."""
    W = jnp.asarray(W)
    if W.ndim != 2:
        raise ValueError(f"normalize: W must be a 2-D array [V, D], got shape {W.shape}")
    return W / jnp.maximum(jnp.linalg.norm(W, axis=-1, keepdims=True), eps)


def _np_normalize(W: np.ndarray) -> np.ndarray:
    """``normalize`` in numpy float32: W_i / max(||W_i||, 1e-12)."""
    W = W.astype(np.float32, copy=False)
    return W / np.maximum(np.linalg.norm(W, axis=-1, keepdims=True), 1e-12)


def _row_norms(W: np.ndarray) -> np.ndarray:
    """||W_i|| for every row, floored at 1e-12, without a [V, D] temporary."""
    return np.maximum(np.sqrt(np.einsum("ij,ij->i", W, W)), 1e-12)


# ----------------------------------------------------------------------------- nearest words


def most_similar(
    W, vocab, positive=None, negative=None, topn: int | None = 10, exclude: Iterable[str] = (), restrict_vocab=None
):
    """The topn words w by cos(w, q), q = sum_i s_i x_i over the positive (s = +1) and negative (s = -1) terms.

    gensim's ``KeyedVectors.most_similar``: a term is a word (x its unit row; the word is left out of the
    answers), a vector [D] (taken as given) or a (term, weight) pair (s = weight). ``W`` need not have unit
    rows and ``vocab`` is a ``zoo.text.Vocab`` or a list of words. Only the first ``restrict_vocab`` rows are
    candidates, words in ``exclude`` are left out, and ``topn=None`` returns the cosines of all candidates.
    """
    fn = "most_similar"
    W, vocab, topn, banned, limit = _check_query(W, vocab, topn, exclude, restrict_vocab, fn)
    norms = _row_norms(W)
    terms, ids = _terms(W, norms, vocab, positive, 1.0, fn, "positive", True)
    neg, neg_ids = _terms(W, norms, vocab, negative, -1.0, fn, "negative", True)
    if not terms + neg:
        raise ValueError(f"{fn}: positive and negative are both empty: give at least one word or vector")
    q = sum(w * x for x, w in terms + neg)
    q = q / max(float(np.linalg.norm(q)), 1e-12)
    return _ranked(vocab, (W[:limit] @ q) / norms[:limit], banned + ids + neg_ids, topn)


def most_similar_cosmul(
    W,
    vocab,
    positive=None,
    negative=None,
    topn: int | None = 10,
    exclude: Iterable[str] = (),
    restrict_vocab=None,
    eps: float = 1e-6,
):
    """3CosMul (Levy & Goldberg 2014) as gensim's: the topn words w by prod_p cos'(w, p) / (prod_n cos'(w, n) + eps).

    cos' = (1 + cos) / 2. Terms are words (left out of the answers) or vectors [D]; ``restrict_vocab``,
    ``exclude`` and ``topn=None`` as in ``most_similar`` (gensim 4.4 ignores its ``restrict_vocab`` here).
    """
    fn = "most_similar_cosmul"
    W, vocab, topn, banned, limit = _check_query(W, vocab, topn, exclude, restrict_vocab, fn)
    eps = as_positive_float(eps, "eps", fn)
    norms = _row_norms(W)
    pos, ids = _terms(W, norms, vocab, positive, 1.0, fn, "positive", False)
    neg, neg_ids = _terms(W, norms, vocab, negative, -1.0, fn, "negative", False)
    if not pos:
        raise ValueError(f"{fn}: positive is empty: give at least one word or vector")
    rows, rows_norms = W[:limit], norms[:limit]
    cos = lambda x: (1.0 + (rows @ x) / rows_norms / max(float(np.linalg.norm(x)), 1e-12)) / 2.0
    scores = np.prod([cos(x) for x, _ in pos], axis=0) / (np.prod([cos(x) for x, _ in neg], axis=0) + eps)
    return _ranked(vocab, scores, banned + ids + neg_ids, topn)


def similarity(W, vocab, w1: str, w2: str) -> float:
    """cos(w1, w2) = W[w1] . W[w2] / (||W[w1]|| ||W[w2]||)."""
    W, vocab = _check_table(W, vocab, "similarity")
    x, y = (W[_word_id(vocab, w)] for w in (w1, w2))
    return float(x @ y / max(float(np.linalg.norm(x) * np.linalg.norm(y)), 1e-24))


def doesnt_match(W, vocab, words: Sequence[str]) -> str:
    """The word of ``words`` with the lowest cos(x_w, m), m = the mean of their unit rows x_w (gensim's)."""
    fn = "doesnt_match"
    W, vocab = _check_table(W, vocab, fn)
    if isinstance(words, str) or not isinstance(words, Iterable):
        raise ValueError(f"{fn}: words must be a list of words, got {words!r:.60}")
    words = list(words)
    if not words:
        raise ValueError(f"{fn}: words is empty: give the words to choose from")
    X = _np_normalize(W[[_word_id(vocab, w) for w in words]])
    return words[int(np.argmin(X @ X.mean(axis=0)))]


def _term_list(value, fn: str, name: str) -> list:
    """gensim's forms of positive / negative: None, one word, one vector [D], rows [n, D], or a list of terms."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if hasattr(value, "shape"):  # a numpy or jax array
        a = np.asarray(value)
        return list(a) if a.ndim == 2 else [a]
    if not isinstance(value, Iterable):
        raise ValueError(f"{fn}: {name} must be a word, a vector or a list of them, got {value!r:.60}")
    return list(value)


def _terms(W, norms, vocab, value, weight: float, fn: str, name: str, weighted: bool):
    """([(x_i, weight_i)], ids of the words): a word's x is its unit row, a vector is taken as given."""
    terms, ids = [], []
    for k, item in enumerate(_term_list(value, fn, name)):
        w = weight
        if weighted and isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], (int, float, np.number)):
            item, w = item[0], float(item[1])  # gensim: (term, weight), the weight replacing the +1 / -1
        if isinstance(item, str):
            i = _word_id(vocab, item)
            terms.append((W[i] / norms[i], w))
            ids.append(i)
            continue
        x = np.asarray(item)
        if x.shape != (W.shape[1],) or x.dtype.kind not in "fiu":
            got = f"shape {x.shape}" if x.dtype.kind in "fiu" else f"{item!r:.60}"
            pair = ", a (word or vector, weight) pair" if weighted else ""
            raise ValueError(f"{fn}: {name}[{k}] must be a word{pair} or a vector of shape [{W.shape[1]}], got {got}")
        terms.append((x.astype(np.float64), w))
    return terms, ids


def _top(scores: np.ndarray, banned: Iterable[int], topn: int) -> list[tuple[int, float]]:
    """[(id, score)] of the topn finite scores, banned ids left out, by score then id."""
    scores = np.array(scores, dtype=np.float64)
    scores[[i for i in banned if i < scores.shape[0]]] = -np.inf
    k = min(topn, int(np.isfinite(scores).sum()))
    if k == 0:
        return []
    idx = np.argpartition(-scores, k - 1)[:k]
    idx = idx[np.lexsort((idx, -scores[idx]))]  # by score, ties by id
    return [(int(i), float(scores[i])) for i in idx]


def _ranked(vocab, scores: np.ndarray, banned: Iterable[int], topn):
    """[(word, score)] of the topn best rows (banned ids left out), or all the scores when topn is None."""
    if topn is None:
        return scores
    return [(_words(vocab)[i], s) for i, s in _top(scores, banned, topn)]


# ----------------------------------------------------------------------------- analogies


def analogy(W, vocab, a: str, b: str, c: str, method: str = "3cosadd", topn: int = 1) -> list[tuple[str, float]]:
    """a:b :: c:? — the topn words d (a, b, c excluded) for king - man + woman: analogy(W, v, 'man', 'king', 'woman').

    3cosadd: argmax cos(d,b) - cos(d,a) + cos(d,c); 3cosmul: argmax cos'(d,b) cos'(d,c) / (cos'(d,a) + 1e-3),
    cos' = (cos + 1)/2. ``W`` need not be normalised.
    """
    fn = "analogy"
    W, vocab = _check_table(W, vocab, fn)
    method = _check_method(method, fn)
    topn = _check_topn(topn, fn)
    ids = [_word_id(vocab, w) for w in (a, b, c)]
    Wn = _np_normalize(W)
    scores = _analogy_scores(Wn, *(np.array([i]) for i in ids), method)[0]
    words = _words(vocab)
    return [(words[i], s) for i, s in _top(scores, ids, topn)]


def _analogy_scores(Wn: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray, method: str) -> np.ndarray:
    """Scores [Q, V] of every candidate d for questions a:b :: c:? (ids [Q]); rows of Wn are unit."""
    if method == "3cosadd":  # cos(d,b) - cos(d,a) + cos(d,c)
        return (Wn[b] - Wn[a] + Wn[c]) @ Wn.T
    # 3CosMul (Levy & Goldberg 2014): cos'(d,b) cos'(d,c) / (cos'(d,a) + 1e-3), cos' = (cos + 1) / 2
    cos = lambda i: (Wn[i] @ Wn.T + 1.0) / 2.0
    return cos(b) * cos(c) / (cos(a) + 1e-3)


def evaluate_analogies(
    W, vocab, sections, method: str = "3cosadd", restrict_vocab: int | None = None, chunk: int = 256
) -> dict:
    """Accuracy on analogy questions a:b :: c:d (correct when d is the top answer, a, b, c excluded).

    ``sections`` is [(name, [(a, b, c, d), ...]), ...] (``parse_questions_words``).
    Questions with a word outside the vocabulary (or outside its first
    ``restrict_vocab`` words, which are also the only candidates) are skipped.
    Returns {'sections': {name: accuracy or nan}, 'correct': int, 'total': int,
    'accuracy': float, 'skipped': int}.
    """
    outcomes = _analogy_outcomes(W, vocab, sections, method, restrict_vocab, False, chunk, "evaluate_analogies")
    per_section, correct, total, skipped = {}, 0, 0, 0
    for name, results in outcomes:
        hits = [h for _, h in results if h is not None]
        per_section[name] = sum(hits) / len(hits) if hits else float("nan")
        correct, total, skipped = correct + sum(hits), total + len(hits), skipped + len(results) - len(hits)
    return {
        "sections": per_section,
        "correct": correct,
        "total": total,
        "accuracy": correct / total if total else float("nan"),
        "skipped": skipped,
    }


def evaluate_word_analogies(
    W,
    vocab,
    sections,
    restrict_vocab: int | None = 300000,
    case_insensitive: bool = True,
    dummy4unknown: bool = False,
    chunk: int = 256,
) -> tuple[float, list[dict]]:
    """gensim's ``KeyedVectors.evaluate_word_analogies``: 3CosAdd accuracy over the first ``restrict_vocab`` words.

    ``sections`` as ``parse_questions_words(lines, lowercase=False)`` gives them. With ``case_insensitive`` words
    are compared upper-cased (a word's vector is its first row). A question with a word outside the first
    ``restrict_vocab`` words is skipped, or counted wrong with ``dummy4unknown``. Returns (score, sections):
    sections are {'section': name, 'correct': [(A, B, C, D)], 'incorrect': [...]}, the last one 'Total
    accuracy' with all questions, and score = its correct / (correct + incorrect) (0.0 when there are none).
    """
    fn = "evaluate_word_analogies"
    outcomes = _analogy_outcomes(W, vocab, sections, "3cosadd", restrict_vocab, case_insensitive, chunk, fn)
    results = []
    for name, answers in outcomes:
        correct = [q for q, h in answers if h]
        incorrect = [q for q, h in answers if h is False or (h is None and dummy4unknown)]
        results.append({"section": name, "correct": correct, "incorrect": incorrect})
    total = {
        "section": "Total accuracy",
        "correct": [q for s in results for q in s["correct"]],
        "incorrect": [q for s in results for q in s["incorrect"]],
    }
    answered = len(total["correct"]) + len(total["incorrect"])
    return (len(total["correct"]) / answered if answered else 0.0), [*results, total]


def _analogy_outcomes(W, vocab, sections, method, restrict_vocab, case_insensitive, chunk, fn):
    """[(name, [(question as looked up, True / False, or None when a word is not among the candidates)])]."""
    W, vocab = _check_table(W, vocab, fn)
    method = _check_method(method, fn)
    limit = _check_restrict(restrict_vocab, W.shape[0], fn)
    chunk = as_int(chunk, "chunk", fn, minimum=1)
    index, first = _key_index(vocab, limit, case_insensitive)
    parsed = []
    for item in sections:
        try:
            name, questions = item
        except (TypeError, ValueError):
            raise ValueError(f"{fn}: sections must be (name, [(a, b, c, d), ...]) tuples, got {item!r}") from None
        folded = []
        for q in questions:
            if len(q) != 4:
                raise ValueError(f"{fn}: section {name!r}: a question must be 4 words (a, b, c, d), got {q!r}")
            folded.append(tuple(w.upper() for w in q) if case_insensitive else tuple(q))
        parsed.append((name, folded))
    known = [q for _, qs in parsed for q in qs if all(w in index for w in q)]
    ids = np.array([[index[w] for w in q] for q in known], dtype=np.int64).reshape(-1, 4)
    hits = iter(_analogy_hits(_np_normalize(W[:limit]), first, ids, method, chunk).tolist())
    return [(name, [(q, next(hits) if all(w in index for w in q) else None) for q in qs]) for name, qs in parsed]


def _key_index(vocab, limit: int, case_insensitive: bool) -> tuple[dict[str, int], np.ndarray]:
    """gensim's lookup of test words: key (upper-cased if case_insensitive) -> its first row among the first
    ``limit``, and for each of those rows the first row of its key."""
    index: dict[str, int] = {}
    first = np.empty(limit, np.int64)
    for i, w in enumerate(_words(vocab)[:limit]):
        first[i] = index.setdefault(w.upper() if case_insensitive else w, i)
    return index, first


def _analogy_hits(Wn: np.ndarray, first: np.ndarray, q: np.ndarray, method: str, chunk: int) -> np.ndarray:
    """Per question a:b :: c:d (rows of q [Q, 4], first rows of their keys): is the best candidate of d's key?

    Candidates are the rows of Wn except those of a's, b's and c's keys.
    """
    hits = np.zeros(q.shape[0], bool)
    shared = np.flatnonzero(first != np.arange(first.shape[0]))  # rows whose key an earlier row has
    for s in range(0, q.shape[0], chunk):
        a, b, c, d = q[s : s + chunk].T
        scores = _analogy_scores(Wn, a, b, c, method)
        r = np.arange(a.shape[0])
        scores[r, a] = scores[r, b] = scores[r, c] = -np.inf
        if shared.size:
            of = first[shared][None, :]
            sub = scores[:, shared]
            sub[(of == a[:, None]) | (of == b[:, None]) | (of == c[:, None])] = -np.inf
            scores[:, shared] = sub
        hits[s : s + chunk] = first[np.argmax(scores, axis=1)] == d
    return hits


def parse_questions_words(
    lines: Iterable[str], lowercase: bool = True
) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """Google questions-words format: ': section' header lines, then 'a b c d' lines (blank lines ignored)."""
    sections: list[tuple[str, list]] = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(":"):
            sections.append((line[1:].strip(), []))
            continue
        words = line.lower().split() if lowercase else line.split()
        if len(words) != 4:
            raise ValueError(
                f"parse_questions_words: line {n} must hold 4 words 'a b c d' or a ': section' header, got {line!r}"
            )
        if not sections:
            raise ValueError(f"parse_questions_words: line {n} {line!r} comes before the first ': section' header")
        sections[-1][1].append(tuple(words))
    return sections


# ----------------------------------------------------------------------------- word similarity


def parse_wordsim(
    lines: Iterable[str], lowercase: bool = True, delimiter: str | None = None
) -> list[tuple[str, str, float]]:
    """WordSim-353 style 'word1<sep>word2<sep>score' lines -> [(w1, w2, score)].

    The separator is ``delimiter``, or by default a tab, a comma or spaces, whichever the line has. Blank lines
    and '#' comments are skipped, and so are header lines (a non-numeric score) before the first data line;
    after it, a malformed line is an error.
    """
    if delimiter is not None and (not isinstance(delimiter, str) or not delimiter):
        raise ValueError(f"parse_wordsim: delimiter must be a non-empty str or None, got {delimiter!r}")
    pairs: list[tuple[str, str, float]] = []
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = _split_wordsim(line, delimiter)
        score = None
        if len(fields) >= 3 and fields[0] and fields[1]:
            try:
                score = float(fields[2])
            except ValueError:
                score = None
        if score is None or not math.isfinite(score):
            if not pairs:
                continue  # header
            sep = repr(delimiter) if delimiter is not None else "tab, comma or space"
            raise ValueError(
                f"parse_wordsim: line {n} must be 'word1<sep>word2<sep>score' (sep: {sep}), got {raw.rstrip()!r}"
            )
        w1, w2 = (fields[0].lower(), fields[1].lower()) if lowercase else (fields[0], fields[1])
        pairs.append((w1, w2, score))
    return pairs


def _split_wordsim(line: str, delimiter: str | None) -> list[str]:
    """The fields of one line: split by ``delimiter``, else by the first of a tab or a comma it has, else by spaces."""
    if delimiter is not None:
        return [f.strip() for f in line.split(delimiter)]
    for sep in ("\t", ","):
        if sep in line:
            return [f.strip() for f in line.split(sep)]
    return line.split()


def evaluate_wordsim(W, vocab, pairs) -> dict:
    """Spearman rank correlation between cosine(w1, w2) and the human scores of ``pairs`` [(w1, w2, score)].

    Pairs with an out-of-vocabulary word are skipped. Returns {'spearman', 'pvalue', 'evaluated', 'skipped'}.
    """
    from scipy.stats import spearmanr

    scored = _pair_cosines(W, vocab, pairs, None, False, "evaluate_wordsim")
    known = [(cos, score) for cos, score in scored if cos is not None]
    if len(known) < 2:
        rho, pvalue = float("nan"), float("nan")
    else:
        res = spearmanr(*zip(*known))
        rho, pvalue = float(res.statistic), float(res.pvalue)
    return {"spearman": rho, "pvalue": pvalue, "evaluated": len(known), "skipped": len(scored) - len(known)}


def evaluate_word_pairs(
    W, vocab, pairs, restrict_vocab: int | None = 300000, case_insensitive: bool = True, dummy4unknown: bool = False
):
    """gensim's ``KeyedVectors.evaluate_word_pairs``: Pearson and Spearman correlation of cos(w1, w2) with the scores.

    ``pairs`` as ``parse_wordsim(lines, lowercase=False, delimiter='\\t')`` gives them; words are compared
    upper-cased with ``case_insensitive``. A pair with a word outside the first ``restrict_vocab`` words is
    skipped, or given cosine 0 with ``dummy4unknown``. Returns (pearson, spearman, oov_ratio): scipy's
    ``pearsonr`` and ``spearmanr`` results ((statistic, pvalue)) and the percentage of such pairs (of all
    pairs; with ``dummy4unknown``, of the evaluated ones).
    """
    from scipy.stats import pearsonr, spearmanr

    fn = "evaluate_word_pairs"
    scored = _pair_cosines(W, vocab, pairs, restrict_vocab, case_insensitive, fn)
    oov = sum(cos is None for cos, _ in scored)
    used = [(0.0 if cos is None else cos, score) for cos, score in scored if cos is not None or dummy4unknown]
    if len(used) < 2:
        raise ValueError(
            f"{fn}: {len(used)} pair(s) to correlate ({oov} of {len(scored)} with a word outside the first "
            f"restrict_vocab={restrict_vocab} words): a correlation needs at least 2"
        )
    model, gold = (np.array(v) for v in zip(*used))
    oov_ratio = 100.0 * oov / (len(used) if dummy4unknown else len(scored))
    return pearsonr(gold, model), spearmanr(gold, model), oov_ratio


def _pair_cosines(W, vocab, pairs, restrict_vocab, case_insensitive: bool, fn: str):
    """[(cos(w1, w2) or None when a word is not among the first restrict_vocab, score)] of (w1, w2, score) pairs."""
    W, vocab = _check_table(W, vocab, fn)
    limit = _check_restrict(restrict_vocab, W.shape[0], fn)
    index, _ = _key_index(vocab, limit, case_insensitive)
    Wn = _np_normalize(W[:limit])
    out = []
    for p in pairs:
        if len(p) != 3:
            raise ValueError(f"{fn}: pairs must be (word1, word2, score) triples, got {p!r}")
        w1, w2, score = p
        i, j = (index.get(w.upper() if case_insensitive else w) for w in (w1, w2))
        out.append((None if i is None or j is None else float(Wn[i] @ Wn[j]), float(score)))
    return out
