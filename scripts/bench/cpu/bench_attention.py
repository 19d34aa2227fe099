"""Attention alone, forward + backward: the chunked path against torch's SDPA on CPU, same threads.

    python3 scripts/bench/cpu/bench_attention.py [--seqs 512,1024,2048] [--heads 8 --kv-heads 4 --head-dim 64]
        [--reps 5 --block 3] [--segments] [--baseline COMMIT]

For each sequence length it times, interleaved in one process, the fwd+bwd of:
- `chunked`: model/chunked_attention.py as compiled by the train step (its CPU compiler options);
- `torch`: torch.nn.functional.scaled_dot_product_attention (is_causal, GQA), autograd backward;
- `baseline` (with --baseline COMMIT): that commit's chunked_attention.py, loaded from git beside
  this one (its imports resolve to this checkout's package), so a change is measured side by side.
The paths take turns; each turn runs one path back to back and times all but its first call.
It also times the forward alone, and checks that the outputs and input grads agree with torch's
(max |diff| printed; the script fails above 1e-4). --segments packs two segments per row: torch
then gets the block-diagonal causal mask as a boolean attn_mask.
One JSON line per length, then a summary line.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path

from bench_timing import time_in_turns

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))  # bench_baseline, shared with the other --baseline scripts
from bench_baseline import file_at  # noqa: E402


def _baseline_module(commit: str):
    """That commit's chunked_attention.py as a module (imports resolve to this checkout)."""
    src = file_at(commit, "siamgpt_jax/model/chunked_attention.py")
    path = Path(tempfile.mkdtemp(prefix="bench_attention_")) / "baseline_chunked_attention.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("baseline_chunked_attention", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seqs", default="512,1024,2048")
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--reps", type=int, default=5, help="turns per path")
    p.add_argument("--block", type=int, default=3, help="timed back-to-back calls per turn")
    p.add_argument("--segments", action="store_true", help="two packed segments per row")
    p.add_argument("--baseline", default=None, help="also time this commit's chunked attention")
    a = p.parse_args()

    from siamgpt_jax.train.cpu_tuning import compiler_options, keep_freed_host_memory

    keep_freed_host_memory()  # as the train command and bench_step.py do; torch shares the setting
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    from siamgpt_jax.model.chunked_attention import chunked_attention

    torch.set_num_threads(threads)
    impls = {"chunked": chunked_attention}
    if a.baseline:
        impls["baseline"] = _baseline_module(a.baseline).chunked_attention
    H, K, Dh = a.heads, a.kv_heads, a.head_dim
    scale = Dh**-0.5
    options = compiler_options()
    rows = []
    for S in (int(s) for s in a.seqs.split(",")):
        rs = np.random.RandomState(S)
        q, d_out = (rs.randn(1, S, H, Dh).astype(np.float32) for _ in range(2))
        k, v = (rs.randn(1, S, K, Dh).astype(np.float32) for _ in range(2))
        seg = np.ones((1, S), np.int32)
        if a.segments:
            seg[:, S // 3:] = 2
        seg_j = jnp.asarray(seg) if a.segments else None
        jq, jk, jv, jdo = (jnp.asarray(x) for x in (q, k, v, d_out))

        steps = {}
        outs = {}
        for name, fn in impls.items():
            def fwd(q, k, v, fn=fn):
                return fn(q, k, v, seg_j, scale=scale)

            def fwd_bwd(q, k, v, d_out, fwd=fwd):
                out, vjp = jax.vjp(fwd, q, k, v)
                return out, vjp(d_out)

            both = jax.jit(fwd_bwd, compiler_options=options).lower(jq, jk, jv, jdo).compile()
            only = jax.jit(fwd, compiler_options=options).lower(jq, jk, jv).compile()
            outs[name] = jax.tree.map(np.asarray, both(jq, jk, jv, jdo))
            steps[name] = lambda both=both: jax.block_until_ready(both(jq, jk, jv, jdo))
            steps[name + " fwd"] = lambda only=only: jax.block_until_ready(only(jq, jk, jv))

        # torch: [B, heads, S, Dh]; GQA by enable_gqa; packed segments by an explicit boolean mask
        tq, tk, tv = (torch.from_numpy(x).transpose(1, 2).contiguous().requires_grad_() for x in (q, k, v))
        tdo = torch.from_numpy(d_out).transpose(1, 2).contiguous()
        mask = None
        if a.segments:
            idx = torch.arange(S)
            ts = torch.from_numpy(seg[0])
            mask = (idx[:, None] >= idx[None, :]) & (ts[:, None] == ts[None, :])

        def torch_sdpa():
            if mask is None:
                return torch.nn.functional.scaled_dot_product_attention(
                    tq, tk, tv, is_causal=True, scale=scale, enable_gqa=True)
            return torch.nn.functional.scaled_dot_product_attention(
                tq, tk, tv, attn_mask=mask, scale=scale, enable_gqa=True)

        def torch_step():
            out = torch_sdpa()
            return out, torch.autograd.grad(out, (tq, tk, tv), tdo)

        def torch_fwd():
            with torch.no_grad():
                torch_sdpa()

        t_out, t_grads = torch_step()
        ref = [t_out.detach().transpose(1, 2).numpy()] + [g.transpose(1, 2).numpy() for g in t_grads]
        diffs = {}
        for name, (out, grads) in outs.items():
            diffs[name] = max(float(np.abs(x - y).max()) for x, y in zip([out, *grads], ref))
        steps["torch"], steps["torch fwd"] = torch_step, torch_fwd

        times = time_in_turns(steps, reps=a.reps, block=a.block)
        ms = {name: float(np.median(v)) * 1e3 for name, v in times.items()}
        row = {"seq": S, "heads": H, "kv_heads": K, "head_dim": Dh, "segments": a.segments, "threads": threads,
               "ms": {name: round(v, 2) for name, v in ms.items()},
               "fwd_bwd_over_torch": {name: round(ms[name] / ms["torch"], 3) for name in impls},
               "fwd_over_torch": {name: round(ms[name + " fwd"] / ms["torch fwd"], 3) for name in impls},
               "max_abs_diff_vs_torch": diffs}
        if a.baseline:
            row["chunked_over_baseline"] = round(ms["chunked"] / ms["baseline"], 3)
        rows.append(row)
        print(json.dumps(row), flush=True)
        bad = {name: d for name, d in diffs.items() if not d <= 1e-4}
        if bad:
            print(f"seq {S}: outputs or grads differ from torch's by {bad} (> 1e-4)", file=sys.stderr)
            return 1
    print("fwd+bwd chunked/torch: " + ", ".join(f"S={r['seq']} {r['fwd_bwd_over_torch']['chunked']:.2f}" for r in rows)
          + ("; chunked/baseline: " + ", ".join(f"S={r['seq']} {r['chunked_over_baseline']:.2f}" for r in rows)
             if a.baseline else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
