"""The layer ops of both `kernels` paths: model/layer_ops.py (plain jnp with autodiff, the default
off CPU) and model/cpu_kernels.py (the same forwards with hand-written backwards for XLA:CPU: fewer
residuals for the norm and the MLP end, merged-token weight grads for all). Both give the reference
formulas' values and the same grads, on their own and through a whole tiny model and its loss."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from siamgpt_jax.model import layer_ops
from siamgpt_jax.model.config import Qwen3Config
from siamgpt_jax.model.cpu_kernels import dense, rms_norm, swiglu_down
from siamgpt_jax.model.config import KERNEL_NAMES
from siamgpt_jax.model.kernels import layer_ops_for, resolve_kernels
from siamgpt_jax.model.qwen3 import REMAT_POLICIES, Qwen3, _layer, init_model, remat_policy
from siamgpt_jax.model.rope import cos_sin
from siamgpt_jax.train.cpu_tuning import compiler_options
from tests.jaxpr_utils import dot_counts_and_result


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


@pytest.mark.parametrize("kernels", ["xla", "cpu"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_forwards_are_the_reference_formulas_exactly(dtype, kernels):
    ops = layer_ops_for(kernels)
    x, weight, _, up, down = _inputs(dtype)
    assert ops.rms_norm(x, weight, 1e-6).dtype == dtype
    np.testing.assert_array_equal(np.asarray(ops.rms_norm(x, weight, 1e-6), np.float32),
                                  np.asarray(autodiff_rms_norm(x, weight, 1e-6), np.float32))
    np.testing.assert_array_equal(np.asarray(ops.swiglu_down(x, up, down), np.float32),
                                  np.asarray(autodiff_swiglu_down(x, up, down), np.float32))


def _grads(norm, mlp_end, x, weight, g, up, down):
    def f(x, weight, up, down):
        return jnp.sum((mlp_end(norm(x, weight, 1e-6), up, down) * g).astype(jnp.float32))
    return jax.grad(f, argnums=(0, 1, 2, 3))(x, weight, up, down)


def test_cpu_kernel_grads_match_the_plain_path_fp32():
    x, weight, g, up, down = _inputs(jnp.float32)
    ours = _grads(rms_norm, swiglu_down, x, weight, g, up, down)
    ref = _grads(layer_ops.rms_norm, layer_ops.swiglu_down, x, weight, g, up, down)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)


def test_cpu_kernel_grads_bf16_are_as_close_to_fp32_as_the_plain_path():
    x32, weight, g32, up32, down32 = _inputs(jnp.float32)
    exact = _grads(layer_ops.rms_norm, layer_ops.swiglu_down, x32, weight, g32, up32, down32)
    x, g, up, down = (a.astype(jnp.bfloat16) for a in (x32, g32, up32, down32))
    ours = _grads(rms_norm, swiglu_down, x, weight, g, up, down)
    ref = _grads(layer_ops.rms_norm, layer_ops.swiglu_down, x, weight, g, up, down)
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
    assert _saved_shapes(layer_ops.swiglu_down, x, up, down).count(x.shape) == 6
    # rms_norm: the input, the weight and one fp32 rsqrt per row
    assert _saved_shapes(lambda x, w: rms_norm(x, w, 1e-6), x, weight) == sorted(
        [x.shape, weight.shape, (*x.shape[:-1], 1)])


def _one_layer(kernels="cpu"):
    """(layer(p, x), p, x): one decoder layer of a tiny config (hidden 32, mlp 96, 4/2 heads of 8)
    on 12 tokens, fp32."""
    cfg = Qwen3Config(vocab_size=64, hidden_size=32, intermediate_size=96, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8)
    model = init_model(cfg, dtype=jnp.float32)
    p = jax.tree.map(lambda a: a[0], model.param_arrays()["layers"])
    x = jax.random.normal(jax.random.PRNGKey(1), (1, 12, 32))
    cos, sin = cos_sin(jnp.arange(12)[None], cfg)
    ops = layer_ops_for(kernels)
    return (lambda p, x: _layer(cfg, ops, "chunked", jnp.float32, x, p, cos, sin, None)), p, x


def test_a_layer_keeps_two_mlp_wide_tensors():
    saved = _saved_shapes(*_one_layer())
    # gate and up; autodiff kept sigmoid(gate), its derivative, silu(gate) and the hidden as well
    assert saved.count((1, 12, 96)) == 2


@pytest.mark.parametrize("sequence", [1, 2])
def test_down_proj_weight_grad_merges_tokens_unless_the_sequence_is_split(sequence):
    gate, _, _, up, down = _inputs(jnp.float32, shape=(4, 8, 16))
    grad = jax.grad(lambda gate, up, down: jnp.sum(swiglu_down(gate, up, down) ** 2), argnums=(0, 1, 2))
    want = grad(gate, up, down)
    counts, got = dot_counts_and_result(grad, gate, up, down, mesh_axes={"data": 8 // sequence, "sequence": sequence})
    # the forward and d_hidden contract the mlp or embed dim; the weight grad contracts the tokens:
    # one merged [B*S] dim, or batch and sequence apart when a mesh axis splits the sequence
    assert sorted(counts) == [1, 1, 1 if sequence == 1 else 2]
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)


# (x shape, w shape, the einsum autodiff would see): q/k/v, o and gate/up-like projections
PROJECTIONS = [
    ((2, 6, 16), (4, 8, 16), "bsd,hkd->bshk"),
    ((2, 6, 4, 8), (16, 4, 8), "bshk,dhk->bsd"),
    ((2, 6, 16), (24, 16), "bsd,fd->bsf"),
]


def _projection_inputs(x_shape, w_shape, dtype):
    kx, kw = jax.random.split(jax.random.PRNGKey(3))
    return jax.random.normal(kx, x_shape).astype(dtype), (0.3 * jax.random.normal(kw, w_shape)).astype(dtype)


@pytest.mark.parametrize("dense", [layer_ops.dense, dense], ids=["xla", "cpu"])
@pytest.mark.parametrize("x_shape,w_shape,spec", PROJECTIONS)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_dense_is_the_einsum_with_the_same_grads(x_shape, w_shape, spec, dtype, dense):
    x, w = _projection_inputs(x_shape, w_shape, dtype)
    out = dense(x, w)
    assert out.dtype == dtype
    # the same products and sums as the einsum, up to the summation order (one rounding step)
    vtol = 1e-6 if dtype == jnp.float32 else 1e-2
    np.testing.assert_allclose(np.asarray(out, np.float32), np.asarray(jnp.einsum(spec, x, w), np.float32),
                               rtol=vtol, atol=vtol)

    def loss(f):
        return lambda x, w: jnp.sum(jnp.sin(f(x, w).astype(jnp.float32)))

    ours = jax.grad(loss(dense), argnums=(0, 1))(x, w)
    ref = jax.grad(loss(lambda x, w: jnp.einsum(spec, x, w)), argnums=(0, 1))(x, w)
    tol = 2e-5 if dtype == jnp.float32 else 3e-2
    for o, r in zip(ours, ref):
        assert o.dtype == r.dtype and o.shape == r.shape
        np.testing.assert_allclose(np.asarray(o, np.float32), np.asarray(r, np.float32), rtol=tol, atol=tol)


@pytest.mark.parametrize("mesh_axes", [None, {"data": 8}, {"data": 4, "sequence": 2}, {"data": 2, "tensor": 4}])
@pytest.mark.parametrize("x_shape,w_shape,spec", PROJECTIONS)
def test_dense_weight_grad_merges_tokens_unless_the_sequence_is_split(mesh_axes, x_shape, w_shape, spec):
    x, w = _projection_inputs((8, *x_shape[1:]), w_shape, jnp.float32)
    grad = jax.grad(lambda x, w: jnp.sum(dense(x, w) ** 2), argnums=(0, 1))
    want = jax.grad(lambda x, w: jnp.sum(jnp.einsum(spec, x, w) ** 2), argnums=(0, 1))(x, w)
    counts, got = dot_counts_and_result(grad, x, w, mesh_axes=mesh_axes)
    # forward and dx: one contracting dim each, the merged input or output dims (several would
    # make XLA:CPU write a transposed weight first); dw: one merged token dim, or B and S apart
    tokens = 2 if mesh_axes and mesh_axes.get("sequence", 1) > 1 else 1
    assert sorted(counts) == sorted([1, 1, tokens])
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("kernels", ["xla", "cpu"])
@pytest.mark.parametrize("remat", ["full", "dots"])
def test_remat_dots_saves_the_projections(remat, kernels):
    # xla: the projections are plain dots, which the standard dots policy saves by itself. cpu:
    # dense's matmul sits inside a custom_vjp, where the policy cannot see it, so the policy saves
    # the output by its name
    ops = layer_ops_for(kernels)
    assert (remat_policy(remat, ops) is REMAT_POLICIES[remat]) == (kernels == "xla" or remat == "full")
    layer, p, x = _one_layer(kernels)
    saved = _saved_shapes(jax.checkpoint(layer, policy=remat_policy(remat, ops)), p, x)
    q, kv, mlp, embed = (1, 12, 4, 8), (1, 12, 2, 8), (1, 12, 96), (1, 12, 32)
    if remat == "dots":
        assert (saved.count(q), saved.count(kv), saved.count(mlp)) == (1, 2, 2), saved
        assert saved.count(embed) == 2, saved  # the layer input and o_proj's output
    else:
        assert (saved.count(q), saved.count(kv), saved.count(mlp), saved.count(embed)) == (0, 0, 0, 1), saved


@pytest.mark.parametrize("x_shape,w_shape,spec", PROJECTIONS)
def test_dense_compiles_with_no_transposed_copy_on_cpu(x_shape, w_shape, spec):
    # q_proj's [H, K, D] or o_proj's [D, H, K] given to dot_general as they are made XLA:CPU write
    # a transposed copy of the weight before the forward matmul; merged to one [OUT, IN] matrix
    # they go to the dot as they lie. Sizes big enough for the dot library.
    scale = 8
    x, w = _projection_inputs((1, 64, *[d * scale for d in x_shape[2:]]), tuple(d * scale for d in w_shape), jnp.float32)
    grad = jax.grad(lambda x, w: jnp.sum(dense(x, w) ** 2), argnums=(0, 1))
    for fn in (dense, grad):
        hlo = jax.jit(fn, compiler_options=compiler_options("cpu")).lower(x, w).compile().as_text()
        assert not re.findall(r"= \S+ transpose\(", hlo), fn


def test_kernels_auto_picks_the_cpu_kernels_only_on_the_cpu_backend():
    assert KERNEL_NAMES == ("auto", "xla", "cpu")
    assert resolve_kernels("auto") == ("cpu" if jax.default_backend() == "cpu" else "xla")
    assert (resolve_kernels("xla"), resolve_kernels("cpu")) == ("xla", "cpu")
    assert layer_ops_for("xla").dense is layer_ops.dense and layer_ops_for("cpu").dense is dense
    with pytest.raises(ValueError, match="kernels='gpu' is not one of"):
        resolve_kernels("gpu")
    with pytest.raises(ValueError, match="kernels='gpu' is not one of"):
        Qwen3(TINY, rngs=nnx.Rngs(0), kernels="gpu")


TINY = Qwen3Config(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, head_dim=8, tie_word_embeddings=False)


def _logits_loss_and_grads(kernels, mesh_axes, remat):
    """A tiny model's logits, and its chunked train loss and grads (train/step.py's grad function),
    fp32, with `kernels`, traced under a mesh of `mesh_axes` (or none)."""
    from siamgpt_jax.train.state import ModelDef
    from siamgpt_jax.train.spec import StepSpec
    from siamgpt_jax.train.step import make_grad_fn
    from tests.train.helpers import packed_batch

    model = init_model(TINY, dtype=jnp.float32, remat=remat, attention="xla", kernels=kernels)
    model_def, params = ModelDef.split(model)
    batch = {k: jnp.asarray(v) for k, v in packed_batch(0, batch=4, seq_len=16, vocab=96).items()}
    grad_fn = make_grad_fn(model_def, StepSpec(seq_len=16, global_batch=4, loss_chunk=8))

    def logits_and_grads(params, batch):
        logits = model_def.merge(params)(batch["inputs"], batch["positions"], batch["segment_ids"])
        return logits, grad_fn(params, batch)

    return dot_counts_and_result(logits_and_grads, params, batch, mesh_axes=mesh_axes)[1]


@pytest.mark.parametrize("mesh_axes,remat", [(None, "dots"), ({"data": 2, "sequence": 2, "tensor": 2}, "none")])
def test_xla_and_cpu_kernels_give_the_same_logits_loss_and_grads(mesh_axes, remat):
    (logits_x, (grads_x, sums_x)), (logits_c, (grads_c, sums_c)) = (
        _logits_loss_and_grads(k, mesh_axes, remat) for k in ("xla", "cpu"))
    np.testing.assert_allclose(logits_x, logits_c, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sums_x, sums_c, rtol=1e-6)
    flat_x, flat_c = jax.tree_util.tree_leaves_with_path(grads_x), jax.tree.leaves(grads_c)
    assert len(flat_x) == len(flat_c)
    for (path, gx), gc in zip(flat_x, flat_c):
        scale = float(jnp.max(jnp.abs(gx)))
        np.testing.assert_allclose(gx, gc, rtol=1e-4, atol=1e-5 * scale, err_msg=jax.tree_util.keystr(path))
