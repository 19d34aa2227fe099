"""The generation KV cache: one preallocated k and one v tensor for every layer, as a pytree.

Shapes [layers, batch, kv_heads, slots, head_dim]: slots next to head_dim, so attention reads each
head's keys and values as they lie (with slots before heads, XLA:CPU wrote a transposed copy of
the whole layer cache every step). It is updated functionally (qwen3.forward_cached
writes with dynamic_update_slice and returns the new cache); inside jit with the old cache donated,
XLA updates it in place. Its dims carry the logical names in CACHE_AXES (rules in sharding.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from siamgpt_jax.model.config import Qwen3Config
from siamgpt_jax.sharding import DEFAULT_RULES, Rules, named_sharding

CACHE_AXES = ("cache_layers", "cache_batch", "cache_kv_heads", "cache_seq", "cache_head_dim")


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class KVCache:
    k: jax.Array
    v: jax.Array

    @property
    def slots(self) -> int:
        return self.k.shape[3]


def cache_shape(config: Qwen3Config, batch: int, slots: int) -> tuple[int, ...]:
    return (config.num_hidden_layers, batch, config.num_key_value_heads, slots, config.head_dim)


def empty_cache(config: Qwen3Config, batch: int, slots: int, dtype, *, mesh=None, rules: Rules | None = None) -> KVCache:
    """A zeroed cache; with a mesh, each tensor is created directly on its sharding."""
    shape = cache_shape(config, batch, slots)
    if mesh is None:
        return KVCache(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))
    sharding = named_sharding(CACHE_AXES, shape, mesh, dict(rules or DEFAULT_RULES))
    zeros = jax.jit(lambda: jnp.zeros(shape, dtype), out_shardings=sharding)
    return KVCache(zeros(), zeros())
