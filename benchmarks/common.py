"""Shared helpers of the speed scripts: timing, XLA FLOP counts, the machine's matmul roofline."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp


def time_fn(fn, *args, warmup: int = 1, min_time: float = 2.0, min_iters: int = 3) -> float:
    """Median-free simple timer: seconds per call after warmup, over at least min_time seconds."""
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    n, t0 = 0, time.perf_counter()
    while n < min_iters or time.perf_counter() - t0 < min_time:
        jax.block_until_ready(fn(*args))
        n += 1
    return (time.perf_counter() - t0) / n


def compiled_flops(compiled) -> float:
    """FLOPs of one call of a compiled program (`jax.jit(f).lower(...).compile()`) by XLA's cost analysis."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0]
    return float(cost.get("flops", 0.0)) if cost else 0.0


def flops_of(jitted, *args) -> float:
    """FLOPs of one call as counted by XLA's cost analysis of the compiled program."""
    return compiled_flops(jitted.lower(*args).compile())


def matmul_gflops(n: int = 2048, dtype=jnp.float32, min_time: float = 2.0) -> float:
    """Achieved GFLOP/s of an n x n x n matmul on the default device: the practical roofline."""
    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), dtype)
    f = jax.jit(lambda a, b: a @ b)
    return 2 * n**3 / time_fn(f, a, b, min_time=min_time) / 1e9


def device_line() -> str:
    d = jax.devices()[0]
    return f"{len(jax.devices())} x {d.device_kind} ({d.platform}), jax {jax.__version__}"


def train_step_speed(module, c, min_time: float = 5.0) -> tuple[float, float, tuple]:
    """(seconds per train step, XLA FLOPs per step, (dataset, trained state)) of an image module's config c, timed
    on one fixed batch after the compiling step."""
    from train.core import loop, parallel
    from train.data import images as data

    ds = data.load_images(c.dataset, c.data_dir or None)
    task = module.make_task(c, ds)
    mesh = parallel.data_mesh()
    state = loop.init_state(task, c, mesh)
    step = loop.compile_step(task, c, mesh)
    batch = parallel.shard_batch(next(data.batches(ds.train, c.batch_size, 0)), mesh)
    flops = flops_of(step, state, batch)
    holder = [state]

    def one_step():
        holder[0], metrics, _ = step(holder[0], batch)
        return metrics

    secs = time_fn(one_step, min_time=min_time)
    return secs, flops, (ds, holder[0])
