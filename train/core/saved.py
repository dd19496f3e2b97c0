"""A trained run read back from its workdir, to sample or evaluate without the loop: the config it ran with
(workdir/config.json, as train/core/workdir.py wrote it) and the parameters to sample with (the EMA, if kept) of
its newest checkpoint that restores. It only reads: nothing in the workdir is written, moved or locked, so it may
read a run that is still training (Orbax commits a checkpoint whole, and the newest committed one is read).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import ml_collections

from train.core import config as config_lib, files, workdir as workdir_lib
from train.core.errors import ConfigError

__all__ = ["SavedRun", "read_config", "with_overrides"]


@dataclasses.dataclass(frozen=True)
class SavedRun:
    """What a workdir holds of a run: its config, the parameters of its newest checkpoint and that step."""

    workdir: str
    config: ml_collections.ConfigDict
    params: Any  # the parameters to sample and evaluate with: the EMA if the run kept one, else the raw ones
    step: int


def read_config(workdir: str, schema: config_lib.Schema, renamed: dict[str, str] | None = None, module: str = ""):
    """workdir/config.json as a config of `schema` (lists back to tuples, keys a later version added at their
    defaults, keys it renamed, {old: new}, under their new names); ConfigError, naming the file, when it is missing
    or damaged or holds a key the schema does not know, and naming the module that made the run where it is not
    `module` ('train.vae')."""
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise ConfigError(
            f"{os.path.abspath(workdir)} holds no trained run ({path} is missing); accepted: the --workdir of a "
            f"run trained there"
        )
    if module:
        workdir_lib.refuse_other_module(os.path.abspath(workdir), module, schema.keys, renamed)
    flat = config_lib.dotted(files.read_json(path, "the config of the run in this workdir"))
    for old, new in (renamed or {}).items():
        if old in flat:
            flat.setdefault(new, flat.pop(old))
    c = config_lib.from_dotted(flat)
    try:
        return schema.complete(c)
    except ConfigError as e:
        raise ConfigError(f"{path} (written by another version of this module?): {e}") from None


def with_overrides(config, overrides: dict, block: str, check: Callable) -> ml_collections.ConfigDict:
    """A copy of config with overrides of the keys of config.<block> ({'steps': 20} or {'sample.steps': 20}),
    checked by `check`; ConfigError naming an override that is not a key of that block, or a value it refuses."""
    c = config.copy_and_resolve_references()
    for name, value in overrides.items():
        leaf = name.removeprefix(f"{block}.")
        if "." in leaf or leaf not in c[block]:
            raise ConfigError(
                f"{name!r} is not a key of config.{block}; accepted: {', '.join(sorted(c[block].keys()))}"
            )
        with c[block].ignore_type():  # a value of the wrong type is the check's to refuse, in its words
            c[block][leaf] = tuple(value) if isinstance(value, list) else value
    check(c)
    return c
