"""Train on 8 devices (fsdp=8), checkpoint, resume on 4 (data=2 x fsdp=2): same state, same next loss."""

import jax
import numpy as np
import pytest

from siamgpt_jax.parallel.mesh import MeshConfig, make_mesh
from siamgpt_jax.sharding import DEFAULT_RULES
from siamgpt_jax.train.checkpoint import CheckpointConfig, Checkpointer
from siamgpt_jax.train.optimizer import OptimConfig, make_optimizer
from siamgpt_jax.train.state import abstract_train_state, create_train_state, state_shardings
from siamgpt_jax.train.spec import StepSpec
from siamgpt_jax.train.step import batch_sharding, jit_train_step, make_train_step

from tests.parallel.test_equivalence import FAST_COMPILE, MODEL_DEF, PARAMS
from tests.train.helpers import packed_batch

OPTIMIZER = make_optimizer(OptimConfig(learning_rate=1e-2, warmup_steps=0, decay="constant"), 10)


def _compiled_step(mesh, shardings, state, batch):
    step = jit_train_step(make_train_step(MODEL_DEF, OPTIMIZER, StepSpec(seq_len=16, global_batch=8, loss_chunk=16)), mesh, DEFAULT_RULES,
                          shardings)
    return step.lower(state, batch).compile(FAST_COMPILE)


def _batch(seed, mesh):
    return {k: jax.device_put(v, batch_sharding(mesh, DEFAULT_RULES)) for k, v in packed_batch(seed, 8, 16).items()}


def test_checkpoint_from_8_devices_restores_onto_4_and_trains_on(tmp_path):
    mesh8 = make_mesh(MeshConfig(data=1, fsdp=8))
    mesh4 = make_mesh(MeshConfig(data=2, fsdp=2), devices=jax.devices()[:4])
    sh8 = state_shardings(MODEL_DEF, OPTIMIZER, mesh8, DEFAULT_RULES)
    sh4 = state_shardings(MODEL_DEF, OPTIMIZER, mesh4, DEFAULT_RULES)

    state = create_train_state(jax.device_put(PARAMS, sh8.params), OPTIMIZER, sh8)
    step8 = _compiled_step(mesh8, sh8, state, _batch(0, mesh8))
    for seed in (0, 1):
        state, _ = step8(state, _batch(seed, mesh8))
    ckpt = Checkpointer(tmp_path / "ckpt", CheckpointConfig(every=1, keep=1, async_save=True))
    ckpt.save(2, state, {"blocks": {}}, {"note": "reshard"}, force=True)
    ckpt.wait()
    saved = jax.device_get(state)

    restored, data_state, config = ckpt.restore(abstract_train_state(MODEL_DEF, OPTIMIZER, sh4))
    ckpt.close()
    assert data_state == {"blocks": {}} and config == {"note": "reshard"}
    assert int(restored.step) == 2
    # bit-identical params and optimizer state, each on the 4-device mesh's sharding
    flat_saved = jax.tree_util.tree_flatten_with_path(saved)[0]
    flat_restored = jax.tree.leaves(restored)
    flat_sh4 = jax.tree.leaves(sh4)
    assert len(flat_saved) == len(flat_restored) == len(flat_sh4)
    for (path, want), got, sh in zip(flat_saved, flat_restored, flat_sh4):
        np.testing.assert_array_equal(np.asarray(got), want, err_msg=jax.tree_util.keystr(path))
        assert got.sharding == sh, jax.tree_util.keystr(path)
        assert {d.id for d in got.sharding.device_set} <= {d.id for d in mesh4.devices.flat}
    q = restored.params["layers"]["q_proj"]
    assert tuple(q.sharding.spec) == (None, None, None, "fsdp") and q.sharding.mesh.shape["fsdp"] == 2
    assert {s.data.shape for s in q.addressable_shards} == {(2, 8, 8, 16)}
    mu = restored.opt_state[1][0].mu["layers"]["q_proj"]  # AdamW's first moment follows its param
    assert mu.sharding == q.sharding

    # one more step on each mesh: the same loss and the same new params
    step4 = _compiled_step(mesh4, sh4, restored, _batch(2, mesh4))
    state, m8 = step8(state, _batch(2, mesh8))
    restored, m4 = step4(restored, _batch(2, mesh4))
    assert float(m4["loss"]) == pytest.approx(float(m8["loss"]), rel=1e-6)
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(restored.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
