"""HF safetensors folder -> Qwen3 model, one tensor at a time.

Every tensor is checked (present, expected, right shape) from the safetensors headers before any
data is read. Each param is then built with `jax.make_array_from_callback`: the callback reads only
the HF rows backing the block a device needs, so with a mesh a host never holds a tensor it does
not place. The model keeps HF's [out, in] orientation, so a block is a window of HF rows: reads are
`preadv` calls straight into the block buffer (or, for a column slice or a dtype cast, into a
reused per-thread scratch, then one copy), with no memory map whose touched pages would count
towards RSS. They run as row-chunk tasks on a small thread pool (preadv and numpy release the
GIL). Block buffers are page-aligned, so on CPU `device_put` adopts them: the block is the param.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from math import prod
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from safetensors import SafetensorError, safe_open
from tqdm import tqdm

import siamgpt_jax.convert.aligned as aligned
import siamgpt_jax.convert.names as names
from siamgpt_jax.convert.errors import CheckpointError, UnsupportedCheckpointError
from siamgpt_jax.convert.folders import INDEX_FILE, SINGLE_FILE
from siamgpt_jax.convert.st_rows import RowReader
from siamgpt_jax.model.config import Qwen3Config, UnsupportedConfigError, param_shapes
from siamgpt_jax.model.qwen3 import Qwen3, abstract_model, param_shardings

# The safetensors dtypes a weight may have; integer or fp8 tensors (quantized checkpoints) are refused.
_ST_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}
NONFINITE_HINT = "pass --allow-nonfinite to import it anyway"


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
        if headers[name][1] not in _ST_DTYPES.values():
            raise CheckpointError(
                f"{f}: tensor '{name}' has dtype {headers[name][1]}; only float weights "
                f"({', '.join(_ST_DTYPES)}) can be imported (quantized checkpoints are not supported)"
            )
    for name, (_, _, f) in headers.items():
        if name in expected or (config.tie_word_embeddings and name == names.TIED_OPTIONAL):
            continue
        raise CheckpointError(f"{f}: unexpected tensor '{name}' (not part of a qwen3 model with this config)")


def _norm(index: tuple, shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(*s.indices(n)[:2]) for s, n in zip(tuple(index) + (slice(None),) * (len(shape) - len(index)), shape))


CHUNK_BYTES = 4 << 20  # HF bytes per task: enough to amortise a syscall, small enough to spread over threads


class _Scratch(threading.local):
    buf: np.ndarray | None = None

    def get(self, nbytes: int) -> np.ndarray:
        if self.buf is None or self.buf.nbytes < nbytes:  # reused: no page faults after the first
            self.buf = np.empty(max(nbytes, CHUNK_BYTES), np.uint8)
        return self.buf[:nbytes]


def _check_finite(block: np.ndarray, f: Path, name: str) -> None:
    if not np.isfinite(block).all():
        raise CheckpointError(f"{f}: tensor '{name}' holds NaN or inf values ({NONFINITE_HINT})")


def _layer_tasks(reader: RowReader, tensors, entry, per_layer, index, name: str, dst: np.ndarray, scratch: _Scratch,
                 check_finite: bool = True):
    """Closures that together fill `dst` (one layer's block, model layout) from HF tensor `name`;
    with check_finite, a NaN or inf in it is a CheckpointError naming the file and tensor."""
    shape, src_dtype, f = tensors[name]
    window = names.hf_index(entry, per_layer, index)
    if window is None:  # head_dim split across devices over several heads: rare, take the simple path
        def slow():
            try:
                with safe_open(str(f), framework="numpy") as h:
                    np.copyto(dst, names.read_model_slice(entry, h.get_slice(name), per_layer, index), casting="unsafe")
            except SafetensorError as e:
                raise CheckpointError(f"{f}: cannot read tensor '{name}': {e}") from None
            if check_finite:
                _check_finite(dst, f, name)
        return [slow]
    rows, cols = window[0], window[1:]
    rest = shape[1:]
    n = rows.stop - rows.start
    d2 = dst.reshape(n, -1)  # the block is HF rows `rows`, columns `cols`, in the same order
    whole_rows = all(c.stop - c.start == m for c, m in zip(cols, rest))
    direct = whole_rows and src_dtype == dst.dtype  # the common case: read straight into the param
    row_bytes = prod(rest) * src_dtype.itemsize
    step = max(1, CHUNK_BYTES // max(row_bytes, 1))

    def task(r0: int, r1: int):
        def run():
            if direct:
                reader.read_rows(name, rows.start + r0, d2[r0:r1])
            else:
                buf = scratch.get((r1 - r0) * row_bytes).view(src_dtype).reshape((r1 - r0, *rest))
                reader.read_rows(name, rows.start + r0, buf)
                with np.errstate(over="ignore"):  # an overflow to inf is reported by the check below
                    np.copyto(d2[r0:r1], buf[(slice(None), *cols)].reshape(r1 - r0, -1), casting="unsafe")
            if check_finite:  # after the cast: an fp16 overflow is caught too
                _check_finite(d2[r0:r1], f, name)
        return run

    return [task(r0, min(r0 + step, n)) for r0 in range(0, n, step)]


def _reader(config, entry, tensors, dtype, reader: RowReader, pool: ThreadPoolExecutor, scratch: _Scratch,
            check_finite: bool):
    """Callback for make_array_from_callback: the block `index` of the stacked param.

    The block is built in a page-aligned buffer (on CPU, device_put then adopts it without a
    copy); its reads run as row-chunk tasks on `pool`.
    """
    full = param_shapes(config)[entry.path]
    per_layer = names.layer_shape(config, entry)

    def callback(index) -> np.ndarray:
        idx = _norm(index, full)
        if entry.layered:
            layers, rest = idx[0], idx[1:]
            hf = [entry.hf.format(i=i) for i in range(layers.start, layers.stop)]
        else:
            rest, hf = idx, [entry.hf]
        out = aligned.aligned_empty((len(hf), *(s.stop - s.start for s in rest)), dtype)
        tasks = [t for j, name in enumerate(hf)
                 for t in _layer_tasks(reader, tensors, entry, per_layer, rest, name, out[j], scratch, check_finite)]
        for fut in [pool.submit(t) for t in tasks]:
            fut.result()  # re-raises a task's CheckpointError here
        return out if entry.layered else out[0]

    return callback


def load_hf(
    path: str | Path,
    *,
    dtype=None,
    mesh=None,
    rules=None,
    compute_dtype=jnp.bfloat16,
    progress: bool = True,
    threads: int | None = None,
    allow_nonfinite: bool = False,
    **kwargs,
) -> Qwen3:
    """Load an HF Qwen3 folder (config.json + safetensors) into a Qwen3 model.

    dtype: the param dtype; None keeps the checkpoint's (e.g. bf16 stays bf16). compute_dtype is the
    model's activation dtype. With `mesh`, each param lands directly on its NamedSharding (from
    its logical axes and `rules`). `threads` (default: CPU count, at most 8) read row chunks in
    parallel. A NaN or inf weight is a CheckpointError unless `allow_nonfinite`. Other kwargs
    (remat, attention) go to Qwen3.
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
    wanted = {n for e in names.entries(config) for n in names.hf_names(config, e)}
    tensors = {n: (shape, np.dtype(jnp.dtype(dt)), f) for n, (shape, dt, f) in headers.items() if n in wanted}
    threads = threads or min(os.cpu_count() or 1, 8)
    with RowReader(tensors) as reader, ThreadPoolExecutor(threads, thread_name_prefix="load_hf") as pool:
        scratch = _Scratch()
        for entry in names.entries(config):
            keys = tuple(entry.path.split("."))
            sharding = flat_shardings[keys]
            if isinstance(sharding, nnx.Variable):  # to_flat_state keeps leaves wrapped
                sharding = sharding.value
            shape = param_shapes(config)[entry.path]
            callback = _reader(config, entry, tensors, np_dtype, reader, pool, scratch, not allow_nonfinite)
            arr = jax.make_array_from_callback(shape, sharding, callback)
            bar.update(len(names.hf_names(config, entry)))
            node = pure
            for k in keys[:-1]:
                node = node[k]
            node[keys[-1]] = arr
            bar.set_postfix_str(entry.path)
    bar.close()
    nnx.replace_by_pure_dict(abstract_state, pure)
    return nnx.merge(graphdef, abstract_state)
