"""Tiny random transformers Qwen3 checkpoints (torch CPU, no downloads): test and demo fixtures.

Needs torch, which is a test extra: import this module only where torch is installed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import transformers

# The configs the parity suite covers: tied/untied, GQA 1/2/4, head_dim != hidden/heads, >= 3 layers.
TINY = {
    "gqa1_tied": dict(hidden_size=32, num_attention_heads=4, num_key_value_heads=4, head_dim=8,
                      tie_word_embeddings=True),
    "gqa2_untied_hd": dict(hidden_size=32, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                           tie_word_embeddings=False),
    "gqa4_untied": dict(hidden_size=48, num_attention_heads=8, num_key_value_heads=2, head_dim=8,
                        tie_word_embeddings=False),
}


def hf_config(**overrides) -> transformers.Qwen3Config:
    kw = dict(vocab_size=97, hidden_size=32, intermediate_size=40, num_hidden_layers=3,
              num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=128,
              rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False)
    kw.update(overrides)
    return transformers.Qwen3Config(**kw)


def make_hf_model(seed: int = 0, dtype=torch.float32, **overrides) -> transformers.Qwen3ForCausalLM:
    torch.manual_seed(seed)
    model = transformers.Qwen3ForCausalLM(hf_config(**overrides)).eval()
    # Random norm weights too, so a swapped or skipped norm cannot hide behind all-ones.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
    return model.to(dtype)


def save_hf_model(model, path: Path, **kwargs) -> Path:
    model.save_pretrained(path, **kwargs)
    return path


def hf_logits(model, ids: np.ndarray, positions: np.ndarray | None = None) -> np.ndarray:
    with torch.no_grad():
        kw = {} if positions is None else {"position_ids": torch.from_numpy(positions).long()}
        return model(input_ids=torch.from_numpy(ids).long(), **kw).logits.float().numpy()
