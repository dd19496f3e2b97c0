"""The workdir every run writes: made and locked before anything else, its config.json, the check that refuses to
continue a run with changed keys, and the summary printed at the end. Shared by the training loop
(train/core/loop.py) and the runner of the modules fitted in closed form (train/core/fit.py)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile

from train.core import config as config_lib, files
from train.core.errors import ConfigError

__all__ = [
    "locked",
    "make_workdir",
    "write_config",
    "refuse_changed",
    "refuse_changed_data",
    "record_data",
    "record_spec",
    "read_spec",
    "print_summary",
    "claim",
    "check_writable",
    "refuse_other_module",
    "module_of",
]

DATA_FILE = "data.json"  # what the run's artefacts were made from: the fingerprint of its dataset or corpus
SPEC_FILE = "spec.json"  # what rebuilds the run's model without its data (loop.Task.spec)
RUN_FILE = "run.json"  # which module made the run: {"module": "train.vae"}


def check_writable(workdir: str) -> None:
    """ConfigError, before anything is created, unless workdir is (or can be made) a writable directory: its deepest
    existing part is a directory a file can be written in."""
    if not workdir:
        raise ConfigError("--workdir='' names no directory; accepted: a directory path (default: runs/<module>)")
    path = os.path.abspath(workdir)
    existing = path
    while not os.path.lexists(existing):  # the deepest part of the path that exists
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        reason = f"{existing} is not a directory"
    elif not os.access(existing, os.W_OK | os.X_OK):
        reason = f"{existing} is not writable"
    else:
        try:  # what os.access does not see for a superuser: a read-only or immutable file system
            with tempfile.TemporaryFile(dir=existing):  # an unnamed file where the OS can: the directory is unchanged
                return
        except OSError as e:
            reason = f"{existing} cannot be written: {e.strerror or type(e).__name__}"
    raise ConfigError(f"workdir {path} is not a writable directory ({reason}); pass a --workdir you can write to")


def make_workdir(workdir: str) -> None:
    """Create workdir; ConfigError unless it is a writable directory."""
    if not workdir:
        raise ConfigError("--workdir='' names no directory; accepted: a directory path (default: runs/<module>)")
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


def module_of(workdir: str) -> str | None:
    """The module recorded in workdir/run.json ('train.vae'), or None where there is none (a fresh workdir, or a
    run written before runs recorded it)."""
    path = os.path.join(workdir, RUN_FILE)
    if not os.path.lexists(path):
        return None
    module = files.read_json(path, "the record of which module made the run in this workdir").get("module")
    if not isinstance(module, str):
        raise ConfigError(f"{path} names no module ({module!r}); accepted: a new --workdir")
    return module


def refuse_other_module(workdir: str, module: str, known_keys=None, renamed: dict | None = None) -> None:
    """ConfigError, before anything is written, when workdir holds a run of another module than `module`
    ('train.vae'): the one its run.json names or, for a run written before runs recorded it, one whose config.json
    holds keys that are not among `known_keys` (the dotted keys of the module's schema; `renamed` {old: new})."""
    found = module_of(workdir)
    if found is not None and found != module:
        raise ConfigError(
            f"workdir {workdir} holds a run of {found}, not of {module}; accepted: the --workdir of a {module} run "
            f"to continue it, or a new --workdir (nothing there was changed)"
        )
    config_path = os.path.join(workdir, "config.json")
    if found is None and known_keys is not None and os.path.isfile(config_path):
        old = config_lib.dotted(files.read_json(config_path, "the config of the run in this workdir"))
        foreign = sorted(k for k in old if (renamed or {}).get(k, k) not in known_keys)
        if foreign:
            shown = ", ".join(foreign[:4]) + (", ..." if len(foreign) > 4 else "")
            raise ConfigError(
                f"workdir {workdir} holds a run of another module than {module} (its config.json has keys {module} "
                f"does not: {shown}); accepted: the --workdir of a {module} run, or a new --workdir"
            )


def claim(workdir: str, module: str) -> None:
    """Under the workdir's lock, before anything else is written: refuse a workdir of another module, record this
    one in run.json, and remove the temporary files (*.tmp.<pid>) an interrupted write of an earlier run left."""
    refuse_other_module(workdir, module)
    files.remove_temporaries(workdir, skip=("checkpoints",))  # Orbax clears its own temporaries
    if module_of(workdir) is None:
        files.write_json(os.path.join(workdir, RUN_FILE), {"module": module})


def write_config(workdir: str, config) -> None:
    """workdir/config.json: the whole config of the run."""
    with files.atomic_write(os.path.join(workdir, "config.json"), "w", encoding="utf-8") as f:
        f.write(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")


def refuse_changed(workdir: str, config, keys, artefact: str) -> None:
    """ConfigError when workdir holds `artefact` (checkpoints, a fitted model) made by a run whose config.json gives
    any of `keys` another value: a rerun continues or reuses only what the same settings made."""
    path = os.path.join(workdir, "config.json")
    found = os.path.join(workdir, artefact)
    if not (_holds(found) and os.path.lexists(path)):
        return
    old = files.read_json(path, f"the config of the run that wrote {found}")
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


def refuse_changed_data(workdir: str, data: dict, artefact: str) -> None:
    """ConfigError when workdir holds `artefact` made from other data than `data` (a fingerprint: dataset name,
    version and sizes, or file size and content hash, or the vocabulary), as its data.json (record_data)
    recorded them. A resumed run or a reused fit must stand on the data it started from."""
    path = os.path.join(workdir, DATA_FILE)
    found = os.path.join(workdir, artefact)
    if _holds(found) and os.path.lexists(path):
        old = files.read_json(path, f"the data of the run that wrote {found}")
        for key in sorted(set(old) | set(data)):
            if old.get(key) != data.get(key):
                raise ConfigError(
                    f"the data differ from those the run that wrote {found} was made from: {key} was "
                    f"{old.get(key)!r}, now {data.get(key)!r}; accepted: the same data to continue that run, "
                    f"or a new --workdir"
                )


def record_data(workdir: str, data: dict) -> None:
    """workdir/data.json: the fingerprint of the data the run's artefacts are made from."""
    files.write_json(os.path.join(workdir, DATA_FILE), data)


def record_spec(workdir: str, spec: dict) -> None:
    """workdir/spec.json: what rebuilds the run's model without its data (Task.spec)."""
    files.write_json(os.path.join(workdir, SPEC_FILE), spec)


def read_spec(workdir: str) -> dict | None:
    """workdir/spec.json (record_spec), or None where the run was written before runs recorded it."""
    path = os.path.join(workdir, SPEC_FILE)
    return files.read_json(path, "the model spec of the run in this workdir") if os.path.lexists(path) else None


def _holds(path: str) -> bool:
    """Whether an artefact is there: a file, or a directory with anything in it."""
    return os.path.exists(path) and (not os.path.isdir(path) or bool(os.listdir(path)))


def print_summary(headline: str, figures: dict, extra: tuple[str, ...] = ()) -> None:
    """The headline, one line per figure, then any extra lines."""
    lines = [headline]
    lines += [f"  {k:<36} {v:.6g}" if isinstance(v, float) else f"  {k:<36} {v}" for k, v in sorted(figures.items())]
    print("\n".join([*lines, *extra]), flush=True)
