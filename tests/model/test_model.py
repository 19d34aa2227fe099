"""Model structure, remat, attention paths and sharded init (no transformers needed)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from siamgpt_jax.model import attention as attn
from siamgpt_jax.model.config import Qwen3Config, param_shapes
from siamgpt_jax.model.qwen3 import LOGICAL_AXES, Qwen3, abstract_model, init_model
from siamgpt_jax.sharding import DEFAULT_RULES, named_sharding

CFG = Qwen3Config(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=16, tie_word_embeddings=False)


@pytest.fixture(scope="module")
def model():
    return init_model(CFG)  # one compile shared by the tests below; they set dtype/remat themselves


def _flat_params(model):
    return {".".join(map(str, k)): v for k, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}


@pytest.mark.parametrize("tied", [True, False])
def test_params_have_the_documented_paths_shapes_and_logical_axes(tied):
    cfg = CFG.replace(tie_word_embeddings=tied)
    params = _flat_params(abstract_model(cfg))  # shapes and metadata only: nothing is computed
    assert {k: tuple(v.shape) for k, v in params.items()} == param_shapes(cfg)
    for k, v in params.items():
        assert isinstance(v, nnx.Param)
        axes = v.get_metadata()["logical_axes"]
        assert axes == LOGICAL_AXES[k] and len(axes) == len(v.shape)
        assert all(a in DEFAULT_RULES for a in axes)


def test_lm_head_kernel_is_the_embedding_when_tied(model):
    np.testing.assert_array_equal(model.lm_head_kernel(), model.lm_head[...])
    tied = nnx.merge(*nnx.split(model))
    tied.config = CFG.replace(tie_word_embeddings=True)
    np.testing.assert_array_equal(tied.lm_head_kernel(), model.embed[...])


def test_param_and_compute_dtypes_are_separate(model):
    assert model.dtype == jnp.bfloat16  # default: fp32 params, bf16 compute
    assert all(v.dtype == jnp.float32 for v in _flat_params(model).values())
    ids = jnp.arange(10).reshape(1, 10)
    fwd = nnx.jit(lambda m, x: (m.hidden_states(x), m(x)))
    h, logits = fwd(model, ids)
    assert h.dtype == jnp.bfloat16
    ref = nnx.merge(*nnx.split(model))
    ref.dtype = jnp.dtype(jnp.float32)
    h32, logits32 = fwd(ref, ids)
    assert h32.dtype == jnp.float32
    np.testing.assert_allclose(logits, logits32, atol=0.05)
    assert not np.array_equal(np.asarray(logits), np.asarray(logits32))
    b = abstract_model(CFG, param_dtype=jnp.bfloat16)
    assert all(v.dtype == jnp.bfloat16 for v in _flat_params(b).values())


def test_bad_remat_and_attention_names_are_rejected():
    with pytest.raises(ValueError, match="remat='some'"):
        Qwen3(CFG, rngs=nnx.Rngs(0), remat="some")
    with pytest.raises(ValueError, match="attention='flash'"):
        Qwen3(CFG, rngs=nnx.Rngs(0), attention="flash")


def _loss_and_grads(model, remat):
    model = nnx.merge(*nnx.split(model))
    model.remat, model.dtype = remat, jnp.dtype(jnp.float32)
    ids = jnp.asarray(np.random.RandomState(0).randint(0, 64, (2, 9)))

    @nnx.jit
    def step(m):
        return nnx.value_and_grad(lambda m: jnp.mean(jax.nn.log_softmax(m(ids))[..., 0]))(m)

    return step(model)


def test_remat_policies_give_identical_gradients(model):
    l0, g0 = _loss_and_grads(model, "none")
    for remat in ("full", "dots"):
        l1, g1 = _loss_and_grads(model, remat)
        np.testing.assert_allclose(l0, l1, rtol=1e-6)
        for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1)):
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_layers_run_under_one_scan(model):
    jaxpr = str(jax.make_jaxpr(lambda ids: model(ids))(jnp.zeros((1, 4), jnp.int32)))
    assert jaxpr.count(" scan[") == 1 and "length=3" in jaxpr


def test_segment_mask_is_causal_within_segments():
    m = np.asarray(attn.segment_causal_mask(jnp.array([[1, 1, 2, 2, 0]]), 5))[0, 0]
    expected = np.array([
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 0, 0, 1],
    ], bool)
    np.testing.assert_array_equal(m, expected)


@pytest.mark.parametrize("with_segments", [False, True])
def test_fused_wrapper_matches_reference(with_segments):
    """The cuDNN path's wrapper (GQA layout, segment mask + is_causal) run with XLA on CPU."""
    rng = np.random.RandomState(0)
    q, k, v = (jnp.asarray(rng.randn(2, 12, h, 16).astype(np.float32)) for h in (8, 2, 2))
    segs = jnp.asarray(np.array([[1] * 5 + [2] * 7, [1] * 12])) if with_segments else None
    ref = attn.xla_attention(q, k, v, segs, scale=0.25)
    fused = attn.fused_attention(q, k, v, segs, scale=0.25, implementation="xla")
    np.testing.assert_allclose(ref, fused, atol=1e-5)


def test_auto_picks_chunked_off_gpu_and_cudnn_only_for_supported_inputs():
    q32 = jnp.zeros((1, 8, 4, 64), jnp.float32)
    assert attn.resolve("auto", q32) == "chunked"  # CPU here
    assert attn.resolve("xla", q32) == "xla"
    assert attn.resolve("cudnn", q32) == "cudnn"
    assert attn.cudnn_supported(q32.astype(jnp.bfloat16)) and not attn.cudnn_supported(q32)
    assert not attn.cudnn_supported(jnp.zeros((1, 8, 4, 256), jnp.bfloat16))


def test_a_fused_path_that_does_not_compile_is_reported_and_auto_falls_back(caplog):
    # On CPU the cuDNN call cannot compile: the probe must say so (logged, not raised), which is
    # what makes attention="auto" fall back to the chunked XLA path on a GPU whose cuDNN rejects the call.
    attn.cudnn_variant.cache_clear()
    with caplog.at_level("WARNING", logger="siamgpt_jax.model.attention"):
        assert attn.cudnn_compiles(jnp.dtype(jnp.bfloat16), 64, 8, 2, 4, 256) is False
    # both cuDNN calls were tried, each failure said, then the fallback
    assert "cuDNN attention on packed segments for batch 4, seq 256 with packed segments does not compile" in caplog.text
    assert "cuDNN attention for batch 4, seq 256 with packed segments does not compile" in caplog.text
    assert "attention='auto' uses the chunked XLA path for batch 4, seq 256" in caplog.text


def _mask_from_packed(lengths, offsets, seq_len):
    """The [B, S, S] mask cuDNN's packed causal layout means: query i sees key j when both sit in
    one listed run (offset <= j <= i < offset + length)."""
    i = jnp.arange(seq_len)
    inside = ((i[None, None, :] >= offsets[:, :-1, None]) & (i[None, None, :] < (offsets[:, :-1] + lengths)[..., None])
              & (lengths[..., None] > 0))  # [B, M, S]: token in run m
    same = jnp.einsum("bmi,bmj->bij", inside.astype(jnp.int32), inside.astype(jnp.int32)) > 0
    return same & (i[:, None] >= i[None, :])[None]


def test_packed_segments_list_each_rows_runs_as_cudnn_takes_them():
    seg = jnp.asarray([[1, 1, 1, 2, 2, 3, 0, 0],   # three records and padding
                       [1, 1, 1, 1, 1, 1, 1, 1],   # one record fills the row
                       [1, 2, 3, 4, 5, 6, 7, 8]],  # more records than slots
                      jnp.int32)
    lengths, offsets, fits = attn.packed_segments(seg, max_segments=4)
    assert lengths.tolist()[:2] == [[3, 2, 1, 2], [8, -1, -1, -1]]
    assert offsets.tolist()[:2] == [[0, 3, 5, 6, -1], [0, -1, -1, -1, -1]]
    assert fits.tolist() == [True, True, False]
    # the mask those lists mean is the shared segment-causal mask (padding attends within itself)
    want = attn.segment_causal_mask(seg[:2], 8)[:, 0]
    assert bool(jnp.all(_mask_from_packed(lengths[:2], offsets[:2], 8) == want))


def test_packed_segments_mean_the_segment_mask_for_any_first_fit_packing():
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(16):  # random record lengths packed into rows of 64, padding at the end
        ids, n = [], 1
        while len(ids) < 64 and rng.random() > 0.1:
            ids += [n] * int(rng.integers(1, 20))
            n += 1
        rows.append((ids + [0] * 64)[:64])
    seg = jnp.asarray(rows, jnp.int32)
    lengths, offsets, fits = attn.packed_segments(seg, max_segments=attn.PACKED_MAX_SEGMENTS)
    assert bool(jnp.all(fits))
    assert bool(jnp.all(_mask_from_packed(lengths, offsets, 64) == attn.segment_causal_mask(seg, 64)[:, 0]))


def test_sharded_init_places_each_param_on_its_logical_sharding():
    mesh = jax.make_mesh((2, 4), ("fsdp", "tensor"))
    model = init_model(CFG, mesh=mesh)
    for k, v in _flat_params(model).items():
        want = named_sharding(LOGICAL_AXES[k], v.shape, mesh, DEFAULT_RULES)
        assert v[...].sharding.is_equivalent_to(want, v.ndim), k
    q = _flat_params(model)["layers.q_proj"][...]
    assert q.sharding.spec == jax.sharding.PartitionSpec(None, "tensor", None, "fsdp")
    assert q.addressable_shards[0].data.shape == (3, 1, 16, 16)
    # same values as an unsharded init with the same seed
    ref = _flat_params(init_model(CFG))  # cached compile (the `model` fixture)
    for k, v in _flat_params(model).items():
        np.testing.assert_allclose(np.asarray(v[...]), np.asarray(ref[k][...]), rtol=1e-6)  # jit may fuse differently


def test_the_packed_path_probe_runs_even_while_a_step_is_being_traced(caplog):
    """cudnn_variant is first asked while the train step is traced; its numeric probe must still run
    (eagerly) and tell a right implementation from a wrong one. On CPU the stand-ins are the XLA
    path (right) and attention that ignores segments (wrong)."""
    def right(q, k, v, seg, *, scale):
        return attn.xla_attention(q, k, v, seg, scale=scale)

    def wrong(q, k, v, seg, *, scale):
        return attn.xla_attention(q, k, v, None, scale=scale)

    seen = []

    @jax.jit
    def step(x):
        seen.append((attn.matches_chunked(right, jnp.float32, 16, 4, 2, "right"),
                     attn.matches_chunked(wrong, jnp.float32, 16, 4, 2, "wrong")))
        return x + 1

    with caplog.at_level("WARNING", logger="siamgpt_jax.model.attention"):
        step(jnp.float32(0))
    assert seen == [(True, False)]
    assert "wrong differs from the chunked path" in caplog.text
