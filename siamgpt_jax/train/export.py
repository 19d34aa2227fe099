"""Rebuild the trained Qwen3 from a training checkpoint (for `export-hf` and evaluation)."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp

from siamgpt_jax.model.config import Qwen3Config
from siamgpt_jax.train.checkpoint import CheckpointConfig, Checkpointer
from siamgpt_jax.train.state import ModelDef


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


def load_trained_model(path: str | Path, *, dtype=jnp.float32):
    """The model (params only: the optimizer state is not read) at the latest or given step."""
    from siamgpt_jax.model.qwen3 import abstract_model

    directory, step = find_checkpoint_dir(path)
    ckpt = Checkpointer(directory, CheckpointConfig(async_save=False))
    saved = ckpt.read_config(step)
    arch = Qwen3Config(**saved["architecture"])
    param_dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[saved["job"]["model"]["param_dtype"]]
    model_def, abstract_params = ModelDef.split(abstract_model(arch, param_dtype=param_dtype, dtype=dtype, attention="xla"))
    params = jax.tree.map(jnp.asarray, ckpt.restore_params(abstract_params, step))  # host numpy -> device
    ckpt.close()
    return model_def.merge(params)
