"""The one training loop every `python -m train.<model>` runs.

A model hands over a `Task`: how to initialise its parameters, its loss (or a whole custom
train step, e.g. the GAN's alternating updates), and an evaluation that returns figures and
images. The loop owns everything else: the data stream, sharding, the jitted step, the
optimizer and EMA, checkpoints and resume, logs, the progress bar and the final summary.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Callable

import jax
import numpy as np
import optax
from tqdm.auto import tqdm

from train import checkpoint, data, parallel, state as state_lib
from train.config import ConfigError
from train.metrics import MetricsWriter

LossFn = Callable[[Any, dict, jax.Array], tuple[jax.Array, dict]]
StepFn = Callable[[state_lib.TrainState, dict, jax.Array], tuple[state_lib.TrainState, dict]]


@dataclasses.dataclass
class Task:
    """What a model contributes to the shared loop.

    init_params(key) -> params
    loss_fn(params, batch, key) -> (scalar loss, dict of scalar metrics); batch = {'image': uint8, 'label': int}
    train_step(state, batch, key) -> (state, metrics), replacing the default gradient step built from loss_fn
    optimizer: an optax transformation replacing the config's
    evaluate(state, step) -> (dict of scalars, dict of name -> uint8 [H,W,C] image), run on the host
    """
    name: str
    init_params: Callable[[jax.Array], Any]
    loss_fn: LossFn | None = None
    train_step: StepFn | None = None
    optimizer: optax.GradientTransformation | None = None
    evaluate: Callable[[state_lib.TrainState, int], tuple[dict, dict]] | None = None
    train_source: Any = None


def gradient_step(loss_fn: LossFn) -> StepFn:
    """One optimizer step on the gradient of loss_fn; reports the loss, grad norm and the loss's metrics."""
    def step(state, batch, key):
        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, key)
        return state.apply_gradients(grads=grads), {"loss": loss, "grad_norm": optax.global_norm(grads), **metrics}
    return step


def step_key(seed: int, step) -> jax.Array:
    """The randomness of a step, a function of the seed and the step number only."""
    return jax.random.fold_in(jax.random.key(seed), step)


def compile_step(task: Task, config, mesh):
    """The jitted step driver: (state, global batch) -> (state, metrics), state replicated, batch sharded."""
    step_fn = task.train_step or gradient_step(task.loss_fn)

    def step(state, batch):
        return step_fn(state, batch, step_key(config.seed, state.step))

    repl = parallel.replicated(mesh)
    return jax.jit(step, donate_argnums=0, out_shardings=(repl, repl))


def init_state(task: Task, config, mesh) -> state_lib.TrainState:
    key = jax.random.fold_in(jax.random.key(config.seed), -1 & 0x7FFFFFFF)  # distinct from every step key
    params = task.init_params(key)
    tx = task.optimizer or state_lib.make_optimizer(config)
    return parallel.replicate(state_lib.create_train_state(params, tx, config.ema_decay), mesh)


def _mean_metrics(pending: list[dict]) -> dict:
    host = jax.device_get(pending)
    return {k: float(np.mean([m[k] for m in host])) for k in host[0]}


def train(config, workdir: str, task: Task) -> dict:
    """Train to config.num_steps, resuming from the latest checkpoint in workdir; return the last figures."""
    mesh = parallel.data_mesh()
    if config.batch_size % jax.device_count():
        raise ConfigError(f"config.batch_size={config.batch_size} must be divisible by the device count "
                          f"{jax.device_count()}")
    lead = jax.process_index() == 0
    os.makedirs(workdir, exist_ok=True)
    if lead:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")

    writer = MetricsWriter(workdir, enabled=lead)
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), config.keep_checkpoints)
    data_iter = data.batches(task.train_source, config.batch_size, config.seed)
    state = init_state(task, config, mesh)
    start = 0
    latest = ckpt.latest_step()
    if latest is not None:
        state = ckpt.restore(latest, state, data_iter)
        start = int(jax.device_get(state.step))
        if lead:
            print(f"Resuming {task.name} from {workdir}/checkpoints at step {start}.", flush=True)
    step = compile_step(task, config, mesh)

    last = {}
    pbar = tqdm(total=config.num_steps, initial=start, desc=task.name, unit="step", dynamic_ncols=True,
                disable=not (config.progress and lead))
    try:
        pending, timed_steps, t0, t_start, first_step_secs = [], 0, None, time.perf_counter(), None
        for s in range(start + 1, config.num_steps + 1):
            batch = parallel.shard_batch(next(data_iter), mesh)
            state, metrics = step(state, batch)
            pending.append(metrics)
            if t0 is None:  # the first step carries compilation: time from its end
                jax.block_until_ready(metrics)
                t0 = time.perf_counter()
                first_step_secs = t0 - t_start
            else:
                timed_steps += 1
            if s % config.log_every == 0 or s == config.num_steps:
                last = _mean_metrics(pending)
                elapsed = time.perf_counter() - t0
                if timed_steps:
                    last["examples_per_sec"] = timed_steps * config.batch_size / elapsed
                if first_step_secs is not None:  # compile + first step, reported once per process start
                    last["first_step_secs"], first_step_secs = first_step_secs, None
                writer.scalars(s, last)
                pbar.set_postfix(loss=f"{last['loss']:.4f}", ex_s=f"{last.get('examples_per_sec', 0):.0f}")
                pending, timed_steps, t0 = [], 0, time.perf_counter()
            if s % config.checkpoint_every == 0 or s == config.num_steps:
                ckpt.save(s, state, data_iter)
            if task.evaluate and config.eval_every and s % config.eval_every == 0 and s != config.num_steps:
                _evaluate(task, state, s, writer)
            pbar.update(1)
        pbar.close()
        if task.evaluate:
            last.update(_evaluate(task, state, config.num_steps, writer))
    finally:
        pbar.close()
        ckpt.close()
        writer.close()
    if lead:
        _print_summary(task.name, workdir, config.num_steps, last)
    return last


def _evaluate(task, state, step, writer) -> dict:
    scalars, images = task.evaluate(state, step)
    scalars = {f"eval/{k}": v for k, v in scalars.items()}
    writer.scalars(step, scalars)
    for name, image in images.items():
        writer.image(step, name, image)
    return scalars


def _print_summary(name, workdir, step, figures):
    lines = [f"{name}: finished at step {step}; workdir {workdir}"]
    lines += [f"  {k:<28} {v:.6g}" if isinstance(v, float) else f"  {k:<28} {v}" for k, v in sorted(figures.items())]
    samples = os.path.join(workdir, "samples")
    if os.path.isdir(samples) and os.listdir(samples):
        lines.append(f"  samples in {samples}/ (latest: {sorted(os.listdir(samples))[-1]})")
    print("\n".join(lines), flush=True)
