"""Causal GQA attention in query blocks with a hand-written backward: the memory-lean XLA path.

The reference path (`attention.xla_attention`) builds [B, K, G, S, S] fp32 scores, and its autodiff
backward keeps them and the probabilities for every layer. Here the queries are split into a few
blocks. Block i covers rows [start, end) and only attends to keys [0, end): the keys after it are
masked by causality anyway, so about half of the score work is skipped. At most a [B, H, block, S]
slab of scores exists at a time. Like flash attention, the backward keeps only q, k, v, the output
and each row's log-sum-exp, and recomputes a block's probabilities from them. For Qwen3-32B at
S=4096 that is ~64 MB of saved state per layer instead of ~4 GB of scores.

The mask rule is the shared one (`attention.segment_causal_mask`): j <= i and the same segment.
Every row attends at least to itself, so the log-sum-exp is finite and masked entries get exactly
zero probability.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from siamgpt_jax.model.config import attention_block_size as block_size

MASKED = float(jnp.finfo(jnp.float32).min)


def _grouped(q, kv_heads):
    """[B, S, H, D] -> [B, K, G, S, D]: the query heads that share a kv head, batched together."""
    B, S, H, D = q.shape
    return q.reshape(B, S, kv_heads, H // kv_heads, D).transpose(0, 2, 3, 1, 4)


def _masked_scores(qb, k, segment_ids, start, scale):
    """qb [B,K,G,rows,D] (rows start..), k [B,K,end,D] -> fp32 scores [B,K,G,rows,end], masked."""
    s = jnp.einsum("bkgqd,bkjd->bkgqj", qb, k, preferred_element_type=jnp.float32) * scale
    rows, end = qb.shape[3], k.shape[2]
    allowed = ((start + jnp.arange(rows))[:, None] >= jnp.arange(end)[None, :])[None]  # [1, rows, end]
    if segment_ids is not None:
        seg_q, seg_k = segment_ids[:, start:start + rows], segment_ids[:, :end]
        allowed = allowed & (seg_q[:, :, None] == seg_k[:, None, :])  # [B, rows, end]
    return jnp.where(allowed[:, None, None], s, MASKED)


def _blocks(seq_len: int, block: int):
    return [(start, min(start + block, seq_len)) for start in range(0, seq_len, block)]


def _forward(q, k, v, segment_ids, scale, block):
    B, S, H, D = q.shape
    K = k.shape[2]
    qg = _grouped(q, K)
    kt, vt = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)  # [B, K, S, D]
    outs, lses = [], []
    for start, end in _blocks(S, block):
        s = _masked_scores(qg[:, :, :, start:end], kt[:, :, :end], segment_ids, start, scale)
        m = jnp.max(s, axis=-1, keepdims=True)
        e = jnp.exp(s - m)
        total = jnp.sum(e, axis=-1, keepdims=True)
        # normalise the [rows, D] output rather than the [rows, end] probabilities: one pass over
        # the score slab less (flash attention's order)
        unnormed = jnp.einsum("bkgqj,bkjd->bkgqd", e.astype(v.dtype), vt[:, :, :end],
                              preferred_element_type=jnp.float32)
        outs.append(unnormed / total)
        lses.append((m + jnp.log(total))[..., 0])
    out = jnp.concatenate(outs, axis=3).astype(q.dtype)  # [B, K, G, S, D]
    out = out.transpose(0, 3, 1, 2, 4).reshape(B, S, H, D)
    return out, jnp.concatenate(lses, axis=3)  # lse: [B, K, G, S] fp32


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _chunked(q, k, v, segment_ids, scale, block):
    return _forward(q, k, v, segment_ids, scale, block)[0]


def _chunked_fwd(q, k, v, segment_ids, scale, block):
    out, lse = _forward(q, k, v, segment_ids, scale, block)
    return out, (q, k, v, segment_ids, out, lse)


def _chunked_bwd(scale, block, res, d_out):
    q, k, v, segment_ids, out, lse = res
    B, S, H, D = q.shape
    K = k.shape[2]
    qg, dog = _grouped(q, K), _grouped(d_out.astype(q.dtype), K)
    kt, vt = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)
    # softmax backward's row term sum_j p_ij dp_ij, taken as sum_d dO * O (one [S, D] product
    # instead of an [S, S] one)
    delta = jnp.sum(d_out.astype(jnp.float32) * out.astype(jnp.float32), axis=-1)  # [B, S, H]
    delta = delta.reshape(B, S, K, H // K).transpose(0, 2, 3, 1)  # [B, K, G, S]
    # dk and dv are accumulated transposed, [B, K, D, S]: contracting a block's [rows, end] slab
    # over its rows then reads it as it lies, and only the small q / dO blocks get transposed
    dkt = jnp.zeros((B, K, D, S), jnp.float32)
    dvt = jnp.zeros((B, K, D, S), jnp.float32)
    dqs = []
    for start, end in _blocks(S, block):
        qb, dob = qg[:, :, :, start:end], dog[:, :, :, start:end]
        kb, vb = kt[:, :, :end], vt[:, :, :end]
        s = _masked_scores(qb, kb, segment_ids, start, scale)
        p = jnp.exp(s - lse[:, :, :, start:end, None])  # masked entries: exp(-huge) = 0
        dvt = dvt.at[..., :end].add(
            jnp.einsum("bkgqd,bkgqj->bkdj", dob, p.astype(v.dtype), preferred_element_type=jnp.float32))
        dp = jnp.einsum("bkgqd,bkjd->bkgqj", dob, vb, preferred_element_type=jnp.float32)
        ds = (p * (dp - delta[:, :, :, start:end, None]) * scale).astype(q.dtype)
        dqs.append(jnp.einsum("bkgqj,bkjd->bkgqd", ds, kb, preferred_element_type=jnp.float32))
        dkt = dkt.at[..., :end].add(jnp.einsum("bkgqd,bkgqj->bkdj", qb, ds, preferred_element_type=jnp.float32))
    dq = jnp.concatenate(dqs, axis=3).transpose(0, 3, 1, 2, 4).reshape(B, S, H, D).astype(q.dtype)
    dk = dkt.transpose(0, 3, 1, 2).astype(k.dtype)
    dv = dvt.transpose(0, 3, 1, 2).astype(v.dtype)
    return dq, dk, dv, None


_chunked.defvjp(_chunked_fwd, _chunked_bwd)


def chunked_attention(q, k, v, segment_ids, *, scale: float, block: int | None = None) -> jnp.ndarray:
    """q [B, S, H, D]; k, v [B, S, K, D]; segment_ids [B, S] int or None -> [B, S, H, D]."""
    return _chunked(q, k, v, segment_ids, float(scale), int(block or block_size(q.shape[1])))
