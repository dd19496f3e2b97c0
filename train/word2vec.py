"""Train word2vec: `python -m train.word2vec [--workdir runs/word2vec] [--config.model=sgns|cbow|skipgram_softmax|
fasttext|fasttext_cbow] [--config.loss=negative|hs]`.

Default: skip-gram with negative sampling on the generated 2M-token corpus (train/data/corpus.py), 5 epochs,
dim 100, window 5, 5 negatives, about 30 s on 2 CPU cores; it recovers king - man + woman = queen
and most planted analogies. `--config.corpus=text:PATH` trains on a text file (one sentence a line).
Writes vectors.txt (word2vec text format), vectors.bin, projector/ (TensorBoard projector TSVs), vocab.txt,
metrics.jsonl (loss, words/s, analogy accuracy, wordsim Spearman) and checkpoints; a rerun resumes.
FastText (`fasttext`: skip-gram, `fasttext_cbow`) trains subword vectors (zoo.fasttext: each word the mean of its
own row and its character n-grams' bucket rows, keys minn, maxn, bucket) and also writes subwords.npz, from which
train.data.vectors.load_subword_vectors gives a vector to any word, seen or not. loss=hs replaces negative
sampling by word2vec's hierarchical softmax over a Huffman tree of the vocabulary (gensim's hs=1, negative=0).

How it trains, the way word2vec.c and gensim do, batched for XLA (docs/words.md, "How it trains"):
* One loop step reads `batch_size` consecutive corpus words (before subsampling; epochs follow each
  other), so metrics.jsonl's examples_per_sec is corpus words/s. num_steps = 0 (the default) means
  ceil(num_epochs * corpus words / batch_size). The step's examples are built on the host from (seed, step)
  only, its noise words drawn in the jitted step from the step's key (train.data.word2vec_examples).
* The step is one jitted call: a lax.scan over minibatches of `minibatch_size` examples, each one sparse SGD
  update on the summed loss (zoo.word2vec_rows: no V x D gradient or optimizer state); lr decays linearly
  from learning_rate to min_learning_rate with the words processed, as in word2vec. share_negatives = G > 1
  is HogBatch (Ji et al. 2016): G consecutive pairs share one draw of noise words (docs/performance.md).
* On a CPU, negative sampling (sgns, cbow, FastText) runs instead in a native kernel (kernel=native,
  train/data/word2vec_native.py): word2vec.c's per-example SGD, `threads` threads sharing the tables in place
  (Hogwild, as gensim; threads=1 or deterministic=true: bit-identical reruns). Otherwise the CPU is split into a
  JAX device per core (cpu_devices), each running SGD on its share of the minibatches, the touched rows summed
  every sync_minibatches (parallel.sum_touched); tables beyond ONE_DEVICE_TABLE_BYTES run on one device.
"""

from __future__ import annotations

import hashlib
import os

import jax
import optax

from train.core import cli, config as config_lib, entry, loop, parallel, workdir as workdir_lib
from train.core.config import Key
from train.core.errors import ConfigError
from train.data import text as text_data, vectors, word2vec_examples as w2v_examples, word2vec_step
from train.evaluation import words as word_eval
from zoo import fasttext, word2vec as w2v

MODELS = ("sgns", "cbow", "skipgram_softmax", *w2v_examples.FASTTEXT_MODELS)
LOSSES = ("negative", "hs")
# keys a resumed run must share with the run that wrote the checkpoints (the tables and the data stream)
RESUME_KEYS = (
    "model",
    "loss",
    "minn",
    "maxn",
    "bucket",
    "corpus",
    "num_tokens",
    "min_count",
    "max_vocab",
    "embed_dim",
    "window",
    "negatives",
    "subsample",
    "share_negatives",
    "minibatch_size",
    "batch_size",
    "seed",
)


def check_learning_rates(c) -> None:
    """The rate decays to min_learning_rate: at most learning_rate."""
    if not c.min_learning_rate <= c.learning_rate:
        raise ConfigError(
            f"config.min_learning_rate={c.min_learning_rate!r} must be in [0, learning_rate={c.learning_rate}]"
        )


def check_shared_negatives(c) -> None:
    """Minibatches share negatives in groups of share_negatives: it divides minibatch_size."""
    if c.minibatch_size % c.share_negatives:
        raise ConfigError(
            f"config.share_negatives={c.share_negatives} must divide config.minibatch_size={c.minibatch_size}"
        )


def check_loss(c) -> None:
    """skipgram_softmax is its own output layer: it takes no loss but the default."""
    if c.model == "skipgram_softmax" and c.loss != "negative":
        raise ConfigError(
            f"config.loss={c.loss!r} is not accepted with config.model='skipgram_softmax' (a full softmax); "
            f"accepted: loss 'hs' with sgns, cbow, fasttext or fasttext_cbow"
        )


def check_ngram_lengths(c) -> None:
    """FastText's n-grams run from minn to maxn characters: minn <= maxn."""
    if c.minn > c.maxn:
        raise ConfigError(f"config.minn={c.minn} must be at most config.maxn={c.maxn}; accepted: minn <= maxn")


SCHEMA = config_lib.Schema(
    config_lib.LOOP,
    {
        "num_steps": Key(0, "loop steps (0: ceil(num_epochs * corpus words / batch_size))", range=">= 0"),
        "batch_size": Key(65536, "corpus words per loop step (one jitted call)", range=">= 1"),
        "model": Key(
            "sgns",
            "skip-gram, CBOW, skip-gram with a full softmax, or FastText's subword skip-gram or CBOW",
            choices=MODELS,
        ),
        "loss": Key(
            "negative",
            "output layer: negative sampling, or word2vec's hierarchical softmax (gensim's hs=1, negative=0)",
            choices=LOSSES,
        ),
        "minn": Key(3, "fasttext: shortest character n-gram of <word> (gensim's min_n)", range=">= 1"),
        "maxn": Key(6, "fasttext: longest character n-gram (gensim's max_n; >= minn)", range=">= 1"),
        "bucket": Key(
            2_000_000, "fasttext: rows of the n-gram table the n-grams hash into (gensim's bucket)", range=">= 1"
        ),
    },
    text_data.CORPUS_KEYS,
    {
        "min_count": Key(5, "words rarer than this are dropped (gensim's min_count)", range=">= 1"),
        "max_vocab": Key(0, "keep only the most frequent words (0: no limit)", range=">= 0"),
        "embed_dim": Key(100, "dimension of the vectors (gensim's vector_size)", range=">= 1"),
        "window": Key(5, "maximum centre-context distance; each centre draws b ~ U{1..window}", range=">= 1"),
        "negatives": Key(5, "noise words per example (gensim's negative)", range=">= 1"),
        "subsample": Key(1e-3, "frequent-word downsampling threshold t (gensim's sample; 0: off)", range="[0, 1)"),
        "num_epochs": Key(5, "passes over the corpus when num_steps = 0 (gensim's epochs)", range=">= 1"),
        "learning_rate": Key(0.025, "gensim's alpha, decayed linearly over the run to min_learning_rate", range="> 0"),
        "min_learning_rate": Key(
            1e-4, "the learning rate at the end (gensim's min_alpha; <= learning_rate)", range=">= 0"
        ),
        "share_negatives": Key(
            1, "HogBatch: consecutive pairs sharing one draw of noise words (1: word2vec)", range=">= 1"
        ),
        "device_updates": Key(
            "local",
            "several devices: 'local' SGD on each device's share with changes summed "
            "every sync_minibatches, or 'replicated' (the 1-device result)",
            choices=("local", "replicated"),
        ),
        "sync_minibatches": Key(
            256, "'local': minibatches a device runs between sums (0: once per step)", range=">= 0"
        ),
        "cpu_devices": Key(
            0,
            "no accelerator: split the CPU into this many devices (0: one per core, at most 8, or 1 when a table "
            "of vocabulary x embed_dim floats exceeds 24 MiB)",
            range=">= 0",
        ),
        "minibatch_size": Key(
            128, "examples per sparse SGD update (pairs; CBOW: centres); 128 stays in cache", range=">= 1"
        ),
        "kernel": Key(
            "native",
            "on a CPU, negative sampling (sgns, cbow, fasttext*) runs word2vec.c's per-example SGD in a compiled "
            "kernel on all cores (built on first use; XLA's row steps where it cannot be), or 'xla': XLA's "
            "minibatch row steps, on any backend",
            choices=("native", "xla"),
        ),
        "threads": Key(
            0, "native kernel: threads sharing the tables (0: one per core, 1 when deterministic)", range=">= 0"
        ),
    },
    word_eval.EVAL_KEYS,
    defaults=dict(log_every=10, checkpoint_every=50),
    checks=(
        check_learning_rates,
        check_shared_negatives,
        check_loss,
        check_ngram_lengths,
        w2v_examples.check_step_size,
    ),
    variants={
        "smoke": {
            "num_tokens": 50_000,
            "batch_size": 8192,
            "minibatch_size": 256,
            "embed_dim": 16,
            "num_steps": 6,
            "log_every": 2,
            "checkpoint_every": 2,
            "min_learning_rate": 0.025,
            "progress": False,
        }
    },
)


get_config = SCHEMA.config  # get_config() is the default config, get_config('smoke') a seconds-long run


# ----------------------------------------------------------------------------- task and run


def make_task(
    c, corpus: text_data.EncodedCorpus, eval_sets, examples: w2v_examples.TrainingExamples | None = None
) -> loop.Task:
    """c.num_steps must be resolved (> 0); examples default to the corpus's, sized for jax.device_count() devices."""
    vocab = corpus.vocab
    examples = examples or w2v_examples.TrainingExamples(corpus, c, jax.device_count())
    analogies, wordsim = eval_sets

    def evaluate(state, step):
        W = examples.word_vectors(state.params["in"])  # composed on the device: no host copy of FastText's table
        image = word_eval.planted_pairs_figure(W, vocab)
        images = {"planted_pairs_pca": image} if image is not None else {}
        return word_eval.evaluate_vectors(W, vocab, analogies, wordsim), images

    def export(state, workdir):
        W = examples.word_vectors(state.params["in"])
        vectors.export_vectors(workdir, vocab, W)
        if c.model in w2v_examples.FASTTEXT_MODELS:  # what an unseen word's vector needs: the n-gram table
            vectors.save_subwords_of_table(workdir, state.params["in"], len(vocab), c.minn, c.maxn)
        print(f"{word_eval.analogy_line(W, vocab)}\nvectors: {os.path.join(workdir, 'vectors.txt')}", flush=True)

    hs = c.loss == "hs" and c.model != "skipgram_softmax"
    negatives = None if c.model == "skipgram_softmax" or hs else examples.negatives
    paths = examples.paths if hs else None
    mesh = parallel.data_mesh()
    threads = (
        word2vec_step.native_threads(c) if mesh.size == 1 else 0
    )  # the kernel shares one copy of the tables: one device
    native = (threads, examples.noise_threshold, examples.noise_alias) if threads else None
    step = word2vec_step.make_train_step(
        c, examples.minibatches, mesh, negatives, examples.sync_minibatches, paths=paths, native=native
    )
    if c.model in w2v_examples.FASTTEXT_MODELS:
        init_params = lambda key: fasttext.init_params(key, len(vocab), c.bucket, c.embed_dim)  # noqa: E731
    else:
        init_params = lambda key: w2v.init_params(key, len(vocab), c.embed_dim)  # noqa: E731
    return loop.Task(
        "word2vec",
        init_params,
        train_step=step,
        optimizer=optax.identity(),
        evaluate=evaluate,
        batches=examples.batches,
        export=export,
    )


# A table (V x embed_dim float32) larger than this gains nothing from splitting the CPU into devices: each sum
# of the devices' changes keeps a copy of both tables, and beyond the cache those copies cost more than the second
# core gains. Measured on 2 cores with a 32 MiB L3 (benchmarks.xla_profile --model=word2vec, dim 100): 50,070
# words (20 MB) 1.19x faster on 2 devices than on 1, 78,127 words (31 MB) 1.26x faster on 1.
ONE_DEVICE_TABLE_BYTES = 24 * 2**20


def cpu_devices_for(c, vocab_size: int) -> int:
    """config.cpu_devices for split_cpu: as set, or for 0 (auto) 1 when the native kernel runs (it spreads over
    the cores itself) or a table of vocab_size x embed_dim float32 (FastText's: with its n-gram buckets) exceeds
    ONE_DEVICE_TABLE_BYTES, else 0 (one device per core)."""
    if c.cpu_devices or c.device_updates != "local":
        return c.cpu_devices
    if word2vec_step.native_threads(c, warn=False):
        return 1
    return 1 if w2v_examples.table_rows(c, vocab_size) * c.embed_dim * 4 > ONE_DEVICE_TABLE_BYTES else 0


def train_vectors(config, workdir: str) -> dict:
    """Train (or resume) the vectors of a checked config in workdir; the last figures. The loop writes the workdir."""
    eval_sets = word_eval.load_eval_sets(config)
    corpus, key = w2v_examples.load_corpus(config, workdir)
    # The device count depends on the vocabulary, so it is set here, before anything starts JAX's backends.
    parallel.split_cpu(cpu_devices_for(config, len(corpus.vocab)))
    if config.batch_size % jax.device_count():
        raise ConfigError(
            f"config.batch_size={config.batch_size} must be divisible by the device count {jax.device_count()}"
        )
    config.num_steps = w2v_examples.resolve_num_steps(config, corpus)
    workdir_lib.refuse_changed(workdir, config, RESUME_KEYS, "checkpoints")
    vocabulary = hashlib.sha256("\n".join(corpus.vocab.words).encode()).hexdigest()
    data = {"corpus": key, "vocabulary": vocabulary}
    workdir_lib.refuse_changed_data(workdir, data, "checkpoints")
    examples = w2v_examples.TrainingExamples(corpus, config, jax.device_count())
    task = make_task(config, corpus, eval_sets, examples)
    task.batches = w2v_examples.caching_batches(examples, corpus, workdir)
    threads = word2vec_step.native_threads(config, warn=False) if jax.device_count() == 1 else 0
    if jax.process_index() == 0:
        print(
            f"word2vec {config.model}: {corpus.name}, {len(corpus.ids)} words in the vocabulary of "
            f"{len(corpus.vocab)}, {config.num_steps} steps of {config.batch_size} words "
            f"({examples.minibatches} minibatches of {config.minibatch_size}) on {jax.device_count()} "
            f"{jax.default_backend()} device(s)"
            + (f", word2vec.c's SGD in the native kernel on {threads} threads" if threads else ""),
            flush=True,
        )
    return loop.train(config, workdir, task, data)


# XLA:CPU schedules the row steps depth first: 1.7x faster on one core (parallel.schedule_depth_first).
ENTRY = entry.Entry(
    "word2vec", __doc__, __file__, SCHEMA, train_vectors, make_task, settings=(parallel.schedule_depth_first,)
)
run = ENTRY.run

if __name__ == "__main__":
    cli.main(ENTRY)
