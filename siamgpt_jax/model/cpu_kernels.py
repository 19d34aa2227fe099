"""XLA:CPU kernels: the layer ops of model/layer_ops.py with hand-written backwards, for CPU runs.

Chosen only by the `kernels` switch (model/kernels.py: `cpu`, or `auto` on the CPU backend). The
forwards are layer_ops' formulas, so values do not change; the backwards differ in two ways that
XLA:CPU rewards (docs/benchmarks/model.md has the measurements):

- Fewer residuals. Autodiff keeps every intermediate its backward reads. For
  `down_proj(silu(gate) * up)` that is sigmoid(gate), its derivative, silu(gate) and the hidden
  besides gate and up: six [B, S, F] tensors per layer where two suffice; for an RMSNorm the
  normalised rows and their mean square besides the input. These backwards recompute the cheap
  elementwise parts from the inputs (and the norm's per-row rsqrt) instead, in fp32, casting the
  cotangents to the input dtypes.
- No transposed copies. Every matmul has a single contracting dim: projections run as one 2-D
  matmul over merged in/out dims, and every weight gradient contracts one merged [B*S] token dim
  (`sum_over_tokens`). Given several contracting dims XLA:CPU first writes a transposed copy of an
  operand, in every layer of every step.

The cost: a custom_vjp hides its matmuls from remat policies, so the projections' outputs carry
the PROJECTION name, which the `dots` policy saves when these kernels are in use.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name

from siamgpt_jax.model.layer_ops import rms_norm_and_rsqrt, swiglu_hidden
from siamgpt_jax.sharding import constrain, is_split

# The name remat policies see on a projection's output (its dot sits inside a custom_vjp).
PROJECTION = "projection"


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def rms_norm(x: jnp.ndarray, weight: jnp.ndarray, eps: float) -> jnp.ndarray:
    """layer_ops.rms_norm; the backward keeps the input, the weight and the per-row rsqrt."""
    return rms_norm_and_rsqrt(x, weight, eps)[0]


def _rms_fwd(x, weight, eps):
    out, r = rms_norm_and_rsqrt(x, weight, eps)
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


def sum_over_tokens(a: jnp.ndarray, b: jnp.ndarray, **einsum_kwargs) -> jnp.ndarray:
    """layer_ops.weight_grad ([B, S, X], [B, S, Y] -> [X, Y]) with the tokens merged into one [B*S]
    dim first, so XLA:CPU hands the matmul to its dot as it is. The merge is free only while no
    mesh axis splits the sequence; otherwise the dims stay apart."""
    if is_split("seq"):
        return jnp.einsum("bsx,bsy->xy", a, b, **einsum_kwargs)
    return jnp.einsum("tx,ty->xy", a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1]), **einsum_kwargs)


@jax.custom_vjp
def swiglu_down(gate: jnp.ndarray, up: jnp.ndarray, down_proj: jnp.ndarray) -> jnp.ndarray:
    """layer_ops.swiglu_down; the backward rebuilds the hidden from gate and up, so only those are kept."""
    return jnp.einsum("bsf,df->bsd", swiglu_hidden(gate, up), down_proj)


def _swiglu_down_fwd(gate, up, down_proj):
    return swiglu_down(gate, up, down_proj), (gate, up, down_proj)


def _swiglu_down_bwd(res, g):
    gate, up, down_proj = res
    # the two matmuls give the compute dtype, as autodiff's do (an fp32 [B, S, F] would double
    # the backward's largest temporary); the elementwise rest runs in fp32
    d_weight = sum_over_tokens(g, swiglu_hidden(gate, up))
    d_hidden = constrain(jnp.einsum("bsd,df->bsf", g, down_proj), ("batch", "seq", "act_mlp"))
    gf, dh = gate.astype(jnp.float32), d_hidden.astype(jnp.float32)
    sig = jax.nn.sigmoid(gf)
    d_up = dh * gf * sig
    # d silu(x)/dx = sigmoid(x) * (1 + x * (1 - sigmoid(x)))
    d_gate = dh * up.astype(jnp.float32) * sig * (1 + gf * (1 - sig))
    return d_gate.astype(gate.dtype), d_up.astype(up.dtype), d_weight


swiglu_down.defvjp(_swiglu_down_fwd, _swiglu_down_bwd)


def _matrix_dims(x, w):
    """(IN, OUT) for x [B, S, *in] and w [*out, *in]: the projection as a 2-D matmul."""
    n_in = x.ndim - 2
    return math.prod(x.shape[2:]), math.prod(w.shape[: w.ndim - n_in])


@jax.custom_vjp
def _dense(x: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    # Merged to [B, S, IN] @ [OUT, IN]^T (free reshapes: the merged dims are adjacent), so each
    # matmul has one contracting dim; q_proj's [H, K, D] or o_proj's [D, H, K] as they are would
    # make XLA:CPU write a transposed copy of the weight first.
    B, S = x.shape[:2]
    n_in, n_out = _matrix_dims(x, w)
    y = jax.lax.dot_general(x.reshape(B, S, n_in), w.reshape(n_out, n_in), (((2,), (1,)), ((), ())))
    return y.reshape(B, S, *w.shape[: w.ndim - (x.ndim - 2)])


def _dense_fwd(x, w):
    return _dense(x, w), (x, w)


def _dense_bwd(res, g):
    x, w = res
    B, S = x.shape[:2]
    n_in, n_out = _matrix_dims(x, w)
    g2, w2 = g.reshape(B, S, n_out), w.reshape(n_out, n_in)
    dx = jax.lax.dot_general(g2, w2, (((2,), (0,)), ((), ())))
    dw = sum_over_tokens(g2, x.reshape(B, S, n_in))
    return dx.reshape(x.shape).astype(x.dtype), dw.reshape(w.shape).astype(w.dtype)


_dense.defvjp(_dense_fwd, _dense_bwd)


def dense(x: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    """layer_ops.dense as one 2-D matmul over the merged in and out dims; its weight gradient goes
    through `sum_over_tokens`. The output is named PROJECTION for the remat policies."""
    return checkpoint_name(_dense(x, w), PROJECTION)
