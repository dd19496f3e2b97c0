"""Command line of every training module: `python -m train.<model> [--workdir DIR] [--config.key=value ...]`.

Bad input (unknown or mistyped flags and config keys, values out of range, unusable data or workdir)
prints one line `error: ...` on stderr and exits with code 2 before anything is written. A run
stopped by NaN/Inf prints one line and exits with code 1.
"""
from __future__ import annotations

import os
import sys
from typing import Callable

from absl import app, flags, logging
from ml_collections import config_flags

from train.core import parallel
from train.core.errors import ConfigError, DataError

USER_ERRORS = (ConfigError, DataError)
OVERRIDE_ERRORS = (AttributeError, KeyError, TypeError, ValueError)  # ml_collections: unknown key, bad type


def main(name: str, get_config: Callable, run: Callable) -> None:
    """Define the flags, parse them, and call run(config, workdir)."""
    flags.DEFINE_string("workdir", f"runs/{name}", "Directory for checkpoints, metrics.jsonl, samples/, tensorboard/.")
    flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0, for a multi-process run.")
    flags.DEFINE_integer("num_processes", None, "Number of processes of a multi-process run.")
    flags.DEFINE_integer("process_id", None, "This process's index in 0..num_processes-1.")
    try:  # ml_collections reads sys.argv's overrides already here
        config_flags.DEFINE_config_dict("config", get_config(), "Training configuration; override keys with --config.KEY=VALUE.")
    except OVERRIDE_ERRORS as e:
        _bad_override(e)

    def _main(argv):
        logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO
        if len(argv) > 1:
            _fail(f"unexpected arguments {argv[1:]}; accepted: --workdir DIR and --config.KEY=VALUE")
        from train.core.errors import NonFiniteError
        try:
            check_workdir(flags.FLAGS.workdir)
            parallel.initialize_distributed(flags.FLAGS.coordinator_address, flags.FLAGS.num_processes,
                                            flags.FLAGS.process_id)
            run(flags.FLAGS.config, flags.FLAGS.workdir)
        except USER_ERRORS as e:
            _fail(str(e))
        except NonFiniteError as e:
            _fail(str(e), code=1)

    app.run(_main, flags_parser=_parse_flags)


def check_workdir(workdir: str) -> None:
    """ConfigError, before anything is created, unless workdir is (or can be made) a writable directory."""
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
        _fail(f"{e}; accepted flags: --workdir DIR, --config.KEY=VALUE for the keys of get_config() "
              f"(python -m ... --helpfull lists them)")
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
