"""A sweep in one program: R replicas of a run (config.sweep.seeds, learning_rates, a model's float keys) vmapped
over a leading axis, each replica equal to the single run of its values.

A `Sweep` wraps the loop's single run (train.core.loop.Single) and answers what the loop asks of a run (its state,
jitted step, data, logs, evaluation and export) for all replicas at once; the loop itself has no branch for it.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from train.core import config as config_lib, parallel, workdir as workdir_lib
from train.core.errors import ConfigError
from train.core.writers import MetricsWriter

__all__ = ["Sweep", "StackedBatches", "replica"]


def replica(state, i: int):
    """Replica i of a stacked state."""
    return jax.tree.map(lambda x: x[i], state)


class StackedBatches:
    """A sweep's data: one stream per replica (each with its replica's seed), advanced in lockstep."""

    def __init__(self, iterators):
        self.iterators = iterators

    def __iter__(self):
        return self

    def __next__(self):
        batches = [next(it) for it in self.iterators]
        return jax.tree.map(lambda *xs: np.stack(xs), *batches)

    # grain's checkpoint handler takes JSON bytes from iterators that are not its own.
    def get_state(self) -> bytes:
        return json.dumps(self.iterators[0].get_state()).encode()  # lockstep: one position for all

    def set_state(self, state) -> None:
        state = json.loads(state) if isinstance(state, (bytes, str)) else state
        for it in self.iterators:
            it.set_state(state)

    def start_prefetch(self) -> None:
        for it in self.iterators:
            getattr(it, "start_prefetch", lambda: None)()


class Sweep:
    """The replicas of a single run (`single`: train.core.loop.Single), stacked on a leading axis."""

    data_axis = 1  # the batch axis of the stacked data stream

    def __init__(self, single, replicas: list[config_lib.Replica]):
        self.single, self.replicas = single, replicas
        self.task, self.config = single.task, single.config
        for key, values in config_lib.swept_values(self.config).items():
            if key not in self.task.hparams:
                accepted = config_lib.SWEEP_BUILTINS + tuple(self.task.hparams)
                raise ConfigError(
                    f"config.sweep.{key}={values}: {self.task.name} reads no config.{key} per replica; accepted: "
                    f"{', '.join(f'config.sweep.{k}' for k in accepted)}"
                )

    def init_state(self, mesh):
        c = self.config
        states = [self.single.new_state(r.seed, r.learning_rate / c.learning_rate, r.values) for r in self.replicas]
        return parallel.replicate(jax.tree.map(lambda *xs: jnp.stack(xs), *states), mesh)

    def compile_step(self, mesh):
        seeds = jnp.asarray([r.seed for r in self.replicas])

        def step(state, batch):
            new, metrics, finite = jax.vmap(self.single.step)(state, batch, seeds)
            return new, metrics, jnp.all(finite)

        return self.single.jit_step(step, mesh)

    def batches(self):
        return StackedBatches([self.task.batches(self.config.batch_size, r.seed) for r in self.replicas])

    def writers(self, workdir: str, lead: bool, start: int) -> list[MetricsWriter]:
        """The run's writer, then one result set per replica: <workdir>/replica_<i>/ with the config of the single
        run it equals and its own metrics."""
        writers = self.single.writers(workdir, lead, start)
        for i, r in enumerate(self.replicas):
            path = os.path.join(workdir, f"replica_{i}")
            if lead:
                os.makedirs(path, exist_ok=True)
                c = self.config.copy_and_resolve_references()
                c.seed, c.learning_rate = r.seed, r.learning_rate
                for key, value in r.values.items():
                    c[key] = value
                for key in c.sweep:
                    c.sweep[key] = ()
                workdir_lib.write_config(path, c)
            writers.append(MetricsWriter(path, enabled=lead, keep_until=start))
        return writers

    def log(self, step: int, figures: dict, writers) -> dict:
        """Each replica's figures into its own log, their means into the run's."""
        for i, w in enumerate(writers[1:]):
            w.scalars(step, {k: v[i] if np.ndim(v) else v for k, v in figures.items()})
        means = {k: float(np.mean(v)) for k, v in figures.items()}
        writers[0].scalars(step, means)
        return means

    def evaluate(self, state, step: int, writers) -> dict:
        """Each replica evaluated into its own result set; the means of their figures."""
        figures = [self.single.evaluate(replica(state, i), step, [w]) for i, w in enumerate(writers[1:])]
        return {k: float(np.mean([f[k] for f in figures])) for k in figures[0]}

    def export(self, state, workdir: str, writers) -> None:
        for i, w in enumerate(writers[1:]):
            self.single.export(replica(state, i), w.workdir, [w])
