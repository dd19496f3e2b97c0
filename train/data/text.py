"""Text corpora of the word models (word2vec, n-grams, co-occurrence SVD): one place that resolves `corpus`.

`corpus` values every word module accepts:
  generated     the synthetic English-like corpus of train/data/corpus.py with planted relations
                (king/queen, france/paris, cat/cats, big/bigger), `num_tokens` tokens, always seed 0
  zipf          a realistic vocabulary: `num_tokens` tokens, 90% of them drawn from a Zipf-distributed lexicon
                of 100k words, 10% in the planted sentences (train/data/corpus.py generate_zipf_corpus), seed 0
  text:PATH     a user's UTF-8 text: a file, a directory (every *.txt and *.txt.gz below it) or a glob;
                each line is a sentence (windows never cross lines)
  <tfds name>   a TFDS dataset with a text feature, already prepared as array_record in `data_dir`
                (this program never downloads); each line of each example's text is a sentence
Lines are split into tokens by zoo.text.tokenize (the `tokenizer` and `lowercase` keys).

`open_corpus` gives the lines (re-readable, streamed); `encode_corpus` turns them into a vocabulary
and one int32 id array (memory-mapped, streamed to disk as it is read) in a single pass, optionally cached
in a directory so a rerun (a resume) skips reading and tokenizing the corpus again.
"""

from __future__ import annotations

import array
import dataclasses
import glob
import gzip
import hashlib
import io
import json
import mmap
import os
import re
import tempfile
import zlib
from collections.abc import Callable, Iterator

import numpy as np

from train.core import files
from train.core.config import Key
from train.core.errors import DataError, quiet_library_logs
from train.data import corpus as generated_corpus
from zoo.text import TOKENIZERS, Vocab, tokenize

GENERATED = "generated"
ZIPF = "zipf"

# The keys of a module that reads a corpus (train.word2vec, train.ngram, train.cooccurrence).
CORPUS_KEYS = {
    "corpus": Key(
        GENERATED,
        "'generated' (embedded), 'zipf' (generated, a 100k-word Zipf vocabulary), 'text:PATH' (one sentence a "
        "line) or a prepared TFDS text dataset name",
    ),
    "num_tokens": Key(
        2_000_000,
        "size of the generated corpus ('generated' or 'zipf'; at most 10^9 tokens: ~7 minutes, 4 GB of ids)",
        range=f"[1, {10**9}]",
    ),
    "tokenizer": Key(
        "words",
        "'words' (letters/digits, punctuation dropped), 'whitespace' (pre-tokenised text; punctuation at the ends "
        "of pieces kept as tokens), 'chars' (every non-space character: Chinese, Japanese)",
        choices=TOKENIZERS,
    ),
    "lowercase": Key(True, "lower-case the text before tokenizing"),
    "data_dir": Key("", "TFDS data dir ('': TFDS's default, ~/tensorflow_datasets)"),
}
ACCEPTED = "'generated', 'text:PATH', 'zipf', or the name of a prepared TFDS text dataset (e.g. lm1b)"
HELD_OUT_EVERY = 10  # held-out split (n-gram perplexity): every 10th line, the rest is train
CACHE_FILE = "corpus.npz"
ID_CHUNK = 1 << 22  # tokens per chunk written, counted and renumbered: 16 MiB of int32 ids
SNIFF_BYTES = 1 << 20  # the head of a text file checked for binary data and its encoding
HASH_BLOCK = 1 << 16  # bytes hashed at a time where no reader above asks for them (a print taken apart from a pass)
# A longer line comes in pieces of at most this many characters, each cut after a whitespace (gensim cuts lines at
# 10,000 words): a file of one huge line (text8) is never held whole in memory.
MAX_LINE_CHARS = 1 << 20
# More undecodable characters than this share (and at least MIN_UNDECODABLE): not UTF-8; fewer become U+FFFD.
MAX_UNDECODABLE_SHARE, MIN_UNDECODABLE = 0.01, 8
_TEXT_KEYS = ("text", "sentence", "content", "document", "article", "review")


@dataclasses.dataclass
class Reads:
    """What a source's content was: `opened`, its print when the source was opened (what a cache is looked up
    by), and `passes`, the print of the bytes each completed pass over the lines read (what was counted)."""

    opened: str
    passes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class TextSource:
    """A corpus as lines: lines() starts a fresh pass, tokens() a pass of token lists (its tokenizer and
    lowercase). The fingerprint identifies the content and the tokenization (for caches and resumes): it is
    `origin`, then the content's print, then the tokenization and the split (`parts`). A file's print is of the
    bytes read: `fingerprint` the one taken when it was opened, `counted_fingerprint()` the one of the passes."""

    name: str
    lines: Callable[[], Iterator[str]]
    origin: str
    reads: Reads
    tokenizer: str = "words"
    lowercase: bool = True
    parts: str = ""

    @property
    def fingerprint(self) -> str:
        return self._fingerprint(self.reads.opened)

    def counted_fingerprint(self) -> str:
        """The fingerprint of the bytes the completed passes read (before any, the one taken when opened);
        DataError when two passes read different bytes: the corpus changed while it was read."""
        passes = set(self.reads.passes)
        if len(passes) > 1:
            raise DataError(
                f"corpus {self.name!r} changed while it was read (two passes over it read different bytes); "
                f"accepted: a corpus that no other program writes to during the run"
            )
        return self._fingerprint(passes.pop() if passes else self.reads.opened)

    def _fingerprint(self, content: str) -> str:
        how = f"|tokenizer={self.tokenizer}|lowercase={self.lowercase}"
        if (self.tokenizer, self.lowercase) == ("words", True):
            how = ""  # the default adds nothing: fingerprints recorded before the tokenizer key existed still match
        return f"{self.origin}:{content}{how}{self.parts}"

    def tokens(self) -> Iterator[list[str]]:
        for line in self.lines():
            yield tokenize(line, self.lowercase, self.tokenizer)

    def split(self, part: str) -> TextSource:
        """The 'train' lines (9 in 10) or the held-out 'test' lines (every 10th), by line position."""
        held_out = part == "test"

        def lines():
            for i, line in enumerate(self.lines()):
                if (i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1) == held_out:
                    yield line

        return dataclasses.replace(self, name=f"{self.name} ({part})", lines=lines, parts=f"{self.parts}|{part}")


def corpus_of(c) -> TextSource:
    """The corpus a config's CORPUS_KEYS name, with its tokenization."""
    return open_corpus(
        c.corpus, num_tokens=c.num_tokens, data_dir=c.data_dir or None, tokenizer=c.tokenizer, lowercase=c.lowercase
    )


def open_corpus(
    corpus: str,
    *,
    num_tokens: int = 2_000_000,
    data_dir: str | None = None,
    tokenizer: str = "words",
    lowercase: bool = True,
) -> TextSource:
    """Resolve a `corpus` config value to its lines; DataError names the bad value and what is accepted."""
    if tokenizer not in TOKENIZERS:
        raise DataError(f"tokenizer {tokenizer!r} is not accepted; accepted: {', '.join(TOKENIZERS)}")
    source = _open_lines(corpus, num_tokens, data_dir)
    return dataclasses.replace(source, tokenizer=tokenizer, lowercase=bool(lowercase))


def _open_lines(corpus: str, num_tokens: int, data_dir: str | None) -> TextSource:
    if not isinstance(corpus, str) or not corpus:
        raise DataError(f"corpus must be a non-empty string, got {corpus!r}; accepted: {ACCEPTED}")
    if corpus in (GENERATED, ZIPF):
        if isinstance(num_tokens, bool) or not isinstance(num_tokens, int) or num_tokens < 1:
            raise DataError(f"num_tokens={num_tokens!r} must be a positive integer (tokens of the generated corpus)")
        if corpus == ZIPF:
            g = generated_corpus
            return TextSource(
                f"zipf ({num_tokens} tokens)",
                lambda: g.generate_zipf_corpus(num_tokens, 0),
                "zipf",
                Reads(f"{num_tokens}:{g.ZIPF_WORDS}:{g.ZIPF_EXPONENT}:{g.ZIPF_PLANTED_SHARE}:seed0"),
            )
        return TextSource(
            f"generated ({num_tokens} tokens)",
            lambda: generated_corpus.generate_corpus(num_tokens, 0),
            GENERATED,
            Reads(f"{num_tokens}:seed0"),
        )
    if corpus.startswith("text:"):
        return _text_file(corpus[len("text:") :])
    return _tfds_text(corpus, data_dir)


TEXT_SUFFIXES = (".txt", ".txt.gz")
ACCEPTED_TEXT = "text:PATH with PATH a UTF-8 text file (.txt.gz read as gzip), a directory of them, or a glob"
_LAST_SPACE = re.compile(r"\s\S*\Z")


def _text_files(spec: str, path: str) -> list[str]:
    """The files a text:PATH names: the file, every *.txt and *.txt.gz below a directory (symlinked folders
    followed), or a glob's files. A path that exists is taken as it is, brackets and all (file[1].txt)."""
    if not path:
        raise DataError(f"corpus {spec!r} names no file; accepted: {ACCEPTED_TEXT}")
    if not os.path.lexists(path) and any(ch in path for ch in "*?["):
        found = sorted(p for p in glob.glob(path, recursive=True) if not os.path.isdir(p))
        if not found:
            raise DataError(f"corpus {spec!r}: the glob matches no file; accepted: {ACCEPTED_TEXT}")
        return [_regular_file(spec, p) for p in found]
    if os.path.isdir(path):
        found = sorted(_files_below(path))
        if not found:
            raise DataError(
                f"corpus {spec!r}: the directory holds no *.txt or *.txt.gz file; accepted: {ACCEPTED_TEXT}"
            )
        return [_regular_file(spec, p) for p in found]
    if not os.path.lexists(path):
        raise DataError(f"corpus {spec!r}: no such file; accepted: {ACCEPTED_TEXT}")
    return [_regular_file(spec, path, path)]


def _files_below(directory: str) -> Iterator[str]:
    """The *.txt and *.txt.gz names below directory, symlinked folders followed once each (a link loop ends)."""
    seen = set()
    for d, dirs, names in os.walk(directory, followlinks=True):
        real = os.path.realpath(d)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        yield from (os.path.join(d, name) for name in names if name.endswith(TEXT_SUFFIXES))


def _regular_file(spec: str, p: str, path: str | None = None) -> str:
    """p, or DataError when it is a dangling symbolic link or not a regular file (a FIFO or a device would be read
    forever): a corpus is refused rather than read without one of its files."""
    where = repr(spec) if p == path else f"{spec!r} (file {p})"
    if os.path.islink(p) and not os.path.exists(p):
        raise DataError(
            f"corpus {where} is a symbolic link to {os.readlink(p)!r}, which does not exist; accepted: "
            f"{ACCEPTED_TEXT} (remove the link or restore its target)"
        )
    if not os.path.isfile(p):
        raise DataError(f"corpus {where} is not a regular file; accepted: {ACCEPTED_TEXT}")
    return p


class _HashedFile(io.RawIOBase):
    """A file read through SHA-256: every byte that comes off the disk is hashed once, in order, so a pass's print
    is of the very bytes it read (a file that grows while it is read included)."""

    def __init__(self, path: str):
        super().__init__()
        self._file = open(path, "rb", buffering=0)
        self.sha, self.size = hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._file.readinto(buffer)
        if n:
            self.sha.update(memoryview(buffer)[:n])
            self.size += n
        return n

    def finish(self) -> dict:
        """{'size', 'sha256'} of the whole file, hashing the bytes the reader above left (a gzip trailer)."""
        for block in iter(lambda: self._file.read(HASH_BLOCK), b""):
            self.sha.update(block)
            self.size += len(block)
        return {"size": self.size, "sha256": self.sha.hexdigest()}

    def close(self) -> None:
        self._file.close()
        super().close()


def _whole_print(path: str) -> dict:
    """{'size', 'sha256'} of a file's bytes, as a pass over it (_HashedFile) takes them."""
    with _HashedFile(path) as raw:
        return raw.finish()


def _open_text(raw: io.RawIOBase, path: str) -> io.TextIOWrapper:
    """A text stream over raw, gunzipped when path ends in .gz; universal newlines, so CRLF lines read as LF."""
    binary = io.BufferedReader(raw)
    if path.endswith(".gz"):
        binary = gzip.GzipFile(fileobj=binary, mode="rb")
    return io.TextIOWrapper(binary, encoding="utf-8", errors="replace")


def _bounded_lines(f) -> Iterator[str]:
    """The lines of a text stream, a line longer than MAX_LINE_CHARS in pieces of at most that many characters,
    each cut after its last whitespace (where it has one), so no line is held whole."""
    carry = ""
    while True:
        text = f.readline(MAX_LINE_CHARS - len(carry))
        if not text:
            if carry:
                yield carry
            return
        line, carry = carry + text, ""
        if line.endswith("\n") or len(line) < MAX_LINE_CHARS:
            yield line
            continue
        space = _LAST_SPACE.search(line)
        cut = space.start() + 1 if space else len(line)
        line, carry = line[:cut], line[cut:]
        yield line


def _content(path: str, paths: list[str], prints: list[dict]) -> str:
    """The content part of a text corpus's fingerprint: one file's size and hash, or a digest of every file's."""
    if paths == [path]:
        return f"{prints[0]['size']}:{prints[0]['sha256']}"
    digest = hashlib.sha256(
        "\n".join(f"{os.path.abspath(p)}:{json.dumps(fp, sort_keys=True)}" for p, fp in zip(paths, prints)).encode()
    ).hexdigest()
    return f"{len(paths)}:{digest}"


def _opened_print(spec: str, path: str, p: str) -> dict:
    """p's print, after its head was checked for text; DataError naming it when it cannot be read."""
    where = repr(spec) if p == path else f"{spec!r} (file {p})"
    try:
        with _HashedFile(p) as raw, _open_text(raw, p) as f:
            head = f.buffer.read(SNIFF_BYTES)
        found = _whole_print(p)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(
            f"corpus {where} cannot be read ({getattr(e, 'strerror', None) or type(e).__name__}); accepted: "
            f"{ACCEPTED_TEXT}"
        ) from None
    _refuse_non_text(where, head)
    return found


def _text_file(path: str) -> TextSource:
    spec = f"text:{path}"
    paths = _text_files(spec, path)
    reads = Reads(_content(path, paths, [_opened_print(spec, path, p) for p in paths]))
    warned = set()

    def lines():
        # Undecodable bytes become U+FFFD, which the tokenizers drop (a stray Latin-1 byte costs one word, not the
        # run); each file's count of them is said once. Each file is hashed as it is read: the pass's print.
        read = []
        for p in paths:
            replaced = 0
            try:
                with _HashedFile(p) as raw, _open_text(raw, p) as f:
                    for line in _bounded_lines(f):
                        if "\ufffd" in line:
                            replaced += line.count("\ufffd")
                        yield line
                    read.append(raw.finish())
            except (OSError, EOFError, zlib.error) as e:
                raise DataError(f"corpus {spec!r}: file {p} is damaged ({type(e).__name__}: {e})") from None
            if replaced and p not in warned:
                warned.add(p)
                print(f"warning: corpus file {p}: {replaced} undecodable bytes read as U+FFFD and dropped", flush=True)
        reads.passes.append(_content(path, paths, read))

    name = spec if paths == [path] else f"{spec} ({len(paths)} files)"
    return TextSource(name, lines, f"text:{os.path.abspath(path)}", reads)


def _refuse_non_text(where: str, head: bytes) -> None:
    """DataError when the first SNIFF_BYTES of a corpus file are binary, UTF-16/32, or mostly not UTF-8."""
    if b"\x00" in head:
        at = head.index(b"\x00")
        raise DataError(
            f"corpus {where} holds NUL bytes (the first at byte offset {at}): binary data, or UTF-16/UTF-32 text; "
            f"accepted: a UTF-8 text file (convert one with iconv -f UTF-16 -t UTF-8)"
        )
    text = head.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - head.decode("utf-8", errors="ignore").count("\ufffd")
    if bad >= MIN_UNDECODABLE and bad > MAX_UNDECODABLE_SHARE * len(text):
        try:
            head.decode("utf-8")
            first = 0
        except UnicodeDecodeError as e:
            first = e.start
        raise DataError(
            f"corpus {where} is not UTF-8 text: {bad} of its first {len(text)} characters cannot be decoded "
            f"(the first at byte offset {first}); accepted: a UTF-8 text file (convert it with iconv -t UTF-8)"
        )


def _tfds_text(name: str, data_dir: str | None) -> TextSource:
    import tensorflow_datasets as tfds

    with quiet_library_logs():
        return _tfds_source(tfds, name, data_dir)


def _tfds_source(tfds, name: str, data_dir: str | None) -> TextSource:
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # tfds raises several types for unknown names
        raise DataError(f"unknown corpus {name!r}; accepted: {ACCEPTED} ({type(e).__name__})") from None
    features = builder.info.features
    keys = [k for k in features if isinstance(features[k], tfds.features.Text)]
    key = next((k for k in _TEXT_KEYS if k in keys), keys[0] if keys else None)
    if key is None:
        raise DataError(
            f"TFDS dataset {name!r} has no text feature (features: {sorted(features)}); accepted: {ACCEPTED}"
        )
    try:
        source = tfds.data_source(name, split="train", data_dir=data_dir, download=False)
    except Exception as e:
        raise DataError(
            f"TFDS dataset {name!r} is not prepared as array_record in {data_dir or 'the default TFDS data dir'}; "
            f"this program never downloads ({type(e).__name__}). Prepare it where there is internet: "
            f"python -c \"import tensorflow_datasets as tfds; tfds.builder('{name}', data_dir='DIR', "
            f"file_format='array_record').download_and_prepare()\", then pass --config.data_dir=DIR"
        ) from None

    def lines():
        for i in range(len(source)):
            text = source[i][key]
            yield from (text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)).splitlines()

    return TextSource(f"tfds:{name}", lines, f"tfds:{name}", Reads(f"{data_dir or ''}:{len(source)}"))


# ----------------------------------------------------------------------------- encoded corpus


@dataclasses.dataclass(frozen=True)
class EncodedCorpus:
    """A corpus as ids: the words of every line, end to end, with out-of-vocabulary words removed.

    ids[i] is the vocabulary id of the i-th kept token; sentence_lengths[s] the number of kept
    tokens of the s-th line that kept any (so sum(sentence_lengths) == len(ids)).
    """

    name: str
    vocab: Vocab
    ids: np.ndarray
    sentence_lengths: np.ndarray
    raw_tokens: int  # tokens before min_count and max_vocab dropped any
    key: str = ""  # what it was counted from (cache_key): the fingerprint of the bytes read and the vocabulary keys

    def sentence_index(self) -> np.ndarray:
        """int32 [len(ids)]: the line each token comes from (windows must not cross lines)."""
        return np.repeat(np.arange(len(self.sentence_lengths), dtype=np.int32), self.sentence_lengths)


def cache_key(source: TextSource | str, min_count: int, max_vocab: int = 0) -> str:
    """What an encoded corpus depends on: the content (a source's fingerprint when opened, or a fingerprint) and
    the vocabulary settings."""
    fingerprint = source if isinstance(source, str) else source.fingerprint
    return f"{fingerprint}|min_count={min_count}|max_vocab={max_vocab}"


def encode_corpus(
    source: TextSource, min_count: int, *, max_vocab: int = 0, cache_dir: str | None = None
) -> EncodedCorpus:
    """Vocabulary (count >= min_count, the max_vocab most frequent if > 0) and ids, in one pass over the lines.

    Words are ordered as zoo.text.Vocab.build orders them: by count, descending, then alphabetically.
    The ids never sit in memory whole: they stream to an unnamed temporary file (_spill_dir) as they are
    read, are renumbered chunk by chunk into a second one, and come back memory-mapped, so a corpus larger
    than memory needs memory only for its vocabulary and its line lengths. With cache_dir, a cache there
    (save_cached) with the same cache_key is read instead of the lines. Its key is of the bytes the pass read
    (TextSource.counted_fingerprint), which a file that grew since it was opened makes another than the one
    looked up. Raises DataError for a corpus without words or without a word that occurs min_count times.
    """
    cached = load_cached(cache_dir, cache_key(source, min_count, max_vocab)) if cache_dir else None
    if cached is not None:
        return cached
    index: dict[str, int] = {}
    setdefault = index.setdefault
    lengths = array.array("q")
    spill = _spill_dir(cache_dir)
    with tempfile.TemporaryFile(dir=spill) as raw_file:
        ids = array.array("i")
        for words in source.tokens():
            if words:
                ids.extend([setdefault(w, len(index)) for w in words])
                lengths.append(len(words))
                if len(ids) >= ID_CHUNK:
                    ids.tofile(raw_file)
                    ids = array.array("i")
        ids.tofile(raw_file)
        raw_file.flush()
        num_raw = int(np.frombuffer(lengths, np.int64).sum())
        if not num_raw:
            raise DataError(
                f"corpus {source.name!r} holds no words; accepted: text with at least one word (letters or digits)"
            )
        raw = np.memmap(raw_file, np.int32, "r", shape=(num_raw,))
        counts = np.zeros(len(index), np.int64)
        for start in range(0, num_raw, ID_CHUNK):
            counts += np.bincount(raw[start : start + ID_CHUNK], minlength=len(index))
        words = list(index)
        del index
        ranked = sorted(range(len(words)), key=lambda i: (-counts[i], words[i]))
        kept = [i for i in ranked if counts[i] >= min_count]
        if max_vocab:
            kept = kept[:max_vocab]
        if not kept:
            top = ranked[0]
            raise DataError(
                f"corpus {source.name!r}: no word occurs min_count={min_count} times (the most frequent, "
                f"{words[top]!r}, occurs {counts[top]} times); accepted: min_count <= {counts[top]} "
                f"or a larger corpus"
            )
        new_id = np.full(len(words), -1, np.int32)
        new_id[kept] = np.arange(len(kept), dtype=np.int32)
        ends = np.cumsum(np.frombuffer(lengths, np.int64))
        kept_per_line = np.zeros(len(lengths), np.int64)
        with tempfile.TemporaryFile(dir=spill) as ids_file:
            for start in range(0, num_raw, ID_CHUNK):
                mapped = new_id[raw[start : start + ID_CHUNK]]
                keep = mapped >= 0
                line = np.searchsorted(ends, np.arange(start, start + len(mapped)), side="right")
                kept_per_line += np.bincount(line[keep], minlength=len(lengths))
                mapped[keep].tofile(ids_file)
            ids_file.flush()
            del raw
            # the mapping keeps the unnamed file alive after it is closed
            kept_ids = np.memmap(ids_file, np.int32, "r", shape=(int(kept_per_line.sum()),))
    vocab = Vocab([words[i] for i in kept], counts[kept])
    key = cache_key(source.counted_fingerprint(), min_count, max_vocab)
    return EncodedCorpus(source.name, vocab, kept_ids, kept_per_line[kept_per_line > 0], num_raw, key)


def _spill_dir(cache_dir: str | None) -> str | None:
    """Where the ids stream while read: cache_dir or, before it exists, its nearest existing parent (on the
    disk the cache goes to, not a /tmp that may be memory); the system's temporary directory without one."""
    if not cache_dir:
        return None
    path = os.path.abspath(os.path.expanduser(cache_dir))
    while not os.path.isdir(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path if os.access(path, os.W_OK) else None


def _ids_file(directory: str, key: str) -> str:
    """The cached ids' file: named by the key, so a cache of other data never pairs with these ids."""
    return os.path.join(directory, f"corpus_ids-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npy")


def release_pages(ids: np.ndarray, start: int, stop: int) -> None:
    """Drop the pages of a read-only memory-mapped array that lie wholly inside ids[start:stop] from the process
    (madvise DONTNEED): a later read maps them again from the system's file cache. The corpus ids are read a step
    at a time (and again an epoch later), so a run need not hold them all: 20 MB of peak memory at 5M words, as
    gensim, streaming its file, holds none. Anything but a read-only np.memmap that owns its mapping is left
    alone (on memory DONTNEED would zero it), and so is a system without madvise."""
    mapping = getattr(ids, "_mmap", None)
    if not (isinstance(ids, np.memmap) and ids.mode == "r" and mapping is not None and hasattr(mmap, "MADV_DONTNEED")):
        return
    page, first = mmap.PAGESIZE, ids.offset % mmap.ALLOCATIONGRANULARITY  # where ids[0] lies in its mapping
    lo = -(-(first + start * ids.itemsize) // page) * page
    hi = min(first + stop * ids.itemsize, len(mapping)) // page * page
    if hi > lo:
        try:
            mapping.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
        except (OSError, ValueError):  # memory only: the run goes on holding the pages
            pass


def save_cached(directory: str, key: str, c: EncodedCorpus) -> None:
    """Store c in directory under key: the ids as a .npy named by the key (written first, streamed from
    their mapping), then corpus.npz with the vocabulary, the line lengths and the key, which marks the cache
    complete; ids files of other keys are removed after. Callers write it once their checks have passed. A cache
    of this key is left as it is, unless its ids file is missing (set aside as damaged)."""
    if cached_key(directory) == key and os.path.exists(_ids_file(directory, key)):
        return
    os.makedirs(directory, exist_ok=True)
    ids_path = _ids_file(directory, key)
    with files.atomic_write(ids_path) as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<i4", "fortran_order": False, "shape": (len(c.ids),)})
        for start in range(0, len(c.ids), ID_CHUNK):
            np.ascontiguousarray(c.ids[start : start + ID_CHUNK], np.int32).tofile(f)
            release_pages(c.ids, start, start + ID_CHUNK)
    files.save_npz(
        os.path.join(directory, CACHE_FILE),
        key=np.array(key),
        name=np.array(c.name),
        words=np.array(c.vocab.words),
        counts=c.vocab.counts,
        sentence_lengths=c.sentence_lengths,
        raw_tokens=c.raw_tokens,
    )
    for stale in glob.glob(os.path.join(glob.escape(directory), "corpus_ids-*.npy")):
        if stale != ids_path:
            os.remove(stale)


def cached_key(directory: str) -> str | None:
    """The key of the corpus cached in directory, or None (none there, or a damaged one, now set aside)."""
    return files.load_npz(os.path.join(directory, CACHE_FILE), lambda f: str(f["key"]))


def load_cached(directory: str, key: str) -> EncodedCorpus | None:
    """The corpus cached in directory under key, its ids memory-mapped, or None (none, another key, or damaged:
    set aside, rebuilt)."""

    def read(f):
        if str(f["key"]) != key:
            return None
        words, counts, lengths = [str(w) for w in f["words"]], f["counts"], f["sentence_lengths"]
        return str(f["name"]), Vocab(words, counts), lengths, int(f["raw_tokens"])

    found = files.load_npz(os.path.join(directory, CACHE_FILE), read)
    if found is None:
        return None
    name, vocab, lengths, raw_tokens = found
    ids_path = _ids_file(directory, key)
    files.remove_temporaries_of(ids_path)  # of a write a kill cut short
    if not os.path.exists(ids_path):
        return None
    try:
        ids = _mapped_ids(ids_path, int(lengths.sum()), len(vocab))
    except (OSError, EOFError, ValueError) as e:
        files.set_aside(ids_path, f"{type(e).__name__}: {e}")
        return None
    return EncodedCorpus(name, vocab, ids, lengths, raw_tokens, key)


def _mapped_ids(path: str, length: int, vocab_size: int) -> np.ndarray:
    """The cached ids, memory-mapped; ValueError unless they are `length` int32 ids of the vocabulary (a damaged
    file would otherwise index past the tables)."""
    ids = np.load(path, mmap_mode="r", allow_pickle=False)
    if ids.dtype != np.int32 or ids.shape != (length,):
        raise ValueError(f"{ids.dtype} {ids.shape} where int32 ({length},) was written")
    for start in range(0, length, ID_CHUNK):
        chunk = ids[start : start + ID_CHUNK]
        if chunk.min() < 0 or chunk.max() >= vocab_size:
            raise ValueError(f"ids outside the vocabulary of {vocab_size} words")
    return ids
