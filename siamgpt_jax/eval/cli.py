"""`siamgpt-jax eval`: IFEval-Th, code-switching stability and multi-turn (LLM judge) for one or
several models, into one report (JSON, markdown, PNG)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from siamgpt_jax.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    from siamgpt_jax.eval.data import IFEVAL_TH, MT_BENCH_TH, STABILITY_TH
    from siamgpt_jax.eval.runner import TASKS

    p.add_argument("--model", action="append", required=True, metavar="[LABEL=]SPEC",
                   help="HF folder, exported model, run folder (every saved step), checkpoint, or http(s)://host:port/v1#model; repeat to compare")
    p.add_argument("--steps", type=lambda s: [int(x) for x in s.split(",") if x], default=None, help="only these steps of a run folder, e.g. 200,400")
    p.add_argument("--out", required=True, type=Path, help="folder for generations, verdicts and report.{json,md}, scores.png")
    p.add_argument("--tasks", default=",".join(TASKS), help=f"comma list of {', '.join(TASKS)}")
    p.add_argument("--ifeval-file", type=Path, default=IFEVAL_TH)
    p.add_argument("--stability-file", type=Path, default=STABILITY_TH)
    p.add_argument("--multi-turn-file", type=Path, default=MT_BENCH_TH, help="our Thai set, or SEA-HELM's MT-Bench-Th JSONL")
    g = p.add_argument_group("sampling (greedy by default; everything is recorded in the report)")
    g.add_argument("--max-new-tokens", type=int, default=1024)
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--top-k", type=int, default=0)
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--enable-thinking", action="store_true", help="let Qwen3 think (the think block is not scored)")
    g.add_argument("--batch-size", type=int, default=16, help="requests sent together (a local model's batch, an endpoint's concurrency)")
    g.add_argument("--max-len", type=int, default=4096, help="a local model's KV-cache length, prompt + answer (default 4096)")
    g.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="a local model's compute dtype")
    g.add_argument("--limit", type=int, default=None, help="only the first N prompts of each set (a smoke run)")
    p.add_argument("--rescore", action="store_true", help="generate nothing: score the saved generations again")
    j = p.add_argument_group("judge (multi-turn; skipped without one)")
    j.add_argument("--judge-base-url", default=None, help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    j.add_argument("--judge-model", default=None)
    j.add_argument("--judge-max-tokens", type=int, default=1024)
    j.add_argument("--judge-retries", type=int, default=5, help="retries per judge request (backoff) before the endpoint counts as down")
    j.add_argument("--baseline", default=None,
                   help="pairwise baseline: a --model label, or a model name in the multi-turn file's 'baselines' (default: the first --model, when there are several)")


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except UserError as e:
        print(f"siamgpt-jax eval: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from siamgpt_jax.eval import models as models_mod
    from siamgpt_jax.eval.runner import EvalSettings, JudgeSettings, run_eval
    from siamgpt_jax.generate.backend import SamplingParams

    if bool(args.judge_base_url) != bool(args.judge_model):
        raise UserError("--judge-base-url and --judge-model go together")
    try:
        sampling = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                                  top_p=args.top_p, seed=args.seed)
    except ValueError as e:
        raise UserError(str(e)) from None
    judge = JudgeSettings(args.judge_base_url, args.judge_model, args.judge_max_tokens) if args.judge_base_url else None
    settings = EvalSettings(tasks=tuple(t.strip() for t in args.tasks.split(",") if t.strip()), ifeval_file=args.ifeval_file,
                            stability_file=args.stability_file, multi_turn_file=args.multi_turn_file, sampling=sampling,
                            enable_thinking=args.enable_thinking, batch_size=args.batch_size, limit=args.limit,
                            rescore=args.rescore, judge=judge, baseline=args.baseline)
    entries = models_mod.expand(args.model, args.steps, must_exist=not args.rescore)
    report = run_eval(entries, args.out, settings, backend_factory=lambda spec: open_model(spec, args),
                      judge_factory=lambda judge_settings: open_judge(judge_settings, args))
    print((args.out / "report.md").read_text(encoding="utf-8"))
    print(f"report: {args.out / 'report.json'}, {args.out / 'report.md'}, {args.out / 'scores.png'}")
    return 1 if report["judge_failed"] else 0


def open_model(spec: str, args: argparse.Namespace):
    from siamgpt_jax.generate.open_backend import is_url, open_backend

    if is_url(spec):
        return open_backend(spec, concurrency=args.batch_size)
    return open_backend(spec, max_batch=args.batch_size, max_len=args.max_len, dtype=args.dtype)


def open_judge(settings, args: argparse.Namespace):
    from siamgpt_jax.generate.open_backend import open_backend

    return open_backend(settings.spec, concurrency=args.batch_size, max_retries=args.judge_retries)
