"""`siamgpt-jax export-hf CKPT HF_DIR`: a training run's checkpoint (or an import-hf params
checkpoint) -> HF folder with weights, config, tokenizer and chat template.

It sits above train/ (it reads training checkpoints) and convert/ (it writes HF folders). The
weights are read and written one tensor at a time, so a 32B export needs host memory for about
one tensor, not the model. Run it as one process, on any host that sees the checkpoint's
filesystem (orbax writes multi-host checkpoints there); it needs no accelerator.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ckpt_dir", help="a training run: RUN_DIR, RUN_DIR/checkpoints or RUN_DIR/checkpoints/STEP "
                        "(latest step unless named), or a params checkpoint from `siamgpt-jax import-hf`")
    parser.add_argument("hf_dir", help="output HF folder (written beside it, swapped into place when complete)")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32", "float16"],
                        help="dtype of the written weights (default bfloat16)")
    parser.add_argument("--max-shard-size", default="5GB", help="largest safetensors file, e.g. 5GB, 500MB, 2GiB")
    parser.add_argument("--tokenizer-dir", default=None,
                        help="copy the tokenizer files from this folder or hub model id (default: the tokenizer the run "
                             "trained with, else the source HF folder's, else the built-in Qwen3 one)")
    parser.add_argument("--overwrite", action="store_true", help="replace HF_DIR if it holds an earlier export")
    parser.add_argument("--force", action="store_true",
                        help="with --overwrite: replace HF_DIR even if it holds files an export does not write")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _tokenizer_source(job: dict | None, params_dir: Path | None) -> str | None:
    """The folder whose tokenizer.json the model was trained with, or None for the built-in Qwen3."""
    from siamgpt_jax.convert.params_ckpt import TOKENIZER_DIR

    if params_dir is not None:
        return str(params_dir / TOKENIZER_DIR) if (params_dir / TOKENIZER_DIR / "tokenizer.json").is_file() else None
    from siamgpt_jax.hub import resolve_tokenizer

    recorded = (job.get("data") or {}).get("tokenizer")
    if recorded:  # the run tokenized its data with it: it must still be there (a hub id: pinned, in the cache)
        return str(resolve_tokenizer(recorded).path)
    source = (job.get("model") or {}).get("hf_path") or (job.get("model") or {}).get("params_checkpoint")
    if source:
        source = str(resolve_tokenizer(source).path)
    for folder in ([Path(source), Path(source) / TOKENIZER_DIR] if source else []):
        if (folder / "tokenizer.json").is_file():
            return str(folder)
    return None


def tokenizer_writer(source: str | None):
    """write(folder): tokenizer.json (from `source`, else built-in) and tokenizer_config.json with
    the chat template the training data was rendered with (loader/chat.py)."""
    from siamgpt_jax.errors import UserError
    from siamgpt_jax.loader.tokenizer import load_tokenizer

    try:
        tokenizer = load_tokenizer(source)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(f"tokenizer of the run: {e} (pass --tokenizer-dir)") from None
    return lambda folder: tokenizer.save(folder)


def run(args: argparse.Namespace) -> int:
    from siamgpt_jax.convert import folders, hf_export, params_ckpt
    from siamgpt_jax.errors import UserError
    from siamgpt_jax.train.export import VerifiedReader, is_training_checkpoint, open_trained

    folders.check_target(args.hf_dir, overwrite=args.overwrite, force=args.force)  # before reading anything
    ckpt = Path(args.ckpt_dir)
    if params_ckpt.is_params_checkpoint(ckpt):
        config, arrays = params_ckpt.open_params(ckpt)
        reader = params_ckpt.array_reader(arrays)
        what, job, params_dir = f"params checkpoint {ckpt}", None, ckpt
    elif is_training_checkpoint(ckpt):
        trained = open_trained(ckpt)
        config = trained.config
        reader = VerifiedReader(params_ckpt.array_reader(trained.arrays), trained)  # checksums as it streams
        what, job, params_dir = f"step {trained.step} of {trained.directory}", trained.job, None
    else:
        raise UserError(f"{ckpt}: neither a training run (RUN_DIR, RUN_DIR/checkpoints, a step folder) "
                        f"nor a params checkpoint (siamgpt-jax import-hf)")
    if args.tokenizer_dir is not None:  # a folder or a hub model id
        from siamgpt_jax.hub import resolve_tokenizer

        tok = args.tokenizer_dir
        extra = hf_export.copy_tokenizer(resolve_tokenizer(args.tokenizer_dir).path)
    else:
        source = _tokenizer_source(job, params_dir)
        extra, tok = tokenizer_writer(source), source or "built-in Qwen3"
    print(f"exporting {what} ({config.num_hidden_layers} layers) as {args.dtype}, tokenizer: {tok}", flush=True)
    out = hf_export.write_hf(config, reader, args.hf_dir, dtype=args.dtype,
                             max_shard_size=args.max_shard_size, write_extra=extra, overwrite=args.overwrite,
                             force=args.force, progress=not args.no_progress)
    verified = isinstance(reader, VerifiedReader)
    checked = f"; {len(reader.verified)} tensors matched their saved checksums" if verified else ""
    print(f"wrote HF folder {out} from {what}{checked}")
    return 0
