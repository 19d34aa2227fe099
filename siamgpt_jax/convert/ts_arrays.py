"""Checkpoint arrays opened one at a time with tensorstore, so a reader holds a layer, not a model.

Two kinds of folder hold the model's params:
  - an orbax checkpoint (a training run's `state` item): its arrays are zarr arrays inside orbax's
    OCDBT store; `orbax_array` opens one by its tree key with orbax's own read spec;
  - a params checkpoint (`siamgpt-jax import-hf`): one zarr3 array per param path, chunked so that
    a chunk is at most one layer, written a layer at a time (`create_array`, `open_array`).
Either way a caller gets a `tensorstore.TensorStore` and reads `arr[i]` (one layer) or any block.
"""

from __future__ import annotations

import json
from functools import lru_cache
from math import prod
from pathlib import Path

import numpy as np
import tensorstore as ts

from siamgpt_jax.convert.errors import CheckpointError

CHUNK_BYTES = 64 << 20  # at most this per chunk: a device reading its block decodes whole chunks


@lru_cache(maxsize=None)
def _orbax_context():
    import orbax.checkpoint as ocp

    return ocp.type_handlers.get_ts_context(use_ocdbt=True)


def orbax_array(item_dir: str | Path, key: str) -> ts.TensorStore:
    """The array `key` (dot-joined tree path, e.g. 'params.layers.q_proj') of an orbax PyTree item."""
    import orbax.checkpoint as ocp
    from etils import epath

    item_dir = Path(item_dir).absolute()
    meta_file = item_dir / "_METADATA"
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{meta_file}: cannot read the checkpoint's metadata: {e}") from None
    use_ocdbt = bool(meta.get("use_ocdbt", True))
    ctx = _orbax_context()
    info = ocp.type_handlers.ParamInfo(
        name=key, parent_dir=epath.Path(item_dir), ts_context=ctx, is_ocdbt_checkpoint=use_ocdbt,
        use_zarr3=bool(meta.get("use_zarr3", False)),
    )
    spec = ocp.type_handlers.get_json_tspec_read(info, use_ocdbt=use_ocdbt)
    try:
        return ts.open(spec, read=True, context=ctx).result()
    except ValueError as e:
        raise CheckpointError(f"{item_dir}: cannot open array '{key}': {e}") from None


def _spec(directory: Path) -> dict:
    return {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(directory.absolute())}}


def chunk_shape(shape: tuple[int, ...], itemsize: int, layered: bool) -> list[int]:
    """One layer per chunk for stacked params; the next axis is cut until a chunk fits CHUNK_BYTES."""
    chunk = list(shape)
    if layered and chunk:
        chunk[0] = 1
    axis = 1 if layered else 0
    if axis < len(chunk):
        rest = prod(chunk[axis + 1:]) * itemsize * (chunk[0] if axis else 1)
        chunk[axis] = max(1, min(chunk[axis], CHUNK_BYTES // max(rest, 1)))
    return chunk


def create_array(directory: Path, shape: tuple[int, ...], dtype, *, layered: bool) -> ts.TensorStore:
    dtype = np.dtype(dtype)
    spec = _spec(directory) | {
        "metadata": {
            "shape": list(shape),
            "data_type": dtype.name,
            "chunk_grid": {"name": "regular",
                           "configuration": {"chunk_shape": chunk_shape(shape, dtype.itemsize, layered)}},
        }
    }
    return ts.open(spec, create=True).result()


def open_array(directory: Path) -> ts.TensorStore:
    try:
        return ts.open(_spec(directory), open=True, read=True).result()
    except ValueError as e:
        raise CheckpointError(f"{directory}: cannot open the array: {e}") from None


def read(arr: ts.TensorStore, index=()) -> np.ndarray:
    """arr[index] as a numpy array (one layer: index = i)."""
    return arr[index].read().result()
