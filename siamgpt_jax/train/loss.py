"""Next-token cross-entropy over loss-masked tokens: a fused, chunked LM head + loss.

The [tokens, vocab] fp32 logits never exist whole: a scan walks the sequence `chunk` tokens at a
time. Under differentiation the same pass also computes the gradients: for a chunk,
d(loss)/d(logits) = softmax - onehot (plus the z-loss term) is known as soon as the logits are, so
dh = dlogits @ W and dW += dlogits^T @ h (W is [V, D], HF's orientation, the embedding when tied)
are formed right there and the logits are dropped. That is 3 vocab-sized matmuls per token (like
an unchunked backward) instead of the 4 a rematerialised chunk costs, and only dh and dW are kept
for the backward pass. For Qwen3 (V = 151,936) at 4,096 tokens the full logits would be 2.5 GB
per sequence. The custom_vjp is there for that memory and runs on every backend; only the dW
matmul follows the model's `kernels` switch (model/kernels.py).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from siamgpt_jax.model.kernels import layer_ops_for, resolve_kernels
from siamgpt_jax.sharding import constrain


class LossSums(NamedTuple):
    total: jax.Array  # ce + z-loss term: the one output to differentiate
    ce: jax.Array  # sum of masked token cross-entropies (no gradient flows through it)
    tokens: jax.Array  # number of loss tokens
    z: jax.Array  # weighted z-loss term (no gradient flows through it)


def _chunk_stats(h, w, t, m):
    """Logits of one chunk -> (masked CE sum, masked lse^2 sum, logits, lse)."""
    logits = jnp.einsum("bcd,vd->bcv", h, w, preferred_element_type=jnp.float32)
    logits = constrain(logits, ("batch", "seq", "act_vocab"))
    lse = jax.nn.logsumexp(logits, axis=-1)
    target_logit = jnp.take_along_axis(logits, t[..., None], axis=-1)[..., 0]
    return ((lse - target_logit) * m).sum(), (jnp.square(lse) * m).sum(), logits, lse


def _scan_chunks(hs, w, ts, ms, z_weight: float, kernels: str, with_grads: bool):
    """hs: [n, B, C, D]; returns (ce, z) sums and, with_grads, (dh [n,B,C,D], dw [V,D] fp32)."""
    weight_grad = layer_ops_for(kernels).weight_grad

    def body(carry, xs):
        ce_acc, z_acc, dw_acc = carry
        h, t, m = xs
        ce, z, logits, lse = _chunk_stats(h, w, t, m)
        if not with_grads:
            return (ce_acc + ce, z_acc + z, dw_acc), None
        probs = jnp.exp(logits - lse[..., None])
        onehot = jax.nn.one_hot(t, logits.shape[-1], dtype=jnp.float32)
        scale = m[..., None] * (1.0 + 2.0 * z_weight * lse[..., None])
        dlogits = (probs * scale - onehot * m[..., None]).astype(h.dtype)
        dh = jnp.einsum("bcv,vd->bcd", dlogits, w, preferred_element_type=jnp.float32).astype(h.dtype)
        dh = constrain(dh, ("batch", "seq", "act_embed"))  # like h; else XLA may split D as the kernel is
        dw = dw_acc + weight_grad(dlogits, h, preferred_element_type=jnp.float32)
        return (ce_acc + ce, z_acc + z, dw), dh

    dw0 = jnp.zeros(w.shape, jnp.float32) if with_grads else jnp.zeros((), jnp.float32)
    (ce, z, dw), dh = jax.lax.scan(body, (jnp.float32(0), jnp.float32(0), dw0), (hs, ts, ms))
    return (ce, z), (dh, dw)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _fused_loss(hs, w, ts, ms, z_weight: float, kernels: str):
    (ce, z), _ = _scan_chunks(hs, w, ts, ms, z_weight, kernels, with_grads=False)
    return ce + z_weight * z, ce, z_weight * z


def _fused_loss_fwd(hs, w, ts, ms, z_weight, kernels):
    (ce, z), (dh, dw) = _scan_chunks(hs, w, ts, ms, z_weight, kernels, with_grads=True)
    return (ce + z_weight * z, ce, z_weight * z), (dh, dw.astype(w.dtype))


def _fused_loss_bwd(z_weight, kernels, residuals, cotangents):
    dh, dw = residuals
    g = cotangents[0]  # ce and z are returned behind stop_gradient: their cotangents are zero
    return (g * dh).astype(dh.dtype), (g * dw).astype(dw.dtype), None, None


_fused_loss.defvjp(_fused_loss_fwd, _fused_loss_bwd)


def chunked_cross_entropy(
    hidden: jax.Array,  # [B, S, D] final hidden states (compute dtype)
    lm_head: jax.Array,  # [V, D] (the embedding when tied)
    targets: jax.Array,  # [B, S] int
    loss_mask: jax.Array,  # [B, S] float (1 = trained token)
    *,
    chunk: int = 1024,
    z_loss: float = 0.0,
    kernels: str = "auto",
) -> LossSums:
    """Sums, not means: the caller normalises by the loss tokens of the whole global batch.
    `kernels`: the model's switch (model/kernels.py), which picks the dW matmul."""
    B, S, D = hidden.shape
    chunk = min(chunk, S)
    pad = (-S) % chunk
    if pad:
        hidden = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0)))
        targets = jnp.pad(targets, ((0, 0), (0, pad)))
        loss_mask = jnp.pad(loss_mask, ((0, 0), (0, pad)))
    n = (S + pad) // chunk
    # [n, B, chunk, ...] so the scan walks the sequence
    hs = hidden.reshape(B, n, chunk, D).swapaxes(0, 1)
    ts = targets.astype(jnp.int32).reshape(B, n, chunk).swapaxes(0, 1)
    ms = jax.lax.stop_gradient(loss_mask.astype(jnp.float32)).reshape(B, n, chunk).swapaxes(0, 1)
    total, ce, z = _fused_loss(hs, lm_head.astype(hidden.dtype), ts, ms, float(z_loss), resolve_kernels(kernels))
    tokens = jax.lax.stop_gradient(loss_mask.astype(jnp.float32).sum())
    return LossSums(total, jax.lax.stop_gradient(ce), tokens, jax.lax.stop_gradient(z))
