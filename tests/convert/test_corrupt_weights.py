"""NaN/inf weights and integer tensors stop an import with the file and tensor named, unless allowed."""

import numpy as np
import pytest

from siamgpt_jax.cli import main
from siamgpt_jax.convert import CheckpointError, load_hf
from siamgpt_jax.convert.params_ckpt import import_hf, load_params
from tests.convert.conftest import copy_with

Q1 = "model.layers.1.self_attn.q_proj.weight"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_weight_is_an_error_naming_file_and_tensor_unless_allowed(tmp_path, hf_dir, bad):
    def poison(t):
        t[Q1][3, 5] = bad

    path = copy_with(tmp_path, hf_dir, poison)
    pattern = rf"bad/model\.safetensors: tensor '{Q1}' holds NaN or inf values \(pass --allow-nonfinite"
    with pytest.raises(CheckpointError, match=pattern):
        load_hf(path, progress=False)
    with pytest.raises(CheckpointError, match=pattern):
        import_hf(path, tmp_path / "ckpt", progress=False)
    assert not (tmp_path / "ckpt").exists() and not list(tmp_path.glob(".ckpt.tmp-*"))  # nothing half-written
    assert main(["import-hf", str(path), str(tmp_path / "ckpt"), "--allow-nonfinite", "--no-progress"]) == 0
    q = np.asarray(load_params(tmp_path / "ckpt").layers.q_proj[...])
    assert not np.isfinite(q[1]).all() and np.isfinite(q[0]).all()
    assert not np.isfinite(np.asarray(load_hf(path, progress=False, allow_nonfinite=True).layers.q_proj[...])).all()


def test_fp16_overflow_of_a_cast_is_caught_too(tmp_path, hf_dir):
    def big(t):
        t[Q1][0, 0] = 1e6  # finite in fp32, inf in fp16

    path = copy_with(tmp_path, hf_dir, big)
    load_hf(path, progress=False)  # as stored: fine
    with pytest.raises(CheckpointError, match=f"tensor '{Q1}' holds NaN or inf"):
        load_hf(path, dtype="float16", progress=False)


@pytest.mark.parametrize("np_dtype, st_name", [(np.int8, "I8"), (np.int32, "I32"), (np.uint8, "U8")])
def test_integer_tensor_is_an_error_naming_file_tensor_and_dtype(tmp_path, hf_dir, np_dtype, st_name):
    def quantize(t):
        t[Q1] = np.clip(t[Q1] * 50, -100, 100).astype(np_dtype)

    path = copy_with(tmp_path, hf_dir, quantize)
    pattern = rf"bad/model\.safetensors: tensor '{Q1}' has dtype {st_name}; only float weights"
    with pytest.raises(CheckpointError, match=pattern):
        load_hf(path, progress=False)
    with pytest.raises(CheckpointError, match=pattern):
        import_hf(path, tmp_path / "ckpt", progress=False, allow_nonfinite=True)
