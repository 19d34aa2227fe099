"""`siamgpt-jax verify INPUT... --out DIR`: the corpus verification pass."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="JSONL corpora (stream A SystemChat, stream B AutoIF): files or hub dataset ids "
                             "ORG/NAME[@REVISION][/GLOB][:SPLIT]")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="writes verified.jsonl, rejected.jsonl, report.json here")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--fail-on-invalid", action="store_true", help="exit with an error if any line is not a usable record")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--stability-checks", default=None, help="comma-separated thai: ids for every Thai assistant turn (default: the standard four)")


def run(args: argparse.Namespace) -> int:
    from siamgpt_jax.corpus.pipeline import InvalidInputError, run_verification
    from siamgpt_jax.corpus.registry import VerifierError

    from siamgpt_jax.errors import UserError
    from siamgpt_jax.hub import resolve_dataset

    stability = None if args.stability_checks is None else tuple(s for s in args.stability_checks.split(",") if s)
    inputs: list[Path] = []
    for spec in args.inputs:
        try:
            source = resolve_dataset(spec)
        except UserError as e:
            print(f"siamgpt-jax verify: error: {e}", file=sys.stderr)
            return 2
        if source.is_hub:
            print(f"{spec}: {len(source.files)} file(s) of {source.pinned}", file=sys.stderr)
        inputs.extend(source.files)
    try:
        report = run_verification(
            inputs, args.out, workers=args.workers, fail_on_invalid=args.fail_on_invalid,
            progress=not args.no_progress, stability_checks=stability,
        )
    except (InvalidInputError, FileNotFoundError, VerifierError) as e:
        print(f"siamgpt-jax verify: error: {e}", file=sys.stderr)
        return 1
    top = ", ".join(f"{k}={v}" for k, v in list(report.reject_reasons.items())[:5])
    print(
        f"verified {report.verified}/{report.total} records ({report.invalid} invalid, {report.duplicates} duplicates); "
        f"top reject reasons: {top or 'none'}; outputs in {args.out}"
    )
    return 0
