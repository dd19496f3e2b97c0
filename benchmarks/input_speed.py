"""Input pipelines alone, without the model: batches/s of each against the rate its model's train step would consume
on an H100 at 40% of its bf16 dense peak.

    python -m benchmarks.input_speed [--quick] [--json=PATH] [--threads=1,4] [--peak_tflops=989.4] [--mfu=0.4]
        [--images=5000] [--zipf_tokens=20000000] [--min_time=2] [--compile] [--workdir=DIR]

Each pipeline is the code train/ runs, on data this script writes into --workdir (a temporary directory unless
given): npz:FILE (--images random 32x32x3 uint8 images), images:DIR (the same images as PNG files in 10 class
folders; its decoded cache is built first and the batches come from the cache), the digits TFDS dataset the default
configs train on (prepared offline from scikit-learn into WORKDIR/tfds), random_flip, image_size resizes (digits to
32 and to 28), and word2vec's examples (train.data.word2vec_examples.TrainingExamples: skip-gram pairs and CBOW centres)
on train/data/corpus.py's Zipf corpus of --zipf_tokens tokens (20M: about 101k words at min_count 5). Image batches come
from train.data.images.batches, which batches a split held in memory by index (InMemoryBatches, one grain record a step)
and streams a larger one (over IN_MEMORY_BYTES, 2 GiB) example by example through grain; rows marked "streamed" force
the second path on the same data. Each pipeline is read with each --threads count of grain threads (its num_threads; in
training, train.core.parallel.input_threads picks one on the CPU, 2 streamed, and up to 8 beside an accelerator). Per
row: the seconds to the first batch (reading the split into memory, probing word2vec's steps), then batches/s over at
least --min_time seconds after it (the consumer takes each batch at once, so this is the pipeline's own rate, its
prefetch included).

Needed: the examples/s (images; word2vec: corpus words) that the model's train step would consume at --mfu of
--peak_tflops (H100 SXM bf16 dense: 989.4), = mfu * peak / (FLOPs per example), the FLOPs from XLA's cost analysis of
the model's jitted train step (module.make_task, loop.abstract_state, loop.compile_step, lowered on one CPU device,
never run) at the row's batch, on the row's data: the lowered program's count, within 0.5% of the compiled one's on
the image models' steps and 5-12% under it on word2vec's, and 10x faster to get (the DDPMs' compiles take minutes on
a busy CPU); --compile counts the compiled program, as benchmarks.common.flops_of does. XLA counts a loop body once,
so word2vec's step (a lax.scan over its minibatches) counts one minibatch's sparse update
(train.data.word2vec_examples.sparse_update) once more for each of the others. A need of thousands of steps a second
(the small models) asks for steps shorter than an accelerator's per-step overhead, and word2vec's step is bound by
gathers and scatters, not FLOPs: there the need is a bound that no real step reaches. Batches are each model's realistic
config's: the DDPM's cifar10 variant (128 images of 32x32x3) and its mnist variant (128 of 32x32x1), the autoencoder,
VAE and GAN's default (digits) and mnist variants (128, 128, 64), word2vec's default (65,536 words). --quick:
seconds-long, for the tests: 512 16x16 images, digits resized to 16 and 12, a 200k-token corpus, word2vec at batch 8192,
every model's 'smoke' network, 0.3 s a row.
--json PATH writes {"cpus", "load", "peak_tflops", "mfu", "quick", "flops_of", "rows"}, a row per table row: key
(the feed, stable across runs), pipeline, model, batch, threads, batches_per_s, examples_per_s, needed_examples_per_s,
flops_per_example, ratio, first_batch_s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import shutil
import tempfile
import time

import numpy as np
from absl import app, flags

flags.DEFINE_bool("quick", False, "A seconds-long run on tiny data and models, for the tests.")
flags.DEFINE_string("json", "", "Also write the rows here, as JSON.")
flags.DEFINE_list("threads", ["1", "4"], "grain read threads: every pipeline is timed with each.")
flags.DEFINE_float("peak_tflops", 989.4, "The accelerator's peak TFLOP/s (H100 SXM bf16 dense: 989.4).")
flags.DEFINE_float("mfu", 0.4, "The share of the peak the train step is taken to reach.")
flags.DEFINE_integer("images", 5000, "Images of the npz:FILE and images:DIR datasets (--quick: 512).")
flags.DEFINE_integer("zipf_tokens", 20_000_000, "Tokens of word2vec's Zipf corpus (--quick: 200,000).")
flags.DEFINE_float("min_time", 2.0, "Seconds each pipeline is timed for, after its first batch (--quick: 0.3).")
flags.DEFINE_bool("compile", False, "FLOPs of the compiled steps, not the lowered ones (within 0.5%, 10x slower).")
flags.DEFINE_string("workdir", "", "Where the datasets are written ('': a temporary directory, removed after).")

QUICK_IMAGES, QUICK_TOKENS, QUICK_MIN_TIME = 512, 200_000, 0.3
NOTE = "word2vec: examples are corpus words; its step is gather/scatter-bound, so its FLOP-based need is a bound"


@dataclasses.dataclass(frozen=True)
class Feed:
    """One pipeline feeding one model: key (stable, for the tests), the pipeline as printed, the dataset spec it
    loads, the model module, its variant ('' the default) and the label printed for it."""

    key: str
    pipeline: str
    dataset: str
    module: str
    variant: str
    model: str
    image_size: int = 0
    flip: bool = False
    streamed: bool = False


def image_feeds(quick: bool, n: int) -> list[Feed]:
    """The image pipelines and the models they feed: the DDPM's cifar10 variant on 32x32x3 files, the default
    (digits) and mnist-shaped (digits resized to 28) autoencoder, VAE and GAN, the DDPM's mnist variant on digits
    resized to 32 and flipped; --quick: 16x16 files, digits resized to 16 and 12."""
    size, small, mnist = (16, 16, 12) if quick else (32, 32, 28)
    npz, folder = f"npz:FILE ({n:,} {size}x{size}x3)", f"images:DIR ({n:,} PNG, from its cache)"
    digits, cifar = "digits (TFDS, 8x8x1)", ("ddpm", "cifar10", "ddpm (cifar10)")
    feeds = [
        Feed("npz", npz, "npz", *cifar),
        Feed("npz_flip", f"{npz} + random_flip", "npz", *cifar, flip=True),
        Feed("npz_flip_streamed", f"{npz} + random_flip, streamed", "npz", *cifar, flip=True, streamed=True),
        Feed("images_flip", f"{folder} + random_flip", "images", *cifar, flip=True),
        *(Feed(f"digits_{m}", digits, "digits", m, "", m) for m in ("autoencoder", "vae", "gan")),
        Feed("digits_streamed", f"{digits}, streamed", "digits", "autoencoder", "", "autoencoder", streamed=True),
        Feed(
            "digits_resize_flip",
            f"digits (TFDS) + image_size {small} + random_flip",
            "digits",
            "ddpm",
            "mnist",
            "ddpm (mnist)",
            image_size=small,
            flip=True,
        ),
    ]
    for m in ("autoencoder", "vae", "gan"):
        label = f"digits (TFDS) + image_size {mnist}"
        feeds.append(Feed(f"digits_resize_{m}", label, "digits", m, "mnist", f"{m} (mnist)", image_size=mnist))
    return feeds


def write_images(workdir: str, n: int, size: int) -> tuple[str, str]:
    """(npz:FILE, images:DIR) of the same n random size x size x 3 images, labels 0..9 (folders 0..9)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    y = np.arange(n) % 10
    path = os.path.join(workdir, "images.npz")
    np.savez(path, x=x, y=y)
    folder = os.path.join(workdir, "images")
    for label in range(10):
        os.makedirs(os.path.join(folder, str(label)), exist_ok=True)
    for i in range(n):
        Image.fromarray(x[i]).save(os.path.join(folder, str(y[i]), f"{i:06d}.png"))
    return f"npz:{path}", f"images:{folder}"


@contextlib.contextmanager
def streamed(on: bool):
    """batches() as for a split larger than IN_MEMORY_BYTES (example by example through grain) while on."""
    from train.data import images as data

    kept = data.IN_MEMORY_BYTES
    data.IN_MEMORY_BYTES = -1 if on else kept
    try:
        yield
    finally:
        data.IN_MEMORY_BYTES = kept


def time_batches(make_iter, min_time: float, min_batches: int = 3) -> tuple[float, float]:
    """(batches/s after the first batch, seconds to the first batch) of the iterator make_iter() returns."""
    t0 = time.perf_counter()
    it = make_iter()
    next(it)
    first = time.perf_counter() - t0
    n, t1 = 0, time.perf_counter()
    while n < min_batches or time.perf_counter() - t1 < min_time:
        next(it)
        n += 1
    return n / (time.perf_counter() - t1), first


def image_iterator(source, batch: int, threads: int, flip: bool):
    """data.batches' iterator, read by `threads` grain threads."""
    from train.data import images as data

    return data.batches(source, batch, 0, num_threads=threads, flip=flip)


def model_config(module, variant: str, quick: bool):
    """module's config `variant` (the default for ''); with quick, its network is the 'smoke' variant's."""
    c = module.get_config(variant) if variant else module.get_config()
    if quick:
        c.model = module.get_config("smoke").model
    return c


def step_flops(jitted, *args, compiled: bool = False) -> float:
    """XLA's cost analysis FLOPs of one call: of the compiled program, or (compiled False) of the lowered one."""
    from benchmarks.common import compiled_flops

    lowered = jitted.lower(*args)
    return compiled_flops(lowered.compile() if compiled else lowered)


def cpu_mesh():
    """One CPU device (the default device where JAX_PLATFORMS leaves no CPU backend): the FLOPs, and so the needs,
    are the same on every host."""
    import jax
    from jax.sharding import Mesh

    try:
        devices = jax.devices("cpu")
    except RuntimeError:
        devices = jax.devices()
    return Mesh(np.asarray(devices[:1]), ("data",))


def image_step_flops(module, c, ds, batch: int, compiled: bool = False) -> float:
    """XLA's FLOPs of one train step of config c at `batch` images of ds (lowered on one CPU device, not run)."""
    import jax
    import jax.numpy as jnp

    from train.core import loop, parallel

    mesh = cpu_mesh()
    task = module.make_task(c, ds)
    state = loop.abstract_state(task, c, mesh)
    s = parallel.batch_sharding(mesh)
    shapes = {
        "image": jax.ShapeDtypeStruct((batch, *ds.image_shape), jnp.uint8, sharding=s),
        "label": jax.ShapeDtypeStruct((batch,), jnp.int32, sharding=s),
    }
    return step_flops(loop.compile_step(task, c, mesh), state, shapes, compiled=compiled)


def quick_or(F, name: str, quick_value):
    """Flag `name`'s value, or with --quick and the flag not given, quick_value."""
    return quick_value if F.quick and not F[name].present else F[name].value


def needed(flops_per_example: float, peak_tflops: float, mfu: float) -> float:
    """Examples/s a step of flops_per_example FLOPs an example consumes at mfu of peak_tflops."""
    return mfu * peak_tflops * 1e12 / flops_per_example


def image_rows(F, workdir: str, threads: list[int], min_time: float) -> list[dict]:
    """A row per image feed and thread count: the pipeline's rates and its model's need."""
    import importlib

    from train.data import images as data

    n = quick_or(F, "images", QUICK_IMAGES)
    npz, folder = write_images(workdir, n, 16 if F.quick else 32)
    specs = {"npz": npz, "images": folder, "digits": "digits"}
    tfds_dir = os.path.join(workdir, "tfds")
    datasets, flops, rows = {}, {}, []
    for feed in image_feeds(F.quick, n):
        key = (feed.dataset, feed.image_size)
        if key not in datasets:
            t0 = time.perf_counter()
            datasets[key] = data.load_images(specs[feed.dataset], tfds_dir, image_size=feed.image_size)
            print(f"loaded {feed.dataset} (image_size {feed.image_size}) in {time.perf_counter() - t0:.1f} s")
        ds = datasets[key]
        module = importlib.import_module(f"train.{feed.module}")
        c = model_config(module, feed.variant, F.quick)
        model_key = (feed.module, feed.variant, ds.image_shape, c.batch_size)
        if model_key not in flops:
            t0 = time.perf_counter()
            flops[model_key] = image_step_flops(module, c, ds, c.batch_size, compiled=F.compile)
            print(f"{feed.model}: {flops[model_key] / 1e9:.3f} GFLOP a step ({time.perf_counter() - t0:.1f} s)")
        for t in threads:
            with streamed(feed.streamed):
                make = functools.partial(image_iterator, ds.train, c.batch_size, t, feed.flip)
                rate, first = time_batches(make, min_time)
            rows.append(row(F, feed.key, feed.pipeline, feed.model, c.batch_size, t, rate, first, flops[model_key]))
    return rows


def row(F, key, pipeline, model, batch, threads, rate, first, step_flops) -> dict:
    need = needed(step_flops / batch, F.peak_tflops, F.mfu)
    return {
        "key": key,
        "pipeline": pipeline,
        "model": model,
        "batch": batch,
        "threads": threads,
        "batches_per_s": rate,
        "examples_per_s": rate * batch,
        "needed_examples_per_s": need,
        "flops_per_example": step_flops / batch,
        "ratio": rate * batch / need,
        "first_batch_s": first,
    }


def word2vec_config(model: str, quick: bool):
    from train import word2vec as train_word2vec

    c = train_word2vec.get_config()
    c.model = model
    if quick:
        c.batch_size, c.minibatch_size, c.embed_dim = 8192, 256, 16
    return c


def word2vec_step_flops(c, corpus, examples, compiled: bool = False) -> float:
    """XLA's FLOPs of one word2vec step, its scan's body (one minibatch's sparse update) counted once per minibatch."""
    import jax
    import jax.numpy as jnp

    from train import word2vec as train_word2vec
    from train.core import loop, parallel
    from train.data import word2vec_examples as w2v_examples

    mesh = cpu_mesh()
    c.num_steps = w2v_examples.resolve_num_steps(c, corpus)
    task = train_word2vec.make_task(c, corpus, (None, None), examples)
    state = loop.abstract_state(task, c, mesh)
    record = examples.record(c.seed, 0)
    s = parallel.batch_sharding(mesh)
    shapes = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=s) for k, v in record.items()}
    step = step_flops(loop.compile_step(task, c, mesh), state, shapes, compiled=compiled)
    m = examples.minibatches
    minibatch = {k: jnp.asarray(v[: len(v) // m]) for k, v in record.items() if k != "dropped"}
    minibatch["negatives"] = jnp.zeros((c.minibatch_size // c.share_negatives, c.negatives), jnp.int32)
    tables = {k: jnp.zeros(v.shape, v.dtype) for k, v in state.params.items()}
    update = jax.jit(functools.partial(w2v_examples.sparse_update, c.model))
    return step + (m - 1) * step_flops(update, tables, minibatch, jnp.float32(0.025), compiled=compiled)


def word2vec_iterator(examples, batch: int, threads: int):
    """TrainingExamples.batches, read by `threads` grain threads."""
    return examples.batches(batch, 0, num_threads=threads)


def word2vec_rows(F, threads: list[int], min_time: float) -> list[dict]:
    """A row per word2vec model and thread count: its examples' rates (in corpus words) and its step's need."""
    from train.data import text as text_data, word2vec_examples as w2v_examples

    tokens = quick_or(F, "zipf_tokens", QUICK_TOKENS)
    t0 = time.perf_counter()
    corpus = text_data.encode_corpus(text_data.open_corpus("zipf", num_tokens=tokens), 5)
    print(f"zipf corpus: {tokens:,} tokens, {len(corpus.vocab):,} words, read in {time.perf_counter() - t0:.1f} s")
    rows = []
    for model in ("sgns", "cbow"):
        c = word2vec_config(model, F.quick)
        t0 = time.perf_counter()
        examples = w2v_examples.TrainingExamples(corpus, c, 1)
        probe = time.perf_counter() - t0
        flops = word2vec_step_flops(c, corpus, examples, compiled=F.compile)
        print(f"word2vec {model}: {flops / 1e9:.3f} GFLOP a step, {examples.minibatches} minibatches")
        pipeline = f"word2vec {model} examples (zipf, {len(corpus.vocab):,} words)"
        for t in threads:
            rate, first = time_batches(functools.partial(word2vec_iterator, examples, c.batch_size, t), min_time)
            label = f"word2vec ({model}; words)"
            rows.append(row(F, f"word2vec_{model}", pipeline, label, c.batch_size, t, rate, first + probe, flops))
    return rows


def table(rows: list[dict], mfu: float) -> str:
    """The rows as a markdown table."""
    need = f"needed examples/s (H100 @ {100 * mfu:g}%)"
    head = ["pipeline", "model it feeds", "batch", "threads", "batches/s", "examples/s", need, "ratio (have/need)"]
    lines = ["| " + " | ".join([*head, "verdict", "first batch s"]) + " |", "|" + "---|" * (len(head) + 2)]
    for r in rows:
        cells = (
            r["pipeline"],
            r["model"],
            r["batch"],
            r["threads"],
            f"{r['batches_per_s']:,.1f}",
            f"{r['examples_per_s']:,.0f}",
            f"{r['needed_examples_per_s']:,.0f}",
            f"{r['ratio']:.3g}",
            "keeps up" if r["ratio"] >= 1 else "falls short",
            f"{r['first_batch_s']:.2f}",
        )
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def host_line() -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return f"host: {os.cpu_count()} CPUs, {usable} usable by this process; {load}"


def main(_):
    from train.core import parallel

    parallel.xla_cpu_convolutions()  # as the image modules compile (before JAX's backends start)
    F = flags.FLAGS
    threads = [int(t) for t in F.threads]
    if not threads or min(threads) < 1 or F.mfu <= 0 or F.peak_tflops <= 0:
        raise app.UsageError("--threads: positive integers; --mfu and --peak_tflops: positive")
    min_time = quick_or(F, "min_time", QUICK_MIN_TIME)
    print(host_line(), flush=True)
    t0 = time.perf_counter()
    workdir = F.workdir or tempfile.mkdtemp(prefix="input_speed-")
    os.makedirs(workdir, exist_ok=True)
    try:
        rows = image_rows(F, workdir, threads, min_time) + word2vec_rows(F, threads, min_time)
    finally:
        if not F.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    budget, counted = F.mfu * F.peak_tflops, "compiled" if F.compile else "lowered"
    print(f"\nneeded = {F.mfu:g} x {F.peak_tflops:g} TFLOP/s = {budget:g} TFLOP/s / FLOPs per example (XLA's cost")
    print(f"analysis of the {counted} train steps); {NOTE}")
    print(table(rows, F.mfu))
    print(f"\n{host_line()}; {time.perf_counter() - t0:.0f} s in all")
    if F.json:
        cpus = {"cpus": os.cpu_count(), "load": os.getloadavg()[0], "peak_tflops": F.peak_tflops, "mfu": F.mfu}
        with open(F.json, "w", encoding="utf-8") as f:
            json.dump({**cpus, "quick": F.quick, "flops_of": counted, "rows": rows}, f, indent=1)
        print(f"rows written to {F.json}")


if __name__ == "__main__":
    app.run(main)
