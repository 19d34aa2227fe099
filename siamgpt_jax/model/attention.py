"""Causal GQA self-attention with packed-segment masking.

Three paths: `xla`, the plain reference (full [S, S] scores, autodiff backward); `chunked`, the same
math in query blocks with a flash-style backward (model/chunked_attention.py: no [S, S] tensors
kept, masked blocks skipped); and `cudnn`, the fused GPU kernel. `auto` takes cuDNN on a GPU where
it compiles, else `chunked`.

All paths share one mask rule (`segment_causal_mask`): token i may attend to token j when j <= i
and both carry the same segment id. Segment 0 (padding) attends within itself, so no softmax row
is ever empty and padding never produces NaNs; the loss masks those tokens anyway.

Shapes: q [batch, seq, q_heads, head_dim]; k, v [batch, seq, kv_heads, head_dim].
"""

from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp

from siamgpt_jax.model.chunked_attention import chunked_attention
from siamgpt_jax.model.config import ATTENTION_NAMES

log = logging.getLogger(__name__)

def validate_attention(name: str) -> str:
    if name not in ATTENTION_NAMES:
        raise ValueError(f"attention={name!r} is not one of {list(ATTENTION_NAMES)}")
    return name


def segment_causal_mask(segment_ids: jnp.ndarray | None, seq_len: int) -> jnp.ndarray:
    """[batch or 1, 1, seq, seq] bool: causal by index, and within one segment when ids are given."""
    idx = jnp.arange(seq_len)
    mask = (idx[:, None] >= idx[None, :])[None, None]
    if segment_ids is not None:
        same = segment_ids[:, :, None] == segment_ids[:, None, :]
        mask = mask & same[:, None]
    return mask


def xla_attention(q, k, v, segment_ids, *, scale: float) -> jnp.ndarray:
    """Reference path: explicit scores, fp32 softmax, grouped heads without repeating k/v."""
    B, S, H, Dh = q.shape
    K = k.shape[2]
    qg = q.reshape(B, S, K, H // K, Dh)
    scores = jnp.einsum("bqkgd,bskd->bkgqs", qg, k, preferred_element_type=jnp.float32) * scale
    mask = segment_causal_mask(segment_ids, S)[:, :, None]  # [B,1,1,S,S]
    scores = jnp.where(mask, scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jnp.einsum("bkgqs,bskd->bqkgd", probs, v, preferred_element_type=jnp.float32)
    return out.reshape(B, S, H, Dh).astype(q.dtype)


def fused_attention(q, k, v, segment_ids, *, scale: float, implementation: str = "cudnn") -> jnp.ndarray:
    """jax.nn.dot_product_attention with the shared segment mask.

    implementation="cudnn" is the GPU flash kernel (bf16/fp16, head_dim <= 128 and a multiple of 8);
    the same call with implementation="xla" runs on CPU, which is how the tests check this wrapper.
    Without segment ids only the built-in causal mask is used (no [S, S] mask is materialised).
    """
    mask = None
    if segment_ids is not None:
        same = segment_ids[:, :, None] == segment_ids[:, None, :]
        mask = same[:, None]  # [B,1,S,S]; causality comes from is_causal
    return jax.nn.dot_product_attention(
        q, k, v, mask=mask, scale=scale, is_causal=True, implementation=implementation
    )


def cudnn_supported(q: jnp.ndarray) -> bool:
    return q.dtype in (jnp.bfloat16, jnp.float16) and q.shape[-1] % 8 == 0 and q.shape[-1] <= 128


@functools.cache
def cudnn_compiles(dtype, head_dim: int, q_heads: int, kv_heads: int, batch: int = 2, seq: int = 128,
                   packed: bool = True) -> bool:
    """Whether the fused path, forward and backward, compiles on the default backend at these shapes.

    'auto' asks this once per shape before choosing cuDNN, with the step's own batch, sequence
    length and segment mask (cuDNN can accept a small probe and reject the real shape), so a
    cuDNN/jax combination that rejects the call falls back to the chunked XLA path with a logged
    reason instead of failing the run.
    """
    def loss(q, k, v, seg):
        return fused_attention(q, k, v, seg, scale=head_dim**-0.5).astype(jnp.float32).sum()

    shapes = [jax.ShapeDtypeStruct((batch, seq, n, head_dim), dtype) for n in (q_heads, kv_heads, kv_heads)]
    seg = jax.ShapeDtypeStruct((batch, seq), jnp.int32) if packed else None
    try:
        jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(*shapes, seg).compile()
        return True
    except Exception as e:  # noqa: BLE001 - any failure means "use the chunked path"
        log.warning("cuDNN attention is unavailable here for batch %d, seq %d%s (%s: %s); attention='auto' "
                    "uses the chunked XLA path", batch, seq, " with packed segments" if packed else "",
                    type(e).__name__, str(e).splitlines()[0][:300] if str(e) else "")
        return False


def resolve(name: str, q: jnp.ndarray, kv_heads: int | None = None, packed: bool = True) -> str:
    """'auto' -> 'cudnn' on GPU when cuDNN supports the dtype/shape and compiles at q's shape, else 'chunked'."""
    if name != "auto":
        return name
    on_gpu = jax.default_backend() in ("gpu", "cuda")
    if not (on_gpu and cudnn_supported(q)):
        return "chunked"
    B, S, H, Dh = q.shape
    return "cudnn" if cudnn_compiles(jnp.dtype(q.dtype), Dh, H, kv_heads or H, B, S, packed) else "chunked"


def attention(q, k, v, segment_ids, *, scale: float, impl: str) -> jnp.ndarray:
    impl = resolve(impl, q, k.shape[-2], packed=segment_ids is not None)
    if impl == "xla":
        return xla_attention(q, k, v, segment_ids, scale=scale)
    if impl == "chunked":
        return chunked_attention(q, k, v, segment_ids, scale=scale)
    return fused_attention(q, k, v, segment_ids, scale=scale, implementation="cudnn")


def cached_attention(q, k, v, index, kv_start, *, scale: float) -> jnp.ndarray:
    """Attention of S new queries over a KV cache (the generation path; same math as xla_attention).

    q: [B, S, H, Dh], the tokens at cache slots index .. index+S-1; k, v: [B, K, T, Dh], the whole
    layer cache (these tokens already written). Query at slot s sees slots kv_start[b] <= t <= s: slots
    before kv_start are left padding, slots after s are not written yet. A padding query sees no
    slot; its row of scores is all the finite minimum, so it gets a uniform softmax, not NaNs.
    """
    B, S, H, Dh = q.shape
    K, T = k.shape[1], k.shape[2]
    qg = q.reshape(B, S, K, H // K, Dh)
    scores = jnp.einsum("bqkgd,bktd->bkgqt", qg, k, preferred_element_type=jnp.float32) * scale
    slot = jnp.arange(T)[None, None, :]
    q_slot = (index + jnp.arange(S))[None, :, None]
    mask = (slot <= q_slot) & (slot >= kv_start[:, None, None])  # [B, S, T]
    scores = jnp.where(mask[:, None, None], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jnp.einsum("bkgqt,bktd->bqkgd", probs, v, preferred_element_type=jnp.float32)
    return out.reshape(B, S, H, Dh).astype(q.dtype)
