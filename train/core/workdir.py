"""The workdir every run writes: made and locked before anything else, its config.json, the check that refuses to
continue a run with changed keys, and the summary printed at the end. Shared by the training loop
(train/core/loop.py) and the runner of the modules fitted in closed form (train/core/fit.py)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os

from train.core.errors import ConfigError

__all__ = ["locked", "make_workdir", "write_config", "refuse_changed", "print_summary"]


def make_workdir(workdir: str) -> None:
    """Create workdir; ConfigError unless it is a writable directory."""
    try:
        os.makedirs(workdir, exist_ok=True)
        if not os.access(workdir, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as e:
        raise ConfigError(
            f"workdir {workdir} is not a writable directory ({e.strerror or type(e).__name__}); "
            f"pass a --workdir you can write to"
        ) from None


@contextlib.contextmanager
def locked(workdir: str, lead: bool = True):
    """An exclusive flock on the workdir itself while the block runs; the OS drops it when the process dies, even
    by kill -9. Only the lead process of a multi-host run takes it: one multi-host run is one run."""
    if not lead:
        yield
        return
    fd = os.open(workdir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(
            f"workdir {workdir} is in use by another run (it holds the lock); wait for it to finish, "
            f"stop it, or pass another --workdir"
        ) from None
    try:
        yield
    finally:
        os.close(fd)


def write_config(workdir: str, config) -> None:
    """workdir/config.json: the whole config of the run."""
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")


def refuse_changed(workdir: str, config, keys, artefact: str) -> None:
    """ConfigError when workdir holds `artefact` (checkpoints, a fitted model) made by a run whose config.json gives
    any of `keys` another value: a rerun continues or reuses only what the same settings made."""
    path = os.path.join(workdir, "config.json")
    found = os.path.join(workdir, artefact)
    if not (os.path.exists(found) and (not os.path.isdir(found) or os.listdir(found)) and os.path.isfile(path)):
        return
    with open(path) as f:
        old = json.load(f)
    for key in keys:
        node, now = old, config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
            now = now[part]
        now = list(now) if isinstance(now, tuple) else now
        if node is not None and node != now:
            raise ConfigError(
                f"config.{key}={now!r} differs from {node!r} of the run that wrote {found}; "
                f"accepted: the same {key} to continue that run, or a new --workdir"
            )


def print_summary(headline: str, figures: dict, extra: tuple[str, ...] = ()) -> None:
    """The headline, one line per figure, then any extra lines."""
    lines = [headline]
    lines += [f"  {k:<36} {v:.6g}" if isinstance(v, float) else f"  {k:<36} {v}" for k, v in sorted(figures.items())]
    print("\n".join([*lines, *extra]), flush=True)
