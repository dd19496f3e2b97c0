"""ARPA n-gram files, the format KenLM and SRILM read: ``save_arpa(path_or_file, model)`` writes a zoo
Kneser-Ney model, ``load_arpa(path_or_file)`` reads any ARPA file back as a ``zoo.ngram.BackoffLM``.

The layout (the n-grams of each order on lines "log10 P<TAB>w_1 .. w_k<TAB>log10 backoff"; no backoff column
at the highest order):

    \\data\\
    ngram 1=V
    ngram 2=m_2
    ...
    \\1-grams:
    -1.2345   </s>   0
    -99       <s>    -0.3010
    ...
    \\2-grams:
    ...
    \\end\\

An interpolated model is written as KenLM writes its interpolated models: each listed n-gram carries the
interpolated probability and each context the weight of the lower order, so P(w | h) = P(h, w) if listed, else
bow(h) P(w | h') gives the model's probabilities (``zoo.ngram.backoff_tables``). Numbers are written with
Python's shortest round-trip repr, so a file read back scores exactly as its model. ``<s>`` is listed with
log10 P = -99 (never predicted, SRILM's convention), ``</s>`` and ``<unk>`` as words. A file without ``<unk>``
gets it with log10 P = -100, as KenLM does; one without ``</s>`` is refused.

A missing file raises ``MissingArpaFileError`` (a ValueError and a FileNotFoundError); a malformed one
``ArpaFileError`` (a ValueError) naming the file and the line.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable, Iterator

import numpy as np

from train.core import files
from zoo import ngram
from zoo.text import Vocab

__all__ = ["ArpaFileError", "MissingArpaFileError", "arpa_lines", "save_arpa", "parse_arpa", "load_arpa"]

UNK_LOG10_PROB = -100.0  # what KenLM gives <unk> when a file lacks it


class ArpaFileError(ValueError):
    """An ARPA file that cannot be read; the message names the file and the line."""


class MissingArpaFileError(ArpaFileError, FileNotFoundError):
    """The ARPA file does not exist."""


# ----------------------------------------------------------------------------- writing


def arpa_lines(model) -> Iterator[str]:
    """The lines (without line ends) of the ARPA file of a KneserNeyLM or ModifiedKneserNeyLM."""
    tables = ngram.backoff_tables(model)
    words = model.vocab.words
    for w in words:
        if not w or any(ch.isspace() for ch in w):
            raise ValueError(f"save_arpa: ARPA separates words by white space; the vocabulary holds {w!r}")
    yield "\\data\\"
    yield from (f"ngram {k}={len(g)}" for k, (g, _, _) in enumerate(tables, start=1))
    names = np.array(words, dtype=object)
    for k, (grams, logp, logbow) in enumerate(tables, start=1):
        yield ""
        yield f"\\{k}-grams:"
        text = [" ".join(row) for row in names[grams].tolist()]
        if k < len(tables):
            yield from (f"{p!r}\t{t}\t{b!r}" for p, t, b in zip(logp.tolist(), text, logbow.tolist()))
        else:
            yield from (f"{p!r}\t{t}" for p, t in zip(logp.tolist(), text))
    yield ""
    yield "\\end\\"


def save_arpa(path_or_file, model) -> None:
    """Write model (a zoo Kneser-Ney model) as an ARPA file: a path (written atomically) or an open text file."""
    if hasattr(path_or_file, "write"):
        path_or_file.writelines(line + "\n" for line in arpa_lines(model))
        return
    with files.atomic_write(os.fspath(path_or_file), "w", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in arpa_lines(model))


# ----------------------------------------------------------------------------- reading


def _entry(line: str, k: int, top: int, where: str) -> tuple[float, list[str], float]:
    """(log10 P, the k words, log10 backoff) of one n-gram line of order k."""
    parts = line.split()
    if len(parts) not in ((k + 1, k + 2) if k < top else (k + 1,)):
        raise ArpaFileError(
            f"{where}: a {k}-gram line must be 'log10 P<TAB>{k} words'{'[<TAB>log10 backoff]' if k < top else ''}, "
            f"got {line.strip()!r}"
        )
    try:
        logp = float(parts[0])
        logbow = float(parts[k + 1]) if len(parts) == k + 2 else 0.0
    except ValueError:
        raise ArpaFileError(f"{where}: not a number in {line.strip()!r}") from None
    if np.isnan(logp) or not np.isfinite(logbow) or logp > 0:
        raise ArpaFileError(f"{where}: log10 P must be <= 0 and the backoff finite, got {line.strip()!r}")
    return logp, parts[1 : k + 1], logbow


def _sections(lines: Iterable[str], name: str) -> tuple[dict[int, int], dict[int, list]]:
    """The header's counts and each order's (line number, line) entries, checked for layout."""
    declared, sections, order, state = {}, {}, 0, "preamble"
    for number, raw in enumerate(lines, start=1):
        line, where = raw.strip(), f"{name}, line {number}"
        if state == "preamble":
            state = "data" if line == "\\data\\" else state
        elif line == "\\end\\":
            state = "end"
            break
        elif line.startswith("\\") and line.endswith("-grams:"):
            order += 1
            if line != f"\\{order}-grams:" or order not in declared:
                raise ArpaFileError(f"{where}: expected \\{order}-grams: (declared: {sorted(declared)}), got {line!r}")
            state, sections[order] = "grams", []
        elif state == "data" and line:
            key, _, value = line.partition("=")
            if not key.startswith("ngram ") or not key[6:].strip().isdigit() or not value.strip().isdigit():
                raise ArpaFileError(f"{where}: expected 'ngram N=count' in the \\data\\ header, got {line!r}")
            declared[int(key[6:])] = int(value)
        elif state == "grams" and line:
            sections[order].append((number, raw))
    if state != "end":
        what = "no \\data\\ line" if state == "preamble" else "no \\end\\ line (truncated?)"
        raise ArpaFileError(f"{name}: not an ARPA file: {what}")
    if sorted(declared) != list(range(1, len(declared) + 1)) or sorted(sections) != sorted(declared):
        raise ArpaFileError(
            f"{name}: the header declares orders {sorted(declared)} but the file has {sorted(sections)}"
        )
    for k, m in declared.items():
        if len(sections[k]) != m:
            raise ArpaFileError(f"{name}: the header declares {m} {k}-grams but the file lists {len(sections[k])}")
    return declared, sections


def parse_arpa(lines: Iterable[str], name: str = "<lines>", lower: bool | None = None) -> ngram.BackoffLM:
    """The BackoffLM of an ARPA file's lines. ``lower``: whether the model lowercases lines it scores (None:
    when every word is lowercase)."""
    declared, sections = _sections(lines, name)
    top = len(declared)
    unigrams = {}
    for number, raw in sections[1]:
        logp, (w,), logbow = _entry(raw, 1, top, f"{name}, line {number}")
        if w in unigrams:
            raise ArpaFileError(f"{name}, line {number}: the unigram {w!r} is listed twice")
        unigrams[w] = (logp, logbow)
    if ngram.EOS not in unigrams:
        raise ArpaFileError(f"{name}: no {ngram.EOS} unigram; an ARPA file must list {ngram.EOS}")
    unigrams.setdefault(ngram.BOS, (-99.0, 0.0))
    unigrams.setdefault(ngram.UNK, (UNK_LOG10_PROB, 0.0))
    specials = [ngram.BOS, ngram.EOS, ngram.UNK]
    words = specials + [w for w in unigrams if w not in specials]
    if lower is None:
        lower = all(w == w.lower() for w in words)
    vocab = Vocab(words, unk=ngram.UNK, lower=lower)
    ids = vocab.word_to_id
    tables = [(np.arange(len(words))[:, None], *map(np.array, zip(*(unigrams[w] for w in words))))]
    for k in range(2, top + 1):
        grams, logps, logbows = np.zeros((len(sections[k]), k), np.int64), [], []
        for r, (number, raw) in enumerate(sections[k]):
            logp, ws, logbow = _entry(raw, k, top, f"{name}, line {number}")
            try:
                grams[r] = [ids[w] for w in ws]
            except KeyError as e:
                raise ArpaFileError(f"{name}, line {number}: the word {e.args[0]!r} has no unigram") from None
            logps.append(logp)
            logbows.append(logbow)
        tables.append((grams, np.array(logps), np.array(logbows)))
    try:
        return ngram.BackoffLM(vocab, tables)
    except ValueError as e:
        raise ArpaFileError(f"{name}: {e}") from None


def load_arpa(path_or_file, lower: bool | None = None) -> ngram.BackoffLM:
    """The model an ARPA file holds (a path, .gz read as gzip, or an open text file) as a zoo.ngram.BackoffLM."""
    if hasattr(path_or_file, "read"):
        return parse_arpa(path_or_file, getattr(path_or_file, "name", "<file>"), lower)
    path = os.fspath(path_or_file)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            return parse_arpa(f, path, lower)
    except FileNotFoundError:
        raise MissingArpaFileError(f"{path}: no such ARPA file") from None
    except (UnicodeDecodeError, OSError, EOFError) as e:
        raise ArpaFileError(f"{path}: cannot be read as a UTF-8 ARPA file ({e})") from None
