"""One accelerator run in one command: the figures a GPU session should bring back, into DIR/accelerator.json and
DIR/accelerator.md (a markdown table, also printed).

    python -m benchmarks.accelerator --out DIR [--quick] [--skip=train_ddpm,...] [--commit=SHA]
        [--deadline=520] [--budgets=loops=240,...] [--samplers=ddim,dpmpp_2m]

About 8 minutes on one H100. The sections, in this order (the cheap ones and the headline first):
  device        the device (kind, platform, count), the versions of jax, jaxlib, flax, optax, numpy, grain, Python,
                the date, the commit (--commit, else $ZOO_COMMIT, else `git rev-parse HEAD`) and nvidia-smi's
                name, driver, memory, clocks and power limit where there is one.
  roofline      n x n x n matmul TFLOP/s (n = 8192 on an accelerator, else 2048), the run's own rooflines: float32 at
                precision 'highest', float32 at JAX's default precision (on a GPU, XLA may run it as TF32) and
                bfloat16.
  ddpm_cifar10  train.ddpm's cifar10 variant (35.7M parameters, 32x32x3, batch 128) in bfloat16: compile seconds,
                examples/s, MFU, and DDIM and DPM-Solver++(2M) images/s over sample.steps (50), 256 images a call.
  loops         the train step of every image model at its mnist variant (and train.flow's with DiT-S/2), float32
                and bfloat16: compile seconds, examples/s, XLA GFLOPs per step, MFU.
  word2vec      skip-gram (sgns) on train/data/corpus.py's Zipf corpus (20M tokens over a 100k-word lexicon), one
                epoch, in a process of benchmarks.word2vec_worker's: training words/s (the steps after the compiling
                one) and end-to-end seconds (start-up, reading and counting, compiling, training, writing).
  input         `python -m benchmarks.input_speed --json PATH` (the input pipelines alone): its rows.
  train_ddpm    `python -m train.ddpm`, the default run, in a temporary workdir (its digits prepared there too, as
                on a fresh machine): wall seconds and its last figures.
  deterministic the cost of --config.deterministic: ddpm_cifar10 and word2vec again, in a child run of this script
                whose XLA_FLAGS set --xla_gpu_deterministic_ops=true, each figure as a ratio of the default's.

MFU = XLA's FLOPs per step (cost analysis of the compiled step) / step time / the same run's matmul TFLOP/s of the
step's dtype at JAX's default precision, the precision the steps run at. The image sections train on stand-in data
of the real shape (random uint8 images in an npz: file): cifar10 and mnist are not on an offline machine, and a
step's speed does not depend on the pixels. Each step is timed on one fixed batch, the compiled step called
directly (benchmarks.common.time_fn).

Every section (and every row of loops and every sampler) runs in a try/except: a failure is recorded in the JSON
with its traceback's tail, and the run goes on. The JSON and the table are rewritten after each of them, so a run
killed midway keeps what it measured; progress is printed as it goes, the subprocesses' output goes to DIR/logs/.
Each section has a budget (BUDGETS, seconds; --budgets=NAME=SECONDS,... changes them): a subprocess is killed at it,
an in-process section starts no new measurement past it. No section starts after --deadline seconds of the run (the
device command's limit is 600 s), and the one running then gets no more time than that. JAX's GPU memory
preallocation is turned off (XLA_PYTHON_CLIENT_PREALLOCATE=false, unless set) so that the subprocesses (word2vec,
input, train_ddpm) find device memory beside this process.

--quick: every module's 'smoke' config on one 8x8x3 stand-in (the DDPM's U-Net at one resolution, without attention:
QUICK_UNET), programs compiled with QUICK_XLA_FLAG (here and in the subprocesses), timings of QUICK_MIN_TIME seconds,
a 200k-token corpus over a 20k-word lexicon, input_speed --quick with one read thread, the smoke run of train.ddpm
(with QUICK_UNET), a deterministic child that times no samplers, budgets and deadline x3: about a minute on 2 CPU
cores, for the tests, most of it compiling (less where a persistent compilation cache, the tests', has the programs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import importlib
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np
from absl import app, flags, logging

from benchmarks.common import compiled_flops, matmul_gflops, time_fn

SECTIONS = ("device", "roofline", "ddpm_cifar10", "loops", "word2vec", "input", "train_ddpm", "deterministic")
BUDGETS = {  # seconds of each section on an accelerator (--quick: x QUICK_SCALE)
    "device": 60,
    "roofline": 60,
    "ddpm_cifar10": 150,
    "loops": 180,
    "word2vec": 150,
    "input": 150,
    "train_ddpm": 240,
    "deterministic": 240,
}
# The cost of config.deterministic: these sections again, in a child run whose XLA_FLAGS set the flag.
DETERMINISTIC_SECTIONS = ("device", "ddpm_cifar10", "word2vec")
QUICK_SCALE = 3  # a shared CPU is slow, and compiles take most of a quick run
LOOP_MODULES = ("ddpm", "edm", "flow", "flow-dit", "autoencoder", "vae", "vqvae", "gan")
# flow-dit: train.flow with DiT-S/2 (Peebles & Xie's S size on 2x2 patches, 256 tokens at 32x32) for its U-Net
DIT_S2 = {"backbone": "dit", "patch_size": 2, "hidden": 384, "depth": 12, "num_heads": 6}
DTYPES = ("float32", "bfloat16")
ROOFLINES = (("float32_highest", "float32", "highest"), ("float32", "float32", None), ("bfloat16", "bfloat16", None))
SAMPLERS = ("ddim", "dpmpp_2m")
STAND_IN_SHAPES = {"mnist": (28, 28, 1), "cifar10": (32, 32, 3)}  # before a variant's image_size
# --quick's one stand-in, every module's (--quick's loops run float32 only: its bfloat16 step is ddpm_cifar10's)
QUICK_STAND_IN = (8, 8, 3)
# --quick's timings: seconds each runs after its warm-up call (time_fn's minimum calls still made: 3, samplers 2)
QUICK_MIN_TIME = 0.05
QUICK_TOKENS, QUICK_WORDS = 200_000, 20_000
# --quick's XLA, in this process and its children: LLVM's code generation unoptimised (as benchmarks.model_sizes'
# FAST_COMPILE), which leaves the HLO and its FLOPs as they are and cuts a third of the compiling, most of a quick run
QUICK_XLA_FLAG = "--xla_backend_optimization_level=0"
# --quick's input_speed: its --quick, each pipeline read by one thread (not also four), timed for QUICK_MIN_TIME
QUICK_INPUT_FLAGS = ("--quick", "--threads=1", f"--min_time={QUICK_MIN_TIME}")
# --quick's U-Net modules (ddpm, edm, flow): the smoke U-Net at one resolution, without attention: half the compiling
QUICK_UNET = {"ch_mult": (1,), "attn_resolutions": ()}
QUICK_DIT = {"backbone": "dit", "patch_size": 2, "hidden": 16, "depth": 1, "num_heads": 2}
PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "grain", "tensorflow-datasets")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_string("out", None, "Directory of accelerator.json and accelerator.md (created).")
flags.DEFINE_bool("quick", False, "Tiny sizes everywhere (smoke configs): a CPU run of a minute or two, for the tests.")
flags.DEFINE_list("skip", [], f"Sections not to run: any of {','.join(SECTIONS)}.")
flags.DEFINE_string("commit", os.environ.get("ZOO_COMMIT", ""), "The commit measured ('': git rev-parse HEAD).")
flags.DEFINE_float("deadline", 520.0, "Seconds of the whole run after which no section starts (--quick: x3).")
flags.DEFINE_list("budgets", [], "NAME=SECONDS overrides of the per-section budgets (not scaled by --quick).")
flags.DEFINE_list(
    "samplers", list(SAMPLERS), f"ddpm_cifar10's samplers to time: any of {','.join(SAMPLERS)} (none: '--samplers=')."
)


@dataclasses.dataclass
class Run:
    """What every section sees: the options, the report written so far and the clock."""

    out: str
    quick: bool
    tmp: str
    report: dict
    started: float
    deadline: float  # time.perf_counter() after which no section starts
    section_end: float = math.inf

    def left(self) -> float:
        """Seconds left to the running section."""
        return min(self.section_end, self.deadline) - time.perf_counter()

    def log(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.started:7.1f} s] {message}", flush=True)

    def child_log(self, name: str) -> str:
        """OUT/logs/NAME.log, where a subprocess's output goes (kept: the temporary directory is not)."""
        os.makedirs(os.path.join(self.out, "logs"), exist_ok=True)
        return os.path.join(self.out, "logs", f"{name}.log")

    def save(self) -> None:
        """Write accelerator.json (whole or not at all) and accelerator.md as they stand."""
        path = os.path.join(self.out, "accelerator.json")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(self.report, f, indent=1, default=str)
        os.replace(path + ".tmp", path)
        with open(os.path.join(self.out, "accelerator.md"), "w", encoding="utf-8") as f:
            f.write(markdown(self.report))

    def roofline(self, dtype: str) -> float | None:
        """This run's matmul TFLOP/s of dtype at the default precision, None before (or without) the roofline."""
        return self.report["sections"].get("roofline", {}).get("tflops", {}).get(dtype)


def failure(e: BaseException) -> dict:
    return {"error": f"{type(e).__name__}: {e}"[:2000], "traceback": traceback.format_exc()[-4000:]}


def run_section(run: Run, name: str, fn, budget: float) -> None:
    """fn(run, entry) into report['sections'][name] (fn may fill entry as it goes; what it returns is added), timed,
    its exception recorded rather than raised; then the JSON is written."""
    entry = run.report["sections"][name] = {"status": "running", "budget_s": budget}
    now = time.perf_counter()
    if now >= run.deadline:
        entry.update(status="skipped", why=f"--deadline ({run.deadline - run.started:.0f} s) passed")
        run.log(f"{name}: skipped, past the deadline")
        run.save()
        return
    run.section_end = now + budget
    run.log(f"{name}: starting (budget {budget:.0f} s)")
    run.save()
    try:
        entry.update(fn(run, entry) or {})
        entry["status"] = "partial" if entry.pop("incomplete", False) else "ok"
    except Exception as e:  # one section's failure must not lose the others
        entry.pop("incomplete", None)
        entry.update(status="error", **failure(e))
    entry["section_s"] = time.perf_counter() - now
    run.section_end = math.inf
    run.log(
        f"{name}: {entry['status']} in {entry['section_s']:.1f} s" + (f": {entry['error']}" if "error" in entry else "")
    )
    run.save()


def measured(run: Run, entry: dict, what: str, fn) -> dict:
    """fn()'s figures; past the section's budget {'skipped': ...}, on an exception {'error': ...}: either marks
    the section incomplete (status 'partial')."""
    if run.left() <= 0:
        entry["incomplete"] = True
        run.log(f"  {what}: skipped, the section's budget is spent")
        return {"skipped": "the section's budget was spent"}
    try:
        return fn()
    except Exception as e:  # one row's failure must not lose the others
        entry["incomplete"] = True
        run.log(f"  {what}: {type(e).__name__}: {e}")
        return failure(e)


# ----------------------------------------------------------------------------- device and roofline


def commit_of(given: str) -> dict:
    """The commit measured: given (--commit / $ZOO_COMMIT), else git's HEAD and whether tracked files differ."""
    if given:
        return {"commit": given, "from": "--commit or $ZOO_COMMIT"}
    try:
        git = lambda *a: subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=20, check=True)
        head = git("rev-parse", "HEAD").stdout.strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").stdout.strip())
        return {"commit": head, "dirty": dirty, "from": "git"}
    except (OSError, subprocess.SubprocessError) as e:
        return {"commit": None, "from": f"no git ({type(e).__name__})"}


def nvidia_smi() -> dict | None:
    if shutil.which("nvidia-smi") is None:
        return None
    query = "name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit"
    cmd = ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as e:
        return {"error": f"{type(e).__name__}: {e}"}
    first = (out.strip().splitlines() or [""])[0]
    return dict(zip(query.split(","), (v.strip() for v in first.split(","))))


def package_versions() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_section(run: Run, entry: dict) -> dict:
    import jax

    d = jax.devices()[0]
    return {
        "device_kind": d.device_kind,
        "platform": d.platform,
        "device_count": jax.device_count(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **commit_of(flags.FLAGS.commit),
        "cpus": os.cpu_count(),
        "load": os.getloadavg(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "xla_python_client_preallocate": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE"),
        "nvidia_smi": nvidia_smi(),
    }


def roofline_section(run: Run, entry: dict) -> dict:
    import jax
    import jax.numpy as jnp

    n = 256 if run.quick else 8192 if jax.default_backend() != "cpu" else 2048
    rows = entry["rows"] = []
    for key, dtype, precision in ROOFLINES:
        with jax.default_matmul_precision(precision) if precision else contextlib.nullcontext():
            gflops = matmul_gflops(n, getattr(jnp, dtype), min_time=QUICK_MIN_TIME if run.quick else 2.0)
        rows.append({"key": key, "dtype": dtype, "precision": precision or "default", "n": n, "tflops": gflops / 1e3})
        run.log(f"  matmul {n}^3 {dtype} precision {precision or 'default'}: {gflops / 1e3:.2f} TFLOP/s")
    return {"tflops": {r["key"]: r["tflops"] for r in rows}}


# ----------------------------------------------------------------------------- image train steps


def stand_in(run: Run, shape: tuple[int, int, int]) -> str:
    """npz:PATH of random uint8 images of shape (H, W, C), labels 0..9: 512 train, 64 test (--quick: 64, 16)."""
    path = os.path.join(run.tmp, "images-{}x{}x{}.npz".format(*shape))
    if not os.path.exists(path):
        n, m = (64, 16) if run.quick else (512, 64)
        rng = np.random.default_rng(0)
        x, x_test = (rng.integers(0, 256, (k, *shape), dtype=np.uint8) for k in (n, m))
        np.savez(path, x=x, y=np.arange(n) % 10, x_test=x_test, y_test=np.arange(m) % 10)
    return f"npz:{path}"


def image_config(run: Run, name: str, variant: str, dtype: str):
    """(train module, its config: the variant, or 'smoke' with --quick, computing in dtype, on a stand-in dataset of
    the variant's image shape; QUICK_STAND_IN's with --quick)."""
    name, _, backbone = name.partition("-")  # 'flow-dit': train.flow with a DiT
    module = importlib.import_module(f"train.{name}")
    c = module.get_config("smoke" if run.quick else variant)
    h, w, channels = QUICK_STAND_IN if run.quick else STAND_IN_SHAPES[variant]
    if not run.quick and c.get("image_size", 0):
        h = w = c.image_size
    c.dataset, c.data_dir, c.dtype = stand_in(run, (h, w, channels)), "", dtype
    if backbone == "dit":
        c.model.update(QUICK_DIT if run.quick else DIT_S2)
    elif run.quick and name in ("ddpm", "edm", "flow"):
        c.model.update(QUICK_UNET)
    module.SCHEMA.check(c)
    return module, c


def step_speed(run: Run, module, c) -> tuple[dict, tuple]:
    """(figures, (dataset, state)) of module's train step on config c: compile seconds (lowering and compiling the
    step), seconds per step on one fixed batch (the compiled step, after a warm-up call), XLA's FLOPs per step,
    MFU against this run's roofline of c.dtype."""
    import jax

    from train.core import loop, parallel
    from train.data import images as data

    ds = data.images_of(c)
    task = module.make_task(c, ds)
    mesh = parallel.data_mesh()
    state = loop.init_state(task, c, mesh)
    batch = parallel.shard_batch(next(data.batches(ds.train, c.batch_size, 0)), mesh)
    t0 = time.perf_counter()
    step = loop.compile_step(task, c, mesh).lower(state, batch).compile()
    compile_s = time.perf_counter() - t0
    flops = compiled_flops(step)
    holder = [state]

    def one_step():
        holder[0], metrics, _ = step(holder[0], batch)
        return metrics

    secs = time_fn(one_step, min_time=QUICK_MIN_TIME if run.quick else 2.0)
    roof = run.roofline(c.dtype)
    figures = {
        "batch": c.batch_size,
        "image_shape": list(ds.image_shape),
        "params": int(sum(x.size for x in jax.tree.leaves(holder[0].params))),
        "compile_s": compile_s,
        "step_ms": 1e3 * secs,
        "examples_per_sec": c.batch_size / secs,
        "gflops_per_step": flops / 1e9,
        "tflops": flops / secs / 1e12,
        "roofline_tflops": roof,
        "mfu": flops / secs / 1e12 / roof if roof else None,
    }
    return figures, (ds, holder[0])


def describe_step(f: dict) -> str:
    mfu = f"{100 * f['mfu']:.1f}%" if f.get("mfu") else "-"
    return (
        f"{f['examples_per_sec']:,.1f} examples/s, {f['step_ms']:.2f} ms/step, {f['gflops_per_step']:.2f} GFLOP/step, "
        f"MFU {mfu}, compile {f['compile_s']:.1f} s"
    )


def loops_section(run: Run, entry: dict) -> None:
    import gc

    rows = entry["rows"] = []
    variant = "smoke" if run.quick else "mnist"
    for name in LOOP_MODULES:
        for dtype in ("float32",) if run.quick else DTYPES:  # --quick: bfloat16 is ddpm_cifar10's step

            def measure():
                figures, _ = step_speed(run, *image_config(run, name, "mnist", dtype))
                run.log(f"  {name}:{variant} {dtype}: {describe_step(figures)}")
                return figures

            module, _, backbone = name.partition("-")
            row = {"module": module, "variant": f"{variant}-{backbone}" if backbone else variant, "dtype": dtype}
            rows.append({**row, **measured(run, entry, name, measure)})
            gc.collect()
            run.save()


def sampler_speed(run: Run, c, ds, params, name: str, num_images: int) -> dict:
    """Images/s of train.ddpm's sampler `name` over c.sample.steps, num_images a call, and its compile seconds."""
    import jax

    from train import ddpm as train_ddpm

    f = train_ddpm.make_sampler(c, ds.image_shape, num_images, name)
    key = jax.random.key(0)
    t0 = time.perf_counter()
    compiled = f.lower(params, key).compile()
    compile_s = time.perf_counter() - t0
    secs = time_fn(compiled, params, key, min_time=QUICK_MIN_TIME if run.quick else 2.0, min_iters=2)
    out = {"steps": c.sample.steps, "images": num_images, "compile_s": compile_s, "seconds_per_call": secs}
    out["images_per_sec"] = num_images / secs
    run.log(f"  {name}-{c.sample.steps}: {out['images_per_sec']:,.1f} images/s, compile {compile_s:.1f} s")
    return out


def ddpm_cifar10_section(run: Run, entry: dict) -> None:
    module, c = image_config(run, "ddpm", "cifar10", "bfloat16")
    entry.update(variant="smoke" if run.quick else "cifar10", dtype="bfloat16")
    figures, (ds, state) = step_speed(run, module, c)
    entry.update(figures)
    run.log(f"  train step: {figures['params'] / 1e6:.2f}M parameters, {describe_step(figures)}")
    run.save()
    samplers = entry["samplers"] = {}
    for name in flags.FLAGS.samplers:
        n = 4 if run.quick else 256
        samplers[name] = measured(run, entry, name, lambda: sampler_speed(run, c, ds, state.params, name, n))
        run.save()


# ----------------------------------------------------------------------------- subprocesses


def child_env() -> dict:
    """This environment, with the repository on PYTHONPATH (benchmarks/ is not an installed package)."""
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths + ([ROOT] if ROOT not in paths else [])))


def log_tail(path: str, chars: int = 3000) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()[-chars:]


def run_child(run: Run, cmd: list[str], log: str, cwd: str, env: dict | None = None) -> float:
    """Run cmd (in child_env() updated by env), its output into the file log, within the section's time left; its
    wall seconds. TimeoutError or RuntimeError with the log's tail when it does not finish or fails."""
    timeout = max(run.left(), 0.1)
    run.log(f"  $ {' '.join(cmd[1:])}  (log {log}, {timeout:.0f} s at most)")
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as f:
        try:
            subprocess.run(
                cmd,
                cwd=cwd,
                env={**child_env(), **(env or {})},
                stdout=f,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=True,
            )
        except subprocess.TimeoutExpired:
            raise TimeoutError(
                f"killed after {timeout:.1f} s, the section's budget; its log ends:\n{log_tail(log)}"
            ) from None
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"exit code {e.returncode}; its log ends:\n{log_tail(log)}") from None
    return time.perf_counter() - t0


def word2vec_section(run: Run, entry: dict) -> dict:
    from train import word2vec as train_word2vec
    from train.data import corpus

    tokens, words = (QUICK_TOKENS, QUICK_WORDS) if run.quick else (corpus.ZIPF_TOKENS, corpus.ZIPF_WORDS)
    path = os.path.join(run.tmp, "zipf.txt")
    t0 = time.perf_counter()
    corpus.write_zipf_corpus(path, tokens, 0, num_words=words)
    entry.update(tokens=tokens, lexicon=words, corpus_s=time.perf_counter() - t0)
    c = train_word2vec.get_config()
    c.model, c.num_epochs = "sgns", 1
    if run.quick:
        c.embed_dim = 32
    out = os.path.join(run.tmp, "word2vec")
    os.makedirs(out, exist_ok=True)
    spec = os.path.join(out, "spec.json")
    with open(spec, "w", encoding="utf-8") as f:
        json.dump({"config": c.to_dict(), "file": path, "out": out}, f)
    spawned = time.time()  # the worker's marks are time.time()
    run_child(
        run, [sys.executable, "-m", "benchmarks.word2vec_worker", "ours", spec], run.child_log("word2vec"), run.tmp
    )
    with open(os.path.join(out, "result.json"), encoding="utf-8") as f:
        r = json.load(f)
    m = r["marks"]
    phases = ("imported", "counted", "compiled", "trained", "written")
    names = ("startup_s", "counting_s", "compiling_s", "training_s", "writing_s")
    figures = {k: m[b] - m[a] for k, a, b in zip(names, ("started", *phases), phases)}
    figures["startup_s"] = m["imported"] - spawned
    return {
        "model": c.model,
        "embed_dim": c.embed_dim,
        **{k: r[k] for k in ("vocabulary", "corpus_words", "epochs", "trained_words", "devices", "peak_rss_bytes")},
        **figures,
        "end_to_end_s": m["written"] - spawned,
        "words_per_sec": r["trained_words"] / max(m["trained"] - m["compiled"], 1e-9),
    }


def input_section(run: Run, entry: dict) -> dict:
    if importlib.util.find_spec("benchmarks.input_speed") is None:
        raise ModuleNotFoundError("benchmarks/input_speed.py is not there (yet)")
    path = os.path.join(run.tmp, "input.json")
    cmd = [sys.executable, "-m", "benchmarks.input_speed", f"--json={path}", *(QUICK_INPUT_FLAGS if run.quick else [])]
    wall = run_child(run, cmd, run.child_log("input"), run.tmp)
    with open(path, encoding="utf-8") as f:
        written = json.load(f)
    if isinstance(written, list):
        return {"wall_s": wall, "rows": written}
    return {"wall_s": wall, "rows": written.get("rows", []), "meta": {k: v for k, v in written.items() if k != "rows"}}


def last_metrics(workdir: str) -> dict:
    """The last logged training figures and the last evaluation's of a run's metrics.jsonl."""
    out = {}
    with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
        for record in map(json.loads, f):
            out.update(record)
    return out


def train_ddpm_section(run: Run, entry: dict) -> dict:
    workdir, data_dir = os.path.join(run.tmp, "train_ddpm"), os.path.join(run.tmp, "tfds")
    config = []
    if run.quick:
        config = [f"--config={importlib.util.find_spec('train.ddpm').origin}:smoke"]
        config += [f"--config.model.{k}={v!r}" for k, v in QUICK_UNET.items()]
    cmd = [sys.executable, "-m", "train.ddpm", *config, f"--workdir={workdir}", f"--config.data_dir={data_dir}"]
    wall = run_child(run, cmd, run.child_log("train_ddpm"), run.tmp)
    command = " ".join(["python", *cmd[1:]]).replace(run.tmp, "TMP")
    return {"command": command, "wall_s": wall, "last_metrics": last_metrics(workdir)}


def deterministic_section(run: Run, entry: dict) -> dict:
    from train.core import parallel

    out = os.path.join(run.tmp, "deterministic")
    skip = ",".join(name for name in SECTIONS if name not in DETERMINISTIC_SECTIONS)
    scale = QUICK_SCALE if run.quick else 1
    cmd = [sys.executable, "-m", "benchmarks.accelerator", f"--out={out}", f"--skip={skip}"]
    cmd += [f"--deadline={max(run.left() / scale - 30, 1):.0f}", *(["--quick"] if run.quick else [])]
    if run.quick:  # the ratios compare train steps, not samplers: a quick child does not compile them again
        cmd.append("--samplers=")
    flag = f"{parallel.DETERMINISTIC_FLAG}=true"
    xla_flags = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
    wall = run_child(run, cmd, run.child_log("deterministic"), run.tmp, {"XLA_FLAGS": xla_flags})
    with open(os.path.join(out, "accelerator.json"), encoding="utf-8") as f:
        child = json.load(f)["sections"]
    if child["device"].get("xla_flags") != xla_flags:
        raise RuntimeError(f"the child run's XLA_FLAGS are {child['device'].get('xla_flags')!r}, not {xla_flags!r}")
    sections = run.report["sections"]
    ratios = {}
    for name, key in (("ddpm_cifar10", "examples_per_sec"), ("word2vec", "words_per_sec")):
        mine, theirs = child.get(name, {}), sections.get(name, {})
        if key in mine and key in theirs:
            ratios[name] = mine[key] / theirs[key]
    return {
        "xla_flags": xla_flags,
        "wall_s": wall,
        "ratios": ratios,
        **{n: child.get(n) for n in DETERMINISTIC_SECTIONS[1:]},
    }


SECTION_FUNCTIONS = {
    "device": device_section,
    "roofline": roofline_section,
    "ddpm_cifar10": ddpm_cifar10_section,
    "loops": loops_section,
    "word2vec": word2vec_section,
    "input": input_section,
    "train_ddpm": train_ddpm_section,
    "deterministic": deterministic_section,
}


# ----------------------------------------------------------------------------- the table


def fmt(v, digits: int = 4) -> str:
    if not isinstance(v, (int, float)) or not math.isfinite(v):
        return "-"
    return f"{v:,.0f}" if abs(v) >= 10 ** (digits - 1) else f"{v:.{digits}g}"


def cells(section, what, dtype="", value=None, unit="", mfu=None, compile_s=None, notes="") -> list[str]:
    """One table row: | section | what | dtype | value | unit | MFU | compile s | notes |."""
    share = f"{100 * mfu:.1f}%" if mfu else "-"
    return [section, what, dtype, fmt(value), unit, share, fmt(compile_s, 3), notes]


def step_cells(section: str, what: str, f: dict) -> list[str]:
    notes = f"{f['gflops_per_step']:.3g} GFLOP/step, {f['step_ms']:.3g} ms/step, {f['params'] / 1e6:.3g}M params"
    return cells(section, what, f["dtype"], f["examples_per_sec"], "examples/s", f["mfu"], f["compile_s"], notes)


def problem_cells(section: str, what: str, f: dict) -> list[str] | None:
    """The row of a failed or skipped measurement, None for one that ran."""
    if "error" in f:
        return cells(section, what, f.get("dtype", ""), unit="error", notes=f["error"].splitlines()[0][:160])
    if "skipped" in f:
        return cells(section, what, f.get("dtype", ""), unit="skipped", notes=f["skipped"])
    return None


def roofline_rows(e: dict) -> list:
    return [
        cells("roofline", f"matmul {r['n']}^3, precision {r['precision']}", r["dtype"], r["tflops"], "TFLOP/s")
        for r in e.get("rows", [])
    ]


def ddpm_cifar10_rows(e: dict) -> list:
    if "examples_per_sec" not in e:
        return []
    shape = "x".join(map(str, e["image_shape"]))
    rows = [step_cells("ddpm_cifar10", f"{e['variant']} train step, batch {e['batch']} of {shape}", e)]
    for name, f in e.get("samplers", {}).items():
        what = f"{name}-{f.get('steps', '?')} sampling, {f.get('images', '?')} images a call"
        rows.append(
            problem_cells("ddpm_cifar10", what, f)
            or cells("ddpm_cifar10", what, e["dtype"], f["images_per_sec"], "images/s", None, f["compile_s"])
        )
    return rows


def loops_rows(e: dict) -> list:
    rows = []
    for f in e.get("rows", []):
        what = f"{f['module']}:{f['variant']} train step" + (f", batch {f['batch']}" if "batch" in f else "")
        rows.append(problem_cells("loops", what, f) or step_cells("loops", what, f))
    return rows


def word2vec_rows(e: dict) -> list:
    if "words_per_sec" not in e:
        return []
    what = f"{e['model']} train, vocabulary {e['vocabulary']:,} of a {e['lexicon']:,}-word lexicon"
    notes = f"{e['epochs']:.2g} epoch, dim {e['embed_dim']}, {e['tokens']:,} tokens"
    phases = ", ".join(f"{k[:-2]} {e[k]:.1f} s" for k in ("startup_s", "counting_s", "training_s", "writing_s"))
    return [
        cells("word2vec", what, "float32", e["words_per_sec"], "words/s", None, e["compiling_s"], notes),
        cells("word2vec", "end to end (a fresh process)", "float32", e["end_to_end_s"], "s", notes=phases),
    ]


def input_rows(e: dict) -> list:
    rows = []
    for r in e.get("rows", []):
        what = f"{r.get('pipeline', r.get('key', '?'))} -> {r.get('model', '?')}, {r.get('threads', '?')} thread(s)"
        notes = f"needs {fmt(r.get('needed_examples_per_s'))}/s; first batch {fmt(r.get('first_batch_s'), 3)} s"
        rows.append(cells("input", what, "", r.get("examples_per_s"), "examples/s", notes=notes))
    return rows


def train_ddpm_rows(e: dict) -> list:
    if "wall_s" not in e:
        return []
    m = e.get("last_metrics", {})
    notes = ", ".join(f"{k} {fmt(m[k])}" for k in ("step", "loss", "eval/test_bpd_bound") if k in m)
    return [cells("train_ddpm", e["command"].split(" --workdir")[0], "", e["wall_s"], "s wall", notes=notes)]


def deterministic_rows(e: dict) -> list:
    rows = []
    for name, key, unit in (
        ("ddpm_cifar10", "examples_per_sec", "examples/s"),
        ("word2vec", "words_per_sec", "words/s"),
    ):
        child = e.get(name) or {}
        if key in child:
            ratio = e.get("ratios", {}).get(name)
            notes = f"{ratio:.3g}x the default's" if ratio else "no default figure to compare"
            rows.append(cells("deterministic", f"{name} with {e['xla_flags']}", "", child[key], unit, notes=notes))
    return rows


ROWS = {
    "roofline": roofline_rows,
    "ddpm_cifar10": ddpm_cifar10_rows,
    "loops": loops_rows,
    "word2vec": word2vec_rows,
    "input": input_rows,
    "train_ddpm": train_ddpm_rows,
    "deterministic": deterministic_rows,
}


def section_rows(name: str, e: dict) -> list[list[str]]:
    """The table rows of a section's entry, and one of its failure or skipping; never raises."""
    try:
        rows = ROWS[name](e) if name in ROWS else []
    except Exception as err:  # the table must not stop a run
        rows = [cells(name, "(table)", unit="error", notes=f"{type(err).__name__}: {err}"[:160])]
    if e.get("status") in ("error", "skipped"):
        why = ((e.get("error") or e.get("why") or "").splitlines() or [""])[0][:160]
        rows.append(cells(name, "(section)", unit=e["status"], notes=why))
    return rows


def markdown(report: dict) -> str:
    """The report as markdown: a title with the device, a line of versions and the commit, the table."""
    s = report["sections"]
    d = s.get("device", {})
    where = f"{d.get('device_count', '?')} x {d.get('device_kind', '?')} ({d.get('platform', '?')})"
    versions = ", ".join(f"{k} {v}" for k, v in d.get("packages", {}).items() if v)
    lines = [
        f"# Accelerator run: {where}{' (--quick)' if report['quick'] else ''}",
        "",
        f"{d.get('date', '?')}, commit {d.get('commit', '?')}{' (dirty)' if d.get('dirty') else ''}; {versions}; "
        f"Python {d.get('python', '?')}. MFU: XLA FLOPs per step / step time / this run's matmul TFLOP/s of the same "
        "dtype at the default precision.",
        "",
        "| section | what | dtype | value | unit | MFU | compile s | notes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in report["order"]:
        for row in section_rows(name, s.get(name, {})):
            lines.append("| " + " | ".join(str(c).replace("|", "/").replace("\n", " ") for c in row) + " |")
    status = ", ".join(f"{n} {s[n]['status']} ({s[n].get('section_s', 0):.0f} s)" for n in report["order"] if n in s)
    return "\n".join([*lines, "", f"sections: {status}", ""])


# ----------------------------------------------------------------------------- main


def quick_xla_flags() -> None:
    """Add QUICK_XLA_FLAG to XLA_FLAGS (read when JAX's backends start, so before then) unless they set its level."""
    xla_flags = os.environ.get("XLA_FLAGS", "")
    if QUICK_XLA_FLAG.split("=")[0] not in xla_flags:
        os.environ["XLA_FLAGS"] = f"{xla_flags} {QUICK_XLA_FLAG}".strip()


def parse_budgets(F) -> dict:
    budgets = {k: v * (QUICK_SCALE if F.quick else 1) for k, v in BUDGETS.items()}
    for item in F.budgets:
        name, _, secs = item.partition("=")
        if name not in BUDGETS:
            raise app.UsageError(f"--budgets={item}: unknown section {name!r}; accepted: {', '.join(SECTIONS)}")
        try:
            budgets[name] = float(secs)
        except ValueError:
            raise app.UsageError(f"--budgets={item}: SECONDS must be a number") from None
    return budgets


def main(argv):
    F = flags.FLAGS
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    if not F.out:
        raise app.UsageError("--out DIR is required")
    unknown = set(F.skip) - set(SECTIONS)
    if unknown:
        raise app.UsageError(f"--skip: unknown sections {sorted(unknown)}; accepted: {', '.join(SECTIONS)}")
    unknown = set(F.samplers) - set(SAMPLERS)
    if unknown:
        raise app.UsageError(f"--samplers: unknown samplers {sorted(unknown)}; accepted: {', '.join(SAMPLERS)}")
    budgets = parse_budgets(F)
    logging.set_verbosity(logging.WARNING)  # as train/'s command lines: no INFO lines of JAX's backends, Orbax
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # before JAX's backends start
    from train.core import parallel

    parallel.xla_cpu_convolutions()  # as train.ddpm runs (an XLA:CPU flag; before JAX's backends start)
    if F.quick:
        quick_xla_flags()
    os.makedirs(F.out, exist_ok=True)
    started = time.perf_counter()
    deadline = started + F.deadline * (QUICK_SCALE if F.quick else 1)
    report = {"argv": sys.argv, "quick": F.quick, "order": list(SECTIONS), "budgets_s": budgets, "sections": {}}
    with tempfile.TemporaryDirectory(prefix="accelerator-") as tmp:
        run = Run(os.path.abspath(F.out), F.quick, tmp, report, started, deadline)
        for name in SECTIONS:
            if name in F.skip:
                report["sections"][name] = {"status": "skipped", "why": "--skip"}
                continue
            run_section(run, name, SECTION_FUNCTIONS[name], budgets[name])
        report["total_s"] = time.perf_counter() - started
        run.save()
    print("\n" + markdown(report), flush=True)


if __name__ == "__main__":
    app.run(main)
