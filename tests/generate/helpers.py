"""Fixtures for the generation tests: a byte-level tokenizer small enough for a tiny model's vocab,
and tiny random HF Qwen3 folders that carry it."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import tokenizers
from tokenizers import decoders, pre_tokenizers
from tokenizers.models import BPE

from siamgpt_jax.loader.tokenizer import QWEN3_ADDED_TOKENS, Tokenizer, bytes_to_unicode

# 256 byte tokens + Qwen3's 26 added tokens = 282 ids; the tiny models get a vocab of 288
TINY_VOCAB = 288


def byte_tokenizer() -> Tokenizer:
    """Byte-level BPE with no merges (one token per byte) and Qwen3's added tokens after the bytes."""
    vocab = {ch: i for i, ch in enumerate(sorted(bytes_to_unicode().values(), key=lambda c: ord(c)))}
    tok = tokenizers.Tokenizer(BPE(vocab=vocab, merges=[], fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_tokens([tokenizers.AddedToken(t, special=s, normalized=False) for t, s in QWEN3_ADDED_TOKENS])
    return Tokenizer(tok)


def tiny_hf_folder(path: Path, seed: int = 0, **overrides) -> Path:
    """A tiny random HF Qwen3 (vocab TINY_VOCAB) saved with the byte tokenizer."""
    from siamgpt_jax.testing import make_hf_model, save_hf_model

    overrides.setdefault("vocab_size", TINY_VOCAB)
    model = make_hf_model(seed=seed, **overrides)
    save_hf_model(model, path)
    byte_tokenizer().save(path)
    return path


F32 = dict(dtype=jnp.float32)
