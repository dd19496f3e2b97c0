"""The one training loop every `python -m train.<model>` runs.

A model hands over a `Task`: how to initialise its parameters, its loss (or a whole custom
train step, e.g. the GAN's alternating updates), and an evaluation that returns figures and
images. The loop owns everything else: the data stream, sharding, the jitted step, the
optimizer and EMA, checkpoints and resume, logs, the progress bar and the final summary.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from train.core import (
    checkpoint,
    config as config_lib,
    parallel,
    state as state_lib,
    sweep as sweep_lib,
    workdir as workdir_lib,
)
from train.core.errors import ConfigError, NonFiniteError
from train.core.writers import MetricsWriter

# nan_policy='skip' stops a run once more than this share of its steps (counted after the first 10) were skipped.
MAX_SKIPPED_SHARE, MIN_STEPS_FOR_SHARE = 0.1, 10

LossFn = Callable[[Any, dict, jax.Array], tuple[jax.Array, dict]]
StepFn = Callable[[state_lib.TrainState, dict, jax.Array], tuple[state_lib.TrainState, dict]]


@dataclasses.dataclass
class Task:
    """What a model contributes to the shared loop.

    init_params(key) -> params
    loss_fn(params, batch, key, **hparams) -> (scalar loss, dict of scalar metrics); batch = {'image': uint8,
      'label': int}; hparams: a sweep's per-replica values of the keys in `hparams` (traced float32 scalars),
      absent outside such a sweep, so each keyword's default is the config's value
    train_step(state, batch, key) -> (state, metrics), replacing the default gradient step built from loss_fn;
      it applies state.lr_scale (a learning-rate sweep) to its updates and reads state.hparams
    hparams: the float config keys the loss (or train_step) reads per replica, so `config.sweep.<key>` may vary
      them in a vmapped sweep (e.g. ('beta',)); the module's get_config declares each as `sweep.<key> = ()`
    optimizer: an optax transformation replacing the config's
    evaluate(state, step) -> (dict of scalars, dict of name -> uint8 [H,W,C] image), run on the host
    batches(global_batch_size, seed) -> an endless iterator of this process's rows of each global batch, with
      grain's get_state/set_state (its position, checkpointed with the state): an image model's
      train.data.images.training_batches, word2vec's TrainingExamples.batches; the loop needs it to train
    export(state, workdir): write the model's deliverables (e.g. vectors.txt) at the end, lead process only
    init_aux() -> the initial state.aux, which train_step reads and replaces (e.g. the DDPM's loss history)
    spec: what rebuilds the model without its data (an image model's image shape and number of classes), a dict
      of JSON values recorded in workdir/spec.json, where train.data.image_runs.load reads it
    """

    name: str
    init_params: Callable[[jax.Array], Any]
    loss_fn: LossFn | None = None
    train_step: StepFn | None = None
    hparams: tuple[str, ...] = ()
    optimizer: optax.GradientTransformation | None = None
    evaluate: Callable[[state_lib.TrainState, int], tuple[dict, dict]] | None = None
    batches: Callable[[int, int], Any] | None = None
    export: Callable[[state_lib.TrainState, str], None] | None = None
    init_aux: Callable[[], Any] | None = None
    spec: dict | None = None


def gradient_step(loss_fn: LossFn) -> StepFn:
    """One optimizer step on the gradient of loss_fn; reports the loss, grad norm and the loss's metrics."""

    def step(state, batch, key):
        hparams = state.hparams or {}  # a sweep's per-replica values of swept config keys
        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, key, **hparams)
        return state.apply_gradients(grads=grads), {"loss": loss, "grad_norm": optax.global_norm(grads), **metrics}

    return step


def step_key(seed: int, step) -> jax.Array:
    """The randomness of a step, a function of the seed and the step number only."""
    return jax.random.fold_in(jax.random.key(seed), step)


class Single:
    """One model's run, what the loop asks of it: its state, jitted step, data, logs, evaluation and export. A
    sweep (train.core.sweep.Sweep) wraps one to run many replicas as one program."""

    data_axis = 0  # the batch axis of the data stream

    def __init__(self, task: Task, config):
        self.task, self.config = task, config
        self.step_fn = task.train_step or gradient_step(task.loss_fn)
        self.tx = task.optimizer or state_lib.make_optimizer(config)
        self.init = jax.jit(task.init_params)  # one compiled program, not one per initialiser

    def new_state(self, seed: int, lr_scale=None, hparams=None) -> state_lib.TrainState:
        key = jax.random.fold_in(jax.random.key(seed), -1 & 0x7FFFFFFF)  # distinct from every step key
        aux = self.task.init_aux() if self.task.init_aux else None
        state = state_lib.create_train_state(self.init(key), self.tx, self.config.get("ema_decay", 0.0), aux)
        if lr_scale is not None:
            state = state.replace(lr_scale=jnp.float32(lr_scale))
        return state.replace(hparams={k: jnp.float32(v) for k, v in hparams.items()}) if hparams else state

    def step(self, state, batch, seed):
        """(state, metrics, finite): `finite` is False when any metric is NaN or Inf; with nan_policy='skip' the
        state then keeps its previous values (only the step counter advances)."""
        new, metrics = self.step_fn(state, batch, step_key(seed, state.step))
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves(metrics)]))
        if self.config.get("nan_policy", "stop") == "skip":
            new = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, state).replace(step=new.step)
        return new, metrics, finite

    def jit_step(self, step, mesh):
        repl = parallel.replicated(mesh)
        return jax.jit(step, donate_argnums=0, out_shardings=(repl, repl, repl))

    def init_state(self, mesh):
        return parallel.replicate(self.new_state(self.config.seed), mesh)

    def compile_step(self, mesh):
        return self.jit_step(lambda state, batch: self.step(state, batch, self.config.seed), mesh)

    def batches(self):
        return self.task.batches(self.config.batch_size, self.config.seed)

    def writers(self, workdir: str, lead: bool, start: int) -> list[MetricsWriter]:
        # Records after the checkpoint resumed from (or all, from scratch) came from a run that died: dropped.
        return [MetricsWriter(workdir, enabled=lead, keep_until=start)]

    def log(self, step: int, figures: dict, writers) -> dict:
        writers[0].scalars(step, figures)
        return figures

    def evaluate(self, state, step: int, writers) -> dict:
        scalars, images = self.task.evaluate(state, step)
        scalars = {f"eval/{k}": v for k, v in scalars.items()}
        writers[0].scalars(step, scalars)
        for name, image in images.items():
            writers[0].image(step, name, image)
        return scalars

    def export(self, state, workdir: str, writers) -> None:
        self.task.export(state, workdir)


def run_of(task: Task, config, replicas=()) -> Single | sweep_lib.Sweep:
    """The run of task by config: a Single, or for a sweep (`replicas`) the Sweep that wraps it."""
    single = Single(task, config)
    return sweep_lib.Sweep(single, list(replicas)) if replicas else single


def compile_step(task: Task, config, mesh, replicas=()):
    """The jitted step driver: (state, global batch) -> (state, metrics, finite), state replicated, batch sharded
    (Single.step); with `replicas` (a sweep), state and batch carry a leading replica axis, vmapped over."""
    return run_of(task, config, replicas).compile_step(mesh)


def init_state(task: Task, config, mesh, replicas=()) -> state_lib.TrainState:
    """The initial state; for a sweep, the replicas' states stacked on a leading axis."""
    return run_of(task, config, replicas).init_state(mesh)


def abstract_state(task: Task, config, mesh) -> state_lib.TrainState:
    """The shapes, dtypes and (replicated) shardings of a single run's init_state, traced and not computed: the
    target a reader restores a checkpoint into without compiling the initialiser."""
    tx = task.optimizer or state_lib.make_optimizer(config)
    init = lambda: state_lib.create_train_state(
        task.init_params(jax.random.key(0)),
        tx,
        config.get("ema_decay", 0.0),
        task.init_aux() if task.init_aux else None,
    )
    repl = parallel.replicated(mesh)
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=repl), jax.eval_shape(init))


def _mean_metrics(pending: list[dict]) -> dict:
    """Mean over steps; per-replica arrays for a sweep, floats otherwise."""
    host = jax.device_get(pending)
    means = {k: np.mean([m[k] for m in host], axis=0) for k in host[0]}
    return {k: float(v) if np.ndim(v) == 0 else v for k, v in means.items()}


class _Interrupts:
    """SIGINT/SIGTERM set a flag; the loop saves a checkpoint at the next step boundary and exits."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _first_non_finite(pending: list[tuple[int, dict, Any]]):
    flags = jax.device_get([f for _, _, f in pending])
    for (s, metrics, _), ok in zip(pending, flags):
        if not ok:
            bad = {k: float(v) for k, v in jax.device_get(metrics).items() if not np.all(np.isfinite(v))}
            return s, bad
    return None


def trim_host_heap() -> None:
    """Hand the heap's free pages back to the system (glibc's malloc_trim; nothing elsewhere): compiling a step
    leaves ~100 MB freed but held by the allocator, which would otherwise count in the run's peak memory."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def train(config, workdir: str, task: Task, data: dict | None = None) -> dict:
    """Train to config.num_steps, resuming from the latest checkpoint in workdir; return the last figures.

    data: the fingerprint of the training data (ImageData.fingerprint, a corpus and its vocabulary); a resume
    on other data than the checkpoints were trained on is refused."""
    mesh = parallel.data_mesh()
    if config.batch_size % jax.device_count():
        raise ConfigError(
            f"config.batch_size={config.batch_size} must be divisible by the device count {jax.device_count()}"
        )
    run = run_of(task, config, config_lib.sweep_replicas(config))  # a sweep refuses keys the task does not sweep
    lead = jax.process_index() == 0
    workdir = os.path.abspath(workdir)
    workdir_lib.make_workdir(workdir)
    with workdir_lib.locked(workdir, lead):
        workdir_lib.refuse_other_module(workdir, f"train.{task.name}")
        if data is not None:
            workdir_lib.refuse_changed_data(workdir, data, "checkpoints")
        if lead:
            workdir_lib.claim(workdir, f"train.{task.name}")
        if data is not None and lead:
            workdir_lib.record_data(workdir, data)
        if task.spec is not None and lead:
            workdir_lib.record_spec(workdir, task.spec)
        return _train_locked(config, workdir, run, mesh, lead)


def _train_locked(config, workdir, run, mesh, lead) -> dict:
    task = run.task
    if task.batches is None:
        raise ValueError(f"task {task.name!r} has no batches to train on (Task.batches)")
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), config.keep_checkpoints)
    # Batches reach the devices a step ahead of use; checkpoints record the position of the steps taken.
    data_iter = parallel.DevicePrefetch(run.batches(), mesh, axis=run.data_axis)
    trim_host_heap()  # what reading the data freed (word2vec's counting), before the tables take their place
    state = jax.block_until_ready(run.init_state(mesh))
    trim_host_heap()  # what compiling the initialisation freed
    try:
        restored, start = ckpt.restore_latest(state, data_iter)
    except BaseException:
        ckpt.close()
        raise
    if restored is None:
        start = 0
    else:
        # The config's sweep values, not the checkpoint's, as a single run's learning rate comes from the config.
        state = restored.replace(lr_scale=state.lr_scale, hparams=state.hparams)
        if lead:
            print(f"Resuming {task.name} from {workdir}/checkpoints at step {start}.", flush=True)
    if lead:
        workdir_lib.write_config(workdir, config)
    writers = run.writers(workdir, lead, start)
    steps = _Steps(run, ckpt, data_iter, writers, start, lead)
    try:
        state = steps.run(state, run.compile_step(mesh))
        if task.evaluate:
            steps.last.update(run.evaluate(state, config.num_steps, writers))
        if task.export and lead:
            run.export(state, workdir, writers)
    finally:
        steps.pbar.close()
        ckpt.close()
        for w in writers:
            w.close()
    if lead:
        steps.summary(workdir)
    return steps.last


class _Steps:
    """The steps of a run (a Single or a Sweep) from `start`: the step loop, its logs, checkpoints, interrupts and
    the summary."""

    def __init__(self, run, ckpt, data_iter, writers, start: int, lead: bool):
        self.run_, self.config, self.task, self.ckpt, self.data_iter = run, run.config, run.task, ckpt, data_iter
        self.writers, self.start = writers, start
        self.last, self.saved, self.skipped = {}, start, 0
        self.pending, self.timed_steps, self.t0, self.first_step_secs = [], 0, None, None
        self.pbar = tqdm(
            total=self.config.num_steps,
            initial=start,
            desc=self.task.name,
            unit="step",
            dynamic_ncols=True,
            disable=not (self.config.progress and lead),
        )

    def run(self, state, step):
        config, wait, t_start = self.config, parallel.wait_each_step(), time.perf_counter()
        queued = None
        with _Interrupts() as interrupts:
            for s in range(self.start + 1, config.num_steps + 1):
                state, metrics, finite = step(state, next(self.data_iter))
                if wait:
                    jax.block_until_ready(state)
                # at most one step queued behind the running one: the host still reads the next batch while the
                # device runs, but queued steps no longer hold a batch each until the next log (word2vec's
                # FastText: 40 MB a step, 400 MB at log_every 10)
                jax.block_until_ready(queued)
                queued = metrics
                self.pending.append((s, metrics, finite))
                if self.t0 is None:  # the first step carries compilation: time from its end
                    jax.block_until_ready(metrics)
                    self.t0 = time.perf_counter()
                    self.first_step_secs = self.t0 - t_start
                    trim_host_heap()  # the compiler's freed memory back to the system
                else:
                    self.timed_steps += 1
                stop = interrupts.signum  # read once: a signal arriving later is handled at the next step
                log_now = s % config.log_every == 0 or s == config.num_steps
                save_now = s % config.checkpoint_every == 0 or s == config.num_steps or stop
                if (log_now or save_now) and config.nan_policy == "stop":
                    self.stop_on_non_finite()
                if log_now:
                    self.log(s)
                if save_now:
                    self.ckpt.save(s, state, self.data_iter)
                    self.saved = s
                self.pbar.update(1)
                if stop:
                    self.pbar.close()
                    name = signal.Signals(stop).name
                    print(f"{name} at step {s}: checkpoint saved; run the same command to resume.", flush=True)
                    raise SystemExit(128 + stop)
                if self.task.evaluate and config.eval_every and s % config.eval_every == 0 and s != config.num_steps:
                    self.run_.evaluate(state, s, self.writers)
        self.pbar.close()
        return state

    def stop_on_non_finite(self) -> None:
        bad = _first_non_finite(self.pending)
        if bad:
            raise NonFiniteError(
                f"non-finite {', '.join(f'{k}={v}' for k, v in bad[1].items())} at step {bad[0]}; no "
                f"checkpoint was written after step {self.saved}. Lower config.learning_rate, check the data, "
                f"or set config.nan_policy=skip"
            )

    def log(self, s: int) -> None:
        """The means of the metrics since the last log, the speed and (once) the first step's seconds."""
        config, pending = self.config, self.pending
        flags = jax.device_get([f for _, _, f in pending])
        self.skipped += int(len(flags) - np.sum(flags))
        last = _mean_metrics([m for (_, m, _), ok in zip(pending, flags) if ok] or [pending[-1][1]])
        elapsed = time.perf_counter() - self.t0
        if self.timed_steps:
            last["examples_per_sec"] = self.timed_steps * config.batch_size / elapsed
        if self.first_step_secs is not None:  # compile + first step, reported once per process start
            last["first_step_secs"], self.first_step_secs = self.first_step_secs, None
        if config.nan_policy == "skip":
            last["skipped_steps"] = self.skipped
            ran = s - self.start
            if ran >= MIN_STEPS_FOR_SHARE and self.skipped > MAX_SKIPPED_SHARE * ran:
                raise NonFiniteError(
                    f"{self.skipped} of the {ran} steps since step {self.start} were non-finite and skipped, more "
                    f"than {MAX_SKIPPED_SHARE:.0%}; stopping (no checkpoint after step {self.saved}). Lower "
                    f"config.learning_rate or check the data"
                )
        last = self.run_.log(s, last, self.writers)  # a sweep's: each replica's in its log, the means in the run's
        self.pbar.set_postfix(loss=f"{last['loss']:.4f}", ex_s=f"{last.get('examples_per_sec', 0):.0f}")
        self.last, self.pending, self.timed_steps, self.t0 = last, [], 0, time.perf_counter()

    def summary(self, workdir: str) -> None:
        config, skipped = self.config, self.skipped
        samples = os.path.join(workdir, "samples")
        latest = sorted(os.listdir(samples))[-1:] if os.path.isdir(samples) else []
        warning = (
            (f"  warning: {skipped} of the {config.num_steps - self.start} steps were non-finite and skipped",)
            if config.nan_policy == "skip" and skipped
            else ()
        )
        workdir_lib.print_summary(
            f"{self.task.name}: finished at step {config.num_steps}; workdir {workdir}",
            self.last,
            (*warning, *(f"  samples in {samples}/ (latest: {name})" for name in latest)),
        )
