"""Qwen3 model -> HF folder: config.json, generation_config.json, safetensors shards (+ index).

Everything is written into a temporary sibling folder that is renamed into place at the end, so
an interrupted export never leaves a folder that looks complete. Tensors are pulled to the host
one layer at a time and only one shard is held in memory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from safetensors.numpy import save_file
from tqdm import tqdm

from siamgpt_jax.convert import names
from siamgpt_jax.convert.hf_import import INDEX_FILE, SINGLE_FILE
from siamgpt_jax.model.qwen3 import Qwen3

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
    "special_tokens_map.json", "added_tokens.json", "chat_template.jinja",
)
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(size: int | str) -> int:
    """'5GB' -> 5_000_000_000 (HF's convention: GB = 10^9, GiB = 2^30)."""
    if isinstance(size, int):
        return size
    m = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", str(size))
    unit = (m.group(2) or "B").upper() if m else ""
    if not m or unit not in _UNITS:
        raise ValueError(f"max_shard_size={size!r}: expected e.g. '5GB', '500MB', '2GiB' or a byte count")
    return int(float(m.group(1)) * _UNITS[unit])


def _host(x: jax.Array) -> np.ndarray:
    """The whole value on this host, gathering across processes when needed."""
    if not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        x = multihost_utils.process_allgather(x, tiled=True)
    return np.asarray(x)


def _hf_tensors(model: Qwen3, np_dtype):
    """(name, thunk) for every HF tensor in HF order; a thunk pulls and converts one tensor."""
    config = model.config
    by_name = {}
    for e in names.entries(config):
        param = model
        for k in e.path.split("."):
            param = getattr(param, k)
        for i, name in enumerate(names.hf_names(config, e)):
            by_name[name] = (e, param, i)
    for name, shape in names.expected_hf_shapes(config).items():
        e, param, i = by_name[name]

        def thunk(e=e, param=param, i=i):
            value = param[...][i] if e.layered else param[...]
            return names.to_hf(e, _host(value).astype(np_dtype))

        yield name, shape, thunk


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


def save_hf(
    model: Qwen3,
    out_dir: str | Path,
    *,
    dtype: str = "bfloat16",
    max_shard_size: int | str = "5GB",
    tokenizer_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write `model` as an HF Qwen3 folder loadable by AutoModelForCausalLM.from_pretrained."""
    out_dir = Path(out_dir)
    np_dtype = np.dtype(jnp.dtype(dtype))
    max_bytes = parse_size(max_shard_size)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir}: exists and is not empty (pass overwrite=True to replace it)")
    if tokenizer_dir is not None:
        tok_files = [Path(tokenizer_dir) / f for f in TOKENIZER_FILES if (Path(tokenizer_dir) / f).is_file()]
        if not tok_files:
            raise FileNotFoundError(f"{tokenizer_dir}: no tokenizer files (looked for {', '.join(TOKENIZER_FILES)})")
    tensors = list(_hf_tensors(model, np_dtype))
    sizes = [(name, int(np.prod(shape)) * np_dtype.itemsize) for name, shape, _ in tensors]
    shards = _plan_shards(sizes, max_bytes)
    thunks = {name: thunk for name, _, thunk in tensors}

    if jax.process_index() != 0:  # every process takes part in the gathers; one writes
        for shard in shards:
            for name in shard:
                thunks[name]()
        return out_dir

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        n = len(shards)
        files = [SINGLE_FILE] if n == 1 else [f"model-{k + 1:05d}-of-{n:05d}.safetensors" for k in range(n)]
        weight_map = {}
        bar = tqdm(total=len(tensors), unit="tensor", desc=f"export {out_dir.name}", disable=not progress)
        for fname, shard in zip(files, shards):
            data = {}
            for name in shard:
                data[name] = thunks[name]()
                weight_map[name] = fname
                bar.update(1)
            save_file(data, str(tmp / fname), metadata={"format": "pt"})
            bar.set_postfix_str(fname)
            del data
        bar.close()
        if n > 1:
            index = {"metadata": {"total_size": sum(s for _, s in sizes)}, "weight_map": weight_map}
            (tmp / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
        (tmp / "config.json").write_text(
            json.dumps(model.config.to_hf_dict(torch_dtype=np_dtype.name), indent=2) + "\n", encoding="utf-8"
        )
        (tmp / "generation_config.json").write_text(
            json.dumps(_generation_config(model.config), indent=2) + "\n", encoding="utf-8"
        )
        if tokenizer_dir is not None:
            for f in tok_files:
                shutil.copy2(f, tmp / f.name)
        if out_dir.exists():
            old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(out_dir, old)
            os.rename(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
