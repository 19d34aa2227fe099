"""Qwen3 in Flax NNX: config, presets, counts and the model."""

from siamgpt_jax.model.config import (
    PRESETS,
    Qwen3Config,
    UnsupportedConfigError,
    flops_per_token,
    param_count,
    param_shapes,
    preset,
)

__all__ = [
    "PRESETS",
    "Qwen3Config",
    "UnsupportedConfigError",
    "flops_per_token",
    "param_count",
    "param_shapes",
    "preset",
]
