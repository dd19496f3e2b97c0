"""word2vec's native CPU kernel (word2vec_kernel.cc): word2vec.c's per-example SGD on all cores, in place, as one
XLA FFI call inside the jitted step.

XLA's row steps (zoo.word2vec_rows) update the tables a minibatch at a time, and spread over cores only as several
JAX devices, each with its own copy of the tables, summed at fixed points (train.data.word2vec_step). The kernel
instead runs word2vec.c's and gensim's design: every example updates the rows it touches at once, and `threads`
threads share one copy of the tables without locks (Hogwild). The tables go into the FFI call aliased to its
results, so XLA updates them where they lie. Results are then those of word2vec.c: with one thread a deterministic
function of the examples (tests/test_word2vec_native.py checks it against a numpy loop of the update); with
several, the threads' interleaving changes the last bits from run to run, as gensim's workers do.

The kernel is compiled on first use with the C++ compiler on the PATH (`c++`, or $CXX) for this CPU
(-march=native) against the XLA FFI headers jaxlib ships, into a cache directory ($ZOO_NATIVE_CACHE, else
$XDG_CACHE_HOME/jax-zoo or ~/.cache/jax-zoo), keyed by the source, the flags, the jaxlib version and the CPU's
instruction sets; a new build removes the day-old builds of other keys there. Where it cannot be built (no compiler, a
read-only cache), `available()` says why and train.word2vec keeps XLA's row steps.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import time

import jax
import jax.numpy as jnp
import jaxlib

__all__ = ["KINDS", "available", "build", "noise_words", "skipgram_steps", "cbow_steps", "default_threads"]

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "word2vec_kernel.cc")
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-std=c++17", "-shared", "-fPIC", "-fopenmp-simd", "-pthread")
TARGETS = {
    "sgns": ("zoo_word2vec_skipgram", "ZooWord2vecSkipGram"),
    "cbow": ("zoo_word2vec_cbow", "ZooWord2vecCbow"),
    "noise": ("zoo_word2vec_noise", "ZooWord2vecNoise"),
}
KINDS = ("sgns", "cbow")  # the step kinds (train.data.word2vec_examples.step_kind) the kernel runs


def cache_dir() -> str:
    if os.environ.get("ZOO_NATIVE_CACHE"):
        return os.environ["ZOO_NATIVE_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jax-zoo")


def build() -> str:
    """The path of the compiled kernel, compiling it first if the cache lacks it; OSError or CalledProcessError
    (with the compiler's message) where it cannot."""
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if not compiler:
        raise OSError("no C++ compiler on the PATH (c++, g++ or $CXX)")
    with open(SOURCE, "rb") as f:
        source = f.read()
    parts = [source, " ".join(FLAGS).encode(), jaxlib.__version__.encode(), platform.machine().encode(), _cpu_flags()]
    key = hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]
    path = os.path.join(cache_dir(), f"word2vec_kernel-{key}.so")
    if os.path.exists(path):
        return path
    os.makedirs(cache_dir(), exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=cache_dir())
    os.close(fd)
    try:  # written aside, then renamed: concurrent builds (test workers) never load a half-written file
        cmd = [compiler, *FLAGS, "-I", jax.ffi.include_dir(), SOURCE, "-o", tmp]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        os.replace(tmp, path)
        # builds of older sources a day old: the cache does not grow with every version (a day's grace, so that
        # machines of other CPUs sharing a home directory do not delete each other's builds run after run)
        for stale in glob.glob(os.path.join(cache_dir(), "word2vec_kernel-*.so")):
            with contextlib.suppress(OSError):
                if stale != path and time.time() - os.path.getmtime(stale) > 86400:
                    os.remove(stale)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _cpu_flags() -> bytes:
    """This CPU's instruction sets (Linux's /proc/cpuinfo flags), part of the cache key: -march=native code built on
    one machine of a shared home directory must not load on another that lacks its instructions."""
    try:
        with open("/proc/cpuinfo", "rb") as f:
            return next((line for line in f if line.startswith((b"flags", b"Features"))), b"")
    except OSError:
        return platform.processor().encode()


@functools.cache
def _load() -> str:
    """'' once the kernel is built and registered with XLA, else why not (one line)."""
    try:
        lib = ctypes.cdll.LoadLibrary(build())
    except subprocess.CalledProcessError as e:
        return f"the C++ compiler failed: {(e.stderr or '').strip().splitlines()[-1:] or e}"
    except OSError as e:
        return str(e)
    for name, symbol in TARGETS.values():
        jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
    return ""


def available() -> tuple[bool, str]:
    """(True, '') when the kernel is built and registered (building it on first call), else (False, why)."""
    why = _load()
    return not why, why


def default_threads() -> int:
    """One thread per core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _target(kind: str) -> str:
    why = _load()
    if why:
        raise RuntimeError(f"word2vec's native kernel is unavailable: {why}")
    return TARGETS[kind][0]


def _seed(key) -> jax.Array:
    return jax.random.bits(key, (2,), jnp.uint32)


def noise_words(threshold, alias, key, rows: int, negatives: int) -> jax.Array:
    """[rows, negatives] noise words as the kernel draws them for a step's key: zoo.word2vec.sample_alias's rule on
    splitmix64 bits of (key, row, column); the noise of example i is row i // share_negatives."""
    call = jax.ffi.ffi_call(
        _target("noise"), jax.ShapeDtypeStruct((rows, negatives), jnp.int32), vmap_method="sequential"
    )
    return call(jnp.asarray(threshold, jnp.uint32), jnp.asarray(alias, jnp.int32), _seed(key))


def _call(kind: str, tables, arrays, lrs, noise, threads: int, group: int):
    threshold, alias, key, negatives = noise
    w_in, w_out = tables["in"], tables["out"]
    shapes = (jax.ShapeDtypeStruct(w_in.shape, w_in.dtype), jax.ShapeDtypeStruct(w_out.shape, w_out.dtype))
    call = jax.ffi.ffi_call(
        _target(kind),
        (*shapes, jax.ShapeDtypeStruct((), jnp.float32)),
        input_output_aliases={0: 0, 1: 1},
        vmap_method="sequential",  # a seed or learning-rate sweep's replicas: one kernel call each
    )
    noise_args = (jnp.asarray(threshold, jnp.uint32), jnp.asarray(alias, jnp.int32), _seed(key))
    new_in, new_out, loss = call(
        w_in,
        w_out,
        *arrays,
        jnp.asarray(lrs, jnp.float32),
        *noise_args,
        threads=int(threads),
        negatives=int(negatives),
        group=int(group),
    )
    return {"in": new_in, "out": new_out}, loss


def skipgram_steps(tables, inputs, outputs, weights, lrs, noise, threads: int, group: int = 1):
    """(tables, summed loss) after word2vec.c's SGD on every pair in turn, minibatch j (pairs j * B ... of
    B = N / len(lrs)) at rate lrs[j], in place on `threads` threads (CPU only). noise = (threshold, alias, key,
    negatives): the alias table (zoo.word2vec.alias_threshold, alias_table), the step's key and the noise words
    per pair, drawn in the kernel as noise_words draws them; group pairs share a draw (share_negatives)."""
    i32 = lambda x: jnp.asarray(x, jnp.int32)  # noqa: E731
    arrays = (i32(inputs), i32(outputs), jnp.asarray(weights, jnp.float32))
    return _call("sgns", tables, arrays, lrs, noise, threads, group)


def cbow_steps(tables, contexts, owners, mask, outputs, weights, lrs, noise, threads: int, group: int = 1):
    """(tables, summed loss) after word2vec.c's CBOW SGD on every centre in turn (the packed slots of
    zoo.word2vec_rows.cbow_rows_step, minibatch j at rate lrs[j]), in place on `threads` threads (CPU only);
    noise and group as skipgram_steps'."""
    i32 = lambda x: jnp.asarray(x, jnp.int32)  # noqa: E731
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    arrays = (i32(contexts), i32(owners), f32(mask), i32(outputs), f32(weights))
    return _call("cbow", tables, arrays, lrs, noise, threads, group)
