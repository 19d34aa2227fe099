"""A checksum and a finiteness flag per array of a pytree, computed where the arrays live.

The checksum is sum_i bits(x_i) * (2 i + 1) mod 2^32 over the raw bits of every element (i its
flat index). The weights are odd, so flipping any one bit always changes it; other damage goes
unnoticed with probability about 2^-32. It is a reduction, so sharded arrays are never gathered:
each device sums its shard and one 4-byte all-reduce per array finishes it.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

_UNSIGNED = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32}


def path_name(path) -> str:
    """'params/layers/q_proj' for a tree path (the name the manifest and error messages use)."""
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def _checksum(x: jax.Array) -> jax.Array:
    if x.dtype == jnp.bool_:
        bits = x.astype(jnp.uint32)
    elif x.dtype.itemsize in _UNSIGNED:
        bits = jax.lax.bitcast_convert_type(x, _UNSIGNED[x.dtype.itemsize]).astype(jnp.uint32)
    else:  # 8-byte types come out as [..., 2] uint32
        bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
    index = jnp.zeros(bits.shape, jnp.uint32)
    stride = 1
    for d in reversed(range(bits.ndim)):  # the flat index, built per shard (no reshape, no gather)
        index = index + jax.lax.broadcasted_iota(jnp.uint32, bits.shape, d) * jnp.uint32(stride % 2**32)
        stride *= bits.shape[d]
    return jnp.sum(bits * (index * jnp.uint32(2) + jnp.uint32(1)), dtype=jnp.uint32)


def _finite(x: jax.Array) -> jax.Array:
    return jnp.all(jnp.isfinite(x)) if jnp.issubdtype(x.dtype, jnp.inexact) else jnp.bool_(True)


@jax.jit
def _fingerprint_leaves(leaves: list[jax.Array]) -> tuple[jax.Array, jax.Array]:
    if not leaves:
        return jnp.zeros((0,), jnp.uint32), jnp.zeros((0,), jnp.bool_)
    return jnp.stack([_checksum(x) for x in leaves]), jnp.stack([_finite(x) for x in leaves])


def _host(x: jax.Array) -> np.ndarray:
    # replicated result: any local copy is the whole value (also on a multi-process mesh)
    return np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else np.asarray(x)


def fingerprint(tree: Any) -> tuple[dict[str, int], dict[str, bool]]:
    """({path: checksum}, {path: all finite}) for every array leaf of `tree`."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    names = [path_name(p) for p, _ in flat]
    sums, finite = _fingerprint_leaves([jnp.asarray(x) if not isinstance(x, jax.Array) else x for _, x in flat])
    sums, finite = _host(sums), _host(finite)
    return ({n: int(s) for n, s in zip(names, sums)}, {n: bool(f) for n, f in zip(names, finite)})


def first_non_finite(finite: dict[str, bool]) -> str | None:
    return next((name for name, ok in finite.items() if not ok), None)
