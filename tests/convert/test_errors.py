"""Every bad checkpoint raises a clear CheckpointError naming the file and the tensor."""

import json

import numpy as np
import pytest
import safetensors.numpy as stn

from siamgpt_jax.convert import CheckpointError, UnsupportedCheckpointError, load_hf, save_hf
from siamgpt_jax.convert import hf_export
from siamgpt_jax.errors import UserError
from siamgpt_jax.model import UnsupportedConfigError
from tests.convert.conftest import copy_with

Q0 = "model.layers.0.self_attn.q_proj.weight"


def test_missing_tensor(tmp_path, hf_dir):
    bad = copy_with(tmp_path, hf_dir, lambda t: t.pop(Q0))
    with pytest.raises(CheckpointError, match=rf"bad: missing tensor '{Q0}'"):
        load_hf(bad, progress=False)


def test_unexpected_tensor(tmp_path, hf_dir):
    bad = copy_with(tmp_path, hf_dir, lambda t: t.update({"model.layers.0.extra.weight": np.zeros(3, np.float32)}))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: unexpected tensor 'model\.layers\.0\.extra\.weight'"):
        load_hf(bad, progress=False)


def test_shape_mismatch_names_both_shapes(tmp_path, hf_dir):
    bad = copy_with(tmp_path, hf_dir, lambda t: t.update({Q0: t[Q0][:-1]}))
    with pytest.raises(CheckpointError, match=rf"model\.safetensors: tensor '{Q0}' has shape \[63, 32\], but config\.json implies \[64, 32\]"):
        load_hf(bad, progress=False)


@pytest.mark.parametrize("model_type", ["qwen2", "qwen3_moe", "llama"])
def test_unsupported_model_type(tmp_path, hf_dir, model_type):
    bad = copy_with(tmp_path, hf_dir, lambda t: None)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["model_type"] = model_type
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsupportedCheckpointError, match=rf"config\.json: model_type='{model_type}' is not supported") as e:
        load_hf(bad, progress=False)
    assert isinstance(e.value, UnsupportedConfigError)


def test_truncated_and_corrupt_files(tmp_path, hf_dir):
    bad = copy_with(tmp_path, hf_dir, lambda t: None)
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: truncated or corrupt safetensors file"):
        load_hf(bad, progress=False)
    (bad / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(CheckpointError, match=r"model\.safetensors: truncated or corrupt safetensors file"):
        load_hf(bad, progress=False)


def test_index_naming_a_missing_shard_or_tensor(tmp_path, hf_dir):
    bad = copy_with(tmp_path, hf_dir, lambda t: None)
    names = list(stn.load_file(str(bad / "model.safetensors")))
    wm = {n: "model.safetensors" for n in names}
    wm[Q0] = "model-00002-of-00002.safetensors"
    (bad / "model.safetensors.index.json").write_text(json.dumps({"weight_map": wm}))
    with pytest.raises(CheckpointError, match=r"index\.json: lists shard model-00002-of-00002\.safetensors, which does not exist"):
        load_hf(bad, progress=False)
    wm[Q0] = "model.safetensors"
    wm["model.layers.9.self_attn.q_proj.weight"] = "model.safetensors"
    (bad / "model.safetensors.index.json").write_text(json.dumps({"weight_map": wm}))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: tensor 'model\.layers\.9\.self_attn\.q_proj\.weight' is listed in the index but missing"):
        load_hf(bad, progress=False)


def test_no_weights_and_no_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen3", "hidden_size": 8, "num_attention_heads": 2, "num_key_value_heads": 2}))
    with pytest.raises(CheckpointError, match="neither model.safetensors.index.json nor model.safetensors"):
        load_hf(tmp_path, progress=False)
    with pytest.raises(CheckpointError, match=r"config\.json: not found"):
        load_hf(tmp_path / "nothing", progress=False)


def test_interrupted_export_leaves_no_folder(tmp_path, hf_dir, monkeypatch):
    model = load_hf(hf_dir, progress=False)
    calls = []

    real = hf_export.SafetensorsWriter.write

    def failing_write(self, name, array):
        calls.append(name)
        if len(calls) == 5:
            raise KeyboardInterrupt  # interrupted mid-export
        real(self, name, array)

    monkeypatch.setattr(hf_export.SafetensorsWriter, "write", failing_write)
    with pytest.raises(KeyboardInterrupt):
        save_hf(model, tmp_path / "out", max_shard_size="20KB", progress=False)
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []  # the temp folder is gone too
    monkeypatch.undo()
    save_hf(model, tmp_path / "out", progress=False)
    with pytest.raises(UserError, match="not empty .pass --overwrite"):
        save_hf(model, tmp_path / "out", progress=False)
    save_hf(model, tmp_path / "out", overwrite=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
