"""THE name table: HF tensor name <-> model param path, with the layout change between them.

Import and export both read `ENTRIES`; nothing else knows HF names. Layouts (per layer):

  kind        model                     HF (torch Linear weight = [out, in])
  copy        same                      same
  transpose   [in, out]                 [out, in]
  heads_in    [D, N, Dh]  (q/k/v)       [N*Dh, D]
  heads_out   [N, Dh, D]  (o_proj)      [D, N*Dh]
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np

from siamgpt_jax.model.config import Qwen3Config, param_shapes


@dataclass(frozen=True)
class Entry:
    path: str  # model param path, as in param_shapes
    hf: str  # HF tensor name; "{i}" is the layer index for stacked params
    kind: str  # copy | transpose | heads_in | heads_out

    @property
    def layered(self) -> bool:
        return "{i}" in self.hf


ENTRIES: tuple[Entry, ...] = (
    Entry("embed", "model.embed_tokens.weight", "copy"),
    Entry("layers.attn_norm", "model.layers.{i}.input_layernorm.weight", "copy"),
    Entry("layers.q_proj", "model.layers.{i}.self_attn.q_proj.weight", "heads_in"),
    Entry("layers.k_proj", "model.layers.{i}.self_attn.k_proj.weight", "heads_in"),
    Entry("layers.v_proj", "model.layers.{i}.self_attn.v_proj.weight", "heads_in"),
    Entry("layers.o_proj", "model.layers.{i}.self_attn.o_proj.weight", "heads_out"),
    Entry("layers.q_norm", "model.layers.{i}.self_attn.q_norm.weight", "copy"),
    Entry("layers.k_norm", "model.layers.{i}.self_attn.k_norm.weight", "copy"),
    Entry("layers.mlp_norm", "model.layers.{i}.post_attention_layernorm.weight", "copy"),
    Entry("layers.gate_proj", "model.layers.{i}.mlp.gate_proj.weight", "transpose"),
    Entry("layers.up_proj", "model.layers.{i}.mlp.up_proj.weight", "transpose"),
    Entry("layers.down_proj", "model.layers.{i}.mlp.down_proj.weight", "transpose"),
    Entry("final_norm", "model.norm.weight", "copy"),
    Entry("lm_head", "lm_head.weight", "transpose"),
)

# A tied checkpoint may still carry lm_head.weight (a copy of the embedding); it is skipped.
TIED_OPTIONAL = "lm_head.weight"


def entries(config: Qwen3Config) -> list[Entry]:
    shapes = param_shapes(config)
    return [e for e in ENTRIES if e.path in shapes]


def layer_shape(config: Qwen3Config, entry: Entry) -> tuple[int, ...]:
    """The model shape of one layer's tensor (no `layers` axis)."""
    shape = param_shapes(config)[entry.path]
    return shape[1:] if entry.layered else shape


def hf_shape(config: Qwen3Config, entry: Entry) -> tuple[int, ...]:
    s = layer_shape(config, entry)
    if entry.kind == "copy":
        return s
    if entry.kind == "transpose":
        return s[::-1]
    if entry.kind == "heads_in":
        return (s[1] * s[2], s[0])
    return (s[2], s[0] * s[1])  # heads_out


def hf_names(config: Qwen3Config, entry: Entry) -> list[str]:
    if entry.layered:
        return [entry.hf.format(i=i) for i in range(config.num_hidden_layers)]
    return [entry.hf]


def expected_hf_shapes(config: Qwen3Config) -> dict[str, tuple[int, ...]]:
    """Every HF tensor the config implies, in HF's order (layer by layer)."""
    out: dict[str, tuple[int, ...]] = {}
    flat = [e for e in entries(config) if not e.layered]
    layered = [e for e in entries(config) if e.layered]
    out[flat[0].hf] = hf_shape(config, flat[0])  # embed first
    for i in range(config.num_hidden_layers):
        for e in layered:
            out[e.hf.format(i=i)] = hf_shape(config, e)
    for e in flat[1:]:
        out[e.hf] = hf_shape(config, e)
    return out


def to_hf(entry: Entry, x: np.ndarray) -> np.ndarray:
    """One layer's model tensor -> the HF tensor (contiguous)."""
    if entry.kind == "copy":
        out = x
    elif entry.kind == "transpose":
        out = x.T
    elif entry.kind == "heads_in":
        out = x.reshape(x.shape[0], -1).T
    else:
        out = x.reshape(-1, x.shape[-1]).T
    return np.ascontiguousarray(out)


def read_model_slice(entry: Entry, hf_slice, model_shape: tuple[int, ...], index: tuple[slice, ...]) -> np.ndarray:
    """Read only `index` (normalised slices over `model_shape`, one layer) of the model tensor.

    `hf_slice` is a safetensors slice object (or any array) of the HF tensor; only the rows and
    columns that back the requested block are read.
    """
    if entry.kind == "copy":
        return np.asarray(hf_slice[tuple(index)]) if index else np.asarray(hf_slice[:])
    if entry.kind == "transpose":
        a, b = index
        return np.asarray(hf_slice[b, a]).T
    if entry.kind == "heads_in":
        d, n, h = index
        dh = model_shape[2]
        block = np.asarray(hf_slice[n.start * dh : n.stop * dh, d])  # [n*Dh, d]
        return block.T.reshape(d.stop - d.start, n.stop - n.start, dh)[:, :, h]
    n, h, d = index  # heads_out
    dh = model_shape[1]
    block = np.asarray(hf_slice[d, n.start * dh : n.stop * dh])  # [d, n*Dh]
    return block.T.reshape(n.stop - n.start, dh, d.stop - d.start)[:, h, :]


@dataclass(frozen=True)
class BlockRead:
    """How one layer's model block is read from the HF tensor: a run of HF rows, then a copy.

    The block, viewed 2-D as `shape2d`, equals `hf[rows][:, *cols]` (copy kind) or its transpose
    (every other kind). Reading whole HF rows keeps each read one contiguous byte range.
    """

    rows: slice  # the HF tensor's dim-0 range backing the block
    cols: tuple[slice, ...]  # index over the HF tensor's other dims
    transposed: bool
    shape2d: tuple[int, int]


def block_read(entry: Entry, model_shape: tuple[int, ...], index: tuple[slice, ...]) -> BlockRead | None:
    """The read plan for `index` (normalised slices over `model_shape`, one layer).

    None when the block is not a plain 2-D (transposed) window of HF rows, i.e. when head_dim itself
    is split; callers then fall back to `read_model_slice`.
    """
    size = [s.stop - s.start for s in index]
    if entry.kind == "copy":
        return BlockRead(index[0], tuple(index[1:]), False, (size[0], prod(size[1:])))
    if entry.kind == "transpose":
        a, b = index
        return BlockRead(b, (a,), True, (size[0], size[1]))
    if entry.kind == "heads_in":
        d, n, h = index
        dh = model_shape[2]
        if size[2] != dh:
            return None
        return BlockRead(slice(n.start * dh, n.stop * dh), (d,), True, (size[0], size[1] * dh))
    n, h, d = index  # heads_out
    dh = model_shape[1]
    if size[1] != dh:
        return None
    return BlockRead(d, (slice(n.start * dh, n.stop * dh),), True, (size[0] * dh, size[2]))
