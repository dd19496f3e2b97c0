"""One timed word2vec run for benchmarks.word2vec_speed, in a process of its own: ours or gensim's.

    python -m benchmarks.word2vec_worker ours|gensim SPEC.json

SPEC.json holds the config (train.word2vec's keys), the corpus file (one sentence a line, tokens separated
by spaces), the output directory and, for gensim, its workers and input mode. The run does what a user waits
for, nothing else: read and count the corpus, build the vocabulary, (ours) compile, train, write the vectors
(word2vec binary format, OUT/vectors.bin; for FastText also OUT/subwords.npz, the n-gram table). It writes
OUT/result.json: wall-clock marks (time.time(), so the parent can subtract its own spawn time), the words
trained and the vocabulary. Nothing is evaluated here: the
parent scores both systems' vectors.bin the same way. Only the system measured is imported (gensim's run never
loads JAX).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kilobytes


def run_ours(spec: dict) -> dict:
    marks = {"started": time.time()}
    from train.core import parallel

    parallel.schedule_depth_first()  # as train.word2vec does, before JAX starts
    cfg = spec["config"]
    import jax

    from train import word2vec as tw
    from train.core import loop
    from train.data import vectors, word2vec_examples as w2v_examples

    c = tw.get_config()
    for key, value in cfg.items():
        if not isinstance(value, dict):  # the sweep keys stay unset: one run
            c[key] = value
    c.corpus = "text:" + spec["file"]
    tw.SCHEMA.check(c)
    marks["imported"] = time.time()
    corpus, _ = w2v_examples.load_corpus(c, spec["out"])  # no cache there: read and counted; the ids spill beside OUT
    marks["counted"] = time.time()
    parallel.split_cpu(tw.cpu_devices_for(c, len(corpus.vocab)))  # as train.word2vec does, before JAX starts
    c.num_steps = w2v_examples.resolve_num_steps(c, corpus)
    examples = w2v_examples.TrainingExamples(corpus, c, jax.device_count())
    task = tw.make_task(c, corpus, ([], []), examples)
    mesh = parallel.data_mesh()
    loop.trim_host_heap()  # as the training loop does before and after the initialisation
    state = jax.block_until_ready(loop.init_state(task, c, mesh))
    loop.trim_host_heap()
    step = loop.compile_step(task, c, mesh)
    data = task.batches(c.batch_size, c.seed)
    state, metrics, _ = step(state, parallel.shard_batch(next(data), mesh))  # compiles, then runs step 0
    jax.block_until_ready(metrics)
    loop.trim_host_heap()  # as the training loop does after the first step
    marks["compiled"] = time.time()
    wait = parallel.wait_each_step()  # as the training loop does
    queued = metrics
    for _ in range(c.num_steps - 1):
        state, metrics, _ = step(state, parallel.shard_batch(next(data), mesh))
        if wait:
            jax.block_until_ready(state)
        # At most one step queued behind the running one, as the loop's syncs bound it: unawaited, the loop runs
        # ahead of the device and every queued step holds its batch (FastText's 40 MB: 1.5 GB more at 40 steps).
        jax.block_until_ready(queued)
        queued = metrics
    jax.block_until_ready(state.params)
    marks["trained"] = time.time()
    # as train.word2vec's export: composed and written from the device table, a block at a time, no host copy
    W = examples.word_vectors(state.params["in"])  # FastText: each word's mean of its own and its n-grams' rows
    vectors.save_word2vec_binary(os.path.join(spec["out"], "vectors.bin"), corpus.vocab.words, W)
    if c.model in w2v_examples.FASTTEXT_MODELS:
        vectors.save_subwords_of_table(spec["out"], state.params["in"], len(corpus.vocab), c.minn, c.maxn)
    marks["written"] = time.time()
    return {
        "marks": marks,
        "corpus_words": int(len(corpus.ids)),
        "epochs": c.num_steps * c.batch_size / len(corpus.ids),
        "trained_words": (c.num_steps - 1) * c.batch_size,  # the words of the steps after the compiling one
        "vocabulary": len(corpus.vocab),
        "devices": jax.device_count(),
        "peak_rss_bytes": peak_rss_bytes(),
    }


def run_gensim(spec: dict) -> dict:
    marks = {"started": time.time()}
    import logging

    from gensim.models import FastText, Word2Vec
    from gensim.models.word2vec import LineSentence

    logging.getLogger("gensim").setLevel(logging.WARNING)
    c, path = spec["config"], spec["file"]
    fasttext = c["model"].startswith("fasttext")
    hs = c.get("loss") == "hs"
    subwords = dict(min_n=c["minn"], max_n=c["maxn"], bucket=c["bucket"]) if fasttext else {}
    model = (FastText if fasttext else Word2Vec)(
        vector_size=c["embed_dim"],
        window=c["window"],
        negative=0 if hs else c["negatives"],
        hs=int(hs),
        sg=1 if c["model"] in ("sgns", "fasttext") else 0,
        cbow_mean=1,
        min_count=c["min_count"],
        max_final_vocab=c["max_vocab"] or None,
        sample=c["subsample"],
        alpha=c["learning_rate"],
        min_alpha=c["min_learning_rate"],
        workers=spec["gensim_workers"],
        seed=c["seed"],
        **subwords,
    )
    marks["imported"] = time.time()
    if spec["gensim_input"] == "corpus_file":  # gensim's own file reader in every worker (no GIL-bound feeder)
        model.build_vocab(corpus_file=path)
        marks["counted"] = time.time()
        model.train(corpus_file=path, total_words=model.corpus_total_words, epochs=c["num_epochs"])
    else:  # LineSentence: the file streamed, split on spaces, by one feeder thread
        sentences = LineSentence(path)
        model.build_vocab(sentences)
        marks["counted"] = time.time()
        model.train(sentences, total_examples=model.corpus_count, epochs=c["num_epochs"])
    marks["compiled"] = marks["counted"]  # nothing to compile
    marks["trained"] = time.time()
    model.wv.save_word2vec_format(os.path.join(spec["out"], "vectors.bin"), binary=True)
    if fasttext:  # the n-gram table in the file ours writes (train.data.vectors.save_subwords; numpy, no JAX here)
        import numpy as np

        wv = model.wv
        np.savez(
            os.path.join(spec["out"], "subwords.npz"),
            vectors_vocab=wv.vectors_vocab,
            vectors_ngrams=wv.vectors_ngrams,
            minn=np.int64(wv.min_n),
            maxn=np.int64(wv.max_n),
        )
    marks["written"] = time.time()
    words = int(model.wv.expandos["count"].sum())  # the in-vocabulary corpus words, as ours counts them
    return {
        "marks": marks,
        "corpus_words": words,
        "epochs": c["num_epochs"],
        "trained_words": c["num_epochs"] * words,
        "vocabulary": len(model.wv),
        "devices": spec["gensim_workers"],
        "peak_rss_bytes": peak_rss_bytes(),
    }


def main(argv: list[str]) -> None:
    system, spec_path = argv
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    result = {"ours": run_ours, "gensim": run_gensim}[system](spec)
    with open(os.path.join(spec["out"], "result.json"), "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1:])
