#!/usr/bin/env python3
"""Train-step throughput and MFU of a Qwen3-shaped model on the devices present.

Random init, synthetic packed batches (4 segments per row), the real jitted `train_step`
(chunked CE, AdamW, remat). Runs unchanged on CPU at a tiny size (the test suite does that) and on
a GPU at 0.6B-4B:

    python3 scripts/gpu_check.py --preset qwen3-1.7b --seq-len 4096 --batch 8 --steps 8     # H100/H200
    python3 scripts/gpu_check.py --preset qwen3-tiny --seq-len 128 --batch 2 --steps 3      # CPU smoke

Prints one JSON line per configuration: tokens/s, step time, MFU (against --peak-tflops or the
device's known bf16 dense peak) and peak device memory where the backend reports it.

--decode times generation instead (the KV-cache sampler, greedy, random weights and prompts):

    python3 scripts/gpu_check.py --decode --preset qwen3-1.7b --batch 64 --prompt-len 128 --new-tokens 512

It reports prefill and decode tokens/s and the fraction of HBM bandwidth the decode reached: each
step reads every weight matrix once (the LM head included; the embedding is a gather) and, in our
attention, the whole KV cache, so bytes/step over step time against the device's peak bandwidth.
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
    from siamgpt_jax.train.spec import StepSpec

    cfg = preset(args.preset)
    mesh_cfg = MeshConfig(data=1, fsdp=-1)
    mesh = make_mesh(mesh_cfg)
    rules = dict(mesh_cfg.rules)
    spec = StepSpec(seq_len=args.seq_len, global_batch=args.batch, micro_batches=args.micro_batches,
                    compute_dtype=args.dtype, remat=remat, attention=attention,
                    **({} if args.loss_chunk is None else {"loss_chunk": args.loss_chunk}))
    model = init_model(cfg, seed=0, mesh=mesh, rules=rules, **spec.model_options())
    setup, state = setup_from_model(model, OptimConfig(learning_rate=1e-5, warmup_steps=1), args.steps + args.warmup,
                                    spec, mesh, rules)
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


def run_decode(args) -> dict:
    """Prefill and decode tokens/s of the Sampler on one device, and the HBM bandwidth fraction."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from siamgpt_jax.generate.backend import SamplingParams
    from siamgpt_jax.generate.sampler import Sampler, model_params
    from siamgpt_jax.model.config import PEAK_HBM_GBS, param_count, param_shapes, preset
    from siamgpt_jax.model.kv_cache import cache_shape
    from siamgpt_jax.model.qwen3 import init_model

    cfg = preset(args.preset)
    dtype = jnp.bfloat16 if args.dtype == "bfloat16" else jnp.float32
    model = init_model(cfg, seed=0, param_dtype=dtype, dtype=dtype)
    sampler = Sampler(model_params(model), cfg, dtype=dtype, max_batch=args.batch, chunk=args.decode_chunk)
    del model
    prompts = np.random.default_rng(0).integers(0, cfg.vocab_size, (args.batch, args.prompt_len)).tolist()

    def timed(n: int) -> float:
        t0 = time.perf_counter()
        sampler.generate(prompts, [SamplingParams(max_new_tokens=n)] * args.batch)  # returns host lists: synced
        return time.perf_counter() - t0

    t0 = time.perf_counter()
    timed(1), timed(args.new_tokens)  # compile both buckets
    compile_s = time.perf_counter() - t0
    prefill = min(timed(1) for _ in range(args.steps))
    full = min(timed(args.new_tokens) for _ in range(args.steps))
    step_s = (full - prefill) / max(args.new_tokens - 1, 1)

    B, P, T = sampler.shapes_for([args.prompt_len] * args.batch, args.new_tokens)
    itemsize = jnp.dtype(dtype).itemsize
    shapes = param_shapes(cfg)
    weight_bytes = sum(int(np.prod(s)) for k, s in shapes.items() if k != "embed") * itemsize
    if cfg.tie_word_embeddings:  # the head is the embedding, read whole every step
        weight_bytes += int(np.prod(shapes["embed"])) * itemsize
    cache_bytes = 2 * int(np.prod(cache_shape(cfg, B, T))) * itemsize  # k and v, all slots
    kind = jax.devices()[0].device_kind
    peak = args.peak_hbm_gbs or next((v for k, v in PEAK_HBM_GBS.items() if k in kind), None)
    out = {
        "check": "decode", "preset": args.preset, "params": param_count(cfg), "device": kind, "dtype": args.dtype,
        "batch": args.batch, "prompt_len": args.prompt_len, "new_tokens": args.new_tokens, "cache_slots": T,
        "compile_s": round(compile_s, 2), "prefill_tokens_per_s": round(args.batch * args.prompt_len / prefill, 1),
        "decode_step_ms": round(step_s * 1e3, 3), "decode_tokens_per_s": round(args.batch / step_s, 1),
        "bytes_per_step_gb": round((weight_bytes + cache_bytes) / 1e9, 3),
        "hbm_gb_per_s": round((weight_bytes + cache_bytes) / step_s / 1e9, 1),
    }
    if peak:
        out["hbm_fraction"] = round(out["hbm_gb_per_s"] / peak, 3)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="qwen3-tiny")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--micro-batches", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--loss-chunk", type=int, default=None, help="(default: the step spec's)")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    p.add_argument("--remat", default="full", help="comma list of none/full/dots")
    p.add_argument("--attention", default="auto", help="comma list of auto/xla/cudnn")
    p.add_argument("--peak-tflops", type=float, default=None)
    p.add_argument("--json", type=Path, default=None, help="append results here")
    p.add_argument("--decode", action="store_true", help="time generation (KV-cache decode) instead of training")
    p.add_argument("--prompt-len", type=int, default=128, help="--decode: prompt tokens per row")
    p.add_argument("--new-tokens", type=int, default=512, help="--decode: new tokens per row")
    p.add_argument("--decode-chunk", type=int, default=32, help="--decode: decode steps per device call")
    p.add_argument("--peak-hbm-gbs", type=float, default=None, help="--decode: HBM GB/s (default: known devices)")
    args = p.parse_args(argv)
    if args.decode:
        try:
            out = run_decode(args)
        except Exception as e:  # report it; the rest of the GPU check goes on
            out = {"check": "decode", "preset": args.preset, "error": f"{type(e).__name__}: {e}"[:2000]}
        _emit(out, args.json)
        return 0
    for remat in args.remat.split(","):
        for attention in args.attention.split(","):
            try:
                out = run_one(args, remat, attention)
            except Exception as e:  # report and continue with the next configuration
                out = {"preset": args.preset, "remat": remat, "attention": attention, "error": f"{type(e).__name__}: {e}"[:2000]}
            _emit(out, args.json)
    return 0


def _emit(out: dict, path: Path | None) -> None:
    line = json.dumps(out)
    print(line, flush=True)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    sys.exit(main())
