"""Orbax checkpoints of the whole run: train state, data-iterator state and resolved config.

Saves are asynchronous (training continues while arrays are written) and atomic (orbax writes a
temporary folder and renames it when complete, so an interrupted save never looks finished). Only
the last `keep` checkpoints are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

from siamgpt_jax.train.state import TrainState


@dataclass(frozen=True)
class CheckpointConfig:
    dir: str | None = None  # default: RUN_DIR/checkpoints
    every: int = 100  # steps between saves (the final step and SIGTERM always save)
    keep: int = 3
    async_save: bool = True

    def __post_init__(self) -> None:
        from siamgpt_jax.config import require_at_least

        require_at_least(self, "checkpoint", every=1, keep=1)


class Checkpointer:
    ITEMS = ("state", "data", "config")

    def __init__(self, directory: str | Path, cfg: CheckpointConfig):
        self.directory = Path(directory).absolute()
        self.every = cfg.every
        options = ocp.CheckpointManagerOptions(
            max_to_keep=cfg.keep,
            enable_async_checkpointing=cfg.async_save,
            create=True,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=self.ITEMS)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def _resolve_step(self, step: int | None) -> int:
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint found in {self.directory}")
        return step

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: TrainState, data_state: Any, config: dict, *, force: bool = False) -> bool:
        """Save if `step` is a multiple of `every` (or `force`); returns whether a save started.

        The cadence is decided here, not by orbax, whose policy would also save the first step.
        """
        if not force and step % self.every:
            return False
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=ocp.args.JsonSave(data_state),
            config=ocp.args.JsonSave(config),
        )
        return self._manager.save(step, args=args, force=True)

    def restore(self, abstract_state: TrainState, step: int | None = None) -> tuple[TrainState, Any, dict]:
        """Restore onto the shardings carried by `abstract_state` (any mesh: resharding is free)."""
        step = self._resolve_step(step)
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state),
                data=ocp.args.JsonRestore(),
                config=ocp.args.JsonRestore(),
            ),
        )
        return restored.state, restored.data, restored.config

    def restore_params(self, abstract_params: Any, step: int | None = None) -> Any:
        """Only the params of a training checkpoint (for export), skipping the optimizer state."""
        step = self._resolve_step(step)
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.PyTreeRestore(
                    item={"params": abstract_params},
                    restore_args=ocp.checkpoint_utils.construct_restore_args({"params": abstract_params}),
                    partial_restore=True,
                ),
            ),
        )
        return restored.state["params"]

    def read_config(self, step: int | None = None) -> dict:
        step = self._resolve_step(step)
        return self._manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore())).config

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
