"""`siamgpt-jax serve --model HF_DIR|RUN_DIR|CHECKPOINT|URL`: an OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

API_KEY_ENV = "SIAMGPT_API_KEY"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="HF folder, run folder, checkpoint, or an http(s) URL of another OpenAI-compatible "
                             "endpoint (URL#MODEL names its model); the server then batches and forwards")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key", default=os.environ.get(API_KEY_ENV),
                        help=f"require 'Authorization: Bearer KEY' on /v1 routes (default: ${API_KEY_ENV}, else none)")
    parser.add_argument("--served-model-name", default=None,
                        help="the model id clients send and /v1/models lists (default: the --model folder's name)")
    parser.add_argument("--max-batch", type=int, default=16,
                        help="most sequences generated together in one batch (default 16)")
    parser.add_argument("--batch-window-ms", type=float, default=10.0,
                        help="how long an idle worker waits for more requests to join the first one (default 10)")
    local = parser.add_argument_group("local model (not for a URL)")
    local.add_argument("--max-len", type=int, default=None,
                       help="KV-cache positions per sequence, prompt + new tokens (default: the model's "
                            "max_position_embeddings); longer requests get a 400")
    local.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="compute dtype")
    local.add_argument("--tokenizer", default=None,
                       help="tokenizer folder (default: the model's own, else Qwen3's built offline)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])


def served_name(model: str) -> str:
    from siamgpt_jax.generate.open_backend import is_url, split_url

    if is_url(model):
        return split_url(model)[1] or model
    return Path(model.rstrip("/")).name or model


def run(args: argparse.Namespace) -> int:
    from siamgpt_jax.generate.open_backend import is_url, open_backend
    from siamgpt_jax.generate.server import serve

    if args.max_batch < 1:
        raise SystemExit("siamgpt-jax serve: --max-batch must be >= 1")
    if args.batch_window_ms < 0:
        raise SystemExit("siamgpt-jax serve: --batch-window-ms must be >= 0")
    if is_url(args.model):
        backend = open_backend(args.model, concurrency=args.max_batch)
    else:
        backend = open_backend(args.model, max_batch=args.max_batch, max_len=args.max_len, dtype=args.dtype,
                               tokenizer=args.tokenizer)
    if is_url(args.model):
        backend.check()  # fail now, not on the first request, if the upstream endpoint is down
    name = args.served_model_name or (backend.model_name if is_url(args.model) else served_name(args.model))
    auth = "with an API key" if args.api_key else "without an API key"
    print(f"serving {name!r} at http://{args.host}:{args.port}/v1 ({auth}; max batch {args.max_batch}, "
          f"window {args.batch_window_ms:g} ms)", flush=True)
    serve(backend, host=args.host, port=args.port, log_level=args.log_level, model_name=name,
          api_key=args.api_key, max_batch=args.max_batch, window_s=args.batch_window_ms / 1000)
    return 0
