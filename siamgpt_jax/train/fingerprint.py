"""A checksum and a finiteness flag per array of a pytree, computed where the arrays live.

The checksum is sum_i bits(x_i) * (2 i + 1) mod 2^32 over the raw bits of every element (i its
flat index). The weights are odd, so flipping any one bit always changes it; other damage goes
unnoticed with probability about 2^-32. It is a reduction, so sharded arrays are never gathered:
each device sums its shard and one 4-byte all-reduce per array finishes it. `host_checksum`
computes the same sum over a numpy block that starts at any flat index, so a reader that streams an
array in slices (the HF export) checks it without holding it whole.
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


_BLOCK = 1 << 22  # elements per step of host_checksum: bounds its temporaries to a few MB
_ODD_WEIGHTS = (np.arange(_BLOCK, dtype=np.uint32) * np.uint32(2) + np.uint32(1))  # 2i + 1


def host_checksum(values: np.ndarray, start: int = 0) -> int:
    """`_checksum`'s sum for a numpy block whose first element has flat index `start` in its array;
    blocks of one array add up (mod 2^32) to the array's checksum. Per block of n elements:
    sum(bits * (2 (start + i) + 1)) = sum(bits * (2 i + 1)) + 2 start sum(bits), all mod 2^32."""
    v = np.ascontiguousarray(values)
    if v.dtype == np.bool_:
        bits = v.reshape(-1).astype(np.uint32)
    elif v.dtype.itemsize in (1, 2, 4):
        bits = v.reshape(-1).view(f"uint{8 * v.dtype.itemsize}")
    else:  # 8-byte types: two uint32 words per element, as jax's bitcast gives them
        bits, start = v.reshape(-1).view(np.uint32), 2 * start
    total = 0
    for lo in range(0, bits.size, _BLOCK):
        block = bits[lo:lo + _BLOCK]
        block = block if block.dtype == np.uint32 else block.astype(np.uint32)
        weighted = int(np.sum(block * _ODD_WEIGHTS[: block.size], dtype=np.uint32))
        plain = int(np.sum(block, dtype=np.uint32))
        total += weighted + 2 * (start + lo) * plain
    return total % 2**32


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
