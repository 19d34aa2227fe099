"""The one `siamgpt-jax` entry point.

Each subcommand lives next to the library code it drives, in a module that exposes
`add_arguments(parser)` and `run(args) -> int`. They are imported lazily, so `siamgpt-jax verify`
never pays for importing JAX and `--help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# commands that train: on a CPU-only jax they get train/cpu_tuning.py's host-memory setting, which
# has to be in place before jax starts its backend threads
TRAINING_COMMANDS = ("demo", "train")

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("siamgpt_jax.demo", "run the whole job on the embedded default (verify, train, export, reload)"),
    "verify": ("siamgpt_jax.corpus.cli", "verify raw corpora into verified.jsonl + rejected.jsonl + report.json"),
    "train": ("siamgpt_jax.train.cli", "supervised fine-tuning from a YAML config"),
    "import-hf": ("siamgpt_jax.convert.cli_import", "HF safetensors folder -> params checkpoint for train"),
    "export-hf": ("siamgpt_jax.train.cli_export", "training run or params checkpoint -> HF safetensors folder"),
    "mesh": ("siamgpt_jax.layout.cli", "mesh-layout experiments: plan, compile, bench"),
    "generate": ("siamgpt_jax.generate.cli", "JSONL of prompts -> JSONL of responses with the in-process KV-cache sampler"),
    "autoif": ("siamgpt_jax.autoif.cli", "synthesise Stream B (Thai AutoIF) from the seeds with a teacher model"),
    "serve": ("siamgpt_jax.generate.cli_serve", "OpenAI-compatible HTTP server (batched) for a model or endpoint"),
    "eval": ("siamgpt_jax.eval.cli", "IFEval-Th, code-switching stability and multi-turn (LLM judge) for models and steps, one report"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siamgpt-jax", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PYTHAINLP_OFFLINE", "1")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        parser.parse_args(argv)  # prints help or a clear "invalid choice" error
        return 2
    name, rest = argv[0], argv[1:]
    if name in TRAINING_COMMANDS:
        from siamgpt_jax.train.cpu_tuning import tune_process_for_cpu_training

        tune_process_for_cpu_training()
    module = importlib.import_module(SUBCOMMANDS[name][0])
    sub = argparse.ArgumentParser(prog=f"siamgpt-jax {name}", description=SUBCOMMANDS[name][1])
    module.add_arguments(sub)
    args = sub.parse_args(rest)
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
