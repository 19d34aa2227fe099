"""The model computes what transformers' Qwen3ForCausalLM computes (fp32, torch CPU)."""

import numpy as np
import jax.numpy as jnp
import pytest

from siamgpt_jax.convert import load_hf
from siamgpt_jax.testing import TINY_HF as TINY, hf_logits, make_hf_model, save_hf_model
from siamgpt_jax.model import UnsupportedConfigError
from siamgpt_jax.model.config import Qwen3Config


def _load(tmp_path, hf_model):
    save_hf_model(hf_model, tmp_path / "hf")
    return load_hf(tmp_path / "hf", dtype=jnp.float32, compute_dtype=jnp.float32, progress=False)


@pytest.mark.parametrize("name", list(TINY))
def test_logits_match_transformers_fp32(tmp_path, name):
    hf = make_hf_model(seed=1, **TINY[name])
    model = _load(tmp_path, hf)
    assert model.config.num_hidden_layers >= 3
    ids = np.random.RandomState(0).randint(0, hf.config.vocab_size, (2, 13))
    out = np.asarray(model(jnp.asarray(ids)))
    assert out.shape == (2, 13, hf.config.vocab_size)
    assert np.abs(out - hf_logits(hf, ids)).max() <= 1e-4


def test_yarn_rope_matches_transformers(tmp_path):
    rope = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16, "rope_theta": 10000.0}
    hf = make_hf_model(seed=2, rope_parameters=rope, **TINY["gqa2_untied_hd"])
    model = _load(tmp_path, hf)
    assert model.config.rope_scaling["rope_type"] == "yarn"
    ids = np.random.RandomState(1).randint(0, hf.config.vocab_size, (1, 40))
    assert np.abs(np.asarray(model(jnp.asarray(ids))) - hf_logits(hf, ids)).max() <= 1e-4


def test_packed_segments_equal_separate_runs(tmp_path):
    hf = make_hf_model(seed=3, **TINY["gqa4_untied"])
    model = _load(tmp_path, hf)
    rng = np.random.RandomState(2)
    a, b = rng.randint(0, 97, 7), rng.randint(0, 97, 5)
    packed = np.concatenate([a, b, [0, 0]])[None]  # 2 pad tokens in segment 0
    segs = np.array([[1] * 7 + [2] * 5 + [0, 0]])
    pos = np.array([list(range(7)) + list(range(5)) + [0, 1]])
    out = np.asarray(model(jnp.asarray(packed), positions=jnp.asarray(pos), segment_ids=jnp.asarray(segs)))
    alone_a = np.asarray(model(jnp.asarray(a[None])))
    alone_b = np.asarray(model(jnp.asarray(b[None])))
    np.testing.assert_allclose(out[0, :7], alone_a[0], atol=1e-5)
    np.testing.assert_allclose(out[0, 7:12], alone_b[0], atol=1e-5)
    assert np.isfinite(out).all()
    # and against transformers for the second segment alone
    assert np.abs(out[0, 7:12] - hf_logits(hf, b[None])[0]).max() <= 1e-4


@pytest.mark.parametrize(
    "change, message",
    [
        ({"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, "rope_scaling type 'linear'"),
        ({"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, "rope_scaling type 'dynamic'"),
        ({"use_sliding_window": True}, "use_sliding_window"),
        ({"model_type": "qwen2"}, "model_type='qwen2'"),
    ],
)
def test_unsupported_config_features_are_rejected(change, message):
    d = Qwen3Config().to_hf_dict()
    d.update(change)
    with pytest.raises(UnsupportedConfigError, match=message):
        Qwen3Config.from_hf_dict(d)
