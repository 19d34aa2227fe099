"""Qwen3 params -> HF folder: config.json, generation_config.json, safetensors shards (+ index).

The writer takes a `read(entry, layer)` function that returns ONE HF tensor's worth of one param
(a layer of a stacked param, or a whole unstacked one), so it never needs the model in memory:
an in-memory model (`save_hf`), a params checkpoint or a training checkpoint (both read one layer
at a time from disk with tensorstore) all feed it. Host memory stays at about the tensor being
converted: a shard's header is written first and each tensor's bytes as soon as it is read
(convert/st_write.py), so no shard is ever held whole. Everything is written into a hidden
temporary sibling folder that is swapped into place at the end (convert/folders.py), so an
interrupted export never leaves a folder that looks complete, and never leaves no folder where
there was one.
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from tqdm import tqdm

import siamgpt_jax.convert.folders as folders
import siamgpt_jax.convert.names as names
from siamgpt_jax.config import ConfigError, parse_size
from siamgpt_jax.convert.folders import INDEX_FILE, SINGLE_FILE, TOKENIZER_FILES
from siamgpt_jax.convert.st_write import SafetensorsWriter
from siamgpt_jax.errors import UserError
from siamgpt_jax.model.config import Qwen3Config

# read(entry, layer) -> that param's tensor for one layer (layer=None for unstacked params), model layout
Reader = Callable[[names.Entry, "int | None"], np.ndarray]

DTYPES = ("bfloat16", "float32", "float16")


def _host(x: jax.Array) -> np.ndarray:
    """The whole value on this host, gathering across processes when needed."""
    if not x.is_fully_addressable:
        x = multihost_utils.process_allgather(x, tiled=True)
    return np.asarray(x)


def model_reader(model) -> Reader:
    """Reader over an in-memory model: pulls one layer of one param to the host at a time (every
    process of a multi-host model must call it, in the same order: it gathers)."""

    def read(entry: names.Entry, layer: int | None) -> np.ndarray:
        param = model
        for k in entry.path.split("."):
            param = getattr(param, k)
        return _host(param[...][layer] if layer is not None else param[...])

    return read


def _plan_shards(sizes: list[tuple[str, int]], max_bytes: int) -> list[list[str]]:
    """Greedy in HF order: start a new shard when the next tensor would overflow this one."""
    shards: list[list[str]] = [[]]
    used = 0
    for name, n in sizes:
        if shards[-1] and used + n > max_bytes:
            shards.append([])
            used = 0
        shards[-1].append(name)
        used += n
    return shards


def _generation_config(config) -> dict:
    out = {"_from_model_config": True, "bos_token_id": config.bos_token_id, "eos_token_id": config.eos_token_id}
    if config.pad_token_id is not None:
        out["pad_token_id"] = config.pad_token_id
    return out


def tokenizer_files(tokenizer_dir: str | Path) -> list[Path]:
    found = [Path(tokenizer_dir) / f for f in TOKENIZER_FILES if (Path(tokenizer_dir) / f).is_file()]
    if not found:
        raise UserError(f"{tokenizer_dir}: no tokenizer files (looked for {', '.join(TOKENIZER_FILES)})")
    return found


def write_hf(
    config: Qwen3Config,
    read: Reader,
    out_dir: str | Path,
    *,
    dtype: str = "bfloat16",
    max_shard_size: int | str = "5GB",
    write_extra: Callable[[Path], None] | None = None,
    overwrite: bool = False,
    force: bool = False,
    all_processes_read: bool = False,
    progress: bool = True,
) -> Path:
    """Write an HF Qwen3 folder, one tensor at a time, loadable by AutoModelForCausalLM.from_pretrained.

    write_extra(folder) adds files (the tokenizer) to the temp folder before the swap.
    Tensors are written in HF's order (layer by layer), or param by param when `read.param_major`
    says its storage is chunked across layers. all_processes_read: `read` is a collective (an
    in-memory multi-host model): processes other than 0 call it in the same order and write
    nothing. Otherwise only process 0 reads and writes.
    """
    out_dir = Path(out_dir)
    if dtype not in DTYPES:
        raise UserError(f"dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    np_dtype = np.dtype(jnp.dtype(dtype))
    try:
        max_bytes = int(parse_size(max_shard_size))
    except ConfigError:
        raise UserError(f"max_shard_size={max_shard_size!r}: expected e.g. '5GB', '500MB', '2GiB' or a byte count") from None
    by_name = {n: (e, i if e.layered else None) for e in names.entries(config)
               for i, n in enumerate(names.hf_names(config, e))}
    shapes = names.expected_hf_shapes(config)
    if getattr(read, "param_major", False):  # every layer of a param, then the next (ArrayReader)
        shapes = {n: shapes[n] for e in names.entries(config) for n in names.hf_names(config, e)}
    sizes = [(name, int(np.prod(shape)) * np_dtype.itemsize) for name, shape in shapes.items()]
    shards = _plan_shards(sizes, max_bytes)
    sizes_by_name = dict(sizes)

    def tensor(name: str) -> np.ndarray:
        entry, layer = by_name[name]
        return names.to_hf(entry, read(entry, layer).astype(np_dtype, copy=False))

    if jax.process_index() != 0:
        if all_processes_read:
            for name in shapes:
                tensor(name)
        return out_dir

    folders.check_target(out_dir, overwrite=overwrite, force=force)
    recheck = functools.partial(folders.check_target, out_dir, overwrite=overwrite, force=force)
    with folders.replacing(out_dir, recheck) as tmp:
        count = len(shards)
        files = [SINGLE_FILE] if count == 1 else [f"model-{k + 1:05d}-of-{count:05d}.safetensors" for k in range(count)]
        weight_map = {}
        total = sum(s for _, s in sizes)
        bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"export {out_dir.name}", disable=not progress)
        for fname, shard in zip(files, shards):
            bar.set_postfix_str(fname)
            with SafetensorsWriter(tmp / fname, [(t, shapes[t], np_dtype) for t in shard], {"format": "pt"}) as w:
                for name in shard:
                    w.write(name, tensor(name))
                    weight_map[name] = fname
                    bar.update(sizes_by_name[name])
        bar.close()
        if count > 1:
            index = {"metadata": {"total_size": total}, "weight_map": weight_map}
            (tmp / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
        (tmp / "config.json").write_text(
            json.dumps(config.to_hf_dict(torch_dtype=np_dtype.name), indent=2) + "\n", encoding="utf-8"
        )
        (tmp / "generation_config.json").write_text(
            json.dumps(_generation_config(config), indent=2) + "\n", encoding="utf-8"
        )
        if write_extra is not None:
            write_extra(tmp)
    return out_dir


def copy_tokenizer(tokenizer_dir: str | Path) -> Callable[[Path], None]:
    files = tokenizer_files(tokenizer_dir)

    def write(folder: Path) -> None:
        for f in files:
            shutil.copy2(f, folder / f.name)

    return write


def save_hf(model, out_dir: str | Path, *, tokenizer_dir: str | Path | None = None, **kwargs) -> Path:
    """Write an in-memory `model` as an HF Qwen3 folder (kwargs as write_hf); tokenizer files are
    copied from `tokenizer_dir` when given."""
    extra = copy_tokenizer(tokenizer_dir) if tokenizer_dir is not None else None
    return write_hf(model.config, model_reader(model), out_dir, write_extra=extra,
                    all_processes_read=True, **kwargs)
