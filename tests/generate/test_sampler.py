"""The KV-cache sampler generates what transformers generates, its cache agrees with a full
forward, it compiles once per bucket, and sampling is deterministic per seed and per row."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from siamgpt_jax.convert import load_hf
from siamgpt_jax.testing import TINY_HF as TINY, make_hf_model, save_hf_model
from siamgpt_jax.generate.backend import SamplingParams
from siamgpt_jax.generate.sampler import Sampler, bucket, model_params
from siamgpt_jax.model.kv_cache import empty_cache
from siamgpt_jax.model.qwen3 import forward_cached, lm_logits

LENGTHS = (5, 13, 2)  # a batch of prompts of different lengths
# untied with GQA 2 (and head_dim != hidden/heads); tied with GQA 4
CONFIGS = {"gqa2_untied_hd": TINY["gqa2_untied_hd"],
           "gqa4_tied": dict(TINY["gqa4_untied"], tie_word_embeddings=True)}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """name -> (transformers model, our model, a Sampler): built once, so the tests share compiles."""
    out = {}
    for name, kw in CONFIGS.items():
        path = tmp_path_factory.mktemp(name)
        hf = make_hf_model(seed=1, **kw)
        save_hf_model(hf, path)
        model = load_hf(path, dtype=jnp.float32, compute_dtype=jnp.float32, progress=False)
        out[name] = hf, model, Sampler(model_params(model), model.config, dtype=jnp.float32, chunk=4)
    return out


def _prompts(vocab, seed=0):
    rng = np.random.RandomState(seed)
    return [rng.randint(0, vocab, n).tolist() for n in LENGTHS]


def _hf_greedy(hf, prompt, n):
    ids = torch.tensor([prompt])
    out = hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=n,
                      min_new_tokens=n, eos_token_id=None, pad_token_id=0)
    return out[0, len(prompt):].tolist()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_greedy_matches_transformers_token_for_token(models, name):
    hf, model, sampler = models[name]
    prompts = _prompts(hf.config.vocab_size)
    results = sampler.generate(prompts, [SamplingParams(max_new_tokens=12)] * len(prompts))
    for prompt, result in zip(prompts, results):
        assert result.tokens == _hf_greedy(hf, prompt, 12)
        assert result.finish_reason == "length"


def test_cache_logits_match_a_full_forward_at_every_step(models):
    _, model, _ = models["gqa2_untied_hd"]
    params, cfg = model_params(model), model.config
    prompts = _prompts(cfg.vocab_size, seed=3)
    B, P, T = len(prompts), 16, 32
    tokens = np.zeros((B, P), np.int32)
    kv_start = np.array([P - len(p) for p in prompts], np.int32)
    for i, p in enumerate(prompts):
        tokens[i, kv_start[i]:] = p
    positions = np.maximum(np.arange(P)[None] - kv_start[:, None], 0).astype(np.int32)
    step = jax.jit(lambda params, ids, pos, cache, index: forward_cached(
        params, cfg, ids, pos, cache, index, jnp.asarray(kv_start), dtype=jnp.float32))
    # the training forward over each row alone, unpadded on the left (right-padded to one length, so
    # it compiles once; causal attention makes the padding after a token irrelevant to its logits)
    full_forward = jax.jit(lambda ids: model(ids))
    h, cache = step(params, tokens, positions, empty_cache(cfg, B, T, jnp.float32), jnp.int32(0))
    seqs = [list(p) for p in prompts]
    for n in range(6):
        logits = np.asarray(lm_logits(h[:, -1], params["lm_head"]))
        padded = np.zeros((B, T), np.int32)
        for i, s in enumerate(seqs):
            padded[i, : len(s)] = s
        full = np.asarray(full_forward(padded))
        for i, s in enumerate(seqs):
            np.testing.assert_allclose(logits[i], full[i, len(s) - 1], atol=1e-5, rtol=0)
        nxt = logits.argmax(-1).astype(np.int32)
        for i in range(B):
            seqs[i].append(int(nxt[i]))
        pos = np.array([[len(s) - 1] for s in seqs], np.int32)
        h, cache = step(params, nxt[:, None], pos, cache, jnp.int32(P + n))


def test_compiles_once_per_bucket(models):
    _, model, _ = models["gqa4_tied"]
    sampler = Sampler(model_params(model), model.config, dtype=jnp.float32, chunk=4, max_batch=4)
    greedy = SamplingParams(max_new_tokens=6)
    traced = sampler.traces
    sampler.generate([[1, 2, 3], [4, 5]], [greedy] * 2)
    assert sampler.traces - traced in (0, 2)  # prefill + decode, unless another test compiled this bucket
    traced = sampler.traces
    # other lengths, other rows, another max_new_tokens: the same (batch, P, T) bucket
    sampler.generate([[7] * 11, [8] * 16], [SamplingParams(max_new_tokens=3)] * 2)
    assert sampler.traces == traced
    sampler.generate([[9] * 9, [1], [2]], [greedy] * 3)  # batch 4 is a new bucket
    assert sampler.traces == traced + 2
    sampler.generate([[3] * 4, [1], [2], [5] * 7], [greedy] * 4)
    assert sampler.traces == traced + 2
    assert [bucket(n) for n in (1, 16, 17, 24, 25, 33, 49, 100)] == [16, 16, 24, 24, 32, 48, 64, 128]


def test_eos_ends_a_row_with_stop_and_max_new_tokens_with_length(models):
    hf, model, _ = models["gqa2_untied_hd"]
    prompts = _prompts(hf.config.vocab_size)
    ref = [_hf_greedy(hf, p, 12) for p in prompts]
    # an EOS id that row 0 emits and another row never does: one row stops, one runs to the length
    eos = next(t for t in ref[0] if any(t not in r for r in ref[1:]))
    sampler = Sampler(model_params(model), model.config, eos_ids=(eos,), dtype=jnp.float32, chunk=4)
    out = sampler.generate(prompts, [SamplingParams(max_new_tokens=12, logprobs=True)] * 3)
    for o, r in zip(out, ref):
        cut = r.index(eos) if eos in r else len(r)
        assert o.tokens == r[:cut] and o.finish_reason == ("stop" if eos in r else "length")
        assert len(o.logprobs) == cut and all(lp <= 0 for lp in o.logprobs)
    assert {o.finish_reason for o in out} == {"stop", "length"}
    stopped = sampler.generate(prompts[1:2], [SamplingParams(max_new_tokens=12)], stopped=lambda i, t: len(t) >= 2)
    assert stopped[0].finish_reason == "stop" and len(stopped[0].tokens) in range(2, 6)  # asked after each chunk


def test_sampling_is_deterministic_per_seed_and_independent_of_the_batch(models):
    _, model, sampler = models["gqa2_untied_hd"]
    prompts = _prompts(model.config.vocab_size)
    hot = [SamplingParams(max_new_tokens=12, temperature=1.5, top_k=20, top_p=0.9, seed=s) for s in (1, 2, 3)]
    a = sampler.generate(prompts, hot)
    b = sampler.generate(prompts, hot)
    assert [r.tokens for r in a] == [r.tokens for r in b]
    alone = sampler.generate(prompts[1:2], hot[1:2])  # another batch size and bucket: same tokens
    assert alone[0].tokens == a[1].tokens
    other_seed = sampler.generate(prompts, [SamplingParams(max_new_tokens=12, temperature=1.5, seed=s + 10) for s in (1, 2, 3)])
    assert [r.tokens for r in other_seed] != [r.tokens for r in a]
