"""Hostile text input to train.word2vec, train.ngram and train.cooccurrence, as real processes (tests/cli_cases.py).

The table: corpora too small to train on (one or two distinct words, no line with two words, an n-gram order longer
than every line), sizes that would exhaust memory or time (huge windows, negatives, dimensions, orders, vocabularies,
generated corpora, evaluation files), and paths that are not what they seem (a file named with brackets, a dangling
symbolic link, a FIFO, a device): each one `error:` line, exit code 2, nothing created, or on a finished run nothing
changed. Then what is not refused: every text cache that fails to read is set aside as <file>.damaged with one
warning line and made again, and a corpus that grows while it is read is fingerprinted by the bytes counted.
"""

from __future__ import annotations

import concurrent.futures
import glob
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse

from tests.cli_cases import ROOT, WORKERS, Case, case, check_refused, run_cli, run_selected
from train import cooccurrence as train_cooc, ngram as train_ngram
from train.data import text as text_data

SMOKE = "--config=train/{}.py:smoke"
W2V = SMOKE.format("word2vec")
# The finished tiny runs: the `existing` cases' (--config.KEY=VALUE) and the ones whose caches are damaged.
SETUPS = {
    "ngram": dict(num_tokens="20000", order="2"),
    "word2vec": dict(num_tokens="5000", batch_size="1024", minibatch_size="256", num_steps="2", embed_dim="8"),
    "cooccurrence": dict(num_tokens="20000", embed_dim="16"),
}
STEP = "a step's examples would take"
NOT_ACCEPTED = "is not accepted; accepted: an integer in"

WORD2VEC_CASES = [
    # vocabularies that cannot train: they wrote checkpoints, then stopped on a NaN loss (exit 1)
    case("w2v-two-words", "word2vec", [W2V, "--config.corpus=text:{tmp}/two.txt", "--config.min_count=1"],
         ["two.txt", "keeps 2 distinct words", "more words than config.negatives=5"]),
    case("w2v-one-word", "word2vec", [W2V, "--config.corpus=text:{tmp}/one.txt"],
         ["one.txt", "keeps 1 distinct word at min_count=5", "fewer negatives"]),
    case("w2v-softmax-one-word", "word2vec",
         [W2V, "--config.corpus=text:{tmp}/one.txt", "--config.model=skipgram_softmax"],
         ["keeps 1 distinct word", "a softmax needs two words"]),
    case("w2v-min-count-leaves-two", "word2vec", [W2V, "--config.corpus=text:{tmp}/mostly_two.txt"],
         ["keeps 2 distinct words at min_count=5", "a lower min_count"]),
    case("w2v-no-line-of-two", "word2vec", [W2V, "--config.corpus=text:{tmp}/solo.txt", "--config.min_count=1"],
         ["solo.txt", "yields no training example"]),
    # sizes
    case("w2v-window-huge", "word2vec", ["--config.window=100000"], ["config.window=100000", STEP, "at most 4 GiB"]),
    case("w2v-negatives-huge", "word2vec", ["--config.negatives=100000"], ["config.negatives=100000", STEP]),
    case("w2v-embed-dim-huge", "word2vec", ["--config.num_tokens=5000", "--config.embed_dim=100000000"],
         ["config.embed_dim=100000000", "the two tables", "at most 16 GiB"]),
    case("w2v-num-tokens-huge", "word2vec", ["--config.num_tokens=10000000000"],
         ["config.num_tokens=10000000000", NOT_ACCEPTED, "1000000000]"]),
    case("w2v-analogies-device", "word2vec", [W2V, "--config.analogies=/dev/zero"],
         ["config.analogies='/dev/zero' is not a regular file"]),
    case("w2v-analogies-too-large", "word2vec", [W2V, "--config.analogies={tmp}/huge_questions.txt"],
         ["huge_questions.txt", "holds 68157440 bytes", "at most 67108864"]),
    # paths
    case("w2v-brackets-are-a-name", "word2vec",
         [W2V, "--config.corpus=text:{tmp}/br/file[1].txt", "--config.min_count=1"],
         ["file[1].txt", "keeps 2 distinct words"]),
    case("w2v-dangling-link-in-directory", "word2vec", [W2V, "--config.corpus=text:{tmp}/dangling_dir"],
         ["dangling_dir/gone.txt", "symbolic link", "which does not exist"]),
    case("w2v-fifo-in-directory", "word2vec", [W2V, "--config.corpus=text:{tmp}/fifo_dir"],
         ["fifo_dir/pipe.txt", "is not a regular file"]),
    # on finished runs: nothing written, the corpus cache included
    case("w2v-existing-two-words", "word2vec", ["--config.corpus=text:{tmp}/two.txt", "--config.min_count=1"],
         ["keeps 2 distinct words"], existing=True),
    case("w2v-in-an-ngram-workdir", "word2vec", ["--config.num_tokens=5000", "--config.num_steps=2"],
         ["holds a run of train.ngram"], existing="ngram"),
]  # fmt: skip

NGRAM_CASES = [
    case("ngram-order-longer-than-lines", "ngram", ["--config.corpus=text:{tmp}/short.txt", "--config.order=6"],
         ["config.order=6", "the longest holds 3 words", "accepted: order <= 5"]),
    case("ngram-order-11", "ngram", ["--config.order=11"], ["config.order=11", "accepted: order <= 10"]),
    case("ngram-num-tokens-huge", "ngram", ["--config.num_tokens=2000000000"],
         ["config.num_tokens=2000000000", NOT_ACCEPTED]),
    case("ngram-brackets-are-a-name", "ngram", ["--config.corpus=text:{tmp}/br/short[1].txt", "--config.order=6"],
         ["short[1].txt", "the longest holds 3 words"]),
    case("ngram-dangling-link-in-glob", "ngram", ["--config.corpus=text:{tmp}/dangling_dir/*.txt"],
         ["gone.txt", "symbolic link"]),
    case("ngram-fifo", "ngram", ["--config.corpus=text:{tmp}/fifo_dir/pipe.txt"], ["pipe.txt'", "not a regular file"]),
    case("ngram-existing-order-longer-than-lines", "ngram",
         ["--config.corpus=text:{tmp}/short.txt", "--config.order=6"], ["the longest holds 3 words"], existing=True),
]  # fmt: skip

COOC = SMOKE.format("cooccurrence")
SOLO = [COOC, "--config.min_count=1", "--config.embed_dim=4"]
COOCCURRENCE_CASES = [
    case("cooc-no-line-of-two", "cooccurrence", [*SOLO, "--config.corpus=text:{tmp}/solo.txt"],
         ["solo.txt", "has no line with two words", "no pair to count"]),
    case("cooc-brackets-are-a-name", "cooccurrence", [*SOLO, "--config.corpus=text:{tmp}/br/solo[2].txt"],
         ["solo[2].txt", "has no line with two words"]),
    case("cooc-all-words-too-many", "cooccurrence",
         [*SOLO, "--config.corpus=text:{tmp}/many_words.txt", "--config.max_vocab=0"],
         ["config.max_vocab=0 keeps all 33000 words", "dense 33000 x 33000", "accepted: max_vocab in [1, 32768]"]),
    case("cooc-max-vocab-over", "cooccurrence", ["--config.max_vocab=40000"], ["config.max_vocab=40000", NOT_ACCEPTED]),
    case("cooc-window-over", "cooccurrence", ["--config.window=101"], ["config.window=101", "[1, 100]"]),
    case("cooc-embed-dim-over-vocabulary", "cooccurrence",
         [COOC, "--config.corpus=text:{tmp}/short.txt", "--config.min_count=1"],
         ["config.embed_dim=16 exceeds the 5 words", "accepted: embed_dim <= 5"]),
    case("cooc-wordsim-directory", "cooccurrence", [COOC, "--config.wordsim={tmp}/fifo_dir"],
         ["config.wordsim=", "not a regular file"]),
    case("cooc-dangling-link", "cooccurrence", [COOC, "--config.corpus=text:{tmp}/dangling_dir/gone.txt"],
         ["gone.txt", "symbolic link to '/nonexistent/corpus.txt'"]),
]  # fmt: skip

CLI_CASES = WORD2VEC_CASES + NGRAM_CASES + COOCCURRENCE_CASES


def _write_files(tmp: pathlib.Path) -> None:
    rng = np.random.default_rng(0)
    good = "".join(" ".join(rng.choice([f"w{i}" for i in range(30)], 8)) + "\n" for _ in range(400))
    (tmp / "two.txt").write_text("alpha beta alpha beta\n" * 200)
    (tmp / "one.txt").write_text("alpha alpha alpha\n" * 200)
    rare = "".join(f"rare{i} unique{i}\n" for i in range(40))  # under min_count=5
    (tmp / "mostly_two.txt").write_text("alpha beta alpha beta\n" * 200 + rare)
    (tmp / "solo.txt").write_text("".join(f"word{i}\n" for i in range(10)) * 20)
    (tmp / "short.txt").write_text("the cat sat\nthe dog ran\n" * 50)
    (tmp / "many_words.txt").write_text("".join(f"w{i} w{i + 1}\n" for i in range(0, 33000, 2)))
    with open(tmp / "huge_questions.txt", "wb") as f:
        f.truncate(65 << 20)  # sparse: its size is what counts
    (tmp / "br").mkdir()
    (tmp / "br" / "file[1].txt").write_text("alpha beta alpha beta\n" * 200)
    (tmp / "br" / "file1.txt").write_text(good)  # what the name, taken as a glob, matched
    (tmp / "br" / "short[1].txt").write_text("the cat sat\nthe dog ran\n" * 50)
    (tmp / "br" / "short1.txt").write_text(good)
    (tmp / "br" / "solo[2].txt").write_text("".join(f"word{i}\n" for i in range(10)) * 20)
    (tmp / "br" / "solo2.txt").write_text(good)
    (tmp / "dangling_dir").mkdir()
    (tmp / "dangling_dir" / "good.txt").write_text(good)
    os.symlink("/nonexistent/corpus.txt", tmp / "dangling_dir" / "gone.txt")
    (tmp / "fifo_dir").mkdir()
    (tmp / "fifo_dir" / "good.txt").write_text(good)
    os.mkfifo(tmp / "fifo_dir" / "pipe.txt")


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile_text")
    _write_files(tmp)
    return run_selected(request, str(tmp), SETUPS)


@pytest.mark.parametrize("c", CLI_CASES)
def test_cli_refuses_hostile_text(c: Case, outcomes):
    check_refused(c, outcomes[c.id], outcomes["_tmp"])


def test_the_table_covers_the_three_text_modules():
    modules = [p.values[0].module for p in CLI_CASES]
    assert {m: modules.count(m) for m in set(modules)} == {"word2vec": 16, "ngram": 7, "cooccurrence": 8}
    assert len({p.values[0].id for p in CLI_CASES}) == len(CLI_CASES)


# ----------------------------------------------------------------------------- damaged caches: set aside, made again

RUNS = {m: [SMOKE.format(m)] + [f"--config.{k}={v}" for k, v in keys.items()] for m, keys in SETUPS.items()}
DAMAGED = [  # (module, the cache's file, how it is damaged)
    ("word2vec", "corpus.npz", "truncated"),
    ("word2vec", "corpus_ids-*.npy", "empty"),
    ("ngram", "ngram_counts.npz", "garbage"),
    ("cooccurrence", "cooccurrence_counts.npz", "truncated"),
    ("cooccurrence", "corpus.npz", "garbage"),
]


def damage(path: str, how: str) -> None:
    data = pathlib.Path(path).read_bytes()
    blob = {"truncated": data[: len(data) // 2], "empty": b"", "garbage": b"not a cache at all\n" * 40}[how]
    pathlib.Path(path).write_bytes(blob)


def _damage_and_rerun(d: tuple[str, str, str], finished: tuple, tmp: str) -> dict:
    """A copy of the module's finished tiny run with the cache of DAMAGED case d damaged, rerun."""
    module, pattern, how = d
    if finished[0] != 0:
        return {"failure": f"the first run of train.{module} failed:\n{finished[2][-3000:]}"}
    workdir = os.path.join(tmp, "-".join(d).replace("*", "x"))
    shutil.copytree(os.path.join(tmp, module), workdir)
    (path,) = glob.glob(os.path.join(workdir, pattern))
    damage(path, how)
    rc, out, err = run_cli(module, workdir, RUNS[module], tmp)
    return {"path": path, "rc": rc, "out": out, "err": err, "workdir": workdir}


@pytest.fixture(scope="module")
def reruns(tmp_path_factory):
    """Each DAMAGED case's rerun of its module on a copy of a finished tiny run whose cache was then damaged."""
    tmp = str(tmp_path_factory.mktemp("damaged_text_caches"))
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        firsts = {m: pool.submit(run_cli, m, os.path.join(tmp, m), flags, tmp) for m, flags in RUNS.items()}
        finished = {m: f.result() for m, f in firsts.items()}
        futures = {d: pool.submit(_damage_and_rerun, d, finished[d[0]], tmp) for d in DAMAGED}
        return {d: f.result() for d, f in futures.items()}


@pytest.mark.parametrize("module, pattern, how", DAMAGED)
def test_a_damaged_text_cache_is_set_aside_and_made_again(module, pattern, how, reruns):
    r = reruns[(module, pattern, how)]
    assert "failure" not in r, r.get("failure")
    assert r["rc"] == 0 and "Traceback" not in r["err"], r["err"][-3000:]
    warnings = [line for line in r["out"].splitlines() if line.startswith("warning:")]
    assert warnings == [line for line in warnings if f"{r['path']} is damaged" in line] and len(warnings) == 1
    assert os.path.exists(r["path"] + ".damaged")
    (remade,) = glob.glob(os.path.join(r["workdir"], pattern))  # made again, and readable
    np.load(remade, allow_pickle=False)


# ----------------------------------------------------------------------------- a corpus that grows while it is read

GROWS = """import sys, runpy
from train.data import text

opened = text._text_file


def grows_after_opening(path):  # the corpus is appended to between its fingerprint and its count
    source = opened(path)
    with open(path, "a") as f:
        f.write("zebra yak zebra yak zebra yak\\n" * 12)
    return source


text._text_file = grows_after_opening
runpy.run_module(sys.argv.pop(1), run_name="__main__")
"""
GROWN = {  # module: (flags, what its rerun says when it finds its counts again)
    "word2vec": ([W2V, "--config.min_count=1", "--config.num_steps=2"], "word2vec sgns"),
    "ngram": (["--config.order=2", "--config.min_count=1"], "ngram: loaded the counts"),
    "cooccurrence": ([COOC, "--config.min_count=1", "--config.embed_dim=4"], "cooccurrence: loaded the counts"),
}


def run_grown(driver, module: str, workdir: str, args, tmp: str):
    """(exit code, stdout, stderr) of train.<module> run by the driver that grows its corpus after opening it."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(driver), f"train.{module}", f"--workdir={workdir}", *args]
    p = subprocess.run(cmd + [f"--config.data_dir={tmp}/tfds"], cwd=ROOT, env=env, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def _grow_and_rerun(module: str, tmp: str) -> dict:
    """A run whose corpus grows between its fingerprint and its count, then a rerun on the grown file."""
    tmp = os.path.join(tmp, module)
    os.makedirs(tmp)
    corpus, driver, workdir = (os.path.join(tmp, name) for name in ("grows.txt", "grows_driver.py", "run"))
    rng = np.random.default_rng(0)
    with open(corpus, "w") as f:
        f.writelines(" ".join(rng.choice([f"w{i}" for i in range(20)], 8)) + "\n" for _ in range(300))
    with open(driver, "w") as f:
        f.write(GROWS)
    before = text_data.open_corpus(f"text:{corpus}").fingerprint
    flags, _ = GROWN[module]
    flags = [*flags, f"--config.corpus=text:{corpus}"]
    first = run_grown(driver, module, workdir, flags, tmp)
    more = ["--config.num_steps=4"] if module == "word2vec" else []  # continues the run: the data are the same
    again = run_cli(module, workdir, flags + more, tmp) if first[0] == 0 else None
    return {"before": before, "corpus": corpus, "workdir": workdir, "first": first, "again": again}


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("grown_corpora"))
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        futures = {m: pool.submit(_grow_and_rerun, m, tmp) for m in GROWN}
        return {m: f.result() for m, f in futures.items()}


@pytest.mark.parametrize("module", sorted(GROWN))
def test_a_corpus_that_grows_while_read_is_fingerprinted_by_the_bytes_counted(module, grown):
    """The fingerprint in data.json and the caches' keys are of the bytes counted (the grown file): a rerun on the
    file as it now is finds them again, where a fingerprint taken apart from the read named the file before."""
    r = grown[module]
    assert r["first"][0] == 0, r["first"][2][-3000:]
    workdir, now = r["workdir"], text_data.open_corpus(f"text:{r['corpus']}").fingerprint
    assert now != r["before"]
    if module == "ngram":
        with np.load(os.path.join(workdir, train_ngram.COUNTS_FILE)) as f:
            assert str(f["key"]) == f"{now}|min_count=1|max_vocab=0|order=2" and "zebra" in list(f["words"])
    else:
        corpus_key = text_data.cache_key(now, 1, 0 if module == "word2vec" else train_cooc.get_config().max_vocab)
        assert text_data.cached_key(workdir) == corpus_key
        assert "zebra" in text_data.load_cached(workdir, corpus_key).vocab
    if module == "word2vec":
        with open(os.path.join(workdir, "data.json")) as f:
            assert json.load(f)["corpus"] == corpus_key
    rc, out, err = r["again"]
    assert rc == 0 and GROWN[module][1] in out and "is damaged" not in out, err[-3000:]


# ----------------------------------------------------------------------------- in process: the loaders themselves


def _saved_counts(module: str, path: str) -> str:
    """Save a small count file of module at path; its key."""
    from zoo import ngram
    from zoo.text import Vocab

    if module == "cooccurrence":
        train_cooc.save_counts(path, "k", scipy.sparse.csr_matrix(np.array([[0, 2, 1], [2, 0, 0], [1, 0, 0]])))
        return "k"
    vocab = Vocab(["<s>", "</s>", "<unk>", "a", "b"], np.array([0, 2, 0, 3, 1]), unk="<unk>")
    lines = vocab.encode_lines([["a", "b"], ["a", "a"]], unknown="map")
    train_ngram.save_counts(path, "k", vocab, ngram.count_ngrams(lines, 2, vocab_size=5, bos=0, eos=1))
    return "k"


def _garble_content(module: str, path: str) -> None:
    """A readable file whose content is damaged: ids outside the vocabulary."""
    with np.load(path) as f:
        arrays = dict(f)
    if module == "cooccurrence":
        arrays["indices"] = arrays["indices"] + 100
    else:
        arrays["grams1"] = arrays["grams1"] + 100
    np.savez(path, **arrays)


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", "content"])
@pytest.mark.parametrize("module", ["ngram", "cooccurrence"])
def test_damaged_counts_are_set_aside_in_one_line(module, how, tmp_path, capsys):
    path = str(tmp_path / "counts.npz")
    key = _saved_counts(module, path)
    load = {
        "ngram": lambda: train_ngram.load_counts(path, key, 2),
        "cooccurrence": lambda: train_cooc.load_counts(path, key, 3),
    }
    assert load[module]() is not None
    if how == "content":
        _garble_content(module, path)
    else:
        damage(path, how)
    capsys.readouterr()
    assert load[module]() is None
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith(f"warning: {path} is damaged") and os.path.exists(path + ".damaged")


@pytest.mark.parametrize("binary", [False, True])
def test_a_vector_file_header_claiming_terabytes_allocates_nothing(binary, tmp_path):
    """A header 'V D' is trusted no further than the bytes after it: a damaged one claiming 10^12 entries reads as
    a file that ends early, not as a MemoryError."""
    from train.data import vectors

    path = tmp_path / "vectors"
    save = vectors.save_word2vec_binary if binary else vectors.save_word2vec_text
    save(path, ["a", "b"], np.eye(2))
    data = path.read_bytes()
    path.write_bytes(b"1000000000000 2" + data[data.index(b"\n") :])
    load = vectors.load_word2vec_binary if binary else vectors.load_word2vec_text
    with pytest.raises(vectors.VectorFileError, match="ends .*2 of the 1000000000000|file ends"):
        load(path)
