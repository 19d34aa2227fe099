"""`siamgpt-jax export-hf CKPT_DIR HF_DIR`: params checkpoint -> HF safetensors folder."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ckpt_dir", help="a params checkpoint (`siamgpt-jax import-hf`) or a training run: "
                        "RUN_DIR, RUN_DIR/checkpoints or RUN_DIR/checkpoints/STEP")
    parser.add_argument("hf_dir", help="output HF folder (written to a temp folder, renamed at the end)")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32", "float16"])
    parser.add_argument("--max-shard-size", default="5GB", help="e.g. 5GB, 500MB, 2GiB")
    parser.add_argument("--tokenizer-dir", default=None, help="copy tokenizer files from this folder or hub model id")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty HF_DIR")


def read_model(ckpt_dir: str):
    """Checkpoint folder -> Qwen3. The one place that knows checkpoint kinds."""
    from siamgpt_jax.train.export import is_training_checkpoint, load_trained_model

    if is_training_checkpoint(ckpt_dir):
        return load_trained_model(ckpt_dir)
    from siamgpt_jax.convert.params_ckpt import load_params

    return load_params(ckpt_dir)


def run(args: argparse.Namespace) -> int:
    from siamgpt_jax.convert.hf_export import save_hf
    from siamgpt_jax.hub import resolve_tokenizer

    tokenizer_dir = resolve_tokenizer(args.tokenizer_dir).path if args.tokenizer_dir else None  # folder or hub id
    model = read_model(args.ckpt_dir)
    out = save_hf(model, args.hf_dir, dtype=args.dtype, max_shard_size=args.max_shard_size,
                  tokenizer_dir=tokenizer_dir, overwrite=args.overwrite)
    print(f"wrote HF folder {out}")
    return 0
