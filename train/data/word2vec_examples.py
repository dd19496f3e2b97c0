"""word2vec's training data: the corpus and its steps, each step's examples, and a minibatch's sparse SGD.

The corpus is encoded once (`load_corpus`, cached in the workdir) and read `batch_size` words a loop step
(`resolve_num_steps`: how many steps make num_epochs passes). The examples of step i are a pure function of
(seed, i) and the encoded corpus, made the way word2vec.c and gensim make them: the step reads `batch_size`
consecutive corpus words (before subsampling; epochs follow each other), drops frequent words (word2vec's
subsampling), gives each centre word a reduced window b ~ U{1..window} inside its line, and pairs input =
context word with output = centre word as in word2vec.c. `TrainingExamples.record` pads them to fixed shapes
(CBOW's contexts packed into whole minibatches by `pack_centres`), and `TrainingExamples.batches` makes the
records in background threads while the previous step runs (train.core.parallel.IndexedRecords). The noise
words, from unigram^0.75, are not drawn here but inside the jitted step from the step's key
(`TrainingExamples.negatives`, zoo.word2vec.sample_alias), on each device for its own share: drawing them on the
host cost 16 ms of every 26 ms of host work per step, and that thread took CPU from the devices.

FastText (`fasttext`, `fasttext_cbow`) trains with CBOW's packed records: an input word stands for its rows of
the 'in' table (its own, then one per character n-gram's bucket, zoo.fasttext; `TrainingExamples.word_rows`),
so a skip-gram pair becomes a "centre" (the output word) with those rows as its contexts, and a CBOW centre's
context words each become their rows. The hierarchical softmax (`loss` 'hs') draws no noise words: the step
looks up each output word's Huffman path (`TrainingExamples.paths`, zoo.word2vec.huffman_tree) on the device.

What a minibatch of those records does to the tables, inside the step (train.data.word2vec_step.make_train_step):
`sparse_update` (one SGD step of zoo.word2vec_rows on its rows), `scan_minibatches` (a lax.scan of them),
`touched_rows` (the rows they can change) and `sum_changes` (the devices' changes summed, only those rows).
Which row step a config runs is its `step_kind`.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from train.core import parallel
from train.core.errors import ConfigError, DataError
from train.data import text as text_data
from zoo import fasttext, word2vec as w2v, word2vec_rows
from zoo.text import noise_distribution, subsample_keep_prob

__all__ = [
    "load_corpus",
    "check_step_size",
    "check_corpus",
    "FASTTEXT_MODELS",
    "step_kind",
    "table_rows",
    "expand_words",
    "caching_batches",
    "resolve_num_steps",
    "TrainingExamples",
    "pack_centres",
    "sparse_update",
    "touched_rows",
    "scan_minibatches",
    "sum_changes",
]


# ----------------------------------------------------------------------------- the corpus and its steps

FASTTEXT_MODELS = ("fasttext", "fasttext_cbow")
# The row steps of zoo.word2vec_rows, by step_kind: pairs of rows or CBOW's packed context slots, and the output layer.
PAIR_KINDS = ("sgns", "hs", "skipgram_softmax")


def step_kind(c) -> str:
    """The row step a config trains with: 'sgns', 'cbow' (negative sampling on pairs or on packed contexts, which
    FastText's word rows are too), 'hs', 'cbow_hs' (their hierarchical-softmax forms) or 'skipgram_softmax'."""
    if c.model == "skipgram_softmax":
        return "skipgram_softmax"
    packed = c.model != "sgns"
    if c.loss == "hs":
        return "cbow_hs" if packed else "hs"
    return "cbow" if packed else "sgns"


def table_rows(c, vocab_size: int) -> int:
    """Rows of the 'in' table: one per word, and for FastText one per n-gram bucket after them."""
    return vocab_size + (c.bucket if c.model in FASTTEXT_MODELS else 0)


def expand_words(ids: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows of each id in turn, how many each has): rows[offsets[i]:offsets[i + 1]] for i in ids, concatenated
    (vectorised: no loop per id)."""
    first, counts = offsets[ids], offsets[ids + 1] - offsets[ids]
    ends = np.cumsum(counts)
    at = np.arange(ends[-1] if len(ends) else 0) + np.repeat(first - (ends - counts), counts)
    return rows[at], counts


def _rows_per_word(c) -> float:
    """A rough count of a word's rows for sizing: FastText's n-grams of a 6-letter word (8 characters marked)."""
    return 1 + sum(max(8 - n + 1, 0) for n in range(c.minn, c.maxn + 1)) if c.model in FASTTEXT_MODELS else 1


# A step's host arrays (2 x window neighbour slots per corpus word: ids and masks, then the pairs' ids and weights)
# and its noise ids beyond this would exhaust memory before the first step: refused at the door (check_step_size).
MAX_STEP_BYTES = 4 << 30
# The two V x embed_dim float32 tables beyond this: refused once the vocabulary is known (check_corpus).
MAX_TABLE_BYTES = 16 << 30


def check_step_size(c) -> None:
    """ConfigError when a step's examples would take more than MAX_STEP_BYTES: at most 2 x window pairs per
    corpus word, each a neighbour slot (5 bytes), a pair (12 bytes) and negatives / share_negatives noise ids;
    for FastText, 12 bytes per row of the input word (about those of a 6-letter word)."""
    noise = 0 if c.model == "skipgram_softmax" or c.loss == "hs" else 4 * c.negatives / c.share_negatives
    per_pair = 17 + noise + (12 * _rows_per_word(c) if c.model in FASTTEXT_MODELS else 0)
    need = 2 * c.window * c.batch_size * per_pair
    if need > MAX_STEP_BYTES:
        most = max(1, int(MAX_STEP_BYTES / (2 * c.batch_size * per_pair)))
        raise ConfigError(
            f"config.window={c.window} with config.batch_size={c.batch_size} and config.negatives={c.negatives}: "
            f"a step's examples would take {need / 2**30:.1f} GiB (2 x window x batch_size pairs of "
            f"{per_pair:g} bytes); accepted: at most {MAX_STEP_BYTES >> 30} GiB, e.g. window <= {most} or a "
            f"smaller batch_size or negatives"
        )


def check_corpus(c, corpus: text_data.EncodedCorpus) -> None:
    """DataError, right after the corpus is read and before anything is written, when its vocabulary cannot train:
    negative sampling contrasts each example with `negatives` noise words drawn from the vocabulary, and with no
    more words than that they are mostly the example's own, whose summed updates diverge (a corpus of one or two
    words: NaN within a few steps); a softmax over one word has nothing to learn. ConfigError when the two tables
    would exceed MAX_TABLE_BYTES."""
    words = len(corpus.vocab)
    least = 2 if c.model == "skipgram_softmax" or c.loss == "hs" else c.negatives + 1
    if words < least:
        why = "a softmax needs two words" if least == 2 else f"more words than config.negatives={c.negatives}"
        raise DataError(
            f"corpus {corpus.name!r} keeps {words} distinct word{'s' * (words != 1)} at min_count={c.min_count}; "
            f"accepted: {why} (a corpus of at least {least} distinct words, a lower min_count"
            f"{'' if least == 2 else ', or fewer negatives'})"
        )
    rows = words + table_rows(c, words)
    need = rows * c.embed_dim * 4
    if need > MAX_TABLE_BYTES:
        buckets = f" + {c.bucket} n-gram buckets" if c.model in FASTTEXT_MODELS else ""
        raise ConfigError(
            f"config.embed_dim={c.embed_dim}: the two tables of {words} words{buckets} x embed_dim float32 would "
            f"take {need / 2**30:.1f} GiB; accepted: at most {MAX_TABLE_BYTES >> 30} GiB, embed_dim <= "
            f"{MAX_TABLE_BYTES // (4 * rows)} (or a smaller max_vocab{' or bucket' if buckets else ''})"
        )


def load_corpus(c, workdir: str | None):
    """(encoded corpus, its cache key), checked (check_corpus); the corpus.npz cached in workdir is reused when it
    matches. The key is of the bytes read (text.encode_corpus), which is what a rerun must find again."""
    source = text_data.corpus_of(c)
    corpus = text_data.encode_corpus(source, c.min_count, max_vocab=c.max_vocab, cache_dir=workdir)
    check_corpus(c, corpus)
    return corpus, corpus.key


def caching_batches(examples: TrainingExamples, corpus: text_data.EncodedCorpus, workdir: str):
    """examples.batches, first caching the corpus in workdir (text.save_cached) on the lead process: the loop asks
    for the batches under the workdir's lock, after its checks, so a refused run has written nothing."""

    def batches(global_batch_size: int, seed: int, num_threads: int | None = None):
        if jax.process_index() == 0:
            text_data.save_cached(workdir, corpus.key, corpus)
        return examples.batches(global_batch_size, seed, num_threads)

    return batches


def resolve_num_steps(c, corpus: text_data.EncodedCorpus) -> int:
    """c.num_steps, or when it is 0, enough steps of batch_size words for num_epochs passes over the corpus."""
    return c.num_steps or math.ceil(c.num_epochs * len(corpus.ids) / c.batch_size)


# ----------------------------------------------------------------------------- each step's examples


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
        self.kind = step_kind(c)
        self.packed = self.kind in ("cbow", "cbow_hs")  # CBOW's context slots (FastText's word rows too)
        vocab_size = len(corpus.vocab)
        if c.model in FASTTEXT_MODELS:  # word w's rows of 'in': w, then V + each of its n-grams' buckets
            self.ngram_ids, self.ngram_counts = fasttext.ngram_buckets(corpus.vocab.words, c.minn, c.maxn, c.bucket)
            self.word_offsets = np.concatenate([[0], np.cumsum(1 + self.ngram_counts)])
            self.word_rows = np.empty(self.word_offsets[-1], np.int32)
            self.word_rows[self.word_offsets[:-1]] = np.arange(vocab_size)
            own = np.zeros(self.word_offsets[-1], bool)
            own[self.word_offsets[:-1]] = True
            self.word_rows[~own] = vocab_size + self.ngram_ids
        if c.loss == "hs" and c.model != "skipgram_softmax":
            codes, points, lengths = w2v.huffman_tree(corpus.vocab.counts)
            self.path_points, self.path_signs = points, np.asarray(word2vec_rows.path_signs(codes, lengths))
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
        if self.packed:  # context slots per minibatch: 10% above the probes' most contexts per centre
            ratio = max(len(ex[0]) / max(len(ex[1]), 1) for ex in probed)
            most = 2 * c.window  # a centre's most contexts; FastText's: its input word's rows, or each context's
            if c.model in FASTTEXT_MODELS:
                most = int(np.diff(self.word_offsets).max()) * (2 * c.window if c.model == "fasttext_cbow" else 1)
            self.context_slots = max(most, 8 * math.ceil(c.minibatch_size * ratio * 1.1 / 8))
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
        if self.packed:
            return len(pack_centres(ex[1], self.minibatch_size, self.context_slots))
        return self._count(ex) / self.minibatch_size

    def _examples(self, i: int, rng: np.random.Generator):
        """Unpadded examples of step i: (inputs, outputs) pairs, or for CBOW (contexts centre by centre,
        contexts per centre, centres); FastText's in CBOW's form, each input word replaced by its rows."""
        n_words = len(self.ids)
        position = np.arange(i * self.words_per_step, (i + 1) * self.words_per_step, dtype=np.int64)
        epoch, position = np.divmod(position, n_words)
        tokens = self.ids[position]
        wrap = np.flatnonzero(np.diff(position) < 0)  # where an epoch ends inside the step
        for a, b in zip(np.r_[0, wrap + 1], np.r_[wrap + 1, len(position)]):
            text_data.release_pages(self.ids, int(position[a]), int(position[b - 1]) + 1)
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
        if self.model in ("cbow", "fasttext_cbow"):
            counts = valid.sum(axis=1)
            has = counts > 0
            if self.model == "fasttext_cbow":  # each context word's rows; a centre's count sums its contexts'
                contexts, per_word = expand_words(contexts, self.word_offsets, self.word_rows)
                counts = np.bincount(np.repeat(np.arange(n), counts), weights=per_word, minlength=n).astype(np.int64)
            return contexts, counts[has], tokens[has]
        outputs = tokens[flat // (2 * w)]
        if self.model == "fasttext":  # a pair: the output word with its input word's rows as the "contexts"
            rows, counts = expand_words(contexts, self.word_offsets, self.word_rows)
            return rows, counts, outputs
        return contexts, outputs

    def record(self, seed: int, i: int) -> dict:
        """Step i's arrays: per example (weights: 1, or 0 for padding) of leading size capacity, and for CBOW
        the packed context slots (contexts, owners, mask) of leading size minibatches x context_slots. The
        noise words are drawn in the step (`negatives`)."""
        ex = self._examples(i, np.random.default_rng([seed, i]))
        record = self._cbow_arrays(*ex) if self.packed else self._pair_arrays(*ex)
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

    def paths(self, outputs: jax.Array) -> dict:
        """The Huffman paths of the output words [B] (loss 'hs'): points and signs [B, L] (zoo.word2vec_rows),
        gathered on the device from the vocabulary's tables."""
        return {"points": jnp.asarray(self.path_points)[outputs], "signs": jnp.asarray(self.path_signs)[outputs]}

    def word_vectors(self, table) -> np.ndarray:
        """The words' vectors [V, D] of an 'in' table: its rows, or FastText's mean of each word's rows
        (zoo.fasttext.table_word_vectors, gensim's wv.vectors), composed a block of words at a time from the
        table as given: pass the device array (a host one is copied to the device first)."""
        if self.model not in FASTTEXT_MODELS:
            return np.asarray(table)
        return fasttext.table_word_vectors(table, len(self.ngram_counts), self.ngram_ids, self.ngram_counts)

    def negatives(self, key: jax.Array, rows: int) -> jax.Array:
        """Noise words [rows, negatives] from unigram^0.75 (zoo.text.noise_distribution), drawn on the device
        inside the jitted step (zoo.word2vec.sample_alias: Walker's alias method, O(1) per draw); one row per
        group of share_negatives examples."""
        return w2v.sample_alias(key, self.noise_threshold, self.noise_alias, (rows, self.num_negatives))

    def batches(self, global_batch_size: int, seed: int, num_threads: int | None = None):
        """A checkpointable iterator over the steps' records (parallel.IndexedRecords: its state is the step it has
        reached), made by num_threads threads (None: parallel.input_threads: one on the CPU, up to 8 beside an
        accelerator)."""
        if global_batch_size != self.words_per_step:
            raise ConfigError(
                f"batch_size {global_batch_size} differs from the {self.words_per_step} the examples were sized for"
            )
        n, p = jax.process_count(), jax.process_index()
        if n == 1:
            record = functools.partial(self.record, seed)
        else:  # each process feeds its devices' share of every array
            record = lambda i: {k: np.split(v, n)[p] for k, v in self.record(seed, i).items()}
        return parallel.IndexedRecords(record, num_threads)


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


# ----------------------------------------------------------------------------- a minibatch's sparse SGD


def sparse_update(model: str, tables, mb, lr):
    """One SGD step on the summed loss of a minibatch, touching only its rows (zoo.word2vec_rows); model: the
    config's step_kind."""
    if model == "hs":
        return word2vec_rows.hs_rows_step(tables, mb["inputs"], mb["points"], mb["signs"], mb["weights"], lr)
    if model == "cbow_hs":
        return word2vec_rows.cbow_hs_rows_step(
            tables, mb["contexts"], mb["owners"], mb["mask"], mb["points"], mb["signs"], mb["weights"], lr
        )
    if model == "sgns":
        return word2vec_rows.sgns_rows_step(tables, mb["inputs"], mb["outputs"], mb["negatives"], mb["weights"], lr)
    if model == "cbow":
        return word2vec_rows.cbow_rows_step(
            tables, mb["contexts"], mb["owners"], mb["mask"], mb["outputs"], mb["negatives"], mb["weights"], lr
        )
    return word2vec_rows.softmax_rows_step(tables, mb["inputs"], mb["outputs"], mb["weights"], lr)


def touched_rows(model: str, mb) -> dict:
    """The ids of the rows of each table that minibatches `mb` (a step_kind other than skipgram_softmax) can
    change: the inputs' or contexts' rows of 'in', the outputs' and noise words' rows of 'out', or for 'hs'
    the inner nodes of the output words' paths (padding's row 0 too)."""
    inputs = mb["inputs"] if model in PAIR_KINDS else mb["contexts"]
    if model in ("hs", "cbow_hs"):
        return {"in": inputs.ravel(), "out": mb["points"].ravel()}
    return {"in": inputs.ravel(), "out": jnp.concatenate([mb["outputs"].ravel(), mb["negatives"].ravel()])}


def scan_minibatches(model: str, tables, batch, lrs):
    """(tables, summed loss) after one sparse_update per minibatch, in one lax.scan: batch's arrays split into
    lrs.shape[0] minibatches, the j-th at rate lrs[j]."""
    xs = {k: v.reshape(lrs.shape[0], -1, *v.shape[1:]) for k, v in batch.items()}
    tables, losses = jax.lax.scan(lambda t, x: sparse_update(model, t, x[1], x[0]), tables, (lrs, xs))
    return tables, jnp.sum(losses)


def sum_changes(model: str, old, new, mb, dense: bool = False):
    """old + the sum over the devices of mesh axis 'data' of their changes new - old (traced inside shard_map):
    only the rows minibatches `mb` touched go across (parallel.sum_touched), or the whole tables when dense, as
    for skipgram_softmax always (its softmax changes every row of 'out')."""
    if dense or model == "skipgram_softmax":
        return jax.tree.map(lambda t, n: t + jax.lax.psum(n - t, "data"), old, new)
    ids = touched_rows(model, mb)
    return {k: parallel.sum_touched(old[k], new[k], ids[k], "data") for k in old}
