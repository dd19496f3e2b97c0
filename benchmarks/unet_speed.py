"""The DDPM U-Net against lucidrains' denoising-diffusion-pytorch on CPU: training and sampling images/s, alternated.

    python -m benchmarks.unet_speed [--rounds=5] [--sizes=16:64,32:32] [--sample_rounds=1] [--dtype=bfloat16] [--quick]

Ours: zoo.ddpm.UNet built by train.ddpm.make_network, trained on zoo.ddpm.training_losses as train.ddpm.make_task's
loss (eps prediction, linear betas, T = 1000, uniform weight), with plain Adam (optax.adam, lr 2e-4) in one jitted
step. The peer: denoising_diffusion_pytorch's Unet inside its GaussianDiffusion (objective pred_noise, linear betas,
T = 1000, images already in [-1, 1]) with torch.optim.Adam. Neither has an EMA, gradient clipping or dropout.

Architecture, matched as closely as the two allow: base channels 64 (--ch), 2 residual blocks a level (the peer's
are fixed at 2), three resolution levels of widths 64, 128, 128 (ours ch_mult (1, 2, 2); the peer's dims run one
level behind its dim_mults, so dim_mults (2, 2, 2)), time embedding of 4 x 64, full self-attention at the lowest
resolution and in the middle, single-channel images. What still differs: the peer normalises with RMSNorm (ours
GroupNorm), conditions on time by scale and shift (ours adds it), has 4-head attention with memory key/values, adds
linear attention at its two upper levels, runs its full-resolution up blocks at 128 channels, has a 7x7 stem, a
space-to-depth downsample, an extra final residual block and two (not three) up blocks a level. Both parameter
counts and both forward FLOP counts are printed.

Each of --rounds rounds times, for every SIZE:BATCH of --sizes, one full optimizer step (noising, forward, loss,
backward, Adam) and one network forward call (sampling's unit: jitted / torch.inference_mode) of each library, for
at least --min_time seconds each, JAX and torch taking turns (which goes first alternates by round), and the fp32
matmul (jnp.dot, numpy, torch) at --matmul_n; the figures are medians over the rounds. Compilation (JAX) and the
first call (both) come before the rounds and are reported apart. Each library runs in a worker process of its own
(serve), started one after the other and asked for each timing in turn, so neither's threads share a process with
the other's. Both get all the machine's cores: XLA:CPU's thread pool has one thread per core by default, and
torch.set_num_threads is set to the same count. Ours runs its convolutions as train.ddpm does
(train.core.parallel.xla_cpu_convolutions). The roofline is
the fastest of the three matmuls; JAX's share of it uses XLA's cost analysis of the compiled step or forward (all
its FLOPs); the peer's forward FLOPs are torch's FlopCounterMode count (convolutions and matmuls only).

Sampling, --sample_rounds alternated rounds of one call each: DDIM with --ddim_steps network calls (eta 0, x0
clipped: zoo.ddpm.sample_ddim against the peer's ddim_sample) and ancestral sampling (zoo.ddpm.sample_ancestral
against its p_sample_loop) over the last --chain_steps of the T = 1000 steps, scaled to all T: every step of the
chain costs the same, and timing all 1000 would take each library many minutes a size.

The peer's package imports torchvision for its Trainer's data transforms and image grids, which this benchmark does
not use. PyPI's torchvision wheels are CUDA builds that do not load beside a CPU torch ("operator torchvision::nms
does not exist"), so where torchvision does not import, empty stand-in modules take its place.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import types
from importlib import metadata

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags

from benchmarks.common import compiled_flops, device_line, matmul_gflops, time_fn
from train import ddpm as train_ddpm
from zoo import ddpm

CH_MULT = (1, 2, 2)  # ours: widths ch x (1, 2, 2) at sizes s, s/2, s/4
PEER_DIM_MULTS = (2, 2, 2)  # the peer's level i runs at dims[i] = (ch, 2ch, 2ch, 2ch)[i]: the same widths
NUM_RES_BLOCKS = 2  # fixed in the peer's Unet
LEARNING_RATE = 2e-4
STEPS = ("train", "forward")
SAMPLERS = ("ddim", "ancestral")

flags.DEFINE_integer("rounds", 5, "Alternated rounds; the figures are their medians.")
flags.DEFINE_list("sizes", ["16:64", "32:32"], "SIZE:BATCH pairs: square images of SIZE pixels, BATCH a call.")
flags.DEFINE_integer("ch", 64, "Base channels of both U-Nets.")
flags.DEFINE_list("peer_dim_mults", list(map(str, PEER_DIM_MULTS)), "The peer Unet's dim_mults.")
flags.DEFINE_integer("channels", 1, "Image channels (1: digits).")
flags.DEFINE_enum(
    "dtype",
    "float32",
    ["float32", "bfloat16"],
    "Our U-Net's compute dtype (train.ddpm's config.dtype; the peer's is float32).",
)
flags.DEFINE_float("min_time", 1.0, "Seconds each library's step or forward runs in a round (at least 2 calls).")
flags.DEFINE_integer("matmul_n", 2048, "Side of the fp32 matmul of the roofline.")
flags.DEFINE_integer("ddim_steps", 50, "Network calls of each library's DDIM sampler (eta 0, x0 clipped).")
flags.DEFINE_integer(
    "chain_steps",
    50,
    "Ancestral sampling is timed over the last CHAIN_STEPS of the T = 1000 steps and scaled to all T.",
)
flags.DEFINE_integer("sample_rounds", 1, "Alternated rounds of the sampler timings (one sampling call a round).")
flags.DEFINE_enum("worker", "", ["", "jax", "torch"], "Internal: serve one library's timings (see serve).")
flags.DEFINE_string("worker_spec", "{}", "Internal: the worker's networks, as JSON.")
flags.DEFINE_bool(
    "quick", False, "Smoke run (the test's): 1 round, 8x8 images batch 4, ch 16, 2-step samplers, no minimum time."
)


def import_peer():
    """The denoising_diffusion_pytorch package, with empty torchvision modules in place of a torchvision that
    does not import (the peer only uses it in its Trainer and image Dataset)."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # not installed, or PyPI's CUDA build beside a CPU torch
        stub = types.ModuleType("torchvision")
        for name in ("transforms", "utils"):
            setattr(stub, name, types.ModuleType(f"torchvision.{name}"))
            sys.modules[f"torchvision.{name}"] = getattr(stub, name)
        sys.modules["torchvision"] = stub
    import denoising_diffusion_pytorch
    from denoising_diffusion_pytorch import denoising_diffusion_pytorch as module

    module.tqdm = lambda steps, **_: steps  # its samplers' progress bar a step: not timed, not printed
    return denoising_diffusion_pytorch


def parse_sizes(sizes) -> list[tuple[int, int]]:
    pairs = []
    for s in sizes:
        size, _, batch = s.partition(":")
        if not (size.isdigit() and batch.isdigit()) or int(size) % 2 ** (len(CH_MULT) - 1) or not int(batch):
            raise app.UsageError(f"--sizes: {s!r} is not SIZE:BATCH with SIZE divisible by 4 and BATCH >= 1")
        pairs.append((int(size), int(batch)))
    return pairs


def ours(
    size: int, batch: int, ch: int, x_np: np.ndarray, ddim_steps: int = 50, chain_steps: int = 50, dtype="float32"
) -> dict:
    """One jitted Adam step of train.ddpm's loss and one jitted forward of its U-Net, compiled (timed) with their
    XLA FLOPs, each as a blocking call; zoo.ddpm's DDIM sampler (ddim_steps) and ancestral sampler over the last
    chain_steps timesteps (the schedule's first chain_steps betas: the same constants, fewer steps)."""
    c = train_ddpm.get_config()
    c.model.ch, c.model.ch_mult, c.model.num_res_blocks = ch, CH_MULT, NUM_RES_BLOCKS
    c.model.attn_resolutions = (size // 2 ** (len(CH_MULT) - 1),)  # the lowest resolution
    c.dtype = dtype  # the parameters stay float32 either way
    train_ddpm.SCHEMA.check(c)
    net, sched = train_ddpm.make_network(c), train_ddpm.schedule_of(c)
    x0 = jnp.asarray(x_np)
    t = jax.random.randint(jax.random.key(1), (batch,), 0, sched.num_steps)
    params = jax.jit(net.init)(jax.random.key(0), x0[:1], t[:1])["params"]
    opt = optax.adam(LEARNING_RATE)

    def loss_fn(params, x0, key):  # train.ddpm.make_task's loss of an unconditional U-Net without dropout
        return jnp.mean(ddpm.training_losses(sched, lambda x, t: net.apply({"params": params}, x, t), x0, key))

    def train_step(params, opt_state, key, x0):
        key, k = jax.random.split(key)
        loss, grads = jax.value_and_grad(loss_fn)(params, x0, k)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, key, loss

    out = {"params": sum(p.size for p in jax.tree.leaves(params))}
    t0 = time.perf_counter()
    step = jax.jit(train_step, donate_argnums=(0, 1, 2)).lower(params, opt.init(params), jax.random.key(2), x0)
    step = step.compile()
    t1 = time.perf_counter()
    forward = jax.jit(lambda p, x, t: net.apply({"params": p}, x, t)).lower(params, x0, t).compile()
    t2 = time.perf_counter()
    out["compile_s"] = {"train": t1 - t0, "forward": t2 - t1}
    out["flops"] = {"train": compiled_flops(step), "forward": compiled_flops(forward)}
    out["compiled"] = {"train": step, "forward": forward}
    state = [(params, opt.init(params), jax.random.key(2))]

    def train():
        *new, loss = step(*state[0], x0)
        state[0] = tuple(new)
        jax.block_until_ready(loss)

    out["call"] = {"train": train, "forward": lambda: jax.block_until_ready(forward(state[0][0], x0, t))}

    def eps_fn(p):
        return lambda x, t: net.apply({"params": p}, x, t)

    chain = ddpm.make_schedule(np.asarray(sched.betas)[:chain_steps])
    shape = x0.shape
    ddim = jax.jit(lambda p, k: ddpm.sample_ddim(sched, eps_fn(p), shape, k, num_steps=ddim_steps))
    ancestral = jax.jit(lambda p, k: ddpm.sample_ancestral(chain, eps_fn(p), shape, k))
    key = jax.random.key(3)
    for name, fn in (("ddim", ddim), ("ancestral", ancestral)):
        out["call"][name] = lambda fn=fn: jax.block_until_ready(fn(state[0][0], key))
    return out


def peer(
    dd, size: int, batch: int, ch: int, dim_mults: tuple, x_np: np.ndarray, ddim_steps: int, chain_steps: int
) -> dict:
    """One Adam step of the peer's GaussianDiffusion loss and one no-grad forward of its Unet, each a call, with
    the forward's FlopCounterMode count; its ddim_sample (sampling_timesteps = ddim_steps) and its p_sample_loop
    over the last chain_steps timesteps (num_timesteps lowered on a second GaussianDiffusion: the loop runs
    t = chain_steps - 1 .. 0 of the same buffers)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    unet = dd.Unet(ch, dim_mults=dim_mults, channels=x_np.shape[-1])
    diffusion = dd.GaussianDiffusion(
        unet, image_size=size, timesteps=1000, objective="pred_noise", beta_schedule="linear", auto_normalize=False
    )
    opt = torch.optim.Adam(unet.parameters(), lr=LEARNING_RATE)
    x = torch.from_numpy(np.ascontiguousarray(x_np.transpose(0, 3, 1, 2)))
    t = torch.randint(0, 1000, (batch,))

    def train():
        loss = diffusion(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def forward():
        with torch.inference_mode():
            unet(x, t)

    def diffusion_with(**attrs):
        d = dd.GaussianDiffusion(
            unet, image_size=size, timesteps=1000, objective="pred_noise", beta_schedule="linear", auto_normalize=False
        )
        for k, v in attrs.items():
            setattr(d, k, v)
        return d

    shape = tuple(x.shape)
    ddim, chain = diffusion_with(sampling_timesteps=ddim_steps), diffusion_with(num_timesteps=chain_steps)

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        unet(x, t)
    return {
        "params": sum(p.numel() for p in unet.parameters()),
        "flops": {"forward": float(counter.get_total_flops())},
        "call": {
            "train": train,
            "forward": forward,
            "ddim": lambda: ddim.ddim_sample(shape),
            "ancestral": lambda: chain.p_sample_loop(shape),
        },
    }


def first_call_s(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def matmul_rates(lib: str, n: int, min_time: float) -> dict:
    """fp32 n^3 matmul GFLOP/s in a worker: jnp.dot and numpy (the jax worker) or torch.mm (the torch one)."""
    a, b = np.random.default_rng(0).standard_normal((2, n, n), dtype=np.float32)
    gflop = 2 * n**3 / 1e9
    if lib == "jax":
        return {
            "jnp.dot": matmul_gflops(n, min_time=min_time),
            "numpy": gflop / time_fn(lambda: np.dot(a, b), min_time=min_time),
        }
    import torch

    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    return {"torch": gflop / time_fn(lambda: torch.mm(ta, tb), min_time=min_time)}


REPLY = "@unet_speed "  # a worker's replies on its stdout start with this (anything else printed is not one)


def serve(lib: str, spec: dict) -> None:
    """A worker process for one library: build its networks at every size, time each call once (the first call),
    reply with what it built, then time calls as asked, one JSON request per line of stdin. Each library in its
    own process, so that neither's threads, allocator or libraries share a process with the other's."""

    def reply(obj):
        print(REPLY + json.dumps(obj), flush=True)

    if lib == "jax":
        from train.core import parallel

        parallel.xla_cpu_convolutions()  # as train.ddpm runs the U-Net (before JAX's backends start)
        version = f"jax {jax.__version__}"
    else:
        import torch

        torch.set_num_threads(spec["threads"])
        dd = import_peer()
        version = (
            f"torch {torch.__version__}, denoising-diffusion-pytorch {metadata.version('denoising-diffusion-pytorch')}"
        )
    nets = {}
    for size, batch in spec["sizes"]:
        x_np = np.random.default_rng(size).uniform(-1, 1, (batch, size, size, spec["channels"])).astype(np.float32)
        args = (size, batch, spec["ch"])
        steps = (spec["ddim_steps"], spec["chain_steps"])
        net = (
            ours(*args, x_np, *steps, spec["dtype"])
            if lib == "jax"
            else peer(dd, *args, tuple(spec["dim_mults"]), x_np, *steps)
        )
        nets[f"{size}:{batch}"] = net
    first = {key: {c: first_call_s(n["call"][c]) for c in spec["calls"]} for key, n in nets.items()}
    built = {key: {k: n[k] for k in ("params", "flops", "compile_s") if k in n} for key, n in nets.items()}
    reply({"nets": built, "first": first, "version": version})
    for line in sys.stdin:
        ask = json.loads(line)
        if ask["op"] == "time":
            call = nets[ask["net"]]["call"][ask["call"]]
            reply({"secs": time_fn(call, warmup=0, min_time=ask["min_time"], min_iters=ask["min_iters"])})
        elif ask["op"] == "matmul":
            reply(matmul_rates(lib, ask["n"], ask["min_time"]))
        else:
            return


class Worker:
    """A library's worker process (serve), asked over its stdin, answering on its stdout."""

    def __init__(self, lib: str, spec: dict):
        cmd = [sys.executable, "-m", "benchmarks.unet_speed", f"--worker={lib}", f"--worker_spec={json.dumps(spec)}"]
        self.lib = lib
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.built = self.answer()

    def answer(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(REPLY):
                return json.loads(line[len(REPLY) :])
        raise RuntimeError(f"the {self.lib} worker stopped (exit code {self.proc.wait()}); its stderr is above")

    def ask(self, **request) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self.answer()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def main(_):
    f = flags.FLAGS
    if f.worker:
        serve(f.worker, json.loads(f.worker_spec))
        return
    rounds, sizes, ch, min_time, matmul_n = f.rounds, parse_sizes(f.sizes), f.ch, f.min_time, f.matmul_n
    ddim_steps, chain_steps, sample_rounds = f.ddim_steps, f.chain_steps, f.sample_rounds
    if f.quick:
        rounds, sizes, ch, min_time, matmul_n = 1, [(8, 4)], 16, 0.0, 256
        ddim_steps, chain_steps, sample_rounds = 2, 2, 1
    for name, v, high in (("ddim_steps", ddim_steps, 1000), ("chain_steps", chain_steps, 1000)):
        if not 1 <= v <= high:
            raise app.UsageError(f"--{name}: an integer in 1..{high}, got {v}")
    if sample_rounds < 0:
        raise app.UsageError(f"--sample_rounds: an integer >= 0, got {sample_rounds}")
    if not all(m.isdigit() and int(m) for m in f.peer_dim_mults) or len(f.peer_dim_mults) != len(CH_MULT):
        raise app.UsageError(f"--peer_dim_mults: {len(CH_MULT)} positive integers, got {f.peer_dim_mults}")
    dim_mults = tuple(map(int, f.peer_dim_mults))
    cores = len(os.sched_getaffinity(0))
    load_before = load()
    samplers = SAMPLERS if sample_rounds else ()
    spec = dict(
        sizes=sizes,
        ch=ch,
        channels=f.channels,
        dim_mults=dim_mults,
        ddim_steps=ddim_steps,
        chain_steps=chain_steps,
        threads=cores,
        calls=STEPS + samplers,
        dtype=f.dtype,
    )
    workers = {lib: Worker(lib, spec) for lib in ("jax", "torch")}  # one after the other: each compiles alone
    nets = {
        (size, batch): {lib: w.built["nets"][f"{size}:{batch}"] for lib, w in workers.items()} for size, batch in sizes
    }
    first = {
        ((size, batch), lib, c): w.built["first"][f"{size}:{batch}"][c]
        for size, batch in sizes
        for lib, w in workers.items()
        for c in STEPS + samplers
    }

    def seconds(lib, size, batch, call, min_time, min_iters):
        return workers[lib].ask(op="time", net=f"{size}:{batch}", call=call, min_time=min_time, min_iters=min_iters)[
            "secs"
        ]

    rates = {}  # (step, size, batch, lib) -> images/s of each round
    matmuls = []
    for r in range(rounds):
        libs = ("jax", "torch") if r % 2 == 0 else ("torch", "jax")
        for size, batch in nets:
            for s in STEPS:
                for lib in libs:
                    secs = seconds(lib, size, batch, s, min_time, 2)
                    rates.setdefault((s, size, batch, lib), []).append(batch / secs)
        matmuls.append(
            {k: v for w in workers.values() for k, v in w.ask(op="matmul", n=matmul_n, min_time=min_time).items()}
        )
    for r in range(sample_rounds):  # one call each: a sampling call runs for many seconds at the default sizes
        libs = ("jax", "torch") if r % 2 == 0 else ("torch", "jax")
        for size, batch in nets:
            for s in samplers:
                for lib in libs:
                    secs = seconds(lib, size, batch, s, 0.0, 1)
                    if s == "ancestral":  # the chain's seconds scaled to all T = 1000 steps
                        secs *= 1000 / chain_steps
                    rates.setdefault((s, size, batch, lib), []).append(batch / secs)
    for w in workers.values():
        w.close()
    med = {k: statistics.median(v) for k, v in rates.items()}
    mm = {lib: statistics.median(m[lib] for m in matmuls) for lib in matmuls[0]}
    roofline = max(mm.values())

    first_nets = next(iter(nets.values()))
    p_jax, p_torch = first_nets["jax"]["params"], first_nets["torch"]["params"]
    print(device_line(), "|", workers["torch"].built["version"])
    print(
        f"threads: {cores} (the machine's cores) for XLA:CPU and torch, each library in its own worker process; "
        f"load average {load_before} before"
    )
    print(
        f"parameters: ours UNet(ch={ch}, ch_mult={CH_MULT}, computing in {f.dtype}) {p_jax:,}; peer Unet(dim={ch}, "
        f"dim_mults={dim_mults}) {p_torch:,} ({100 * (p_torch / p_jax - 1):+.1f}%)"
    )
    print(
        f"fp32 matmul {matmul_n}^3 GFLOP/s, median of {rounds}: "
        + ", ".join(f"{k} {v:.1f}" for k, v in mm.items())
        + f"; roofline {roofline:.1f}"
    )
    print()
    print("Before the rounds (excluded from img/s): compile and first-call seconds; forward GFLOP per call")
    print(
        "| size | batch | jax compile train s | jax compile fwd s | jax 1st train s | torch 1st train s "
        "| jax fwd GFLOP (XLA) | jax train GFLOP (XLA) | torch fwd GFLOP (FlopCounterMode) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for (size, batch), n in nets.items():
        j, t = n["jax"], n["torch"]
        print(
            f"| {size} | {batch} | {j['compile_s']['train']:.1f} | {j['compile_s']['forward']:.1f} "
            f"| {first[(size, batch), 'jax', 'train']:.2f} | {first[(size, batch), 'torch', 'train']:.2f} "
            f"| {j['flops']['forward'] / 1e9:.3f} | {j['flops']['train'] / 1e9:.3f} "
            f"| {t['flops']['forward'] / 1e9:.3f} |"
        )
    print()
    print(f"img/s, median of {rounds} alternated rounds (train: one Adam step; forward: one network call)")
    print("| step | size | batch | jax img/s | torch img/s | jax/torch | jax % of roofline |")
    print("|---|---|---|---|---|---|---|")
    for s in STEPS:
        for (size, batch), n in nets.items():
            j, t = med[s, size, batch, "jax"], med[s, size, batch, "torch"]
            share = 100 * n["jax"]["flops"][s] * (j / batch) / 1e9 / roofline
            print(f"| {s} | {size} | {batch} | {j:.1f} | {t:.1f} | {j / t:.2f} | {share:.1f}% |")
    if samplers:
        print()
        print(
            f"Sampling img/s, median of {sample_rounds} alternated round(s), one call each: ddim = {ddim_steps} "
            f"network calls (eta 0); ancestral = all T = 1000 steps, timed over the last {chain_steps} and scaled by "
            f"1000/{chain_steps}; both libraries' first call excluded"
        )
        print("| sampler | size | batch | jax img/s | torch img/s | jax/torch | jax s/call | torch s/call |")
        print("|---|---|---|---|---|---|---|---|")
        for s in samplers:
            for size, batch in nets:
                j, t = med[s, size, batch, "jax"], med[s, size, batch, "torch"]
                print(
                    f"| {s} | {size} | {batch} | {j:.3g} | {t:.3g} | {j / t:.3g} | {batch / j:.3g} | {batch / t:.3g} |"
                )
    print(f"load average {load()} after")


if __name__ == "__main__":
    app.run(main)
