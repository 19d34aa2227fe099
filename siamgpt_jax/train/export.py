"""Read the trained params of a training checkpoint one array (or one layer) at a time.

A run's checkpoint holds the params in the orbax `state` item, next to the optimizer state, which
an export never needs. `open_trained` opens each param array with tensorstore (convert/ts_arrays),
so `export-hf` reads a layer at a time and `load_trained_model` lets each device read its block.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from siamgpt_jax.convert import ts_arrays
from siamgpt_jax.convert.errors import CheckpointError
from siamgpt_jax.convert.params_ckpt import model_from_arrays
from siamgpt_jax.model.config import Qwen3Config, param_shapes
from siamgpt_jax.train.checkpoint import CheckpointConfig, Checkpointer


def find_checkpoint_dir(path: str | Path) -> tuple[Path, int | None]:
    """RUN_DIR, RUN_DIR/checkpoints or RUN_DIR/checkpoints/STEP -> (checkpoints dir, step or None=latest)."""
    path = Path(path)
    if path.name.isdigit() and (path / "state").is_dir():
        return path.parent, int(path.name)
    if (path / "checkpoints").is_dir():
        path = path / "checkpoints"
    if any(p.name.isdigit() for p in path.iterdir()) if path.is_dir() else False:
        return path, None
    raise FileNotFoundError(f"{path}: no training checkpoint here (expected RUN_DIR, RUN_DIR/checkpoints or a step folder)")


def is_training_checkpoint(path: str | Path) -> bool:
    try:
        find_checkpoint_dir(path)
        return True
    except FileNotFoundError:
        return False


@dataclass(frozen=True)
class TrainedCheckpoint:
    directory: Path  # RUN_DIR/checkpoints
    step: int
    job: dict  # the run's resolved config, as saved with the checkpoint
    config: Qwen3Config
    arrays: dict[str, object]  # param path -> tensorstore array


def open_trained(path: str | Path) -> TrainedCheckpoint:
    """The latest (or the named) step of a run, its config, and its params opened for reading."""
    directory, step = find_checkpoint_dir(path)
    ckpt = Checkpointer(directory, CheckpointConfig(async_save=False))
    try:
        step = ckpt.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"{directory}: no finished checkpoint")
        saved = ckpt.read_config(step)
    finally:
        ckpt.close()
    config = Qwen3Config(**saved["architecture"])
    state_dir = directory / str(step) / "state"
    arrays = {p: ts_arrays.orbax_array(state_dir, f"params.{p}") for p in param_shapes(config)}
    for p, shape in param_shapes(config).items():
        if tuple(arrays[p].shape) != tuple(shape):
            raise CheckpointError(f"{state_dir}: param '{p}' has shape {list(arrays[p].shape)}, "
                                  f"but the run's config implies {list(shape)}")
    return TrainedCheckpoint(directory, step, saved["job"], config, arrays)


def load_trained_model(path: str | Path, **kwargs):
    """The model (params only: the optimizer state is not read) at the latest or given step;
    kwargs as convert.params_ckpt.model_from_arrays (mesh, rules, dtype, param_dtype, ...)."""
    import jax.numpy as jnp

    trained = open_trained(path)
    kwargs.setdefault("attention", "xla")
    kwargs.setdefault("dtype", jnp.float32)
    return model_from_arrays(trained.config, trained.arrays, **kwargs)
