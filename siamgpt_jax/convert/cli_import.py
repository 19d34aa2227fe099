"""`siamgpt-jax import-hf HF_DIR CKPT_DIR`: HF safetensors folder (or hub id) -> orbax params checkpoint."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hf_dir", help="HF folder (config.json + model.safetensors or sharded index), "
                        "or a hub model id ORG/NAME[@REVISION]")
    parser.add_argument("ckpt_dir", help="output folder for the orbax params checkpoint")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "keep"],
                        help="param dtype to store (default float32, the training default; keep = as in the checkpoint)")


def run(args: argparse.Namespace) -> int:
    import sys

    from siamgpt_jax.errors import UserError
    from siamgpt_jax.hub import resolve_model

    try:
        source = resolve_model(args.hf_dir)  # before importing jax: a bad id fails at once
    except UserError as e:
        print(f"siamgpt-jax import-hf: error: {e}", file=sys.stderr)
        return 2
    from siamgpt_jax.convert.hf_import import load_hf
    from siamgpt_jax.convert.params_ckpt import save_params

    model = load_hf(source.path, dtype=None if args.dtype == "keep" else args.dtype)
    out = save_params(model, args.ckpt_dir)
    origin = f" from {source.pinned}" if source.is_hub else ""
    print(f"wrote params checkpoint {out}{origin} ({model.config.num_hidden_layers} layers, {model.param_dtype.name})")
    return 0
