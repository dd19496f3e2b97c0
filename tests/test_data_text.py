"""train/data/text.py on files the tests write: text:PATH as a file, a directory (*.txt and *.txt.gz below it) or a
glob, gzip read transparently, CRLF lines, undecodable bytes replaced and counted, and the tokenizers: the
lecture's co-occurrence table from raw text, Chinese by characters."""

from __future__ import annotations

import gzip
import os
import re

import numpy as np
import pytest

from tests.configs import smoke_config
from tests.test_text import lecture_table
from train import cooccurrence as train_cooc
from train.core.errors import DataError
from train.data import text as text_data

LINES = ["the king rules the land", "the queen rules the land", "a man and a woman"]


@pytest.fixture
def tree(tmp_path):
    """LINES spread over a plain file with CRLF line ends, a gzip file one folder down, and a file not read."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_bytes(("\r\n".join(LINES[:2]) + "\r\n").encode())
    with gzip.open(tmp_path / "sub" / "b.txt.gz", "wt", encoding="utf-8") as f:
        f.write(LINES[2] + "\n")
    (tmp_path / "notes.md").write_text("not a corpus file\n")
    return tmp_path


def tokens(spec, **kw):
    return list(text_data.open_corpus(spec, **kw).tokens())


def test_a_directory_a_glob_and_a_file_read_the_same_lines(tree):
    expected = [line.split() for line in LINES]
    assert tokens(f"text:{tree}") == expected  # a.txt, then sub/b.txt.gz: sorted paths
    assert tokens(f"text:{tree}/**/*.txt*") == expected
    assert tokens(f"text:{tree}/a.txt") == expected[:2]
    assert tokens(f"text:{tree}/sub/b.txt.gz") == expected[2:]
    lines = list(text_data.open_corpus(f"text:{tree}/a.txt").lines())
    assert lines == [line + "\n" for line in LINES[:2]]  # CRLF read as LF


def test_the_fingerprint_follows_the_content_of_every_file(tree):
    before = text_data.open_corpus(f"text:{tree}").fingerprint
    os.utime(tree / "a.txt")
    assert text_data.open_corpus(f"text:{tree}").fingerprint == before  # touched, not changed
    with gzip.open(tree / "sub" / "b.txt.gz", "wt", encoding="utf-8") as f:
        f.write("a woman and a man\n")
    assert text_data.open_corpus(f"text:{tree}").fingerprint != before
    kinds = {text_data.open_corpus(f"text:{tree}", tokenizer=k).fingerprint for k in ("words", "whitespace", "chars")}
    assert len(kinds) == 3


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("{tmp}/nothing*.txt", "the glob matches no file"),
        ("{tmp}/empty_dir", "holds no *.txt or *.txt.gz file"),
        ("{tmp}/broken.txt.gz", "broken.txt.gz' cannot be read (BadGzipFile)"),
    ],
)
def test_sources_that_cannot_be_read_are_named(tmp_path, spec, fragment):
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "other.txt").write_text("one line\n")
    (tmp_path / "broken.txt.gz").write_bytes(b"not gzip at all")
    spec = spec.replace("{tmp}", str(tmp_path))
    with pytest.raises(DataError, match=re.escape(fragment)):
        text_data.open_corpus(f"text:{spec}")


def test_a_few_undecodable_bytes_are_replaced_and_counted_once(tmp_path, capsys):
    (tmp_path / "latin1.txt").write_bytes("the café is open\nthe king is here\n".encode("latin-1"))
    source = text_data.open_corpus(f"text:{tmp_path / 'latin1.txt'}")
    assert list(source.tokens()) == [["the", "caf", "is", "open"], ["the", "king", "is", "here"]]
    list(source.tokens())
    out = capsys.readouterr().out
    assert out.count("latin1.txt: 1 undecodable bytes read as U+FFFD") == 1


def test_the_lectures_table_from_raw_text(data_dir, tmp_path):
    """The lecture's three sentences typed as raw text: train.cooccurrence with the whitespace tokenizer (full
    stops kept as tokens, case kept) and window 1 counts exactly the lecture's table."""
    header, expected = lecture_table()
    (tmp_path / "lecture.txt").write_text("I like deep learning.\nI like NLP.\nI enjoy flying.\n")
    workdir = str(tmp_path / "w")
    c = smoke_config(
        train_cooc,
        data_dir,
        corpus=f"text:{tmp_path / 'lecture.txt'}",
        tokenizer="whitespace",
        lowercase=False,
        window=1,
        weighting="uniform",
        min_count=1,
        embed_dim=2,
    )
    train_cooc.run(c, workdir)
    corpus = text_data.load_cached(workdir, text_data.cache_key(text_data.corpus_of(c), 1, c.max_vocab))
    counts = train_cooc.load_counts(os.path.join(workdir, train_cooc.COUNTS_FILE), None).toarray()
    order = [corpus.vocab.id(w) for w in header]
    np.testing.assert_array_equal(counts[np.ix_(order, order)], expected)


def test_chinese_by_characters(tmp_path):
    """A language written without spaces: 'chars' makes every character a token; 'whitespace' takes the
    segmentation of pre-segmented text as it is."""
    (tmp_path / "zh.txt").write_text("我今天下午打篮球。\n我 今天 下午 打 篮球\n", encoding="utf-8")
    first, second = tokens(f"text:{tmp_path / 'zh.txt'}", tokenizer="chars")
    assert first == list("我今天下午打篮球。") and second == list("我今天下午打篮球")
    assert tokens(f"text:{tmp_path / 'zh.txt'}", tokenizer="whitespace")[1] == ["我", "今天", "下午", "打", "篮球"]
    corpus = text_data.encode_corpus(text_data.open_corpus(f"text:{tmp_path / 'zh.txt'}", tokenizer="chars"), 2)
    assert set(corpus.vocab.words) == set("我今天下午打篮球")  # each twice; the full stop once


# ----------------------------------------------------------------------------- ids streamed to disk


@pytest.fixture
def prose(tmp_path):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    lines = [" ".join(rng.choice(words, size=rng.integers(0, 12), p=np.arange(40, 0, -1) / 820)) for _ in range(300)]
    path = tmp_path / "prose.txt"
    path.write_text("\n".join(lines) + "\n")
    return path, lines


def test_ids_are_memory_mapped_and_match_a_plain_count_across_chunks(prose, tmp_path, monkeypatch):
    path, lines = prose
    monkeypatch.setattr(text_data, "ID_CHUNK", 7)  # every chunk boundary falls inside some line
    corpus = text_data.encode_corpus(text_data.open_corpus(f"text:{path}"), 5)
    assert isinstance(corpus.ids, np.memmap)
    counts = {}
    for line in lines:
        for w in line.split():
            counts[w] = counts.get(w, 0) + 1
    vocab = sorted((w for w in counts if counts[w] >= 5), key=lambda w: (-counts[w], w))
    rank = {w: i for i, w in enumerate(vocab)}
    kept = [[rank[w] for w in line.split() if w in rank] for line in lines]
    assert corpus.vocab.words == vocab
    assert corpus.ids.tolist() == [i for line in kept for i in line]
    assert corpus.sentence_lengths.tolist() == [len(line) for line in kept if line]
    assert corpus.raw_tokens == sum(counts.values())


def test_encoding_holds_no_per_token_array_in_memory(tmp_path, monkeypatch):
    import tracemalloc

    path = tmp_path / "big.txt"
    line = " ".join(f"w{i % 50}" for i in range(100))
    path.write_text((line + "\n") * 4000)  # 400k tokens: 1.6 MB of int32 ids
    monkeypatch.setattr(text_data, "ID_CHUNK", 1 << 14)
    source = text_data.open_corpus(f"text:{path}")
    tracemalloc.start()
    corpus = text_data.encode_corpus(source, 1, cache_dir=str(tmp_path / "w"))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(corpus.ids) == 400_000
    assert peak < 0.5 * 4 * len(corpus.ids), peak  # chunks, the vocabulary and the line lengths only


@pytest.fixture
def cached(prose, tmp_path):
    """(workdir, source, key, corpus): the prose encoded at min_count 2 and cached in workdir under key."""
    path, _ = prose
    workdir = str(tmp_path / "w")
    source = text_data.open_corpus(f"text:{path}")
    key = text_data.cache_key(source, 2)
    corpus = text_data.encode_corpus(source, 2, cache_dir=workdir)
    text_data.save_cached(workdir, key, corpus)
    return workdir, source, key, corpus


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the resident set from /proc")
def test_released_pages_of_mapped_ids_leave_the_process_and_read_back_the_same(tmp_path):
    """release_pages drops a read-only mapping's pages inside the range (the resident set falls by their 32 MB)
    and they read back unchanged from the file; the pages straddling the ends stay; an array in memory keeps its
    values (DONTNEED would have zeroed it)."""
    want = np.arange(8 << 20, dtype=np.int32)
    want.tofile(tmp_path / "ids.bin")
    ids = np.memmap(tmp_path / "ids.bin", np.int32, "r", shape=want.shape)
    assert int(ids.sum(dtype=np.int64)) == int(want.sum(dtype=np.int64))  # every page mapped in
    before = _rss_mb()
    text_data.release_pages(ids, 1, len(ids) - 1)
    assert before - _rss_mb() > 28
    np.testing.assert_array_equal(ids, want)
    in_memory = want.copy()
    text_data.release_pages(in_memory, 0, len(in_memory))
    np.testing.assert_array_equal(in_memory, want)


def test_the_cache_maps_its_ids_and_a_damaged_ids_file_is_rebuilt(cached, capsys):
    workdir, source, key, first = cached
    (ids_path,) = [os.path.join(workdir, f) for f in os.listdir(workdir) if f.startswith("corpus_ids-")]
    again = text_data.load_cached(workdir, key)
    assert isinstance(again.ids, np.memmap) and again.ids.tolist() == first.ids.tolist()
    assert again.vocab.words == first.vocab.words
    assert again.sentence_lengths.tolist() == first.sentence_lengths.tolist()
    other_key = text_data.cache_key(source, 3)
    text_data.save_cached(workdir, other_key, text_data.encode_corpus(source, 3))
    assert not os.path.exists(ids_path)  # another key's ids file replaces it
    assert text_data.load_cached(workdir, key) is None
    (ids_path,) = [os.path.join(workdir, f) for f in os.listdir(workdir) if f.startswith("corpus_ids-")]
    with open(ids_path, "r+b") as f:
        f.truncate(os.path.getsize(ids_path) - 8)
    capsys.readouterr()
    assert text_data.load_cached(workdir, other_key) is None
    assert f"warning: {ids_path} is damaged" in capsys.readouterr().out and os.path.exists(ids_path + ".damaged")


def test_the_zipf_corpus_is_a_named_corpus():
    """corpus 'zipf': generate_zipf_corpus's num_tokens tokens (seed 0), a 100k-word vocabulary at 20M tokens."""
    from train.data import corpus

    source = text_data.open_corpus("zipf", num_tokens=30_000)
    assert list(source.lines()) == list(corpus.generate_zipf_corpus(30_000, 0))
    encoded = text_data.encode_corpus(source, 2)
    assert encoded.raw_tokens == 30_000 and len(encoded.vocab) > 2000
    assert source.fingerprint != text_data.open_corpus("generated", num_tokens=30_000).fingerprint
    assert text_data.open_corpus("zipf", num_tokens=30_001).fingerprint != source.fingerprint
    with pytest.raises(DataError, match="num_tokens"):
        text_data.open_corpus("zipf", num_tokens=0)


# ----------------------------------------------------------------------------- the bytes read, and paths as named


def test_a_pass_fingerprints_the_bytes_it_read(tmp_path):
    """A file appended to after it was opened is counted with the new lines, and keyed by them: the key of the
    encoded corpus is the one a fresh open of the file as it now is looks up."""
    path = tmp_path / "grows.txt"
    path.write_text("the king rules\nthe queen rules\n")
    source = text_data.open_corpus(f"text:{path}")
    with open(path, "a") as f:
        f.write("a zebra rules\n")
    corpus = text_data.encode_corpus(source, 1)
    now = text_data.open_corpus(f"text:{path}")
    assert "zebra" in corpus.vocab
    assert corpus.key == text_data.cache_key(now, 1) != text_data.cache_key(source, 1)
    assert source.counted_fingerprint() == now.fingerprint and source.split("test").counted_fingerprint().endswith(
        "|test"
    )


def test_passes_that_read_different_bytes_are_refused(tmp_path):
    path = tmp_path / "changes.txt"
    path.write_text("the king rules\n")
    source = text_data.open_corpus(f"text:{path}")
    list(source.lines())
    path.write_text("the queen rules\n")
    list(source.lines())
    with pytest.raises(DataError, match="changed while it was read"):
        source.counted_fingerprint()


def test_small_files_keep_the_fingerprint_runs_recorded(tree):
    """Files up to 256 MiB keep the fingerprint format data.json and the caches recorded before the hash moved
    into the read: the size and SHA-256 of the file, so earlier runs still resume."""
    from train.core import files

    one = tree / "a.txt"
    found = files.fingerprint(str(one))
    assert text_data.open_corpus(f"text:{one}").fingerprint == f"text:{one}:{found['size']}:{found['sha256']}"
    gz = tree / "sub" / "b.txt.gz"
    source = text_data.open_corpus(f"text:{gz}")
    list(source.lines())  # the whole gzip file is hashed, not just what the decompressor read
    assert (
        source.counted_fingerprint()
        == source.fingerprint
        == f"text:{gz}:{os.path.getsize(gz)}:" + (files.fingerprint(str(gz))["sha256"])
    )


def test_a_name_with_brackets_is_a_name_before_it_is_a_glob(tmp_path):
    (tmp_path / "file[1].txt").write_text("the literal file\n")
    (tmp_path / "file1.txt").write_text("what the glob matches\n")
    assert tokens(f"text:{tmp_path}/file[1].txt") == [["the", "literal", "file"]]
    assert tokens(f"text:{tmp_path}/file[0-9].txt") == [["what", "the", "glob", "matches"]]  # no such file: a glob


def test_symlinked_folders_are_followed_once_and_dangling_links_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "b.txt").write_text("linked words\n")
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text("plain words\n")
    os.symlink(tmp_path / "elsewhere", tmp_path / "corpus" / "linked")
    os.symlink(tmp_path / "corpus", tmp_path / "corpus" / "loop")  # a loop: walked once
    assert tokens(f"text:{tmp_path / 'corpus'}") == [["plain", "words"], ["linked", "words"]]
    os.symlink(tmp_path / "gone.txt", tmp_path / "corpus" / "gone.txt")
    with pytest.raises(DataError, match=r"gone.txt\) is a symbolic link to .*gone.txt', which does not exist"):
        text_data.open_corpus(f"text:{tmp_path / 'corpus'}")


def test_a_long_line_comes_in_pieces_cut_at_spaces(tmp_path, monkeypatch):
    """A line longer than MAX_LINE_CHARS is never held whole: pieces of at most that many characters, cut after a
    space, so no word is split (one without any space is cut where the bound falls)."""
    monkeypatch.setattr(text_data, "MAX_LINE_CHARS", 16)
    words = [f"word{i}" for i in range(40)]
    (tmp_path / "long.txt").write_text(" ".join(words) + "\nshort line\n" + "x" * 40 + "\n")
    pieces = list(text_data.open_corpus(f"text:{tmp_path / 'long.txt'}").lines())
    assert all(len(p) <= 16 for p in pieces)
    assert [w for p in pieces[:-4] for w in p.split()] == words and pieces[-4] == "short line\n"
    assert "".join(pieces[-3:]) == "x" * 40 + "\n"


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty"])
@pytest.mark.parametrize("which", ["corpus.npz", "corpus_ids-"])
def test_a_damaged_corpus_cache_is_set_aside_and_written_again(cached, capsys, which, how):
    from tests.test_hostile_text import damage

    workdir, source, key, corpus = cached
    (damaged,) = [os.path.join(workdir, f) for f in os.listdir(workdir) if f.startswith(which)]
    damage(damaged, how)
    capsys.readouterr()
    assert text_data.load_cached(workdir, key) is None
    assert f"warning: {damaged} is damaged" in capsys.readouterr().out and os.path.exists(damaged + ".damaged")
    text_data.save_cached(workdir, key, text_data.encode_corpus(source, 2, cache_dir=workdir))
    assert text_data.load_cached(workdir, key).ids.tolist() == corpus.ids.tolist()  # made again


def test_ids_outside_the_vocabulary_are_a_damaged_cache(cached, capsys):
    workdir, _, key, _ = cached
    (ids_path,) = [os.path.join(workdir, f) for f in os.listdir(workdir) if f.startswith("corpus_ids-")]
    ids = np.load(ids_path)
    ids[3] = 10**6  # a flipped bit: the right size and type, an id past the tables
    np.save(ids_path, ids)
    assert text_data.load_cached(workdir, key) is None
    assert "ids outside the vocabulary" in capsys.readouterr().out
