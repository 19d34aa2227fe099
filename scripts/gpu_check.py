#!/usr/bin/env python3
"""Train-step throughput and MFU of a Qwen3-shaped model on the devices present.

Random init, synthetic packed batches (4 segments per row), the real jitted `train_step`
(chunked CE, AdamW, remat). Runs unchanged on CPU at a tiny size (the test suite does that) and on
a GPU at 0.6B-4B:

    python3 scripts/gpu_check.py --preset qwen3-1.7b --seq-len 4096 --batch 8 --steps 8     # H100/H200
    python3 scripts/gpu_check.py --preset qwen3-tiny --seq-len 128 --batch 2 --steps 3      # CPU smoke

Prints one JSON line per configuration: tokens/s, step time, MFU (against --peak-tflops or the
device's known bf16 dense peak) and peak device memory where the backend reports it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run_one(args, remat: str, attention: str) -> dict:
    import jax
    import jax.numpy as jnp

    from siamgpt_jax.model.config import PEAK_TFLOPS, flops_per_token, param_count, preset
    from siamgpt_jax.model.qwen3 import init_model
    from siamgpt_jax.parallel.mesh import MeshConfig, make_mesh
    from siamgpt_jax.testing import packed_batch
    from siamgpt_jax.train.optimizer import OptimConfig
    from siamgpt_jax.train.setup import setup_from_model
    from siamgpt_jax.train.step import StepConfig

    cfg = preset(args.preset)
    mesh_cfg = MeshConfig(data=1, fsdp=-1)
    mesh = make_mesh(mesh_cfg)
    rules = dict(mesh_cfg.rules)
    dtype = jnp.bfloat16 if args.dtype == "bfloat16" else jnp.float32
    model = init_model(cfg, seed=0, mesh=mesh, rules=rules, param_dtype=jnp.float32, dtype=dtype,
                       remat=remat, attention=attention)
    setup, state = setup_from_model(model, OptimConfig(learning_rate=1e-5, warmup_steps=1), args.steps + args.warmup,
                                    StepConfig(args.micro_batches, args.loss_chunk), mesh, rules)
    del model
    step_fn = setup.step
    batch = {k: jax.device_put(v, setup.batch_sharding)
             for k, v in packed_batch(0, args.batch, args.seq_len, cfg.vocab_size, segments=4).items()}

    t0 = time.perf_counter()
    state, metrics = step_fn(state, batch)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    for _ in range(max(0, args.warmup - 1)):
        state, metrics = step_fn(state, batch)
    jax.block_until_ready(metrics)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        state, metrics = step_fn(state, batch)
    loss = float(jax.device_get(metrics["loss"]))
    dt = (time.perf_counter() - t0) / args.steps

    tokens = args.batch * args.seq_len
    kind = jax.devices()[0].device_kind
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in kind), None)
    tok_s = tokens / dt
    out = {
        "preset": args.preset, "params": param_count(cfg), "device": kind, "devices": jax.device_count(),
        "seq_len": args.seq_len, "batch": args.batch, "micro_batches": args.micro_batches, "remat": remat,
        "attention": attention, "dtype": args.dtype, "compile_plus_first_step_s": round(compile_s, 2),
        "step_s": round(dt, 4), "tokens_per_s": round(tok_s, 1), "loss": round(loss, 4),
    }
    if peak:
        out["mfu"] = round(flops_per_token(cfg, args.seq_len) * tok_s / (peak * 1e12 * jax.device_count()), 4)
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        out["peak_mem_gib"] = round(stats["peak_bytes_in_use"] / 2**30, 2)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="qwen3-tiny")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--micro-batches", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--loss-chunk", type=int, default=1024)
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    p.add_argument("--remat", default="full", help="comma list of none/full/dots")
    p.add_argument("--attention", default="auto", help="comma list of auto/xla/cudnn")
    p.add_argument("--peak-tflops", type=float, default=None)
    p.add_argument("--json", type=Path, default=None, help="append results here")
    args = p.parse_args(argv)
    for remat in args.remat.split(","):
        for attention in args.attention.split(","):
            try:
                out = run_one(args, remat, attention)
            except Exception as e:  # report and continue with the next configuration
                out = {"preset": args.preset, "remat": remat, "attention": attention, "error": f"{type(e).__name__}: {e}"[:2000]}
            line = json.dumps(out)
            print(line, flush=True)
            if args.json:
                with open(args.json, "a", encoding="utf-8") as f:
                    f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
