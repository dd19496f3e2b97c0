"""FastText subword vectors (Bojanowski et al. 2017): a word is the mean of its own vector and its n-grams'.

A word w is written ``<w>`` (boundary markers) and cut into its character n-grams of lengths minn..maxn
(gensim's defaults 3..6), each hashed into one of ``bucket`` rows of an n-gram table z (gensim's
``vectors_ngrams``) by fastText's FNV-1a variant. Its input vector is

    x_w = (v_w + sum_{g in G(w)} z_g) / (1 + |G(w)|),

v_w its own row (gensim's ``vectors_vocab``); an unseen word has no v_w and is the mean of its n-gram rows
(the zero vector when it has none, as gensim and fastText give). Training uses x_w where word2vec uses v_w,
and every row of the mean takes the gradient of x_w undivided (fastText's and gensim's update), which is
word2vec's CBOW step with the word's rows as the context (``zoo.word2vec_rows.cbow_rows_step``).

1. n-grams and their buckets, host side in numpy: ``char_ngrams`` (the strings, for reading), ``ft_hash``
   (the hash of UTF-8 byte strings), ``ngram_buckets`` (every word's bucket ids at once, vectorised over
   the words' characters; what gensim's ``ft_ngram_hashes`` gives one word at a time).
2. Vectors, pure and jittable: ``init_params``, ``word_vectors`` (every in-vocabulary x_w, gensim's
   ``wv.vectors``), ``unseen_word_vector``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from zoo._checks import as_int

__all__ = [
    "FNV_OFFSET",
    "FNV_PRIME",
    "char_ngrams",
    "ft_hash",
    "ngram_buckets",
    "init_params",
    "word_vectors",
    "unseen_word_vector",
]

FNV_OFFSET = 2166136261
FNV_PRIME = 16777619


def _check_lengths(minn, maxn, fn: str) -> tuple[int, int]:
    minn, maxn = as_int(minn, "minn", fn, minimum=1), as_int(maxn, "maxn", fn, minimum=1)
    if minn > maxn:
        raise ValueError(f"{fn}: minn={minn} must be at most maxn={maxn}")
    return minn, maxn


def char_ngrams(word: str, minn: int = 3, maxn: int = 6) -> list[str]:
    """The n-grams of ``<word>``, minn <= n <= maxn characters, by start then length; the lone markers excluded."""
    minn, maxn = _check_lengths(minn, maxn, "char_ngrams")
    s = f"<{word}>"
    return [
        s[i : i + n]
        for i in range(len(s))
        for n in range(minn, maxn + 1)
        if i + n <= len(s) and not (n == 1 and (i == 0 or i + n == len(s)))  # fastText drops '<' and '>' alone
    ]


def _fnv_step(h: np.ndarray, byte: np.ndarray) -> np.ndarray:
    """h' = (h xor uint32(int8(byte))) * FNV_PRIME mod 2^32: fastText's byte is a signed char, sign-extended."""
    signed = byte.astype(np.int8).astype(np.int32).astype(np.uint32)
    return (h ^ signed) * np.uint32(FNV_PRIME)


def ft_hash(data: bytes) -> int:
    """fastText's hash of a byte string: FNV-1a 32-bit with each byte sign-extended (non-ASCII bytes differ)."""
    h = FNV_OFFSET
    for byte in bytes(data):
        h = ((h ^ (byte | 0xFFFFFF00 if byte >= 0x80 else byte)) * FNV_PRIME) & 0xFFFFFFFF
    return h


def ngram_buckets(words, minn: int = 3, maxn: int = 6, bucket: int = 2_000_000) -> tuple[np.ndarray, np.ndarray]:
    """(ids, counts): the bucket ids ft_hash(utf8(g)) mod bucket of every word's ``char_ngrams``, concatenated
    word by word (int64 [sum(counts)]), and how many each word has (int64 [len(words)]).

    Vectorised over the characters of all the words: from every start character a running hash is extended one
    character (its 1-4 UTF-8 bytes) at a time, and each length from minn to maxn is read off.
    """
    fn = "ngram_buckets"
    minn, maxn = _check_lengths(minn, maxn, fn)
    bucket = as_int(bucket, "bucket", fn, minimum=1)
    if isinstance(words, str):
        raise ValueError(f"{fn}: words must be a sequence of str, got a single str (wrap it: [word])")
    marked = [f"<{w}>" for w in words]
    lengths = np.array([len(s) for s in marked], np.int64)
    data = np.frombuffer("".join(marked).encode("utf-8"), np.uint8)
    first_byte = np.flatnonzero((data & 0xC0) != 0x80)  # every character starts at a non-continuation byte
    num_chars = first_byte.shape[0]
    char_bytes = np.diff(np.append(first_byte, data.shape[0]))  # 1-4
    byte_at = np.zeros((num_chars + maxn, 4), np.uint8)  # maxn rows of padding past the end
    for k in range(4):
        has = char_bytes > k
        byte_at[:num_chars][has, k] = data[first_byte[has] + k]
    owner = np.repeat(np.arange(len(marked)), lengths)
    end = np.repeat(np.cumsum(lengths), lengths)  # one past each character's word's last character
    start_of_word = np.repeat(np.cumsum(lengths) - lengths, lengths)
    starts = np.arange(num_chars)
    h = np.full(num_chars, FNV_OFFSET, np.uint32)
    hashes = np.zeros((num_chars, maxn), np.uint32)
    keep = np.zeros((num_chars, maxn), bool)
    nbytes = np.append(char_bytes, np.zeros(maxn, np.int64))
    for n in range(1, maxn + 1):
        last = starts + n - 1  # the n-gram's last character
        inside = last < end
        for k in range(4):
            step = inside & (nbytes[last] > k)
            h = np.where(step, _fnv_step(h, byte_at[last, k]), h)
        hashes[:, n - 1] = h
        lone_marker = (n == 1) & ((starts == start_of_word) | (last == end - 1))
        keep[:, n - 1] = inside & (n >= minn) & ~lone_marker
    counts = np.bincount(owner, weights=keep.sum(axis=1), minlength=len(marked)).astype(np.int64)
    return hashes[keep].astype(np.int64) % bucket, counts  # row-major: by word, start, then length


def init_params(key: jax.Array, vocab_size: int, bucket: int, dim: int) -> dict[str, jax.Array]:
    """fastText's and gensim's initialisation: 'in' [V + bucket, D] (the words' rows, then the n-gram buckets'),
    ~ U(-1/D, 1/D); 'out' [V, D] = 0."""
    vocab_size = as_int(vocab_size, "vocab_size", "init_params", minimum=1)
    bucket = as_int(bucket, "bucket", "init_params", minimum=1)
    dim = as_int(dim, "dim", "init_params", minimum=1)
    w_in = jax.random.uniform(key, (vocab_size + bucket, dim), jnp.float32, -1.0 / dim, 1.0 / dim)
    return {"in": w_in, "out": jnp.zeros((vocab_size, dim), jnp.float32)}


def _check_table(table, name: str, fn: str) -> jax.Array:
    table = jnp.asarray(table)
    if table.ndim != 2 or not jnp.issubdtype(table.dtype, jnp.floating):
        raise ValueError(f"{fn}: {name} must be a float array [rows, D], got dtype {table.dtype} shape {table.shape}")
    return table


def word_vectors(vectors_vocab, vectors_ngrams, ids, counts) -> jax.Array:
    """x_w = (v_w + sum_{g in G(w)} z_g) / (1 + |G(w)|) for every word [V, D]: gensim's ``wv.vectors``.

    vectors_vocab [V, D] the words' rows v, vectors_ngrams [bucket, D] the n-gram rows z, (ids, counts) the
    words' bucket ids as ``ngram_buckets`` gives them.
    """
    fn = "word_vectors"
    v = _check_table(vectors_vocab, "vectors_vocab", fn)
    z = _check_table(vectors_ngrams, "vectors_ngrams", fn)
    counts = np.asarray(counts)
    if counts.shape != (v.shape[0],) or np.asarray(ids).shape != (int(counts.sum()),):
        raise ValueError(
            f"{fn}: counts must be [V={v.shape[0]}] and ids [sum(counts)], got {counts.shape} and {np.shape(ids)}"
        )
    owners = jnp.asarray(np.repeat(np.arange(v.shape[0]), counts))
    summed = v + jax.ops.segment_sum(z[jnp.asarray(ids)], owners, num_segments=v.shape[0])
    return summed / (1.0 + jnp.asarray(counts, v.dtype))[:, None]


def unseen_word_vector(vectors_ngrams, ids) -> jax.Array:
    """An unseen word's vector: the mean of its n-gram rows z[ids] [D]; the zero vector when it has no n-gram."""
    z = vectors_ngrams
    if np.ndim(z) != 2 or not jnp.issubdtype(z.dtype, jnp.floating):
        _check_table(z, "vectors_ngrams", "unseen_word_vector")  # raises, naming the shape
    ids = (np.asarray if isinstance(z, np.ndarray) else jnp.asarray)(ids).reshape(-1)
    if ids.shape[0] == 0:  # as gensim and fastText: nothing to average (gensim logs a warning)
        return jnp.zeros(z.shape[1], z.dtype)
    return jnp.mean(jnp.asarray(z[ids]), axis=0)  # a host table stays on the host: only its rows are gathered
