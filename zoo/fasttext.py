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
   ``wv.vectors``), ``unseen_word_vector``. At gensim's 2M buckets the table is 800 MB, so the table's own paths
   copy none of it: ``uniform_rows`` (init_params's draw, in blocks) and ``table_word_vectors`` (the x_w of a
   trained table, a block of words at a time).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.random import threefry2x32_p

from zoo._checks import as_int

__all__ = [
    "FNV_OFFSET",
    "FNV_PRIME",
    "char_ngrams",
    "ft_hash",
    "ngram_buckets",
    "INIT_CHUNK_FLOATS",
    "uniform_rows",
    "init_params",
    "word_vectors",
    "COMPOSE_BLOCK_FLOATS",
    "table_word_vectors",
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


# Rows of the 'in' table drawn per iteration of init_params's loop: 2^20 floats (4 MiB) of counters, bits and
# values at a time, where one jax.random.uniform over the whole table keeps three table-sized uint32 temporaries
# (2.3 GB beside the 800 MB table at gensim's 2M buckets x 100). 2^20 against 2^22: the 2M x 100 table drawn in
# 0.85 s instead of 1.79 s, and word2vec's 78k-word table with 31 MB of temporaries instead of 96.
INIT_CHUNK_FLOATS = 1 << 20


def _threefry_words(key) -> tuple[jax.Array, jax.Array] | None:
    """The two uint32 words of a threefry2x32 key (typed or raw uint32[2]), or None for any other generator."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if str(jax.random.key_impl(key)) != "threefry2x32" or key.shape != ():
            return None
        key = jax.random.key_data(key)
    elif key.dtype != jnp.uint32 or key.shape != (2,) or jax.config.jax_default_prng_impl != "threefry2x32":
        return None
    return key[0], key[1]


def _uniform_bits(k1, k2, flat: jax.Array, size: int) -> jax.Array:
    """jax.random.bits(key, (size,))[flat] for flat indices < size < 2^32 - 1, each computed on its own: JAX's
    threefry counters, the partitionable layout (counter (0, i), words xored) or the original one (counters i
    and i + ceil(size / 2) hashed as one pair, the first half's bits the pair's first word; an odd size pads
    the second half with counter 0)."""
    if jax.config.jax_threefry_partitionable:
        y1, y2 = threefry2x32_p.bind(k1, k2, jnp.zeros_like(flat), flat)
        return y1 ^ y2
    half = jnp.uint32((size + 1) // 2)
    first = flat < half
    lo = jnp.where(first, flat, flat - half)
    hi = jnp.where(lo + half < size, lo + half, jnp.uint32(0))
    y1, y2 = threefry2x32_p.bind(k1, k2, lo, hi)
    return jnp.where(first, y1, y2)


def _bits_to_uniform(bits: jax.Array, low: float, high: float) -> jax.Array:
    """jax.random.uniform's float32 of 32 random bits: the top 23 as the mantissa of [1, 2), shifted and scaled."""
    one = jnp.asarray(np.array(1.0, np.float32).view(np.uint32))
    floats = jax.lax.bitcast_convert_type((bits >> jnp.uint32(9)) | one, jnp.float32) - jnp.float32(1.0)
    low, high = jnp.float32(low), jnp.float32(high)
    return jax.lax.max(low, floats * (high - low) + low)


def uniform_rows(key, rows: int, dim: int, low: float, high: float, chunk_floats: int = INIT_CHUNK_FLOATS):
    """jax.random.uniform(key, (rows, dim), float32, low, high), bit for bit, drawn into the [rows, dim] output
    a block of rows at a time, so that no table-sized temporary is kept (the last block overlaps the one before
    it and rewrites its rows with the same values). Keys other than threefry's, or 2^32 - 1 floats or more:
    jax.random.uniform itself."""
    words, size = _threefry_words(jnp.asarray(key) if not isinstance(key, jax.Array) else key), rows * dim
    block = max(1, min(rows, chunk_floats // dim))
    if words is None or size >= 2**32 - 1 or block == rows:
        return jax.random.uniform(key, (rows, dim), jnp.float32, low, high)
    flat_block = jnp.arange(block * dim, dtype=jnp.uint32)

    def draw(i, table):
        start = jnp.minimum(i * block, rows - block)
        bits = _uniform_bits(*words, start.astype(jnp.uint32) * jnp.uint32(dim) + flat_block, size)
        return jax.lax.dynamic_update_slice(table, _bits_to_uniform(bits, low, high).reshape(block, dim), (start, 0))

    return jax.lax.fori_loop(0, -(-rows // block), draw, jnp.zeros((rows, dim), jnp.float32))


def init_params(key: jax.Array, vocab_size: int, bucket: int, dim: int) -> dict[str, jax.Array]:
    """fastText's and gensim's initialisation: 'in' [V + bucket, D] (the words' rows, then the n-gram buckets'),
    ~ U(-1/D, 1/D) (jax.random.uniform's values, drawn in blocks: `uniform_rows`); 'out' [V, D] = 0."""
    vocab_size = as_int(vocab_size, "vocab_size", "init_params", minimum=1)
    bucket = as_int(bucket, "bucket", "init_params", minimum=1)
    dim = as_int(dim, "dim", "init_params", minimum=1)
    w_in = uniform_rows(key, vocab_size + bucket, dim, -1.0 / dim, 1.0 / dim)
    return {"in": w_in, "out": jnp.zeros((vocab_size, dim), jnp.float32)}


def _check_table(table, name: str, fn: str) -> jax.Array:
    table = jnp.asarray(table)
    if table.ndim != 2 or not jnp.issubdtype(table.dtype, jnp.floating):
        raise ValueError(f"{fn}: {name} must be a float array [rows, D], got dtype {table.dtype} shape {table.shape}")
    return table


def _mean_rows(v, z_rows, owners, counts) -> jax.Array:
    """(v_w + the sum of the z rows owned by w) / (1 + |G(w)|) for each row w of v; owners out of range dropped."""
    summed = v + jax.ops.segment_sum(z_rows, owners, num_segments=v.shape[0])
    return summed / (1.0 + counts)[:, None]


def word_vectors(vectors_vocab, vectors_ngrams, ids, counts) -> jax.Array:
    """x_w = (v_w + sum_{g in G(w)} z_g) / (1 + |G(w)|) for every word [V, D]: gensim's ``wv.vectors``.

    vectors_vocab [V, D] the words' rows v, vectors_ngrams [bucket, D] the n-gram rows z, (ids, counts) the
    words' bucket ids as ``ngram_buckets`` gives them. From a trained 'in' table: ``table_word_vectors``.
    """
    fn = "word_vectors"
    v = _check_table(vectors_vocab, "vectors_vocab", fn)
    z = _check_table(vectors_ngrams, "vectors_ngrams", fn)
    counts = _check_counts(counts, ids, v.shape[0], fn)
    owners = jnp.asarray(np.repeat(np.arange(v.shape[0]), counts))
    return _mean_rows(v, z[jnp.asarray(ids)], owners, jnp.asarray(counts, v.dtype))


def _check_counts(counts, ids, vocab_size: int, fn: str) -> np.ndarray:
    counts = np.asarray(counts)
    if counts.shape != (vocab_size,) or np.asarray(ids).shape != (int(counts.sum()),):
        raise ValueError(
            f"{fn}: counts must be [V={vocab_size}] and ids [sum(counts)], got {counts.shape} and {np.shape(ids)}"
        )
    return counts


def _block_vectors(table, words, rows, owners, counts) -> jax.Array:
    """x_w of a block of words [B, D]: their own rows table[words] and n-gram rows table[rows] (padding: owner B).
    Op by op as word_vectors runs, not jitted: under jit XLA turns the division by (1 + counts) into a product
    with its reciprocal, a rounding apart; the blocks' fixed shapes compile each op once."""
    return _mean_rows(table[words], table[rows], owners, counts)


# Rows of the 'in' table table_word_vectors gathers at a time (n-gram rows, and words): 2^22 floats, 16 MiB.
COMPOSE_BLOCK_FLOATS = 1 << 22


def table_word_vectors(table, vocab_size: int, ids, counts, block_floats: int = COMPOSE_BLOCK_FLOATS) -> np.ndarray:
    """``word_vectors`` of a trained 'in' table [V + bucket, D] (words' rows, then the buckets'), bit for bit,
    as a host array [V, D], without copying the table: each block of consecutive words gathers only its rows
    (at most block_floats floats of them; one compiled program, every block padded to its shapes)."""
    fn = "table_word_vectors"
    table = _check_table(table, "table", fn)
    ids, counts = np.asarray(ids), _check_counts(counts, ids, vocab_size, fn)
    ends = np.cumsum(counts)
    size = max(1, min(max(int(ends[-1]), vocab_size), block_floats // table.shape[1]), int(counts.max()))
    out = np.empty((vocab_size, table.shape[1]), np.dtype(table.dtype))
    start = 0
    while start < vocab_size:  # words [start, end): at most `size` words and `size` n-gram rows
        first = int(ends[start - 1]) if start else 0
        end = min(start + size, int(np.searchsorted(ends, first + size, side="right")))
        n, rows = end - start, ids[first : ends[end - 1]] + vocab_size
        words = np.zeros(size, np.int32)
        words[:n] = np.arange(start, end)
        padded = np.zeros(size, np.int32)
        padded[: len(rows)] = rows
        owners = np.full(size, size, np.int32)  # padding's rows go to no word
        owners[: len(rows)] = np.repeat(np.arange(n), counts[start:end])
        block_counts = np.zeros(size, np.dtype(table.dtype))
        block_counts[:n] = counts[start:end]
        out[start:end] = np.asarray(_block_vectors(table, words, padded, owners, jnp.asarray(block_counts)))[:n]
        start = end
    return out


def unseen_word_vector(vectors_ngrams, ids) -> jax.Array:
    """An unseen word's vector: the mean of its n-gram rows z[ids] [D]; the zero vector when it has no n-gram."""
    z = vectors_ngrams
    if np.ndim(z) != 2 or not jnp.issubdtype(z.dtype, jnp.floating):
        _check_table(z, "vectors_ngrams", "unseen_word_vector")  # raises, naming the shape
    ids = (np.asarray if isinstance(z, np.ndarray) else jnp.asarray)(ids).reshape(-1)
    if ids.shape[0] == 0:  # as gensim and fastText: nothing to average (gensim logs a warning)
        return jnp.zeros(z.shape[1], z.dtype)
    return jnp.mean(jnp.asarray(z[ids]), axis=0)  # a host table stays on the host: only its rows are gathered
