"""Forward+backward step: siamgpt-jax (jit) vs transformers + torch eager, CPU, same threads.

    python3 scripts/bench_step.py [--layers 4 --hidden 512 --seq 512 --batch 1 --reps 4 --block 2]
        [--attention auto|chunked|xla] [--cpu-defaults]
Prints the per-step seconds of both and the ratio jax/torch (goal <= 1.0), measured side by side,
and the compiled JAX step's temporary memory (XLA's memory analysis). The two sides take turns of
back-to-back steps (scripts/bench_timing.py).
The JAX side is compiled as the train step is: a pure function of the params under jax.jit, with
the train step's compiler options and the `train` command's host-memory setting
(train/cpu_tuning.py; --cpu-defaults drops both; the setting is process-wide, so torch runs with it
too) and the model's default attention ("auto": the chunked path on CPU). Its loss is optax's
integer-label cross-entropy (logsumexp minus the target logit, as torch's cross_entropy).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench_timing import time_in_turns

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--reps", type=int, default=4, help="turns per side")
    p.add_argument("--block", type=int, default=2, help="timed back-to-back steps per turn")
    p.add_argument("--attention", default="auto", choices=["auto", "chunked", "xla"])
    p.add_argument("--cpu-defaults", action="store_true",
                   help="no train/cpu_tuning.py settings: XLA's default compiler options and glibc's malloc defaults")
    a = p.parse_args()
    if not a.cpu_defaults:  # before jax starts its threads; the torch side shares the process and the setting
        from siamgpt_jax.train.cpu_tuning import tune_process_for_cpu_training

        tune_process_for_cpu_training()
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    import torch

    from siamgpt_jax.convert.tiny_hf import make_hf_model
    from siamgpt_jax.model.config import Qwen3Config
    from siamgpt_jax.model.qwen3 import init_model
    from siamgpt_jax.train.state import ModelDef
    from siamgpt_jax.train.cpu_tuning import compiler_options

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

    model = init_model(Qwen3Config(**{**kw, "tie_word_embeddings": False}), dtype=jnp.float32, attention=a.attention)
    model_def, params = ModelDef.split(model)
    jids = jnp.asarray(ids)
    options = None if a.cpu_defaults else compiler_options()

    def loss(params, ids):  # the mean next-token cross-entropy, as HF computes it with labels=ids
        logits = model_def.merge(params)(ids[:, :-1])
        return optax.softmax_cross_entropy_with_integer_labels(logits, ids[:, 1:]).mean()

    # compiled once, ahead of time: the timed calls and the memory figure use the same executable
    grad_step = jax.jit(jax.value_and_grad(loss), compiler_options=options).lower(params, jids).compile()
    # the step's temporary buffers (saved activations and working set): what remat and the
    # hand-written backwards of model/layer_ops.py change
    temp_mib = grad_step.memory_analysis().temp_size_in_bytes / 2**20

    def jax_step(params):
        return grad_step(params, jids)

    times = time_in_turns({"jax": lambda: jax.block_until_ready(jax_step(params)), "torch": torch_step},
                          reps=a.reps, block=a.block)
    tj, tt = times["jax"], times["torch"]
    j, tr = float(np.median(tj)), float(np.median(tt))
    print(f"threads={threads} layers={a.layers} hidden={a.hidden} seq={a.seq} batch={a.batch} vocab={a.vocab} fp32 "
          f"attention={a.attention} cpu_tuning={'off' if a.cpu_defaults else 'on'}")
    print(f"jax {j * 1e3:.0f} ms/step, torch eager {tr * 1e3:.0f} ms/step, ratio jax/torch {j / tr:.2f} (goal <= 1.0)")
    print(f"jax step temporary memory {temp_mib:.1f} MiB")


if __name__ == "__main__":
    main()
