"""The second round of hostile input, for what every module shares: a workdir holds one module's run and no other
module writes in it; a --config file is one line whatever is wrong with it; an override names its whole key;
--mode=sample is bounded and checks where it writes first; a full disk is one line; interrupted writes leave
nothing behind. The image and text inputs of this round are in tests/test_hostile_images.py and
tests/test_hostile_text.py; the first round in tests/test_bad_input.py.

CLI cases are real `python -m train.<model>` processes run by tests/cli_cases.py: one `error:` line and nothing
else on stderr, exit code 2, nothing created, and for a case in a finished run (another module's, or its own)
every file there unchanged. The property tests at the end draw config values inside and outside every key's
declaration (hypothesis).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import hypothesis
import numpy as np
import pytest
from hypothesis import strategies as st

from tests.cli_cases import JAX_CACHE, ROOT, Case, case, check_refused, outcomes_fixture, run_cli, snapshot
from train import registry
from train.core import files, workdir as workdir_lib
from train.core.errors import ConfigError

IMAGE = ["--config.dataset=npz:{tmp}/good.npz", "--config.eval.num_samples=0"]
SETUPS = {
    "vae": ["--config=train/vae.py:smoke", *IMAGE, "--config.num_steps=2"],
    "pca": [*IMAGE, "--config.ks=(1,2)", "--config.k=2"],
    "word2vec": [
        *("--config.num_tokens=5000", "--config.batch_size=1024", "--config.num_steps=2"),
        *("--config.minibatch_size=256", "--config.embed_dim=8", "--config.progress=False"),
    ],
}


def holds(owner: str, module: str) -> list[str]:
    return [f"holds a run of train.{owner}, not of train.{module}", "accepted: the --workdir of a", "new --workdir"]


# A workdir holds one module's run: every other module, loop or closed-form, training or sampling, refuses it.
OTHER_MODULE_CASES = [
    case(
        f"{module}-{'samples' if extra == ['--mode=sample'] else 'trains'}-in-a-{owner}-run",
        module,
        extra,
        holds(owner, module),
        existing=owner,
    )
    for module, owner, extra in (
        ("cooccurrence", "word2vec", []),
        ("ngram", "word2vec", []),
        ("pca", "vae", IMAGE),
        ("gan", "vae", IMAGE),
        ("ddpm", "vae", IMAGE),
        ("autoencoder", "vae", IMAGE),
        ("ngram", "vae", []),
        ("word2vec", "pca", []),
        ("vae", "pca", IMAGE),
        ("cooccurrence", "pca", []),
        ("vae", "word2vec", IMAGE),
        ("pca", "word2vec", IMAGE),
        ("ddpm", "pca", IMAGE),
        ("gan", "word2vec", ["--mode=sample"]),
        ("ddpm", "vae", ["--mode=sample"]),
        ("autoencoder", "pca", ["--mode=sample"]),
        ("vae", "word2vec", ["--mode=sample"]),
        ("edm", "vae", IMAGE),
        ("flow", "pca", IMAGE),
        ("flow", "vae", ["--mode=sample"]),
        ("edm", "word2vec", ["--mode=sample"]),
        ("vqvae", "vae", IMAGE),
        ("vqvae", "pca", ["--mode=sample"]),
    )
]

# --mode=sample: a count that cannot be held is refused before anything is drawn, in the run's own workdir.
SAMPLE_CASES = [
    case(
        "vae-samples-more-than-memory",
        "vae",
        ["--mode=sample", "--config.sample.num_images=100000000000"],
        ["config.sample.num_images=100000000000", "GiB, more than half of this machine's", "accepted: at most"],
        existing=True,
    ),
    case(
        "vae-samples-zero-images",
        "vae",
        ["--mode=sample", "--config.sample.num_images=0"],
        ["config.sample.num_images=0", "integer >= 1"],
        existing=True,
    ),
    case(
        "vae-samples-with-a-training-override",
        "vae",
        ["--mode=sample", "--config.num_steps=9"],
        ["--config.num_steps=9 is not accepted", "--config.sample.KEY=VALUE"],
        existing=True,
    ),
    case(
        "vae-samples-an-unknown-sample-key",
        "vae",
        ["--mode=sample", "--config.sample.stepz=3"],
        ["config.sample.stepz is not a key", "(in --config.sample.stepz=3"],
        existing=True,
    ),
]

CONFIG_FILE = "accepted: --config=FILE.py[:VARIANT], a Python file whose get_config([VARIANT]) returns the config"
# --config=FILE: whatever is wrong with the file is one line naming it, its error and the line it was raised at.
CONFIG_FILE_CASES = [
    case(
        f"{module}-config-file-{name}",
        module,
        [f"--config={{tmp}}/configs/{name}.py{variant}"],
        [f"--config={{tmp}}/configs/{name}.py{variant} cannot be used", *fragments, *([] if plain else [CONFIG_FILE])],
    )
    for module, name, variant, fragments, plain in (
        ("vae", "raises", "", ["get_config() raised RuntimeError: no config today (line 2)"], False),
        ("pca", "syntax_error", "", ["raised SyntaxError", "(line 1)"], False),
        ("word2vec", "missing_import", "", ["ModuleNotFoundError: No module named 'no_such_module' (line 1)"], False),
        ("gan", "returns_none", "", ["get_config() returned NoneType, not a ConfigDict or dict"], False),
        ("ddpm", "no_get_config", "", ["defines no get_config()"], False),
        ("autoencoder", "returns_list", "", ["get_config() returned list"], False),
        ("ngram", "exits", "", ["get_config() raised SystemExit: 3"], False),
        ("cooccurrence", "unknown_key", "", ["config.windw is not a key of this module's config"], True),
        ("vae", "no_variants", ":smoke", ["get_config('smoke') raised TypeError"], False),
        ("gan", "raises_at_import", "", ["raised ZeroDivisionError: division by zero (line 3)"], False),
        ("pca", "not_utf8", "", ["UnicodeDecodeError"], False),
        ("vae", "missing", "", ["no such file"], False),
    )
] + [
    case("vae-config-file-unknown-variant", "vae", ["--config=train/vae.py:nosuch"], ["'nosuch' is not defined"]),
    case(
        "vae-config-file-bool-for-a-number",
        "vae",
        ["--config={tmp}/configs/bool_for_a_number.py"],
        ["config.weight_decay=True is not accepted", "a finite number >= 0"],
    ),
    case("pca-config-file-a-directory", "pca", ["--config={tmp}/configs"], ["configs is not a file"]),
    case(
        "gan-config-file-bad-value",
        "gan",
        ["--config={tmp}/configs/negative_steps.py"],
        ["config.num_steps=-1 is not accepted", "integer >= 1"],
    ),
]
# The user files: (name, source).
CONFIG_FILES = {
    "raises": "def get_config():\n    raise RuntimeError('no config today')\n",
    "syntax_error": "def get_config(:\n    pass\n",
    "missing_import": "import no_such_module\n\ndef get_config():\n    return {}\n",
    "returns_none": "def get_config():\n    return None\n",
    "no_get_config": "NUM_STEPS = 3\n",
    "returns_list": "def get_config():\n    return [('num_steps', 3)]\n",
    "exits": "import sys\n\ndef get_config():\n    sys.exit(3)\n",
    "unknown_key": "def get_config():\n    return {'windw': 4}\n",
    "no_variants": "def get_config():\n    return {'num_steps': 3}\n",
    "raises_at_import": "import math\n\nSTEP = 1 / 0\n",
    "negative_steps": "def get_config():\n    return {'num_steps': -1}\n",
    "bool_for_a_number": "def get_config():\n    return {'weight_decay': True}\n",
    "a_dict": "def get_config():\n    return {'k': 2, 'ks': (1, 2)}\n",
}

# An unknown key is named whole, whichever part of it is unknown, with the override it came in.
NESTED_KEY_CASES = [
    case(
        f"{module}-unknown-{key}",
        module,
        [f"--config.{key}=3"],
        [f"config.{key} is not a key", f"(in --config.{key}=3"],
    )
    for module, key in (
        ("vae", "modl.latent_dim"),
        ("vae", "model.latent_dim.x"),
        ("ddpm", "diffusion.num_timestepz"),
        ("gan", "sample.num_imagez"),
        ("autoencoder", "eval.nosuch.deeper"),
    )
]

CLI_CASES = OTHER_MODULE_CASES + SAMPLE_CASES + CONFIG_FILE_CASES + NESTED_KEY_CASES


def _write_files(tmp: pathlib.Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp / "good.npz", x=rng.integers(0, 256, (40, 8, 8), dtype=np.uint8))
    (tmp / "configs").mkdir()
    for name, source in CONFIG_FILES.items():
        (tmp / "configs" / f"{name}.py").write_text(source)
    (tmp / "configs" / "not_utf8.py").write_bytes(b"def get_config():\n    return {'k': '\xff\xfe'}\n")


outcomes = outcomes_fixture("hostile", _write_files, SETUPS)


@pytest.mark.parametrize("c", CLI_CASES)
def test_cli_refuses_hostile_input(c: Case, outcomes):
    check_refused(c, outcomes[c.id], outcomes["_tmp"])


def test_the_table_covers_every_module_and_grows_the_first_round():
    assert {p.values[0].module for p in CLI_CASES} == set(registry.NAMES)
    assert len({p.values[0].id for p in CLI_CASES}) == len(CLI_CASES) >= 40


# ----------------------------------------------------------------------------- the workdir's module, in process


def _config_json(workdir: pathlib.Path, module: str) -> None:
    config = registry.entry(module).schema.config()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2, sort_keys=True))


def test_a_workdir_written_before_runs_recorded_their_module_is_judged_by_its_keys(tmp_path):
    """A run of another module whose workdir has no run.json (written by an earlier version) is refused by the keys
    its config.json holds, before anything is written; a run of the same module, keys renamed since included,
    passes."""
    legacy = tmp_path / "word2vec_run"
    _config_json(legacy, "word2vec")
    before = snapshot(str(legacy))
    cooccurrence = registry.entry("cooccurrence")
    with pytest.raises(ConfigError, match=r"holds a run of another module than train.cooccurrence .*keys"):
        cooccurrence.run(cooccurrence.schema.config(), str(legacy))
    assert snapshot(str(legacy)) == before
    ddpm = registry.entry("ddpm")
    _config_json(tmp_path / "ddpm_run", "ddpm")
    old = json.loads((tmp_path / "ddpm_run" / "config.json").read_text())
    old["sample"]["ddim_steps"] = old["sample"].pop("steps")  # the key's name before it was renamed
    (tmp_path / "ddpm_run" / "config.json").write_text(json.dumps(old))
    workdir_lib.refuse_other_module(str(tmp_path / "ddpm_run"), "train.ddpm", ddpm.schema.keys, ddpm.renamed)
    with pytest.raises(ConfigError, match="holds a run of another module than train.vae"):
        workdir_lib.refuse_other_module(str(tmp_path / "ddpm_run"), "train.vae", registry.entry("vae").schema.keys)


def test_run_json_names_the_module_and_a_damaged_one_is_named(tmp_path):
    workdir_lib.claim(str(tmp_path), "train.pca")
    assert json.loads((tmp_path / "run.json").read_text()) == {"module": "train.pca"}
    workdir_lib.claim(str(tmp_path), "train.pca")  # the same module again: nothing to refuse
    with pytest.raises(ConfigError, match="holds a run of train.pca, not of train.ngram"):
        workdir_lib.claim(str(tmp_path), "train.ngram")
    (tmp_path / "run.json").write_text("{ not json")
    with pytest.raises(ConfigError, match=r"run.json \(the record of which module made the run.*\) is damaged"):
        workdir_lib.module_of(str(tmp_path))


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_temporaries_of_interrupted_writes_are_removed_on_the_next_start(tmp_path):
    """What a kill -9 between a write and its rename leaves (<file>.tmp.<pid> of a process gone) is removed when
    the next run takes the workdir; a live process's temporaries, Orbax's checkpoints/ and other names stay."""
    from train.core import fit as fit_lib

    dead = _dead_pid()
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "tensorboard").mkdir()
    left = [f"metrics.jsonl.tmp.{dead}", f"config.json.tmp.{dead}", f"tensorboard/events.tmp.{dead}"]
    kept = [f"data.json.tmp.{os.getpid()}", f"checkpoints/pca.npz.tmp.{dead}", "notes.tmp.txt", "x.tmp.abc"]
    for name in left + kept:
        (tmp_path / name).write_text("partial")
    c = registry.entry("ngram").schema.config("smoke")
    fit = fit_lib.Fit("toy", ("order",), "toy.npz", lambda wd, writer: ({"figure": 1.0}, "toy: fitted", ()))
    fit_lib.run(c, str(tmp_path), fit)
    assert [n for n in left if (tmp_path / n).exists()] == []
    assert [n for n in kept if not (tmp_path / n).exists()] == []
    assert json.loads((tmp_path / "run.json").read_text()) == {"module": "train.toy"}


def test_writing_a_file_again_removes_what_an_interrupted_write_of_it_left(tmp_path):
    """A cache outside any workdir (data_dir's decoded folders, corpora, classifiers) loses the temporaries of an
    interrupted write when that file is written again, or when its cache directory is read."""
    dead = _dead_pid()
    live = os.getppid()  # a process that is running: its temporaries are its own
    for name in (f"x.json.tmp.{dead}", f"x.json.tmp.{live}", f"y.json.tmp.{dead}"):
        (tmp_path / name).write_text("partial")
    files.write_json(str(tmp_path / "x.json"), {"a": 1})
    assert sorted(os.listdir(tmp_path)) == sorted(["x.json", f"x.json.tmp.{live}", f"y.json.tmp.{dead}"])
    from train.data import images

    cache = tmp_path / "folder_cache"
    cache.mkdir()
    (cache / f"images.npy.tmp.{dead}").write_bytes(b"partial")
    assert images._read_folder_cache(str(cache)) is None and os.listdir(cache) == []


# ----------------------------------------------------------------------------- file systems that fail


@pytest.fixture
def tmpfs(tmp_path):
    """A mount of a small tmpfs (what a full or read-only disk is made of); skipped where mounting is not
    allowed (it needs CAP_SYS_ADMIN, which the CI container has)."""
    mounted = []

    def mount(size: str, options: str = "") -> pathlib.Path:
        where = tmp_path / f"mnt{len(mounted)}"
        where.mkdir()
        opts = f"size={size}" + (f",{options}" if options else "")
        if subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True).returncode:
            pytest.skip("cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN)")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _vae(workdir, tmp, *args, timeout=300):
    env = (("JAX_COMPILATION_CACHE_DIR", JAX_CACHE),)
    base = ["--config=train/vae.py:smoke", f"--config.dataset=npz:{tmp}/good.npz", "--config.eval.num_samples=0"]
    return run_cli("vae", str(workdir), [*base, *args], str(tmp), env, timeout=timeout)


@pytest.mark.slow
def test_a_real_full_disk_is_one_line_and_the_run_resumes(tmpfs, tmp_path):
    """A disk that fills while the run checkpoints (a real ENOSPC from Orbax's save threads, tensorstore and the
    writers, not a simulated one): one `error:` line, exit code 1, nothing else on stderr; freed, the same command
    resumes from the last whole checkpoint."""
    _write_files(tmp_path)
    disk = tmpfs("48m")
    workdir = disk / "run"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": JAX_CACHE}
    args = ["--config=train/vae.py:smoke", f"--config.dataset=npz:{tmp_path}/good.npz", "--config.eval.num_samples=0"]
    cmd = [sys.executable, "-m", "train.vae", f"--workdir={workdir}", *args, "--config.checkpoint_every=2"]
    p = subprocess.Popen(
        [*cmd, "--config.num_steps=100000"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(600):  # wait for two whole checkpoints, then fill the disk
            if (workdir / "checkpoints" / "4").is_dir() or p.poll() is not None:
                break
            subprocess.run(["sleep", "0.2"])
        with open(disk / "filler", "wb") as f, pytest.raises(OSError):
            while True:
                f.write(bytes(1 << 20))
                f.flush()
        out, err = p.communicate(timeout=300)
    finally:
        p.kill()
    lines = [line for line in err.splitlines() if line.strip()]
    assert p.returncode == 1 and len(lines) == 1, err[-3000:]
    assert lines[0].startswith("error: no space left on the device") and "rerun the same command" in lines[0]
    (disk / "filler").unlink()
    steps = sorted(int(n) for n in os.listdir(workdir / "checkpoints") if n.isdigit())
    resumed = subprocess.run(
        [*cmd, f"--config.num_steps={steps[-1] + 2}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"at step {steps[-1]}." in resumed.stdout


@pytest.mark.slow
def test_sampling_a_run_on_a_read_only_disk_is_one_line_before_drawing(tmpfs, tmp_path):
    """--mode=sample where samples/ cannot be written (a read-only file system: os.access does not see it for a
    superuser) is refused before the checkpoint is read or anything drawn."""
    _write_files(tmp_path)
    disk = tmpfs("32m")
    rc, _, err = _vae(disk / "run", tmp_path, "--config.num_steps=2")
    assert rc == 0, err[-3000:]
    if subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot remount the tmpfs read-only here")
    before = snapshot(str(disk / "run"))
    rc, out, err = run_cli("vae", str(disk / "run"), ["--mode=sample"], str(tmp_path))
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: workdir "), err
    assert "is not writable" in err and not out
    assert snapshot(str(disk / "run")) == before


def test_a_config_file_may_give_some_keys_as_a_dict_and_take_overrides(tmp_path):
    """A file's get_config() may return a plain dict of some keys: the others keep their defaults, and every key
    takes an override."""
    _write_files(tmp_path)
    workdir = tmp_path / "pca"
    args = [f"--config={tmp_path}/configs/a_dict.py", "--config.k=1", f"--config.dataset=npz:{tmp_path}/good.npz"]
    rc, _, err = run_cli("pca", str(workdir), [*args, "--config.eval.num_samples=0"], str(tmp_path))
    assert rc == 0, err[-3000:]
    config = json.loads((workdir / "config.json").read_text())
    assert (config["k"], config["ks"], config["eval"]["num_samples"]) == (1, [1, 2], 0)
    assert config["seed"] == registry.entry("pca").schema.config().seed


# ----------------------------------------------------------------------------- the rule, drawn by hypothesis

_RANGE = re.compile(r"^\s*(?:(>=|>|<=|<)\s*(\S+)|([\[(])\s*(\S+)\s*,\s*(\S+)\s*([\])]))\s*$")
CHEAP_SPAN = {int: 3, float: 1.0}  # inside values near the lower bound: a drawn config must train in seconds


def _interval(key) -> tuple[float, bool, float, bool]:
    """(low, low open?, high, high open?) of a numeric key's declared range (this test's own reading of it)."""
    if not key.range:
        return -np.inf, True, np.inf, True
    op, bound, left, low, high, right = _RANGE.match(key.range).groups()
    if op:
        b = float(bound)
        return (b, op == ">", np.inf, True) if op in (">", ">=") else (-np.inf, True, b, op == "<")
    return float(low), left == "(", float(high), right == ")"


def _number_inside(kind, key):
    low, low_open, high, high_open = _interval(key)
    start = low if np.isfinite(low) else 0
    stop = min(high, start + CHEAP_SPAN[kind])
    if kind is int:
        lo, hi = int(np.floor(start)) + (1 if low_open and start == int(start) else 0), int(np.ceil(stop))
        hi -= 1 if high_open and hi == stop and hi == high else 0
        return st.integers(lo, max(lo, hi))
    return st.floats(start, stop, exclude_min=low_open, exclude_max=high_open and stop == high, allow_nan=False)


def _number_outside(kind, key):
    low, low_open, high, high_open = _interval(key)
    bad = [st.sampled_from([float("nan"), float("inf"), -float("inf")]), st.text(max_size=4), st.none(), st.booleans()]
    if kind is int:
        bad.append(st.floats(0.25, 1e6).filter(lambda v: v != int(v)))
    if np.isfinite(low):  # below the range, or at an open end
        below = st.floats(low - 1e6, low, exclude_max=not low_open)
        bad.append(
            below.map(np.floor).map(int).filter(lambda v: v < low or low_open and v == low) if kind is int else below
        )
    if np.isfinite(high):
        above = st.floats(high, high + 1e6, exclude_min=not high_open)
        bad.append(
            above.map(np.ceil).map(int).filter(lambda v: v > high or high_open and v == high) if kind is int else above
        )
    return st.one_of(bad)


def inside(key):
    """Values the key's declaration accepts (numbers near the low end of their range)."""
    if key.choices:
        return st.sampled_from(key.choices)
    if key.kind is bool:
        return st.booleans()
    if key.kind is tuple:
        return st.lists(_number_inside(key.element, key), min_size=int(key.nonempty), max_size=3).map(tuple)
    return _number_inside(key.kind, key)


def outside(key):
    """Values the key's declaration refuses: another type, a number out of range, NaN or +-inf, an unknown choice."""
    if key.choices:
        return st.one_of(
            st.text(max_size=6).filter(lambda v: v not in key.choices),
            st.integers(-9, 9).filter(lambda v: v not in key.choices),
            st.none(),
        )
    if key.kind is bool:
        return st.one_of(st.integers(0, 5), st.text(max_size=4), st.none())
    if key.kind is str:
        return st.one_of(st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=2))
    if key.kind is tuple:
        element = st.one_of(_number_outside(key.element, key))
        empty = [st.just(())] if key.nonempty else []
        return st.one_of(st.lists(element, min_size=1, max_size=3).map(tuple), st.text(max_size=3), *empty)
    return _number_outside(key.kind, key)


def _with(config, name: str, value, raw: bool = False):
    """A copy of config with one key set to value; raw: as a plain dict holding the value as it is (a ConfigDict
    converts a bool set on a float key to 0.0 or 1.0, as ml_collections does with every int)."""
    c = config.to_dict() if raw else config.copy_and_resolve_references()
    *parents, leaf = name.split(".")
    node = c
    for p in parents:
        node = node[p]
    if raw:
        node[leaf] = value
        return c
    with node.ignore_type():
        node[leaf] = value
    return c


KEYS = [(name, key_name) for name in registry.NAMES for key_name in sorted(registry.entry(name).schema.keys)]


@hypothesis.settings(max_examples=400, deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow])
@hypothesis.given(data=st.data())
def test_a_value_outside_a_declaration_is_refused_naming_the_key(data):
    """Every key of every module: a value of another type, out of range, not finite or not a choice is refused by
    the module's schema with a ConfigError naming the key and what it accepts."""
    name, key_name = data.draw(st.sampled_from(KEYS), label="key")
    schema = registry.entry(name).schema
    value = data.draw(outside(schema.keys[key_name]), label="value")
    with pytest.raises(ConfigError, match=rf"config\.{re.escape(key_name)}=.*accepted"):
        schema.check(_with(schema.config(), key_name, value, raw=True))


@hypothesis.settings(max_examples=400, deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow])
@hypothesis.given(data=st.data())
def test_a_value_inside_a_declaration_passes_or_names_the_key_it_must_fit(data):
    """A value the declaration accepts passes the schema, unless a declared cross-key check refuses it, which then
    names this key (and the other)."""
    name, key_name = data.draw(st.sampled_from(KEYS), label="key")
    schema = registry.entry(name).schema
    key = schema.keys[key_name]
    hypothesis.assume(key.kind is not str or key.choices)  # paths and dataset names: the data tests' part
    value = data.draw(inside(key), label="value")
    try:
        schema.check(_with(schema.config(), key_name, value))
    except ConfigError as e:
        assert key_name.split(".")[-1] in str(e) and "config." in str(e), str(e)


TRAINABLE = [k for k in sorted(registry.entry("vae").schema.keys) if not k.startswith(("sweep.", "dataset", "data_"))]


@pytest.mark.slow
@hypothesis.settings(max_examples=2, deadline=None, derandomize=True, database=None)
@hypothesis.given(data=st.data())
def test_the_rule_on_the_command_line_inside_trains_outside_is_one_line(data, tmp_path_factory):
    """The rule as a user meets it, on real processes: a drawn value inside a key's declaration trains (VAE smoke,
    2 steps), a drawn value outside is one line, exit code 2, and no workdir."""
    tmp = tmp_path_factory.mktemp("rule")
    _write_files(tmp)
    schema = registry.entry("vae").schema
    key_name = data.draw(st.sampled_from(TRAINABLE), label="key")
    key = schema.keys[key_name]
    good, bad = data.draw(inside(key), label="inside"), data.draw(outside(key), label="outside")
    base = ["--config=train/vae.py:smoke", f"--config.dataset=npz:{tmp}/good.npz", "--config.eval.num_samples=0"]
    rc, out, err = run_cli("vae", str(tmp / "bad"), [*base, f"--config.{key_name}={_cli(bad)}"], str(tmp))
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error:"), (key_name, bad, err[-2000:])
    assert not (tmp / "bad").exists() and not (tmp / "tfds").exists()
    env = (("JAX_COMPILATION_CACHE_DIR", JAX_CACHE),)
    args = [*base, "--config.num_steps=2", f"--config.{key_name}={_cli(good)}"]
    rc, out, err = run_cli("vae", str(tmp / "good"), args, str(tmp), env, timeout=300)
    refused_by_cross_check = rc == 2 and key_name.split(".")[-1] in err
    assert rc == 0 or refused_by_cross_check, (key_name, good, err[-2000:])


def _cli(value) -> str:
    """A value as --config.KEY=VALUE text."""
    if isinstance(value, tuple):
        return "(" + ",".join(_cli(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value) if isinstance(value, float) else str(value)
