"""Fixtures that the tests, the benchmarks and the GPU check share: packed synthetic batches and tiny
random transformers Qwen3 checkpoints (the ground truth for parity). Nothing in the library imports
this module. torch (a test extra) is imported only by the functions that build transformers models,
so the GPU check, which has no torch, can use `packed_batch`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# The transformers configs the parity suite covers: tied/untied, GQA 1/2/4, head_dim != hidden/heads.
TINY_HF = {
    "gqa1_tied": dict(hidden_size=32, num_attention_heads=4, num_key_value_heads=4, head_dim=8,
                      tie_word_embeddings=True),
    "gqa2_untied_hd": dict(hidden_size=32, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                           tie_word_embeddings=False),
    "gqa4_untied": dict(hidden_size=48, num_attention_heads=8, num_key_value_heads=2, head_dim=8,
                        tie_word_embeddings=False),
}


def packed_batch(seed: int, batch: int, seq_len: int, vocab: int = 256, segments: int = 2,
                 loss_share: float | tuple[float, float] = 1.0, rng: np.random.Generator | None = None) -> dict:
    """A batch of rows holding `segments` packed segments each, as the loader makes them.

    loss_share: the share of tokens that carry a loss (the rest stand for prompt tokens): a float
    for every row, or (low, high) spread over the rows, so micro-batches hold unequal token counts.
    A segment's last token never carries a loss (it has no next token in its segment).
    """
    rng = np.random.default_rng(seed) if rng is None else rng
    inputs = rng.integers(0, vocab, (batch, seq_len), dtype=np.int32)
    seg_len = max(1, seq_len // segments)
    seg = np.minimum(np.arange(seq_len) // seg_len, segments - 1) + 1
    pos = np.arange(seq_len) - (seg - 1) * seg_len
    if loss_share == 1.0:
        mask = np.ones((batch, seq_len), np.float32)
    else:
        share = np.linspace(*loss_share, batch) if isinstance(loss_share, tuple) else np.full(batch, loss_share)
        mask = (rng.random((batch, seq_len)) < share[:, None]).astype(np.float32)
    mask[:, seg_len - 1 :: seg_len] = 0.0
    mask[:, -1] = 0.0
    return {
        "inputs": inputs,
        "targets": np.roll(inputs, -1, axis=1),
        "loss_mask": mask,
        "segment_ids": np.tile(seg, (batch, 1)).astype(np.int32),
        "positions": np.tile(pos, (batch, 1)).astype(np.int32),
    }


def hf_config(**overrides):
    import transformers

    kw = dict(vocab_size=97, hidden_size=32, intermediate_size=40, num_hidden_layers=3,
              num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=128,
              rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False)
    kw.update(overrides)
    return transformers.Qwen3Config(**kw)


def make_hf_model(seed: int = 0, dtype=None, **overrides):
    """A random transformers Qwen3ForCausalLM (fp32 unless `dtype`), with random norm weights too, so a
    swapped or skipped norm cannot hide behind all-ones."""
    import torch
    import transformers

    torch.manual_seed(seed)
    model = transformers.Qwen3ForCausalLM(hf_config(**overrides)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
    return model.to(dtype or torch.float32)


def save_hf_model(model, path: Path, **kwargs) -> Path:
    model.save_pretrained(path, **kwargs)
    return path


def hf_logits(model, ids: np.ndarray, positions: np.ndarray | None = None) -> np.ndarray:
    import torch

    with torch.no_grad():
        kw = {} if positions is None else {"position_ids": torch.from_numpy(positions).long()}
        return model(input_ids=torch.from_numpy(ids).long(), **kw).logits.float().numpy()
