"""One process of test_multihost_hub's 2-process job (run as a script, not collected).

argv: coordinator process_id num_processes spec... ; HF_HUB_CACHE (set per process by the test)
says which cache this process reads. Prints one JSON line: per spec, the commit or the error.
"""

import json
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"
os.environ["JAX_PLATFORMS"] = "cpu"

from siamgpt_jax.errors import UserError  # noqa: E402
from siamgpt_jax.hub import resolve_model  # noqa: E402
from siamgpt_jax.parallel import distributed  # noqa: E402

coordinator, pid, nproc, specs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
distributed.initialize(coordinator=coordinator, num_processes=nproc, process_id=pid)

import jax  # noqa: E402

out = {}
for spec in specs:
    try:
        out[spec] = {"commit": resolve_model(spec, weights=False).commit}
    except UserError as e:
        out[spec] = {"error": str(e)}
print(json.dumps(out), flush=True)
jax.distributed.shutdown()
