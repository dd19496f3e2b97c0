"""train/core/config.py and cli.py: keys declared once (Key, Schema), checked against the declaration, named
variants, --config=FILE.py with overrides on top, and --help listing every key of every module."""

from __future__ import annotations

import importlib
import json
import os
import pathlib
import re
import subprocess
import sys

import ml_collections
import pytest

from train import registry
from train.core import cli, config as config_lib, entry as entry_lib
from train.core.config import Key, Schema
from train.core.errors import ConfigError

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODULES = registry.NAMES


def _run(*args, cwd=ROOT):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


# ----------------------------------------------------------------------------- Key and Schema


@pytest.mark.parametrize(
    "key, good, bad",
    [
        (Key(1, "", range=">= 1"), [1, 7], [0, -1, 1.0, True, "1"]),
        (Key(0.5, "", range="[0, 1)"), [0, 0.0, 0.999], [1.0, -0.1, float("nan"), float("inf"), True]),
        (Key(0.75, "", range="(0, 1]"), [1.0, 1e-9], [0.0, 1.5]),
        (Key(1.0, "", range="> 0"), [1e-30], [0.0, float("inf")]),
        (Key("adam", "", choices=("adam", "adamw")), ["adamw"], ["sgd", 0]),
        (Key(False, ""), [True, False], [0, "True"]),
        (Key((16, 32), "", range=">= 1", nonempty=True), [(1,), [3, 4]], [(), (0, 3), ("a",), 5]),
        (Key((), "", item=float, range="> 0"), [(), (0.1, 2)], [(0.0,), (float("nan"),)]),
    ],
)
def test_key_accepts_its_values_and_refuses_the_rest_naming_them(key, good, bad):
    for v in good:
        key.check("k", v)
    for v in bad:
        with pytest.raises(ConfigError, match=re.escape(f"config.k={v!r} is not accepted; accepted: ")):
            key.check("k", v)


def test_key_says_what_it_accepts():
    assert Key(1, "", range=">= 1").accepted() == "an integer >= 1"
    assert Key(0.5, "", range="[0, 1)").accepted() == "a finite number in [0, 1)"
    assert Key((1,), "", range=">= 1", nonempty=True).accepted() == "a non-empty tuple of integers >= 1"
    assert Key("a", "", choices=("a", "b")).accepted() == "a, b"
    with pytest.raises(ValueError, match="range"):
        Key(1, "", range="positive")


SCHEMA = Schema(
    {"n": Key(2, "n", range=">= 1"), "model.width": Key((8,), "w", range=">= 1", nonempty=True)},
    {"lr": Key(0.1, "lr", range="> 0"), "sweep.lr": Key((), "sweep", item=float)},
    {"sweep.seeds": Key((), "seeds", item=int, range=">= 0")},
    defaults={"n": 3},
    variants={"smoke": {"n": 1, "model.width": (2,)}},
)


def test_schema_makes_checks_and_completes_configs():
    c = SCHEMA.config()
    assert c.n == 3 and c.model.width == (8,) and c.lr == 0.1
    assert SCHEMA.config("smoke").n == 1 and SCHEMA.config("smoke").model.width == (2,)
    with pytest.raises(ConfigError, match="config variant 'smok' is not defined; accepted: 'smoke'"):
        SCHEMA.config("smok")
    SCHEMA.check(c)
    c.model.width = ()
    with pytest.raises(ConfigError, match=re.escape("config.model.width=() is not accepted")):
        SCHEMA.check(c)
    c = SCHEMA.config()
    c.sweep.lr = (0.2, -1.0)  # each swept value must fit the swept key's range
    with pytest.raises(ConfigError, match=re.escape("config.sweep.lr=(0.2, -1.0) is not accepted")):
        SCHEMA.check(c)
    partial = ml_collections.ConfigDict({"n": 5})
    with pytest.raises(ConfigError, match="config.model.width is missing"):
        SCHEMA.check(partial)
    full = SCHEMA.complete(partial)  # a user's file may leave keys out: they keep their defaults
    assert full.n == 5 and full.lr == 0.1 and full.model.width == (8,)
    with pytest.raises(ConfigError, match="config.m is not a key of this module's config"):
        SCHEMA.complete(ml_collections.ConfigDict({"m": 1}))
    with pytest.raises(
        ConfigError,
        match="config.sweep.n sweeps no key this module reads per replica; accepted: "
        "config.sweep.lr, config.sweep.seeds",
    ):
        SCHEMA.check(SCHEMA.complete(ml_collections.ConfigDict({"sweep": {"n": (1, 2)}})))
    with pytest.raises(KeyError):
        Schema({"n": Key(1, "")}, defaults={"m": 2})  # a default for an undeclared key is a bug


@pytest.mark.parametrize("name", MODULES)
def test_every_module_declares_default_and_named_configs_that_pass_its_checks(name):
    module = importlib.import_module(f"train.{name}")
    real = {"ddpm": {"cifar10", "mnist", "imagenet64"}, "vae": {"mnist"}, "gan": {"mnist"}, "autoencoder": {"mnist"}}
    real |= {"edm": {"cifar10", "mnist"}, "flow": {"cifar10", "mnist"}, "vqvae": {"mnist"}}
    assert set(module.SCHEMA.variants) == {"smoke"} | real.get(name, set())
    for variant in (None, *module.SCHEMA.variants):
        c = module.get_config(variant)
        module.ENTRY.schema.check(c)
        assert sorted(config_lib.dotted(c)) == sorted(module.SCHEMA.keys)
        assert all(k.help for k in module.SCHEMA.keys.values())


@pytest.mark.parametrize("name", MODULES)
def test_every_module_declares_its_contract_once(name):
    """train.<name> declares an Entry that cli, the readers and the tests read: its own name, file, docstring and
    schema; run() is the Entry's; the image models load and sample trained runs, the others do not."""
    module = importlib.import_module(f"train.{name}")
    e = module.ENTRY
    assert isinstance(e, entry_lib.Entry) and e is registry.entry(name)
    assert (e.name, e.file, e.doc, e.schema) == (name, module.__file__, module.__doc__, module.SCHEMA)
    assert module.run == e.run and module.get_config == e.schema.config
    image = name in registry.IMAGE_MODELS
    assert (e.load is not None, e.sample is not None, e.make_task is not None) == (
        image,
        image,
        image or name == "word2vec",
    )
    if image:
        assert module.load == e.load and module.sample_workdir == e.sample
    assert "cli.main(ENTRY)" in pathlib.Path(module.__file__).read_text()
    assert not any(k.startswith("check") and k.endswith("config") for k in vars(module)), "checks go in the Schema"


def test_every_entry_module_is_registered():
    found = {p.stem for p in (ROOT / "train").glob("*.py") if "cli.main(ENTRY)" in p.read_text()}
    assert found == set(registry.NAMES)
    with pytest.raises(KeyError, match="accepted: pca"):
        registry.entry("vq_vae")


def _sources(name: str) -> str:
    files = [
        ROOT / "train" / f"{name}.py",
        *sorted((ROOT / "train" / "core").glob("*.py")),
        *sorted((ROOT / "train" / "data").glob("*.py")),
        *sorted((ROOT / "train" / "evaluation").glob("*.py")),
    ]
    return "\n".join(f.read_text() for f in files)


@pytest.mark.parametrize("name", MODULES)
def test_every_key_a_module_exposes_is_read(name):
    """A key is read where the module or the backbone it runs on names it as an attribute or item of a config."""
    module = importlib.import_module(f"train.{name}")
    source = re.sub(r"^\s*\"[\w.]+\": Key\(.*$", "", _sources(name), flags=re.M)  # the declarations themselves
    unread = []
    for key in module.SCHEMA.keys:
        leaf = key.split(".")[-1]
        if not re.search(rf"\.{leaf}\b|\[\"{leaf}\"\]|get\(\"{leaf}\"|\"{key}\"", source):
            unread.append(key)
    assert not unread, f"train.{name} exposes keys nothing reads: {unread}"


def test_closed_form_modules_expose_no_loop_or_optimizer_keys():
    for name in ("pca", "ngram", "cooccurrence"):
        keys = importlib.import_module(f"train.{name}").SCHEMA.keys
        assert not {"batch_size", "optimizer", "ema_decay", "learning_rate", "dtype", "sweep.seeds"} & set(keys)
    w2v = importlib.import_module("train.word2vec").SCHEMA.keys
    assert not {"lr_schedule", "warmup_steps", "b1", "b2", "grad_clip", "optimizer", "ema_decay", "dtype"} & set(w2v)


# ----------------------------------------------------------------------------- --help


@pytest.mark.parametrize("name", MODULES)
def test_help_lists_the_flags_and_every_key_with_its_default(name):
    module = importlib.import_module(f"train.{name}")
    text = cli.help_text(module.ENTRY)
    assert len(text.splitlines()) < 200
    for flag in (
        "--workdir",
        "--config=FILE.py",
        "--config.KEY=VALUE",
        "--coordinator_address",
        "--num_processes",
        "--process_id",
    ):
        assert flag in text
    assert ("--mode=train|sample" in text) == (name in registry.IMAGE_MODELS)  # the modules with Entry.sample
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ") and line.split()}
    for key, decl in module.SCHEMA.keys.items():
        assert key in lines, key
        assert config_lib._show(decl.default) in lines[key] and decl.help in lines[key]


def test_help_exits_0_from_the_shell():
    out = _run("train.vae", "--help")
    assert out.returncode == 0, out.stderr
    assert "usage: python -m train.vae" in out.stdout and "model.latent_dim" in out.stdout
    assert len(out.stdout.splitlines()) < 200


# ----------------------------------------------------------------------------- --config=FILE.py


def test_config_file_with_overrides_on_top_and_a_named_variant(tmp_path):
    mine = tmp_path / "my_config.py"
    mine.write_text(
        "from train import ngram\n\n\ndef get_config():\n    c = ngram.get_config('smoke')\n"
        "    c.order = 2\n    return c\n"
    )
    out = _run("train.ngram", f"--config={mine}", "--config.num_samples=1", f"--workdir={tmp_path / 'a'}")
    assert out.returncode == 0, out.stderr
    saved = json.loads((tmp_path / "a" / "config.json").read_text())
    assert (saved["order"], saved["num_samples"], saved["num_tokens"]) == (2, 1, 20_000)
    assert len((tmp_path / "a" / "samples.txt").read_text().splitlines()) == 2  # 1 per model, add-k and Kneser-Ney
    out = _run("train.ngram", "--config=train/ngram.py:smoke", f"--workdir={tmp_path / 'b'}")
    assert out.returncode == 0, out.stderr
    saved = json.loads((tmp_path / "b" / "config.json").read_text())
    assert (saved["order"], saved["num_samples"], saved["num_tokens"]) == (3, 2, 20_000)


def test_an_unusable_config_file_is_one_error_line(tmp_path):
    (tmp_path / "no_get_config.py").write_text("x = 1\n")
    (tmp_path / "bad_key.py").write_text(
        "import ml_collections\n\n\ndef get_config():\n    return ml_collections.ConfigDict({'ordr': 2})\n"
    )
    cases = {
        f"--config={tmp_path / 'missing.py'}": "no such file",
        f"--config={tmp_path / 'no_get_config.py'}": "get_config",
        f"--config={tmp_path / 'bad_key.py'}": "config.ordr is not a key",
        "--config=train/ngram.py:smok": "config variant 'smok' is not defined; accepted: 'smoke'",
    }
    for arg, fragment in cases.items():
        out = _run("train.ngram", arg, f"--workdir={tmp_path / 'w'}")
        assert out.returncode == 2, (arg, out.stderr)
        (line,) = out.stderr.strip().splitlines()
        assert line.startswith("error: ") and fragment in line, (arg, line)
    assert not (tmp_path / "w").exists()


def test_the_ddpm_cifar10_variant_is_the_papers_35_7m_parameter_model():
    import jax
    import jax.numpy as jnp
    import numpy as np

    from train import ddpm as train_ddpm

    c = train_ddpm.get_config("cifar10")
    net = train_ddpm.make_network(c)
    init = lambda key: net.init(key, jnp.zeros((1, 32, 32, 3)), jnp.zeros((1,), jnp.int32))
    n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(jax.eval_shape(init, jax.random.key(0))))
    assert round(n / 1e6, 1) == 35.7
    assert (c.batch_size, c.learning_rate, c.ema_decay, c.model.dropout, c.random_flip) == (
        128,
        2e-4,
        0.9999,
        0.1,
        True,
    )


def test_process_wide_settings_are_made_before_jax_starts_or_warned_about():
    """A module's declared settings (train.ddpm: XLA:CPU's own convolution kernels) are made by Entry.run and the
    command line before JAX starts; a library caller whose JAX started first gets one warning naming them."""
    show = "print(ddpm.ENTRY.apply_settings(ddpm.get_config()), os.environ.get('XLA_FLAGS', ''))"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"

    def python(code):
        return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)

    fresh = python(f"import os; from train import ddpm; {show}")
    assert fresh.returncode == 0 and fresh.stdout.startswith("[] ") and "ynn_fusion_type=" in fresh.stdout
    assert "warning" not in fresh.stderr
    late = python(f"import os, jax; jax.devices(); from train import ddpm; {show}")
    assert late.returncode == 0 and late.stdout.startswith("['xla_cpu_convolutions']"), late.stderr
    warnings = [line for line in late.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "train.ddpm's process-wide settings xla_cpu_convolutions" in warnings[0]
    assert "XLA_FLAGS='--xla_cpu_experimental_ynn_fusion_type='" in warnings[0]
