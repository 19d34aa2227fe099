#!/usr/bin/env python3
"""Generation on CPU: our KV-cache sampler against transformers+torch `generate`, same threads.

    python3 scripts/bench/cpu/bench_generate.py [--layers 4 --hidden 512 --vocab 151936 --batch 8 --prompt 256 --new 128]

One random Qwen3 (transformers, fp32) is saved and loaded into ours, so both run the same weights.
Both generate greedily from the same batch of random prompts. Each side is timed twice per turn:
a 1-token generate (the prefill) and a full one; decode time is the difference, spread over the
new tokens after the first. The sides take turns (bench_timing.py, beside this script). Prints one JSON line:
prefill and decode tokens/s of each side and ours/transformers ratios (> 1 means ours is faster),
and how many greedy tokens agree (fp32 near-ties may part ways late in a random model).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from bench_timing import time_in_turns

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--intermediate", type=int, default=1536)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--vocab", type=int, default=151936)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--prompt", type=int, default=256)
    p.add_argument("--new", type=int, default=128)
    p.add_argument("--chunk", type=int, default=16, help="our decode steps per device call")
    p.add_argument("--reps", type=int, default=3, help="turns per side")
    a = p.parse_args()

    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    from siamgpt_jax.convert import load_hf
    from siamgpt_jax.testing import make_hf_model, save_hf_model
    from siamgpt_jax.generate.backend import SamplingParams
    from siamgpt_jax.generate.sampler import Sampler, model_params

    torch.set_num_threads(threads)
    hf = make_hf_model(seed=0, vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.intermediate,
                       num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
                       head_dim=a.head_dim, max_position_embeddings=max(4096, a.prompt + a.new + 64),
                       tie_word_embeddings=False)
    with tempfile.TemporaryDirectory() as tmp:
        save_hf_model(hf, Path(tmp) / "hf")
        model = load_hf(Path(tmp) / "hf", dtype=jnp.float32, compute_dtype=jnp.float32, progress=False)
    sampler = Sampler(model_params(model), model.config, dtype=jnp.float32, chunk=a.chunk, max_batch=a.batch)

    prompts = np.random.RandomState(0).randint(0, a.vocab, (a.batch, a.prompt))
    t_prompts = torch.from_numpy(prompts).long()
    mask = torch.ones_like(t_prompts)
    results = {}

    def ours(n):
        def run():
            out = sampler.generate(prompts.tolist(), [SamplingParams(max_new_tokens=n)] * a.batch)
            results[("ours", n)] = [r.tokens for r in out]
        return run

    def theirs(n):
        def run():
            with torch.no_grad():
                out = hf.generate(t_prompts, attention_mask=mask, do_sample=False, max_new_tokens=n, min_new_tokens=n,
                                  eos_token_id=None, pad_token_id=0)
            results[("hf", n)] = out[:, a.prompt:].tolist()
        return run

    paths = {"ours prefill": ours(1), "ours full": ours(a.new), "hf prefill": theirs(1), "hf full": theirs(a.new)}
    times = time_in_turns(paths, reps=a.reps, block=1)
    med = {k: float(np.median(v)) for k, v in times.items()}
    row = {"threads": threads, "jax": jax.__version__, "torch": torch.__version__, "layers": a.layers, "hidden": a.hidden,
           "vocab": a.vocab, "batch": a.batch, "prompt": a.prompt, "new": a.new}
    for side in ("ours", "hf"):
        prefill, full = med[f"{side} prefill"], med[f"{side} full"]
        row[f"{side}_prefill_tok_s"] = round(a.batch * a.prompt / prefill, 1)
        row[f"{side}_decode_tok_s"] = round(a.batch * (a.new - 1) / max(full - prefill, 1e-9), 1)
        row[f"{side}_seconds"] = {"prefill": round(prefill, 4), "full": round(full, 4)}
    row["prefill_ours_over_hf"] = round(row["ours_prefill_tok_s"] / row["hf_prefill_tok_s"], 2)
    row["decode_ours_over_hf"] = round(row["ours_decode_tok_s"] / row["hf_decode_tok_s"], 2)
    agree = [next((i for i, (x, y) in enumerate(zip(o, h)) if x != y), len(o))
             for o, h in zip(results[("ours", a.new)], results[("hf", a.new)])]
    row["greedy_tokens_agreeing_per_row"] = agree
    print(json.dumps(row), flush=True)
    print(f"prefill ours/transformers {row['prefill_ours_over_hf']:.2f}x, decode {row['decode_ours_over_hf']:.2f}x "
          f"({row['ours_decode_tok_s']:.0f} vs {row['hf_decode_tok_s']:.0f} new tokens/s, {threads} threads)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
