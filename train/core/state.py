"""The one train state: Optax optimizer from config, EMA parameters for sampling."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

__all__ = ["TrainState", "learning_rate_schedule", "make_optimizer", "create_train_state"]


class TrainState(train_state.TrainState):
    """Flax's TrainState plus an exponential moving average of the parameters.

    `params` may hold several networks (e.g. {'generator': ..., 'discriminator': ...}); `tx` then is an
    optax.multi_transform and the EMA covers all of them.
    """

    ema_params: Any = None  # None when ema_decay is 0
    ema_decay: float = train_state.struct.field(pytree_node=False, default=0.0)
    # Multiplies every update: a sweep's replica i trains with learning rate lr_i = lr * lr_scale_i
    # (exact for Adam/AdamW, whose update is linear in the learning rate); None outside sweeps.
    lr_scale: Any = None
    # A sweep's per-replica values of its other swept config keys ({'beta': f32}), which the loop passes to
    # the task's loss as keyword arguments (a custom train_step reads them here); None outside such sweeps.
    hparams: Any = None
    # State a task's own train_step keeps beside the parameters and checkpoints with them (the DDPM's history of
    # L_vlb per timestep for importance sampling); None for the others.
    aux: Any = None

    @property
    def eval_params(self):
        """The parameters to sample and evaluate with: the EMA if kept, else the raw parameters."""
        return self.params if self.ema_params is None else self.ema_params

    def scale_updates(self, updates):
        """The optimizer's updates times lr_scale (a learning-rate sweep's replica); unchanged outside sweeps."""
        if self.lr_scale is None:
            return updates
        return jax.tree.map(lambda u: u * self.lr_scale, updates)

    def advance(self, *, params, **kwargs):
        """The next state: step + 1, the new params (and any other fields given), the EMA moved towards them."""
        new = self.replace(step=self.step + 1, params=params, **kwargs)
        if self.ema_params is None:
            return new
        d = self.ema_decay
        return new.replace(ema_params=jax.tree.map(lambda e, p: d * e + (1 - d) * p, self.ema_params, params))

    def apply_gradients(self, *, grads, **kwargs):
        """One optimizer step on grads (Flax's TrainState.apply_gradients, with the sweep's scale and the EMA)."""
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        params = optax.apply_updates(self.params, self.scale_updates(updates))
        return self.advance(params=params, opt_state=opt_state, **kwargs)


def learning_rate_schedule(config) -> optax.Schedule:
    """Linear warmup to config.learning_rate, then constant, cosine or linear decay to min_lr_ratio."""
    lr, warm = config.learning_rate, config.warmup_steps
    decay_steps = max(config.num_steps - warm, 1)
    end = lr * config.min_lr_ratio
    after = {
        "constant": optax.constant_schedule(lr),
        "cosine": optax.cosine_decay_schedule(lr, decay_steps, alpha=config.min_lr_ratio),
        "linear": optax.linear_schedule(lr, end, decay_steps),
    }[config.lr_schedule]
    if not warm:
        return after
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warm), after], [warm])


def make_optimizer(config, learning_rate=None) -> optax.GradientTransformation:
    """clip_by_global_norm -> Adam/AdamW with the config's schedule."""
    schedule = learning_rate if learning_rate is not None else learning_rate_schedule(config)
    if config.optimizer == "adamw":
        opt = optax.adamw(schedule, b1=config.b1, b2=config.b2, weight_decay=config.weight_decay)
    else:
        opt = optax.adam(schedule, b1=config.b1, b2=config.b2)
    return optax.chain(optax.clip_by_global_norm(config.grad_clip), opt) if config.grad_clip else opt


def create_train_state(params, tx, ema_decay: float, aux=None) -> TrainState:
    # The EMA starts as a copy: sharing buffers with params would break buffer donation in the step.
    ema = jax.tree.map(jnp.copy, params) if ema_decay else None
    return TrainState.create(apply_fn=None, params=params, tx=tx, ema_params=ema, ema_decay=ema_decay, aux=aux)
