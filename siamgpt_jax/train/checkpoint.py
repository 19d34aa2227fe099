"""Orbax checkpoints of the whole run: train state, data-iterator state and resolved config.

Saves are asynchronous (training continues while arrays are written) and atomic (orbax writes a
temporary folder and renames it when complete, so an interrupted save never looks finished). Only
the last `keep` checkpoints are kept.

Orbax has no checksums of its own, so each step folder also gets a `manifest.json`, written once
orbax has finalised the step: a checksum per saved array (train/fingerprint.py, computed on the
devices before the save) and one of the data state and the config. A step is trusted only with a
manifest whose checksums match what is read back; a damaged newest step (a truncated or altered
file, a missing manifest, an empty folder) is named and the newest good one is used instead.
A state with a non-finite value is never written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from siamgpt_jax.config import require_at_least
from siamgpt_jax.convert.errors import CheckpointError
from siamgpt_jax.train.fingerprint import fingerprint, first_non_finite
from siamgpt_jax.train.state import TrainState

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class CheckpointConfig:
    dir: str | None = None  # default: RUN_DIR/checkpoints
    every: int = 100  # steps between saves (the final step and SIGTERM always save)
    keep: int = 3
    async_save: bool = True

    def __post_init__(self) -> None:
        require_at_least(self, "checkpoint", every=1, keep=1)


class IncompleteStepError(CheckpointError):
    """A step folder whose save never finished (no manifest): nothing in it was ever trusted."""


class NonFiniteStateError(RuntimeError):
    """The state about to be saved holds NaN or inf; it was not written."""


@dataclass
class Restored:
    step: int
    state: TrainState
    data: Any
    config: dict
    damaged: dict[int, str]  # newer steps that were skipped, and why


def json_digest(obj: Any) -> str:
    """sha256 of a JSON value in a canonical form (the same for the saved and the restored value)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    # tensorstore appends a long repr of the store after this phrase
    first = text[0].split(" See full TensorStore details")[0][:300] if text else ""
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def layer_chunked_save_args(state: TrainState) -> Any:
    """SaveArgs storing each stacked param (params.layers.*) one layer per chunk, so export-hf
    reads a layer at a time; orbax's default chunk is a device's whole shard, all layers deep."""

    def pick(path, leaf):
        keys = [str(getattr(k, "name", getattr(k, "key", k))) for k in path[:2]]
        stacked = keys == ["params", "layers"] and getattr(leaf, "ndim", 0) >= 2
        return ocp.SaveArgs(shard_axes=(0,)) if stacked else ocp.SaveArgs()

    return jax.tree_util.tree_map_with_path(pick, state)


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
        self._pending: dict[int, dict] = {}  # step -> manifest, written once orbax has finalised it
        self._is_writer = jax.process_index() == 0

    # ---- which steps exist ---------------------------------------------------------------------
    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def manifest(self, step: int) -> dict | None:
        """The step's manifest, or None when it has none (or an unreadable one)."""
        try:
            data = json.loads((self.directory / str(step) / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("step") == step else None

    def latest_complete_step(self) -> int | None:
        """Newest step whose save finished (it has a manifest); cheap, nothing is read but JSON."""
        return next((s for s in reversed(self.all_steps()) if self.manifest(s) is not None), None)

    def _resolve_step(self, step: int | None) -> int:
        step = self.latest_complete_step() if step is None else step
        if step is None:
            raise CheckpointError(f"{self.directory}: no complete checkpoint here")
        if step not in self.all_steps():
            raise CheckpointError(f"{self.directory}: no checkpoint step {step} (steps: {self.all_steps()})")
        return step

    # ---- saving ---------------------------------------------------------------------------------
    def save(self, step: int, state: TrainState, data_state: Any, config: dict, *, force: bool = False) -> bool:
        """Save if `step` is a multiple of `every` (or `force`); returns whether a save started.

        The cadence is decided here, not by orbax, whose policy would also save the first step.
        Raises NonFiniteStateError, writing nothing, if any saved array holds NaN or inf.
        """
        if not force and step % self.every:
            return False
        sums, finite = fingerprint(state)
        bad = first_non_finite(finite)
        if bad is not None:
            raise NonFiniteStateError(f"the state after step {step} has non-finite values in {bad}; not saved")
        self.poll()
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state, save_args=layer_chunked_save_args(state)),
            data=ocp.args.JsonSave(data_state),
            config=ocp.args.JsonSave(config),
        )
        started = self._manager.save(step, args=args, force=True)
        if started:
            self._pending[step] = {"version": MANIFEST_VERSION, "step": step, "arrays": sums,
                                   "data_sha256": json_digest(data_state), "config_sha256": json_digest(config)}
            self.poll()
        return started

    def poll(self) -> None:
        """Write the manifests of saves orbax has finished (call it often: it does not block)."""
        if self._pending and not self._manager.is_saving_in_progress():
            self._write_manifests()

    def _write_manifests(self) -> None:
        for step, manifest in sorted(self._pending.items()):
            folder = self.directory / str(step)
            if self._is_writer and folder.is_dir():  # (orbax may already have deleted an old one)
                tmp = folder / f".{MANIFEST}.tmp"
                tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
                os.replace(tmp, folder / MANIFEST)
        self._pending.clear()

    def wait(self) -> None:
        self._manager.wait_until_finished()
        self._write_manifests()

    def close(self) -> None:
        self.wait()
        self._manager.close()

    # ---- restoring ------------------------------------------------------------------------------
    def check_manifest(self, step: int) -> dict:
        """The step's manifest; IncompleteStepError (naming the folder) when its save never finished."""
        folder = self.directory / str(step)
        manifest = self.manifest(step)
        if manifest is None:
            what = "is empty" if folder.is_dir() and not any(folder.iterdir()) else f"has no readable {MANIFEST}"
            raise IncompleteStepError(f"checkpoint step {step} ({folder}) {what}: its save never finished")
        return manifest

    @staticmethod
    def _compare(step: int, want: dict, got: dict, prefix: str = "") -> None:
        for path, checksum in got.items():
            if want.get(prefix + path) != checksum:
                raise CheckpointError(f"checkpoint step {step}: tensor '{prefix + path}' does not match the checksum "
                                      f"recorded when it was saved (a damaged file)")

    def restore(self, abstract_state: TrainState, step: int | None = None) -> tuple[TrainState, Any, dict]:
        """Restore one step, verified, onto the shardings carried by `abstract_state` (any mesh)."""
        step = self._resolve_step(step)
        manifest = self.check_manifest(step)
        try:
            restored = self._manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_state),
                    data=ocp.args.JsonRestore(),
                    config=ocp.args.JsonRestore(),
                ),
            )
        except Exception as e:  # noqa: BLE001 - tensorstore/orbax raise many kinds for a damaged file
            raise CheckpointError(f"checkpoint step {step} cannot be read ({_first_line(e)})") from e
        self._compare(step, manifest["arrays"], fingerprint(restored.state)[0])
        for item, value in (("data", restored.data), ("config", restored.config)):
            if json_digest(value) != manifest[f"{item}_sha256"]:
                raise CheckpointError(f"checkpoint step {step}: its {item} item does not match its checksum")
        return restored.state, restored.data, restored.config

    def restore_newest_good(self, abstract_state: TrainState, step: int | None = None) -> Restored | None:
        """`step`, or else the newest step that restores and verifies; damaged newer ones are named.

        None when no save ever finished (a run killed before its first complete checkpoint); a
        damaged step with no good one before it is an error, for a person to look at.
        """
        if step is not None:
            return Restored(step, *self.restore(abstract_state, step), damaged={})
        damaged: dict[int, str] = {}
        incomplete: list[int] = []
        for candidate in reversed(self.all_steps()):
            try:
                result = Restored(candidate, *self.restore(abstract_state, candidate), damaged=damaged)
            except CheckpointError as e:
                damaged[candidate] = str(e)
                if isinstance(e, IncompleteStepError):
                    incomplete.append(candidate)
                print(f"warning: {e}; trying the previous checkpoint", file=sys.stderr, flush=True)
                continue
            if damaged:
                print(f"using checkpoint step {candidate}, the newest good one (skipped damaged steps "
                      f"{sorted(damaged)})", file=sys.stderr, flush=True)
            return result
        if len(incomplete) == len(damaged):
            return None
        raise CheckpointError(f"{self.directory}: no good checkpoint"
                              + (f" (damaged steps: {sorted(damaged)})" if damaged else ""))

    def set_aside_after(self, step: int) -> list[int]:
        """Move the step folders newer than `step` (damaged, or past a --resume-from) out of the way,
        into DIR.set-aside/, so the resumed run can write those steps again. Nothing is deleted."""
        newer = [s for s in self.all_steps() if s > step]
        if self._is_writer and newer:
            aside = self.directory.with_name(self.directory.name + ".set-aside") / time.strftime("%Y%m%d-%H%M%S")
            aside.mkdir(parents=True, exist_ok=True)
            for s in newer:
                shutil.move(str(self.directory / str(s)), str(aside / str(s)))
            print(f"moved checkpoint steps {newer} aside to {aside}", file=sys.stderr, flush=True)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("checkpoint set_aside_after")
        self._manager.reload()
        return newer

    def restore_params(self, abstract_params: Any, step: int | None = None) -> Any:
        """Only the params of a training checkpoint (for export), skipping the optimizer state;
        verified against the step's manifest."""
        step = self._resolve_step(step)
        manifest = self.check_manifest(step)
        try:
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
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"checkpoint step {step} cannot be read ({_first_line(e)})") from e
        params = restored.state["params"]
        self._compare(step, manifest["arrays"], fingerprint(params)[0], prefix="params/")
        return params

    def read_config(self, step: int | None = None) -> dict:
        step = self._resolve_step(step)
        try:
            return self._manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore())).config
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"checkpoint step {step}: its config cannot be read ({_first_line(e)})") from e
