"""train.word2vec end to end on tiny corpora, its step against zoo.word2vec_rows on 4 devices, and user errors."""

import json
import math
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from tests.configs import smoke_config
from train import word2vec as tw
from train.core.errors import ConfigError, DataError
from train.data import corpus as planted, vectors


def tiny_config(**overrides):
    """The smoke config; the native kernel on one thread, where it is deterministic, as the resume checks need."""
    return smoke_config(tw, **{"threads": 1, **overrides})


def read_metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def losses(workdir):
    return {r["step"]: r["loss"] for r in read_metrics(workdir) if "loss" in r}


def load_vectors(workdir):
    return vectors.load_word2vec_text(os.path.join(workdir, "vectors.txt"))


def test_auto_cpu_devices_keep_large_tables_on_one_device():
    """cpu_devices 0 splits the CPU per core while a V x embed_dim float32 table fits in ONE_DEVICE_TABLE_BYTES,
    one device beyond; a set count, or replicated updates, are left as they are; the native kernel (it spreads over
    the cores itself) takes one device."""
    assert tw.cpu_devices_for(tiny_config(embed_dim=100, cpu_devices=0), 900) == 1
    c = tiny_config(embed_dim=100, cpu_devices=0, kernel="xla")
    fits = tw.ONE_DEVICE_TABLE_BYTES // (4 * 100)
    assert tw.cpu_devices_for(c, fits) == 0  # 62,914 words x 100 floats: just under 24 MiB
    assert tw.cpu_devices_for(c, fits + 1) == 1
    assert tw.cpu_devices_for(c, 78_127) == 1 and tw.cpu_devices_for(c, 50_070) == 0  # the measured two
    c.embed_dim = 300
    assert tw.cpu_devices_for(c, 50_070) == 1  # 60 MB
    c.cpu_devices = 2
    assert tw.cpu_devices_for(c, 10**6) == 2
    c.cpu_devices, c.device_updates = 0, "replicated"
    assert tw.cpu_devices_for(c, 10**6) == 0


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """6 steps in one go: the reference for the layout, resume and determinism."""
    workdir = str(tmp_path_factory.mktemp("straight"))
    figures = tw.run(tiny_config(), workdir)
    return workdir, figures


def test_workdir_layout(straight):
    workdir, figures = straight
    words, W = load_vectors(workdir)
    words_bin, W_bin = vectors.load_word2vec_binary(os.path.join(workdir, "vectors.bin"))
    with open(os.path.join(workdir, "vocab.txt")) as f:
        vocab = [line.split()[0] for line in f]
    assert words == words_bin == vocab and W.shape == (len(vocab), 16)
    np.testing.assert_array_equal(W, W_bin)  # 9 significant digits round-trip float32 exactly
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4", "6"]
    records = read_metrics(workdir)
    logged = [r for r in records if "loss" in r]
    assert [r["step"] for r in logged] == [2, 4, 6]
    for r in logged:
        assert np.isfinite(r["loss"]) and r["examples_per_sec"] > 0 and r["dropped"] == 0
    evals = [r for r in records if "eval/analogy_accuracy" in r]
    assert len(evals) == 1 and evals[0]["step"] == 6
    assert 0 <= evals[0]["eval/analogy_accuracy"] <= 1 and -1 <= evals[0]["eval/wordsim_spearman"] <= 1
    assert evals[0]["eval/analogy_questions"] > 1000 and "eval/analogy/family" in evals[0]
    assert figures["eval/analogy_accuracy"] == evals[0]["eval/analogy_accuracy"]
    assert os.listdir(os.path.join(workdir, "samples")) == ["planted_pairs_pca_000006.png"]
    for name in ("vectors.tsv", "metadata.tsv", "projector_config.pbtxt"):
        assert os.path.isfile(os.path.join(workdir, "projector", name))
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["num_steps"] == 6


def test_more_steps_resume_from_the_checkpoint(straight, tmp_path):
    workdir = str(tmp_path)
    tw.run(tiny_config(num_steps=4), workdir)
    tw.run(tiny_config(num_steps=6), workdir)
    ref = losses(straight[0])
    got = losses(workdir)
    assert got[2] == ref[2] and got[4] == ref[4]
    assert got[6] == pytest.approx(ref[6], rel=1e-6)  # steps 5-6 ran after the restore
    np.testing.assert_allclose(load_vectors(workdir)[1], load_vectors(straight[0])[1], rtol=1e-6, atol=1e-7)


def test_interrupted_run_resumes_with_the_decaying_learning_rate(tmp_path):
    config = dict(min_learning_rate=1e-4, num_steps=4, checkpoint_every=2, log_every=1)
    ref = str(tmp_path / "ref")
    tw.run(tiny_config(**config), ref)
    cut = str(tmp_path / "cut")
    shutil.copytree(ref, cut)
    shutil.rmtree(os.path.join(cut, "checkpoints", "4"))  # as if killed between step 2's and 4's checkpoints
    os.remove(os.path.join(cut, "vectors.txt"))
    tw.run(tiny_config(**config), cut)
    lr = [r["learning_rate"] for r in read_metrics(ref) if "learning_rate" in r]
    assert all(a > b for a, b in zip(lr, lr[1:]))
    np.testing.assert_allclose(load_vectors(cut)[1], load_vectors(ref)[1], rtol=1e-6, atol=1e-7)
    again = [r["loss"] for r in read_metrics(cut) if "loss" in r][-2:]
    assert again == pytest.approx([losses(ref)[3], losses(ref)[4]], rel=1e-6)


def test_seed_sweep_replica_is_the_single_run(straight, tmp_path):
    c = tiny_config()
    c.sweep.seeds = (0, 1)  # two replicas in one vmapped program (train/loop.py)
    tw.run(c, str(tmp_path))
    W0, W1 = load_vectors(tmp_path / "replica_0")[1], load_vectors(tmp_path / "replica_1")[1]
    np.testing.assert_allclose(W0, load_vectors(straight[0])[1], rtol=1e-4, atol=1e-6)
    assert not np.allclose(W0, W1)


MULTI_DEVICE = """
import dataclasses, jax, numpy as np
from tests.test_train_word2vec import tiny_config
from train.core import loop, parallel
from train import word2vec as tw
from train.data import word2vec_examples as w2v_examples, word2vec_step
from zoo import word2vec_rows
assert jax.device_count() == 4
mesh = parallel.data_mesh()
for model in ("sgns", "cbow"):
    c = tiny_config(model=model, share_negatives=2 if model == "sgns" else 1)
    corpus, _ = w2v_examples.load_corpus(c, None)
    want = {}
    for mode, sync in (("replicated", 2), ("local", 2), ("local", 0)):
        c.device_updates, c.sync_minibatches = mode, sync
        # minibatches per device follow the mode
        examples = w2v_examples.TrainingExamples(corpus, c, jax.device_count())
        task = tw.make_task(c, corpus, ([], []), examples)
        record = examples.record(c.seed, 0)
        start = loop.init_state(task, c, mesh)
        tables = {k: np.asarray(v) for k, v in start.params.items()}
        # the reference: zoo's row steps one minibatch at a time, in a Python loop; the noise words drawn as the
        # step draws them from its key: all at once ('replicated'), or per device from fold_in(key, d) ('local')
        M, lr, G = examples.minibatches, c.learning_rate, c.share_negatives  # tiny_config's rate is constant
        key, rows = loop.step_key(c.seed, 0), M * c.minibatch_size // G
        if mode == "replicated":
            negatives = np.asarray(examples.negatives(key, rows))
        else:
            negatives = np.concatenate([np.asarray(examples.negatives(jax.random.fold_in(key, d), rows // 4))
                                        for d in range(4)])
        keys = [k for k in record if k != "dropped"] + ["negatives"]
        split = {k: np.split(negatives if k == "negatives" else record[k], M) for k in keys}
        def sgd(t, minibatches):
            for j in minibatches:
                mb = {k: split[k][j] for k in keys}
                if model == "sgns":
                    t, _ = word2vec_rows.sgns_rows_step(t, mb["inputs"], mb["outputs"], mb["negatives"], mb["weights"],
                                                        lr)
                else:
                    t, _ = word2vec_rows.cbow_rows_step(t, mb["contexts"], mb["owners"], mb["mask"], mb["outputs"],
                                                        mb["negatives"], mb["weights"], lr)
            return {k: np.asarray(v) for k, v in t.items()}
        def local(t, sync):  # device d owns minibatches [d M/4, (d+1) M/4); every `sync` of them the changes are summed
            per = M // 4
            for r in range(0, per, sync):
                rounds = [sgd(t, range(d * per + r, d * per + r + sync)) for d in range(4)]
                t = {k: t[k] + sum(s[k] - t[k] for s in rounds) for k in t}
            return t
        if mode == "replicated":
            w = sgd(tables, range(M))
        else:
            per, rounds_of = M // 4, examples.sync_minibatches
            assert per % rounds_of == 0 and (rounds_of == 2 < per if sync else rounds_of == per), (per, rounds_of)
            w = local(tables, rounds_of)
        state, _, _ = loop.compile_step(task, c, mesh)(start, parallel.shard_batch(record, mesh))
        for k in tables:
            np.testing.assert_allclose(np.asarray(state.params[k]), w[k], rtol=1e-4, atol=1e-6)
        if (mode, sync) == ("local", 2):  # the sums of the touched rows are the dense sums, in any chunks
            dense = word2vec_step.make_train_step(c, M, mesh, examples.negatives, examples.sync_minibatches,
                                                  dense_sums=True)
            vocab = len(tables["in"])
            chunks = ((dense, parallel.SUM_CHUNK_ROWS), (task.train_step, 50), (task.train_step, vocab - 1))
            for step_fn, chunk in chunks:
                parallel.SUM_CHUNK_ROWS, default = chunk, parallel.SUM_CHUNK_ROWS
                other = dataclasses.replace(task, train_step=step_fn)
                fresh = loop.init_state(task, c, mesh)  # the first step took `start` (donated)
                again, _, _ = loop.compile_step(other, c, mesh)(fresh, parallel.shard_batch(record, mesh))
                parallel.SUM_CHUNK_ROWS = default
                for k in tables:
                    np.testing.assert_array_equal(np.asarray(again.params[k]), np.asarray(state.params[k]))
            assert vocab > 2 * 50  # so 50 rows a chunk take several chunks (and vocab - 1 rows two)
        want[mode, sync] = w
    # the three differ: summing per round is not summing per step, and neither is in-order SGD
    assert not np.allclose(want["replicated", 2]["in"], want["local", 2]["in"], atol=1e-4)
    assert not np.allclose(want["local", 2]["in"], want["local", 0]["in"], atol=1e-4)
    print("OK", model)
"""


def test_four_devices_replicated_is_in_order_sgd_and_local_sums_each_devices_sgd():
    """'replicated': every device runs all minibatches in order (the 1-device step); 'local': each device
    runs SGD on its quarter of them, and every sync_minibatches (2, or 0: once per step) the tables change
    by the sum of the four devices' changes. Tolerance rtol 1e-4: float32 sums in another order. The sums of
    only the touched rows (sum_touched, in chunks of 50 rows or of all rows but one) equal the dense sums exactly."""
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        "JAX_THREEFRY_PARTITIONABLE": str(jax.config.jax_threefry_partitionable),
    }
    out = subprocess.run([sys.executable, "-c", MULTI_DEVICE], capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK sgns" in out.stdout and "OK cbow" in out.stdout


def test_resume_refuses_a_different_run(straight, tmp_path):
    workdir = str(tmp_path / "w")
    shutil.copytree(straight[0], workdir)
    with pytest.raises(ConfigError, match=r"config.embed_dim=8 differs from 16"):
        tw.run(tiny_config(embed_dim=8), workdir)


@pytest.mark.parametrize(
    "model,share,corpus", [("cbow", 1, "text"), ("skipgram_softmax", 1, "generated"), ("sgns", 8, "generated")]
)
def test_model_variants_train(model, share, corpus, tmp_path):
    if corpus == "text":  # a user's file: capitals and punctuation, one sentence a line
        path = tmp_path / "corpus.txt"
        path.write_text("\n".join(line.capitalize() + "." for line in planted.generate_corpus(50_000, seed=3)))
        corpus = f"text:{path}"
    workdir = str(tmp_path / "run")
    figures = tw.run(
        tiny_config(
            model=model, share_negatives=share, corpus=corpus, log_every=1, min_learning_rate=1e-4, learning_rate=0.05
        ),
        workdir,
    )
    loss = [r["loss"] for r in read_metrics(workdir) if "loss" in r]
    assert len(loss) == 6 and all(np.isfinite(loss)) and loss[-1] < loss[0]
    words, W = load_vectors(workdir)
    assert np.all(np.isfinite(W)) and "eval/wordsim_spearman" in figures
    assert "king" in words and all(w == w.lower() for w in words)
    if model == "skipgram_softmax":
        assert loss[0] == pytest.approx(math.log(len(words)), rel=0.02)  # u = 0 at init: uniform softmax


def test_default_recipe_recovers_king_man_woman_queen(tmp_path):
    """`python -m train.word2vec` as a user runs it, on a smaller generated corpus (1M words seen instead of
    10M): the native kernel on one thread per core, and the planted analogies emerge."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_THREEFRY_PARTITIONABLE": "false"}
    env.pop("XLA_FLAGS", None)
    workdir = str(tmp_path / "w2v")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "train.word2vec",
            f"--workdir={workdir}",
            "--config.num_tokens=200000",
            "--config.progress=False",
        ],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    threads = len(os.sched_getaffinity(0))
    assert f"on 1 cpu device(s), word2vec.c's SGD in the native kernel on {threads} threads" in proc.stdout
    assert "king - man + woman ~ queen" in proc.stdout
    figures = read_metrics(workdir)[-1]
    assert figures["eval/analogy/family"] > 0.35 and figures["eval/analogy_accuracy"] > 0.15  # chance: 1/900
    assert figures["eval/wordsim_spearman"] > 0.2


# ----------------------------------------------------------------------------- user errors


def test_missing_corpus_file_exits_2_with_one_line(tmp_path):
    workdir = tmp_path / "never"
    missing = tmp_path / "missing.txt"
    proc = subprocess.run(
        [sys.executable, "-m", "train.word2vec", f"--workdir={workdir}", f"--config.corpus=text:{missing}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(missing) in lines[0]
    assert "no such file" in lines[0] and not workdir.exists()


def test_bad_corpora_and_model_raise_before_touching_the_workdir(tmp_path):
    workdir = tmp_path / "never"
    empty = tmp_path / "empty.txt"
    empty.write_text("\n ... !!\n\n")
    with pytest.raises(DataError, match="holds no words"):
        tw.run(tiny_config(corpus=f"text:{empty}"), str(workdir))
    once = tmp_path / "once.txt"
    once.write_text("every word here appears once\nand never again\n")
    with pytest.raises(DataError, match=r"no word occurs min_count=5 times .*'again', occurs 1 times"):
        tw.run(tiny_config(corpus=f"text:{once}"), str(workdir))
    with pytest.raises(
        ConfigError, match=r"config.model='glove' is not accepted; accepted: sgns, cbow, skipgram_softmax"
    ):
        tw.run(tiny_config(model="glove"), str(workdir))
    with pytest.raises(ConfigError, match=r"config.share_negatives=3 must divide config.minibatch_size=256"):
        tw.run(tiny_config(share_negatives=3), str(workdir))
    with pytest.raises(DataError, match=r"config.analogies='/nonexistent/q.txt' cannot be read"):
        tw.run(tiny_config(analogies="/nonexistent/q.txt"), str(workdir))
    single = tmp_path / "single.txt"
    single.write_text("word\n" * 20)
    with pytest.raises(DataError, match="keeps 1 distinct word at min_count=5; accepted: more words than"):
        tw.run(tiny_config(corpus=f"text:{single}"), str(workdir))
    solo = tmp_path / "solo.txt"
    solo.write_text("".join(f"word{i}\n" for i in range(10)) * 5)
    with pytest.raises(DataError, match="yields no training example"):
        tw.run(tiny_config(corpus=f"text:{solo}"), str(workdir))
    assert not workdir.exists()


# ----------------------------------------------------------------------------- FastText and hierarchical softmax


def _first_step(c):
    """(tables before, tables after one jitted step, the step's record, its noise words, the examples) of config c
    on the generated corpus, every device running every minibatch in order ('replicated': the 1-device step)."""
    from train.core import loop, parallel
    from train.data import word2vec_examples as w2v_examples

    c.device_updates = "replicated"
    corpus, _ = w2v_examples.load_corpus(c, None)
    examples = w2v_examples.TrainingExamples(corpus, c, jax.device_count())
    task = tw.make_task(c, corpus, ([], []), examples)
    mesh = parallel.data_mesh()
    record = examples.record(c.seed, 0)
    start = loop.init_state(task, c, mesh)
    before = {k: np.asarray(v, np.float64) for k, v in start.params.items()}
    rows = examples.minibatches * c.minibatch_size
    negatives = None if c.loss == "hs" else np.asarray(examples.negatives(loop.step_key(c.seed, 0), rows))
    state, _, _ = loop.compile_step(task, c, mesh)(start, parallel.shard_batch(record, mesh))
    return before, {k: np.asarray(v) for k, v in state.params.items()}, record, negatives, examples, corpus


def _sgd_reference(before, minibatches, output_layer, lr):
    """A numpy loop of word2vec's update: per minibatch, every example's gradient from the tables at the
    minibatch's start, summed. An example is (input rows, output word, index): h = mean of the input rows,
    output_layer(index, output) lists (row of 'out', label) pairs; g = (label - sigma(u.h)) lr, u += g h,
    and every input row += sum g u (undivided, as word2vec's CBOW, fastText and gensim)."""
    t = {k: v.copy() for k, v in before.items()}
    for examples in minibatches:
        start = {k: v.copy() for k, v in t.items()}
        for rows, output, index in examples:
            h, work = start["in"][rows].mean(axis=0), np.zeros(start["in"].shape[1])
            for row, label in output_layer(index, output):
                u = start["out"][row]
                g = (label - 1 / (1 + math.exp(-float(u @ h)))) * lr
                work += g * u
                t["out"][row] += g * h
            for r in rows:
                t["in"][r] += work
    return t


def _tiny(**overrides):
    return tiny_config(
        num_tokens=5000, batch_size=512, minibatch_size=32, embed_dim=8, window=3, negatives=3, **overrides
    )


def test_fasttext_step_is_a_numpy_loop_over_each_words_ngram_rows():
    """model=fasttext: one jitted step equals word2vec's SGD in a numpy loop where each pair's input word is the
    mean of its own row and its n-grams' rows V + gensim's ft_ngram_hashes (rtol 1e-4: float32 against float64);
    the pairs are sgns's, in order."""
    from gensim.models.fasttext import ft_ngram_hashes

    from train.data import word2vec_examples as w2v_examples

    c = _tiny(model="fasttext", bucket=300, minn=2, maxn=4, kernel="xla")  # XLA's minibatch row steps
    before, after, record, negatives, examples, corpus = _first_step(c)
    V, B = len(corpus.vocab), c.minibatch_size
    assert before["in"].shape == (V + 300, 8) and before["out"].shape == (V, 8)
    words = corpus.vocab.words
    word_rows = [[w] + [V + h for h in ft_ngram_hashes(words[w], 2, 4, 300)] for w in range(V)]
    # the same step's pairs as sgns makes them (the same draws), cut as the packed minibatches hold them
    pairs = w2v_examples.TrainingExamples(corpus, _tiny(model="sgns"))._examples(0, np.random.default_rng([c.seed, 0]))
    per_minibatch = record["weights"].reshape(-1, B).sum(axis=1).astype(int)
    assert per_minibatch.sum() == len(pairs[1]) and record["dropped"].sum() == 0
    minibatches, at = [], 0
    for j, n in enumerate(per_minibatch):
        np.testing.assert_array_equal(record["outputs"][j * B : j * B + n], pairs[1][at : at + n])
        minibatches.append([(word_rows[pairs[0][at + i]], pairs[1][at + i], j * B + i) for i in range(n)])
        at += n
    layer = lambda i, o: [(o, 1.0)] + [(k, 0.0) for k in negatives[i]]  # noqa: E731
    want = _sgd_reference(before, minibatches, layer, c.learning_rate)
    for k in want:
        np.testing.assert_allclose(after[k], want[k], rtol=1e-4, atol=1e-6)
    assert not np.allclose(after["in"][V:], before["in"][V:])  # the n-gram rows trained


def test_hierarchical_softmax_step_is_a_numpy_loop_of_word2vecs_hs_update():
    """loss=hs (skip-gram): one jitted step equals a numpy loop of word2vec.c's update along each output word's
    Huffman path (label 1 - code at each inner node), minibatch by minibatch (rtol 1e-4)."""
    from zoo import word2vec as w2v

    c = _tiny(model="sgns", loss="hs")
    before, after, record, _, _, corpus = _first_step(c)
    codes, points, lengths = w2v.huffman_tree(corpus.vocab.counts)
    B = c.minibatch_size
    real = record["weights"] > 0
    minibatches = [
        [(np.array([record["inputs"][i]]), record["outputs"][i], i) for i in range(j, j + B) if real[i]]
        for j in range(0, len(real), B)
    ]
    layer = lambda i, o: [(points[o, n], 1.0 - codes[o, n]) for n in range(lengths[o])]  # noqa: E731
    want = _sgd_reference(before, minibatches, layer, c.learning_rate)
    for k in want:
        np.testing.assert_allclose(after[k], want[k], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("model,loss", [("fasttext", "hs"), ("fasttext_cbow", "negative"), ("cbow", "hs")])
def test_fasttext_and_hs_variants_train(model, loss, tmp_path):
    figures = tw.run(
        tiny_config(model=model, loss=loss, bucket=2000, log_every=1, min_learning_rate=1e-4, learning_rate=0.05),
        str(tmp_path),
    )
    loss_curve = [r["loss"] for r in read_metrics(tmp_path) if "loss" in r]
    assert len(loss_curve) == 6 and all(np.isfinite(loss_curve)) and loss_curve[-1] < loss_curve[0]
    assert np.isfinite(figures["eval/wordsim_spearman"])
    assert os.path.exists(tmp_path / "subwords.npz") == model.startswith("fasttext")


def test_fasttext_run_gives_vectors_to_unseen_words_from_its_files(tmp_path):
    """A FastText run's vectors.txt holds each word's mean of its own and its n-grams' rows, and
    load_subword_vectors gives an unseen word the mean of its n-gram rows (hashed here by gensim), from the
    saved files alone."""
    from gensim.models.fasttext import ft_ngram_hashes

    tw.run(tiny_config(model="fasttext", bucket=3000, minn=3, maxn=5), str(tmp_path))
    words, W = load_vectors(tmp_path)
    kv = vectors.load_subword_vectors(str(tmp_path))
    with np.load(tmp_path / "subwords.npz") as f:
        own, ngrams = f["vectors_vocab"], f["vectors_ngrams"]
    assert kv.index_to_key == words and ngrams.shape == (3000, 16) and own.shape == (len(words), 16)
    for i in (0, 5, len(words) - 1):
        rows = [own[i]] + [ngrams[h] for h in ft_ngram_hashes(words[i], 3, 5, 3000)]
        np.testing.assert_allclose(W[i], np.mean(rows, axis=0), rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(kv[words[i]], W[i])
    for unseen in ("kingz", "queens-to-be", "naïveté"):
        assert unseen not in kv
        want = ngrams[ft_ngram_hashes(unseen, 3, 5, 3000)].mean(axis=0)
        np.testing.assert_allclose(kv[unseen], want, rtol=1e-5, atol=1e-7)
    assert kv.similarity("king", "king") == pytest.approx(1.0, abs=1e-6)
    assert not kv[""].any()  # "<>" has no n-gram of 3 to 5 characters: the zero vector, as gensim's


def test_subwords_of_table_are_save_subwords_file(tmp_path, monkeypatch):
    """save_subwords_of_table streams a device (or host) 'in' table into subwords.npz a block of rows at a time:
    the members np.load reads are save_subwords' of the table's two parts, names, dtypes, shapes and values."""
    rng = np.random.default_rng(0)
    host = rng.normal(size=(1003, 6)).astype(np.float32)
    (tmp_path / "want").mkdir()
    with np.load(vectors.save_subwords(str(tmp_path / "want"), host[:11], host[11:], 2, 5)) as f:
        want = {k: f[k] for k in f.files}
    monkeypatch.setattr(vectors, "SAVE_BLOCK_FLOATS", 6 * 64)  # blocks of 64 rows, the last one shorter
    for table in (jax.numpy.asarray(host), host):
        out = tmp_path / type(table).__name__
        out.mkdir()
        with np.load(vectors.save_subwords_of_table(str(out), table, 11, 2, 5)) as f:
            assert f.files == list(want)
            for k, v in want.items():
                assert f[k].dtype == v.dtype and f[k].shape == v.shape
                np.testing.assert_array_equal(f[k], v)
