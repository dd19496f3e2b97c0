"""word2vec against gensim: words/s, their ratio, analogy accuracy and wordsim Spearman on the same corpus.

    python -m benchmarks.word2vec_speed [--config.num_tokens=2000000 --config.share_negatives=16 ...]
                                        [--gensim_workers=2] [--nogensim]

Takes the same --config overrides as train.word2vec (default: skip-gram, negative 5, window 5, dim 100,
min_count 5, sample 1e-3, 5 epochs, alpha 0.025 -> 0.0001 on the generated 2M-token corpus). gensim
(pip install gensim; skipped if missing) trains on the very same sentences (the encoded corpus, so the
same vocabulary) with the matched hyperparameters: sg=1 (sgns) or sg=0, cbow_mean=1 (cbow). words/s is
epochs x corpus words / training seconds for both: gensim's train() (its vocabulary is built before the
clock starts), and our loop's steps with the input pipeline (steady state after the first, compiling
step; the end-to-end figure includes that step). words/cpu-s divides by the CPU seconds the process
used meanwhile (all threads: gensim's workers; our XLA thread and grain's data thread), which other
jobs on the machine disturb much less than wall time. Both are scored by zoo.word2vec on the planted
analogies and similarities. The load average is printed: these are shared machines.
"""

from __future__ import annotations

import copy
import logging
import os
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from benchmarks.common import device_line
from train import word2vec as train_word2vec
from train.core import loop, parallel
from train.evaluation import words as word_eval
from zoo.text import Vocab

config_flags.DEFINE_config_dict("config", train_word2vec.get_config())
flags.DEFINE_integer("gensim_workers", 2, "gensim worker threads (one per core is gensim's best).")
flags.DEFINE_bool("gensim", True, "Also train gensim (if installed); --nogensim skips it.")
flags.DEFINE_list(
    "share_negatives",
    [],
    "HogBatch sweep: train ours once per value (e.g. 1,4,16) instead of once with config.share_negatives.",
)


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def train_ours(c, corpus, eval_sets) -> dict:
    task = train_word2vec.make_task(c, corpus, eval_sets)
    mesh = parallel.data_mesh()
    state = loop.init_state(task, c, mesh)
    step = loop.compile_step(task, c, mesh)
    data_iter = task.batches(c.batch_size, c.seed)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    state, metrics, _ = step(state, parallel.shard_batch(next(data_iter), mesh))
    jax.block_until_ready(metrics)
    t1 = time.perf_counter()
    wait = parallel.wait_each_step() and not os.environ.get("NOWAIT")  # as the training loop does
    for _ in range(c.num_steps - 1):
        state, metrics, _ = step(state, parallel.shard_batch(next(data_iter), mesh))
        if wait:
            jax.block_until_ready(state)
    jax.block_until_ready(state.params)
    t2 = time.perf_counter()
    cpu = time.process_time() - cpu0
    figures, _ = task.evaluate(state, c.num_steps)
    words = c.num_steps * c.batch_size
    return dict(
        figures,
        words=words,
        secs=t2 - t0,
        steady_words_per_sec=(words - c.batch_size) / max(t2 - t1, 1e-9),
        words_per_sec=words / (t2 - t0),
        first_step_secs=t1 - t0,
        loss=float(metrics["loss"]),
        cpu_secs=cpu,
        W=np.asarray(state.params["in"]),
    )


def train_gensim(c, corpus, eval_sets, workers: int) -> dict | None:
    try:
        from gensim.models import Word2Vec
    except ImportError:
        print("gensim is not installed (pip install gensim): skipping it")
        return None
    if c.model not in ("sgns", "cbow"):
        print(f"gensim has no {c.model} (its hs=1 is a hierarchical softmax): skipping it")
        return None
    words = corpus.vocab.words
    ends = np.cumsum(corpus.sentence_lengths)
    sentences = [[words[i] for i in line] for line in np.split(corpus.ids, ends[:-1])]
    model = Word2Vec(
        vector_size=c.embed_dim,
        window=c.window,
        negative=c.negatives,
        hs=0,
        sg=1 if c.model == "sgns" else 0,
        cbow_mean=1,
        min_count=c.min_count,
        sample=c.subsample,
        alpha=c.learning_rate,
        min_alpha=c.min_learning_rate,
        workers=workers,
        seed=c.seed,
    )
    model.build_vocab(sentences)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    model.train(sentences, total_examples=len(sentences), epochs=c.num_epochs)
    secs = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    vocab = Vocab(list(model.wv.index_to_key))
    W = np.asarray(model.wv.vectors)
    figures = word_eval.evaluate_vectors(W, vocab, *eval_sets)
    n = c.num_epochs * len(corpus.ids)
    return dict(figures, words=n, secs=secs, words_per_sec=n / secs, cpu_secs=cpu, vocab=vocab, W=W)


def main(_):
    c = flags.FLAGS.config
    parallel.schedule_depth_first()
    parallel.split_cpu(c.cpu_devices)  # as train.word2vec does: all cores, before JAX starts
    train_word2vec.check_config(c)
    eval_sets = word_eval.load_eval_sets(c)
    corpus, _ = train_word2vec.load_corpus(c, None)
    c.num_steps = train_word2vec.resolve_num_steps(c, corpus)
    print(device_line())
    print(
        f"corpus {corpus.name}: {len(corpus.ids)} words, vocabulary {len(corpus.vocab)}; {c.model}, dim {c.embed_dim}, "
        f"window {c.window}, negatives {c.negatives}, sample {c.subsample}, {c.num_epochs} epochs, "
        f"minibatch {c.minibatch_size}, share_negatives {c.share_negatives}"
    )
    print(f"before: {load()}, {os.cpu_count()} CPUs")
    logging.getLogger("gensim").setLevel(logging.WARNING)
    runs = []
    for g in flags.FLAGS.share_negatives or [c.share_negatives]:
        cg = copy.deepcopy(c)
        cg.share_negatives = int(g)
        train_word2vec.check_config(cg)
        runs.append((f"ours, share_negatives {cg.share_negatives}", train_ours(cg, corpus, eval_sets)))
        print(f"after {runs[-1][0]}: {load()}")
    theirs = train_gensim(c, corpus, eval_sets, flags.FLAGS.gensim_workers) if flags.FLAGS.gensim else None
    if theirs:
        print(f"after gensim: {load()}")

    def row(name, r, speed):
        return (
            f"{name:<34} {speed:>10,.0f} {r['secs']:>8.1f} {r['words'] / r['cpu_secs']:>13,.0f} "
            f"{r.get('analogy_accuracy', float('nan')):>9.3f} {r.get('wordsim_spearman', float('nan')):>9.3f}"
        )

    print(f"{'':<34} {'words/s':>10} {'train s':>8} {'words/cpu-s':>13} {'analogy':>9} {'spearman':>9}")
    for name, ours in runs:
        print(row(name, ours, ours["words_per_sec"]))
        print(
            row("  after the compiling step", ours, ours["steady_words_per_sec"])
            + f"   first step {ours['first_step_secs']:.1f} s"
        )
    if theirs:
        print(row(f"gensim ({flags.FLAGS.gensim_workers} workers)", theirs, theirs["words_per_sec"]))
        for name, ours in runs:
            print(
                f"ratio {name} / gensim: {ours['words_per_sec'] / theirs['words_per_sec']:.2f} end to end, "
                f"{ours['steady_words_per_sec'] / theirs['words_per_sec']:.2f} after compile"
            )
    ours = runs[0][1]
    for k in sorted(k for k in ours if k.startswith("analogy/")):
        print(
            f"  {k:<40} "
            + "  ".join(f"{r[k]:.3f}" for _, r in runs)
            + (f"   gensim {theirs[k]:.3f}" if theirs and k in theirs else "")
        )
    print(word_eval.analogy_line(ours["W"], corpus.vocab))
    if theirs:
        print("gensim: " + word_eval.analogy_line(theirs["W"], theirs["vocab"]))


if __name__ == "__main__":
    app.run(main)
