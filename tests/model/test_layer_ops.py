"""RMSNorm and the SwiGLU MLP end with hand-written backwards: same values and grads as autodiff,
fewer residuals."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from siamgpt_jax.model.config import Qwen3Config
from siamgpt_jax.model.layer_ops import rms_norm, swiglu_down
from siamgpt_jax.model.qwen3 import _layer, init_model
from siamgpt_jax.model.rope import cos_sin
from tests.jaxpr_utils import dot_contracting_dim_counts


def autodiff_rms_norm(x, weight, eps):
    xf = x.astype(jnp.float32)
    xf = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + eps)
    return weight.astype(x.dtype) * xf.astype(x.dtype)


def autodiff_swiglu_down(gate, up, down_proj):
    return jnp.einsum("bsf,df->bsd", jax.nn.silu(gate) * up, down_proj)


def _inputs(dtype, shape=(2, 5, 16), out=12):
    k = jax.random.split(jax.random.PRNGKey(0), 5)
    x = (3 * jax.random.normal(k[0], shape)).astype(dtype)
    weight = 1 + 0.1 * jax.random.normal(k[1], shape[-1:])  # fp32, as norm params are kept
    g = jax.random.normal(k[2], (*shape[:-1], out)).astype(dtype)
    up = jax.random.normal(k[3], shape).astype(dtype)
    down = (0.3 * jax.random.normal(k[4], (out, shape[-1]))).astype(dtype)  # [D, F], HF's [out, in]
    return x, weight, g, up, down


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_forwards_are_the_reference_formulas_exactly(dtype):
    x, weight, _, up, down = _inputs(dtype)
    assert rms_norm(x, weight, 1e-6).dtype == dtype
    np.testing.assert_array_equal(np.asarray(rms_norm(x, weight, 1e-6), np.float32),
                                  np.asarray(autodiff_rms_norm(x, weight, 1e-6), np.float32))
    np.testing.assert_array_equal(np.asarray(swiglu_down(x, up, down), np.float32),
                                  np.asarray(autodiff_swiglu_down(x, up, down), np.float32))


def _grads(norm, mlp_end, x, weight, g, up, down):
    def f(x, weight, up, down):
        return jnp.sum((mlp_end(norm(x, weight, 1e-6), up, down) * g).astype(jnp.float32))
    return jax.grad(f, argnums=(0, 1, 2, 3))(x, weight, up, down)


def test_grads_match_autodiff_fp32():
    x, weight, g, up, down = _inputs(jnp.float32)
    ours = _grads(rms_norm, swiglu_down, x, weight, g, up, down)
    ref = _grads(autodiff_rms_norm, autodiff_swiglu_down, x, weight, g, up, down)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)


def test_grads_bf16_are_as_close_to_fp32_as_autodiff():
    x32, weight, g32, up32, down32 = _inputs(jnp.float32)
    exact = _grads(autodiff_rms_norm, autodiff_swiglu_down, x32, weight, g32, up32, down32)
    x, g, up, down = (a.astype(jnp.bfloat16) for a in (x32, g32, up32, down32))
    ours = _grads(rms_norm, swiglu_down, x, weight, g, up, down)
    ref = _grads(autodiff_rms_norm, autodiff_swiglu_down, x, weight, g, up, down)
    for o, r, e in zip(ours, ref, exact):
        assert o.dtype == r.dtype
        err_ours = float(jnp.max(jnp.abs(o.astype(jnp.float32) - e)))
        err_ref = float(jnp.max(jnp.abs(r.astype(jnp.float32) - e)))
        scale = float(jnp.max(jnp.abs(e)))
        assert err_ours <= max(1.5 * err_ref, 1e-2 * scale), (err_ours, err_ref, scale)


def _saved_shapes(fn, *args):
    """Shapes of what the backward keeps from the forward (the vjp closure's arrays)."""
    _, vjp = jax.vjp(fn, *args)
    return sorted(tuple(leaf.shape) for leaf in jax.tree.leaves(vjp))


def test_backwards_keep_only_the_inputs():
    x, weight, _, up, down = _inputs(jnp.float32)
    # swiglu_down: gate, up and the weight; autodiff also keeps sigmoid, its derivative, silu and
    # the hidden
    assert _saved_shapes(swiglu_down, x, up, down) == sorted([x.shape, x.shape, down.shape])
    assert _saved_shapes(autodiff_swiglu_down, x, up, down).count(x.shape) == 6
    # rms_norm: the input, the weight and one fp32 rsqrt per row
    assert _saved_shapes(lambda x, w: rms_norm(x, w, 1e-6), x, weight) == sorted(
        [x.shape, weight.shape, (*x.shape[:-1], 1)])


def test_a_layer_keeps_two_mlp_wide_tensors():
    cfg = Qwen3Config(vocab_size=64, hidden_size=32, intermediate_size=96, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8)
    model = init_model(cfg, dtype=jnp.float32)
    p = jax.tree.map(lambda a: a[0], model.param_arrays()["layers"])
    x = jax.random.normal(jax.random.PRNGKey(1), (1, 12, 32))
    cos, sin = cos_sin(jnp.arange(12)[None], cfg)
    saved = _saved_shapes(lambda p, x: _layer(cfg, "chunked", jnp.float32, x, p, cos, sin, None), p, x)
    # gate and up; autodiff kept sigmoid(gate), its derivative, silu(gate) and the hidden as well
    assert saved.count((1, 12, 96)) == 2


@pytest.mark.parametrize("sequence", [1, 2])
def test_down_proj_weight_grad_merges_tokens_unless_the_sequence_is_split(sequence):
    from siamgpt_jax.parallel.mesh import MeshConfig, make_mesh
    from siamgpt_jax.parallel.rules import use_mesh_rules

    gate, _, _, up, down = _inputs(jnp.float32, shape=(4, 8, 16))

    def loss(gate, up, down):
        return jnp.sum(swiglu_down(gate, up, down) ** 2)

    want = jax.grad(loss, argnums=(0, 1, 2))(gate, up, down)
    mesh = make_mesh(MeshConfig(data=8 // sequence, sequence=sequence))
    with use_mesh_rules(mesh):
        counts = dot_contracting_dim_counts(jax.grad(loss, argnums=(0, 1, 2)), gate, up, down)
        got = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(gate, up, down)
    # the forward and d_hidden contract the mlp or embed dim; the weight grad contracts the tokens:
    # one merged [B*S] dim, or batch and sequence apart when a mesh axis splits the sequence
    assert sorted(counts) == [1, 1, 1 if sequence == 1 else 2]
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)
