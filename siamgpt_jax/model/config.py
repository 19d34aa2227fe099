"""Qwen3 architecture config, the official presets, parameter and FLOP counts.

Presets carry Hugging Face's exact config.json values for the Qwen3 dense family. This module is
the single source of truth for shapes: the model, the converter and the mesh planner all read it.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from siamgpt_jax.errors import UserError

# The ONE list of each model-build choice that configs, commands, the step spec and the planner
# accept (model/attention.py, model/qwen3.py and model/kernels.py implement them). Kept here, away
# from jax, so `--help` and the planner read them for free. They are str enums: a member equals
# its name ("full" == Remat.FULL), so YAML, flags and JSON carry plain strings.


class Attention(enum.StrEnum):
    AUTO = "auto"  # cuDNN's fused kernel on a GPU where it compiles, else chunked
    XLA = "xla"  # plain reference: full [S, S] scores
    CHUNKED = "chunked"  # query blocks with a flash-style backward, no [S, S] tensor kept
    CUDNN = "cudnn"  # the fused GPU (flash) kernel


class Remat(enum.StrEnum):
    NONE = "none"  # keep every activation
    FULL = "full"  # keep only each layer's input
    DOTS = "dots"  # also keep the weight matmuls' outputs


class Kernels(enum.StrEnum):
    AUTO = "auto"  # cpu on the CPU backend, xla elsewhere
    XLA = "xla"  # model/layer_ops.py: plain jnp / dot_general with autodiff (the GPU path)
    CPU = "cpu"  # model/cpu_kernels.py: hand-written backwards tuned for XLA:CPU


ATTENTION_NAMES = tuple(a.value for a in Attention)
REMAT_NAMES = tuple(r.value for r in Remat)
KERNEL_NAMES = tuple(k.value for k in Kernels)


# The dtypes a config, a CLI flag or a backend option may name for params, compute and the KV cache.
DTYPE_NAMES = ("float32", "bfloat16")


def dtype_of(name):
    """'bfloat16' -> jnp.bfloat16 (a dtype object passes through); other names are a UserError."""
    if not isinstance(name, str):
        return name
    if name not in DTYPE_NAMES:
        raise UserError(f"dtype {name!r} is not one of {list(DTYPE_NAMES)}")
    import jax.numpy as jnp

    return jnp.dtype(name)


class UnsupportedConfigError(UserError):
    """The HF config asks for a feature this implementation does not provide."""


@dataclass(frozen=True)
class Qwen3Config:
    vocab_size: int = 151936
    hidden_size: int = 1024
    intermediate_size: int = 3072
    num_hidden_layers: int = 28
    num_attention_heads: int = 16
    num_key_value_heads: int = 8
    head_dim: int = 128
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0
    # None (default RoPE) or {"rope_type": "yarn", "factor": ..., "original_max_position_embeddings": ...}
    rope_scaling: dict[str, Any] | None = None
    max_position_embeddings: int = 40960
    tie_word_embeddings: bool = True
    attention_bias: bool = False
    bos_token_id: int = 151643
    eos_token_id: int = 151645
    pad_token_id: int | None = None
    max_window_layers: int = 28
    hidden_act: str = "silu"
    initializer_range: float = 0.02

    def __post_init__(self) -> None:
        if self.num_attention_heads % self.num_key_value_heads:
            raise UnsupportedConfigError(
                f"num_attention_heads={self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads={self.num_key_value_heads}"
            )
        if self.hidden_act != "silu":
            raise UnsupportedConfigError(f"hidden_act={self.hidden_act!r}: only 'silu' is supported")
        if self.attention_bias:
            raise UnsupportedConfigError("attention_bias=true is not supported (Qwen3 has none)")
        if self.rope_scaling is not None:
            kind = self.rope_scaling.get("rope_type", self.rope_scaling.get("type", "default"))
            if kind not in ("default", "yarn"):
                raise UnsupportedConfigError(
                    f"rope_scaling type {kind!r} is not supported (supported: default, yarn)"
                )

    @property
    def q_per_kv(self) -> int:
        return self.num_attention_heads // self.num_key_value_heads

    def replace(self, **changes: Any) -> "Qwen3Config":
        return dataclasses.replace(self, **changes)

    # ---- HF config.json <-> Qwen3Config -------------------------------------------------------
    @classmethod
    def from_hf_dict(cls, d: dict[str, Any], source: str = "config.json") -> "Qwen3Config":
        model_type = d.get("model_type")
        if model_type != "qwen3":
            raise UnsupportedConfigError(
                f"{source}: model_type={model_type!r} is not supported; only 'qwen3' (dense) is"
            )
        if d.get("use_sliding_window"):
            raise UnsupportedConfigError(f"{source}: use_sliding_window=true is not supported")
        rope_scaling = d.get("rope_scaling")
        # transformers >= 5 folds rope_theta into rope_parameters.
        rope_params = d.get("rope_parameters") or {}
        rope_theta = d.get("rope_theta", rope_params.get("rope_theta", 1_000_000.0))
        if rope_scaling is None and rope_params.get("rope_type", "default") != "default":
            rope_scaling = {k: v for k, v in rope_params.items() if k != "rope_theta"}
        if rope_scaling is not None and rope_scaling.get("rope_type", rope_scaling.get("type")) == "default":
            rope_scaling = None
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        kwargs["rope_theta"] = float(rope_theta)
        kwargs["rope_scaling"] = rope_scaling
        if kwargs.get("head_dim") is None:
            kwargs["head_dim"] = d["hidden_size"] // d["num_attention_heads"]
        if isinstance(kwargs.get("eos_token_id"), list):
            kwargs["eos_token_id"] = kwargs["eos_token_id"][0]
        try:
            return cls(**kwargs)
        except UnsupportedConfigError as e:
            raise UnsupportedConfigError(f"{source}: {e}") from None

    @classmethod
    def from_hf_file(cls, path: str | Path) -> "Qwen3Config":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: cannot read HF config: {e}") from None
        return cls.from_hf_dict(data, source=str(path))

    def to_hf_dict(self, torch_dtype: str = "bfloat16") -> dict[str, Any]:
        """Every field transformers' Qwen3Config needs, in config.json form."""
        return {
            "architectures": ["Qwen3ForCausalLM"],
            "model_type": "qwen3",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "hidden_act": self.hidden_act,
            "max_position_embeddings": self.max_position_embeddings,
            "initializer_range": self.initializer_range,
            "rms_norm_eps": self.rms_norm_eps,
            "use_cache": True,
            "tie_word_embeddings": self.tie_word_embeddings,
            "rope_theta": self.rope_theta,
            "rope_scaling": self.rope_scaling,
            "attention_bias": False,
            "attention_dropout": 0.0,
            "use_sliding_window": False,
            "sliding_window": None,
            "max_window_layers": self.max_window_layers,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "pad_token_id": self.pad_token_id,
            "torch_dtype": torch_dtype,
        }


# Exact values from the Qwen/Qwen3-* config.json files on the Hugging Face hub.
PRESETS: dict[str, Qwen3Config] = {
    "qwen3-0.6b": Qwen3Config(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                               num_attention_heads=16, num_key_value_heads=8, tie_word_embeddings=True,
                               max_window_layers=28),
    "qwen3-1.7b": Qwen3Config(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28,
                               num_attention_heads=16, num_key_value_heads=8, tie_word_embeddings=True,
                               max_window_layers=28),
    "qwen3-4b": Qwen3Config(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
                             num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=True,
                             max_window_layers=36),
    "qwen3-8b": Qwen3Config(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
                             num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False,
                             max_window_layers=36),
    "qwen3-14b": Qwen3Config(hidden_size=5120, intermediate_size=17408, num_hidden_layers=40,
                              num_attention_heads=40, num_key_value_heads=8, tie_word_embeddings=False,
                              max_window_layers=40),
    "qwen3-32b": Qwen3Config(hidden_size=5120, intermediate_size=25600, num_hidden_layers=64,
                              num_attention_heads=64, num_key_value_heads=8, tie_word_embeddings=False,
                              max_window_layers=64),
    # Not an official model: the embedded CPU demo. Real Qwen3 vocabulary, tiny body.
    "qwen3-tiny": Qwen3Config(hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                               tie_word_embeddings=True, max_window_layers=2, max_position_embeddings=4096),
}


def preset(name: str) -> Qwen3Config:
    """The config of a named preset, e.g. preset('qwen3-32b')."""
    try:
        return PRESETS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(PRESETS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise KeyError(f"unknown model preset '{name}'{hint} (known: {', '.join(PRESETS)})") from None


# The per-layer RMSNorm weights: a layer uses them in the param dtype and casts every other layer
# weight to the compute dtype (model/qwen3.py; the planner counts those casts)
LAYER_NORM_KEYS = ("attn_norm", "q_norm", "k_norm", "mlp_norm")


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: its model path, its dims (symbols sized by the config), the logical axis of
    each dim (what sharding rules map), and its Hugging Face tensor name ("{i}" = the layer) with
    the reshape between the two (copy; heads_rows: HF [N*Dh, D] rows split into [N, Dh, D];
    heads_cols: HF [D, N*Dh] columns split into [D, N, Dh])."""

    path: str
    dims: tuple[str, ...]
    axes: tuple[str, ...]
    hf: str
    hf_kind: str = "copy"


# THE parameter table: the model, the sharding, the converter and the planner all read it.
# Matrices keep Hugging Face's (torch Linear) [out, in] orientation, with the head dim split out of
# q/k/v rows and o_proj columns, so each layer's tensor is a reshape of the HF tensor: import and
# export copy bytes and never transpose. Layer tensors are stacked on a leading `layers` axis.
PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("embed", ("V", "D"), ("vocab", "embed"), "model.embed_tokens.weight"),
    ParamSpec("layers.attn_norm", ("L", "D"), ("layers", "norm"), "model.layers.{i}.input_layernorm.weight"),
    ParamSpec("layers.q_proj", ("L", "H", "Dh", "D"), ("layers", "q_heads", "head_dim", "embed"),
              "model.layers.{i}.self_attn.q_proj.weight", "heads_rows"),
    ParamSpec("layers.k_proj", ("L", "K", "Dh", "D"), ("layers", "kv_heads", "head_dim", "embed"),
              "model.layers.{i}.self_attn.k_proj.weight", "heads_rows"),
    ParamSpec("layers.v_proj", ("L", "K", "Dh", "D"), ("layers", "kv_heads", "head_dim", "embed"),
              "model.layers.{i}.self_attn.v_proj.weight", "heads_rows"),
    ParamSpec("layers.o_proj", ("L", "D", "H", "Dh"), ("layers", "embed", "q_heads", "head_dim"),
              "model.layers.{i}.self_attn.o_proj.weight", "heads_cols"),
    ParamSpec("layers.q_norm", ("L", "Dh"), ("layers", "norm"), "model.layers.{i}.self_attn.q_norm.weight"),
    ParamSpec("layers.k_norm", ("L", "Dh"), ("layers", "norm"), "model.layers.{i}.self_attn.k_norm.weight"),
    ParamSpec("layers.mlp_norm", ("L", "D"), ("layers", "norm"), "model.layers.{i}.post_attention_layernorm.weight"),
    ParamSpec("layers.gate_proj", ("L", "F", "D"), ("layers", "mlp", "embed"), "model.layers.{i}.mlp.gate_proj.weight"),
    ParamSpec("layers.up_proj", ("L", "F", "D"), ("layers", "mlp", "embed"), "model.layers.{i}.mlp.up_proj.weight"),
    ParamSpec("layers.down_proj", ("L", "D", "F"), ("layers", "embed", "mlp"), "model.layers.{i}.mlp.down_proj.weight"),
    ParamSpec("final_norm", ("D",), ("norm",), "model.norm.weight"),
    ParamSpec("lm_head", ("V", "D"), ("vocab", "embed"), "lm_head.weight"),  # untied configs only
)
PARAM_AXES: dict[str, tuple[str, ...]] = {p.path: p.axes for p in PARAMS}


def params_of(c: Qwen3Config) -> tuple[ParamSpec, ...]:
    """The parameters a config has (a tied config has no lm_head: the embedding serves)."""
    return tuple(p for p in PARAMS if p.path != "lm_head" or not c.tie_word_embeddings)


def param_shapes(c: Qwen3Config) -> dict[str, tuple[int, ...]]:
    """Shapes of every parameter, layer tensors stacked on a leading `layers` axis (PARAMS' dims)."""
    size = {"L": c.num_hidden_layers, "V": c.vocab_size, "D": c.hidden_size, "F": c.intermediate_size,
            "H": c.num_attention_heads, "K": c.num_key_value_heads, "Dh": c.head_dim}
    return {p.path: tuple(size[d] for d in p.dims) for p in params_of(c)}


def param_logical_axes(c: Qwen3Config) -> dict[str, tuple[str, ...]]:
    """Logical axis names of every parameter in param_shapes (same keys): what sharding rules map."""
    return {p.path: p.axes for p in params_of(c)}


def param_count(c: Qwen3Config) -> int:
    """Total parameters, counted as HF counts them (tied embeddings counted once)."""
    total = 0
    for shape in param_shapes(c).values():
        n = 1
        for s in shape:
            n *= s
        total += n
    return total


# Dense bf16 peak per device (TFLOP/s), for MFU when a config does not say. Kept here, beside the
# FLOP count, so the GPU check imports no data-loading packages.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "H800": 989.0, "A100": 312.0, "GH200": 989.0}
# HBM bandwidth in GB/s (SXM parts; GH200 with HBM3): the decode check's roofline
PEAK_HBM_GBS = {"H100": 3350.0, "H200": 4800.0, "H800": 3350.0, "A100": 2039.0, "GH200": 4000.0}


def flops_per_token(c: Qwen3Config, seq_len: int, *, training: bool = True, causal: bool = True) -> float:
    """Model FLOPs per token (the MFU numerator): 2 FLOPs per matmul MAC, backward = 2x forward.

    Counts the dense matmuls (attention projections, MLP, LM head) and the attention scores and
    values (QK^T and PV), halved under a causal mask. Norms, RoPE and softmax are ignored, as is
    usual for MFU. Embedding lookups are free.
    """
    D, F, L = c.hidden_size, c.intermediate_size, c.num_hidden_layers
    H, K, Dh = c.num_attention_heads, c.num_key_value_heads, c.head_dim
    per_layer_matmul = D * H * Dh + 2 * D * K * Dh + H * Dh * D + 3 * D * F
    dense = L * per_layer_matmul + D * c.vocab_size
    attn = L * 2 * seq_len * H * Dh * (0.5 if causal else 1.0)  # QK^T and PV MACs per token
    forward = 2.0 * (dense + attn)
    return 3.0 * forward if training else forward


def attention_block_size(seq_len: int) -> int:
    """Query rows per block of the chunked attention path (model/chunked_attention.py): 128 for
    short sequences, at most 8 blocks for long ones (each block is a few unrolled ops, so 8 keeps
    the program small; a block costs [B, H, block, S] scores). A multiple of 8."""
    n = min(8, max(1, math.ceil(seq_len / 128)))
    return -(-math.ceil(seq_len / n) // 8) * 8
