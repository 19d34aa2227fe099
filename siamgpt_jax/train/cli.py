"""`siamgpt-jax train --config configs/NAME.yaml [key=value ...] [--resume | --resume-from STEP | --overwrite]`."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML file (see configs/)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.steps=10 optim.learning_rate=1e-4")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest good checkpoint in the run (a finished run is left as it is)")
    parser.add_argument("--resume-from", type=int, default=None, metavar="STEP",
                        help="continue from this checkpoint step; later steps are moved aside, not deleted")
    parser.add_argument("--overwrite", action="store_true",
                        help="start again in a run folder that holds checkpoints: delete its checkpoints, "
                             "metrics and TensorBoard logs first")
    parser.add_argument("--allow-config-change", action="store_true",
                        help="resume even though the config changes the run (steps, schedule, data, model)")
    parser.add_argument("--no-progress", action="store_true", help="a log line per logged step instead of a progress bar")
    parser.add_argument("--plan", action="store_true",
                        help="print how many epochs of each data source the run gets (exact token counts), then exit without training")


def run(args: argparse.Namespace) -> int:
    from siamgpt_jax.train.config import load_job_config

    if args.overwrite and (args.resume or args.resume_from is not None):
        print("siamgpt-jax train: error: --overwrite starts the run again; it cannot be combined with --resume",
              file=sys.stderr)
        return 2
    cfg = load_job_config(args.config, args.overrides)
    if args.plan:
        return print_plan(cfg, progress=not args.no_progress)

    from siamgpt_jax.parallel.distributed import initialize
    from siamgpt_jax.train.loop import NonFiniteLossError, train

    initialize()
    try:
        result = train(cfg, resume=args.resume, resume_from=args.resume_from, overwrite=args.overwrite,
                       allow_config_change=args.allow_config_change, progress=not args.no_progress)
    except NonFiniteLossError as e:
        print(f"siamgpt-jax train: {e}", file=sys.stderr)
        return 3
    if result.stopped_by == "already_done":
        print(f"nothing to train: {cfg.run_dir} is at step {result.steps_done} of train.steps={cfg.train.steps}"
              + (f" (checkpoint step {result.last_checkpoint})" if result.last_checkpoint is not None else ""))
        return 0
    losses = (f": loss {result.first_loss:.4f} -> {result.last_loss:.4f}" if result.first_loss is not None else "")
    print(f"trained steps {result.steps_done}/{cfg.train.steps}{losses}; "
          f"checkpoint step {result.last_checkpoint} in {cfg.run_dir}")
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
