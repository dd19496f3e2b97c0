"""The contract of an entry module, `python -m train.<name>`: what it declares once, as its `ENTRY`, and what the
command line (train.core.cli), the trained-run readers and the tests read of it, and nothing else.

    ENTRY = entry.Entry("vae", __doc__, __file__, SCHEMA, train, make_task=make_task, ...)
    get_config = SCHEMA.config   # for --config=train/vae.py[:VARIANT]: ml_collections calls the file's get_config
    run = ENTRY.run               # train (or resume) in a workdir: the settings made, the config checked
    if __name__ == "__main__":
        cli.main(ENTRY)

The modules themselves are listed once, in train.registry.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from typing import Any

import ml_collections

from train.core import config as config_lib, parallel, workdir as workdir_lib

__all__ = ["Entry"]


@dataclasses.dataclass(frozen=True)
class Entry:
    """What an entry module declares.

    name: the module's name (`python -m train.<name>`, runs/<name>)
    doc: its docstring, the text of --help (first paragraph: the command; second: what the default does)
    file: its file, the default --config (its get_config(VARIANT) gives the config)
    schema: its config keys, variants and cross-key checks (train.core.config.Schema), the only checks of a config
    train(config, workdir) -> the last figures: the training of a checked config, its settings made
    make_task(config, data) -> train.core.loop.Task: the training part of a model on the shared loop, built from
      what its data declare (an image model: an ImageSpec, the image shape and number of classes), not the data
    load(workdir) -> the trained run in workdir, ready to sample, built without its dataset
    sample(workdir, overrides) -> the file written: `--mode=sample`, the run in workdir sampled by its config
      with {'sample.KEY': value} overrides
    settings: process-wide settings (setters of train.core.parallel, e.g. xla_cpu_convolutions) that XLA reads
      when it starts: cli.main makes them before JAX starts; run() makes them too, and warns where a library
      caller's JAX has started already
    renamed: {old: new} config keys renamed since runs were written (a trained run's config.json is read with them)
    """

    name: str
    doc: str
    file: str
    schema: config_lib.Schema
    train: Callable[[ml_collections.ConfigDict, str], dict]
    make_task: Callable[..., Any] | None = None
    load: Callable[[str], Any] | None = None
    sample: Callable[[str, dict], str] | None = None
    settings: tuple[Callable[[], bool], ...] = ()
    renamed: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def module(self) -> str:
        return f"train.{self.name}"

    def apply_settings(self, config) -> list[str]:
        """Make the module's process-wide settings (and config.deterministic's); warn on stderr, naming them,
        where JAX had started before they could be made; returns the names of those missed."""
        settings = (*self.settings, *((parallel.deterministic_ops,) if config.get("deterministic", False) else ()))
        missed = parallel.apply_settings(settings)
        if missed:
            print(
                f"warning: JAX started before {self.module}'s process-wide settings {', '.join(missed)} could be "
                f"made; the run goes on without them ({parallel.settings_hint(missed)})",
                file=sys.stderr,
                flush=True,
            )
        return missed

    def run(self, config, workdir: str) -> dict:
        """Train in workdir (resuming the run there) and return the last figures: the settings made (a warning
        where JAX started too early for them), the config checked by the schema, a workdir of another module
        refused, then `train`."""
        self.apply_settings(config)
        self.schema.check(config)
        workdir = os.fspath(workdir)
        workdir_lib.refuse_other_module(os.path.abspath(workdir), self.module, self.schema.keys, self.renamed)
        return self.train(config, workdir)
