"""`model.params_checkpoint: DIR` (the output of `siamgpt-jax import-hf`) starts training from the
same params, on the same shardings, as `model.hf_path` on the HF folder it came from."""

import jax
import numpy as np
import pytest
import torch

from siamgpt_jax.cli import main
from siamgpt_jax.config import ConfigError
from siamgpt_jax.convert.errors import CheckpointError
from siamgpt_jax.testing import TINY_HF as TINY, make_hf_model, save_hf_model
from siamgpt_jax.parallel.mesh import make_mesh
from siamgpt_jax.train.config import load_job_config
from siamgpt_jax.train.loop import build_model


def _cfg(**model):
    overrides = {"model.dtype": "float32", "model.attention": "xla", "mesh.data": 1, "mesh.fsdp": 2,
                 "mesh.tensor": 4, **{f"model.{k}": v for k, v in model.items()}}
    return load_job_config(None, [f"{k}={v}" for k, v in overrides.items()])


@pytest.mark.parametrize("stored", ["keep", "float32"])
def test_train_starts_from_the_params_checkpoint_with_identical_params(tmp_path, stored):
    save_hf_model(make_hf_model(seed=11, dtype=torch.bfloat16, **TINY["gqa4_untied"]), tmp_path / "hf")
    assert main(["import-hf", str(tmp_path / "hf"), str(tmp_path / "ckpt"), "--dtype", stored, "--no-progress"]) == 0
    from_hf = _cfg(hf_path=tmp_path / "hf")
    from_ckpt = _cfg(params_checkpoint=tmp_path / "ckpt")
    assert from_ckpt.model.architecture() == from_hf.model.architecture()
    mesh = make_mesh(from_hf.mesh)
    rules = dict(from_hf.mesh.rules)
    a, b = build_model(from_hf, mesh, rules), build_model(from_ckpt, mesh, rules)
    pa, pb = jax.tree.leaves(jax.tree.map(lambda x: x, a)), jax.tree.leaves(jax.tree.map(lambda x: x, b))
    assert len(pa) == len(pb) > 10
    for x, y in zip(pa, pb):
        assert x.dtype == y.dtype == np.float32  # train's param_dtype, whatever was stored
        assert x.sharding.is_equivalent_to(y.sharding, x.ndim)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_params_checkpoint_is_validated(tmp_path):
    with pytest.raises(ConfigError, match="'hf_path' or 'params_checkpoint', not both"):
        _cfg(hf_path=tmp_path, params_checkpoint=tmp_path)
    (tmp_path / "config.json").write_text("{}")  # an HF folder given as a params checkpoint
    with pytest.raises(CheckpointError, match=r"model_config\.json: not found; .* is not a params checkpoint"):
        _cfg(params_checkpoint=tmp_path).model.architecture()
