"""Benchmark: pairs verified per second per core on a synthetic 10k-pair Thai AutoIF corpus.

The corpus is generated (seeded) from the whitespace-delimited chunks of the shipped Thai sample
answers, recombined into responses of 20-60 chunks, each with 1-3 constraints drawn from a mix of
IFEval, SEA-IFEval and thai: ids. The pass runs the constraints on the final turn and the four
stability checks on every Thai assistant turn, exactly as `siamgpt-jax verify` does.

Runs, side by side in one process tree:
  1. one worker, newmm chunk memo on    (pairs/s/core: the goal is >= 2,000)
  2. one worker, newmm chunk memo off   (how much the memo buys)
  3. all cores                           (scaling ratio over 1)

    python3 scripts/bench_verify.py [--pairs 10000] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYTHAINLP_OFFLINE", "1")

CONSTRAINTS = [
    ("length_constraints:number_words", lambda r: {"num_words": r.choice([40, 80, 150]), "relation": r.choice(["at least", "less than"])}),
    ("length_constraints:number_sentences", lambda r: {"num_sentences": r.choice([3, 6, 12]), "relation": r.choice(["at least", "less than"])}),
    ("keywords:existence", lambda r: {"keywords": r.sample(["การ", "ความ", "ประเทศ", "น้ำ", "เวลา"], 2)}),
    ("keywords:frequency", lambda r: {"keyword": r.choice(["ที่", "และ", "ได้"]), "frequency": r.choice([2, 4]), "relation": "at least"}),
    ("keywords:forbidden_words", lambda r: {"forbidden_words": r.sample(["ง่าย", "แน่นอน", "สวย", "เสมอ"], 2)}),
    ("detectable_format:number_bullet_lists", lambda r: {"num_bullets": r.choice([3, 4])}),
    ("detectable_content:postscript", lambda r: {"postscript_marker": "ป.ล."}),
    ("startend:first_word", lambda r: {"first_word": "สวัสดี"}),
    ("thai:polite_particle", lambda r: {}),
    ("thai:digits", lambda r: {"style": r.choice(["thai", "arabic"])}),
    ("thai:buddhist_era", lambda r: {}),
    ("thai:no_code_switching", lambda r: {}),
    ("punctuation:no_comma", lambda r: {}),
    ("detectable_format:title", lambda r: {}),
]


def make_corpus(path: Path, pairs: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    chunks: list[str] = []
    for line in (ROOT / "data/samples/autoif_th_sample.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec["expect"] == "pass":
            for m in rec["messages"]:
                if m["role"] == "assistant":
                    chunks += [c for c in m["content"].split() if any("\u0e01" <= ch <= "\u0e4e" for ch in c)]
    with open(path, "w", encoding="utf-8") as f:
        for i in range(pairs):
            words = rng.sample(chunks, rng.randint(20, 60))
            body = ""
            for j, w in enumerate(words):
                body += w + ("\n\n" if j % 17 == 16 else "\n* " if rng.random() < 0.02 else " ")
            opener = "สวัสดีครับ " if rng.random() < 0.5 else ""
            tail = rng.choice(["ครับ", "ค่ะ", "", "\n\nป.ล. ขอบคุณที่ติดตาม"])
            response = f"{opener}<<เรื่องที่ {i}>>\n{body.strip()} {tail}".strip()
            picked = rng.sample(CONSTRAINTS, rng.randint(1, 3))
            rec = {
                "messages": [{"role": "user", "content": "ช่วยเขียนคำอธิบายสั้น ๆ ให้หน่อย"}, {"role": "assistant", "content": response}],
                "instruction_id_list": [c[0] for c in picked],
                "kwargs": [c[1](rng) for c in picked],
            }
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def timed(corpus: Path, workers: int, memo: bool) -> tuple[float, object]:
    from siamgpt_jax.corpus import thai_text
    from siamgpt_jax.corpus.pipeline import run_verification

    thai_text._segment_chunk.cache_clear()
    original = thai_text._segment_chunk
    if not memo:
        thai_text._segment_chunk = lambda chunk: tuple(thai_text._newmm()(chunk))
    try:
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            report = run_verification([corpus], Path(out), workers=workers, progress=False)
            return time.perf_counter() - t0, report
    finally:
        thai_text._segment_chunk = original


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "synthetic_th.jsonl"
        make_corpus(corpus, args.pairs)
        from siamgpt_jax.corpus import thai_text
        from siamgpt_jax.corpus.pipeline import _init_worker

        _init_worker()  # pythainlp load is a one-off per worker, not part of throughput
        t_memo, report = timed(corpus, 1, memo=True)
        hits = thai_text._segment_chunk.cache_info()
        t_nomemo, _ = timed(corpus, 1, memo=False)
        t_all, _ = timed(corpus, args.workers, memo=True)
    n = report.total
    print(f"pairs: {n}  verified: {report.verified}  rejected: {report.rejected}  cores used in run 3: {args.workers}")
    print(f"newmm chunk memo: {hits.hits} hits / {hits.misses} misses")
    print(f"1 worker, memo on : {t_memo:7.2f} s  {n / t_memo:8.0f} pairs/s/core")
    print(f"1 worker, memo off: {t_nomemo:7.2f} s  {n / t_nomemo:8.0f} pairs/s/core  (memo speed-up x{t_nomemo / t_memo:.2f})")
    print(f"{args.workers} workers        : {t_all:7.2f} s  {n / t_all:8.0f} pairs/s      (scaling x{t_memo / t_all:.2f} over 1 worker)")
    print("check pass rates:", json.dumps({k: v["pass_rate"] for k, v in report.checks.items()}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
