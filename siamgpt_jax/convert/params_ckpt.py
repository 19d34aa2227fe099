"""Params checkpoint: the model's params as one zarr3 array per param, written and read a layer
at a time (tensorstore), plus the model config as JSON. `import-hf` writes it; `train` starts from
it (model.params_checkpoint) and `export-hf` reads it, neither holding more than a layer on a host.

Layout of CKPT_DIR:  model_config.json  +  params/<param path>/ (zarr3)  +  tokenizer/ (the HF
folder's tokenizer files, when it had them). The folder is written as a hidden temporary sibling
and renamed into place when complete, so a folder named CKPT_DIR is always a whole checkpoint.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm import tqdm

import siamgpt_jax.convert.aligned as aligned
import siamgpt_jax.convert.folders as folders
import siamgpt_jax.convert.hf_import as hf_import
import siamgpt_jax.convert.names as names
import siamgpt_jax.convert.ts_arrays as ts_arrays
from siamgpt_jax.convert.errors import CheckpointError
from siamgpt_jax.convert.st_rows import RowReader
from siamgpt_jax.model.config import Qwen3Config, param_shapes
from siamgpt_jax.model.qwen3 import Qwen3, abstract_model, param_shardings

CONFIG_FILE = "model_config.json"
PARAMS_DIR = "params"
TOKENIZER_DIR = "tokenizer"


def is_params_checkpoint(path: str | Path) -> bool:
    return (Path(path) / CONFIG_FILE).is_file() and (Path(path) / PARAMS_DIR).is_dir()


def import_hf(hf_dir: str | Path, ckpt_dir: str | Path, *, dtype=None, allow_nonfinite: bool = False,
              progress: bool = True, threads: int | None = None) -> Path:
    """HF folder -> params checkpoint, one HF tensor at a time (host memory: about two layers).

    dtype: the stored param dtype; None keeps the checkpoint's. Every tensor is validated first
    (hf_import.check_tensors); a NaN or inf is an error naming file and tensor unless allow_nonfinite.
    """
    hf_dir, ckpt_dir = Path(hf_dir), Path(ckpt_dir).absolute()
    folders.check_target(ckpt_dir, overwrite=False, hf_export=False)
    config = hf_import.read_hf_config(hf_dir)
    headers = hf_import.scan_headers(hf_import.weight_files(hf_dir))
    hf_import.check_tensors(config, headers, hf_dir)
    np_dtype = np.dtype(jnp.dtype(dtype if dtype is not None else headers[names.ENTRIES[0].hf][1]))
    wanted = {n for e in names.entries(config) for n in names.hf_names(config, e)}
    tensors = {n: (shape, np.dtype(jnp.dtype(dt)), f) for n, (shape, dt, f) in headers.items() if n in wanted}

    recheck = functools.partial(folders.check_target, ckpt_dir, overwrite=False, hf_export=False)
    with folders.replacing(ckpt_dir, recheck) as tmp:
        threads = threads or min(os.cpu_count() or 1, 8)
        total = sum(int(np.prod(s)) * np_dtype.itemsize for s in names.expected_hf_shapes(config).values())
        bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"import {hf_dir.name}", disable=not progress)
        pending = None  # the previous layer's write: it commits while the next one is read
        try:
            with RowReader(tensors) as reader, ThreadPoolExecutor(threads, thread_name_prefix="import_hf") as pool:
                scratch = hf_import._Scratch()
                for entry in names.entries(config):
                    per_layer = names.layer_shape(config, entry)
                    arr = ts_arrays.create_array(tmp / PARAMS_DIR / entry.path, param_shapes(config)[entry.path],
                                                 np_dtype, layered=entry.layered)
                    buf = aligned.aligned_empty(per_layer, np_dtype)
                    full = tuple(slice(0, n) for n in per_layer)
                    for layer, name in enumerate(names.hf_names(config, entry)):
                        tasks = hf_import._layer_tasks(reader, tensors, entry, per_layer, full, name, buf, scratch,
                                                       not allow_nonfinite)
                        for fut in [pool.submit(t) for t in tasks]:
                            fut.result()
                        if pending is not None:
                            pending.result()
                        pending = arr[layer].write(buf) if entry.layered else arr.write(buf)
                        pending.copy.result()  # tensorstore holds its own copy now: buf can be refilled
                        bar.update(buf.nbytes)
                    pending.result()
                    pending = None
                    bar.set_postfix_str(entry.path)
            bar.close()
            meta = config.to_hf_dict(torch_dtype=np_dtype.name)
            (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
            tok = [hf_dir / f for f in folders.TOKENIZER_FILES if (hf_dir / f).is_file()]
            if tok:
                (tmp / TOKENIZER_DIR).mkdir()
                for f in tok:
                    shutil.copy2(f, tmp / TOKENIZER_DIR / f.name)
        except BaseException:
            if pending is not None:  # let tensorstore finish, or it writes into the folder being removed
                pending.exception()
            raise
    return ckpt_dir


def read_config(ckpt_dir: str | Path) -> tuple[Qwen3Config, str]:
    """(model config, param dtype name) of a params checkpoint."""
    path = Path(ckpt_dir) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: not found; {ckpt_dir} is not a params checkpoint (siamgpt-jax import-hf)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON: {e}") from None
    return Qwen3Config.from_hf_dict(meta, source=str(path)), meta.get("torch_dtype", "float32")


def open_params(ckpt_dir: str | Path) -> tuple[Qwen3Config, dict[str, object]]:
    """(config, {param path: tensorstore array}), each array checked against the config's shape."""
    ckpt_dir = Path(ckpt_dir)
    config, _ = read_config(ckpt_dir)
    arrays = {}
    for path, shape in param_shapes(config).items():
        arr = ts_arrays.open_array(ckpt_dir / PARAMS_DIR / path)
        if tuple(arr.shape) != tuple(shape):
            raise CheckpointError(f"{ckpt_dir / PARAMS_DIR / path}: shape {list(arr.shape)}, but "
                                  f"{CONFIG_FILE} implies {list(shape)}")
        arrays[path] = arr
    return config, arrays


class ArrayReader:
    """A hf_export.Reader over tensorstore arrays keyed by param path.

    A stacked param is read in runs of layers that match its storage chunks: one layer at a time
    from a params checkpoint or a training checkpoint (both chunked by layer). A checkpoint whose
    chunks span several layers (orbax's default chunking) sets `param_major`: the export then
    writes all layers of one param before the next, so each chunk is read once and only one run
    is held, instead of every param's run (the whole model) in HF's layer-by-layer order.
    """

    def __init__(self, arrays: dict[str, object]):
        self.arrays = arrays
        self.span = {p: max(1, int(a.chunk_layout.read_chunk.shape[0] or 1)) if a.ndim > 1 else 1
                     for p, a in arrays.items()}
        self.param_major = any(s > 1 for p, s in self.span.items() if p.startswith("layers."))
        self._held: tuple[str, int, int, np.ndarray] | None = None  # (path, first layer, end, values)

    def __call__(self, entry: names.Entry, layer: int | None) -> np.ndarray:
        arr = self.arrays[entry.path]
        if layer is None:
            return ts_arrays.read(arr)
        if self.span[entry.path] == 1:
            return ts_arrays.read(arr, layer)
        held = self._held
        if held is None or held[0] != entry.path or not held[1] <= layer < held[2]:
            first = layer - layer % self.span[entry.path]
            end = min(first + self.span[entry.path], arr.shape[0])
            self._held = None  # drop the previous run before reading the next
            held = self._held = (entry.path, first, end, ts_arrays.read(arr, slice(first, end)))
        return held[3][layer - held[1]]


def array_reader(arrays: dict[str, object]) -> ArrayReader:
    return ArrayReader(arrays)


def load_params(ckpt_dir: str | Path, **kwargs) -> Qwen3:
    """A Qwen3 from a params checkpoint (kwargs as model_from_arrays)."""
    return model_from_arrays(*open_params(ckpt_dir), **kwargs)


def model_from_arrays(config: Qwen3Config, arrays: dict[str, object], *, mesh=None, rules=None, dtype=jnp.bfloat16,
                      param_dtype=None, **kwargs) -> Qwen3:
    """A Qwen3 whose params are read from tensorstore arrays; each device reads only its own block.

    dtype is the compute dtype; param_dtype (default: as stored) casts while reading. With a
    mesh, params land on their shardings; without one, on the first device. kwargs go to Qwen3.
    """
    stored = np.dtype(arrays[names.ENTRIES[0].path].dtype.numpy_dtype)
    param_dtype = np.dtype(jnp.dtype(param_dtype)) if param_dtype is not None else stored
    graphdef, abstract_state = nnx.split(abstract_model(config, param_dtype=param_dtype, dtype=dtype, **kwargs))
    if mesh is not None:
        shardings = nnx.to_pure_dict(param_shardings(abstract_state, mesh, rules))
    else:
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        shardings = jax.tree.map(lambda _: device, nnx.to_pure_dict(abstract_state))
    pure = nnx.to_pure_dict(abstract_state)
    for path in param_shapes(config):
        keys = path.split(".")
        node, shard_node = pure, shardings
        for k in keys[:-1]:
            node, shard_node = node[k], shard_node[k]
        arr = arrays[path]

        def block(index, arr=arr):
            return ts_arrays.read(arr, index).astype(param_dtype, copy=False)

        node[keys[-1]] = jax.make_array_from_callback(tuple(arr.shape), shard_node[keys[-1]], block)
    nnx.replace_by_pure_dict(abstract_state, pure)
    return nnx.merge(graphdef, abstract_state)
