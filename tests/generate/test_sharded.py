"""Decoding on a mesh of 8 (virtual CPU) devices gives the same tokens as on one device, with the
params split by the training rules and the KV cache split by KV heads over the tensor axis."""

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec

from siamgpt_jax.generate.backend import GenerationRequest, SamplingParams
from siamgpt_jax.generate.jax_backend import JaxBackend, tensor_parallel_mesh
from siamgpt_jax.model.kv_cache import empty_cache
from siamgpt_jax.sharding import MESH_AXES
from tests.generate.helpers import tiny_hf_folder


def test_sharded_decoding_gives_the_same_tokens(tmp_path):
    assert len(jax.devices()) == 8
    hf_dir = tiny_hf_folder(tmp_path / "hf", seed=6, hidden_size=32, num_attention_heads=8, num_key_value_heads=4,
                            head_dim=8, tie_word_embeddings=False)
    mesh = tensor_parallel_mesh(4)  # data 2 x tensor 4
    assert dict(mesh.shape) == dict(zip(MESH_AXES, (2, 1, 4, 1)))
    one = JaxBackend.from_path(hf_dir, chunk=4, max_len=64)
    split = JaxBackend.from_path(hf_dir, chunk=4, max_len=64, mesh=mesh)
    q_proj = split.sampler.params["layers"]["q_proj"]
    assert q_proj.sharding.spec == PartitionSpec(None, "tensor") and len(q_proj.sharding.device_set) == 8

    cache = empty_cache(split.config, 4, 32, jnp.float32, mesh=mesh)
    assert cache.k.sharding.spec == PartitionSpec(None, "data", "tensor")  # split by KV heads
    assert cache.k.addressable_shards[0].data.shape == (3, 2, 1, 32, 8)

    requests = [
        GenerationRequest(prompt="Sawasdee", sampling=SamplingParams(max_new_tokens=10)),
        GenerationRequest(messages=({"role": "user", "content": "ขอบคุณ"},), sampling=SamplingParams(max_new_tokens=10)),
        GenerationRequest(prompt="x", sampling=SamplingParams(max_new_tokens=10, temperature=1.0, top_k=50, seed=3)),
    ]
    want, got = one.generate(requests), split.generate(requests)
    assert [g.text for g in got] == [g.text for g in want]
    assert [g.completion_tokens for g in got] == [g.completion_tokens for g in want]
