"""One of the processes of test_distributed's 2-process job (run as a script, not collected).

argv: coordinator process_id num_processes. Prints one JSON line of results.
"""

import json
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
os.environ["JAX_PLATFORMS"] = "cpu"

import numpy as np  # noqa: E402

from siamgpt_jax.parallel import distributed  # noqa: E402
from siamgpt_jax.parallel.mesh import MeshConfig, make_mesh  # noqa: E402
from siamgpt_jax.sharding import DEFAULT_RULES  # noqa: E402

coordinator, pid, nproc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
plan = distributed.initialize(coordinator=coordinator, num_processes=nproc, process_id=pid)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

# data spans the 2 hosts, fsdp the 4 devices inside each: the 8x8 layout in miniature.
mesh = make_mesh(MeshConfig(fsdp=4, dcn={"data": -1}))

# Global batch of 8 rows x 6 tokens: row r holds r*100 + position. Each process loads its 4 rows.
global_tokens = np.arange(8)[:, None] * 100 + np.arange(6)[None, :]
rows = global_tokens[pid * 4:(pid + 1) * 4].astype(np.int32)
from process_batch import shard_batch  # noqa: E402  (beside this script)

batch = shard_batch({"tokens": rows, "mask": np.ones_like(rows, np.float32)}, mesh, DEFAULT_RULES)

replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


@jax.jit
def stats(b):
    t = b["tokens"].astype(jnp.float32)
    out = {"mean": jnp.mean(t), "sum": jnp.sum(t * b["mask"]), "row_sums": jnp.sum(t, axis=1)}
    return jax.lax.with_sharding_constraint(out, replicated)


out = stats(batch)
# A cross-process psum through shard_map: each of the 8 devices contributes its (data, fsdp) index.
shard_map = getattr(jax, "shard_map", None)
if shard_map is None:
    from jax.experimental.shard_map import shard_map
P = jax.sharding.PartitionSpec
ones = jax.make_array_from_process_local_data(jax.sharding.NamedSharding(mesh, P(("data", "fsdp"))),
                                              np.arange(4, dtype=np.float32) + 4 * pid)
psum = jax.jit(shard_map(lambda x: jax.lax.psum(x, ("data", "fsdp")), mesh=mesh,
                         in_specs=P(("data", "fsdp")), out_specs=P()))(ones)
print(json.dumps({
    "process_index": jax.process_index(),
    "process_count": jax.process_count(),
    "global_devices": jax.device_count(),
    "local_devices": jax.local_device_count(),
    "mesh": dict(mesh.shape),
    "global_shape": list(batch["tokens"].shape),
    "mean": float(out["mean"]),
    "sum": float(out["sum"]),
    "row_sums": np.asarray(out["row_sums"]).tolist(),
    "psum": float(np.asarray(psum).reshape(-1)[0]),
    "source": plan.source,
}), flush=True)
jax.distributed.shutdown()
