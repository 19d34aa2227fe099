"""A tiny HF checkpoint and a way to copy it with one tensor changed: what the error tests corrupt."""

import pytest
import safetensors.numpy as stn

from siamgpt_jax.testing import TINY_HF, make_hf_model, save_hf_model


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("hf")
    save_hf_model(make_hf_model(seed=8, **TINY_HF["gqa2_untied_hd"]), path)
    return path


def copy_with(tmp_path, hf_dir, edit):
    """hf_dir's config and weights in tmp_path/bad, with `edit(tensors)` applied to the weights."""
    out = tmp_path / "bad"
    out.mkdir()
    (out / "config.json").write_text((hf_dir / "config.json").read_text())
    tensors = stn.load_file(str(hf_dir / "model.safetensors"))
    edit(tensors)
    stn.save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out
