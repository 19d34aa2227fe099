"""Causal GQA self-attention with packed-segment masking.

Three paths: `xla`, the plain reference (full [S, S] scores, autodiff backward); `chunked`, the same
math in query blocks with a flash-style backward (model/chunked_attention.py: no [S, S] tensors
kept, masked blocks skipped); and `cudnn`, the fused GPU kernel. `auto` takes cuDNN on a GPU where
it compiles, else `chunked`.

With packed segments cuDNN is called in one of two ways. `packed` hands it each row's segments as
lengths and offsets (its ragged THD layout), so no [S, S] mask exists, as in flash attention.
`dense` passes a [B, 1, S, S] segment mask through jax.nn.dot_product_attention. `packed` goes
through jax's private cuDNN entry point (the public one takes no segments), so it is used only
where it compiles at the step's shapes and matches the chunked path on a probe
(`cudnn_variant`); a row with more than PACKED_MAX_SEGMENTS segments takes the dense call inside
the step.

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


# The fixed number of (length, offset) slots per row cuDNN's packed layout is given; rows with more
# segments than this take the dense-mask call (a lax.cond in the step, so results never change).
PACKED_MAX_SEGMENTS = 64


def packed_segments(segment_ids: jnp.ndarray, max_segments: int):
    """Each row's runs of equal segment ids as cuDNN's packed layout takes them.

    segment_ids [B, S] (each segment one contiguous run; the padding run of id 0 is a segment of
    its own, so padding attends within itself as in the other paths) -> lengths [B, M] and
    offsets [B, M + 1] (run starts), int32, -1 past a row's last run, and fits [B] bool: False
    where a row has more than M = max_segments runs (its lengths and offsets are then incomplete).
    """
    B, S = segment_ids.shape
    starts = jnp.concatenate([jnp.ones((B, 1), bool), segment_ids[:, 1:] != segment_ids[:, :-1]], axis=1)
    offsets = jax.vmap(lambda row: jnp.nonzero(row, size=max_segments + 1, fill_value=-1)[0])(starts)
    offsets = offsets.astype(jnp.int32)
    first, after = offsets[:, :-1], offsets[:, 1:]
    lengths = jnp.where(first < 0, -1, jnp.where(after < 0, S, after) - first).astype(jnp.int32)
    return lengths, offsets, offsets[:, -1] < 0  # a row that fits has no (M+1)-th run start


def packed_cudnn_attention(q, k, v, segment_ids, *, scale: float,
                           max_segments: int = PACKED_MAX_SEGMENTS) -> jnp.ndarray:
    """cuDNN flash attention over packed segments given as lengths and offsets: no [S, S] mask.

    A batch where some row has more than `max_segments` segments takes the dense-mask call
    instead (both are compiled; lax.cond runs one). GPU only.
    """
    # jax's private entry point: the public jax.nn.dot_product_attention takes no segments
    from jax._src.cudnn.fused_attention_stablehlo import MaskType  # lazy: private and GPU-only
    from jax._src.cudnn.fused_attention_stablehlo import dot_product_attention as cudnn_sdpa  # lazy: as above

    lengths, offsets, fits = packed_segments(segment_ids, max_segments)

    def packed(q, k, v):
        return cudnn_sdpa(q, k, v, None, None, lengths, lengths, offsets, offsets, scale=scale,
                          mask_type=MaskType.PADDING_CAUSAL, qkv_layout="BTNH")

    def dense(q, k, v):
        return fused_attention(q, k, v, segment_ids, scale=scale, implementation="cudnn")

    return jax.lax.cond(jnp.all(fits), packed, dense, q, k, v)


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


def _compiles(fn, shapes, what: str) -> bool:
    """Whether jit(grad(sum(fn))) compiles at these abstract shapes; a failure is logged, not raised."""
    def loss(q, k, v, seg):
        return fn(q, k, v, seg).astype(jnp.float32).sum()

    try:
        jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(*shapes).compile()
        return True
    except Exception as e:  # noqa: BLE001 - any failure means "do not use this path"
        log.warning("%s does not compile here (%s: %s)", what, type(e).__name__,
                    str(e).splitlines()[0][:300] if str(e) else "")
        return False


def matches_chunked(fn, dtype, head_dim: int, q_heads: int, kv_heads: int, what: str) -> bool:
    """Whether fn(q, k, v, segment_ids, scale=) gives the chunked path's output on random data
    with three segments and padding per row (to 0.05): guards against a jax or cuDNN whose packed
    layout means something else. Runs eagerly even when asked while a step is being traced."""
    with jax.ensure_compile_time_eval():
        rng = jax.random.split(jax.random.key(0), 3)
        B, S = 2, 256
        q, k, v = (jax.random.normal(r, (B, S, n, head_dim), jnp.float32).astype(dtype)
                   for r, n in zip(rng, (q_heads, kv_heads, kv_heads)))
        seg = jnp.concatenate([jnp.full((B, 100), 1), jnp.full((B, 90), 2), jnp.full((B, 50), 3),
                               jnp.zeros((B, 16))], axis=1).astype(jnp.int32)
        scale = head_dim**-0.5
        want = chunked_attention(q, k, v, seg, scale=scale).astype(jnp.float32)
        got = jax.jit(functools.partial(fn, scale=scale))(q, k, v, seg).astype(jnp.float32)
        diff = float(jnp.abs(got - want).max())
    if not diff < 0.05:
        log.warning("%s differs from the chunked path by %.3g here; it is not used", what, diff)
        return False
    return True


@functools.cache
def cudnn_variant(dtype, head_dim: int, q_heads: int, kv_heads: int, batch: int = 2, seq: int = 128,
                  packed: bool = True) -> str | None:
    """How cuDNN runs at these shapes on the default backend, forward and backward: "packed"
    (segments as lengths and offsets; only where it also matches the chunked path on a probe),
    "dense" (a [B, 1, S, S] segment mask, or no mask without segments), or None where neither
    compiles. Asked once per shape, with the step's own batch, sequence length and segments
    (cuDNN can accept a small probe and reject the real shape)."""
    shapes = [jax.ShapeDtypeStruct((batch, seq, n, head_dim), dtype) for n in (q_heads, kv_heads, kv_heads)]
    seg = jax.ShapeDtypeStruct((batch, seq), jnp.int32) if packed else None
    scale = head_dim**-0.5
    where = f"for batch {batch}, seq {seq}{' with packed segments' if packed else ''}"
    if packed and _compiles(functools.partial(packed_cudnn_attention, scale=scale), [*shapes, seg],
                            f"cuDNN attention on packed segments {where}"):
        try:
            if matches_chunked(packed_cudnn_attention, dtype, head_dim, q_heads, kv_heads,
                               "cuDNN's packed-segment attention"):
                return "packed"
        except Exception as e:  # noqa: BLE001 - a probe that fails to run rules the packed call out
            log.warning("cuDNN's packed-segment attention failed its probe (%s: %s)", type(e).__name__, str(e)[:300])
    if _compiles(functools.partial(fused_attention, scale=scale), [*shapes, seg], f"cuDNN attention {where}"):
        return "dense"
    log.warning("attention='auto' uses the chunked XLA path %s", where)
    return None


def cudnn_compiles(dtype, head_dim: int, q_heads: int, kv_heads: int, batch: int = 2, seq: int = 128,
                   packed: bool = True) -> bool:
    """Whether the fused path, forward and backward, compiles on the default backend at these shapes."""
    return cudnn_variant(dtype, head_dim, q_heads, kv_heads, batch, seq, packed) is not None


def _on_gpu() -> bool:
    return jax.default_backend() in ("gpu", "cuda")


def resolve(name: str, q: jnp.ndarray, kv_heads: int | None = None, packed: bool = True) -> str:
    """'auto' -> 'cudnn' on GPU when cuDNN supports the dtype/shape and compiles at q's shape, else 'chunked'."""
    if name != "auto":
        return name
    if not (_on_gpu() and cudnn_supported(q)):
        return "chunked"
    B, S, H, Dh = q.shape
    return "cudnn" if cudnn_compiles(jnp.dtype(q.dtype), Dh, H, kv_heads or H, B, S, packed) else "chunked"


def attention(q, k, v, segment_ids, *, scale: float, impl: str) -> jnp.ndarray:
    impl = resolve(impl, q, k.shape[-2], packed=segment_ids is not None)
    if impl == "xla":
        return xla_attention(q, k, v, segment_ids, scale=scale)
    if impl == "chunked":
        return chunked_attention(q, k, v, segment_ids, scale=scale)
    if segment_ids is not None and _on_gpu():
        B, S, H, Dh = q.shape
        if cudnn_variant(jnp.dtype(q.dtype), Dh, H, k.shape[-2], B, S, True) == "packed":
            return packed_cudnn_attention(q, k, v, segment_ids, scale=scale)
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
