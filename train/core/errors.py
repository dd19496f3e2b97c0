"""The errors a run reports as one line: bad input (exit 2) and a run stopped by NaN/Inf (exit 1)."""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "NonFiniteError"]


class ConfigError(ValueError):
    """A config value, flag or workdir that cannot be used; the message names it and what is accepted."""


class DataError(ValueError):
    """A dataset name or file that cannot be used; the message says what is accepted."""


class NonFiniteError(RuntimeError):
    """Training produced NaN or Inf (config.nan_policy='stop')."""
