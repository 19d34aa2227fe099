"""The one `siamgpt-jax` entry point.

Each subcommand lives next to the library code it drives, in a module that exposes
`add_arguments(parser)` and `run(args) -> int`. They are imported lazily, so `siamgpt-jax verify`
never pays for importing JAX and `--help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

from siamgpt_jax.errors import UserError

DESCRIPTION = ("SiamGPT-JAX: verify Thai SFT corpora, fine-tune Qwen3 on them with JAX on one or many GPUs, "
               "and move weights to and from Hugging Face format.")

# commands that train: on a CPU-only jax they get train/cpu_tuning.py's host-memory setting, which
# has to be in place before jax starts its backend threads
TRAINING_COMMANDS = ("demo", "train")

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("siamgpt_jax.demo", "try everything on a tiny model on CPU: verify, train, export, reload in transformers"),
    "verify": ("siamgpt_jax.corpus.cli", "check Thai SFT corpora: keep the good records, report the rejected ones and why"),
    "train": ("siamgpt_jax.train.cli", "fine-tune Qwen3 from a YAML config, on one or many GPUs (resumable)"),
    "import-hf": ("siamgpt_jax.convert.cli_import", "convert a Hugging Face Qwen3 folder into a checkpoint `train` can start from"),
    "export-hf": ("siamgpt_jax.train.cli_export", "export a trained run as a Hugging Face model folder"),
    "mesh": ("siamgpt_jax.layout.cli", "plan, compile and time ways to split a model over GPUs"),
    "generate": ("siamgpt_jax.generate.cli", "JSONL of prompts -> JSONL of responses with the in-process KV-cache sampler"),
    "autoif": ("siamgpt_jax.autoif.cli", "synthesise Stream B (Thai AutoIF) from the seeds with a teacher model"),
    "serve": ("siamgpt_jax.generate.cli_serve", "OpenAI-compatible HTTP server (batched) for a model or endpoint"),
    "eval": ("siamgpt_jax.eval.cli", "IFEval-Th, code-switching stability and multi-turn (LLM judge) for models and steps, one report"),
}


def build_parser() -> argparse.ArgumentParser:
    from siamgpt_jax import __version__

    parser = argparse.ArgumentParser(prog="siamgpt-jax", description=DESCRIPTION,
                                     epilog="Run `siamgpt-jax COMMAND --help` for a command's options.")
    parser.add_argument("--version", action="version", version=f"siamgpt-jax {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


# errors the user can fix: printed as one line naming the file, key or tensor, exit code 2
USER_ERRORS = (UserError, FileNotFoundError, PermissionError, IsADirectoryError, FileExistsError,
               NotADirectoryError)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, OSError) and e.filename is not None and str(e.filename) not in text:
        text = f"{e.filename}: {text}"
    return text


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PYTHAINLP_OFFLINE", "1")
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug may come anywhere before a `--`; it is ours, not the subcommand's
    head = argv[: argv.index("--")] if "--" in argv else argv
    debug = "--debug" in head
    if debug:
        argv.remove("--debug")
    parser = build_parser()
    if not argv or argv[0].startswith("-") or argv[0] not in SUBCOMMANDS:
        parser.parse_args(argv)  # prints help, the version, or a clear "invalid choice" error
        return 2
    name, rest = argv[0], argv[1:]
    previous = _exit_quietly_on_signals(name)
    try:
        if name in TRAINING_COMMANDS:
            from siamgpt_jax.layout.planner import GPU_MEMORY_FRACTION
            from siamgpt_jax.train.cpu_tuning import tune_process_for_cpu_training

            # read when jax starts its GPU backend: the share the planner's memory budget assumes
            os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", str(GPU_MEMORY_FRACTION))
            tune_process_for_cpu_training()
        module = importlib.import_module(SUBCOMMANDS[name][0])
        sub = argparse.ArgumentParser(prog=f"siamgpt-jax {name}", description=SUBCOMMANDS[name][1])
        module.add_arguments(sub)
        args = sub.parse_args(rest)
        return int(module.run(args) or 0)
    except USER_ERRORS as e:
        if debug:
            raise
        print(f"siamgpt-jax {name}: error: {_one_line(e)} (--debug shows the traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C (or SIGINT) before the trainer's own handler is in place
        if debug:
            raise
        print(f"siamgpt-jax {name}: interrupted", file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _exit_quietly_on_signals(name: str) -> dict:
    """Until a command installs its own handlers (the trainer saves a checkpoint on SIGINT/SIGTERM),
    a signal ends the process at once, with one line. A KeyboardInterrupt would not do: raised inside
    a library's callback it is printed with a traceback and ignored."""

    def handler(signum, _frame):
        sys.stdout.flush()
        sys.stderr.write(f"siamgpt-jax {name}: {signal.Signals(signum).name} received, exiting\n")
        sys.stderr.flush()
        os._exit(128 + signum)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread (main() called from a worker thread)
            pass
    return previous


if __name__ == "__main__":
    sys.exit(main())
