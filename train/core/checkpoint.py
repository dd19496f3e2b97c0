"""Orbax checkpoints of the train state together with the input pipeline's position.

A checkpoint is either complete or ignored: Orbax commits a step only once every file is written
(an interrupted save leaves a temporary directory that is never read), and a committed step that
fails to restore (truncated or corrupted files) is moved aside to `<workdir>/damaged_checkpoints/`
with a warning, and the next older one is used. Good checkpoints are never deleted except by
Orbax's own `max_to_keep` rotation.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

import jax
import numpy as np

from train.core.errors import ConfigError


class CheckpointMismatch(ConfigError):
    """The checkpoint in the workdir was written by a model of another shape."""


def _path_str(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def _shapes(tree) -> dict[str, tuple]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {_path_str(p): tuple(getattr(v, "shape", ())) for p, v in flat}


def _cannot_restore(directory: str, step: int, error: Exception) -> str:
    reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
    return f"checkpoint {step} in {directory} cannot be restored ({type(error).__name__}: {reason})"


def _as_dict(state):
    return json.loads(state) if isinstance(state, (bytes, str)) else state


def _libraries():
    """(orbax.checkpoint, grain), imported where a checkpoint is first opened: a process that never opens one (a
    benchmark, an evaluation) keeps the 37 MB of memory they take."""
    import grain
    import orbax.checkpoint as ocp

    return ocp, grain


class Checkpointer:
    """CheckpointManager over `<workdir>/checkpoints`: asynchronous saves, the last `keep` kept."""

    def __init__(self, directory: str, keep: int):
        self.directory = os.path.abspath(directory)
        self._keep = keep
        self.manager = self._open()

    def _open(self):
        ocp, grain = _libraries()
        return ocp.CheckpointManager(
            self.directory,
            item_handlers={"state": ocp.StandardCheckpointHandler(), "data": grain.checkpoint.CheckpointHandler()},
            options=ocp.CheckpointManagerOptions(max_to_keep=self._keep, create=True),
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, step: int, state, data_iterator) -> None:
        ocp, grain = _libraries()
        self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), data=grain.checkpoint.CheckpointSave(data_iterator)
            ),
        )

    def check_compatible(self, step: int, target_state) -> None:
        """Raise CheckpointMismatch naming the first parameter whose saved shape differs from the model's."""
        saved = self.manager.item_metadata(step)["state"]
        saved = getattr(saved, "tree", saved)
        saved_params = _shapes(saved["params"] if isinstance(saved, dict) else saved.params)
        want = _shapes(target_state.params)
        where = f"the checkpoint at step {step} in {self.directory}"
        for name in sorted(set(saved_params) | set(want)):
            if name not in want:
                raise CheckpointMismatch(
                    f"{where} has parameter {name} {saved_params[name]} that this config's model "
                    f"lacks; use the config it was trained with, or another --workdir"
                )
            if name not in saved_params:
                raise CheckpointMismatch(
                    f"{where} lacks parameter {name} {want[name]} of this config's model; "
                    f"use the config it was trained with, or another --workdir"
                )
            if saved_params[name] != want[name]:
                raise CheckpointMismatch(
                    f"{where} has parameter {name} of shape {saved_params[name]}, but this "
                    f"config's model has shape {want[name]}; use the config it was trained "
                    f"with, or another --workdir"
                )

    def restore(self, step: int, target_state, data_iterator):
        """The state saved at `step`, shaped like target_state; data_iterator is moved to its saved position.

        The data position is saved per process; a run restarted with another number of processes derives
        it from the step instead, which is exact because every process's batch k belongs to step k + 1.
        """
        state = self.restore_state(step, target_state)
        ocp, grain = _libraries()
        own = os.path.join(
            self.directory, str(step), "data", f"process_{jax.process_index()}-of-{jax.process_count()}.json"
        )
        if os.path.exists(own):
            self.manager.restore(step, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(data_iterator)))
        elif set(_as_dict(data_iterator.get_state())) == {"next_index"}:
            data_iterator.set_state({"next_index": step})
        else:
            raise CheckpointMismatch(
                f"the checkpoint at step {step} in {self.directory} was written by another "
                f"number of processes and its data position cannot be derived; resume with "
                f"the same number of processes"
            )
        return state

    def restore_state(self, step: int, target_state):
        """The train state saved at `step`, shaped like target_state, without touching any input pipeline;
        ValueError when a restored value is not finite."""
        ocp, _ = _libraries()
        state = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target_state)))[
            "state"
        ]
        if not all(
            bool(np.isfinite(x).all())
            for x in jax.tree.leaves(jax.device_get(state))
            if np.issubdtype(np.asarray(x).dtype, np.floating)
        ):
            raise ValueError("restored values are not finite")
        return state

    def read_latest_state(self, target_state):
        """(state, step) of the newest checkpoint whose state restores, or (None, None) when none does: the reader's
        restore_latest, which moves nothing (a damaged checkpoint is skipped with a warning, for the run to set
        aside when it resumes); a model-shape mismatch raises CheckpointMismatch."""
        for step in reversed(self.all_steps()):
            try:
                self.check_compatible(step, target_state)
                return self.restore_state(step, target_state), step
            except CheckpointMismatch:
                raise
            except Exception as e:  # orbax/tensorstore raise many types for damaged files
                print(
                    f"warning: {_cannot_restore(self.directory, step, e)}; reading an older one",
                    file=sys.stderr,
                    flush=True,
                )
        return None, None

    def restore_latest(self, target_state, data_iterator):
        """(state, step) from the newest checkpoint that restores, or (None, None) when there is none.

        A model-shape mismatch raises CheckpointMismatch before anything is read or moved; a damaged
        checkpoint is moved aside with a warning and the next older one is tried.
        """
        for step in reversed(self.all_steps()):
            try:
                self.check_compatible(step, target_state)
                return self.restore(step, target_state, data_iterator), step
            except CheckpointMismatch:
                raise
            except Exception as e:  # orbax/tensorstore raise many types for damaged files
                self._set_aside(step, e)
        return None, None

    def _set_aside(self, step: int, error: Exception) -> None:
        if jax.process_index() == 0:
            dest_root = os.path.join(os.path.dirname(self.directory), "damaged_checkpoints")
            os.makedirs(dest_root, exist_ok=True)
            dest = os.path.join(dest_root, f"{step}-{time.strftime('%Y%m%d-%H%M%S')}")
            shutil.move(os.path.join(self.directory, str(step)), dest)
            print(
                f"warning: {_cannot_restore(self.directory, step, error)}; moved it to {dest} and falling back to "
                f"an older one",
                file=sys.stderr,
                flush=True,
            )
        self.manager.close()
        self.manager = self._open()

    def close(self) -> None:
        """Wait for the last asynchronous save to be committed."""
        self.manager.wait_until_finished()
        self.manager.close()
