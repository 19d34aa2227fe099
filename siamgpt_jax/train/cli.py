"""`siamgpt-jax train --config configs/NAME.yaml [key=value ...] [--resume]`."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML file (see configs/)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.steps=10 optim.learning_rate=1e-4")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in the run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    parser.add_argument("--plan", action="store_true",
                        help="print how many epochs of each data source the run gets (exact token counts), then exit without training")


def run(args: argparse.Namespace) -> int:
    from siamgpt_jax.train.config import load_job_config_for_cli

    cfg = load_job_config_for_cli("train", args.config, args.overrides)
    if cfg is None:
        return 2
    if args.plan:
        return print_plan(cfg, progress=not args.no_progress)

    from siamgpt_jax.errors import UserError
    from siamgpt_jax.parallel.distributed import initialize
    from siamgpt_jax.train.loop import NonFiniteLossError, train

    initialize()
    try:
        result = train(cfg, resume=args.resume, progress=not args.no_progress)
    except NonFiniteLossError as e:
        print(f"siamgpt-jax train: {e}", file=sys.stderr)
        return 3
    except UserError as e:  # e.g. a hub id that cannot be resolved
        print(f"siamgpt-jax train: error: {e}", file=sys.stderr)
        return 2
    print(
        f"trained steps {result.steps_done}/{cfg.train.steps}: loss {result.first_loss:.4f} -> {result.last_loss:.4f}; "
        f"checkpoint step {result.last_checkpoint} in {cfg.run_dir}"
    )
    return 0 if result.stopped_by == "completed" else 130


def print_plan(cfg, *, progress: bool = True) -> int:
    """`train --plan`: the data plan alone; no JAX, no model."""
    from siamgpt_jax.loader.epochs import format_plan, plan_for_config
    from siamgpt_jax.loader.tokenizer import load_tokenizer

    try:
        plans = plan_for_config(cfg.data, load_tokenizer(cfg.data.tokenizer), steps=cfg.train.steps,
                                global_batch=cfg.train.global_batch, progress=progress)
    except (FileNotFoundError, ValueError) as e:  # a missing source, a bad record, a source with no records
        print(f"siamgpt-jax train: error: {e}", file=sys.stderr)
        return 2
    print(format_plan(plans, steps=cfg.train.steps, global_batch=cfg.train.global_batch, seq_len=cfg.data.seq_len))
    return 0
