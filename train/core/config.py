"""Config as code: every module declares its keys once, as a `Schema` of `Key`s, next to its `get_config`.

A Key is a default, a one-line help, and what is accepted (choices, or a range such as '[0, 1)' or '>= 1').
`Schema.config(variant)` makes the ml_collections ConfigDict (named variants, big_vision style: 'smoke' is a
seconds-long run), `Schema.check` refuses the first value the declaration does not accept with one line
naming it (ConfigError; the command line prints it as `error: ...` and exits 2), and `--help` prints the
declaration. Users override any key from the shell with `--config.<key>=<value>`, or start from a file of
their own with `--config=path/to/file.py` (its `get_config()` returns the config).

The groups below are the keys the shared backbone reads; a module takes the groups it uses and no others,
so every key a module exposes is one it reads.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

import ml_collections

from train.core.errors import ConfigError

__all__ = [
    "Key",
    "Schema",
    "dotted",
    "from_dotted",
    "ConfigError",
    "LOOP",
    "NETWORK",
    "OPTIMIZER",
    "IMAGE_DATA",
    "AUGMENTATION",
    "IMAGE_MODEL",
    "IMAGE_RECIPE",
    "SMOKE_RECIPE",
    "SMOKE_NETWORKS",
    "latent_network_keys",
    "mnist_variant",
    "compute_dtype",
    "swept_values",
    "check_sweep",
    "sweep_replicas",
    "Replica",
    "SWEEP_BUILTINS",
]

_RANGE = re.compile(r"^\s*(?:(>=|>|<=|<)\s*(\S+)|([\[(])\s*(\S+)\s*,\s*(\S+)\s*([\])]))\s*$")


@dataclasses.dataclass(frozen=True)
class Key:
    """One config key: its default (which fixes its type), a one-line help, and the values it accepts.

    choices: the accepted values (strings, mostly); range: an interval such as '>= 1', '> 0', '[0, 1)',
    '(0, 1]' for numbers, or for each element of a tuple; item: a tuple's element type when the default
    is empty; nonempty: a tuple needs at least one element.
    """

    default: Any
    help: str
    choices: tuple = ()
    range: str = ""
    item: type | None = None
    nonempty: bool = False

    def __post_init__(self):
        if self.range and not _RANGE.match(self.range):
            raise ValueError(f"Key range {self.range!r} is not of the form '>= a', '> a', '[a, b)', ...")

    @property
    def kind(self) -> type:
        d = self.default
        return tuple if isinstance(d, (tuple, list)) else type(d)

    @property
    def element(self) -> type:
        if self.item is not None:
            return self.item
        return type(self.default[0]) if self.default else str

    def accepted(self) -> str:
        """What the key accepts, in words: 'an integer >= 1', 'adam, adamw', ..."""
        if self.choices:
            return ", ".join(str(c) for c in self.choices)
        if self.kind is tuple:
            what = "a non-empty tuple" if self.nonempty else "a tuple"
            return f"{what} of {_words(self.element, self.range, plural=True)}"
        return _words(self.kind, self.range)

    def check(self, name: str, value) -> None:
        """ConfigError unless value is of the key's type and within its choices or range."""
        bad = ConfigError(f"config.{name}={value!r} is not accepted; accepted: {self.accepted()}")
        if self.choices:
            if value not in self.choices or type(value) is bool and not all(isinstance(c, bool) for c in self.choices):
                raise bad
            return
        if self.kind is tuple:
            if not isinstance(value, (tuple, list)) or (self.nonempty and not value):
                raise bad
            if not all(_fits(self.element, self.range, v) for v in value):
                raise bad
        elif not _fits(self.kind, self.range, value):
            raise bad


def _fits(kind: type, interval: str, v) -> bool:
    if kind is bool:
        return isinstance(v, bool)
    if kind is str:
        return isinstance(v, str)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    if kind is int and not isinstance(v, int):
        return False
    if not math.isfinite(v):
        return False
    return _in_range(interval, v)


def _in_range(interval: str, v) -> bool:
    if not interval:
        return True
    m = _RANGE.match(interval)
    op, bound, left, low, high, right = m.groups()
    if op:
        b = float(bound)
        return {">=": v >= b, ">": v > b, "<=": v <= b, "<": v < b}[op]
    lo, hi = float(low), float(high)
    return (v >= lo if left == "[" else v > lo) and (v <= hi if right == "]" else v < hi)


def _words(kind: type, interval: str, plural: bool = False) -> str:
    noun = {bool: "True or False", int: "integer", float: "finite number", str: "string"}.get(kind, kind.__name__)
    if kind is bool:
        return noun
    if plural:
        noun += "s"
    elif kind is not bool:
        noun = ("an " if noun[0] in "aeiou" else "a ") + noun
    if not interval:
        return noun
    return f"{noun} {interval}" if interval[0] in "<>" else f"{noun} in {interval}"


def dotted(config, prefix: str = "") -> dict[str, Any]:
    """A (nested) ConfigDict or dict as {dotted name: value}."""
    out = {}
    for k, v in config.items():
        if isinstance(v, (ml_collections.ConfigDict, dict)):
            out.update(dotted(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def from_dotted(values: dict[str, Any]) -> ml_collections.ConfigDict:
    """{dotted name: value} as a nested ConfigDict, lists as tuples."""
    c = ml_collections.ConfigDict()
    for name, value in values.items():
        *parents, leaf = name.split(".")
        node = c
        for p in parents:
            if p not in node:
                node[p] = ml_collections.ConfigDict()
            node = node[p]
        node[leaf] = tuple(value) if isinstance(value, list) else value
    return c


class Schema:
    """A module's config keys ({dotted name: Key}), declared once, with its named variants.

    keys: the groups it takes and its own keys, merged in order; defaults: new defaults of keys of those
    groups; variants: {name: {dotted name: value}} on top of the defaults (e.g. 'smoke', a seconds-long run);
    checks: functions of a config that raise ConfigError where keys that each fit do not fit together.
    """

    def __init__(
        self,
        *groups: dict[str, Key],
        defaults: dict | None = None,
        variants: dict | None = None,
        checks: tuple[Callable, ...] = (),
    ):
        keys: dict[str, Key] = {}
        for group in groups:
            keys.update(group)
        for name, value in (defaults or {}).items():
            keys[name] = dataclasses.replace(keys[name], default=value)  # KeyError: a default of no declared key
        self.keys = keys
        self.variants = dict(variants or {})
        self.checks = tuple(checks)
        for variant, values in self.variants.items():
            unknown = sorted(set(values) - set(keys))
            if unknown:
                raise KeyError(f"variant {variant!r} sets undeclared keys {unknown}")

    def config(self, variant: str | None = None) -> ml_collections.ConfigDict:
        """The default config, or a named variant of it."""
        values = {name: key.default for name, key in self.keys.items()}
        if variant:
            if variant not in self.variants:
                accepted = ", ".join(repr(v) for v in self.variants) or "none"
                raise ConfigError(f"config variant {variant!r} is not defined; accepted: {accepted}")
            values.update(self.variants[variant])
        return from_dotted(values)

    def complete(self, config) -> ml_collections.ConfigDict:
        """A user's config (from --config=file.py) with each missing key at its default; unknown keys refused."""
        self._refuse_unknown(config)
        full = self.config()
        for name, value in dotted(config).items():
            if isinstance(value, bool) and self.keys[name].kind in (int, float):
                self.keys[name].check(name, value)  # refused here: the ConfigDict would make True 1.0
            *parents, leaf = name.split(".")
            node = full
            for p in parents:
                node = node[p]
            with node.ignore_type():
                node[leaf] = value
        return full

    def _refuse_unknown(self, config) -> None:
        for name in dotted(config):
            if name not in self.keys and name.startswith("sweep."):
                sweepable = ", ".join(f"config.{k}" for k in self.keys if k.startswith("sweep."))
                raise ConfigError(f"config.{name} sweeps no key this module reads per replica; accepted: {sweepable}")
            if name not in self.keys:
                raise ConfigError(
                    f"config.{name} is not a key of this module's config; accepted: the keys --help lists"
                )

    def check(self, config) -> None:
        """ConfigError naming the first key whose value the declaration does not accept (or that is missing
        or unknown); the values of a sweep over a float key (config.sweep.<key>) must each fit that key."""
        self._refuse_unknown(config)
        flat = dotted(config)
        for name, key in self.keys.items():
            if name not in flat:
                raise ConfigError(f"config.{name} is missing; accepted: a config with every key --help lists")
            key.check(name, flat[name])
            swept = name.split(".", 1)[1] if name.startswith("sweep.") else None
            if swept and swept in self.keys and swept not in SWEEP_BUILTINS:
                values = flat[name]
                if not all(_fits(float, self.keys[swept].range, v) for v in values):
                    raise ConfigError(
                        f"config.{name}={tuple(values)} is not accepted; accepted: a tuple of "
                        f"{_words(float, self.keys[swept].range, plural=True)} (one per replica)"
                    )
        check_sweep(config)
        for check in self.checks:
            check(config)

    def help_lines(self) -> list[str]:
        """One line per key: name, default, what it accepts, help."""
        rows = [(name, _show(key.default), key.accepted(), key.help) for name, key in self.keys.items()]
        w0 = max(len(r[0]) for r in rows)
        w1 = min(max(len(r[1]) for r in rows), 24)
        return [f"  {n:<{w0}}  {d:<{w1}}  {h} [{a}]" for n, d, a, h in rows]


def _show(v) -> str:
    return repr(v) if isinstance(v, str) else str(v)


# ----------------------------------------------------------------------------- the backbone's keys

SEED_RANGE = "[0, 4294967295]"  # 32-bit seeds: what jax.random.key, NumPy and grain all take

LOOP = {
    "seed": Key(0, "seed of the initial parameters, the data order and every draw", range=SEED_RANGE),
    "num_steps": Key(1000, "train steps of the run", range=">= 1"),
    "batch_size": Key(128, "global batch, split over every device of every process", range=">= 1"),
    "log_every": Key(50, "steps between records of metrics.jsonl", range=">= 1"),
    "checkpoint_every": Key(500, "steps between checkpoints", range=">= 1"),
    "eval_every": Key(0, "steps between evaluations (0: at the end only)", range=">= 0"),
    "keep_checkpoints": Key(3, "checkpoints kept in workdir/checkpoints", range=">= 1"),
    "progress": Key(True, "tqdm progress bar on stderr"),
    "nan_policy": Key(
        "stop",
        "a non-finite loss or gradient stops the run, or skips the step (stopping past 10% skipped)",
        choices=("stop", "skip"),
    ),
    "deterministic": Key(
        False,
        "GPU: XLA's deterministic scatter-adds and reductions, so a resumed run is bit-identical there (slower; CPU "
        "and TPU runs are deterministic already)",
    ),
    # A vmapped sweep trains K replicas in one compiled program: replica i has seed seeds[i] and learning rate
    # learning_rates[i]; a module adds `sweep.<key>` for each float key its step reads per replica.
    "sweep.seeds": Key((), "a sweep: one seed per replica", item=int, range=SEED_RANGE),
    "sweep.learning_rates": Key((), "a sweep: one learning rate per replica", item=float, range="> 0"),
}

NETWORK = {
    "dtype": Key(
        "float32",
        "compute dtype of the networks (parameters and optimizer stay float32)",
        choices=("float32", "bfloat16"),
    )
}

OPTIMIZER = {
    "optimizer": Key("adam", "Adam, or AdamW with weight_decay", choices=("adam", "adamw")),
    "learning_rate": Key(2e-4, "peak learning rate", range="> 0"),
    "lr_schedule": Key(
        "constant",
        "after warmup: constant, or cosine/linear decay to min_lr_ratio",
        choices=("constant", "cosine", "linear"),
    ),
    "warmup_steps": Key(100, "steps of linear warmup from 0", range=">= 0"),
    "min_lr_ratio": Key(0.0, "floor of the cosine/linear decay, relative to learning_rate", range="[0, 1]"),
    "b1": Key(0.9, "Adam's first-moment decay", range="[0, 1)"),
    "b2": Key(0.999, "Adam's second-moment decay", range="[0, 1)"),
    "weight_decay": Key(0.0, "AdamW's decoupled weight decay", range=">= 0"),
    "grad_clip": Key(1.0, "global-norm gradient clipping (0: off)", range=">= 0"),
    "ema_decay": Key(0.999, "EMA of the parameters used for sampling and evaluation (0: off)", range="[0, 1)"),
}

IMAGE_DATA = {
    "dataset": Key(
        "digits", "'digits' (embedded), 'npz:PATH', 'images:DIR' (a folder of image files), or a TFDS image dataset"
    ),
    "data_dir": Key("", "TFDS data dir, and the decoded images:DIR caches ('': ~/tensorflow_datasets)"),
    "download": Key(True, "download and prepare a TFDS dataset missing from data_dir (False: offline machines)"),
    "image_size": Key(
        0, "resize (shorter side, antialiased) and centre-crop every image to this size (0: as stored)", range=">= 0"
    ),
    "channels": Key(0, "images:DIR: 1 (grey) or 3 (colour); 0: what most of the files are", choices=(0, 1, 3)),
    "skip_bad_images": Key(False, "images:DIR: skip (and count) files that cannot be decoded instead of stopping"),
}

# Training-time augmentation of the image models that train by gradient steps.
AUGMENTATION = {"random_flip": Key(False, "flip each training image horizontally with probability 1/2")}
# The groups every image model trained by the loop takes (train.autoencoder, vae, gan, ddpm).
IMAGE_MODEL = (LOOP, NETWORK, OPTIMIZER, IMAGE_DATA, AUGMENTATION)


# The recipe the image models start from: Adam, a cosine decay to 5% after 100 warmup steps, an EMA of the
# weights; their 'smoke' variants train it at constant rate with the smallest networks.
IMAGE_RECIPE = dict(
    batch_size=128,
    learning_rate=1e-3,
    lr_schedule="cosine",
    warmup_steps=100,
    min_lr_ratio=0.05,
    ema_decay=0.99,
    log_every=100,
)
SMOKE_RECIPE = {"warmup_steps": 1, "lr_schedule": "constant"}
SMOKE_NETWORKS = {"model.hidden": (16,), "model.channels": (4, 8)}


def mnist_variant(arch: str, latent_dim: int) -> dict:
    """The 'mnist' variant of a latent-variable image model: 28x28 digits, conv networks, 20k steps."""
    return {
        "dataset": "mnist",
        "model.arch": arch,
        "model.latent_dim": latent_dim,
        "model.channels": (32, 64),
        "num_steps": 20_000,
        "checkpoint_every": 5000,
    }


def latent_network_keys(archs: tuple, nets: str, latent: str, latent_dim: int, hidden: tuple, mlp: str) -> dict:
    """The `model` block of a latent-variable image model: MLP or conv networks of `nets`, and a `latent`."""
    return {
        "model.arch": Key(archs[0], f"{nets} networks", choices=archs),
        "model.latent_dim": Key(latent_dim, f"dimension of {latent}", range=">= 1"),
        "model.hidden": Key(hidden, f"MLP widths ({mlp})", range=">= 1", nonempty=True),
        "model.channels": Key((32, 64), "conv widths per resolution level", range=">= 1", nonempty=True),
    }


def compute_dtype(config):
    """The jnp dtype networks compute in (config.dtype); parameters are always float32."""
    import jax.numpy as jnp

    return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[config.get("dtype", "float32")]


# ----------------------------------------------------------------------------- sweeps

SWEEP_BUILTINS = ("seeds", "learning_rates")


def swept_values(config) -> dict[str, tuple]:
    """The swept float keys of config.sweep other than seeds and learning_rates: {key: values}, empty ones left out."""
    return {k: tuple(v) for k, v in config.sweep.items() if k not in SWEEP_BUILTINS and tuple(v)}


def check_sweep(config) -> None:
    """ConfigError unless the non-empty sweep lists have one value per replica."""
    if "sweep" not in config:
        return
    lists = {f"config.sweep.{k}": tuple(v) for k, v in config.sweep.items() if tuple(v)}
    if len({len(v) for v in lists.values()}) > 1:
        raise ConfigError(
            f"{' and '.join(f'{k}={v}' for k, v in lists.items())} must have the same length "
            f"(one value per replica); leave the others empty"
        )


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
    return [
        Replica(
            seeds[i] if seeds else config.seed,
            float(lrs[i]) if lrs else config.learning_rate,
            {key: float(v[i]) for key, v in values.items()},
        )
        for i in range(k)
    ]
