"""Layouts are equivalent: one SFT step of the real model gives the same loss and grads on every mesh.

The reference is the same grad function (train.step.make_grad_fn, which the train step uses) jitted
without a mesh on one device; each layout places the same params on the shardings the rules give
and traces with the rules' activation constraints bound. Compiled at XLA backend optimisation
level 0: codegen only, the partitioned program is the same, and it compiles ~2.5x faster on CPU.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from siamgpt_jax.model.config import preset
from siamgpt_jax.model.qwen3 import abstract_model
from siamgpt_jax.parallel.mesh import MeshConfig, make_mesh
from siamgpt_jax.sharding import DEFAULT_RULES, use_mesh_rules
from siamgpt_jax.train.state import ModelDef
from siamgpt_jax.train.spec import StepSpec
from siamgpt_jax.train.step import batch_sharding, make_grad_fn

from tests.train.helpers import packed_batch

# 8 query heads and 4 KV heads so tensor=8 splits q (and the MLP, vocab) but must replicate k/v.
CFG = preset("qwen3-tiny").replace(vocab_size=256, num_hidden_layers=2, hidden_size=32, intermediate_size=64,
                                   num_attention_heads=8, num_key_value_heads=4, head_dim=8,
                                   tie_word_embeddings=False)
MODEL_KW = dict(param_dtype=jnp.float32, dtype=jnp.float32, remat="none", attention="xla")
LAYOUTS = [(8, 1, 1), (1, 8, 1), (1, 1, 8), (2, 2, 2), (1, 2, 4)]
RTOL = 1e-5
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def _model_def_and_params():
    model_def, abstract = ModelDef.split(abstract_model(CFG, **MODEL_KW))
    rng = np.random.default_rng(7)
    params = jax.tree.map(lambda a: (0.05 * rng.standard_normal(a.shape)).astype(np.float32), abstract)
    return model_def, params


MODEL_DEF, PARAMS = _model_def_and_params()


def _grad_fn(micro_batches):
    return make_grad_fn(MODEL_DEF, StepSpec(seq_len=16, global_batch=8, micro_batches=micro_batches, loss_chunk=16))


def _batch():
    return packed_batch(3, batch=8, seq_len=16)


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


@pytest.fixture(scope="module")
def reference():
    batch = {k: jnp.asarray(v) for k, v in _batch().items()}
    step = jax.jit(_grad_fn(1)).lower(PARAMS, batch).compile(FAST_COMPILE)
    grads, (ce, n, _) = step(PARAMS, batch)
    return jax.device_get(grads), float(ce / n)


def _mesh(layout):
    data, fsdp, tensor = layout
    return make_mesh(MeshConfig(data=data, fsdp=fsdp, tensor=tensor))


def _placed_params(mesh):
    return jax.device_put(PARAMS, MODEL_DEF.param_shardings(mesh, DEFAULT_RULES))


def _sharded_step(layout, micro_batches=1):
    mesh, rules = _mesh(layout), DEFAULT_RULES
    params = _placed_params(mesh)
    b_sh = batch_sharding(mesh, rules)
    batch = {k: jax.device_put(v, b_sh) for k, v in _batch().items()}
    fn = _grad_fn(micro_batches)

    def traced(p, b):
        with use_mesh_rules(mesh, rules):
            return fn(p, b)

    p_sh = MODEL_DEF.param_shardings(mesh, rules)
    step = jax.jit(traced, in_shardings=(p_sh, b_sh), out_shardings=(p_sh, None))
    grads, (ce, n, _) = step.lower(params, batch).compile(FAST_COMPILE)(params, batch)
    return mesh, grads, float(ce / n)


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda l: "d{}f{}t{}".format(*l))
def test_one_step_matches_the_single_device_reference(layout, reference):
    ref_grads, ref_loss = reference
    mesh, grads, loss = _sharded_step(layout)
    assert mesh.devices.size == 8
    assert abs(loss - ref_loss) / abs(ref_loss) <= RTOL
    flat_ref = dict(jax.tree_util.tree_flatten_with_path(ref_grads)[0])
    worst = {jax.tree_util.keystr(k): _rel(g, flat_ref[k]) for k, g in jax.tree_util.tree_flatten_with_path(grads)[0]}
    assert len(worst) == len(flat_ref) == 14
    assert max(worst.values()) <= RTOL, worst


def test_micro_batched_step_on_a_mixed_mesh_matches_too(reference):
    ref_grads, ref_loss = reference
    _, grads, loss = _sharded_step((2, 2, 2), micro_batches=2)
    assert abs(loss - ref_loss) / abs(ref_loss) <= RTOL
    for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
        assert _rel(g, r) <= RTOL


def _spec(arr) -> tuple:
    return tuple(arr.sharding.spec)


def test_params_are_sharded_as_the_rules_say():
    # tensor=8: heads, MLP and vocab split over 'tensor'; 4 KV heads cannot split 8 ways -> replicated
    p = _placed_params(_mesh((1, 1, 8)))
    L = p["layers"]
    assert _spec(L["q_proj"]) == (None, "tensor")
    assert _spec(L["o_proj"]) == (None, None, "tensor")
    assert _spec(L["gate_proj"]) == (None, "tensor") and _spec(L["down_proj"]) == (None, None, "tensor")
    assert _spec(L["k_proj"]) == () and _spec(L["v_proj"]) == ()
    assert _spec(p["embed"]) == ("tensor",)
    assert {s.data.shape for s in L["q_proj"].addressable_shards} == {(2, 1, 8, 32)}

    # fsdp=8: every embed dim is split over 'fsdp'; norms stay whole
    p = _placed_params(_mesh((1, 8, 1)))
    L = p["layers"]
    assert _spec(p["embed"]) == (None, "fsdp") and _spec(p["lm_head"]) == (None, "fsdp")
    assert _spec(L["q_proj"]) == (None, None, None, "fsdp") and _spec(L["down_proj"]) == (None, "fsdp")
    assert _spec(L["attn_norm"]) == () and _spec(p["final_norm"]) == ()
    assert {s.data.shape for s in p["embed"].addressable_shards} == {(256, 4)}

    # 2x2x2: both at once
    p = _placed_params(_mesh((2, 2, 2)))
    assert _spec(p["layers"]["q_proj"]) == (None, "tensor", None, "fsdp")
    assert {s.data.shape for s in p["layers"]["q_proj"].addressable_shards} == {(2, 4, 8, 16)}


@pytest.mark.parametrize("layout", [(2, 2, 2), (1, 1, 8)], ids=lambda l: "d{}f{}t{}".format(*l))
def test_chunked_attention_on_a_mesh_matches_the_reference_path(layout):
    """The chunked path (custom VJP, two query blocks at seq 160) partitioned over a mesh gives the
    single-device reference path's loss and grads."""
    chunked_def, _ = ModelDef.split(abstract_model(CFG, **{**MODEL_KW, "attention": "chunked"}))
    batch = packed_batch(5, batch=8, seq_len=160)
    cfg = StepSpec(seq_len=160, global_batch=8, loss_chunk=32)
    ref_fn = jax.jit(make_grad_fn(MODEL_DEF, cfg))
    ref_grads, (ce, n, _) = ref_fn.lower(PARAMS, batch).compile(FAST_COMPILE)(PARAMS, batch)
    ref_loss = float(ce / n)

    mesh, rules = _mesh(layout), DEFAULT_RULES
    p_sh, b_sh = chunked_def.param_shardings(mesh, rules), batch_sharding(mesh, rules)
    fn = make_grad_fn(chunked_def, cfg)

    def traced(p, b):
        with use_mesh_rules(mesh, rules):
            return fn(p, b)

    params = jax.device_put(PARAMS, p_sh)
    placed = {k: jax.device_put(v, b_sh) for k, v in batch.items()}
    step = jax.jit(traced, in_shardings=(p_sh, b_sh), out_shardings=(p_sh, None))
    grads, (ce, n, _) = step.lower(params, placed).compile(FAST_COMPILE)(params, placed)
    assert abs(float(ce / n) - ref_loss) / abs(ref_loss) <= RTOL
    for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
        assert _rel(g, r) <= RTOL
