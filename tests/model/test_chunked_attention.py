"""The chunked attention path against the reference: values and gradients, masks, blocks, dtypes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from siamgpt_jax.model import attention as attn
from siamgpt_jax.model.chunked_attention import block_size, chunked_attention


def _inputs(B, S, H, K, D, seed=0, dtype=jnp.float32):
    rng = np.random.RandomState(seed)
    q, k, v = (jnp.asarray(rng.randn(B, S, h, D), dtype) for h in (H, K, K))
    w = jnp.asarray(rng.randn(B, S, H, D), jnp.float32)  # a random cotangent
    return q, k, v, w


def _packed_segments(B, S, seed=0):
    """Sorted ids 1..3 per row, with a padding tail (id 0) on the last row."""
    rng = np.random.RandomState(seed)
    segs = np.sort(rng.randint(1, 4, (B, S)), axis=1)
    segs[-1, S - S // 5:] = 0
    return jnp.asarray(segs)


@pytest.mark.parametrize("B,S,H,K,D,block,segmented", [
    (2, 37, 4, 2, 16, 8, True),     # S not a multiple of the block; GQA 2
    (1, 100, 8, 2, 8, 32, False),   # GQA 4, no segments
    (2, 64, 4, 4, 8, None, True),   # GQA 1, default block
    (1, 9, 2, 1, 8, 64, True),      # one block larger than the sequence
])
def test_values_and_gradients_match_reference(B, S, H, K, D, block, segmented):
    q, k, v, w = _inputs(B, S, H, K, D)
    segs = _packed_segments(B, S) if segmented else None
    scale = D**-0.5

    def loss(fn):
        return lambda q, k, v: jnp.sum(fn(q, k, v).astype(jnp.float32) * w)

    ref = lambda q, k, v: attn.xla_attention(q, k, v, segs, scale=scale)  # noqa: E731
    new = lambda q, k, v: chunked_attention(q, k, v, segs, scale=scale, block=block)  # noqa: E731
    np.testing.assert_allclose(new(q, k, v), ref(q, k, v), atol=2e-6)
    g_ref = jax.grad(loss(ref), argnums=(0, 1, 2))(q, k, v)
    g_new = jax.jit(jax.grad(loss(new), argnums=(0, 1, 2)))(q, k, v)
    for name, a, b in zip("qkv", g_new, g_ref):
        np.testing.assert_allclose(a, b, atol=1e-5, err_msg=f"d{name}")


def test_bf16_stays_close_to_the_fp32_reference():
    q, k, v, w = _inputs(1, 96, 4, 2, 32, seed=1)
    segs = _packed_segments(1, 96, seed=1)
    ref = attn.xla_attention(q, k, v, segs, scale=32**-0.5)
    out = chunked_attention(*(x.astype(jnp.bfloat16) for x in (q, k, v)), segs, scale=32**-0.5, block=32)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(out, np.float32), ref, atol=3e-2)
    g = jax.grad(lambda q: jnp.sum(chunked_attention(q, k.astype(jnp.bfloat16), v.astype(jnp.bfloat16), segs,
                                                     scale=32**-0.5, block=32).astype(jnp.float32) * w))
    dq = g(q.astype(jnp.bfloat16))
    assert dq.dtype == jnp.bfloat16 and bool(jnp.all(jnp.isfinite(dq.astype(jnp.float32))))


def test_packed_rows_equal_separate_runs():
    """A row packing two documents gives each the output it gets alone (no leak across segments)."""
    q, k, v, _ = _inputs(1, 40, 4, 2, 16, seed=2)
    segs = jnp.asarray([[1] * 25 + [2] * 15])
    packed = chunked_attention(q, k, v, segs, scale=0.25, block=16)
    first = chunked_attention(q[:, :25], k[:, :25], v[:, :25], None, scale=0.25, block=16)
    second = chunked_attention(q[:, 25:], k[:, 25:], v[:, 25:], None, scale=0.25, block=16)
    np.testing.assert_allclose(packed[:, :25], first, atol=2e-6)
    np.testing.assert_allclose(packed[:, 25:], second, atol=2e-6)


def test_backward_keeps_no_seq_by_seq_tensor():
    """What the backward keeps from the forward (the residuals) has no [S, S] array: that is the
    memory the chunked path exists to save at long sequence lengths."""
    S = 256
    q, k, v, _ = _inputs(1, S, 4, 2, 16)
    segs = _packed_segments(1, S)
    _, vjp = jax.vjp(lambda q, k, v: chunked_attention(q, k, v, segs, scale=0.25), q, k, v)
    kept = [x.shape for x in jax.tree.leaves(vjp)]
    assert kept and all(S not in shape[shape.index(S) + 1:] for shape in kept if S in shape), kept
    _, vjp_ref = jax.vjp(lambda q, k, v: attn.xla_attention(q, k, v, segs, scale=0.25), q, k, v)
    assert any(shape[-2:] == (S, S) for shape in (x.shape for x in jax.tree.leaves(vjp_ref)))


def test_block_size_rule():
    assert block_size(511) == 128 and block_size(128) == 128
    assert block_size(4096) == 512  # at most 8 blocks
    assert block_size(9) == 16  # rounded up to a multiple of 8
    assert all(block_size(s) % 8 == 0 and -(-s // block_size(s)) <= 8 for s in range(1, 20000, 97))
