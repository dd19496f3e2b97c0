"""An image model on the shared loop, and read back from its workdir: what the backbone (train/core) leaves to the
image side, which knows the image datasets (train.data.images)."""

from __future__ import annotations

import os
from collections.abc import Callable

from train.core import checkpoint, config as config_lib, loop, parallel, saved
from train.core.errors import ConfigError
from train.data import images

__all__ = ["train", "load"]


def train(config, workdir: str, check_config: Callable, make_task: Callable) -> dict:
    """run() of an image model: check the config, load its dataset, train make_task(config, dataset) in workdir."""
    check_config(config)
    ds = images.images_of(config)
    return loop.train(config, workdir, make_task(config, ds), ds.fingerprint)


def load(workdir: str, module, renamed: dict[str, str] | None = None) -> tuple[saved.SavedRun, images.ImageData]:
    """(the run in workdir, its dataset) of an image module trained by the loop (its SCHEMA, check_config and
    make_task): the parameters of the newest checkpoint that restores, shaped by the model its config makes.
    ConfigError when workdir holds no checkpoint, or one of another model, or a vmapped sweep."""
    workdir = os.path.abspath(workdir)
    config = saved.read_config(workdir, module.SCHEMA, renamed)
    module.check_config(config)
    if config_lib.sweep_replicas(config):
        raise ConfigError(
            f"{workdir} holds a sweep (config.sweep.*), whose checkpoints stack the replicas; accepted: the workdir "
            f"of a single run"
        )
    directory = os.path.join(workdir, "checkpoints")
    missing = ConfigError(
        f"{workdir} holds no checkpoint to read ({directory} has none); accepted: the --workdir of a run trained "
        f"there (python -m {getattr(module.__spec__, 'name', module.__name__)} --workdir {workdir})"
    )
    if not os.path.isdir(directory) or not os.listdir(directory):
        raise missing
    ds = images.images_of(config)
    task = module.make_task(config, ds)
    ckpt = checkpoint.Checkpointer(directory, config.keep_checkpoints)
    try:
        state, step = ckpt.read_latest_state(loop.abstract_state(task, config, parallel.data_mesh()))
    finally:
        ckpt.close()
    if state is None:
        raise missing
    return saved.SavedRun(workdir, config, state.eval_params, int(step)), ds
