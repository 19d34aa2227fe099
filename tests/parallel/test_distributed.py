import os
from pathlib import Path

import jax
import numpy as np
import pytest

from siamgpt_jax.parallel import distributed
from siamgpt_jax.parallel.distributed import DistributedError, expand_nodelist, resolve
from tests.multiprocess import coordinator, last_json, start, wait_all
from tests.parallel.process_batch import shard_batch
from siamgpt_jax.parallel.mesh import MeshConfig, make_mesh
from siamgpt_jax.sharding import DEFAULT_RULES



def test_expand_slurm_nodelist():
    assert expand_nodelist("gpu[001-003,007],login1") == ["gpu001", "gpu002", "gpu003", "gpu007", "login1"]
    assert expand_nodelist("node7") == ["node7"]


def test_resolve_from_slurm():
    env = {"SLURM_PROCID": "3", "SLURM_NTASKS": "8", "SLURM_JOB_NODELIST": "h[10-17]", "SLURM_JOB_ID": "4242"}
    plan = resolve(env=env)
    assert (plan.coordinator, plan.num_processes, plan.process_id, plan.source) == ("h10:24242", 8, 3, "slurm")
    plan = resolve(env={**env, "SIAMGPT_COORDINATOR_PORT": "5000"})
    assert plan.coordinator == "h10:5000"


def test_resolve_from_open_mpi_needs_a_coordinator():
    env = {"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2"}
    with pytest.raises(DistributedError, match="SIAMGPT_COORDINATOR"):
        resolve(env=env)
    plan = resolve(env={**env, "SIAMGPT_COORDINATOR": "10.0.0.1:1234"})
    assert (plan.coordinator, plan.num_processes, plan.process_id, plan.source) == ("10.0.0.1:1234", 2, 1, "openmpi")


def test_resolve_explicit_single_and_errors():
    assert resolve("a:1", 2, 1).source == "explicit"
    assert resolve(env={}).source == "single"
    assert resolve(env={"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}).num_processes == 1
    with pytest.raises(DistributedError, match=r"missing \['process_id'\]"):
        resolve("a:1", 2, None, env={})
    with pytest.raises(DistributedError, match="outside"):
        resolve("a:1", 2, 2, env={})
    with pytest.raises(DistributedError, match="not an integer"):
        resolve(env={"SLURM_PROCID": "x", "SLURM_NTASKS": "2", "SLURM_JOB_NODELIST": "n1"})


def test_initialize_is_a_no_op_for_one_process(monkeypatch):
    for k in list(os.environ):
        if k.startswith(("SLURM_", "OMPI_", "JAX_NUM_PROCESSES")):
            monkeypatch.delenv(k)
    assert distributed.initialize().source == "single"
    assert jax.process_count() == 1


def test_shard_batch_single_process():
    mesh = make_mesh(MeshConfig(data=2, fsdp=4))
    tokens = np.arange(8 * 6, dtype=np.int32).reshape(8, 6)
    out = shard_batch({"tokens": tokens}, mesh, DEFAULT_RULES)
    arr = out["tokens"]
    assert arr.shape == (8, 6)
    assert arr.sharding.spec[0] == ("data", "fsdp")
    np.testing.assert_array_equal(np.asarray(arr), tokens)
    assert {s.data.shape for s in arr.addressable_shards} == {(1, 6)}
    with pytest.raises(ValueError, match=r"batch\['tokens'\]"):
        shard_batch({"tokens": tokens[:6]}, mesh, DEFAULT_RULES)


@pytest.mark.slow
def test_two_processes_of_four_cpu_devices_form_one_mesh():
    coord = coordinator()
    worker = str(Path(__file__).with_name("two_process_worker.py"))
    results = last_json(wait_all([start([worker, coord, str(i), "2"]) for i in range(2)], timeout=180))
    tokens = np.arange(8)[:, None] * 100 + np.arange(6)[None, :]
    for i, r in enumerate(results):
        assert r["process_index"] == i and r["process_count"] == 2
        assert r["global_devices"] == 8 and r["local_devices"] == 4
        assert r["mesh"] == {"data": 2, "fsdp": 4, "tensor": 1, "sequence": 1}
        assert r["global_shape"] == [8, 6]
        assert r["mean"] == pytest.approx(tokens.mean())
        assert r["sum"] == pytest.approx(tokens.sum())
        assert r["row_sums"] == pytest.approx(tokens.sum(axis=1).tolist())
        assert r["psum"] == pytest.approx(sum(range(8)))
