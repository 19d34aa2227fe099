"""Rotary position embeddings, as transformers computes them (rotate_half convention).

Default RoPE and YaRN are supported; Qwen3Config rejects every other rope type before we get here.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from siamgpt_jax.model.config import Qwen3Config, UnsupportedConfigError


def _rope_type(config: Qwen3Config) -> str:
    if config.rope_scaling is None:
        return "default"
    return config.rope_scaling.get("rope_type", config.rope_scaling.get("type", "default"))


def _yarn(config: Qwen3Config, dim: int) -> tuple[np.ndarray, float]:
    """YaRN inverse frequencies and attention factor (the YaRN paper's formulas, HF's defaults)."""
    s = config.rope_scaling or {}
    base = config.rope_theta
    orig = s.get("original_max_position_embeddings")
    if orig is None:
        raise UnsupportedConfigError("rope_scaling yarn needs original_max_position_embeddings")
    factor = s.get("factor") or config.max_position_embeddings / orig
    attention_factor = s.get("attention_factor")
    mscale, mscale_all_dim = s.get("mscale"), s.get("mscale_all_dim")

    def get_mscale(scale: float, m: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    if attention_factor is None:
        if mscale and mscale_all_dim:
            attention_factor = get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim)
        else:
            attention_factor = get_mscale(factor)
    beta_fast = s.get("beta_fast") or 32
    beta_slow = s.get("beta_slow") or 1

    def correction_dim(rotations: float) -> float:
        return dim * math.log(orig / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if s.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001  # avoid a zero-width ramp
    # float32 throughout, the same arithmetic order as the reference, so fp32 parity is exact.
    pos_freqs = np.float32(base) ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim))
    extrapolation = np.float32(1.0) / pos_freqs
    interpolation = np.float32(1.0) / (np.float32(factor) * pos_freqs)
    ramp = np.clip((np.arange(dim // 2, dtype=np.float32) - low) / (high - low), 0, 1).astype(np.float32)
    extra_factor = np.float32(1.0) - ramp
    inv_freq = interpolation * (1 - extra_factor) + extrapolation * extra_factor
    return inv_freq.astype(np.float32), float(attention_factor)


def inv_frequencies(config: Qwen3Config) -> tuple[np.ndarray, float]:
    """(inv_freq [head_dim/2] float32, attention scaling applied to cos/sin)."""
    dim = config.head_dim
    kind = _rope_type(config)
    if kind == "default":
        inv = 1.0 / (np.float32(config.rope_theta) ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim)))
        return inv.astype(np.float32), 1.0
    if kind == "yarn":
        return _yarn(config, dim)
    raise UnsupportedConfigError(f"rope_scaling type {kind!r} is not supported (supported: default, yarn)")


def cos_sin(positions: jnp.ndarray, config: Qwen3Config) -> tuple[jnp.ndarray, jnp.ndarray]:
    """positions: [batch, seq] int -> cos, sin: [batch, seq, head_dim] float32."""
    inv_freq, scaling = inv_frequencies(config)
    freqs = positions.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq)
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb) * scaling, jnp.sin(emb) * scaling


def apply_rope(x: jnp.ndarray, cos: jnp.ndarray, sin: jnp.ndarray) -> jnp.ndarray:
    """x: [batch, seq, heads, head_dim]; cos/sin: [batch, seq, head_dim]. HF's rotate_half layout."""
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    cos, sin = cos[:, :, None, :].astype(x.dtype), sin[:, :, None, :].astype(x.dtype)
    return x * cos + rotated * sin
