"""Orbax checkpoint of the model params, plus the model config as JSON beside it.

Layout of CKPT_DIR:  params/ (orbax, written atomically by orbax)  +  model_config.json (written
last, via temp + rename). A folder without model_config.json is an incomplete checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from flax import nnx

from siamgpt_jax.convert.errors import CheckpointError
from siamgpt_jax.model.config import Qwen3Config
from siamgpt_jax.model.qwen3 import Qwen3, abstract_model, param_shardings

CONFIG_FILE = "model_config.json"
PARAMS_DIR = "params"


def save_params(model: Qwen3, ckpt_dir: str | Path) -> Path:
    ckpt_dir = Path(ckpt_dir).absolute()
    if (ckpt_dir / CONFIG_FILE).exists() or (ckpt_dir / PARAMS_DIR).exists():
        raise FileExistsError(f"{ckpt_dir}: already holds a params checkpoint")
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    state = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(ckpt_dir / PARAMS_DIR, state)
        ckptr.wait_until_finished()
    meta = model.config.to_hf_dict(torch_dtype=model.param_dtype.name)
    if jax.process_index() == 0:
        tmp = ckpt_dir / f".{CONFIG_FILE}.tmp"
        tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, ckpt_dir / CONFIG_FILE)
    return ckpt_dir


def read_config(ckpt_dir: str | Path) -> tuple[Qwen3Config, str]:
    """(model config, param dtype name) of a params checkpoint."""
    path = Path(ckpt_dir) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: not found; {ckpt_dir} is not a complete params checkpoint")
    meta = json.loads(path.read_text(encoding="utf-8"))
    return Qwen3Config.from_hf_dict(meta, source=str(path)), meta.get("torch_dtype", "float32")


def load_params(ckpt_dir: str | Path, *, mesh=None, rules=None, dtype=jnp.bfloat16, **kwargs) -> Qwen3:
    """Restore a Qwen3 from save_params' folder; with a mesh, params land on their shardings.

    dtype is the compute dtype; params keep the dtype they were saved in. kwargs go to Qwen3.
    """
    ckpt_dir = Path(ckpt_dir).absolute()
    config, param_dtype = read_config(ckpt_dir)
    graphdef, abstract_state = nnx.split(abstract_model(config, param_dtype=param_dtype, dtype=dtype, **kwargs))
    if mesh is not None:
        shardings = param_shardings(abstract_state, mesh, rules)
    else:
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        shardings = jax.tree.map(lambda v: device, abstract_state, is_leaf=lambda x: isinstance(x, nnx.Variable))
    target = jax.tree.map(
        lambda v, s: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=s),
        nnx.to_pure_dict(abstract_state),
        nnx.to_pure_dict(shardings),
    )
    with ocp.StandardCheckpointer() as ckptr:
        try:
            restored = ckptr.restore(ckpt_dir / PARAMS_DIR, target)
        except (FileNotFoundError, ValueError, KeyError) as e:
            raise CheckpointError(f"{ckpt_dir / PARAMS_DIR}: cannot restore params: {e}") from None
    nnx.replace_by_pure_dict(abstract_state, restored)
    return nnx.merge(graphdef, abstract_state)
