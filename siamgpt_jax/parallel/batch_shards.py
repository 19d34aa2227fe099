"""Per-process data loading whose global batch does not depend on how many processes there are.

The global batch [B, S] is split over the mesh's batch axes into `n` row blocks (one per distinct
batch shard). Block b is always filled by loader shard b of n (`make_loader(process_index=b,
process_count=n)`), whichever process owns it. A process loads only the blocks that live on its
devices, so 2 processes x 4 devices and 1 process x 8 devices see the very same global batch, and
a checkpoint's data state (one entry per block, gathered to every process) resumes on any
process count with the same number of blocks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np


def row_blocks(sharding, global_batch: int, seq_len: int) -> tuple[int, list[int]]:
    """(number of row blocks of the global batch, the blocks this process's devices hold, sorted)."""
    import jax

    starts: set[int] = set()
    local: set[int] = set()
    me = jax.process_index()
    for device, index in sharding.devices_indices_map((global_batch, seq_len)).items():
        start = index[0].start or 0
        starts.add(start)
        if device.process_index == me:
            local.add(start)
    rows = global_batch // len(starts)
    if any(s % rows for s in starts):  # cannot happen for an even split; kept as a guard
        raise ValueError(f"batch sharding {sharding} splits {global_batch} rows unevenly")
    return len(starts), sorted(s // rows for s in local)


class BatchShards:
    """Iterator of global batches: this process loads its row blocks, JAX assembles the rest.

    make_block(block, num_blocks, rows) -> an iterator of dict batches of `rows` rows with
    get_state/set_state (a loader.pipeline.LoaderIterator).
    """

    def __init__(self, sharding, global_batch: int, seq_len: int, make_block: Callable[[int, int, int], Any]):
        self.sharding = sharding
        self.global_shape = (global_batch, seq_len)
        self.num_blocks, self.blocks = row_blocks(sharding, global_batch, seq_len)
        self.rows = global_batch // self.num_blocks
        self._iters = {b: make_block(b, self.num_blocks, self.rows) for b in self.blocks}

    def __iter__(self) -> Iterator[dict]:
        return self

    def next_local(self) -> dict[int, dict[str, np.ndarray]]:
        """This process's row blocks of the next batch, keyed by block index."""
        return {b: next(it) for b, it in self._iters.items()}

    def to_global(self, local: dict[int, dict[str, np.ndarray]]) -> dict[str, Any]:
        import jax

        keys = next(iter(local.values())).keys()

        def array(key):
            def rows(index):
                start = (index[0].start or 0)
                block = local[start // self.rows][key]
                return block[:, index[1]] if len(index) > 1 else block
            return jax.make_array_from_callback(self.global_shape, self.sharding, rows)

        return {k: array(k) for k in keys}

    def __next__(self) -> dict[str, Any]:
        return self.to_global(self.next_local())

    # ---- state: one entry per block, gathered so any process (the checkpoint writer) holds all ----
    def local_state(self) -> dict[str, Any]:
        return {str(b): it.get_state() for b, it in self._iters.items()}

    def get_state(self) -> dict[str, Any]:
        """{"num_blocks": n, "blocks": {"0": state, ...}} with every process's blocks (a collective)."""
        return {"num_blocks": self.num_blocks, "blocks": gather_json(self.local_state())}

    def set_state(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or "blocks" not in state:
            raise ValueError("data state is not a per-block state (saved before batch shards existed?)")
        if state.get("num_blocks") != self.num_blocks:
            raise ValueError(
                f"the checkpoint's data state has {state.get('num_blocks')} row blocks but this mesh splits "
                f"the batch into {self.num_blocks}; resume with the same number of batch shards"
            )
        for b, it in self._iters.items():
            it.set_state(state["blocks"][str(b)])


def from_full_batch(full: dict[str, np.ndarray], sharding) -> dict[str, Any]:
    """Global arrays from a batch every process holds whole (small eval sets: each process loads all)."""
    import jax

    return {k: jax.make_array_from_callback(v.shape, sharding, lambda index, v=v: v[index]) for k, v in full.items()}


def gather_json(local: dict[str, Any]) -> dict[str, Any]:
    """Merge a JSON-able dict from every process (keys must be disjoint); no-op with one process."""
    import jax

    if jax.process_count() == 1:
        return dict(local)
    from jax.experimental import multihost_utils

    raw = np.frombuffer(json.dumps(local).encode("utf-8"), np.uint8)
    lengths = np.asarray(multihost_utils.process_allgather(np.asarray([raw.size], np.int32))).reshape(-1)
    padded = np.zeros(int(lengths.max()), np.uint8)
    padded[: raw.size] = raw
    every = np.asarray(multihost_utils.process_allgather(padded)).reshape(len(lengths), -1)
    merged: dict[str, Any] = {}
    for n, row in zip(lengths, every):
        merged.update(json.loads(bytes(row[: int(n)]).decode("utf-8")))
    return merged

