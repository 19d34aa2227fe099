"""Qwen3 (dense) in Flax NNX, computing what transformers' Qwen3ForCausalLM computes.

Parameters are plain nnx.Param with the layer tensors stacked on a leading `layers` axis (paths
and shapes exactly as `param_shapes`), each carrying `logical_axes` metadata for sharding. The
forward pass is a pure function of those arrays: the layers run under one `jax.lax.scan`, so
compile time does not grow with depth, wrapped in `jax.checkpoint` with the chosen remat policy.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from siamgpt_jax.model import attention as attn
from siamgpt_jax.model.config import LAYER_NORM_KEYS, PARAM_AXES, REMAT_NAMES, Qwen3Config, param_shapes
from siamgpt_jax.model.kv_cache import CACHE_AXES, KVCache
from siamgpt_jax.model.kernels import LayerOps, layer_ops_for, validate_kernels
from siamgpt_jax.model.rope import apply_rope, cos_sin
from siamgpt_jax.sharding import DEFAULT_RULES, Rules, constrain, named_sharding

# Logical axis names of every parameter, from the one parameter table (lm_head only in untied configs).
LOGICAL_AXES = PARAM_AXES
LAYER_KEYS = tuple(k.split(".", 1)[1] for k in LOGICAL_AXES if k.startswith("layers."))

# "dots" saves the outputs of weight matmuls (dots without batch dims) and recomputes the rest,
# including the [S, S] attention scores, which are the expensive thing to keep.
REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}
assert tuple(REMAT_POLICIES) == REMAT_NAMES  # one policy per name the configs accept


def remat_policy(remat: str, ops: LayerOps):
    """REMAT_POLICIES[remat]; with the CPU kernels "dots" also saves the projections by name, as
    their dots sit inside a custom_vjp where the policy cannot see them."""
    policy = REMAT_POLICIES[remat]
    if remat == "dots" and ops.remat_names:
        policy = jax.checkpoint_policies.save_from_both_policies(
            policy, jax.checkpoint_policies.save_only_these_names(*ops.remat_names))
    return policy


def _cast_layer(p, dtype):
    """A layer's params in the compute dtype (the norms keep theirs, as HF's RMSNorm scales in fp32)."""
    return {k: (v if k in LAYER_NORM_KEYS else v.astype(dtype)) for k, v in p.items()}


def _attention_inputs(config: Qwen3Config, ops: LayerOps, w, x, cos, sin):
    """The layer up to attention: q, k, v after their norms and RoPE. x: [B,S,D]."""
    eps = config.rms_norm_eps
    h = ops.rms_norm(x, w["attn_norm"], eps)
    q, k, v = ops.dense(h, w["q_proj"]), ops.dense(h, w["k_proj"]), ops.dense(h, w["v_proj"])
    q = constrain(q, ("batch", "seq", "act_heads", "act_head_dim"))
    k = constrain(k, ("batch", "seq", "act_kv_heads", "act_head_dim"))
    v = constrain(v, ("batch", "seq", "act_kv_heads", "act_head_dim"))
    q = apply_rope(ops.rms_norm(q, w["q_norm"], eps), cos, sin)
    k = apply_rope(ops.rms_norm(k, w["k_norm"], eps), cos, sin)
    return q, k, v


def _after_attention(config: Qwen3Config, ops: LayerOps, w, x, o):
    """The layer from the attention output o [B,S,H,Dh] on: o_proj, residual, MLP."""
    o = constrain(o, ("batch", "seq", "act_heads", "act_head_dim"))
    x = x + ops.dense(o, w["o_proj"])
    x = constrain(x, ("batch", "seq", "act_embed"))
    h = ops.rms_norm(x, w["mlp_norm"], config.rms_norm_eps)
    x = x + ops.swiglu_down(ops.dense(h, w["gate_proj"]), ops.dense(h, w["up_proj"]), w["down_proj"])
    return constrain(x, ("batch", "seq", "act_embed"))


def _layer(config: Qwen3Config, ops: LayerOps, impl: str, dtype, x, p, cos, sin, segment_ids):
    """One decoder layer. x: [B,S,D]; p: this layer's params (no `layers` axis)."""
    w = _cast_layer(p, dtype)
    q, k, v = _attention_inputs(config, ops, w, x, cos, sin)
    o = attn.attention(q, k, v, segment_ids, scale=config.head_dim**-0.5, impl=impl)
    return _after_attention(config, ops, w, x, o)


def _embed(params, input_ids, dtype):
    # Gather rows from a table whose embed dim is whole (FSDP all-gathers it, in compute dtype):
    # gathering from the fsdp-split table would make the backward scatter re-split [B,S,D] by D.
    table = constrain(params["embed"].astype(dtype), ("vocab", None))
    x = jnp.take(table, input_ids, axis=0)
    return constrain(x, ("batch", "seq", "act_embed"))


def forward_hidden(
    params: dict[str, Any],
    config: Qwen3Config,
    input_ids: jnp.ndarray,
    positions: jnp.ndarray | None = None,
    segment_ids: jnp.ndarray | None = None,
    *,
    dtype=jnp.bfloat16,
    remat: str = "none",
    attention: str = "auto",
    kernels: str = "auto",
) -> jnp.ndarray:
    """Pure forward to the final norm. params: {"embed", "layers": {name: [L, ...]}, "final_norm"}.

    input_ids, positions, segment_ids: [B, S] int. Returns [B, S, D] in `dtype`. `kernels` picks
    the layer ops (model/kernels.py).
    """
    ops = layer_ops_for(kernels)
    B, S = input_ids.shape
    if positions is None:
        positions = jnp.broadcast_to(jnp.arange(S, dtype=jnp.int32), (B, S))
    cos, sin = cos_sin(positions, config)
    x = _embed(params, input_ids, dtype)

    def body(carry, layer_params):
        return _layer(config, ops, attention, dtype, carry, layer_params, cos, sin, segment_ids), None

    if remat != "none":
        body = jax.checkpoint(body, policy=remat_policy(remat, ops), prevent_cse=False)
    x, _ = jax.lax.scan(body, x, params["layers"])
    return ops.rms_norm(x, params["final_norm"], config.rms_norm_eps)


def forward_cached(
    params: dict[str, Any],
    config: Qwen3Config,
    input_ids: jnp.ndarray,
    positions: jnp.ndarray,
    cache: KVCache,
    index: jnp.ndarray,
    kv_start: jnp.ndarray,
    *,
    dtype=jnp.bfloat16,
    kernels: str = "auto",
) -> tuple[jnp.ndarray, KVCache]:
    """The forward over S new tokens that sit at cache slots [index, index+S): the same layer code as
    `forward_hidden`, with attention over the KV cache instead of over the S tokens alone.

    Each layer writes its k, v into the cache (one dynamic_update_slice into the scan carry, which
    XLA does in place), then its queries attend to slots kv_start[b] <= slot <= own slot.
    input_ids, positions: [B, S]; index: int32 scalar; kv_start: [B] int32 (slots before it are
    padding). Returns the hidden states [B, S, D] after the final norm, and the updated cache.
    """
    ops = layer_ops_for(kernels)
    cos, sin = cos_sin(positions, config)
    x = _embed(params, input_ids, dtype)
    scale = config.head_dim**-0.5

    def body(carry, xs):
        x, ck, cv = carry
        p, i = xs
        w = _cast_layer(p, dtype)
        q, k, v = _attention_inputs(config, ops, w, x, cos, sin)
        at = (i, 0, 0, index, 0)  # the cache is [layers, batch, kv_heads, slots, head_dim]
        k_new, v_new = (t.transpose(0, 2, 1, 3)[None].astype(ck.dtype) for t in (k, v))
        ck = constrain(jax.lax.dynamic_update_slice(ck, k_new, at), CACHE_AXES)
        cv = constrain(jax.lax.dynamic_update_slice(cv, v_new, at), CACHE_AXES)
        o = attn.cached_attention(q, ck[i].astype(dtype), cv[i].astype(dtype), index, kv_start, scale=scale)
        return (_after_attention(config, ops, w, x, o), ck, cv), None

    layer_ids = jnp.arange(config.num_hidden_layers, dtype=jnp.int32)
    (x, ck, cv), _ = jax.lax.scan(body, (x, cache.k, cache.v), (params["layers"], layer_ids))
    return ops.rms_norm(x, params["final_norm"], config.rms_norm_eps), KVCache(ck, cv)


def lm_logits(hidden: jnp.ndarray, lm_head: jnp.ndarray) -> jnp.ndarray:
    """hidden [..., D] times the [V, D] head -> float32 logits (the matmul in the hidden's dtype)."""
    w = lm_head.astype(hidden.dtype)
    return jnp.einsum("...d,vd->...v", hidden, w, preferred_element_type=jnp.float32)


class _Layers(nnx.Module):
    """Container so the stacked tensors live at paths `layers.<name>`."""

    def __init__(self, values: dict[str, jnp.ndarray]):
        for name, value in values.items():
            setattr(self, name, nnx.Param(value, logical_axes=LOGICAL_AXES[f"layers.{name}"]))


class Qwen3(nnx.Module):
    def __init__(
        self,
        config: Qwen3Config,
        *,
        rngs: nnx.Rngs,
        param_dtype=jnp.float32,
        dtype=jnp.bfloat16,
        remat: str = "none",
        attention: str = "auto",
        kernels: str = "auto",
    ):
        if remat not in REMAT_POLICIES:
            raise ValueError(f"remat={remat!r} is not one of {list(REMAT_POLICIES)}")
        self.config = config
        self.dtype = jnp.dtype(dtype)
        self.param_dtype = jnp.dtype(param_dtype)
        self.remat = remat
        self.attention = attn.validate_attention(attention)
        self.kernels = validate_kernels(kernels)

        shapes = param_shapes(config)
        std = config.initializer_range

        def init(key: str) -> jnp.ndarray:
            if key.endswith("norm"):
                return jnp.ones(shapes[key], self.param_dtype)
            return (std * jax.random.normal(rngs.params(), shapes[key], jnp.float32)).astype(self.param_dtype)

        self.embed = nnx.Param(init("embed"), logical_axes=LOGICAL_AXES["embed"])
        self.layers = _Layers({name: init(f"layers.{name}") for name in LAYER_KEYS})
        self.final_norm = nnx.Param(init("final_norm"), logical_axes=LOGICAL_AXES["final_norm"])
        if not config.tie_word_embeddings:
            self.lm_head = nnx.Param(init("lm_head"), logical_axes=LOGICAL_AXES["lm_head"])

    def param_arrays(self) -> dict[str, Any]:
        """The params as the pure forward takes them."""
        return {
            "embed": self.embed[...],
            "layers": {name: getattr(self.layers, name)[...] for name in LAYER_KEYS},
            "final_norm": self.final_norm[...],
        }

    def lm_head_kernel(self) -> jnp.ndarray:
        """[V, D]: the embedding when tied, else the lm_head param."""
        if self.config.tie_word_embeddings:
            return self.embed[...]
        return self.lm_head[...]

    def hidden_states(self, input_ids, positions=None, segment_ids=None) -> jnp.ndarray:
        """[B, S, D] after the final norm, in the compute dtype."""
        return forward_hidden(
            self.param_arrays(), self.config, input_ids, positions, segment_ids,
            dtype=self.dtype, remat=self.remat, attention=self.attention, kernels=self.kernels,
        )

    def __call__(self, input_ids, positions=None, segment_ids=None) -> jnp.ndarray:
        """Logits [B, S, V] in float32 (the matmul runs in the compute dtype, accumulates in fp32)."""
        h = self.hidden_states(input_ids, positions, segment_ids)
        return constrain(lm_logits(h, self.lm_head_kernel()), ("batch", "seq", "act_vocab"))


def param_shardings(abstract_state: nnx.State, mesh, rules: Rules | None = None):
    """A NamedSharding per Param, from its `logical_axes` metadata (same tree as the state)."""
    rules = dict(rules or DEFAULT_RULES)
    return jax.tree.map(
        lambda v: named_sharding(v.get_metadata().get("logical_axes"), v.shape, mesh, rules),
        abstract_state,
        is_leaf=lambda x: isinstance(x, nnx.Variable),
    )


def abstract_model(config: Qwen3Config, **kwargs) -> Qwen3:
    """The model with ShapeDtypeStructs for values: no memory, no compute."""
    return nnx.eval_shape(lambda: Qwen3(config, rngs=nnx.Rngs(0), **kwargs))


_INIT_CACHE: dict = {}


def init_model(config: Qwen3Config, *, seed: int = 0, mesh=None, rules: Rules | None = None, **kwargs) -> Qwen3:
    """A randomly initialised model. With a mesh, each param is created directly on its sharding."""
    graphdef, abstract_state = nnx.split(abstract_model(config, **kwargs))
    # One compiled program creates every param (eager init would compile op by op); it is cached
    # per (config, kwargs, mesh, rules) with the seed as an argument, so re-inits do not recompile.
    key = (repr(config), repr(sorted(kwargs.items())), mesh, repr(sorted((rules or {}).items())))
    if key not in _INIT_CACHE:
        shardings = None if mesh is None else param_shardings(abstract_state, mesh, rules)

        def make(seed):
            return nnx.split(Qwen3(config, rngs=nnx.Rngs(jax.random.key(seed)), **kwargs))[1]

        _INIT_CACHE[key] = jax.jit(make, out_shardings=shardings)
    state = _INIT_CACHE[key](jnp.asarray(seed, jnp.uint32))
    return nnx.merge(graphdef, state)
