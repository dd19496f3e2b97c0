"""Argument checks shared by zoo's functions: a bad argument is one ValueError line naming the function, the
argument, what it accepts and the value it got."""

from __future__ import annotations

import math
import operator

__all__ = ["as_int", "as_positive_float"]


def as_int(value, name: str, fn: str, minimum: int | None = None) -> int:
    """value as an int (any integer type; not a bool or a float), at least `minimum` when given."""
    if isinstance(value, bool):
        raise ValueError(f"{fn}: {name} must be an integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{fn}: {name} must be an integer, got {value!r}") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value}")
    return value


def as_positive_float(value, name: str, fn: str) -> float:
    """value as a finite float > 0."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: {name} must be a positive number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{fn}: {name} must be a positive finite number, got {value!r}")
    return v
