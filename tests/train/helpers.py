"""Small shared builders for the train tests: a tiny real Qwen3 and packed synthetic batches."""

from __future__ import annotations

import numpy as np

from siamgpt_jax import testing
from siamgpt_jax.model.config import preset

TINY = preset("qwen3-tiny").replace(vocab_size=256, num_hidden_layers=2, hidden_size=32, intermediate_size=64,
                                    num_attention_heads=4, num_key_value_heads=2, head_dim=8)


def packed_batch(seed: int, batch: int, seq_len: int, vocab: int = 256, segments: int = 2) -> dict[str, np.ndarray]:
    """Rows of `segments` packed segments with uneven loss masks (so micro-batches hold unequal token counts)."""
    return testing.packed_batch(seed, batch, seq_len, vocab, segments, loss_share=(0.2, 0.9))
