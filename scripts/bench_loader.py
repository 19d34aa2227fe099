"""Loader benchmark: tokens/s per core through the whole pipeline, and packing efficiency.

    PYTHONPATH=. python3 scripts/bench_loader.py [--records 2000] [--seq-len 4096]

Writes a synthetic mixed Thai/English/code corpus with SystemChat-like lengths (two streams),
then, in the same run:
  1. render+tokenize alone (encode_chat over every record) vs the whole pipeline in-process
     (num_workers=0: one core does read, JSON, render, tokenize, pack, batch): tokens/s and ratio;
  2. packing efficiency (non-padding fraction) at seq_len for several `packing_bins` values;
  3. optionally (--workers N) the pipeline with N grain worker processes.
Figures are recorded in docs/benchmarks/loader.md.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PYTHAINLP_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pipeline_tokens_per_s(cfg, tok, batch_size: int, n_batches: int, label: str) -> tuple[float, dict]:
    from siamgpt_jax.loader.pipeline import make_loader

    loader = make_loader(cfg, tok, batch_size=batch_size, seed=0, process_index=0, process_count=1)
    it = iter(loader)
    next(it)  # warm-up: worker start, first packing round
    start_tokens = loader.stats["tokens"]
    t0 = time.perf_counter()
    for i in range(n_batches):
        next(it)
        if (i + 1) % max(1, n_batches // 4) == 0:
            print(f"  [{label}] {i + 1}/{n_batches} batches", flush=True)
    dt = time.perf_counter() - t0
    it.close()
    stats = loader.stats
    return (stats["tokens"] - start_tokens) / dt, stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--seq-len", type=int, default=4096)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--scale", type=float, default=1.0, help="record length scale (1.0 ~ SystemChat)")
    ap.add_argument("--workers", type=int, default=0, help="also time the pipeline with N grain workers")
    args = ap.parse_args()

    from siamgpt_jax.loader.chat import encode_chat
    from siamgpt_jax.loader.pipeline import LoaderConfig, SourceConfig
    from siamgpt_jax.loader.synthetic import write_corpus
    from siamgpt_jax.loader.tokenizer import load_tokenizer

    tok = load_tokenizer()
    tmp = Path(tempfile.mkdtemp(prefix="bench_loader_"))
    corpus = write_corpus(tmp / "verified.jsonl", args.records, seed=0, scale=args.scale)
    records = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines()]
    print(f"corpus: {len(records)} records, {corpus.stat().st_size / 1e6:.1f} MB at {corpus}")

    # 1. Tokenization alone vs the whole pipeline, side by side.
    t0 = time.perf_counter()
    lengths = [len(encode_chat(tok, r["messages"])[0]) for r in records]
    tok_only = sum(lengths) / (time.perf_counter() - t0)
    print(f"conversation tokens: mean {sum(lengths) / len(lengths):.0f}, max {max(lengths)}")
    sources = (SourceConfig(str(corpus), 1.0, "systemchat"), SourceConfig(str(corpus), 1.0, "autoif"))
    cfg = LoaderConfig(sources=sources, seq_len=args.seq_len, packing_bins=128, read_threads=0)
    full, stats = pipeline_tokens_per_s(cfg, tok, args.batch_size, args.batches, "in-process")
    print(f"render+tokenize only : {tok_only:12,.0f} tokens/s (1 core)")
    print(f"whole pipeline       : {full:12,.0f} tokens/s (1 core, num_workers=0)  "
          f"ratio pipeline/tokenize-only = {full / tok_only:.2f}")

    # 2. Packing efficiency against the number of bins first-fit packs at once.
    print(f"packing efficiency at seq_len {args.seq_len} (non-padding fraction):")
    for bins in (8, 32, 128, 256):
        c = LoaderConfig(sources=sources, seq_len=args.seq_len, packing_bins=bins)
        _, s = pipeline_tokens_per_s(c, tok, args.batch_size, args.batches, f"bins={bins}")
        print(f"  packing_bins={bins:4d}: {1 - s['padding_fraction']:.4f}  "
              f"({s['segments']} segments in {s['rows']} rows, truncated {s['truncated']})")

    # 3. Worker processes.
    if args.workers:
        c = LoaderConfig(sources=sources, seq_len=args.seq_len, packing_bins=128, num_workers=args.workers)
        mp, _ = pipeline_tokens_per_s(c, tok, args.batch_size, args.batches, f"workers={args.workers}")
        print(f"whole pipeline, {args.workers} workers: {mp:12,.0f} tokens/s total "
              f"(ratio to in-process {mp / full:.2f}; machine has {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
