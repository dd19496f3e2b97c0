"""Orbax checkpoints of the train state together with the input pipeline's position."""
from __future__ import annotations

import os

import grain
import orbax.checkpoint as ocp


class Checkpointer:
    """CheckpointManager over `<workdir>/checkpoints`: saves are asynchronous, the last few are kept."""

    def __init__(self, directory: str, keep: int):
        self.manager = ocp.CheckpointManager(
            os.path.abspath(directory),
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state, data_iterator) -> None:
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=grain.checkpoint.CheckpointSave(data_iterator)))

    def restore(self, step: int, target_state, data_iterator):
        """The state saved at `step`, shaped like target_state; data_iterator is moved to its saved position."""
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target_state),
            data=grain.checkpoint.CheckpointRestore(data_iterator)))
        return restored["state"]

    def close(self) -> None:
        """Wait for the last asynchronous save to be committed."""
        self.manager.wait_until_finished()
        self.manager.close()
