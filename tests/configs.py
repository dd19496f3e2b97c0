"""The configs the tests run: each module's 'smoke' variant (a seconds-long run), with overrides."""
from __future__ import annotations


def override(c, overrides: dict):
    """Set dotted keys ('model.hidden') of a ConfigDict in place; return it."""
    for k, v in overrides.items():
        target = c
        *path, last = k.split(".")
        for p in path:
            target = target[p]
        target[last] = v
    return c


def smoke_config(module, data_dir=None, **overrides):
    """module.get_config('smoke'), reading its data from data_dir (a test's TFDS dir), with overrides."""
    c = module.get_config("smoke")
    if data_dir is not None:
        c.data_dir = str(data_dir)
    return override(c, overrides)
