"""Forward+backward step: siamgpt-jax (jit) vs transformers + torch eager, CPU, same threads.

    python3 scripts/bench_step.py [--layers 4 --hidden 512 --seq 512 --batch 1 --reps 5]
Prints the per-step seconds of both and the ratio jax/torch (goal <= 1.0), measured side by side.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args()
    threads = os.cpu_count()
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch
    from flax import nnx

    from siamgpt_jax.convert.tiny_hf import make_hf_model
    from siamgpt_jax.model.config import Qwen3Config
    from siamgpt_jax.model.qwen3 import init_model

    torch.set_num_threads(threads)
    kw = dict(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.hidden * 3, num_hidden_layers=a.layers,
              num_attention_heads=8, num_key_value_heads=4, head_dim=a.hidden // 8, max_position_embeddings=4096)
    ids = np.random.RandomState(0).randint(0, a.vocab, (a.batch, a.seq))

    hf = make_hf_model(**kw).train()
    tids = torch.from_numpy(ids).long()

    def torch_step():
        hf.zero_grad(set_to_none=True)
        loss = hf(input_ids=tids, labels=tids).loss
        loss.backward()

    model = init_model(Qwen3Config(**{**kw, "tie_word_embeddings": False}), dtype=jnp.float32)
    jids = jnp.asarray(ids)

    @nnx.jit
    def jax_step(m):
        def loss(m):
            logits = m(jids[:, :-1])
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), jids[:, 1:, None], -1))
        return nnx.value_and_grad(loss)(m)

    jax.block_until_ready(jax_step(model))
    torch_step()
    tj, tt = [], []
    for _ in range(a.reps):  # interleaved, so load changes hit both
        t = time.perf_counter()
        jax.block_until_ready(jax_step(model))
        tj.append(time.perf_counter() - t)
        t = time.perf_counter()
        torch_step()
        tt.append(time.perf_counter() - t)
    j, tr = float(np.median(tj)), float(np.median(tt))
    print(f"threads={threads} layers={a.layers} hidden={a.hidden} seq={a.seq} batch={a.batch} vocab={a.vocab} fp32")
    print(f"jax {j * 1e3:.0f} ms/step, torch eager {tr * 1e3:.0f} ms/step, ratio jax/torch {j / tr:.2f} (goal <= 1.0)")


if __name__ == "__main__":
    main()
