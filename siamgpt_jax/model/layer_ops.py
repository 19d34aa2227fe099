"""RMSNorm and the SwiGLU product with hand-written backwards that keep only their inputs.

Autodiff keeps every intermediate its backward reads. For the SwiGLU hidden `silu(gate) * up` that
is sigmoid(gate), its derivative, silu(gate) and the product besides gate and up: six [B, S, F]
tensors per layer where two suffice. For an RMSNorm it is the normalised rows and their mean square
besides the input. Without remat each of those is an [L, ...] stack the step writes in the forward
and reads back in the backward. The backwards here recompute the cheap elementwise parts from the
inputs (and the norm's per-row rsqrt) instead.

Forwards are exactly the formulas transformers uses, so logits do not change. Backwards work in
fp32 and cast the cotangents to the input dtypes.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def _rms_forward(x, weight, eps):
    xf = x.astype(jnp.float32)
    r = jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + eps)
    return weight.astype(x.dtype) * (xf * r).astype(x.dtype), r


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def rms_norm(x: jnp.ndarray, weight: jnp.ndarray, eps: float) -> jnp.ndarray:
    """HF's Qwen3RMSNorm: normalise in fp32, cast back, then scale in the input dtype."""
    return _rms_forward(x, weight, eps)[0]


def _rms_fwd(x, weight, eps):
    out, r = _rms_forward(x, weight, eps)
    return out, (x, weight, r)


def _rms_bwd(eps, res, g):
    x, weight, r = res
    y = x.astype(jnp.float32) * r  # the normalised rows, rebuilt
    gf = g.astype(jnp.float32)
    d_weight = jnp.sum(gf * y, axis=tuple(range(x.ndim - 1)))
    dy = gf * weight.astype(jnp.float32)
    dx = r * (dy - y * jnp.mean(dy * y, axis=-1, keepdims=True))
    return dx.astype(x.dtype), d_weight.astype(weight.dtype)


rms_norm.defvjp(_rms_fwd, _rms_bwd)


@jax.custom_vjp
def swiglu(gate: jnp.ndarray, up: jnp.ndarray) -> jnp.ndarray:
    """silu(gate) * up, the Qwen3 MLP's hidden."""
    return jax.nn.silu(gate) * up


def _swiglu_fwd(gate, up):
    return swiglu(gate, up), (gate, up)


def _swiglu_bwd(res, g):
    gate, up = res
    gf, gg = gate.astype(jnp.float32), g.astype(jnp.float32)
    sig = jax.nn.sigmoid(gf)
    d_up = gg * gf * sig
    # d silu(x)/dx = sigmoid(x) * (1 + x * (1 - sigmoid(x)))
    d_gate = gg * up.astype(jnp.float32) * sig * (1 + gf * (1 - sig))
    return d_gate.astype(gate.dtype), d_up.astype(up.dtype)


swiglu.defvjp(_swiglu_fwd, _swiglu_bwd)
