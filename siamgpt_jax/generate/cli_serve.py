"""`siamgpt-jax serve --model HF_DIR|RUN_DIR|CHECKPOINT|URL`: an OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import argparse
import logging
import os

from siamgpt_jax.errors import UserError

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
                        help="the model id clients send and /v1/models lists (default: the --model folder's name, "
                             "or the upstream's model)")
    parser.add_argument("--max-batch", type=int, default=16,
                        help="most sequences generated together in one batch (default 16)")
    parser.add_argument("--batch-window-ms", type=float, default=10.0,
                        help="how long an idle worker waits for more requests to join the first one (default 10)")
    local = parser.add_argument_group("local model (not for a URL)")
    local.add_argument("--max-len", type=int, default=None,
                       help="KV-cache positions per sequence, prompt + new tokens (default: the model's "
                            "max_position_embeddings); longer requests get a 400")
    local.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="compute dtype")
    local.add_argument("--tensor-parallel", type=int, default=1,
                       help="split the model and KV cache over this many devices (as in `generate`)")
    local.add_argument("--tokenizer", default=None,
                       help="tokenizer folder (default: the model's own, else Qwen3's built offline)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])


def run(args: argparse.Namespace) -> int:
    from siamgpt_jax.generate.open_backend import is_url, open_backend
    from siamgpt_jax.generate.server import serve

    # uvicorn configures only its own loggers; this shows the batcher's one line per batch
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.max_batch < 1:
        raise UserError(f"--max-batch must be >= 1, got {args.max_batch}")
    if args.batch_window_ms < 0:
        raise UserError(f"--batch-window-ms must be >= 0, got {args.batch_window_ms}")
    if is_url(args.model):
        backend = open_backend(args.model, concurrency=args.max_batch)
        backend.check()  # fail now, not on the first request, if the upstream endpoint is down
    else:
        from siamgpt_jax.generate.jax_backend import tensor_parallel_mesh

        mesh = tensor_parallel_mesh(args.tensor_parallel) if args.tensor_parallel > 1 else None
        backend = open_backend(args.model, max_batch=args.max_batch, max_len=args.max_len, dtype=args.dtype,
                               tokenizer=args.tokenizer, mesh=mesh)
    name = args.served_model_name or backend.model_name
    auth = "with an API key" if args.api_key else "without an API key"
    print(f"serving {name!r} at http://{args.host}:{args.port}/v1 ({auth}; max batch {args.max_batch}, "
          f"window {args.batch_window_ms:g} ms)", flush=True)
    serve(backend, host=args.host, port=args.port, log_level=args.log_level, model_name=name,
          api_key=args.api_key, max_batch=args.max_batch, window_s=args.batch_window_ms / 1000)
    return 0
