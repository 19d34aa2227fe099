"""Benchmark: what batching concurrent requests buys `siamgpt-jax serve`.

Two servers on the same model, side by side in one run: `--max-batch 1` (each request alone, as an
unbatched server would run them) and `--max-batch N`. Each is warmed up twice with the same
burst (compiling the sampler buckets it needs), then N clients send one chat request each at the same moment
through OpenAIBackend, greedy, `--new-tokens` new tokens. Reported: wall time for all N, requests/s,
new tokens/s, and the ratio batched / one-at-a-time, plus the batch sizes the server's /stats saw.

The model is a small random Qwen3 (--layers 2, --hidden 64 by default) with the real 151,936-token
vocabulary and the offline Qwen3 tokenizer, unless --model names a folder. On a CPU the gain is
modest: a batch's matmuls are compute-bound there, while on a GPU decoding is bound by reading the
weights, which a batch shares.

    python3 scripts/bench_serve.py [--clients 16] [--new-tokens 32] [--hidden 64 --layers 2 | --model HF_DIR]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYTHAINLP_OFFLINE", "1")


def tiny_model(path: Path, hidden: int, layers: int) -> Path:
    from siamgpt_jax.testing import make_hf_model, save_hf_model
    from siamgpt_jax.loader.tokenizer import load_tokenizer

    tok = load_tokenizer()
    model = make_hf_model(vocab_size=tok.vocab_size, hidden_size=hidden, intermediate_size=2 * hidden,
                          num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                          head_dim=hidden // 4, max_position_embeddings=512)
    save_hf_model(model, path)
    tok.save(path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(model: Path, max_batch: int, window_ms: float, log: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "siamgpt_jax.cli", "serve", "--model", str(model), "--port",
                                 str(port), "--max-batch", str(max_batch), "--batch-window-ms", str(window_ms),
                                 "--log-level", "warning"], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"serve exited:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"serve did not start:\n{log.read_text()[-2000:]}")


def run_clients(url: str, clients: int, new_tokens: int) -> tuple[float, int]:
    from siamgpt_jax.generate.backend import GenerationRequest, SamplingParams
    from siamgpt_jax.generate.openai_backend import OpenAIBackend

    # same-length prompts, so every request lands in the same sampler bucket
    requests = [GenerationRequest(messages=({"role": "user", "content": f"Question number {i:03d}"},),
                                  sampling=SamplingParams(max_new_tokens=new_tokens)) for i in range(clients)]
    with OpenAIBackend(f"{url}/v1", concurrency=clients, max_retries=0, timeout_s=3600) as backend:
        t0 = time.perf_counter()
        gens = backend.generate(requests)
        seconds = time.perf_counter() - t0
    bad = [g.error for g in gens if g.finish_reason == "error"]
    if bad:
        raise SystemExit(f"a request failed: {bad[0]}")
    return seconds, sum(g.completion_tokens for g in gens)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=64, help="the random model's hidden size (default 64)")
    ap.add_argument("--layers", type=int, default=2, help="the random model's layers (default 2)")
    ap.add_argument("--window-ms", type=float, default=200.0, help="the batched server's --batch-window-ms")
    ap.add_argument("--model", default=None, help="an HF folder (default: a tiny random Qwen3 with the real vocab)")
    args = ap.parse_args()
    import httpx

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else tiny_model(Path(tmp) / "tiny-qwen3", args.hidden, args.layers)
        results = {}
        for max_batch in (1, args.clients):
            proc, url = start(model, max_batch, args.window_ms, Path(tmp) / f"serve-{max_batch}.log")
            try:
                for _ in range(2):  # warm-up: compiles the buckets (a burst may split differently each time)
                    run_clients(url, args.clients, args.new_tokens)
                before = httpx.get(f"{url}/stats").json()
                seconds, tokens = run_clients(url, args.clients, args.new_tokens)
                after = httpx.get(f"{url}/stats").json()
            finally:
                proc.terminate()
                proc.wait(60)
            sizes = {k: v - before["batch_sizes"].get(k, 0) for k, v in after["batch_sizes"].items()}
            results[max_batch] = (seconds, tokens)
            print(f"max batch {max_batch:3d}: {args.clients} requests in {seconds:.2f}s = "
                  f"{args.clients / seconds:.2f} req/s, {tokens / seconds:.1f} new tok/s; "
                  f"batch sizes {{size: count}} {({k: v for k, v in sizes.items() if v})}", flush=True)
        (s1, _), (sn, _) = results[1], results[args.clients]
        print(f"batched / one at a time: x{s1 / sn:.2f} requests/s ({os.cpu_count()} cores, load "
              f"{os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
