"""HF tensor name <-> model param path, with the reshape between them, from the one parameter table
(model.config.PARAMS). Import and export both read `ENTRIES`. The model keeps HF's
[out, in] orientation (see model.config.param_shapes), so one layer's model tensor is always a
reshape of the HF tensor, never a transpose:

  kind        model (one layer)        HF (torch Linear weight = [out, in])
  copy        same                     same
  heads_rows  [N, Dh, D]  (q/k/v)      [N*Dh, D]   rows split into heads
  heads_cols  [D, N, Dh]  (o_proj)     [D, N*Dh]   columns split into heads
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from siamgpt_jax.model.config import PARAMS, Qwen3Config, param_shapes


@dataclass(frozen=True)
class Entry:
    path: str  # model param path, as in param_shapes
    hf: str  # HF tensor name; "{i}" is the layer index for stacked params
    kind: str  # copy | heads_rows | heads_cols

    @property
    def layered(self) -> bool:
        return "{i}" in self.hf


# The converter's view of the one parameter table (model.config.PARAMS).
ENTRIES: tuple[Entry, ...] = tuple(Entry(p.path, p.hf, p.hf_kind) for p in PARAMS)

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
    return _hf_layer_shape(entry, layer_shape(config, entry))


def _hf_layer_shape(entry: Entry, s: tuple[int, ...]) -> tuple[int, ...]:
    """The HF shape of one layer's model tensor of shape `s` (the reshape of the table above)."""
    if entry.kind == "heads_rows":
        return (s[0] * s[1], s[2])
    if entry.kind == "heads_cols":
        return (s[0], s[1] * s[2])
    return tuple(s)  # copy


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
    """One layer's model tensor -> the HF tensor (a reshape: same bytes, C order)."""
    return np.ascontiguousarray(x).reshape(_hf_layer_shape(entry, x.shape))


def hf_index(entry: Entry, model_shape: tuple[int, ...], index: tuple[slice, ...]) -> tuple[slice, ...] | None:
    """The HF-tensor index backing `index` (normalised slices over one layer's `model_shape`).

    None when the block is not a window of the HF tensor, i.e. when head_dim itself is split
    across devices together with more than one head; `read_model_slice` then reads a superset.
    """
    if entry.kind == "copy":
        return tuple(index)
    if entry.kind == "heads_rows":
        n, h, d = index
        dh = model_shape[1]
    else:
        d, n, h = index
        dh = model_shape[2]
    if h.stop - h.start == dh:
        heads = slice(n.start * dh, n.stop * dh)
    elif n.stop - n.start == 1:
        heads = slice(n.start * dh + h.start, n.start * dh + h.stop)
    else:
        return None
    return (heads, d) if entry.kind == "heads_rows" else (d, heads)


def read_model_slice(entry: Entry, hf_slice, model_shape: tuple[int, ...], index: tuple[slice, ...]) -> np.ndarray:
    """Read only the block `index` (normalised slices over one layer's `model_shape`).

    `hf_slice` is a safetensors slice object (or any array) of the HF tensor.
    """
    size = tuple(s.stop - s.start for s in index)
    window = hf_index(entry, model_shape, index)
    if window is not None:
        return np.asarray(hf_slice[window] if window else hf_slice[:]).reshape(size)
    if entry.kind == "heads_rows":  # read whole heads, then cut head_dim
        n, h, d = index
        dh = model_shape[1]
        block = np.asarray(hf_slice[n.start * dh : n.stop * dh, d]).reshape(size[0], dh, size[2])
        return block[:, h, :]
    d, n, h = index  # heads_cols
    dh = model_shape[2]
    block = np.asarray(hf_slice[d, n.start * dh : n.stop * dh]).reshape(size[0], size[1], dh)
    return block[:, :, h]
