"""Batched prefill + decode of our Qwen3 with a preallocated KV cache, compiled once per bucket.

Layout: prompts are LEFT-padded to a shared length P, so every row's last prompt token sits at slot
P-1 and every row writes its n-th new token at the same slot P+n: one scalar write index for the
whole batch. Each row's positions count from its first real token (slot - pad), and slots before
it are masked out of attention (kv_start), so padding changes no logits.

Shapes are bucketed: the batch to a power of two (up to max_batch), P and the cache length T to
the sizes in SIZES (powers of two and 1.5x powers of two, at most a third wasted). jax.jit
compiles each function once per bucket of (batch, P, T) and reuses it for every request that fits.
Decoding runs `chunk` steps per call (a lax.scan on the device); between calls the host checks
EOS ids, stop callbacks and max_new_tokens per row, and stops once every row is finished.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from siamgpt_jax.generate.backend import SamplingParams
from siamgpt_jax.generate.sampling import row_keys, sample
from siamgpt_jax.model.config import Qwen3Config
from siamgpt_jax.model.kv_cache import KVCache, empty_cache
from siamgpt_jax.model.qwen3 import forward_cached, lm_logits
from siamgpt_jax.sharding import Rules, use_mesh_rules

MIN_BUCKET = 16


def bucket(n: int, minimum: int = MIN_BUCKET) -> int:
    """The smallest of minimum, 1.5*minimum, 2*minimum, 3*minimum, 4*minimum, ... that is >= n."""
    size = minimum
    while True:
        if n <= size:
            return size
        if n <= size * 3 // 2:
            return size * 3 // 2
        size *= 2


def batch_bucket(n: int, max_batch: int) -> int:
    return min(1 << max(0, math.ceil(math.log2(max(n, 1)))), max_batch)


@dataclass(frozen=True)
class SequenceOutput:
    tokens: list[int]  # the new tokens, without the EOS token that ended them
    finish_reason: str  # "stop" (EOS or a stop callback) or "length"
    logprobs: list[float] | None = None


class _DeviceFunctions:
    """The jitted prefill and decode-chunk functions for one model shape; jax.jit keeps one
    compiled program per input shape (bucket) and sharding."""

    def __init__(self, config: Qwen3Config, dtype, chunk: int, lm_head: str):
        self.config, self.dtype, self.chunk, self.lm_head = config, dtype, chunk, lm_head
        self.traces = 0
        self.prefill = jax.jit(self._prefill, donate_argnums=(1,))
        self.decode = jax.jit(self._decode, donate_argnums=(1,))

    def _forward(self, params, tokens, positions, cache, index, kv_start):
        h, cache = forward_cached(params, self.config, tokens, positions, cache, index, kv_start, dtype=self.dtype)
        return lm_logits(h[:, -1], params[self.lm_head]), cache

    def _prefill(self, params, cache, tokens, positions, kv_start, keys, temperature, top_k, top_p):
        self.traces += 1
        logits, cache = self._forward(params, tokens, positions, cache, jnp.int32(0), kv_start)
        token, logprob = sample(logits, keys, jnp.int32(0), temperature, top_k, top_p)
        return cache, token, logprob

    def _decode(self, params, cache, token, position, index, step, kv_start, keys, temperature, top_k, top_p):
        """`chunk` decode steps, each sampled token fed back in. Returns tokens/logprobs [chunk, B]."""
        self.traces += 1

        def one(carry, _):
            cache, token, position, index, step = carry
            logits, cache = self._forward(params, token[:, None], position[:, None], cache, index, kv_start)
            token, logprob = sample(logits, keys, step, temperature, top_k, top_p)
            return (cache, token, position + 1, index + 1, step + 1), (token, logprob)

        (cache, *_), (tokens, logprobs) = jax.lax.scan(one, (cache, token, position, index, step), None, length=self.chunk)
        return cache, tokens, logprobs


_COMPILED: dict[tuple, _DeviceFunctions] = {}


def model_params(model) -> dict[str, Any]:
    """A Qwen3 module's params as the Sampler takes them (with lm_head when it is untied)."""
    params = model.param_arrays()
    if not model.config.tie_word_embeddings:
        params["lm_head"] = model.lm_head[...]
    return params


class Sampler:
    """Generates from a Qwen3 given as pure params ({"embed", "layers", "final_norm"[, "lm_head"]}).

    eos_ids: token ids that end a sequence. dtype: the compute dtype; cache_dtype (default: dtype)
    the KV cache's. With a mesh, params should already be placed on it (load_hf(mesh=...)); the
    cache is split by the rules' cache_* names and activations are pinned as in training.
    """

    def __init__(
        self,
        params: dict[str, Any],
        config: Qwen3Config,
        *,
        eos_ids: Sequence[int] = (),
        pad_id: int = 0,
        dtype=jnp.float32,
        cache_dtype=None,
        mesh=None,
        rules: Rules | None = None,
        max_batch: int = 64,
        chunk: int = 16,
    ):
        self.params = params
        self.config = config
        self.eos_ids = frozenset(int(i) for i in eos_ids)
        self.pad_id = int(pad_id)
        self.dtype = jnp.dtype(dtype)
        self.cache_dtype = jnp.dtype(cache_dtype or dtype)
        self.mesh, self.rules = mesh, rules
        self.max_batch = max_batch
        self.chunk = chunk
        lm_head = "embed" if config.tie_word_embeddings else "lm_head"
        if lm_head not in params:
            raise ValueError(f"params have no {lm_head!r} (tie_word_embeddings={config.tie_word_embeddings})")
        key = (repr(config), str(self.dtype), chunk, lm_head)
        if key not in _COMPILED:  # shared by every Sampler of this model shape: a new one does not recompile
            _COMPILED[key] = _DeviceFunctions(config, self.dtype, chunk, lm_head)
        self._fns = _COMPILED[key]

    @property
    def traces(self) -> int:
        """How many times the device functions were traced (= compiled): one per bucket."""
        return self._fns.traces

    # ---- host loop ----------------------------------------------------------------------------
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        sampling: Sequence[SamplingParams],
        stopped: Callable[[int, list[int]], bool] | None = None,
    ) -> list[SequenceOutput]:
        """One SequenceOutput per prompt (token id lists), in order. `stopped(i, tokens)` may end
        prompt i early (e.g. on a stop string); it is asked after each decode chunk."""
        if len(prompts) != len(sampling):
            raise ValueError(f"{len(prompts)} prompts but {len(sampling)} sampling params")
        for i, p in enumerate(prompts):
            if len(p) == 0:
                raise ValueError(f"prompt {i} is empty")
            bad = [t for t in p if not 0 <= int(t) < self.config.vocab_size]
            if bad:
                raise ValueError(f"prompt {i} has token id {bad[0]} outside the model's vocabulary (size {self.config.vocab_size})")
        # rows of similar length share a batch, so there is less padding
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        out: list[SequenceOutput | None] = [None] * len(prompts)
        for start in range(0, len(order), self.max_batch):
            rows = order[start : start + self.max_batch]
            ask = None if stopped is None else (lambda j, toks, rows=rows: stopped(rows[j], toks))
            results = self._generate_batch([list(prompts[i]) for i in rows], [sampling[i] for i in rows], ask)
            for i, r in zip(rows, results):
                out[i] = r
        return out  # type: ignore[return-value]

    def shapes_for(self, prompt_lengths: Sequence[int], max_new_tokens: int) -> tuple[int, int, int]:
        """(batch, P, T): the bucket a batch with these prompt lengths and max_new_tokens runs in."""
        B = batch_bucket(len(prompt_lengths), self.max_batch)
        P = bucket(max(prompt_lengths))
        decode_steps = math.ceil(max(max_new_tokens - 1, 0) / self.chunk) * self.chunk
        return B, P, bucket(P + decode_steps)

    def _generate_batch(self, prompts, sampling, stopped) -> list[SequenceOutput]:
        n = len(prompts)
        max_new = max(s.max_new_tokens for s in sampling)
        B, P, T = self.shapes_for([len(p) for p in prompts], max_new)
        tokens = np.full((B, P), self.pad_id, np.int32)
        kv_start = np.full((B,), P - 1, np.int32)  # spare rows: one pad token
        for i, p in enumerate(prompts):
            tokens[i, P - len(p) :] = p
            kv_start[i] = P - len(p)
        positions = np.maximum(np.arange(P, dtype=np.int32)[None, :] - kv_start[:, None], 0)
        pad_rows = [SamplingParams(max_new_tokens=1)] * (B - n)
        rows = list(sampling) + pad_rows
        seeds = np.array([s.seed % 2**32 for s in rows], np.uint32)
        temperature = np.array([s.temperature for s in rows], np.float32)
        top_k = np.array([s.top_k for s in rows], np.int32)
        top_p = np.array([s.top_p for s in rows], np.float32)

        prefill, decode = self._fns.prefill, self._fns.decode
        with use_mesh_rules(self.mesh, self.rules):
            keys = row_keys(seeds)
            cache = empty_cache(self.config, B, T, self.cache_dtype, mesh=self.mesh, rules=self.rules)
            cache, token, logprob = prefill(self.params, cache, tokens, positions, kv_start, keys, temperature, top_k, top_p)
            first = (np.asarray(token)[None], np.asarray(logprob)[None])

            out_tokens: list[list[int]] = [[] for _ in range(n)]
            out_logprobs: list[list[float]] = [[] for _ in range(n)]
            finish: list[str | None] = [None] * n
            position = np.asarray(P - kv_start, np.int32)
            index, step = P, 1

            def take(chunk_tokens, chunk_logprobs):
                for i in range(n):
                    if finish[i] is not None:
                        continue
                    for t, lp in zip(chunk_tokens[:, i].tolist(), chunk_logprobs[:, i].tolist()):
                        if t in self.eos_ids:
                            finish[i] = "stop"
                            break
                        out_tokens[i].append(t)
                        out_logprobs[i].append(lp)
                        if len(out_tokens[i]) >= sampling[i].max_new_tokens:
                            finish[i] = "length"
                            break
                    if finish[i] is None and stopped is not None and stopped(i, out_tokens[i]):
                        finish[i] = "stop"

            take(*first)
            while any(f is None for f in finish):
                if index + self.chunk > T:  # cannot happen: T leaves room for max_new_tokens
                    raise AssertionError(f"cache of {T} slots is full at slot {index}")
                cache, chunk_tokens, chunk_logprobs = decode(
                    self.params, cache, token, position, np.int32(index), np.int32(step), kv_start,
                    keys, temperature, top_k, top_p,
                )
                chunk_tokens, chunk_logprobs = np.asarray(chunk_tokens), np.asarray(chunk_logprobs)
                token = chunk_tokens[-1]
                position = position + self.chunk
                index += self.chunk
                step += self.chunk
                take(chunk_tokens, chunk_logprobs)
        return [
            SequenceOutput(out_tokens[i], finish[i], out_logprobs[i] if sampling[i].logprobs else None)  # type: ignore[arg-type]
            for i in range(n)
        ]
