"""`siamgpt-jax verify INPUT... --out DIR`: the corpus verification pass, then the token stage.

INPUTs are local files or folders (read by readers.py) or hub dataset ids (resolved to local
files by siamgpt_jax.hub first)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import yaml

from siamgpt_jax.corpus.selection import DEDUP_MODES, SelectionConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="corpora (stream A SystemChat, stream B AutoIF): JSONL or Parquet files, folders of shards, "
                             "or hub dataset ids ORG/NAME[@REVISION][/GLOB][:SPLIT]")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="writes verified.jsonl, rejected.jsonl, report.json here")
    parser.add_argument("--config", type=Path, default=None, metavar="YAML",
                        help="a job config: its selection: section sets the filters, its data: section the token stage "
                             "(tokenizer, seq_len, train_on); flags below override it")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--fail-on-invalid", action="store_true", help="exit with an error if any line is not a usable record")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--stability-checks", default=None, help="comma-separated thai: ids for every Thai assistant turn (default: the standard four)")
    tok = parser.add_argument_group("token stage (tokens per stream in report.json)")
    tok.add_argument("--no-tokens", action="store_true", help="skip the token stage")
    tok.add_argument("--seq-len", type=int, default=None, help="count conversations longer than this (default: the config's data.seq_len, else 4096)")
    tok.add_argument("--tokenizer", default=None, metavar="DIR", help="an HF tokenizer folder (default: the config's, else Qwen3 built offline)")
    sel = parser.add_argument_group("selection (high-complexity filters; see siamgpt_jax/corpus/selection.py)")
    sel.add_argument("--select-streams", default=None, metavar="S,S", help="streams the filters apply to (default: systemchat)")
    sel.add_argument("--require-system", action="store_true", default=None, help="keep only conversations with a system prompt")
    sel.add_argument("--min-system-chars", type=int, default=None, metavar="N", help="... whose system prompt has at least N characters")
    sel.add_argument("--min-rounds", type=int, default=None, metavar="N", help="at least N user turns, each answered")
    sel.add_argument("--min-constraints", type=float, default=None, metavar="X", help="at least X constraints per turn (heuristic)")
    sel.add_argument("--min-response-chars", type=int, default=None, metavar="N", help="every assistant reply has at least N characters")
    sel.add_argument("--dedup", choices=DEDUP_MODES, default=None, help="duplicates: exact (default), normalized, or none")


def _read_config(path: Path | None):
    """(SelectionConfig, LoaderConfig) from the config's selection: and data: sections (defaults without one)."""
    from siamgpt_jax import config as config_lib
    from siamgpt_jax.loader.pipeline import LoaderConfig, loader_config_from_dict

    if path is None:
        return SelectionConfig(), LoaderConfig()

    if not path.is_file():
        raise config_lib.ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise config_lib.ConfigError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise config_lib.ConfigError(f"{path}: top level must be a mapping")
    selection = config_lib.from_dict(SelectionConfig, raw.get("selection") or {}, prefix="selection")
    return selection, loader_config_from_dict(raw.get("data") or {})


def selection_from_args(args: argparse.Namespace, base: SelectionConfig) -> SelectionConfig:
    flags = {
        "streams": None if args.select_streams is None else tuple(s for s in args.select_streams.split(",") if s),
        "require_system": args.require_system, "min_system_chars": args.min_system_chars,
        "min_rounds": args.min_rounds, "min_constraints_per_turn": args.min_constraints,
        "min_response_chars": args.min_response_chars, "dedup": args.dedup,
    }
    return dataclasses.replace(base, **{k: v for k, v in flags.items() if v is not None}).validate()


def run(args: argparse.Namespace) -> int:
    from siamgpt_jax.config import ConfigError
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
        selection, data = _read_config(args.config)
        selection = selection_from_args(args, selection)
        tokens = None
        if not args.no_tokens:
            tokens = dataclasses.replace(data, seq_len=args.seq_len or data.seq_len, tokenizer=args.tokenizer or data.tokenizer)
        report = run_verification(
            inputs, args.out, workers=args.workers, fail_on_invalid=args.fail_on_invalid,
            progress=not args.no_progress, stability_checks=stability, selection=selection, tokens=tokens,
        )
    except InvalidInputError as e:
        print(f"siamgpt-jax verify: error: {e}", file=sys.stderr)
        return 1
    except (UserError, ConfigError, FileNotFoundError, VerifierError) as e:
        print(f"siamgpt-jax verify: error: {e}", file=sys.stderr)
        return 2
    top = ", ".join(f"{k}={v}" for k, v in list(report.reject_reasons.items())[:5])
    print(
        f"verified {report.verified}/{report.total} records ({report.invalid} invalid, {report.filtered} filtered, "
        f"{report.duplicates} duplicates; {report.blank_lines} blank lines); top reject reasons: {top or 'none'}; outputs in {args.out}"
    )
    for name in report.repeated_inputs:
        print(f"  read once: {name}")
    if report.tokens:
        for stream, st in report.tokens["per_stream"].items():
            print(f"  {stream}: {st['records']} records, {st['tokens']:,} tokens ({st['trainable_tokens']:,} trainable), "
                  f"{st['over_seq_len']} over seq_len {st['seq_len']}")
    return 0
