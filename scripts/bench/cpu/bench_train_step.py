#!/usr/bin/env python3
"""Full SFT optimizer step on CPU: siamgpt-jax's jitted train step vs transformers + torch AdamW.

    python3 scripts/bench/cpu/bench_train_step.py --vocab 8192,151936 [--layers 4 --hidden 512 --seq 512 --batch 2]

Both sides get the same tiny Qwen3 (the JAX init, copied into transformers' Qwen3ForCausalLM),
the same packed batch (4 segments per row, loss mask, positions restarting per segment), the same
loss (sum of masked token CE / number of loss tokens), fp32 everywhere, and the same optimizer
(global-norm clip 1.0, then AdamW with b1/b2/eps/weight decay equal, no decay on norm weights,
constant learning rate). One step = forward, backward, clip, AdamW update.

Before timing, the script asserts the first-step losses agree (rel 1e-4) and the pre-clip grad
norms agree (rel 1e-3), and that the last timed step's losses still agree (rel 1e-3; both sides
have by then taken the same updates, so this checks clip + AdamW too). The sides take turns of
back-to-back steps (bench_timing.py, beside this script), so load changes on a shared machine hit both; each
turn's first step is not timed. The ratio jax/torch is reported on the best and the median step
(goal <= 1.0). Prints a readable line and a JSON line per vocabulary.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from bench_timing import time_in_turns

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

FIRST_LOSS_RTOL = 1e-4
GRAD_NORM_RTOL = 1e-3
LAST_LOSS_RTOL = 1e-3


def cpu_threads() -> int:
    """The cores this process may run on (what XLA's CPU thread pool sizes itself to)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def hf_state_dict(cfg, params: dict) -> dict:
    """The JAX params (pure nested dict) as transformers tensors, through the converter's name table."""
    import numpy as np
    import torch

    from siamgpt_jax.convert import names

    out = {}
    for entry in names.entries(cfg):
        value = params
        for key in entry.path.split("."):
            value = value[key]
        value = np.asarray(value, np.float32)
        for i, name in enumerate(names.hf_names(cfg, entry)):
            out[name] = torch.from_numpy(names.to_hf(entry, value[i] if entry.layered else value).copy())
    return out


def build_torch(cfg, params: dict, batch: dict, opt, threads: int):
    """step() -> (loss before the update, pre-clip grad norm) for transformers + torch AdamW."""
    import torch
    import torch.nn.functional as F
    import transformers

    torch.set_num_threads(threads)
    hf_cfg = transformers.Qwen3Config(**cfg.to_hf_dict("float32"))
    model = transformers.Qwen3ForCausalLM(hf_cfg).float().train()
    missing, unexpected = model.load_state_dict(hf_state_dict(cfg, params), strict=False)
    missing = [m for m in missing if not (cfg.tie_word_embeddings and m == "lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(f"weight copy into transformers: missing {missing}, unexpected {unexpected}")
    if cfg.tie_word_embeddings:
        model.tie_weights()
    # Same split as make_optimizer's decay_mask: norm weights are not decayed.
    decay = [p for n, p in model.named_parameters() if "norm" not in n]
    no_decay = [p for n, p in model.named_parameters() if "norm" in n]
    adamw = torch.optim.AdamW(
        [{"params": decay, "weight_decay": opt.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=opt.learning_rate, betas=(opt.b1, opt.b2), eps=opt.eps,
    )
    t = {k: torch.from_numpy(v) for k, v in batch.items()}
    ids, pos, tgt, mask = t["inputs"].long(), t["positions"].long(), t["targets"].long(), t["loss_mask"]
    # Positions restart at each segment: without a cache and a 2-D mask, transformers then builds
    # the block-diagonal causal mask itself (its packed-sequence path), which equals the JAX
    # segment_ids mask for this layout. With use_cache on it silently attends across segments.

    def loss_fn():
        logits = model(input_ids=ids, position_ids=pos, use_cache=False).logits
        ce = F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), reduction="none")
        return (ce * mask.flatten()).sum() / mask.sum().clamp(min=1.0)

    def step():
        loss = loss_fn()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), opt.clip_norm)
        adamw.step()
        adamw.zero_grad(set_to_none=True)
        return float(loss.detach()), float(norm)

    return step


def build_jax(cfg, batch: dict, opt, total_steps: int, loss_chunk: int, remat: str, attention: str,
              cpu_tuning: bool = True):
    """(params copy for torch, step() -> (loss before the update, grad norm)) for the real train step."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from siamgpt_jax.model.qwen3 import init_model
    from siamgpt_jax.train.setup import make_setup
    from siamgpt_jax.train.state import ModelDef, create_train_state
    from siamgpt_jax.train.spec import StepSpec

    rows, seq_len = batch["inputs"].shape
    spec = StepSpec(seq_len=seq_len, global_batch=rows, param_dtype="float32", compute_dtype="float32", remat=remat,
                    attention=attention, loss_chunk=loss_chunk)
    model = init_model(cfg, seed=0, **spec.model_options())
    model_def, params = ModelDef.split(model)
    host_params = jax.tree.map(np.array, params)  # the step donates the state: copy for torch first
    setup = make_setup(model_def, opt, total_steps, spec, None, None, cpu_tuning=cpu_tuning)
    train_step = setup.step
    jbatch = {k: jnp.asarray(v) for k, v in batch.items()}
    holder = {"state": create_train_state(params, setup.optimizer)}

    def step():
        holder["state"], metrics = train_step(holder["state"], jbatch)
        m = jax.device_get(metrics)  # waits for the step, as torch's float(loss) does
        return float(m["loss"]), float(m["grad_norm"])

    return host_params, step


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def run_one(a, vocab: int) -> dict:
    import numpy as np

    from siamgpt_jax.model.config import Qwen3Config
    from siamgpt_jax.testing import packed_batch
    from siamgpt_jax.train.optimizer import OptimConfig

    threads = a.threads or cpu_threads()
    heads = a.heads
    cfg = Qwen3Config(
        vocab_size=vocab, hidden_size=a.hidden, intermediate_size=a.hidden * 3, num_hidden_layers=a.layers,
        num_attention_heads=heads, num_key_value_heads=max(1, heads // 2), head_dim=a.hidden // heads,
        max_position_embeddings=max(4096, a.seq), max_window_layers=a.layers, tie_word_embeddings=a.tied,
        bos_token_id=min(151643, vocab - 2), eos_token_id=min(151645, vocab - 1),  # inside small vocabs
    )
    opt = OptimConfig(learning_rate=a.lr, warmup_steps=0, decay="constant", weight_decay=0.1,
                      b1=0.9, b2=0.95, eps=1e-8, clip_norm=1.0)
    batch = packed_batch(0, a.batch, a.seq, vocab, segments=4, loss_share=0.75)
    turns = -(-a.steps // a.block)
    total = 1 + a.warmup + turns * (1 + a.block)  # updates per side

    t0 = time.perf_counter()
    params, jax_step = build_jax(cfg, batch, opt, total, a.loss_chunk, a.remat, a.attention, not a.cpu_defaults)
    torch_step = build_torch(cfg, params, batch, opt, threads)
    del params
    setup_s = time.perf_counter() - t0

    # First step (includes JAX's compile): same weights, batch and loss definition -> same numbers.
    t0 = time.perf_counter()
    jl, jn = jax_step()
    first_jax_s = time.perf_counter() - t0
    tl, tn = torch_step()
    check = {"first_loss_jax": jl, "first_loss_torch": tl, "first_loss_rel": _rel(jl, tl),
             "grad_norm_jax": jn, "grad_norm_torch": tn, "grad_norm_rel": _rel(jn, tn)}
    if not (np.isfinite(jl) and check["first_loss_rel"] <= FIRST_LOSS_RTOL):
        raise AssertionError(f"first-step losses differ: jax {jl!r} vs torch {tl!r} (rel tol {FIRST_LOSS_RTOL})")
    if check["grad_norm_rel"] > GRAD_NORM_RTOL:
        raise AssertionError(f"first-step grad norms differ: jax {jn!r} vs torch {tn!r} (rel tol {GRAD_NORM_RTOL})")

    for _ in range(a.warmup):
        jax_step()
        torch_step()
    losses = {}

    def side(name, step):
        def run():
            losses[name] = step()[0]
        return run

    def progress(name, times):
        print(f"  vocab {vocab}: {name} {len(times)}/{turns * a.block} timed steps, last {times[-1] * 1e3:.0f} ms",
              file=sys.stderr, flush=True)

    times = time_in_turns({"jax": side("jax", jax_step), "torch": side("torch", torch_step)},
                          reps=turns, block=a.block, warm_up=False, after_turn=progress)
    tj, tt = times["jax"], times["torch"]

    # The last timed step's loss comes after total - 1 identical updates on each side: the two
    # optimizers (clip + AdamW + decay mask) must have moved the weights the same way.
    lj, lt = losses["jax"], losses["torch"]
    check.update(last_loss_jax=lj, last_loss_torch=lt, last_loss_rel=_rel(lj, lt), last_loss_after_updates=total - 1,
                 passed=True)
    if check["last_loss_rel"] > LAST_LOSS_RTOL:
        raise AssertionError(f"losses after {total - 1} updates differ: jax {lj!r} vs torch {lt!r} (rel tol {LAST_LOSS_RTOL})")

    jb, tb = min(tj), min(tt)
    jm, tm = float(np.median(tj)), float(np.median(tt))
    return {
        "layers": a.layers, "hidden": a.hidden, "heads": heads, "seq": a.seq, "batch": a.batch, "vocab": vocab,
        "tied": a.tied, "dtype": "float32", "remat": a.remat, "attention": a.attention, "cpu_tuning": not a.cpu_defaults, "loss_chunk": a.loss_chunk, "threads": threads,
        "timed_steps": len(tj), "block": a.block, "warmup": a.warmup, "setup_s": round(setup_s, 2),
        "jax_first_step_s": round(first_jax_s, 3),
        "jax_best_s": round(jb, 4), "torch_best_s": round(tb, 4),
        "jax_median_s": round(jm, 4), "torch_median_s": round(tm, 4),
        "ratio_best": round(jb / tb, 3), "ratio_median": round(jm / tm, 3),
        "loss_check": check, "load_avg": list(os.getloadavg()),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--heads", type=int, default=8, help="query heads (kv heads = half)")
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--vocab", default="8192", help="comma list, e.g. 8192,151936 (one result per vocab)")
    p.add_argument("--tied", action="store_true", help="tie lm_head to the embedding (Qwen3 0.6B-4B do)")
    p.add_argument("--steps", type=int, default=6, help="timed steps per side (rounded up to whole turns)")
    p.add_argument("--block", type=int, default=2, help="timed back-to-back steps per turn")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per side after the first")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--loss-chunk", type=int, default=None, help="(default: the step spec's)")
    p.add_argument("--remat", default="none", help="JAX side remat policy (torch never recomputes)")
    p.add_argument("--attention", default="auto", choices=["auto", "chunked", "xla"], help="JAX attention path")
    p.add_argument("--cpu-defaults", action="store_true",
                   help="no train/cpu_tuning.py settings: XLA's default compiler options, glibc's malloc defaults")
    p.add_argument("--threads", type=int, default=0, help="0 = the cores this process may use")
    p.add_argument("--json", type=Path, default=None, help="append the JSON lines here")
    a = p.parse_args(argv)
    if a.loss_chunk is None:
        from siamgpt_jax.train.spec import StepSpec

        a.loss_chunk = StepSpec.loss_chunk
    if not a.cpu_defaults:  # as the train command does; process-wide, so the torch side runs with it too
        from siamgpt_jax.train.cpu_tuning import tune_process_for_cpu_training

        tune_process_for_cpu_training()
    if a.steps < 1 or a.block < 1 or a.hidden % a.heads or a.heads < 1:
        p.error("need --steps >= 1, --block >= 1 and --hidden divisible by --heads")
    vocabs = [int(v) for v in a.vocab.split(",") if v.strip()]
    for vocab in vocabs:
        out = run_one(a, vocab)
        c = out["loss_check"]
        print(f"threads={out['threads']} layers={a.layers} hidden={a.hidden} seq={a.seq} batch={a.batch} "
              f"vocab={vocab} fp32: jax best {out['jax_best_s'] * 1e3:.0f} ms (median {out['jax_median_s'] * 1e3:.0f}), "
              f"torch best {out['torch_best_s'] * 1e3:.0f} ms (median {out['torch_median_s'] * 1e3:.0f}), "
              f"ratio jax/torch best {out['ratio_best']:.2f} median {out['ratio_median']:.2f} (goal <= 1.0); "
              f"first loss rel diff {c['first_loss_rel']:.1e}, grad norm rel diff {c['grad_norm_rel']:.1e}, "
              f"loss after {c['last_loss_after_updates']} updates rel diff {c['last_loss_rel']:.1e}", flush=True)
        line = json.dumps(out)
        print(line, flush=True)
        if a.json:
            with open(a.json, "a", encoding="utf-8") as f:
                f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
