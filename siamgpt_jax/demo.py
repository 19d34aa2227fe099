"""`siamgpt-jax demo`: the whole job on the embedded default, end to end.

1. verification pass over the sample corpora in data/samples   -> RUN_DIR/verified/
2. SFT of a tiny Qwen3 (real vocabulary) from configs/demo.yaml -> RUN_DIR/checkpoints/, metrics.jsonl
3. export to Hugging Face format                                -> RUN_DIR/hf/
4. reload with transformers and compare logits with the JAX model
5. a summary and a loss-curve plot                              -> RUN_DIR/loss.png
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = ("data/samples/systemchat_sample.jsonl", "data/samples/autoif_th_sample.jsonl")
OUTPUTS = ("verified", "checkpoints", "tensorboard", "hf", "tokenizer", "metrics.jsonl", "config.json", "loss.png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=str(REPO / "configs" / "demo.yaml"))
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. train.steps=10")
    parser.add_argument("--no-progress", action="store_true")


def plot_losses(metrics_path: Path, out_png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], label="train loss")
    evals = [r for r in rows if "eval_loss" in r]
    if evals:
        ax.plot([r["step"] for r in evals], [r["eval_loss"] for r in evals], "o-", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title("siamgpt-jax demo: tiny Qwen3 SFT")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def compare_with_transformers(model, hf_dir: Path, token_ids: list[int]) -> float | None:
    """Max |logit difference| between our model and transformers' reload of the export (fp32)."""
    try:
        import torch
        from transformers import AutoModelForCausalLM
    except ImportError:
        print("  (torch/transformers not installed: skipping the reload check)")
        return None
    import jax.numpy as jnp
    import numpy as np

    hf = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    hf.eval()
    ids = np.asarray([token_ids], dtype=np.int32)
    with torch.no_grad():
        ref = hf(torch.from_numpy(ids).long()).logits.float().numpy()
    ours = np.asarray(model(jnp.asarray(ids)), dtype=np.float32)
    return float(np.abs(ours - ref).max())


def run(args: argparse.Namespace) -> int:
    from siamgpt_jax.train.config import load_job_config_for_cli

    cfg = load_job_config_for_cli("demo", args.config, args.overrides)
    if cfg is None:
        return 2
    run_dir = Path(cfg.run_dir)
    for name in OUTPUTS:  # the demo always trains from scratch; only its own outputs are removed
        target = run_dir / name
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)

    print("[1/4] verification pass over the sample corpora", flush=True)
    from siamgpt_jax.corpus.pipeline import run_verification

    verified_dir = run_dir / "verified"
    report = run_verification([REPO / p for p in SAMPLES], verified_dir, progress=not args.no_progress,
                              selection=cfg.selection, tokens=cfg.data)
    print(f"  kept {report.verified} of {report.total} records ({report.rejected} rejected, see report.json) -> {verified_dir / 'verified.jsonl'}", flush=True)
    for stream, st in report.tokens["per_stream"].items():
        print(f"  {stream}: {st['tokens']:,} tokens ({st['trainable_tokens']:,} trainable), "
              f"{st['over_seq_len']} of {st['records']} conversations over seq_len {st['seq_len']}", flush=True)

    print("[2/4] SFT of a tiny Qwen3 with the real Qwen3 vocabulary", flush=True)
    from siamgpt_jax.train.loop import train

    result = train(cfg, progress=not args.no_progress)
    model = result.model_def.merge(result.state.params)

    print("[3/4] export to Hugging Face format", flush=True)
    from siamgpt_jax.convert import save_hf
    from siamgpt_jax.loader.chat import encode_chat
    from siamgpt_jax.loader.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(cfg.data.tokenizer)
    tok_dir = run_dir / "tokenizer"
    tokenizer.save(tok_dir)
    hf_dir = run_dir / "hf"
    save_hf(model, hf_dir, dtype="float32", tokenizer_dir=tok_dir)

    print("[4/4] reload with transformers and compare logits", flush=True)
    first = json.loads((verified_dir / "verified.jsonl").read_text(encoding="utf-8").splitlines()[0])
    ids, _ = encode_chat(tokenizer, first["messages"])
    diff = compare_with_transformers(model, hf_dir, list(ids)[:128])

    png = plot_losses(run_dir / "metrics.jsonl", run_dir / "loss.png")
    fell = result.last_loss is not None and result.first_loss is not None and result.last_loss < 0.8 * result.first_loss
    print("\nsummary")
    print(f"  loss            {result.first_loss:.3f} -> {result.last_loss:.3f} over {result.steps_done} steps"
          + ("" if fell else "  (WARNING: the loss did not clearly fall)"))
    if result.eval_losses:
        print(f"  eval loss       " + ", ".join(f"step {s}: {v:.3f}" for s, v in result.eval_losses))
    if diff is not None:
        print(f"  HF reload       max |logit diff| = {diff:.2e} (transformers vs JAX, fp32)")
    print(f"  verified corpus {verified_dir}/{{verified,rejected}}.jsonl, report.json")
    print(f"  checkpoints     {run_dir / 'checkpoints'} (step {result.last_checkpoint})")
    print(f"  metrics         {run_dir / 'metrics.jsonl'}, TensorBoard: {run_dir / 'tensorboard'}")
    print(f"  HF export       {hf_dir}")
    print(f"  loss curve      {png}")
    ok = fell and (diff is None or diff < 1e-3)
    return 0 if ok else 1
