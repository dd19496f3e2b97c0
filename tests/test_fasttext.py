"""zoo.fasttext against gensim's FastText: n-grams and their bucket hashes, in-vocabulary and unseen words' vectors."""

import logging

import numpy as np
import pytest

from zoo import fasttext as ft

gensim_fasttext = pytest.importorskip("gensim.models.fasttext")

WORDS = ["naïve", "日本語", "привет", "hello", "aaaa", "a", "", "🙂ok", "x-y_z", "Straße"]


def test_char_ngrams_are_the_marked_words_substrings():
    assert ft.char_ngrams("where", 3, 3) == ["<wh", "whe", "her", "ere", "re>"]  # the paper's example
    assert ft.char_ngrams("ab", 1, 2) == ["<a", "a", "ab", "b", "b>"]  # '<' and '>' alone are no n-gram
    assert ft.char_ngrams("", 3, 6) == [] and ft.char_ngrams("a", 3, 6) == ["<a>"]
    for word in WORDS:  # brute force: every substring of <word> of 3..6 characters, by start then length
        s = f"<{word}>"
        want = [s[i : i + n] for i in range(len(s)) for n in range(3, 7) if i + n <= len(s)]
        assert ft.char_ngrams(word) == want
    with pytest.raises(ValueError, match="minn=4 must be at most maxn=3"):
        ft.char_ngrams("word", 4, 3)


def test_ft_hash_is_fasttexts_sign_extended_fnv1a():
    """Equal to gensim's ft_hash_bytes; plain FNV-1a (bytes zero-extended) agrees on ASCII only."""
    from gensim.models.fasttext_inner import ft_hash_bytes

    def plain_fnv1a(data):
        h = 2166136261
        for b in data:
            h = ((h ^ b) * 16777619) % 2**32
        return h

    for word in WORDS:
        data = word.encode("utf-8")
        assert ft.ft_hash(data) == ft_hash_bytes(data)
        assert (ft.ft_hash(data) == plain_fnv1a(data)) == data.isascii()


@pytest.mark.parametrize("minn,maxn,bucket", [(3, 6, 2_000_000), (1, 2, 1000), (2, 5, 97), (4, 4, 10)])
def test_ngram_buckets_equal_gensims_ft_ngram_hashes(minn, maxn, bucket):
    ids, counts = ft.ngram_buckets(WORDS, minn, maxn, bucket)
    want = [gensim_fasttext.ft_ngram_hashes(w, minn, maxn, bucket) for w in WORDS]
    assert counts.tolist() == [len(h) for h in want]
    assert ids.tolist() == [h for hashes in want for h in hashes]
    one, _ = ft.ngram_buckets(["naïve"], minn, maxn, bucket)  # one word alone: the same ids
    assert one.tolist() == want[0]
    # and the hash of each n-gram string
    assert one.tolist() == [ft.ft_hash(g.encode()) % bucket for g in ft.char_ngrams("naïve", minn, maxn)]


def test_ngram_buckets_refuse_bad_arguments():
    with pytest.raises(ValueError, match="minn=5 must be at most maxn=3"):
        ft.ngram_buckets(["word"], 5, 3)
    with pytest.raises(ValueError, match="bucket must be >= 1"):
        ft.ngram_buckets(["word"], 3, 6, 0)
    with pytest.raises(ValueError, match="a single str"):
        ft.ngram_buckets("word")


@pytest.fixture(scope="module")
def trained():
    """A tiny gensim FastText: sentences of 30 words, vector_size 8, 500 buckets, one worker."""
    logging.getLogger("gensim").setLevel(logging.WARNING)
    rng = np.random.default_rng(0)
    lexicon = ["naïve", "naïvety", "привет", "приветик", "日本語", "日本", "kingdom", "kings", "queen", "walking"]
    sentences = [[lexicon[i] for i in rng.integers(0, len(lexicon), 12)] for _ in range(30)]
    model = gensim_fasttext.FastText(
        sentences, vector_size=8, min_count=1, bucket=500, min_n=2, max_n=4, epochs=2, workers=1, seed=0
    )
    return model


def test_in_vocabulary_vectors_are_gensims(trained):
    """x_w = (v_w + sum_g z_g) / (1 + |G(w)|) from gensim's tables equals gensim's wv.vectors and wv[w] (1e-6)."""
    wv = trained.wv
    ids, counts = ft.ngram_buckets(wv.index_to_key, wv.min_n, wv.max_n, wv.bucket)
    ours = np.asarray(ft.word_vectors(wv.vectors_vocab, wv.vectors_ngrams, ids, counts))
    np.testing.assert_allclose(ours, wv.vectors, atol=1e-6)
    for i, word in enumerate(wv.index_to_key):
        np.testing.assert_allclose(ours[i], wv[word], atol=1e-6)
        # and one word by the definition: its own row and each n-gram's row, averaged
        rows = [wv.vectors_vocab[i]] + [wv.vectors_ngrams[h] for h in ids[counts[:i].sum() : counts[: i + 1].sum()]]
        np.testing.assert_allclose(ours[i], np.mean(rows, axis=0), atol=1e-6)


@pytest.mark.parametrize("word", ["naïv", "привети", "日本人", "kingdoms", "zzzz", ""])
def test_unseen_word_vectors_are_gensims(trained, word):
    """The mean of an unseen word's n-gram rows equals gensim's wv[word] (1e-6); no n-gram: the zero vector."""
    wv = trained.wv
    assert word not in wv.key_to_index
    ids, counts = ft.ngram_buckets([word], wv.min_n, wv.max_n, wv.bucket)
    ours = np.asarray(ft.unseen_word_vector(wv.vectors_ngrams, ids))
    np.testing.assert_allclose(ours, wv[word], atol=1e-6)
    if counts[0] == 0:
        assert not ours.any()
    else:
        np.testing.assert_allclose(ours, wv.vectors_ngrams[ids].mean(axis=0), atol=1e-7)


def test_init_params_is_fasttexts_uniform_and_checks_tables():
    import jax

    p = ft.init_params(jax.random.PRNGKey(0), 7, 50, 4)
    assert p["in"].shape == (57, 4) and p["out"].shape == (7, 4) and not np.asarray(p["out"]).any()
    w = np.asarray(p["in"])
    assert np.abs(w).max() <= 0.25 and np.abs(w).max() > 0.2  # U(-1/D, 1/D), D = 4
    with pytest.raises(ValueError, match="vectors_ngrams must be a float array"):
        ft.unseen_word_vector(np.zeros(3), [0])
    with pytest.raises(ValueError, match="counts must be"):
        ft.word_vectors(np.zeros((2, 4)), np.zeros((5, 4)), [0, 1], [1])


@pytest.mark.parametrize("partitionable", [False, True])
def test_uniform_rows_is_jax_random_uniform_bit_for_bit(partitionable):
    """init_params draws its table a block of rows at a time (uniform_rows): the values of one
    jax.random.uniform over the whole table, in either threefry layout, for typed and raw keys, whatever the
    block (a last block that overlaps, an odd count of floats), jitted or not; and no table-sized temporary."""
    import jax
    import jax.numpy as jnp

    with jax.threefry_partitionable(partitionable):
        for key in (jax.random.key(0), jax.random.PRNGKey(3)):
            for rows, dim, block_floats in [(1001, 7, 64), (333, 5, 5), (7, 4, 1000)]:  # overlap, odd count, 1 block
                want = np.asarray(jax.random.uniform(key, (rows, dim), jnp.float32, -1 / dim, 1 / dim))
                draw = lambda k: ft.uniform_rows(k, rows, dim, -1 / dim, 1 / dim, block_floats)  # noqa: B023, E731
                for got in (draw(key), jax.jit(draw)(key)):
                    np.testing.assert_array_equal(np.asarray(got).view(np.uint32), want.view(np.uint32))
        p = ft.init_params(jax.random.key(1), 7, 50, 4)
        want = jax.random.uniform(jax.random.key(1), (57, 4), jnp.float32, -0.25, 0.25)
        np.testing.assert_array_equal(np.asarray(p["in"]), np.asarray(want))
        table_bytes = 100_000 * 8 * 4
        draw = jax.jit(lambda k: ft.uniform_rows(k, 100_000, 8, -0.1, 0.1, 8192))
        assert draw.lower(jax.random.key(0)).compile().memory_analysis().temp_size_in_bytes < table_bytes // 4


def test_table_word_vectors_are_word_vectors_bit_for_bit():
    """Composed from the whole 'in' table a block of words at a time (padded blocks, words without n-grams, a
    word alone in its block), the vectors are word_vectors' of the table's two parts, bit for bit."""
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefgé"), rng.integers(1, 9))) for _ in range(300)] + WORDS
    for minn, maxn in [(3, 6), (7, 9), (1, 2)]:
        ids, counts = ft.ngram_buckets(words, minn, maxn, 97)
        v = len(words)
        table = jnp.asarray(rng.normal(size=(v + 97, 5)).astype(np.float32))
        want = np.asarray(ft.word_vectors(table[:v], table[v:], ids, counts)).view(np.uint32)
        for block_floats in (5, 320, 1 << 22):
            got = ft.table_word_vectors(table, v, ids, counts, block_floats)
            assert got.dtype == np.float32 and isinstance(got, np.ndarray)
            np.testing.assert_array_equal(got.view(np.uint32), want)
    with pytest.raises(ValueError, match="counts must be"):
        ft.table_word_vectors(np.zeros((7, 4), np.float32), 2, [0, 1], [1])
