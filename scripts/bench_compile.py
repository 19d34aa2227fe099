"""Compile time of a jitted fwd+bwd step at 2 vs 32 layers (the scan keeps it flat).

    python3 scripts/bench_compile.py [--hidden 256]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def compile_seconds(layers: int, hidden: int) -> float:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from siamgpt_jax.model.config import Qwen3Config
    from siamgpt_jax.model.qwen3 import abstract_model

    cfg = Qwen3Config(vocab_size=4096, hidden_size=hidden, intermediate_size=3 * hidden, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=hidden // 4)
    graphdef, state = nnx.split(abstract_model(cfg, dtype=jnp.float32, remat="dots"))
    ids = jax.ShapeDtypeStruct((1, 128), jnp.int32)

    def step(state, ids):
        def loss(state):
            return jnp.mean(jax.nn.logsumexp(nnx.merge(graphdef, state)(ids), -1))
        return jax.value_and_grad(loss)(state)

    t = time.perf_counter()
    jax.jit(step).lower(state, ids).compile()
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--hidden", type=int, default=256)
    a = p.parse_args()
    compile_seconds(1, a.hidden)  # warm caches and imports
    rows = []
    for _ in range(2):  # interleaved pairs
        rows.append((compile_seconds(2, a.hidden), compile_seconds(32, a.hidden)))
    t2, t32 = min(r[0] for r in rows), min(r[1] for r in rows)
    print(f"compile fwd+bwd: 2 layers {t2:.2f} s, 32 layers {t32:.2f} s, ratio 32/2 {t32 / t2:.2f} (goal <= 1.5)")


if __name__ == "__main__":
    main()
