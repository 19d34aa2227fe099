"""Global jax.Arrays from each process's rows of a batch: the multi-host tests' way of feeding a
sharded batch without the loader (the trainer feeds batches through parallel/batch_shards.py)."""

from collections.abc import Mapping

import jax
import numpy as np
from jax.sharding import NamedSharding

from siamgpt_jax.sharding import DEFAULT_RULES, logical_to_spec


def batch_logical_axes(ndim: int) -> tuple[str | None, ...]:
    """[batch, seq, ...rest]: the batch dims the loader produces; trailing dims stay whole."""
    return (("batch", "seq") + (None,) * max(0, ndim - 2))[:ndim]


def shard_batch(local_batch: Mapping[str, np.ndarray], mesh, rules=None) -> dict:
    """Global jax.Arrays sharded over ("batch", "seq") from this process's rows of the batch.

    Each process passes the rows it loaded (its slice of the global batch, in process order); the
    global batch dim is inferred from how the batch axis spreads over processes. Axes that do not
    divide the batch are an error here (not silently replicated): that is a loader bug.
    """
    rules = DEFAULT_RULES if rules is None else rules
    out = {}
    for name, arr in local_batch.items():
        arr = np.asarray(arr)
        spec = logical_to_spec(batch_logical_axes(arr.ndim), rules, mesh)
        sharding = NamedSharding(mesh, spec)
        try:
            out[name] = jax.make_array_from_process_local_data(sharding, arr)
        except ValueError as e:
            raise ValueError(f"batch['{name}'] with local shape {arr.shape} cannot be sharded as {spec}: {e}") from None
    return out
