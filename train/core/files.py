"""The files a run writes and reads back: each written whole or not at all, the inputs it resumes on
fingerprinted, and a damaged one reported in one line naming it (or set aside and made again).

Every file of a workdir other than the Orbax checkpoints (which Orbax writes atomically) goes through
`atomic_write`: the bytes go to a temporary file next to the target, are flushed to disk, and replace the
target in one rename, so a kill -9 or a full disk leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import zipfile
import zlib
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from train.core.errors import ConfigError

__all__ = [
    "atomic_write",
    "write_json",
    "read_json",
    "fingerprint",
    "set_aside",
    "DAMAGED_SUFFIX",
    "is_disk_full",
    "save_npz",
    "load_npz",
    "remove_temporaries",
    "remove_temporaries_of",
]

T = TypeVar("T")
# What reading a truncated, emptied or overwritten .npz raises, from the zip directory to a member's stream.
NPZ_ERRORS = (OSError, EOFError, KeyError, ValueError, TypeError, AttributeError, zipfile.BadZipFile, zlib.error)

DAMAGED_SUFFIX = ".damaged"
WHOLE_HASH_BYTES = 1 << 28  # files up to 256 MiB are hashed whole; larger ones by 64 blocks of 1 MiB
SAMPLE_BLOCKS, BLOCK_BYTES = 64, 1 << 20


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "wb", encoding: str | None = None):
    """Open a temporary file beside `path` for writing; on a clean exit flush it to disk and rename it onto
    `path`; on any error remove it, leaving `path` as it was. The temporaries of `path` that an interrupted write
    of a process no longer running left are removed first."""
    tmp = f"{path}.tmp.{os.getpid()}"
    remove_temporaries_of(path)  # what an interrupted write of this file left: it is made again now
    try:
        text = "b" not in mode  # text is written with '\n' line ends on every platform
        with open(tmp, mode, encoding=encoding if text else None, newline="\n" if text else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def remove_temporaries(directory: str, skip: tuple[str, ...] = ()) -> list[str]:
    """Remove the temporary files (<name>.tmp.<pid>) that writes by processes no longer running left under
    `directory` (a kill -9 or a power cut between the write and the rename), except under its subdirectories named
    in `skip`; a live process's are left to it. Returns the paths removed."""
    removed = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = [d for d in dirs if not (root == directory and d in skip)]
        for name in names:
            if _is_stale_temporary(name):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(root, name))
                    removed.append(os.path.join(root, name))
    return removed


def remove_temporaries_of(path: str) -> None:
    """Remove the temporaries (<path>.tmp.<pid>) that interrupted writes of `path` by processes no longer running
    left beside it."""
    directory, name = os.path.split(os.path.abspath(path))
    with contextlib.suppress(OSError):
        for left in [n for n in os.listdir(directory) if n.startswith(f"{name}.tmp.") and _is_stale_temporary(n, name)]:
            os.remove(os.path.join(directory, left))


def _is_stale_temporary(name: str, of: str = "") -> bool:
    """Whether a file name is <of>.tmp.<pid> (any <of> when empty) of a process no longer running."""
    stem, _, pid = name.rpartition(".tmp.")
    return bool(stem) and (not of or stem == of) and pid.isdigit() and not _is_running(int(pid))


def _is_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def write_json(path: str, obj) -> None:
    """obj as indented JSON, atomically."""
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str, what: str) -> dict:
    """The JSON object in `path` (`what` names it in the error: 'the config of the run in this workdir');
    ConfigError naming the file when it is not one."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(
            f"{path} ({what}) is damaged and cannot be read ({type(e).__name__}: {e}); accepted: a valid JSON "
            f"file there (delete it to start that run's records afresh), or a new --workdir"
        ) from None
    if not isinstance(obj, dict):
        raise ConfigError(
            f"{path} ({what}) holds a JSON {type(obj).__name__}, not an object; accepted: a new --workdir"
        )
    return obj


def fingerprint(path: str) -> dict:
    """{'size', 'sha256'} of a file: its whole content up to 256 MiB, beyond that its size and 64 evenly spaced
    blocks of 1 MiB (a rewritten corpus or dataset differs in size or, almost surely, in a sampled block)."""
    size = os.path.getsize(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if size <= WHOLE_HASH_BYTES:
            for block in iter(lambda: f.read(BLOCK_BYTES), b""):
                h.update(block)
            return {"size": size, "sha256": h.hexdigest()}
        for i in range(SAMPLE_BLOCKS):
            f.seek((size - BLOCK_BYTES) * i // (SAMPLE_BLOCKS - 1))
            h.update(f.read(BLOCK_BYTES))
    return {"size": size, "sha256_sampled": h.hexdigest()}


def set_aside(path: str, why: str) -> str:
    """Rename a damaged file to <path>.damaged (replacing an older one), say so in one line, return the new path."""
    aside = path + DAMAGED_SUFFIX
    os.replace(path, aside)
    print(f"warning: {path} is damaged ({why}); moved it to {aside} and making it again", flush=True)
    return aside


def is_disk_full(e: BaseException) -> bool:
    """Whether an exception (or one it was raised from) is 'no space left on device' or 'quota exceeded'
    (Orbax and TensorStore report it in the message of their own error types)."""
    while e is not None:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(e) or "Disk quota exceeded" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def save_npz(path: str, **arrays) -> None:
    """np.savez of the arrays, atomically."""
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def load_npz(path: str, read: Callable[[np.lib.npyio.NpzFile], T]) -> T | None:
    """read(the .npz at path), or None when there is no file; a file that cannot be read (truncated, empty, not
    an .npz, a member missing or garbled) is set aside with one line and None returned, so it is made again."""
    remove_temporaries_of(path)
    if not os.path.exists(path):
        return None
    try:  # the file opened here, so a member numpy fails to read does not leave it open
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as f:
            return read(f)
    except NPZ_ERRORS as e:
        set_aside(path, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
        return None
