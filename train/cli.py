"""Command line of every training module: `python -m train.<model> [--workdir DIR] [--config.key=value ...]`."""
from __future__ import annotations

import sys
from typing import Callable

from absl import app, flags, logging
from ml_collections import config_flags

from train.config import ConfigError
from train.data import DataError

USER_ERRORS = (ConfigError, DataError)


def main(name: str, get_config: Callable, run: Callable) -> None:
    """Define the flags, parse them, and call run(config, workdir); bad input exits 2 with one line."""
    flags.DEFINE_string("workdir", f"runs/{name}", "Directory for checkpoints, metrics.jsonl, samples/, tensorboard/.")
    config_flags.DEFINE_config_dict("config", get_config(), "Training configuration; override keys with --config.KEY=VALUE.")

    def _main(argv):
        logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO
        if len(argv) > 1:
            _fail(f"unexpected arguments {argv[1:]}; accepted: --workdir DIR and --config.KEY=VALUE")
        try:
            run(flags.FLAGS.config, flags.FLAGS.workdir)
        except USER_ERRORS as e:
            _fail(str(e))

    app.run(_main)


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)
