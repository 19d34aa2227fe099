"""The layer ops of the default path: RMSNorm, the projections and the SwiGLU MLP's end, as plain
jnp / dot_general with autodiff backwards.

This is what XLA:GPU fuses and what `jax.checkpoint` policies see: every projection is a
dot_general without batch dims, so the standard `dots_with_no_batch_dims_saveable` policy saves
its output. The forwards are exactly the formulas transformers uses; model/cpu_kernels.py reuses
them under hand-written backwards for XLA:CPU, and model/kernels.py picks between the two.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from siamgpt_jax.sharding import constrain


def rms_norm_and_rsqrt(x: jnp.ndarray, weight: jnp.ndarray, eps: float) -> tuple[jnp.ndarray, jnp.ndarray]:
    """HF's Qwen3RMSNorm (normalise in fp32, cast back, scale in the input dtype), and the per-row
    fp32 rsqrt it used."""
    xf = x.astype(jnp.float32)
    r = jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + eps)
    return weight.astype(x.dtype) * (xf * r).astype(x.dtype), r


def rms_norm(x: jnp.ndarray, weight: jnp.ndarray, eps: float) -> jnp.ndarray:
    """HF's Qwen3RMSNorm over the last dim."""
    return rms_norm_and_rsqrt(x, weight, eps)[0]


def swiglu_hidden(gate: jnp.ndarray, up: jnp.ndarray) -> jnp.ndarray:
    """silu(gate) * up, the Qwen3 MLP's hidden (HF's formula), split over the mlp dim like its matmuls."""
    return constrain(jax.nn.silu(gate) * up, ("batch", "seq", "act_mlp"))


def swiglu_down(gate: jnp.ndarray, up: jnp.ndarray, down_proj: jnp.ndarray) -> jnp.ndarray:
    """The MLP after its two input projections: down_proj(silu(gate) * up).

    gate, up: [B, S, F]; down_proj: [D, F] (HF's [out, in]) -> [B, S, D].
    """
    return jnp.einsum("bsf,df->bsd", swiglu_hidden(gate, up), down_proj)


def dense(x: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    """A projection: x [B, S, *in] times w [*out, *in] (HF's [out, in] orientation) -> [B, S, *out].

    E.g. q_proj: [B, S, D] x [H, K, D] -> [B, S, H, K]; o_proj: [B, S, H, K] x [D, H, K] -> [B, S, D].
    One dot_general contracting x's trailing dims with w's, no batch dims.
    """
    n_in = x.ndim - 2
    contract = (tuple(range(2, x.ndim)), tuple(range(w.ndim - n_in, w.ndim)))
    return jax.lax.dot_general(x, w, (contract, ((), ())))


def weight_grad(a: jnp.ndarray, b: jnp.ndarray, **einsum_kwargs) -> jnp.ndarray:
    """[B, S, X], [B, S, Y] -> [X, Y]: a weight gradient, summed over every token (the chunked
    loss's dW)."""
    return jnp.einsum("bsx,bsy->xy", a, b, **einsum_kwargs)
