"""`siamgpt-jax import-hf HF_DIR CKPT_DIR`: HF safetensors folder -> params checkpoint that `train`
starts from (model.params_checkpoint: CKPT_DIR) and `export-hf` reads, one tensor at a time."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hf_dir", help="HF folder (config.json + model.safetensors or sharded index), "
                        "or a hub model id ORG/NAME[@REVISION]")
    parser.add_argument("ckpt_dir", help="output folder for the params checkpoint (must not exist yet)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "keep"],
                        help="param dtype to store (default float32, the training default; keep = as in the checkpoint)")
    parser.add_argument("--allow-nonfinite", action="store_true",
                        help="import weights holding NaN or inf instead of stopping at the first such tensor")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from siamgpt_jax.errors import UserError
    from siamgpt_jax.hub import resolve_model

    try:
        source = resolve_model(args.hf_dir)  # before importing jax: a bad id fails at once
    except UserError as e:
        print(f"siamgpt-jax import-hf: error: {e}", file=sys.stderr)
        return 2
    from siamgpt_jax.convert.params_ckpt import import_hf, read_config

    out = import_hf(source.path, args.ckpt_dir, dtype=None if args.dtype == "keep" else args.dtype,
                    allow_nonfinite=args.allow_nonfinite, progress=not args.no_progress)
    config, dtype = read_config(out)
    origin = f" from {source.pinned}" if source.is_hub else ""
    print(f"wrote params checkpoint {out}{origin} ({config.num_hidden_layers} layers, {dtype}); "
          f"train from it with model.params_checkpoint={out}")
    return 0
