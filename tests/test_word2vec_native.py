"""train.data.word2vec_native: the native kernel against a numpy loop of word2vec.c's update, its noise words against
their distribution, its threads against the one-thread result, and the fallback where it cannot be built."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from train import word2vec as tw
from train.data import word2vec_native as native, word2vec_step
from zoo import word2vec as w2v

pytestmark = pytest.mark.skipif(not native.available()[0], reason=f"no native kernel here: {native.available()[1]}")

V, D, K = 40, 8, 3


def noise_table(seed=0):
    prob = np.random.default_rng(seed).dirichlet(np.ones(V) * 0.5)
    p, alias = w2v.alias_table(prob)
    return prob, w2v.alias_threshold(p), alias


def tables(seed=1):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(0, 0.3, (V, D)).astype(np.float32) for k in ("in", "out")}


def word2vec_c_update(t, rows, target, noise, step):
    """word2vec.c's update of one example, in float64: h = mean of the input rows; each target in turn (the
    positive, then the noise words) adds g u to the input rows' step and g h to its own row. The example's loss."""
    h = t["in"][rows].mean(axis=0)
    grad, loss = np.zeros_like(h), 0.0
    for j, u in enumerate([target, *noise]):
        s = h @ t["out"][u]
        label = 1.0 if j == 0 else 0.0
        g = step * (label - 1 / (1 + np.exp(-s)))
        loss += np.logaddexp(0, -s if j == 0 else s)
        grad += g * t["out"][u]
        t["out"][u] += g * h
    for r in rows:
        t["in"][r] += grad
    return loss


def test_noise_words_follow_the_alias_tables_distribution_and_the_key():
    prob, threshold, alias = noise_table()
    key = jax.random.key(3)
    drawn = np.asarray(native.noise_words(threshold, alias, key, 100_000, 5))
    freq = np.bincount(drawn.ravel(), minlength=V) / drawn.size
    # 500k draws: each frequency within 5 binomial standard deviations of its probability
    np.testing.assert_array_less(np.abs(freq - prob), 5 * np.sqrt(prob * (1 - prob) / drawn.size) + 1e-9)
    assert drawn.min() >= 0 and drawn.max() < V
    np.testing.assert_array_equal(drawn, np.asarray(native.noise_words(threshold, alias, key, 100_000, 5)))
    other = np.asarray(native.noise_words(threshold, alias, jax.random.key(4), 100_000, 5))
    assert np.mean(other != drawn) > 0.5


def test_skipgram_kernel_is_a_numpy_loop_of_word2vec_c_update():
    """One thread: every pair in order, minibatch j at rate lrs[j], padding skipped, G = 2 pairs sharing a draw."""
    rng = np.random.default_rng(0)
    _, threshold, alias = noise_table()
    n, m, group = 48, 4, 2
    inputs, outputs = rng.integers(0, V, n), rng.integers(0, V, n)
    weights = np.ones(n, np.float32)
    weights[-5:] = 0  # padding
    lrs = np.array([0.5, 0.4, 0.3, 0.2], np.float32)  # large: the order of the updates shows
    key = jax.random.key(7)
    noise = np.asarray(native.noise_words(threshold, alias, key, n // group, K))
    want = {k: v.astype(np.float64) for k, v in tables().items()}
    loss = sum(
        word2vec_c_update(want, [inputs[i]], outputs[i], noise[i // group], lrs[i // (n // m)])
        for i in range(n)
        if weights[i]
    )
    got, got_loss = native.skipgram_steps(
        tables(), inputs, outputs, weights, lrs, (threshold, alias, key, K), threads=1, group=group
    )
    for k in want:
        np.testing.assert_allclose(np.asarray(got[k]), want[k], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(got_loss), loss, rtol=1e-5)


def packed_centres(rng, m, b, slots):
    """CBOW's packed record (word2vec_examples.TrainingExamples._cbow_arrays' layout): per minibatch b centres with
    1-4 contexts each in consecutive slots, empty slots (mask 0) after them; the last centre is padding."""
    contexts, owners, mask = (np.zeros(m * slots, dt) for dt in (np.int32, np.int32, np.float32))
    per_centre = []
    for j in range(m):
        at = j * slots
        for c in range(b):
            rows = rng.integers(0, V, rng.integers(1, 5))
            contexts[at : at + len(rows)], owners[at : at + len(rows)], mask[at : at + len(rows)] = rows, c, 1
            per_centre.append(rows)
            at += len(rows)
        assert at <= (j + 1) * slots
    weights = np.ones(m * b, np.float32)
    weights[-1] = 0
    return contexts, owners, mask, per_centre, weights


def test_cbow_kernel_is_a_numpy_loop_of_word2vec_c_update():
    rng = np.random.default_rng(1)
    _, threshold, alias = noise_table()
    m, b, slots = 3, 6, 32
    contexts, owners, mask, per_centre, weights = packed_centres(rng, m, b, slots)
    outputs = rng.integers(0, V, m * b)
    lrs = np.array([0.5, 0.3, 0.2], np.float32)
    key = jax.random.key(8)
    noise = np.asarray(native.noise_words(threshold, alias, key, m * b, K))
    want = {k: v.astype(np.float64) for k, v in tables().items()}
    loss = sum(
        word2vec_c_update(want, per_centre[i], outputs[i], noise[i], lrs[i // b]) for i in range(m * b) if weights[i]
    )
    got, got_loss = native.cbow_steps(
        tables(), contexts, owners, mask, outputs, weights, lrs, (threshold, alias, key, K), threads=1
    )
    for k in want:
        np.testing.assert_allclose(np.asarray(got[k]), want[k], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(got_loss), loss, rtol=1e-5)


@pytest.mark.parametrize("threads", [2, 3])
def test_threads_apply_every_example_once(threads):
    """At a tiny rate the updates are nearly linear, so the order the threads interleave them in hardly matters:
    a row's change on several threads is one thread's to 5%. Hogwild's lost updates (two threads adding to one row
    at once) can miss a row's contribution: allowed in at most 1% of the touched rows; a minibatch skipped or run
    twice changes a sixth of them."""
    rng = np.random.default_rng(2)
    v, n, m = 20_000, 1200, 6  # rows enough that two threads rarely add to one at once
    p, alias = w2v.alias_table(rng.dirichlet(np.ones(v)))
    noise = (w2v.alias_threshold(p), alias, jax.random.key(9), K)
    start = {k: rng.normal(0, 0.3, (v, D)).astype(np.float32) for k in ("in", "out")}
    args = (rng.integers(0, v, n), rng.integers(0, v, n), np.ones(n, np.float32), np.full(m, 1e-3, np.float32))
    one, loss_one = native.skipgram_steps(dict(start), *args, noise, threads=1)
    many, loss_many = native.skipgram_steps(dict(start), *args, noise, threads=threads)
    for k in start:
        change, other = np.asarray(one[k]) - start[k], np.asarray(many[k]) - start[k]
        size = np.linalg.norm(change, axis=1)
        touched = size > 0
        differs = np.linalg.norm(other - change, axis=1) > 0.05 * size
        assert touched.sum() > 1000 and differs[touched].sum() <= 0.01 * touched.sum(), (k, differs.sum())
        assert not np.any(other[~touched]), k  # rows no example touched stay as they were
    np.testing.assert_allclose(float(loss_many), float(loss_one), rtol=1e-3)


def test_kernel_updates_the_donated_tables_in_place_under_jit():
    """The tables go into the FFI call aliased to its results: the compiled step copies neither."""
    _, threshold, alias = noise_table()
    n = 16

    def step(t, inputs, outputs):
        return native.skipgram_steps(
            t, inputs, outputs, jnp.ones(n), jnp.full(2, 0.1), (threshold, alias, jax.random.key(0), K), threads=1
        )

    t = {k: jnp.asarray(v) for k, v in tables().items()}
    ids = jnp.arange(n) % V
    hlo = jax.jit(step, donate_argnums=0).lower(t, ids, ids).compile().as_text()
    assert 'custom_call_target="zoo_word2vec_skipgram"' in hlo
    assert f"f32[{V},{D}]{{1,0}} copy(" not in hlo


def test_build_fails_in_one_line_without_a_compiler_and_train_word2vec_falls_back(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ZOO_NATIVE_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    with pytest.raises(OSError):
        native.build()
    assert not list(tmp_path.iterdir())  # nothing half-written left behind
    c = tw.get_config("smoke")
    monkeypatch.setattr(native, "available", lambda: (False, "no C++ compiler"))
    assert word2vec_step.native_threads(c) == 0
    assert capsys.readouterr().err.strip() == (
        "word2vec: the native kernel is unavailable (no C++ compiler); XLA's row steps train instead"
    )


def test_native_threads_follow_the_config():
    c = tw.get_config("smoke")
    assert word2vec_step.native_threads(c) == native.default_threads()
    c.threads = 3
    assert word2vec_step.native_threads(c) == 3
    c.threads, c.deterministic = 0, True
    assert word2vec_step.native_threads(c) == 1
    for key, value in (("kernel", "xla"), ("loss", "hs"), ("model", "skipgram_softmax")):
        other = tw.get_config("smoke")
        other[key] = value
        assert word2vec_step.native_threads(other) == 0, key
