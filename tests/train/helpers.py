"""Small shared builders for the train tests: a tiny real Qwen3 and packed synthetic batches."""

from __future__ import annotations

import numpy as np

from siamgpt_jax.model.config import preset

TINY = preset("qwen3-tiny").replace(vocab_size=256, num_hidden_layers=2, hidden_size=32, intermediate_size=64,
                                    num_attention_heads=4, num_key_value_heads=2, head_dim=8)


def packed_batch(seed: int, batch: int, seq_len: int, vocab: int = 256, segments: int = 2) -> dict[str, np.ndarray]:
    """Rows of `segments` packed segments with uneven loss masks (so micro-batches hold unequal token counts)."""
    rng = np.random.default_rng(seed)
    inputs = rng.integers(0, vocab, (batch, seq_len), dtype=np.int32)
    seg_len = seq_len // segments
    seg = np.minimum(np.arange(seq_len) // seg_len, segments - 1) + 1
    pos = np.arange(seq_len) - (seg - 1) * seg_len
    mask = (rng.random((batch, seq_len)) < np.linspace(0.2, 0.9, batch)[:, None]).astype(np.float32)
    mask[:, seg_len - 1 :: seg_len] = 0.0
    return {
        "inputs": inputs,
        "targets": np.roll(inputs, -1, 1),
        "loss_mask": mask,
        "segment_ids": np.tile(seg, (batch, 1)).astype(np.int32),
        "positions": np.tile(pos, (batch, 1)).astype(np.int32),
    }
