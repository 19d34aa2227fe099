"""HF safetensors folder -> Qwen3 model, one tensor at a time.

Every tensor is checked (present, expected, right shape) from the safetensors headers before any
data is read. Each param is then built with `jax.make_array_from_callback`: the callback reads only
the block a device needs (safetensors `get_slice`), so with a mesh a host never holds a tensor it
does not place. Each read opens and closes its file, so the memory map (which counts towards RSS)
never outlives one tensor.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from safetensors import SafetensorError, safe_open
from tqdm import tqdm

from siamgpt_jax.convert import names
from siamgpt_jax.convert.errors import CheckpointError, UnsupportedCheckpointError
from siamgpt_jax.model.config import Qwen3Config, UnsupportedConfigError, param_shapes
from siamgpt_jax.model.qwen3 import Qwen3, abstract_model, param_shardings

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"

_ST_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}


def read_hf_config(path: str | Path) -> Qwen3Config:
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        raise CheckpointError(f"{cfg}: not found (an HF model folder needs config.json)")
    try:
        return Qwen3Config.from_hf_file(cfg)
    except UnsupportedConfigError as e:
        raise UnsupportedCheckpointError(str(e)) from None
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"{cfg}: invalid config: {e}") from None


def weight_files(path: str | Path) -> dict[str, Path]:
    """HF tensor name -> the file that holds it (sharded index or single file)."""
    path = Path(path)
    index = path / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise CheckpointError(f"{index}: not a valid safetensors index: {e}") from None
        out = {name: path / fname for name, fname in weight_map.items()}
        for f in sorted(set(out.values())):
            if not f.is_file():
                raise CheckpointError(f"{index}: lists shard {f.name}, which does not exist")
        return out
    single = path / SINGLE_FILE
    if not single.is_file():
        raise CheckpointError(f"{path}: neither {INDEX_FILE} nor {SINGLE_FILE} found")
    with _open(single) as f:
        return {name: single for name in f.keys()}


def _open(file: Path):
    try:
        return safe_open(str(file), framework="numpy")
    except SafetensorError as e:
        raise CheckpointError(f"{file}: truncated or corrupt safetensors file: {e}") from None


def scan_headers(files: dict[str, Path]) -> dict[str, tuple[tuple[int, ...], str, Path]]:
    """name -> (shape, dtype, file), from the headers only. Checks the index against the files."""
    out: dict[str, tuple[tuple[int, ...], str, Path]] = {}
    by_file: dict[Path, list[str]] = {}
    for name, f in files.items():
        by_file.setdefault(f, []).append(name)
    for f, listed in by_file.items():
        with _open(f) as h:
            present = set(h.keys())
            for name in listed:
                if name not in present:
                    raise CheckpointError(f"{f}: tensor '{name}' is listed in the index but missing from the file")
                s = h.get_slice(name)
                out[name] = (tuple(s.get_shape()), _ST_DTYPES.get(s.get_dtype(), s.get_dtype()), f)
    return out


def check_tensors(config: Qwen3Config, headers: dict[str, tuple[tuple[int, ...], str, Path]], where: Path) -> None:
    """Missing, unexpected and wrongly shaped tensors are errors naming the tensor and the file."""
    expected = names.expected_hf_shapes(config)
    for name, shape in expected.items():
        if name not in headers:
            raise CheckpointError(f"{where}: missing tensor '{name}' (expected shape {list(shape)})")
        got, _, f = headers[name]
        if tuple(got) != tuple(shape):
            raise CheckpointError(
                f"{f}: tensor '{name}' has shape {list(got)}, but config.json implies {list(shape)}"
            )
    for name, (_, _, f) in headers.items():
        if name in expected or (config.tie_word_embeddings and name == names.TIED_OPTIONAL):
            continue
        raise CheckpointError(f"{f}: unexpected tensor '{name}' (not part of a qwen3 model with this config)")


def _norm(index: tuple, shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(*s.indices(n)[:2]) for s, n in zip(tuple(index) + (slice(None),) * (len(shape) - len(index)), shape))


def _reader(config, entry, headers, dtype):
    """Callback for make_array_from_callback: the block `index` of the stacked param."""
    full = param_shapes(config)[entry.path]
    per_layer = names.layer_shape(config, entry)

    def read(name: str, index: tuple[slice, ...]) -> np.ndarray:
        f = headers[name][2]
        try:
            with safe_open(str(f), framework="numpy") as h:
                block = names.read_model_slice(entry, h.get_slice(name), per_layer, index)
        except SafetensorError as e:
            raise CheckpointError(f"{f}: cannot read tensor '{name}': {e}") from None
        return block.astype(dtype, copy=False)

    def callback(index) -> np.ndarray:
        idx = _norm(index, full)
        if not entry.layered:
            return read(entry.hf, idx)
        layers, rest = idx[0], idx[1:]
        out = np.empty([layers.stop - layers.start] + [s.stop - s.start for s in rest], dtype)
        for j, i in enumerate(range(layers.start, layers.stop)):
            out[j] = read(entry.hf.format(i=i), rest)
        return out

    return callback


def load_hf(
    path: str | Path,
    *,
    dtype=None,
    mesh=None,
    rules=None,
    compute_dtype=jnp.bfloat16,
    progress: bool = True,
    **kwargs,
) -> Qwen3:
    """Load an HF Qwen3 folder (config.json + safetensors) into a Qwen3 model.

    dtype: the param dtype; None keeps the checkpoint's (e.g. bf16 stays bf16). compute_dtype is the
    model's activation dtype. With `mesh`, each param lands directly on its NamedSharding (from
    its logical axes and `rules`). Other kwargs (remat, attention) go to Qwen3.
    """
    path = Path(path)
    config = read_hf_config(path)
    headers = scan_headers(weight_files(path))
    check_tensors(config, headers, path)
    if dtype is None:
        dtype = headers[names.ENTRIES[0].hf][1]
    np_dtype = np.dtype(jnp.dtype(dtype))

    model = abstract_model(config, param_dtype=np_dtype, dtype=compute_dtype, **kwargs)
    graphdef, abstract_state = nnx.split(model)
    if mesh is not None:
        shardings = param_shardings(abstract_state, mesh, rules)
    else:
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        shardings = jax.tree.map(lambda v: device, abstract_state, is_leaf=lambda x: isinstance(x, nnx.Variable))
    flat_shardings = dict(nnx.to_flat_state(shardings))

    n_tensors = len(names.expected_hf_shapes(config))
    bar = tqdm(total=n_tensors, unit="tensor", desc=f"import {path.name}", disable=not progress)
    pure = nnx.to_pure_dict(abstract_state)
    for entry in names.entries(config):
        keys = tuple(entry.path.split("."))
        sharding = flat_shardings[keys]
        if isinstance(sharding, nnx.Variable):  # to_flat_state keeps leaves wrapped
            sharding = sharding.value
        shape = param_shapes(config)[entry.path]
        arr = jax.make_array_from_callback(shape, sharding, _reader(config, entry, headers, np_dtype))
        bar.update(len(names.hf_names(config, entry)))
        node = pure
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = arr
        bar.set_postfix_str(entry.path)
    bar.close()
    nnx.replace_by_pure_dict(abstract_state, pure)
    return nnx.merge(graphdef, abstract_state)
