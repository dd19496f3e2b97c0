"""Config as code: the keys every training module shares, and their checks.

Each `train/<model>.py` starts from `base_config()` and adds its own keys; users override any key
from the shell with `--config.<key>=<value>` (ml_collections), e.g. `--config.num_steps=2000`.
"""
from __future__ import annotations

import dataclasses
import math

import ml_collections

from train.core.errors import ConfigError


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.num_steps = 1000
    c.batch_size = 128          # global batch, split over every device of every process
    c.dataset = "digits"        # 'digits', 'npz:PATH' or a prepared TFDS image dataset name
    c.data_dir = ""             # TFDS data dir ('' = TFDS's default, ~/tensorflow_datasets)
    c.log_every = 50
    c.checkpoint_every = 500
    c.eval_every = 0            # 0: evaluate only at the end
    c.keep_checkpoints = 3
    c.progress = True           # tqdm progress bar on stderr
    c.nan_policy = "stop"       # a non-finite loss/gradient: 'stop' the run, or 'skip' the step
    c.dtype = "float32"         # compute dtype: 'bfloat16' for mixed precision (params/optimizer stay float32)
    # Train K replicas in one compiled program (the step vmapped over them): give K seeds and/or K
    # learning rates; replica i has seed seeds[i] and learning rate learning_rates[i]. A module adds
    # `sweep.<key> = ()` for each float key its train step can read per replica (train.vae: beta).
    c.sweep = ml_collections.ConfigDict({"seeds": (), "learning_rates": ()})

    c.optimizer = "adam"        # 'adam' | 'adamw'
    c.learning_rate = 2e-4
    c.lr_schedule = "constant"  # 'constant' | 'cosine' | 'linear', after warmup
    c.warmup_steps = 100
    c.min_lr_ratio = 0.0        # floor of the cosine/linear decay, relative to learning_rate
    c.b1 = 0.9
    c.b2 = 0.999
    c.weight_decay = 0.0        # used by 'adamw'
    c.grad_clip = 1.0           # global-norm clipping; 0 disables
    c.ema_decay = 0.999         # EMA of parameters used for sampling and evaluation; 0 disables
    return c


CHOICES = {"optimizer": ("adam", "adamw"), "lr_schedule": ("constant", "cosine", "linear"),
           "nan_policy": ("stop", "skip"), "dtype": ("float32", "bfloat16")}
# Modules with no network to run in bfloat16 (sparse word2vec tables, SVD, counts) accept only float32.
FLOAT32_ONLY = {"dtype": ("float32",)}


def compute_dtype(config):
    """The jnp dtype networks compute in (config.dtype); parameters are always float32."""
    import jax.numpy as jnp
    return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[config.get("dtype", "float32")]
POSITIVE_INTS = ("num_steps", "batch_size", "log_every", "checkpoint_every", "keep_checkpoints")
NON_NEGATIVE_INTS = ("eval_every", "warmup_steps", "seed")


def check(config, choices=None, positive_ints=(), non_negative_ints=()) -> None:
    """Raise ConfigError naming the first key whose value cannot be used."""
    for key, accepted in {**CHOICES, **(choices or {})}.items():
        found, v = _lookup(config, key)
        if found and v not in accepted:
            raise ConfigError(f"config.{key}={v!r} is not accepted; accepted: {', '.join(map(str, accepted))}")
    for key in POSITIVE_INTS + tuple(positive_ints):
        found, v = _lookup(config, key)
        if found and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ConfigError(f"config.{key}={v!r} must be a positive integer")
    for key in NON_NEGATIVE_INTS + tuple(non_negative_ints):
        found, v = _lookup(config, key)
        if found and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise ConfigError(f"config.{key}={v!r} must be a non-negative integer")
    if not config.learning_rate > 0:
        raise ConfigError(f"config.learning_rate={config.learning_rate!r} must be > 0")
    if not 0 <= config.ema_decay < 1:
        raise ConfigError(f"config.ema_decay={config.ema_decay!r} must be in [0, 1)")
    check_sweep(config)
    if config.grad_clip < 0:
        raise ConfigError(f"config.grad_clip={config.grad_clip!r} must be >= 0 (0 disables clipping)")


def _lookup(config, key: str):
    """(True, value) of a possibly dotted key ('diffusion.schedule'), (False, None) where it is absent."""
    node = config
    for part in key.split("."):
        if not hasattr(node, "keys") or part not in node:
            return False, None
        node = node[part]
    return True, node


SWEEP_BUILTINS = ("seeds", "learning_rates")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def swept_values(config) -> dict[str, tuple]:
    """The swept float keys of config.sweep other than seeds and learning_rates: {key: values}, empty ones left out."""
    return {k: tuple(v) for k, v in config.sweep.items() if k not in SWEEP_BUILTINS and tuple(v)}


def check_sweep(config) -> None:
    """ConfigError unless every sweep list is valid and the non-empty ones have one value per replica."""
    seeds, lrs = tuple(config.sweep.seeds), tuple(config.sweep.learning_rates)
    if not all(_is_number(v) and isinstance(v, int) and v >= 0 for v in seeds):
        raise ConfigError(f"config.sweep.seeds={seeds} must be non-negative integers")
    if not all(_is_number(v) and v > 0 for v in lrs):
        raise ConfigError(f"config.sweep.learning_rates={lrs} must be positive numbers")
    for key in config.sweep:
        if key in SWEEP_BUILTINS:
            continue
        values = tuple(config.sweep[key])
        if not isinstance(config.get(key), float):
            sweepable = [f"config.sweep.{k}" for k in config.sweep
                         if k in SWEEP_BUILTINS or isinstance(config.get(k), float)]
            raise ConfigError(f"config.sweep.{key}={values} sweeps no float key config.{key}; accepted: "
                              f"{', '.join(sweepable)}")
        if not all(_is_number(v) for v in values):
            raise ConfigError(f"config.sweep.{key}={values} must be finite numbers (one per replica)")
    lists = {f"config.sweep.{k}": tuple(v) for k, v in config.sweep.items() if tuple(v)}
    if len({len(v) for v in lists.values()}) > 1:
        raise ConfigError(f"{' and '.join(f'{k}={v}' for k, v in lists.items())} must have the same length "
                          f"(one value per replica); leave the others empty")


@dataclasses.dataclass(frozen=True)
class Replica:
    """One replica of a sweep: its seed, learning rate and values of the other swept keys ({'beta': 4.0})."""
    seed: int
    learning_rate: float
    values: dict


def sweep_replicas(config) -> list[Replica]:
    """Each replica of a sweep; empty when config.sweep is not used."""
    seeds, lrs = tuple(config.sweep.seeds), tuple(config.sweep.learning_rates)
    values = swept_values(config)
    k = max([len(seeds), len(lrs)] + [len(v) for v in values.values()])
    return [Replica(seeds[i] if seeds else config.seed, float(lrs[i]) if lrs else config.learning_rate,
                    {key: float(v[i]) for key, v in values.items()}) for i in range(k)]


def check_values(c, *, positive_ints=(), non_negative_ints=(), positive_floats=(), non_negative_floats=()) -> None:
    """ConfigError naming the first (possibly dotted) key whose value is of the wrong kind; a float key's
    bound holds for its sweep values (config.sweep.<key>) too."""
    check(c, positive_ints=positive_ints, non_negative_ints=non_negative_ints)
    for keys, ok, what in ((positive_floats, lambda v: v > 0, "> 0"), (non_negative_floats, lambda v: v >= 0, ">= 0")):
        good = lambda v: not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and ok(v)
        for key in keys:
            found, v = _lookup(c, key)
            if found and not good(v):
                raise ConfigError(f"config.{key}={v!r} must be a finite number {what}")
            found, values = _lookup(c, f"sweep.{key}")
            if found and not all(good(v) for v in values):
                raise ConfigError(f"config.sweep.{key}={tuple(values)} must be finite numbers {what}")


def check_positive_tuple(c, key: str) -> tuple[int, ...]:
    found, v = _lookup(c, key)
    try:
        t = tuple(v)
    except TypeError:
        t = None
    if not t or any(isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in t):
        raise ConfigError(f"config.{key}={v!r} must be a non-empty tuple of positive integers")
    return t
