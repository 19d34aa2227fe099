import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from siamgpt_jax.train.loss import chunked_cross_entropy
from siamgpt_jax.train.step import global_norm
from siamgpt_jax.train.optimizer import OptimConfig, decay_mask, learning_rate_schedule, make_optimizer
from tests.jaxpr_utils import dot_counts_and_result


def _direct_ce(h, w, t, m):
    logits = (h @ w.T).astype(jnp.float32)  # w: [V, D], HF orientation
    logp = jax.nn.log_softmax(logits, -1)
    nll = -jnp.take_along_axis(logp, t[..., None], -1)[..., 0]
    return (nll * m).sum(), m.sum(), (jax.nn.logsumexp(logits, -1) ** 2 * m).sum()


@pytest.mark.parametrize("chunk", [4, 5, 16, 64])
def test_chunked_loss_matches_direct_including_ragged_chunks(chunk):
    k = jax.random.split(jax.random.key(0), 4)
    h = jax.random.normal(k[0], (2, 16, 8))
    w = jax.random.normal(k[1], (50, 8))
    t = jax.random.randint(k[2], (2, 16), 0, 50)
    m = (jax.random.uniform(k[3], (2, 16)) > 0.3).astype(jnp.float32)
    total, ce, n, z = chunked_cross_entropy(h, w, t, m, chunk=chunk, z_loss=1e-3)
    ce_ref, n_ref, z_ref = _direct_ce(h, w, t, m)
    np.testing.assert_allclose(ce, ce_ref, rtol=1e-5)
    assert float(n) == float(n_ref)
    np.testing.assert_allclose(z, 1e-3 * z_ref, rtol=1e-5)
    np.testing.assert_allclose(total, ce_ref + 1e-3 * z_ref, rtol=1e-5)
    # the gradients formed inside the forward pass equal autodiff of the direct loss, z-loss included
    for z_w in (0.0, 1e-3):
        g_h, g_w = jax.grad(lambda h, w: chunked_cross_entropy(h, w, t, m, chunk=chunk, z_loss=z_w).total, (0, 1))(h, w)
        r_h, r_w = jax.grad(lambda h, w: (lambda c, _, z: c + z_w * z)(*_direct_ce(h, w, t, m)), (0, 1))(h, w)
        np.testing.assert_allclose(g_h, r_h, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(g_w, r_w, rtol=1e-4, atol=1e-6)


def test_fused_loss_cotangent_scaling_stats_and_bf16():
    k = jax.random.split(jax.random.key(1), 3)
    h = jax.random.normal(k[0], (2, 8, 4))
    w = jax.random.normal(k[1], (11, 4))
    t = jax.random.randint(k[2], (2, 8), 0, 11)
    m = jnp.ones((2, 8))
    # an upstream cotangent (e.g. 1/num_tokens) scales the gradient
    g1 = jax.grad(lambda h: chunked_cross_entropy(h, w, t, m, chunk=4).total)(h)
    g3 = jax.jit(jax.grad(lambda h: 3.0 * chunked_cross_entropy(h, w, t, m, chunk=4).total))(h)
    np.testing.assert_allclose(g3, 3.0 * g1, rtol=1e-5, atol=1e-6)
    # the statistics outputs carry no gradient
    assert float(jnp.abs(jax.grad(lambda h: chunked_cross_entropy(h, w, t, m, chunk=4).ce)(h)).max()) == 0.0
    # bf16 compute: close to fp32
    gb = jax.grad(lambda h: chunked_cross_entropy(h.astype(jnp.bfloat16), w, t, m, chunk=4).total)(h)
    np.testing.assert_allclose(gb, g1, rtol=5e-2, atol=5e-2)


@pytest.mark.parametrize("sequence", [1, 2])
def test_lm_head_grad_sums_over_merged_tokens_unless_the_sequence_is_split(sequence):
    k = jax.random.split(jax.random.PRNGKey(3), 3)
    h, w = jax.random.normal(k[0], (4, 8, 16)), 0.1 * jax.random.normal(k[1], (40, 16))
    t, m = jax.random.randint(k[2], (4, 8), 0, 40), jnp.ones((4, 8))
    grad = jax.grad(lambda h, w: chunked_cross_entropy(h, w, t, m, chunk=4).total, argnums=(0, 1))
    want = grad(h, w)
    counts, got = dot_counts_and_result(grad, h, w, mesh_axes={"data": 8 // sequence, "sequence": sequence})
    # per chunk: logits (over embed), dh (over vocab), and dW over the chunk's tokens, merged into
    # one dim unless a mesh axis splits the sequence
    assert sorted(counts) == [1, 1, 1 if sequence == 1 else 2]
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)


def test_masked_tokens_contribute_nothing():
    h = jnp.ones((1, 4, 2))
    w = jnp.ones((3, 2))
    t = jnp.zeros((1, 4), jnp.int32)
    _, ce, n, _ = chunked_cross_entropy(h, w, t, jnp.zeros((1, 4)), chunk=2)
    assert float(ce) == 0.0 and float(n) == 0.0


def test_schedule_warmup_then_cosine_to_floor():
    cfg = OptimConfig(learning_rate=1.0, warmup_steps=10, decay="cosine", min_lr_ratio=0.1)
    s = learning_rate_schedule(cfg, total_steps=110)
    assert float(s(0)) == 0.0
    assert float(s(5)) == pytest.approx(0.5)
    assert float(s(10)) == pytest.approx(1.0)
    assert float(s(60)) == pytest.approx(0.55, abs=1e-3)  # halfway down the cosine
    assert float(s(110)) == pytest.approx(0.1)
    assert float(s(500)) == pytest.approx(0.1)  # stays at the floor


def test_linear_decay_reaches_floor():
    s = learning_rate_schedule(OptimConfig(learning_rate=2.0, warmup_steps=0, decay="linear", min_lr_ratio=0.25), 100)
    assert float(s(0)) == pytest.approx(2.0)
    assert float(s(50)) == pytest.approx(1.25)
    assert float(s(100)) == pytest.approx(0.5)


def test_no_weight_decay_on_norms_and_clipping():
    params = {"layers": {"q_proj": jnp.ones((2, 3, 3)), "attn_norm": jnp.ones((2, 3))}, "final_norm": jnp.ones(3)}
    mask = decay_mask(params)
    assert mask["layers"]["q_proj"] and not mask["layers"]["attn_norm"] and not mask["final_norm"]
    opt = make_optimizer(OptimConfig(learning_rate=0.1, warmup_steps=0, decay="constant", weight_decay=0.5, clip_norm=1.0), 10)
    zero_grads = jax.tree.map(jnp.zeros_like, params)
    updates, _ = opt.update(zero_grads, opt.init(params), params)
    new = optax.apply_updates(params, updates)
    # with zero gradients only weight decay moves params: matrices shrink, norms do not
    assert float(new["layers"]["q_proj"][0, 0, 0]) == pytest.approx(1 - 0.1 * 0.5)
    assert float(new["layers"]["attn_norm"][0, 0]) == 1.0 and float(new["final_norm"][0]) == 1.0
    # clipping: a huge gradient yields the same Adam step direction but the norm seen is clipped
    big = jax.tree.map(lambda p: jnp.full_like(p, 1e6), params)
    clipped, _ = optax.clip_by_global_norm(1.0).update(big, optax.EmptyState())
    assert float(global_norm(clipped)) == pytest.approx(1.0, rel=1e-5)
