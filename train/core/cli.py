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

import io
import os
import re
import sys
import threading

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from train.core import files, parallel, workdir as workdir_lib
from train.core.entry import Entry
from train.core.errors import ConfigError, DataError, NonFiniteError

__all__ = ["main", "help_text", "sample_overrides", "check_workdir", "check_data_dir", "load_config_file"]

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
    given = config_file_arg(sys.argv[1:])
    loaded = entry.schema.config()
    if given:  # the keys the file leaves out at their defaults, so every key takes an override
        try:
            loaded = entry.schema.complete(load_config_file(given))
        except ConfigError as e:
            _fail(f"--config={given} cannot be used ({e})")
    try:  # ml_collections applies sys.argv's --config.KEY=VALUE overrides already here
        config_flags.DEFINE_config_dict(
            "config", loaded, "--config=FILE.py[:VARIANT], then overrides.", sys_argv=_without_config_file(sys.argv)
        )
    except OVERRIDE_ERRORS as e:
        _bad_override(e)

    def _main(argv):
        logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO
        absl_handler = logging.get_absl_handler().python_handler
        if len(argv) > 1:
            _fail(
                f"unexpected arguments {argv[1:]}; accepted: --workdir DIR, --config=FILE.py and "
                f"--config.KEY=VALUE (--help lists them)"
            )
        loaded = flags.FLAGS.config
        held = _HeldOutput(sys.stderr)
        sys.stderr, absl_handler.stream = held.passing_main_thread, held.holding_all
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
        finally:  # reached unless _fail ended the process: what was held is written
            sys.stderr = absl_handler.stream = held.stream
            held.release()

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


check_workdir = workdir_lib.check_writable


def _parse_flags(argv):
    try:  # --config=FILE was read by load_config_file; the flag holds the config it gave
        return flags.FLAGS(_without_config_file(argv))
    except flags.Error as e:
        _fail(
            f"{e}; accepted flags: --workdir DIR, --config=FILE.py, --config.KEY=VALUE for the keys of "
            f"get_config() (--help lists them)"
        )
    except OVERRIDE_ERRORS as e:
        _bad_override(e)


def config_file_arg(argv) -> str | None:
    """FILE.py[:VARIANT] of a --config=FILE.py[:VARIANT] (or --config FILE.py) argument, or None."""
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            return arg.removeprefix("--config=")
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _without_config_file(argv) -> list[str]:
    out, rest = list(argv[:1]), iter(argv[1:])
    for arg in rest:
        if arg == "--config":
            next(rest, None)  # its value, FILE.py
        elif not arg.startswith("--config="):
            out.append(arg)
    return out


def load_config_file(arg: str):
    """The config that FILE.py's get_config(VARIANT) (or get_config()) returns, for --config=FILE.py[:VARIANT]; a
    dict becomes a ConfigDict. A file that cannot be read or run, a get_config missing, raising or returning
    anything else is one `error:` line naming the file and why, exit code 2."""
    path, _, variant = arg.partition(":")
    refuse = lambda why: _fail(
        f"--config={arg} cannot be used ({why}); accepted: --config=FILE.py[:VARIANT], a Python file whose "
        f"get_config([VARIANT]) returns the config (a ConfigDict or dict)"
    )
    if not os.path.isfile(path):
        refuse(f"{path} is not a file" if os.path.exists(path) else f"no such file {path}")
    namespace = {"__name__": "config_file", "__file__": os.path.abspath(path)}
    try:
        with open(path, encoding="utf-8") as f:
            exec(compile(f.read(), path, "exec"), namespace)
    except BaseException as e:  # any error of the user's file, SystemExit included, is its error
        refuse(f"running {path} raised {_where(e, path)}")
    get_config = namespace.get("get_config")
    if not callable(get_config):
        refuse(f"{path} defines no get_config()")
    try:
        config = get_config(variant) if variant else get_config()
    except ConfigError as e:
        refuse(str(e))
    except BaseException as e:
        refuse(
            f"its get_config({variant!r}) raised {_where(e, path)}"
            if variant
            else f"get_config() raised {_where(e, path)}"
        )
    if isinstance(config, dict):
        config = ml_collections.ConfigDict(config)
    if not isinstance(config, ml_collections.ConfigDict):
        refuse(f"get_config() returned {type(config).__name__}, not a ConfigDict or dict")
    return config


def _where(e: BaseException, path: str) -> str:
    """'SyntaxError: invalid syntax (line 1)': the error and the line of the user's file it was raised at."""
    line = e.lineno if isinstance(e, SyntaxError) else None
    tb = e.__traceback__
    while tb is not None:
        if os.path.abspath(tb.tb_frame.f_code.co_filename) == os.path.abspath(path):
            line = tb.tb_lineno
        tb = tb.tb_next
    why = e.msg if isinstance(e, SyntaxError) else str(e)
    text = f"{type(e).__name__}: {why}" if why else type(e).__name__
    return f"{text} (line {line})" if line else text


def _bad_override(e: Exception) -> None:
    msg = str(e.args[0] if e.args else e)
    while msg[:1] in "'\"" and msg[-1:] == msg[:1]:  # KeyError messages come quoted, sometimes twice
        msg = msg[1:-1]
    msg = msg.replace("\\n", " ").replace("\\'", "'")
    arg = _override_in(msg)
    if arg is None:
        _fail(f"bad --config override: {msg}; accepted: the keys of get_config() with values of their types")
    key = arg.split("=", 1)[0][2:]
    if isinstance(e, (KeyError, AttributeError)):  # ml_collections names one part of the key: name the whole
        _fail(f"{key} is not a key of this module's config (in {arg}: {msg}); accepted: the keys --help lists")
    _fail(f"bad --config override {arg}: {msg}; accepted: the keys of get_config() with values of their types")


def _override_in(msg: str) -> str | None:
    """The --config.KEY=VALUE argument a message of ml_collections is about: the first whose key has a part the
    message names."""
    for arg in sys.argv[1:]:
        if arg.startswith("--config."):
            parts = arg.split("=", 1)[0].split(".")[1:]
            if any(re.search(rf"(?<![\w.]){re.escape(p)}(?![\w])", msg) for p in parts):
                return arg
    return None


class _HeldOutput:
    """stderr while a run goes. The main thread's writes (the progress bar, the run's warnings) pass at once; the
    libraries' logs (absl's: Orbax's, from any thread) and other threads' writes (a background save's tracebacks)
    are held, written when the run ends, and dropped when it stops with its one `error:` line: a full disk makes
    Orbax's save threads, tensorstore's callbacks and the exit-time cleanups of the writers report it some
    hundred lines over."""

    def __init__(self, stream):
        self.stream, self.held = stream, []
        self.passing_main_thread, self.holding_all = _Route(self, main_passes=True), _Route(self, main_passes=False)

    def release(self) -> None:
        self.stream.write("".join(self.held))
        self.stream.flush()
        self.held = []


class _Route(io.TextIOBase):
    def __init__(self, output: _HeldOutput, main_passes: bool):
        self.output, self.main_passes = output, main_passes

    def write(self, text: str) -> int:
        if self.main_passes and threading.current_thread() is threading.main_thread():
            return self.output.stream.write(text)
        self.output.held.append(text)
        return len(text)

    def flush(self) -> None:
        self.output.stream.flush()

    def isatty(self) -> bool:
        return self.output.stream.isatty()

    def fileno(self) -> int:
        return self.output.stream.fileno()


def _fail(message: str, code: int = 2) -> None:
    """The one line on stderr, then exit at once: no exit-time cleanup (a writer's, a background thread's) adds to
    it, and what a run held (_HeldOutput) is dropped. Every file a run writes is whole by then (files.py)."""
    sys.stdout.flush()
    sys.stderr.write(f"error: {' '.join(str(message).split())}\n")  # the main thread's: passes, as it is
    sys.stderr.flush()
    os._exit(code)
