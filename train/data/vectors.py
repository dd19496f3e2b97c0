"""Word vectors on disk: the word2vec text and binary formats, the TensorBoard projector's TSV files, and
``WordVectors``, gensim's ``KeyedVectors`` API over ``zoo.word_vectors``'s similarity functions.

Both word2vec formats start with a header line "V D\\n". In the text format each of
the V lines is the word and D numbers separated by spaces. In the binary format
(word2vec.c's ``-binary 1``, read by gensim's ``KeyedVectors.load_word2vec_format``
with ``binary=True``) each entry is the UTF-8 word, a space, then D float32
little-endian values, optionally followed by "\\n" (word2vec.c writes it, gensim
does not; both readers accept either).

FastText's runs also write ``subwords.npz`` (``save_subwords``: the words' own rows, the n-gram table and
minn / maxn); ``load_subword_vectors(workdir)`` reads it with vectors.bin into ``SubwordVectors``, whose
``kv[word]`` is any word's vector, an unseen one's from its n-grams (zoo.fasttext), as gensim's FastText.

Loaders return (words, W) with W a float32 numpy array [V, D]. A missing file
raises ``MissingVectorFileError`` (a ValueError and a FileNotFoundError); a
malformed one raises ``VectorFileError`` (a ValueError) naming the path and the
line (text) or the entry and byte offset (binary).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable, Sequence

import jax
import numpy as np

from train.core import files
from zoo import fasttext, word_vectors
from zoo.text import Vocab

__all__ = [
    "VectorFileError",
    "MissingVectorFileError",
    "save_word2vec_text",
    "load_word2vec_text",
    "save_word2vec_binary",
    "load_word2vec_binary",
    "save_projector_tsv",
    "WordVectors",
    "SubwordVectors",
    "save_subwords",
    "save_subwords_of_table",
    "load_subword_vectors",
]


class VectorFileError(ValueError):
    """A vector (or evaluation) file that cannot be read; the message names the path and where it went wrong."""


class MissingVectorFileError(VectorFileError, FileNotFoundError):
    """The vector file does not exist."""


# ----------------------------------------------------------------------------- validation


FINITE_CHECK_ROWS = 65536


def _check_vectors(words, W, fn: str, forbidden: str) -> tuple[list[str], np.ndarray]:
    if isinstance(words, str):
        raise ValueError(f"{fn}: words must be a sequence of str, got a single str")
    words = list(words)
    W = np.asarray(W)
    if W.ndim != 2 or not (np.issubdtype(W.dtype, np.floating) or np.issubdtype(W.dtype, np.integer)):
        raise ValueError(f"{fn}: W must be a numeric 2-D array [V, D], got dtype {W.dtype} shape {W.shape}")
    if W.shape[0] != len(words):
        raise ValueError(f"{fn}: W has {W.shape[0]} rows but there are {len(words)} words")
    for start in range(0, W.shape[0], FINITE_CHECK_ROWS):  # in blocks: no table-sized mask
        finite = np.isfinite(W[start : start + FINITE_CHECK_ROWS]).all(axis=1)
        if not finite.all():
            raise ValueError(f"{fn}: W must be finite, got a NaN or inf in row {start + int(np.argmin(finite))}")
    for i, w in enumerate(words):
        if not isinstance(w, str) or not w or any(ch in w for ch in forbidden):
            without = f" without {forbidden!r}" if forbidden else ""
            raise ValueError(f"{fn}: word {i} must be a non-empty str{without}, got {w!r}")
    return words, W.astype(np.float32, copy=False)


def _read_bytes(path, fn: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise MissingVectorFileError(f"{fn}: no such file {os.fspath(path)!r}") from None
    except IsADirectoryError:
        raise VectorFileError(f"{fn}: {os.fspath(path)!r} is a directory, expected a word2vec file") from None


def _parse_header(line: bytes, path, fn: str) -> tuple[int, int]:
    parts = line.split()
    try:
        if len(parts) != 2:
            raise ValueError
        vocab_size, dim = int(parts[0]), int(parts[1])
        if vocab_size < 0 or dim < 1:
            raise ValueError
    except ValueError:
        raise VectorFileError(
            f"{fn}: {os.fspath(path)!r} line 1: expected the header 'V D' (two integers, D >= 1), got {line[:80]!r}"
        ) from None
    return vocab_size, dim


def _table(vocab_size: int, dim: int, room: int, per_entry: int) -> np.ndarray:
    """The float32 [V, D] table the entries are read into, with no more rows than the `room` bytes after the header
    can hold (each entry takes at least per_entry bytes): a damaged header claiming terabytes allocates nothing
    beyond the file, and the reader then says where the file ends."""
    return np.empty((min(vocab_size, room // per_entry), dim), np.float32)


# ----------------------------------------------------------------------------- text format


def save_word2vec_text(path, words: Sequence[str], W, precision: int = 9) -> None:
    """Write 'V D' then one 'word x1 ... xD' line per word; 9 significant digits round-trip float32 exactly."""
    fn = "save_word2vec_text"
    words, W = _check_vectors(words, W, fn, " \t\n\r")
    if not isinstance(precision, int) or precision < 1:
        raise ValueError(f"{fn}: precision must be a positive int (significant digits), got {precision!r}")
    fmt = f"%.{precision}g"
    with files.atomic_write(path, "w", encoding="utf-8") as f:
        f.write(f"{W.shape[0]} {W.shape[1]}\n")
        for w, row in zip(words, W):
            f.write(w + " " + " ".join(fmt % x for x in row.tolist()) + "\n")


def load_word2vec_text(path) -> tuple[list[str], np.ndarray]:
    """Read the word2vec text format -> (words, float32 [V, D])."""
    fn = "load_word2vec_text"
    data = _read_bytes(path, fn)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise VectorFileError(
            f"{fn}: {os.fspath(path)!r} line {line}: not UTF-8 text (a binary file? use load_word2vec_binary)"
        ) from None
    lines = text.split("\n")
    vocab_size, dim = _parse_header(lines[0].encode("utf-8"), path, fn)
    words: list[str] = []
    W = _table(vocab_size, dim, len(data) - len(lines[0]), 2 * dim + 1)  # a word, then dim numbers after spaces
    n = 1
    for n, line in enumerate(lines[1:], 2):
        parts = line.rstrip("\r").rstrip(" ").split(" ")
        if parts == [""]:
            continue
        if len(words) == vocab_size:
            raise VectorFileError(
                f"{fn}: {os.fspath(path)!r} line {n}: more entries than the {vocab_size} in the header"
            )
        if len(parts) != dim + 1:
            raise VectorFileError(
                f"{fn}: {os.fspath(path)!r} line {n}: expected a word and {dim} numbers, got {len(parts)} fields"
            )
        try:
            W[len(words)] = [float(x) for x in parts[1:]]
        except ValueError:
            raise VectorFileError(
                f"{fn}: {os.fspath(path)!r} line {n}: expected {dim} numbers after the word "
                f"{parts[0]!r}, got {line[:80]!r}"
            ) from None
        words.append(parts[0])
    if len(words) != vocab_size:
        raise VectorFileError(
            f"{fn}: {os.fspath(path)!r} line {n}: file ends after {len(words)} of the "
            f"{vocab_size} entries in the header"
        )
    return words, W


# ----------------------------------------------------------------------------- binary format


def save_word2vec_binary(path, words: Sequence[str], W, newline: bool = True) -> None:
    """Write 'V D\\n' then per word: UTF-8 word, ' ', D float32 little-endian (+ '\\n' as word2vec.c does)."""
    fn = "save_word2vec_binary"
    words, W = _check_vectors(words, W, fn, " \n")
    W = W.astype("<f4", copy=False)  # a float32 table as it is: no copy of a 359 MB table
    end = b"\n" if newline else b""
    with files.atomic_write(path) as f:
        f.write(f"{W.shape[0]} {W.shape[1]}\n".encode("ascii"))
        for w, row in zip(words, W):
            f.write(w.encode("utf-8") + b" " + row.tobytes() + end)


def load_word2vec_binary(path) -> tuple[list[str], np.ndarray]:
    """Read the word2vec binary format -> (words, float32 [V, D]); a '\\n' after each vector is optional."""
    fn = "load_word2vec_binary"
    data = _read_bytes(path, fn)
    eol = data.find(b"\n")
    if eol < 0:
        raise VectorFileError(f"{fn}: {os.fspath(path)!r} line 1: no header line 'V D' (file of {len(data)} bytes)")
    vocab_size, dim = _parse_header(data[:eol], path, fn)
    nbytes = 4 * dim
    words: list[str] = []
    W = _table(vocab_size, dim, len(data) - eol - 1, nbytes + 2)  # a word, a space, dim float32
    pos = eol + 1
    for i in range(vocab_size):
        while pos < len(data) and data[pos : pos + 1] == b"\n":
            pos += 1
        sp = data.find(b" ", pos, pos + 10_000)
        if sp < 0:
            raise VectorFileError(
                f"{fn}: {os.fspath(path)!r} entry {i + 1} of {vocab_size} (byte {pos}): "
                f"expected 'word ' followed by {dim} float32, "
                f"{'file ends' if pos >= len(data) else 'no space after the word'}"
            )
        raw = data[pos:sp]
        if b"\n" in raw or not raw:
            raise VectorFileError(
                f"{fn}: {os.fspath(path)!r} entry {i + 1} of {vocab_size} (byte {pos}): "
                f"malformed word {raw[:40]!r} (a text file? use load_word2vec_text)"
            )
        try:
            word = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise VectorFileError(
                f"{fn}: {os.fspath(path)!r} entry {i + 1} of {vocab_size} (byte {pos}): word {raw[:40]!r} is not UTF-8"
            ) from None
        if sp + 1 + nbytes > len(data):
            raise VectorFileError(
                f"{fn}: {os.fspath(path)!r} entry {i + 1} of {vocab_size} (byte {pos}): "
                f"file ends inside the vector of {word!r} ({len(data) - sp - 1} of {nbytes} bytes)"
            )
        W[i] = np.frombuffer(data, "<f4", dim, sp + 1)
        words.append(word)
        pos = sp + 1 + nbytes
    if data[pos:].strip(b"\n"):
        raise VectorFileError(
            f"{fn}: {os.fspath(path)!r} byte {pos}: {len(data) - pos} bytes after the "
            f"{vocab_size} entries in the header"
        )
    return words, W


# ----------------------------------------------------------------------------- TensorBoard projector


def save_projector_tsv(directory, words: Sequence[str], W, tensor_name: str = "word2vec") -> tuple[str, str]:
    """Write vectors.tsv (tab-separated rows) and metadata.tsv (one word a line) for projector.tensorflow.org.

    Also writes projector_config.pbtxt pointing at them, so TensorBoard's projector
    tab finds them with ``--logdir directory``. Returns (vectors path, metadata path).
    """
    fn = "save_projector_tsv"
    words, W = _check_vectors(words, W, fn, "\t\n\r")
    os.makedirs(directory, exist_ok=True)
    vec_path = os.path.join(directory, "vectors.tsv")
    meta_path = os.path.join(directory, "metadata.tsv")
    with files.atomic_write(vec_path, "w", encoding="utf-8") as f:
        for row in W.tolist():
            f.write("\t".join(f"{x:.9g}" for x in row) + "\n")
    with files.atomic_write(meta_path, "w", encoding="utf-8") as f:
        f.writelines(w + "\n" for w in words)
    with files.atomic_write(os.path.join(directory, "projector_config.pbtxt"), "w", encoding="utf-8") as f:
        f.write(
            f'embeddings {{\n  tensor_name: "{tensor_name}"\n  tensor_path: "vectors.tsv"\n'
            f'  metadata_path: "metadata.tsv"\n}}\n'
        )
    return vec_path, meta_path


# ----------------------------------------------------------------------------- gensim's KeyedVectors API


def _read_lines(path_or_lines, fn: str) -> tuple[list[str], str]:
    """(lines, where): a file's lines and "'path': " to put before errors, or the given lines and ''."""
    if isinstance(path_or_lines, (str, os.PathLike)):
        data = _read_bytes(path_or_lines, fn)
        try:
            return data.decode("utf-8").splitlines(), f"{os.fspath(path_or_lines)!r}: "
        except UnicodeDecodeError as e:
            line = data[: e.start].count(b"\n") + 1
            raise VectorFileError(f"{fn}: {os.fspath(path_or_lines)!r} line {line}: not UTF-8 text") from None
    if isinstance(path_or_lines, Iterable):
        return list(path_or_lines), ""
    raise ValueError(f"{fn}: expected a path or an iterable of lines, got {type(path_or_lines).__name__}")


def _parsed(parse, lines: list[str], where: str, **kwargs):
    """parse(lines), its ValueError (which names the line) prefixed with the file's name."""
    try:
        return parse(lines, lowercase=False, **kwargs)
    except ValueError as e:
        raise ValueError(f"{where}{e}") from None


class WordVectors:
    """Words and their vectors [V, D] with the names and conventions of gensim's ``KeyedVectors``.

    ``index_to_key`` (the words), ``key_to_index``, ``vectors`` (float32 [V, D], rows as given, not normalised),
    ``kv[word]``, ``word in kv``, ``get_vector``; ``most_similar``, ``most_similar_cosmul``, ``similarity``,
    ``doesnt_match``, ``evaluate_word_analogies``, ``evaluate_word_pairs`` (the pure functions of
    ``zoo.word2vec``, which give gensim's results); ``load_word2vec_format`` / ``save_word2vec_format``.
    Where gensim 4.4 is silent this is not: an unknown word (which gensim's doesnt_match drops), a malformed
    line of an evaluation file (which gensim skips) and topn < 1 (gensim: []) are ValueErrors naming them.
    """

    def __init__(self, words: Sequence[str], vectors):
        words, self.vectors = _check_vectors(words, vectors, "WordVectors", "")
        try:
            self._vocab = Vocab(words)
        except ValueError as e:
            raise ValueError(f"WordVectors: {e}") from None

    @property
    def index_to_key(self) -> list[str]:
        return self._vocab.words

    @property
    def key_to_index(self) -> dict[str, int]:
        return self._vocab.word_to_id

    @property
    def vector_size(self) -> int:
        return self.vectors.shape[1]

    def __len__(self) -> int:
        return len(self._vocab)

    def __contains__(self, key) -> bool:
        return key in self._vocab

    def __repr__(self) -> str:
        return f"WordVectors({len(self)} words x {self.vector_size}: {', '.join(self.index_to_key[:5])}, ...)"

    def __getitem__(self, key_or_keys) -> np.ndarray:
        """The vector [D] of a word, or the vectors [n, D] of a list of words."""
        if isinstance(key_or_keys, str):
            return self.get_vector(key_or_keys)
        return np.array([self.get_vector(k) for k in key_or_keys], np.float32).reshape(-1, self.vector_size)

    def get_index(self, key: str) -> int:
        return self._vocab.id(key)

    def get_vector(self, key: str, norm: bool = False) -> np.ndarray:
        """The word's row (read-only, as gensim's), or row / ||row|| with ``norm``."""
        row = self.vectors[self._vocab.id(key)]
        if norm:
            return row / max(float(np.linalg.norm(row)), 1e-12)
        row.flags.writeable = False  # a view: writing to it would change the table under its users
        return row

    def most_similar(self, positive=None, negative=None, topn=10, restrict_vocab=None):
        """[(word, cos)] nearest to the positive minus the negative terms (``zoo.word_vectors.most_similar``)."""
        return word_vectors.most_similar(
            self.vectors, self._vocab, positive, negative, topn, restrict_vocab=restrict_vocab
        )

    def most_similar_cosmul(self, positive=None, negative=None, topn=10, restrict_vocab=None):
        """[(word, 3CosMul score)] (``zoo.word_vectors.most_similar_cosmul``)."""
        return word_vectors.most_similar_cosmul(
            self.vectors, self._vocab, positive, negative, topn, restrict_vocab=restrict_vocab
        )

    def similarity(self, w1: str, w2: str) -> float:
        """cos(w1, w2)."""
        return word_vectors.similarity(self.vectors, self._vocab, w1, w2)

    def doesnt_match(self, words: Sequence[str]) -> str:
        """The word farthest from the mean of the words' unit vectors."""
        return word_vectors.doesnt_match(self.vectors, self._vocab, words)

    def evaluate_word_analogies(self, analogies, restrict_vocab=300000, case_insensitive=True, dummy4unknown=False):
        """(score, sections) on a questions-words file or its lines (``zoo.word_vectors.evaluate_word_analogies``)."""
        lines, where = _read_lines(analogies, "WordVectors.evaluate_word_analogies")
        sections = _parsed(word_vectors.parse_questions_words, lines, where)
        return word_vectors.evaluate_word_analogies(
            self.vectors, self._vocab, sections, restrict_vocab, case_insensitive, dummy4unknown
        )

    def evaluate_word_pairs(
        self, pairs, delimiter="\t", restrict_vocab=300000, case_insensitive=True, dummy4unknown=False
    ):
        """(pearson, spearman, oov_ratio) on a 'word1<delimiter>word2<delimiter>score' file or its lines."""
        lines, where = _read_lines(pairs, "WordVectors.evaluate_word_pairs")
        triples = _parsed(word_vectors.parse_wordsim, lines, where, delimiter=delimiter)
        return word_vectors.evaluate_word_pairs(
            self.vectors, self._vocab, triples, restrict_vocab, case_insensitive, dummy4unknown
        )

    def save_word2vec_format(self, fname, binary: bool = False) -> None:
        """Write the word2vec text format, or the binary one (``save_word2vec_text`` / ``save_word2vec_binary``)."""
        (save_word2vec_binary if binary else save_word2vec_text)(fname, self.index_to_key, self.vectors)

    @classmethod
    def load_word2vec_format(cls, fname, binary: bool = False) -> WordVectors:
        """Read the word2vec text format, or the binary one; a file that gensim or word2vec.c wrote."""
        words, W = (load_word2vec_binary if binary else load_word2vec_text)(fname)
        try:
            return cls(words, W)
        except ValueError as e:
            raise VectorFileError(f"load_word2vec_format: {os.fspath(fname)!r}: {e}") from None


def export_vectors(workdir: str, vocab, W) -> None:
    """vectors.txt / vectors.bin (word2vec formats, gensim-loadable), projector/ TSVs and vocab.txt."""
    save_word2vec_text(os.path.join(workdir, "vectors.txt"), vocab.words, W)
    save_word2vec_binary(os.path.join(workdir, "vectors.bin"), vocab.words, W)
    save_projector_tsv(os.path.join(workdir, "projector"), vocab.words, W)
    with files.atomic_write(os.path.join(workdir, "vocab.txt"), "w", encoding="utf-8") as f:
        f.writelines(f"{w} {n}\n" for w, n in zip(vocab.words, vocab.counts.tolist()))


# ----------------------------------------------------------------------------- FastText's subwords


SUBWORDS_FILE = "subwords.npz"


def save_subwords(directory: str, vectors_vocab, vectors_ngrams, minn: int, maxn: int) -> str:
    """directory/subwords.npz: the words' own rows [V, D] and the n-gram table [bucket, D] (gensim's
    vectors_vocab and vectors_ngrams) with minn and maxn; the path."""
    path = os.path.join(directory, SUBWORDS_FILE)
    files.save_npz(
        path,
        vectors_vocab=np.asarray(vectors_vocab, np.float32),
        vectors_ngrams=np.asarray(vectors_ngrams, np.float32),
        minn=np.int64(minn),
        maxn=np.int64(maxn),
    )
    return path


# Rows of the table save_subwords_of_table brings to the host at a time: 2^22 floats, 16 MiB.
SAVE_BLOCK_FLOATS = 1 << 22


def _host_rows(table, start: int, n: int) -> np.ndarray:
    """table[start : start + n] on the host: a view of a host table, a copy of a device table's rows only (the
    slice's start a traced operand, so each block size compiles once)."""
    if isinstance(table, np.ndarray):
        return table[start : start + n]
    return np.asarray(jax.lax.dynamic_slice(table, (start, 0), (n, table.shape[1])))


def save_subwords_of_table(directory: str, table, vocab_size: int, minn: int, maxn: int) -> str:
    """``save_subwords`` of a trained 'in' table [V + bucket, D] (the words' rows, then the buckets'): the same
    subwords.npz (the same members and arrays, as np.load reads them), its float32 rows streamed into the file a
    block at a time, so that neither the table nor its two parts are copied whole (on an accelerator
    jax.device_get would bring the whole table to the host); the path."""
    path = os.path.join(directory, SUBWORDS_FILE)
    rows, dim = table.shape
    block = max(1, SAVE_BLOCK_FLOATS // dim)
    parts = {"vectors_vocab": (0, vocab_size), "vectors_ngrams": (vocab_size, rows)}
    with files.atomic_write(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, (first, end) in parts.items():  # np.savez's members: name.npy, each a .npy file
            with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                header = {"descr": np.dtype("<f4").str, "fortran_order": False, "shape": (end - first, dim)}
                np.lib.format.write_array_header_1_0(member, header)
                for start in range(first, end, block):
                    member.write(np.asarray(_host_rows(table, start, min(block, end - start)), "<f4").tobytes())
        for name, value in (("minn", minn), ("maxn", maxn)):
            with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(np.int64(value)))
    return path


class SubwordVectors(WordVectors):
    """``WordVectors`` of a FastText run that give every word a vector, as gensim's ``FastTextKeyedVectors``:
    a word of the vocabulary its row of ``vectors`` (its own and its n-grams' rows averaged), an unseen one
    the mean of its n-grams' rows (``zoo.fasttext.unseen_word_vector``; the zero vector when it has none).
    ``word in kv`` stays "in the vocabulary"."""

    def __init__(self, words: Sequence[str], vectors, vectors_ngrams, minn: int, maxn: int):
        super().__init__(words, vectors)
        self.vectors_ngrams = np.asarray(vectors_ngrams, np.float32)
        if self.vectors_ngrams.ndim != 2 or self.vectors_ngrams.shape[1] != self.vector_size:
            raise ValueError(
                f"SubwordVectors: vectors_ngrams must be [bucket, D={self.vector_size}], "
                f"got {self.vectors_ngrams.shape}"
            )
        self.min_n, self.max_n, self.bucket = int(minn), int(maxn), self.vectors_ngrams.shape[0]

    def get_vector(self, key: str, norm: bool = False) -> np.ndarray:
        """The word's row, or for an unseen word the mean of its n-gram rows; / ||.|| with ``norm``."""
        if key in self:
            return super().get_vector(key, norm)
        ids, _ = fasttext.ngram_buckets([key], self.min_n, self.max_n, self.bucket)
        row = np.asarray(fasttext.unseen_word_vector(self.vectors_ngrams, ids))
        return row / max(float(np.linalg.norm(row)), 1e-12) if norm else row


def load_subword_vectors(directory: str) -> SubwordVectors:
    """A FastText run's SubwordVectors from its directory's vectors.bin and subwords.npz."""
    words, W = load_word2vec_binary(os.path.join(directory, "vectors.bin"))
    path = os.path.join(directory, SUBWORDS_FILE)
    if not os.path.exists(path):
        raise MissingVectorFileError(
            f"load_subword_vectors: no {SUBWORDS_FILE} in {os.fspath(directory)!r} (a FastText run writes it)"
        )
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as f:
            ngrams, minn, maxn = f["vectors_ngrams"], int(f["minn"]), int(f["maxn"])
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise VectorFileError(f"load_subword_vectors: {path!r} cannot be read: {type(e).__name__}: {e}") from None
    try:
        return SubwordVectors(words, W, ngrams, minn, maxn)
    except ValueError as e:
        raise VectorFileError(f"load_subword_vectors: {path!r}: {e}") from None
