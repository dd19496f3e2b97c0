"""Where a compiled JAX step spends its time on XLA:CPU: per-op timings from the profiler, grouped by layer and op.

    python -m benchmarks.xla_profile [--size=32 --batch=32 --ch=64] [--step=train|forward] [--calls=3] [--top=15]
    python -m benchmarks.xla_profile --model=word2vec [--w2v_model=sgns|cbow] [--w2v_kernel=native|xla]
        [--tokens=2000000] [--zipf_words=100000]

Runs the DDPM U-Net's train step (or forward) of benchmarks.unet_speed, or train.word2vec's step on a zipf corpus
(train/data/corpus.py, as benchmarks.word2vec_speed trains on), under jax.profiler for --calls calls and reads the
trace back: XLA:CPU records one event per executed thunk (a fusion, a convolution, a copy), named after
its instruction in the optimized HLO, whose metadata names the JAX operation and the Flax module path that made it
("jvp(UNet)/ResBlock_3/GroupNorm_0/reduce_sum"; "transpose(jvp(...))" is the backward pass). The report groups
the thunks' milliseconds per call by

- kind: what the thunk is (a YNNPACK fusion, i.e. a convolution or matmul with what XLA fused into it; an XLA
  convolution, the Eigen kernel; an elementwise or reduction fusion; a copy or transpose),
- layer: the innermost Flax module (Conv, GroupNorm, Dense, SelfAttention's softmax, ...) and the pass (forward or
  backward),

and lists the slowest thunks. The thunks' time can exceed the wall time where XLA runs independent thunks side by
side on its threads. `profile_ops` and `group` work on any compiled function (tests/test_xla_profile.py).
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re
import tempfile
import time

import jax
import numpy as np
from absl import app, flags

from benchmarks import unet_speed  # its --ch sets the U-Net's base channels here too

flags.DEFINE_enum("model", "unet", ["unet", "word2vec"], "The DDPM U-Net's step or train.word2vec's.")
flags.DEFINE_integer("size", 32, "Image side.")
flags.DEFINE_integer("batch", 32, "Images per call.")
flags.DEFINE_enum("step", "train", ["train", "forward"], "The optimizer step or the network's forward call.")
flags.DEFINE_integer("calls", 3, "Profiled calls (after one unprofiled warm-up call).")
flags.DEFINE_integer("top", 15, "Slowest thunks listed.")
flags.DEFINE_string("w2v_model", "sgns", "word2vec: config.model (sgns or cbow).")
flags.DEFINE_integer("tokens", 2_000_000, "word2vec: tokens of the zipf corpus it trains on.")
flags.DEFINE_integer("zipf_words", 100_000, "word2vec: words of the zipf corpus's lexicon.")
flags.DEFINE_integer("cpu_devices", 0, "word2vec: config.cpu_devices (0: as train.word2vec chooses).")
flags.DEFINE_enum(
    "w2v_kernel",
    "native",
    ["native", "xla"],
    "word2vec: config.kernel (native: one FFI call on the CPU; xla: row steps).",
)

_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*\S.*?\s([a-z][\w\-]*)\(")
_OP_NAME = re.compile(r'op_name="([^"]*)"')


def hlo_instructions(hlo_text: str) -> dict[str, tuple[str, str]]:
    """Instruction name -> (opcode, op_name metadata) of every instruction of an optimized HLO module's text."""
    out = {}
    for line in hlo_text.splitlines():
        m = _INSTR.match(line)
        if m:
            op = _OP_NAME.search(line)
            out[m.group(1)] = (m.group(2), op.group(1) if op else "")
    return out


def profile_ops(call, calls: int = 3) -> tuple[dict[str, float], float]:
    """(thunk name -> self microseconds per call, wall microseconds per call) of `call()` (blocking), run `calls`
    times under jax.profiler after one warm-up call. Self time leaves out the events nested in an event."""
    call()
    with tempfile.TemporaryDirectory() as d:
        jax.profiler.start_trace(d)
        t0 = time.perf_counter()
        for _ in range(calls):
            call()
        wall = (time.perf_counter() - t0) / calls * 1e6
        jax.profiler.stop_trace()
        (path,) = glob.glob(os.path.join(d, "plugins", "profile", "*", "*.trace.json.gz"))
        with gzip.open(path) as f:
            events = json.load(f)["traceEvents"]
    return self_times(events, calls), wall


def self_times(events: list[dict], calls: int = 1) -> dict[str, float]:
    """Name -> self microseconds per call of a Chrome trace's complete ('X') events: each event's duration less
    that of the events nested in it on its thread (a while loop's thunk encloses its body's thunks)."""
    totals = collections.Counter()
    threads = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X":
            threads[(e.get("pid"), e.get("tid"))].append((float(e["ts"]), float(e.get("dur", 0.0)), e["name"]))
    for spans in threads.values():
        spans.sort(key=lambda x: (x[0], -x[1]))
        stack = []  # [end, name, self time] of the enclosing events
        for ts, dur, name in spans:
            while stack and stack[-1][0] <= ts:
                end, n, own = stack.pop()
                totals[n] += own / calls
            if stack:
                stack[-1][2] -= dur
            stack.append([ts + dur, name, dur])
        for _end, n, own in stack:
            totals[n] += own / calls
    return dict(totals)


def kind_of(name: str, opcode: str) -> str:
    """What a thunk is, from its instruction name and opcode."""
    if name.startswith("ynn_fusion"):
        return "YNNPACK fusion (conv/matmul)"
    if opcode == "convolution":
        return "XLA convolution (Eigen)"
    if opcode == "dot":
        return "XLA dot (Eigen)"
    if "copy" in name or "transpose" in name or opcode in ("copy", "transpose"):
        return "copy/transpose"
    if "reduce" in name or opcode == "reduce":
        return "reduction fusion"
    if opcode == "fusion":
        return "elementwise fusion"
    return opcode


def layer_of(op_name: str) -> str:
    """'forward|backward <innermost Flax module type>/<primitive>' of an op_name like
    'jit(step)/transpose(jvp(UNet))/ResBlock_3/GroupNorm_0/reduce_sum'."""
    if not op_name:
        return "(no metadata)"
    parts = op_name.split("/")
    backward = any(p.startswith("transpose(") for p in parts)
    modules = [re.sub(r"_\d+$", "", p) for p in parts[1:-1] if re.match(r"^[A-Z]\w*$", p)]
    inner = modules[-1] if modules else "(no module)"
    prim = re.sub(r"^jit\((\w+)\)$", r"\1", parts[-1])
    if len(parts) > 2 and parts[-2].startswith("jit("):
        prim = parts[-2][4:-1]  # a jitted helper's ops under its name: jit(silu)/mul -> silu
    return f"{'backward' if backward else 'forward'} {inner}/{prim}"


def group(times: dict[str, float], instructions: dict[str, tuple[str, str]], by: str) -> list[tuple[str, float, int]]:
    """[(group, microseconds, thunks)] sorted slowest first, over the thunks that are instructions of the module;
    by 'kind' or 'layer'."""
    acc, count = collections.Counter(), collections.Counter()
    for name, us in times.items():
        if name not in instructions:
            continue
        opcode, op_name = instructions[name]
        g = kind_of(name, opcode) if by == "kind" else layer_of(op_name)
        acc[g] += us
        count[g] += 1
    return [(g, acc[g], count[g]) for g, _ in acc.most_common()]


def report(compiled, call, calls: int = 3, top: int = 15) -> str:
    """The profile of `call()` (which runs `compiled`) as text: wall and thunk time, then markdown tables by kind,
    by layer and of the slowest thunks, in milliseconds per call."""
    instructions = hlo_instructions(compiled.as_text())
    times, wall = profile_ops(call, calls)
    thunks = sum(us for n, us in times.items() if n in instructions)
    lines = [f"wall {wall / 1e3:.1f} ms per call; thunks {thunks / 1e3:.1f} ms"]
    for by in ("kind", "layer"):
        lines += ["", f"| {by} | ms/call | share | thunks |", "|---|---|---|---|"]
        for g, us, n in group(times, instructions, by)[:top]:
            lines.append(f"| {g} | {us / 1e3:.2f} | {us / max(thunks, 1e-9):.1%} | {n} |")
    lines += ["", "| thunk | ms/call | opcode | op_name |", "|---|---|---|---|"]
    for us, n in sorted(((us, n) for n, us in times.items() if n in instructions), reverse=True)[:top]:
        opcode, op_name = instructions[n]
        lines.append(f"| {n} | {us / 1e3:.2f} | {opcode} | {re.sub(r'^jit[(][^)]*[)]/', '', op_name)} |")
    return "\n".join(lines)


def word2vec_step(f) -> tuple:
    """(compiled, call, description) of train.word2vec's step on a zipf corpus of f.tokens tokens, as
    benchmarks.word2vec_worker builds it (devices split per core, depth-first scheduling)."""
    from train.core import parallel

    parallel.schedule_depth_first()
    from train import word2vec as tw
    from train.core import loop
    from train.data import corpus as generated, word2vec_examples as w2v_examples

    c = tw.get_config()
    c.model, c.cpu_devices, c.kernel = f.w2v_model, f.cpu_devices, f.w2v_kernel
    d = tempfile.mkdtemp(prefix="xla_profile_w2v_")
    path = os.path.join(d, "zipf.txt")
    with open(path, "w") as out:
        for line in generated.generate_zipf_corpus(f.tokens, num_words=f.zipf_words):
            out.write(line + "\n")
    c.corpus = "text:" + path
    tw.SCHEMA.check(c)
    corpus, _ = w2v_examples.load_corpus(c, d)
    parallel.split_cpu(tw.cpu_devices_for(c, len(corpus.vocab)))  # as train.word2vec does, before JAX starts
    c.num_steps = w2v_examples.resolve_num_steps(c, corpus)
    examples = w2v_examples.TrainingExamples(corpus, c, jax.device_count())
    task = tw.make_task(c, corpus, ([], []), examples)
    mesh = parallel.data_mesh()
    state = [loop.init_state(task, c, mesh)]
    batch = parallel.shard_batch(next(task.batches(c.batch_size, c.seed)), mesh)
    compiled = loop.compile_step(task, c, mesh).lower(state[0], batch).compile()

    def call():
        state[0], metrics, _ = compiled(state[0], batch)
        jax.block_until_ready(metrics)

    what = (
        f"word2vec {c.model} step: {c.batch_size} corpus words in {examples.minibatches} minibatches of "
        f"{c.minibatch_size}, vocabulary {len(corpus.vocab):,}, dim {c.embed_dim}, {jax.device_count()} devices"
    )
    return compiled, call, what


def main(_):
    f = flags.FLAGS
    if f.model == "word2vec":
        compiled, call, what = word2vec_step(f)
        print(what)
        print(report(compiled, call, f.calls, f.top))
        return
    from train.core import parallel

    parallel.xla_cpu_convolutions()  # as train.ddpm runs the U-Net (XLA_FLAGS can set the flag otherwise)
    x = np.random.default_rng(0).uniform(-1, 1, (f.batch, f.size, f.size, 1)).astype(np.float32)
    ours = unet_speed.ours(f.size, f.batch, f.ch, x)
    print(f"{f.step} step, {f.size}x{f.size} B{f.batch} ch {f.ch}: {ours['flops'][f.step] / 1e9:.1f} GFLOP (XLA)")
    print(report(ours["compiled"][f.step], ours["call"][f.step], f.calls, f.top))


if __name__ == "__main__":
    app.run(main)
