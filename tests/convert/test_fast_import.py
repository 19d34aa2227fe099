"""The fast import path: windows of HF rows, aligned (adopted) buffers, row-chunk tasks, fallbacks."""

import os

import jax
import ml_dtypes
import numpy as np
import pytest
import safetensors.numpy as stn

from siamgpt_jax.convert import CheckpointError, aligned, hf_import, load_hf, names
from siamgpt_jax.convert.st_rows import RowReader
from siamgpt_jax.testing import TINY_HF as TINY, make_hf_model, save_hf_model
from siamgpt_jax.model.qwen3 import LOGICAL_AXES
from siamgpt_jax.sharding import DEFAULT_RULES, named_sharding


@pytest.mark.parametrize("kind, shape", [("copy", (6, 10)), ("heads_rows", (4, 6, 10)), ("heads_cols", (10, 4, 6))])
def test_every_block_reads_the_same_bytes_as_slicing_the_reshaped_hf_tensor(kind, shape):
    entry = names.Entry("x", "x", kind)
    model = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    hf = names.to_hf(entry, model)
    assert np.shares_memory(hf, model) or hf.tobytes() == model.tobytes()  # a reshape, never a transpose
    rng = np.random.default_rng(0)
    windows = 0
    for _ in range(200):
        index = []
        for n in shape:
            a = int(rng.integers(0, n))
            index.append(slice(a, int(rng.integers(a + 1, n + 1))))
        index = tuple(index)
        windows += names.hf_index(entry, shape, index) is not None
        np.testing.assert_array_equal(names.read_model_slice(entry, hf, shape, index), model[index])
    assert 0 < windows < 200 if kind != "copy" else windows == 200  # both paths ran


def test_aligned_buffer_is_zeroed_and_adopted_by_device_put_on_cpu():
    x = aligned.aligned_empty((3, 1000), np.float32, populate=True)
    assert x.flags.c_contiguous and x.ctypes.data % 64 == 0 and not x.any()
    x[...] = 1.5
    y = jax.device_put(x, jax.devices("cpu")[0])
    assert y.unsafe_buffer_pointer() == x.ctypes.data  # no copy: the block is the param
    assert aligned.aligned_empty((0, 4), np.float32).shape == (0, 4)


def _leaves(model):
    out = {}
    for path in LOGICAL_AXES:
        node = model
        try:
            for k in path.split("."):
                node = getattr(node, k)
        except AttributeError:
            continue
        out[path] = node[...]
    return out


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("hf")
    save_hf_model(make_hf_model(seed=11, **TINY["gqa4_untied"]), path, max_shard_size="30KB")
    return path


def test_many_tiny_chunks_on_many_threads_give_the_same_params(hf_dir, monkeypatch):
    plain = _leaves(load_hf(hf_dir, progress=False, threads=1))
    monkeypatch.setattr(hf_import, "CHUNK_BYTES", 100)  # a task per row or two
    chunked = _leaves(load_hf(hf_dir, progress=False, threads=3))
    assert plain.keys() == chunked.keys()
    for k in plain:
        assert plain[k].tobytes() == chunked[k].tobytes(), k


def test_split_head_dim_falls_back_and_matches(hf_dir):
    rules = {**DEFAULT_RULES, "q_heads": (), "kv_heads": (), "head_dim": ("tensor",)}
    mesh = jax.make_mesh((2, 4), ("fsdp", "tensor"))
    sharded = _leaves(load_hf(hf_dir, dtype="float32", mesh=mesh, rules=rules, progress=False))
    plain = _leaves(load_hf(hf_dir, dtype="float32", progress=False))
    for k, a in sharded.items():
        assert a.sharding.is_equivalent_to(named_sharding(LOGICAL_AXES[k], a.shape, mesh, rules), a.ndim)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(plain[k]))
    assert sharded["layers.q_proj"].addressable_shards[0].data.shape[2] == 2  # head_dim 8 over 4


def test_row_reader_names_file_and_tensor_when_bytes_are_missing(tmp_path):
    f = tmp_path / "t.safetensors"
    stn.save_file({"a": np.arange(64, dtype=np.float32).reshape(8, 8)}, str(f))
    with pytest.raises(CheckpointError, match=r"t\.safetensors: tensor 'a': byte range .* does not fit"):
        RowReader({"a": ((9, 8), np.dtype(np.float32), f)})
    with RowReader({"a": ((8, 8), np.dtype(np.float32), f)}) as r:
        out = np.empty((2, 8), np.float32)
        r.read_rows("a", 3, out)
        np.testing.assert_array_equal(out, np.arange(24, 40).reshape(2, 8))
        os.truncate(f, os.path.getsize(f) - 40)  # the file shrinks after the checks
        with pytest.raises(CheckpointError, match=r"t\.safetensors: tensor 'a': the file ended"):
            r.read_rows("a", 6, out)
