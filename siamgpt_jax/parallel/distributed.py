"""Multi-host start-up and per-process data sharding.

`initialize()` finds the coordinator, process count and process id from explicit arguments, from
SLURM, from Open MPI, or from plain JAX_* variables, and calls jax.distributed.initialize. With one
process it does nothing, so the same entry point runs a laptop and 8 hosts x 8 GPUs.

Call it before anything touches a JAX device.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


from siamgpt_jax.errors import UserError

DEFAULT_PORT = 12355
# Where the coordinator address ("host:port") may be given when the launcher does not imply one.
COORDINATOR_VARS = ("SIAMGPT_COORDINATOR", "JAX_COORDINATOR_ADDRESS")


class DistributedError(UserError, RuntimeError):
    """The environment does not say enough (or says contradictory things) to start multi-host JAX."""


@dataclass(frozen=True)
class ProcessPlan:
    coordinator: str | None  # "host:port"; None = single process
    num_processes: int
    process_id: int
    local_device_ids: tuple[int, ...] | None
    source: str  # "explicit", "slurm", "openmpi", "env" or "single"


def expand_nodelist(nodelist: str) -> list[str]:
    """SLURM's compressed host list ("gpu[001-003,007],login1") -> ["gpu001", "gpu002", ...]."""
    hosts: list[str] = []
    for m in re.finditer(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist):
        prefix, ranges = m.group(1), m.group(2)
        if ranges is None:
            hosts.append(prefix)
            continue
        for part in ranges.split(","):
            lo, _, hi = part.partition("-")
            hi = hi or lo
            width = len(lo)
            hosts.extend(f"{prefix}{i:0{width}d}" for i in range(int(lo), int(hi) + 1))
    return hosts


def _int_env(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise DistributedError(f"environment variable {name}={env[name]!r} is not an integer") from None


def _port(env: Mapping[str, str]) -> int:
    if "SIAMGPT_COORDINATOR_PORT" in env:
        return _int_env(env, "SIAMGPT_COORDINATOR_PORT")
    if "MASTER_PORT" in env:
        return _int_env(env, "MASTER_PORT")
    # Per-job port so two jobs sharing a first node do not collide.
    if "SLURM_JOB_ID" in env:
        return 20000 + _int_env(env, "SLURM_JOB_ID") % 20000
    return DEFAULT_PORT


def _coordinator_from_env(env: Mapping[str, str]) -> str | None:
    for name in COORDINATOR_VARS:
        if env.get(name):
            return env[name] if ":" in env[name] else f"{env[name]}:{_port(env)}"
    if env.get("MASTER_ADDR"):
        return f"{env['MASTER_ADDR']}:{_port(env)}"
    return None


def resolve(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    local_device_ids: Sequence[int] | None = None,
    env: Mapping[str, str] | None = None,
) -> ProcessPlan:
    """Decide how this process joins the job, without starting anything (pure; testable)."""
    env = os.environ if env is None else env
    ids = None if local_device_ids is None else tuple(int(i) for i in local_device_ids)
    if coordinator is not None or num_processes is not None or process_id is not None:
        missing = [n for n, v in (("coordinator", coordinator), ("num_processes", num_processes),
                                  ("process_id", process_id)) if v is None]
        if missing:
            raise DistributedError(f"explicit multi-host start needs coordinator, num_processes and process_id; missing {missing}")
        if not 0 <= process_id < num_processes:
            raise DistributedError(f"process_id={process_id} is outside [0, num_processes={num_processes})")
        return ProcessPlan(coordinator, num_processes, process_id, ids, "explicit")

    if "SLURM_PROCID" in env and "SLURM_NTASKS" in env and _int_env(env, "SLURM_NTASKS") > 1:
        coord = _coordinator_from_env(env)
        if coord is None:
            nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST")
            if not nodelist:
                raise DistributedError("SLURM_NTASKS > 1 but neither SLURM_JOB_NODELIST nor SIAMGPT_COORDINATOR is set")
            coord = f"{expand_nodelist(nodelist)[0]}:{_port(env)}"
        return ProcessPlan(coord, _int_env(env, "SLURM_NTASKS"), _int_env(env, "SLURM_PROCID"), ids, "slurm")

    if "OMPI_COMM_WORLD_RANK" in env and "OMPI_COMM_WORLD_SIZE" in env and _int_env(env, "OMPI_COMM_WORLD_SIZE") > 1:
        coord = _coordinator_from_env(env)
        if coord is None:
            raise DistributedError(
                "Open MPI launch detected (OMPI_COMM_WORLD_SIZE > 1) but no coordinator address: set "
                "SIAMGPT_COORDINATOR=host:port (e.g. the first host of the hostfile) for every rank"
            )
        return ProcessPlan(coord, _int_env(env, "OMPI_COMM_WORLD_SIZE"), _int_env(env, "OMPI_COMM_WORLD_RANK"), ids, "openmpi")

    if "JAX_NUM_PROCESSES" in env and _int_env(env, "JAX_NUM_PROCESSES") > 1:
        coord = _coordinator_from_env(env)
        if coord is None or "JAX_PROCESS_ID" not in env:
            raise DistributedError("JAX_NUM_PROCESSES > 1 needs JAX_PROCESS_ID and JAX_COORDINATOR_ADDRESS (host:port)")
        return ProcessPlan(coord, _int_env(env, "JAX_NUM_PROCESSES"), _int_env(env, "JAX_PROCESS_ID"), ids, "env")

    return ProcessPlan(None, 1, 0, ids, "single")


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    local_device_ids: Sequence[int] | None = None,
) -> ProcessPlan:
    """Join the multi-host job described by the arguments or the environment (no-op for one process)."""
    import jax

    plan = resolve(coordinator, num_processes, process_id, local_device_ids)
    if plan.num_processes == 1 or jax.distributed.is_initialized():
        return plan
    # CPU devices need a collectives backend across processes; GPUs use NCCL and ignore this.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=plan.coordinator,
        num_processes=plan.num_processes,
        process_id=plan.process_id,
        local_device_ids=None if plan.local_device_ids is None else list(plan.local_device_ids),
    )
    return plan
