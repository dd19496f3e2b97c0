"""Command line of every module: `python -m train.<model> [--workdir DIR] [--config=FILE.py[:VARIANT]]
[--config.KEY=VALUE ...]`, and `--help` for its flags and every config key.

It reads the module's declared contract only (its ENTRY, a train.core.entry.Entry). `--config` defaults to the
module's own file, so its `get_config()` is the config; a file of the user's whose `get_config()` returns a config
(keys left out keep their defaults) may replace it, as Flax's examples take it, and `:VARIANT` picks a named variant
(`--config=train/vae.py:smoke`). A module that samples a trained run (Entry.sample: the image models) also takes
`--mode=sample`: the run in --workdir samples with its own config, changed by --config.sample.KEY=VALUE overrides
only. The module's process-wide settings (Entry.settings) are made before JAX starts. Bad input (unknown or
mistyped flags and config keys, values out of range, unusable data or workdir) prints one line `error: ...` on
stderr and exits with code 2 before anything is written. A run stopped by NaN/Inf prints one line and exits with
code 1.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from train.core import files, parallel
from train.core.entry import Entry
from train.core.errors import ConfigError, DataError, NonFiniteError

__all__ = ["main", "help_text", "sample_overrides", "check_workdir", "check_data_dir"]

USER_ERRORS = (ConfigError, DataError)
OVERRIDE_ERRORS = (AttributeError, KeyError, TypeError, ValueError)  # ml_collections: unknown key, bad type
HELP_FLAGS = ("--help", "-h", "-help", "--helpshort", "--helpfull", "-?")
SAMPLE_MODE_HELP = (
    "  --mode=train|sample        train (default), or sample: the run in --workdir writes samples/samples_<step>.npz",
    "                             and .png (the run's config, with --config.sample.KEY=VALUE overrides only)",
)


def main(entry: Entry) -> None:
    """The command line of an entry module, from its declared Entry: parse, check, make its settings, run."""
    if any(a in HELP_FLAGS for a in sys.argv[1:]):
        print(help_text(entry))
        sys.exit(0)
    flags.DEFINE_string(
        "workdir", f"runs/{entry.name}", "Directory for checkpoints, metrics.jsonl, samples/, tensorboard/."
    )
    sample = entry.sample  # a module that samples a trained run has --mode=sample
    if sample is not None:
        flags.DEFINE_enum(
            "mode", "train", ["train", "sample"], "train (or resume) in --workdir, or sample the run there."
        )
    flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0, for a multi-process run.")
    flags.DEFINE_integer("num_processes", None, "Number of processes of a multi-process run.")
    flags.DEFINE_integer("process_id", None, "This process's index in 0..num_processes-1.")
    try:  # ml_collections loads the file and applies sys.argv's overrides already here
        config_flags.DEFINE_config_file("config", entry.file, "A file whose get_config() returns the config.")
    except OVERRIDE_ERRORS as e:
        _bad_override(e)

    def _main(argv):
        logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO
        if len(argv) > 1:
            _fail(
                f"unexpected arguments {argv[1:]}; accepted: --workdir DIR, --config=FILE.py and "
                f"--config.KEY=VALUE (--help lists them)"
            )
        try:
            loaded = flags.FLAGS.config
            _ = loaded.keys()  # ml_collections reports a file it could not load only here
        except OSError as e:
            why = [line.strip() for line in str(e).strip().splitlines() if line.strip()][-1]
            config_arg = next((a for a in sys.argv[1:] if a.startswith("--config=")), "--config")
            _fail(
                f"{config_arg} cannot be used ({why}); accepted: --config=FILE.py[:VARIANT], a file whose "
                f"get_config([VARIANT]) returns the config"
            )
        try:
            entry.apply_settings(loaded)  # before anything starts JAX's backends
            if sample is not None and flags.FLAGS.mode == "sample":
                sample(flags.FLAGS.workdir, sample_overrides(sys.argv[1:], loaded))
                return
            config = entry.schema.complete(loaded)
            check_workdir(flags.FLAGS.workdir)
            check_data_dir(config)
            parallel.initialize_distributed(
                flags.FLAGS.coordinator_address, flags.FLAGS.num_processes, flags.FLAGS.process_id
            )
            entry.run(config, flags.FLAGS.workdir)
        except USER_ERRORS as e:
            _fail(str(e))
        except NonFiniteError as e:
            _fail(str(e), code=1)
        except Exception as e:
            if not files.is_disk_full(e):
                raise
            _fail(
                f"no space left on the device of {os.path.abspath(flags.FLAGS.workdir)} ({type(e).__name__}); "
                f"every checkpoint written before is whole (each is written in full, then renamed); free space "
                f"and rerun the same command to resume from the last one",
                code=1,
            )

    app.run(_main, flags_parser=_parse_flags)


def help_text(entry: Entry) -> str:
    """The module's flags and every config key with its default, help and accepted values."""
    name, schema = entry.name, entry.schema
    about = (entry.doc or "").strip().split("\n\n")
    variants = ", ".join(schema.variants) or "none"
    lines = [
        f"usage: python -m train.{name} [--workdir DIR] [--config=FILE.py[:VARIANT]] [--config.KEY=VALUE ...]",
        "",
        *about[1:2],
        "",
        "flags:",
        f"  --workdir=DIR              checkpoints/, metrics.jsonl, samples/, tensorboard/ (default: runs/{name});",
        "                             an existing run there resumes",
        f"  --config=FILE.py[:VARIANT] a file whose get_config(VARIANT) returns the config (default: train/{name}.py;",
        f"                             variants: {variants}); keys it leaves out keep their defaults",
        "  --config.KEY=VALUE         set one key of the config (tuples as '(16, 32)')",
        "  --coordinator_address=HOST:PORT --num_processes=N --process_id=I",
        "                             one process of a multi-process run (every host runs the same command)",
        *(SAMPLE_MODE_HELP if entry.sample is not None else ()),
        "  --help                     this text",
        "",
        "config keys (default, what it does [accepted]):",
        *schema.help_lines(),
    ]
    return "\n".join(lines)


def sample_overrides(argv, config) -> dict:
    """{'sample.KEY': value} of the --config.sample.KEY=VALUE flags of a --mode=sample command line, with the values
    ml_collections parsed into `config`; ConfigError naming any other override, as the run's own config (in its
    workdir) is the one to sample with."""
    keys = []
    for arg in argv:
        name = arg.split("=", 1)[0]
        if name == "--config" or (name.startswith("--config.") and not name.startswith("--config.sample.")):
            raise ConfigError(
                f"--mode=sample takes the config of the run in --workdir, so {arg} is not accepted; accepted: "
                f"--config.sample.KEY=VALUE overrides"
            )
        if name.startswith("--config.sample."):
            keys.append(name.removeprefix("--config."))
    return {key: config.sample[key.removeprefix("sample.")] for key in keys}


def check_data_dir(config) -> None:
    """ConfigError, before anything is created, when config.data_dir names something that is not a directory."""
    data_dir = config.get("data_dir", "")
    if data_dir and os.path.lexists(data_dir) and not os.path.isdir(data_dir):
        raise ConfigError(
            f"config.data_dir={data_dir!r} is not a directory; accepted: a directory (made if missing) or '' "
            f"for TFDS's default"
        )


def check_workdir(workdir: str) -> None:
    """ConfigError, before anything is created, unless workdir is (or can be made) a writable directory."""
    if not workdir:
        raise ConfigError("--workdir='' names no directory; accepted: a directory path (default: runs/<module>)")
    path = os.path.abspath(workdir)
    existing = path
    while not os.path.lexists(existing):  # the deepest part of the path that exists
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        reason = f"{existing} is not a directory"
    elif not os.access(existing, os.W_OK | os.X_OK):
        reason = f"{existing} is not writable"
    else:
        return
    raise ConfigError(f"workdir {path} is not a writable directory ({reason}); pass a --workdir you can write to")


def _parse_flags(argv):
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        config_arg = next((a for a in argv[1:] if a.startswith("--config=")), None)
        if config_arg and str(e).startswith("flag --config="):  # the file: name the last line of why, not a traceback
            why = [line.strip() for line in str(e).strip().splitlines() if line.strip()][-1]
            why = why.split(": ", 1)[1] if why.startswith("train.core.errors.") else why
            _fail(
                f"{config_arg} cannot be used ({why}); accepted: --config=FILE.py[:VARIANT], a file whose "
                f"get_config([VARIANT]) returns the config"
            )
        _fail(
            f"{e}; accepted flags: --workdir DIR, --config=FILE.py, --config.KEY=VALUE for the keys of "
            f"get_config() (--help lists them)"
        )
    except OVERRIDE_ERRORS as e:
        _bad_override(e)


def _bad_override(e: Exception) -> None:
    msg = str(e.args[0] if e.args else e)
    while msg[:1] in "'\"" and msg[-1:] == msg[:1]:  # KeyError messages come quoted, sometimes twice
        msg = msg[1:-1]
    msg = msg.replace("\\n", " ").replace("\\'", "'")
    if msg.isidentifier():  # ml_collections names only the last part of an unknown nested key: name the override
        arg = next((a for a in sys.argv[1:] if a.startswith("--config.") and a.split("=")[0].endswith(f".{msg}")), None)
        if arg:
            msg = f"{arg.split('=')[0][2:]} is not a key of this module's config (in {arg})"
    _fail(f"bad --config override: {msg}; accepted: the keys of get_config() with values of their types")


def _fail(message: str, code: int = 2) -> None:
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    sys.exit(code)
