"""The errors a run reports as one line: bad input (exit 2) and a run stopped by NaN/Inf (exit 1)."""

from __future__ import annotations

import contextlib
import logging

__all__ = ["ConfigError", "DataError", "NonFiniteError", "quiet_library_logs"]


class ConfigError(ValueError):
    """A config value, flag or workdir that cannot be used; the message names it and what is accepted."""


class DataError(ValueError):
    """A dataset name or file that cannot be used; the message says what is accepted."""


class NonFiniteError(RuntimeError):
    """Training produced NaN or Inf (config.nan_policy='stop')."""


@contextlib.contextmanager
def quiet_library_logs():
    """Silence below ERROR the loggers of TFDS (absl) and of its downloads (urllib3), whose warnings (a half-prepared
    folder, a retried connection) would precede the one-line error."""
    loggers = [logging.getLogger(name) for name in ("absl", "urllib3", "urllib3.connectionpool")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
