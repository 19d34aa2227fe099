"""HF -> JAX -> HF round trips: bit-for-bit tensors, transformers reloads, sharded files, mesh, CLI."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy as stn
import torch
import transformers

from siamgpt_jax.cli import main
from siamgpt_jax.convert import load_hf, save_hf
from siamgpt_jax.testing import TINY_HF as TINY, hf_logits, make_hf_model, save_hf_model
from siamgpt_jax.model.qwen3 import LOGICAL_AXES
from siamgpt_jax.sharding import DEFAULT_RULES, named_sharding


def _tensors(folder):
    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(stn.load_file(str(f)))
    return out


@pytest.mark.parametrize("torch_dtype, name", [(torch.float32, "gqa1_tied"), (torch.bfloat16, "gqa2_untied_hd")])
def test_hf_jax_hf_is_bit_for_bit(tmp_path, torch_dtype, name):
    hf = make_hf_model(seed=4, dtype=torch_dtype, **TINY[name])
    save_hf_model(hf, tmp_path / "hf")
    dtype = "float32" if torch_dtype == torch.float32 else "bfloat16"
    model = load_hf(tmp_path / "hf", progress=False)  # dtype=None keeps the checkpoint's
    assert model.embed[...].dtype == jnp.dtype(dtype)
    save_hf(model, tmp_path / "out", dtype=dtype, progress=False)
    a, b = _tensors(tmp_path / "hf"), _tensors(tmp_path / "out")
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
        assert a[k].tobytes() == b[k].tobytes(), k
    if torch_dtype == torch.bfloat16:  # bf16 -> fp32 params -> bf16 is lossless too
        up = load_hf(tmp_path / "hf", dtype="float32", progress=False)
        save_hf(up, tmp_path / "out2", dtype="bfloat16", progress=False)
        c = _tensors(tmp_path / "out2")
        assert all(a[k].tobytes() == c[k].tobytes() for k in a)


def test_sharded_export_loads_in_transformers_with_same_logits(tmp_path):
    hf = make_hf_model(seed=5, **TINY["gqa4_untied"])
    save_hf_model(hf, tmp_path / "hf", max_shard_size="30KB")  # a multi-file checkpoint
    assert len(list((tmp_path / "hf").glob("model-*-of-*.safetensors"))) > 1
    model = load_hf(tmp_path / "hf", dtype="float32", compute_dtype=jnp.float32, progress=False)
    save_hf(model, tmp_path / "out", dtype="float32", max_shard_size="30KB", progress=False)
    files = sorted(p.name for p in (tmp_path / "out").glob("*.safetensors"))
    n = len(files)
    assert n > 1 and files == [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)]
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(files)
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["model_type"] == "qwen3" and (tmp_path / "out" / "generation_config.json").is_file()

    reloaded, info = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path / "out", dtype=torch.float32, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    ids = np.random.RandomState(3).randint(0, 97, (2, 10))
    ref = hf_logits(hf, ids)
    assert np.abs(hf_logits(reloaded.eval(), ids) - ref).max() <= 1e-5
    assert np.abs(np.asarray(model(jnp.asarray(ids))) - ref).max() <= 1e-4


def test_import_onto_a_mesh_places_each_tensor_on_its_sharding(tmp_path):
    hf = make_hf_model(seed=6, **TINY["gqa4_untied"])  # 8 q heads, 2 kv heads, D=48
    save_hf_model(hf, tmp_path / "hf", max_shard_size="30KB")
    mesh = jax.make_mesh((2, 4), ("fsdp", "tensor"))
    sharded = load_hf(tmp_path / "hf", dtype="float32", mesh=mesh, progress=False)
    plain = load_hf(tmp_path / "hf", dtype="float32", progress=False)
    for path in LOGICAL_AXES:
        if path == "lm_head" and hf.config.tie_word_embeddings:
            continue
        a = sharded
        b = plain
        for k in path.split("."):
            a, b = getattr(a, k), getattr(b, k)
        a, b = a[...], b[...]
        assert a.sharding.is_equivalent_to(named_sharding(LOGICAL_AXES[path], a.shape, mesh, DEFAULT_RULES), a.ndim)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    q = sharded.layers.q_proj[...]
    assert q.addressable_shards[0].data.shape == (3, 2, 8, 24)  # heads/4, embed/2
    o = sharded.layers.o_proj[...]
    assert o.addressable_shards[0].data.shape == (3, 24, 2, 8)  # embed/2, heads/4


def test_cli_import_then_export_round_trips(tmp_path, capsys):
    hf = make_hf_model(seed=7, **TINY["gqa1_tied"])
    save_hf_model(hf, tmp_path / "hf")
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "tokenizer_config.json").write_text("{}")
    assert main(["import-hf", str(tmp_path / "hf"), str(tmp_path / "ckpt")]) == 0
    assert (tmp_path / "ckpt" / "model_config.json").is_file()
    assert main(["export-hf", str(tmp_path / "ckpt"), str(tmp_path / "out"), "--dtype", "float32",
                 "--tokenizer-dir", str(tmp_path / "tok")]) == 0
    assert (tmp_path / "out" / "tokenizer_config.json").is_file()
    a, b = _tensors(tmp_path / "hf"), _tensors(tmp_path / "out")
    assert sorted(a) == sorted(b) and all(a[k].tobytes() == b[k].tobytes() for k in a)
