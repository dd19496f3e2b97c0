"""Train word2vec: `python -m train.word2vec [--workdir runs/word2vec] [--config.model=sgns|cbow|skipgram_softmax]`.

Default: skip-gram with negative sampling on the generated 2M-token corpus (train/data/corpus.py), 5 epochs,
dim 100, window 5, 5 negatives, about 30 s on 2 CPU cores; it recovers king - man + woman = queen
and most planted analogies. `--config.corpus=text:PATH` trains on a text file (one sentence a line).
Writes vectors.txt (word2vec text format), vectors.bin, projector/ (TensorBoard projector TSVs),
vocab.txt, metrics.jsonl (loss, words/s, analogy accuracy per section, wordsim Spearman) and
checkpoints; a rerun with the same workdir resumes. The end prints king - man + woman's neighbours.

How it trains, the way word2vec.c and gensim do, batched for XLA:
* One loop step reads `batch_size` consecutive corpus words (before subsampling; epochs follow each
  other), so metrics.jsonl's examples_per_sec is corpus words/s. num_steps = 0 (the default) means
  ceil(num_epochs * corpus words / batch_size).
* The step's examples are built on the host in numpy from (seed, step) only, in a grain thread while
  the previous step runs: frequent words are dropped (word2vec's subsampling), each centre word gets a
  reduced window b ~ U{1..window} inside its line, pairs are (input = context word, output = centre word)
  as in word2vec.c. The noise words, from unigram^0.75, are drawn inside the jitted step from the step's
  key (zoo.word2vec.sample_alias), on each device for its own share: drawing them on the host cost 16 ms
  of every 26 ms of host work per step, and that thread took CPU from the devices.
* The step is one jitted call: a lax.scan over minibatches of `minibatch_size` examples. Each minibatch
  is one sparse SGD update on the summed loss (zoo.word2vec_rows): gather the rows it touches, take
  the loss's gradient with respect to those rows, scatter-add -lr * gradient back (no V x D gradient or
  optimizer state).
  lr decays linearly from learning_rate to min_learning_rate with the words processed, as in word2vec.
* share_negatives = G > 1 is HogBatch (Ji et al. 2016): G consecutive pairs (mostly one centre's
  contexts) share one draw of `negatives` noise words, so their scores are a [G, D] x [D, K] matmul and
  G times fewer noise rows are gathered and scattered. docs/performance.md (word2vec) says what it buys here.
* Without an accelerator the CPU is split into one JAX device per core (cpu_devices): each device runs SGD
  on its share of the step's minibatches and every sync_minibatches the devices' changes are summed, only the
  rows some device touched (sum_touched). Tables beyond ONE_DEVICE_TABLE_BYTES run on one device
  (cpu_devices_for): there the sums' copies of the tables cost more than the second core gains.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import sys

import grain
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import PartitionSpec as P

from train.core import cli, config as config_lib, loop, parallel, workdir as workdir_lib
from train.core.config import Key
from train.core.errors import ConfigError, DataError
from train.data import text as text_data, vectors
from train.evaluation import words as word_eval
from zoo import word2vec as w2v, word2vec_rows
from zoo.text import noise_distribution, subsample_keep_prob

MODELS = ("sgns", "cbow", "skipgram_softmax")
# keys a resumed run must share with the run that wrote the checkpoints (the tables and the data stream)
RESUME_KEYS = (
    "model",
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


SCHEMA = config_lib.Schema(
    config_lib.LOOP,
    {
        "num_steps": Key(0, "loop steps (0: ceil(num_epochs * corpus words / batch_size))", range=">= 0"),
        "batch_size": Key(65536, "corpus words per loop step (one jitted call)", range=">= 1"),
        "model": Key(
            "sgns", "skip-gram with negative sampling, CBOW, or skip-gram with a full softmax", choices=MODELS
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
    },
    word_eval.EVAL_KEYS,
    defaults=dict(log_every=10, checkpoint_every=50),
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


def check_keys(c) -> None:
    """ConfigError naming the first value SCHEMA does not accept, or keys that do not fit together (all but the
    device count's checks: these need no JAX backend)."""
    SCHEMA.check(c)
    if not c.min_learning_rate <= c.learning_rate:
        raise ConfigError(
            f"config.min_learning_rate={c.min_learning_rate!r} must be in [0, learning_rate={c.learning_rate}]"
        )
    if c.minibatch_size % c.share_negatives:
        raise ConfigError(
            f"config.share_negatives={c.share_negatives} must divide config.minibatch_size={c.minibatch_size}"
        )


def check_config(c) -> None:
    """check_keys, and that the devices JAX runs on divide the batch."""
    check_keys(c)
    if c.batch_size % jax.device_count():
        raise ConfigError(
            f"config.batch_size={c.batch_size} must be divisible by the device count {jax.device_count()}"
        )


# ----------------------------------------------------------------------------- training examples


class TrainingExamples:
    """The examples of loop step i as fixed-shape arrays: a pure function of (seed, i) and the corpus.

    Step i reads corpus positions [i * words_per_step, (i + 1) * words_per_step) modulo the corpus
    length (position // length is the epoch). Arrays are padded to `capacity` examples (weight 0);
    examples beyond it are dropped and counted in 'dropped' (capacity is set 5% above the most
    examples of 8 sampled steps, so that is rare). CBOW's context words are packed into
    `context_slots` slots per minibatch, each with its centre's place in the minibatch (`owners`).
    """

    def __init__(self, corpus: text_data.EncodedCorpus, c, num_devices: int = 1):
        self.model, self.window, self.num_negatives = c.model, c.window, c.negatives
        self.group, self.words_per_step, self.num_devices = c.share_negatives, c.batch_size, num_devices
        self.ids = corpus.ids
        self.line_ends = np.cumsum(corpus.sentence_lengths)  # the line of a position: searchsorted, no per-token array
        self.num_sentences = len(corpus.sentence_lengths)
        counts = corpus.vocab.counts
        self.keep_prob = subsample_keep_prob(counts, c.subsample) if c.subsample > 0 else None
        noise_prob, self.noise_alias = w2v.alias_table(noise_distribution(counts))
        self.noise_threshold = w2v.alias_threshold(noise_prob)
        self.minibatch_size = c.minibatch_size
        steps_per_epoch = max(1, math.ceil(len(self.ids) / self.words_per_step))
        probes = sorted({int(s) for s in np.linspace(0, steps_per_epoch - 1, min(8, steps_per_epoch))})
        probed = [self._examples(s, np.random.default_rng([c.seed, s])) for s in probes]
        if max(self._count(ex) for ex in probed) == 0:
            raise DataError(
                f"corpus {corpus.name!r} yields no training example: no line has two in-vocabulary "
                f"words within window={c.window}; accepted: lines of at least two words"
            )
        if self.model == "cbow":  # context slots per minibatch: 10% above the probes' most contexts per centre
            ratio = max(len(ex[0]) / max(len(ex[1]), 1) for ex in probed)
            self.context_slots = max(2 * c.window, 8 * math.ceil(c.minibatch_size * ratio * 1.1 / 8))
        # every device gets whole minibatches, 5% more than the probes' most
        per_device = math.ceil(max(self._minibatches(ex) for ex in probed) * 1.05 / num_devices)
        # devices that sum their changes do it in whole rounds of at most sync_minibatches, as even as can be
        # (94 minibatches at most 32 a round: 3 rounds of 32; 22 minibatches: one round of 22)
        local = num_devices > 1 and c.device_updates == "local"
        rounds = math.ceil(per_device / c.sync_minibatches) if local and c.sync_minibatches else 1
        self.sync_minibatches = math.ceil(per_device / rounds)  # minibatches per device between sums
        self.capacity = rounds * self.sync_minibatches * c.minibatch_size * num_devices
        self.minibatches = self.capacity // c.minibatch_size

    def _count(self, ex) -> int:
        return len(ex[-1])

    def _minibatches(self, ex) -> float:
        """Minibatches the examples fill: pairs / minibatch_size, or the CBOW centres packed (`pack_centres`)."""
        if self.model == "cbow":
            return len(pack_centres(ex[1], self.minibatch_size, self.context_slots))
        return self._count(ex) / self.minibatch_size

    def _examples(self, i: int, rng: np.random.Generator):
        """Unpadded examples of step i: (inputs, outputs) pairs, or for CBOW (contexts centre by centre,
        contexts per centre, centres)."""
        n_words = len(self.ids)
        position = np.arange(i * self.words_per_step, (i + 1) * self.words_per_step, dtype=np.int64)
        epoch, position = np.divmod(position, n_words)
        tokens = self.ids[position]
        if self.keep_prob is not None:  # word2vec's subsampling: drop occurrences before windowing
            kept = rng.random(tokens.shape[0]) < self.keep_prob[tokens]
            tokens, epoch, position = tokens[kept], epoch[kept], position[kept]
        # windows stay inside a line of one epoch
        line = epoch * self.num_sentences + np.searchsorted(self.line_ends, position, side="right")
        n, w = tokens.shape[0], self.window
        reach = rng.integers(1, w + 1, size=n, dtype=np.int32)  # word2vec's reduced window b ~ U{1..window}
        # slot k of centre j is the word at j + offsets[k]; built one offset at a time from shifted
        # copies (contiguous slices, no gathers), as [2w, n] rows, read centre by centre below
        offsets = [*range(-w, 0), *range(1, w + 1)]
        valid = np.zeros((2 * w, n), bool)
        neighbour = np.zeros((2 * w, n), np.int32)
        for k, d in enumerate(offsets):
            m = max(n - abs(d), 0)  # centres with a word at offset d (never a negative slice bound)
            centre, near = (slice(n - m, n), slice(0, m)) if d < 0 else (slice(0, m), slice(n - m, n))
            valid[k, centre] = (line[near] == line[centre]) & (reach[centre] >= abs(d))
            neighbour[k, centre] = tokens[near]
        valid, neighbour = valid.T, neighbour.T  # [n, 2w] views
        flat = np.flatnonzero(valid)  # ordered by centre: consecutive pairs share their output word
        contexts = np.ascontiguousarray(neighbour).ravel()[flat]
        if self.model == "cbow":
            counts = valid.sum(axis=1)
            has = counts > 0
            return contexts, counts[has], tokens[has]
        return contexts, tokens[flat // (2 * w)]

    def record(self, seed: int, i: int) -> dict:
        """Step i's arrays: per example (weights: 1, or 0 for padding) of leading size capacity, and for CBOW
        the packed context slots (contexts, owners, mask) of leading size minibatches x context_slots. The
        noise words are drawn in the step (`negatives`)."""
        ex = self._examples(i, np.random.default_rng([seed, i]))
        record = self._cbow_arrays(*ex) if self.model == "cbow" else self._pair_arrays(*ex)
        dropped = np.zeros(self.num_devices, np.int32)
        dropped[0] = self._count(ex) - int(record["weights"].sum())
        return {**record, "dropped": dropped}

    def _pair_arrays(self, inputs, outputs) -> dict:
        cap, m = self.capacity, min(len(outputs), self.capacity)
        record = {k: np.zeros(cap, np.int32) for k in ("inputs", "outputs")}
        record["inputs"][:m], record["outputs"][:m] = inputs[:m], outputs[:m]
        record["weights"] = (np.arange(cap) < m).astype(np.float32)
        return record

    def _cbow_arrays(self, contexts, counts, centres) -> dict:
        """Centres packed greedily into the step's minibatches, each at most minibatch_size centres and
        context_slots contexts; the centres that do not fit are dropped."""
        B, P, M = self.minibatch_size, self.context_slots, self.minibatches
        starts = pack_centres(counts, B, P)
        end = int(starts[M]) if len(starts) > M else len(counts)  # centres from `end` on do not fit
        starts = starts[:M]
        sizes = np.diff(np.append(starts, end))
        mb = np.repeat(np.arange(len(starts)), sizes)  # each kept centre's minibatch ...
        local = np.arange(end) - starts[mb]  # ... and its place in it
        first = np.concatenate([[0], np.cumsum(counts[:end])])  # each centre's first slot in `contexts`
        owner = np.repeat(np.arange(end), counts[:end])  # each kept slot's centre
        slot = mb[owner] * P + np.arange(first[-1]) - first[starts][mb[owner]]
        record = {
            "outputs": np.zeros(M * B, np.int32),
            "weights": np.zeros(M * B, np.float32),
            "contexts": np.zeros(M * P, np.int32),
            "owners": np.zeros(M * P, np.int32),
            "mask": np.zeros(M * P, np.float32),
        }
        record["outputs"][mb * B + local], record["weights"][mb * B + local] = centres[:end], 1.0
        record["contexts"][slot], record["owners"][slot], record["mask"][slot] = (
            contexts[: first[-1]],
            local[owner],
            1.0,
        )
        return record

    def negatives(self, key: jax.Array, rows: int) -> jax.Array:
        """Noise words [rows, negatives] from unigram^0.75 (zoo.text.noise_distribution), drawn on the device
        inside the jitted step (zoo.word2vec.sample_alias: Walker's alias method, O(1) per draw); one row per
        group of share_negatives examples."""
        return w2v.sample_alias(key, self.noise_threshold, self.noise_alias, (rows, self.num_negatives))

    def batches(self, global_batch_size: int, seed: int, num_threads: int | None = None):
        """A checkpointable grain iterator over the steps' records (its state is the step it has reached), read by
        num_threads threads (None: parallel.input_threads: one on the CPU, up to 8 beside an accelerator)."""
        if global_batch_size != self.words_per_step:
            raise ConfigError(
                f"batch_size {global_batch_size} differs from the {self.words_per_step} the examples were sized for"
            )
        n, p = jax.process_count(), jax.process_index()
        if n == 1:
            record = functools.partial(self.record, seed)
        else:  # each process feeds its devices' share of every array
            record = lambda i: {k: np.split(v, n)[p] for k, v in self.record(seed, i).items()}
        ds = grain.MapDataset.range(0, 1 << 62).map(record)
        return iter(ds.to_iter_dataset(parallel.read_options(1, num_threads)))


def pack_centres(counts: np.ndarray, centres: int, slots: int) -> np.ndarray:
    """Where each minibatch starts when CBOW centres with `counts` contexts each (in order, every count at
    most `slots`) are cut into minibatches of at most `centres` centres and `slots` contexts: runs of
    `centres` centres, each run with too many contexts halved until it fits (vectorised: no loop per run)."""
    first = np.concatenate([[0], np.cumsum(counts)])
    starts = np.arange(0, len(counts), centres)
    while True:  # a run of one centre always fits: this ends within log2(centres) rounds
        ends = np.append(starts[1:], len(counts))
        over = first[ends] - first[starts] > slots
        if not over.any():
            return starts
        starts = np.sort(np.concatenate([starts, (starts[over] + ends[over]) // 2]))


# ----------------------------------------------------------------------------- the step


def sparse_update(model: str, tables, mb, lr):
    """One SGD step on the summed loss of a minibatch, touching only its rows (zoo.word2vec_rows)."""
    if model == "sgns":
        return word2vec_rows.sgns_rows_step(tables, mb["inputs"], mb["outputs"], mb["negatives"], mb["weights"], lr)
    if model == "cbow":
        return word2vec_rows.cbow_rows_step(
            tables, mb["contexts"], mb["owners"], mb["mask"], mb["outputs"], mb["negatives"], mb["weights"], lr
        )
    return word2vec_rows.softmax_rows_step(tables, mb["inputs"], mb["outputs"], mb["weights"], lr)


SUM_CHUNK_ROWS = 4096  # rows of a table summed across the devices at a time (local SGD's sums)


def touched_rows(model: str, mb) -> dict:
    """The ids of the rows of each table that minibatches `mb` (sgns or cbow, with their negatives) can change:
    the inputs' or contexts' rows of 'in', the outputs' and noise words' rows of 'out' (padding's row 0 too)."""
    inputs = mb["inputs"] if model == "sgns" else mb["contexts"]
    return {"in": inputs.ravel(), "out": jnp.concatenate([mb["outputs"].ravel(), mb["negatives"].ravel()])}


def sum_touched(old, new, ids, axis: str, chunk: int | None = None):
    """old + the sum over the devices of mesh axis `axis` of (new - old), where each device's new differs from
    old only in rows `ids` (traced inside shard_map): the dense sum's result, with only the rows some device
    touched going across. The devices' touched rows are found first (a [V] mask summed over them), then sent
    `chunk` rows at a time (None: SUM_CHUNK_ROWS), as many chunks as it takes. A table of at most `chunk` rows
    is summed whole: one chunk would carry it all, and the mask and the loop cost more than they save there
    (the default 900-word corpus: 4% slower steps)."""
    v, k = old.shape[0], chunk or SUM_CHUNK_ROWS
    if v <= k:
        return old + jax.lax.psum(new - old, axis)
    mask = jax.lax.psum(jnp.zeros(v, jnp.int32).at[ids].set(1), axis) > 0
    rows = jnp.nonzero(mask, size=-(-v // k) * k, fill_value=v)[0]  # the touched rows, then v: out of bounds, ignored

    def one_chunk(i, table):  # chunks are disjoint: their rows of `table` are still the device's own
        r = jax.lax.dynamic_slice(rows, (i * k,), (k,))
        before = old.at[r].get(mode="fill", fill_value=0)
        change = jax.lax.psum(table.at[r].get(mode="fill", fill_value=0) - before, axis)
        return table.at[r].set(before + change, mode="drop")

    return jax.lax.fori_loop(0, (jnp.sum(mask) + k - 1) // k, one_chunk, new)


def make_train_step(c, minibatches: int, mesh=None, negatives=None, sync_minibatches: int = 0, dense_sums=False):
    """(state, batch, key) -> (state, metrics): the step's minibatches in one lax.scan, lr decayed by words read.

    negatives(key, rows) -> [rows, K] noise words (TrainingExamples.negatives), drawn from the step's key:
    one draw for the whole step, or on each device from fold_in(key, device index) for its share.
    sync_minibatches: TrainingExamples.sync_minibatches, which divides each device's share (0: once per step).

    On a mesh of several devices with c.device_updates = 'local', each device runs SGD over its own share of
    the minibatches, and every c.sync_minibatches minibatches (0: at the end of the step) the devices' changes
    to the tables are summed into every device's copy: Hogwild across devices, as gensim's worker threads,
    but synchronised at fixed points, so a run is deterministic for a given device count. Each sum carries only
    the rows some device touched in the round (`sum_touched`; their ids come with the minibatches), not the
    2 x V x D floats of both tables; dense_sums=True sums the whole tables (the same result: the reference the
    tests compare with), as skipgram_softmax always does (its softmax changes every row of 'out').
    'replicated' runs every minibatch in order on every device: the single-device result, without a speed-up.
    """
    total_words = c.num_steps * c.batch_size
    local = mesh is not None and mesh.size > 1 and c.device_updates == "local"
    shards = mesh.size if local else 1
    per_device = minibatches // shards
    sync = (sync_minibatches or per_device) if local else per_device

    def learning_rate(step, j, n=minibatches):
        words = (step.astype(jnp.float32) + jnp.asarray(j, jnp.float32) / n) * c.batch_size
        return w2v.linear_decay_lr(c.learning_rate, words / total_words, c.min_learning_rate)

    def sgd(tables, batch, lrs):
        xs = {k: v.reshape(lrs.shape[0], -1, *v.shape[1:]) for k, v in batch.items()}

        def body(tables, x):
            lr, mb = x
            return sparse_update(c.model, tables, mb, lr)

        tables, losses = jax.lax.scan(body, tables, (lrs, xs))
        return tables, jnp.sum(losses)

    def with_negatives(batch, key, rows):
        return batch if negatives is None else {**batch, "negatives": negatives(key, rows // c.share_negatives)}

    def local_sgd(tables, batch, lrs, key):  # one device's share: lrs [per_device], in rounds of `sync` minibatches
        batch = with_negatives(
            batch, jax.random.fold_in(key, jax.lax.axis_index("data")), per_device * c.minibatch_size
        )
        rounds = per_device // sync
        xs = {k: v.reshape(rounds, -1, *v.shape[1:]) for k, v in batch.items()}

        def one_round(tables, x):
            new, loss = sgd(tables, *x)
            if dense_sums or c.model == "skipgram_softmax":
                summed = jax.tree.map(lambda t, n: t + jax.lax.psum(n - t, "data"), tables, new)
            else:
                ids = touched_rows(c.model, x[0])
                summed = {k: sum_touched(tables[k], new[k], ids[k], "data") for k in tables}
            return summed, jax.lax.psum(loss, "data")

        tables, losses = jax.lax.scan(one_round, tables, (xs, lrs.reshape(rounds, sync)))
        return tables, jnp.sum(losses)

    def train_step(state, batch, key):
        # the examples come drawn on the host from (seed, step); the noise words from the step's key
        scale = (
            1.0 if state.lr_scale is None else state.lr_scale
        )  # a learning-rate sweep's replica (train/core/loop.py)
        # device d's j-th minibatch is the step's (d * per_device + j)-th; the rates follow the words read
        lrs = scale * learning_rate(state.step, jnp.arange(minibatches)).reshape(shards, per_device)
        examples = {k: v for k, v in batch.items() if k != "dropped"}
        if local:
            tables, loss = jax.shard_map(
                lambda t, b, r, k: local_sgd(t, b, r[0], k),
                mesh=mesh,
                in_specs=(P(), P("data"), P("data"), P()),
                out_specs=(P(), P()),
                check_vma=False,
            )(state.params, examples, lrs, key)
        else:
            tables, loss = sgd(state.params, with_negatives(examples, key, minibatches * c.minibatch_size), lrs[0])
        n = jnp.sum(batch["weights"])
        metrics = {
            "loss": loss / jnp.maximum(n, 1.0),
            "examples": n,
            "dropped": jnp.sum(batch["dropped"]),
            "learning_rate": scale * learning_rate(state.step, minibatches),
        }
        return state.advance(params=tables), metrics

    return train_step


# ----------------------------------------------------------------------------- task and run


def make_task(c, corpus: text_data.EncodedCorpus, eval_sets, examples: TrainingExamples | None = None) -> loop.Task:
    """c.num_steps must be resolved (> 0); examples default to the corpus's, sized for jax.device_count() devices."""
    vocab = corpus.vocab
    examples = examples or TrainingExamples(corpus, c, jax.device_count())
    analogies, wordsim = eval_sets

    def evaluate(state, step):
        W = np.asarray(jax.device_get(state.params["in"]))
        image = word_eval.planted_pairs_figure(W, vocab)
        return word_eval.evaluate_vectors(W, vocab, analogies, wordsim), (
            {"planted_pairs_pca": image} if image is not None else {}
        )

    def export(state, workdir):
        W = np.asarray(jax.device_get(state.params["in"]))
        vectors.export_vectors(workdir, vocab, W)
        print(f"{word_eval.analogy_line(W, vocab)}\nvectors: {os.path.join(workdir, 'vectors.txt')}", flush=True)

    return loop.Task(
        "word2vec",
        lambda key: w2v.init_params(key, len(vocab), c.embed_dim),
        train_step=make_train_step(
            c,
            examples.minibatches,
            parallel.data_mesh(),
            None if c.model == "skipgram_softmax" else examples.negatives,
            examples.sync_minibatches,
        ),
        optimizer=optax.identity(),
        evaluate=evaluate,
        batches=examples.batches,
        export=export,
    )


def load_corpus(c, workdir: str | None):
    """(encoded corpus, cache key); the corpus.npz cached in workdir is reused when it matches."""
    source = text_data.corpus_of(c)
    key = text_data.cache_key(source, c.min_count, c.max_vocab)
    return text_data.encode_corpus(source, c.min_count, max_vocab=c.max_vocab, cache_dir=workdir), key


# A table (V x embed_dim float32) larger than this gains nothing from splitting the CPU into devices: each sum
# of the devices' changes keeps a copy of both tables, and beyond the cache those copies cost more than the second
# core gains. Measured on 2 cores with a 32 MiB L3 (benchmarks.xla_profile --model=word2vec, dim 100): 50,070
# words (20 MB) 1.19x faster on 2 devices than on 1, 78,127 words (31 MB) 1.26x faster on 1.
ONE_DEVICE_TABLE_BYTES = 24 * 2**20


def cpu_devices_for(c, vocab_size: int) -> int:
    """config.cpu_devices for split_cpu: as set, or for 0 (auto) 1 when a table of vocab_size x embed_dim
    float32 exceeds ONE_DEVICE_TABLE_BYTES, else 0 (one device per core)."""
    if c.cpu_devices or c.device_updates != "local":
        return c.cpu_devices
    return 1 if vocab_size * c.embed_dim * 4 > ONE_DEVICE_TABLE_BYTES else 0


def resolve_num_steps(c, corpus: text_data.EncodedCorpus) -> int:
    """c.num_steps, or when it is 0, enough steps of batch_size words for num_epochs passes over the corpus."""
    return c.num_steps or math.ceil(c.num_epochs * len(corpus.ids) / c.batch_size)


def run(config, workdir: str) -> dict:
    parallel.schedule_depth_first()
    check_keys(config)
    eval_sets = word_eval.load_eval_sets(config)
    corpus, key = load_corpus(config, workdir)
    parallel.split_cpu(cpu_devices_for(config, len(corpus.vocab)))  # before anything starts JAX's backends
    check_config(config)
    config.num_steps = resolve_num_steps(config, corpus)
    workdir_lib.refuse_changed(workdir, config, RESUME_KEYS, "checkpoints")
    vocabulary = hashlib.sha256("\n".join(corpus.vocab.words).encode()).hexdigest()
    data = {"corpus": key, "vocabulary": vocabulary}
    workdir_lib.refuse_changed_data(workdir, data, "checkpoints")  # before the corpus cache is rewritten
    examples = TrainingExamples(corpus, config, jax.device_count())
    task = make_task(config, corpus, eval_sets, examples)
    if jax.process_index() == 0:
        text_data.save_cached(workdir, key, corpus)
        print(
            f"word2vec {config.model}: {corpus.name}, {len(corpus.ids)} words in the vocabulary of "
            f"{len(corpus.vocab)}, {config.num_steps} steps of {config.batch_size} words "
            f"({examples.minibatches} minibatches of {config.minibatch_size}) on {jax.device_count()} "
            f"{jax.default_backend()} device(s)",
            flush=True,
        )
    return loop.train(config, workdir, task, data)


if __name__ == "__main__":
    cli.main(sys.modules[__name__])
