"""word2vec's jitted train step, for train/word2vec.py: a step's minibatches in one lax.scan over the two tables,
on one device or, with device_updates='local', as SGD on each device's share summed at fixed points."""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from train.core import parallel
from train.data import word2vec_examples as w2v_examples, word2vec_native
from zoo import word2vec as w2v


def native_threads(c, warn: bool = True) -> int:
    """The native kernel's threads for this config (train.data.word2vec_native), or 0 where XLA's row steps run:
    kernel 'xla', a step kind it lacks (hs, skipgram_softmax), an accelerator, or a kernel that cannot be built
    (said on stderr in one line when warn)."""
    if c.kernel != "native" or w2v_examples.step_kind(c) not in word2vec_native.KINDS:
        return 0
    if parallel.planned_backend() != "cpu":
        return 0
    ok, why = word2vec_native.available()
    if not ok:
        if warn:
            print(f"word2vec: the native kernel is unavailable ({why}); XLA's row steps train instead", file=sys.stderr)
        return 0
    return c.threads or (1 if c.deterministic else word2vec_native.default_threads())


def native_steps(c, kind: str, native, tables, batch, lrs, key):
    """(tables, summed loss) of a step's examples through the native kernel (train.data.word2vec_native):
    native = (threads, threshold, alias), the threads and the noise words' alias table."""
    threads, threshold, alias = native
    noise = (threshold, alias, key, c.negatives)
    common = dict(threads=threads, group=c.share_negatives)
    if kind == "sgns":
        args = (batch["inputs"], batch["outputs"], batch["weights"], lrs, noise)
        return word2vec_native.skipgram_steps(tables, *args, **common)
    args = (batch["contexts"], batch["owners"], batch["mask"], batch["outputs"], batch["weights"], lrs, noise)
    return word2vec_native.cbow_steps(tables, *args, **common)


def make_train_step(
    c, minibatches: int, mesh=None, negatives=None, sync_minibatches: int = 0, dense_sums=False, paths=None, native=None
):
    """(state, batch, key) -> (state, metrics): the step's minibatches in one lax.scan, lr decayed by words read.

    negatives(key, rows) -> [rows, K] noise words (TrainingExamples.negatives), drawn from the step's key:
    one draw for the whole step, or on each device from fold_in(key, device index) for its share.
    paths(outputs) -> the output words' Huffman paths (TrainingExamples.paths), for loss 'hs'.
    sync_minibatches: TrainingExamples.sync_minibatches, which divides each device's share (0: once per step).

    On a mesh of several devices with c.device_updates = 'local', each device runs SGD over its own share of
    the minibatches, and every c.sync_minibatches minibatches (0: at the end of the step) the devices' changes
    to the tables are summed into every device's copy: Hogwild across devices, as gensim's worker threads,
    but synchronised at fixed points, so a run is deterministic for a given device count. Each sum carries only
    the rows some device touched in the round (`sum_changes`; their ids come with the minibatches), not the
    2 x V x D floats of both tables; dense_sums=True sums the whole tables (the same result: the reference the
    tests compare with), as skipgram_softmax always does (its softmax changes every row of 'out').
    'replicated' runs every minibatch in order on every device: the single-device result, without a speed-up.
    native = (threads, threshold, alias): on one CPU device, the step's examples go through the native kernel
    instead (native_steps: word2vec.c's per-example SGD on `threads` threads, noise drawn in the kernel).
    """
    total_words = c.num_steps * c.batch_size
    kind = w2v_examples.step_kind(c)
    local = mesh is not None and mesh.size > 1 and c.device_updates == "local"
    shards = mesh.size if local else 1
    per_device = minibatches // shards
    sync = (sync_minibatches or per_device) if local else per_device

    def learning_rate(step, j, n=minibatches):
        words = (step.astype(jnp.float32) + jnp.asarray(j, jnp.float32) / n) * c.batch_size
        return w2v.linear_decay_lr(c.learning_rate, words / total_words, c.min_learning_rate)

    def with_negatives(batch, key, rows):
        if paths is not None:
            batch = {**batch, **paths(batch["outputs"])}
        return batch if negatives is None else {**batch, "negatives": negatives(key, rows // c.share_negatives)}

    def local_sgd(tables, batch, lrs, key):  # one device's share: lrs [per_device], in rounds of `sync` minibatches
        key = jax.random.fold_in(key, jax.lax.axis_index("data"))
        batch = with_negatives(batch, key, per_device * c.minibatch_size)
        rounds = per_device // sync
        xs = {k: v.reshape(rounds, -1, *v.shape[1:]) for k, v in batch.items()}

        def one_round(tables, x):
            new, loss = w2v_examples.scan_minibatches(kind, tables, *x)
            return w2v_examples.sum_changes(kind, tables, new, x[0], dense_sums), jax.lax.psum(loss, "data")

        tables, losses = jax.lax.scan(one_round, tables, (xs, lrs.reshape(rounds, sync)))
        return tables, jnp.sum(losses)

    def train_step(state, batch, key):
        # the examples come drawn on the host from (seed, step); the noise words from the step's key. lr_scale: a
        # learning-rate sweep's replica (train/core/loop.py)
        scale = 1.0 if state.lr_scale is None else state.lr_scale
        # device d's j-th minibatch is the step's (d * per_device + j)-th; the rates follow the words read
        lrs = scale * learning_rate(state.step, jnp.arange(minibatches)).reshape(shards, per_device)
        examples = {k: v for k, v in batch.items() if k != "dropped"}
        if native is not None:
            tables, loss = native_steps(c, kind, native, state.params, examples, lrs[0], key)
        elif local:
            specs = dict(in_specs=(P(), P("data"), P("data"), P()), out_specs=(P(), P()), check_vma=False)
            sharded = jax.shard_map(lambda t, b, r, k: local_sgd(t, b, r[0], k), mesh=mesh, **specs)
            tables, loss = sharded(state.params, examples, lrs, key)
        else:
            examples = with_negatives(examples, key, minibatches * c.minibatch_size)
            tables, loss = w2v_examples.scan_minibatches(kind, state.params, examples, lrs[0])
        n = jnp.sum(batch["weights"])
        metrics = {
            "loss": loss / jnp.maximum(n, 1.0),
            "examples": n,
            "dropped": jnp.sum(batch["dropped"]),
            "learning_rate": scale * learning_rate(state.step, minibatches),
        }
        return state.advance(params=tables), metrics

    return train_step
