"""One process of test_multihost_export's 2-process job (run as a script, not collected).

argv: coordinator process_id hf_dir out_dir. Imports the HF folder onto a mesh spanning both
processes, then exports it: every process takes part in the per-layer gathers, process 0 writes.
"""

import json
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
os.environ["JAX_PLATFORMS"] = "cpu"

from siamgpt_jax.parallel import distributed  # noqa: E402
from siamgpt_jax.parallel.mesh import MeshConfig, make_mesh  # noqa: E402

coordinator, pid, hf_dir, out_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
distributed.initialize(coordinator=coordinator, num_processes=2, process_id=pid)

import jax  # noqa: E402

from siamgpt_jax.convert import load_hf, save_hf  # noqa: E402
from siamgpt_jax.sharding import DEFAULT_RULES  # noqa: E402

mesh = make_mesh(MeshConfig(data=1, fsdp=8, dcn={"fsdp": 2}))  # params sharded across the 2 processes
model = load_hf(hf_dir, dtype="float32", mesh=mesh, rules=DEFAULT_RULES, progress=False)
q = model.layers.q_proj[...]
save_hf(model, out_dir, dtype="float32", max_shard_size="20KB", progress=False)
print(json.dumps({"process_index": jax.process_index(), "fully_addressable": q.is_fully_addressable,
                  "mesh": dict(mesh.shape), "wrote": os.path.isdir(out_dir)}))
