"""RMSNorm and the SwiGLU MLP's end with hand-written backwards that keep only their inputs.

Autodiff keeps every intermediate its backward reads. For `down_proj(silu(gate) * up)` that is
sigmoid(gate), its derivative, silu(gate) and the hidden besides gate and up: six [B, S, F] tensors
per layer where two suffice. For an RMSNorm it is the normalised rows and their mean square besides
the input. Without remat each of those is an [L, ...] stack the step writes in the forward and reads
back in the backward. The backwards here recompute the cheap elementwise parts from the inputs (and
the norm's per-row rsqrt) instead.

Forwards are exactly the formulas transformers uses, so logits do not change. Backwards work in
fp32 and cast the cotangents to the input dtypes. `sum_over_tokens` is the weight-gradient matmul
these backwards (and the chunked loss's) share; `dense`, the layers' other projections, is a plain
matmul whose backward routes its weight gradient through it too.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name

from siamgpt_jax.sharding import constrain, is_split


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


def _hidden(gate, up):
    """silu(gate) * up, the Qwen3 MLP's hidden (HF's formula), split over the mlp dim like its matmuls."""
    return constrain(jax.nn.silu(gate) * up, ("batch", "seq", "act_mlp"))


@jax.custom_vjp
def swiglu_down(gate: jnp.ndarray, up: jnp.ndarray, down_proj: jnp.ndarray) -> jnp.ndarray:
    """The MLP after its two input projections: down_proj(silu(gate) * up).

    gate, up: [B, S, F]; down_proj: [D, F] (HF's [out, in]) -> [B, S, D]. The backward rebuilds
    the hidden from gate and up for the down projection's weight grad, so only those are kept.
    """
    return jnp.einsum("bsf,df->bsd", _hidden(gate, up), down_proj)


def sum_over_tokens(a: jnp.ndarray, b: jnp.ndarray, **einsum_kwargs) -> jnp.ndarray:
    """[B, S, X], [B, S, Y] -> [X, Y]: a weight gradient, summed over every token.

    The tokens are merged into one [B*S] dim first, so the matmul has a single contracting dim and
    XLA:CPU hands it to its dot as it is, instead of first writing a transposed copy of an operand
    (fused into the elementwise work that made it); docs/benchmarks/model.md has the measurements.
    The merge is free only while no mesh axis splits the sequence; otherwise the dims stay apart.
    """
    if is_split("seq"):
        return jnp.einsum("bsx,bsy->xy", a, b, **einsum_kwargs)
    return jnp.einsum("tx,ty->xy", a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1]), **einsum_kwargs)


def _matrix_dims(x, w):
    """(IN, OUT) for x [B, S, *in] and w [*out, *in]: the projection as a 2-D matmul."""
    n_in = x.ndim - 2
    return math.prod(x.shape[2:]), math.prod(w.shape[: w.ndim - n_in])


@jax.custom_vjp
def _dense(x: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    # Merged to [B, S, IN] @ [OUT, IN]^T (free reshapes: the merged dims are adjacent), so each
    # matmul has one contracting dim. Given q_proj's [H, K, D] or o_proj's [D, H, K] as they are,
    # XLA:CPU first writes a transposed copy of the weight, in every layer of every step.
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

# The name remat policies see on a projection's output: a custom_vjp's inner dot is hidden from
# them, so qwen3's "dots" policy saves outputs with this name (as it saves plain weight matmuls).
PROJECTION = "projection"


def dense(x: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    """A projection: x [B, S, *in] times w [*out, *in] (HF's [out, in] orientation) -> [B, S, *out].

    E.g. q_proj: [B, S, D] x [H, K, D] -> [B, S, H, K]; o_proj: [B, S, H, K] x [D, H, K] -> [B, S, D].
    The forward is that einsum, computed as one 2-D matmul over the merged in and out dims. The
    backward is autodiff's too, except that the weight gradient goes through `sum_over_tokens`,
    so every projection's weight grad is one matmul over merged tokens, with no transposed copy of
    the cotangent written first.
    """
    return checkpoint_name(_dense(x, w), PROJECTION)


def _swiglu_down_fwd(gate, up, down_proj):
    return swiglu_down(gate, up, down_proj), (gate, up, down_proj)


def _swiglu_down_bwd(res, g):
    gate, up, down_proj = res
    # the two matmuls give the compute dtype, as autodiff's do (an fp32 [B, S, F] would double
    # the backward's largest temporary); the elementwise rest runs in fp32
    d_weight = sum_over_tokens(g, _hidden(gate, up))
    d_hidden = constrain(jnp.einsum("bsd,df->bsf", g, down_proj), ("batch", "seq", "act_mlp"))
    gf, dh = gate.astype(jnp.float32), d_hidden.astype(jnp.float32)
    sig = jax.nn.sigmoid(gf)
    d_up = dh * gf * sig
    # d silu(x)/dx = sigmoid(x) * (1 + x * (1 - sigmoid(x)))
    d_gate = dh * up.astype(jnp.float32) * sig * (1 + gf * (1 - sig))
    return d_gate.astype(gate.dtype), d_up.astype(up.dtype), d_weight


swiglu_down.defvjp(_swiglu_down_fwd, _swiglu_down_bwd)
