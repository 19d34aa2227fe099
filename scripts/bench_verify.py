"""Benchmark: pairs verified per second per core on a synthetic 10k-pair Thai AutoIF corpus.

The corpus is generated (seeded) from the whitespace-delimited chunks of the shipped Thai sample
answers, recombined into responses of 20-60 chunks, each with 1-3 constraints drawn from a mix of
IFEval, SEA-IFEval and thai: ids. The pass runs the constraints on the final turn and the four
stability checks on every Thai assistant turn, exactly as `siamgpt-jax verify` does.

Runs, each in a fresh process with imports, pythainlp and the CRF model loaded before the clock:
  1. one worker, this checkout                 (pairs/s/core: the goal is >= 2,000)
  2. one worker, --baseline REF (git archive)  (old vs new on the same corpus, back to back;
                                                verified/rejected.jsonl compared byte for byte,
                                                report.json on the fields both versions write)
  3. all cores, this checkout                  (scaling ratio over 1)
  4. all cores, this checkout, with the token stage (Qwen3 token counts of the verified records,
     as `siamgpt-jax verify` runs by default): the stage is the difference to run 3, in wall seconds
     and in this process's CPU seconds (the stage runs in the parent, on every core)
then, in this process: where the time goes per check, and crf_sentences vs pythainlp's crfcut on
the corpus's Thai lines (the hottest function, old vs new on the same inputs).

    python3 scripts/bench_verify.py [--pairs 10000] [--workers N] [--baseline REF] [--repeat K]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_baseline import extract_package

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
    ("language:response_language", lambda r: {"language": "th"}),  # fastText (lid.176) for turns not all Thai
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


_RUN = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from siamgpt_jax.corpus import pipeline, thai_text
pipeline._init_worker()
thai_text.count_sentences_until("อุ่นเครื่อง ครับ", lambda lo, hi: False)  # load the CRF model now
try:
    from siamgpt_jax.corpus import langid
    langid._detector()  # load lid.176 now (a real pass loads it once per worker, on first use)
except AttributeError:
    pass  # a tree from before fastText
kw = {}
if sys.argv[5] == "tokens":
    from siamgpt_jax.loader.pipeline import LoaderConfig
    from siamgpt_jax.loader.tokenizer import load_tokenizer
    kw = {"tokens": LoaderConfig(), "tokenizer": load_tokenizer()}
t0, c0 = time.perf_counter(), time.process_time()
report = pipeline.run_verification([Path(sys.argv[2])], Path(sys.argv[3]), workers=int(sys.argv[4]), progress=False, **kw)
tok = getattr(report, "tokens", None) or {}
print(json.dumps({"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0, "total": report.total,
                  "tokens": tok.get("all", {}).get("tokens")}))
"""


def timed(tree: Path, corpus: Path, out: Path, workers: int, tokens: bool = False) -> dict:
    """(wall, CPU) seconds of one whole pass (parse, checks, dedup, writes) by the package in `tree`.

    CPU seconds are this process's own (the parent's share when workers > 1): on a shared machine
    they move less than wall seconds when other work competes for the cores.
    """
    env = {**os.environ, "PYTHAINLP_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-c", _RUN, str(tree), str(corpus), str(out), str(workers), "tokens" if tokens else "-"],
                         check=True, capture_output=True, text=True, env=env)
    got = json.loads(res.stdout.strip().splitlines()[-1])
    return got if tokens else (got["seconds"], got["cpu_seconds"])


def _contains(new, old) -> bool:
    """Every field of `old` is in `new` with the same value (a newer report may add fields)."""
    if isinstance(old, dict):
        return isinstance(new, dict) and all(k in new and _contains(new[k], v) for k, v in old.items())
    return new == old


def same_outputs(a: Path, b: Path) -> bool:
    """a: the baseline's folder, b: this checkout's."""
    same = all((a / f).read_bytes() == (b / f).read_bytes() for f in ("verified.jsonl", "rejected.jsonl"))
    return same and _contains(json.loads((b / "report.json").read_text()), json.loads((a / "report.json").read_text()))


def per_check(corpus: Path, pairs: int) -> tuple[dict[str, float], float]:
    """In-process seconds per check id (and parse/id), over the first `pairs` records."""
    from collections import defaultdict

    from siamgpt_jax.corpus import pipeline, verify
    from siamgpt_jax.corpus.records import parse_line

    pipeline._init_worker()
    verify.check("length_constraints:number_sentences", "อุ่นเครื่อง ครับ", {"num_sentences": 9, "relation": "at least"})
    verify.check("language:response_language", "load the model", {"language": "en"})
    spent: dict[str, float] = defaultdict(float)
    t_all = time.perf_counter()
    for raw in corpus.read_bytes().splitlines()[:pairs]:
        t = time.perf_counter()
        rec = parse_line(raw)
        rec.content_id()
        spent["parse + content id"] += time.perf_counter() - t
        final = rec.messages[-1]["content"]
        for iid, kw in zip(rec.instruction_ids, rec.kwargs_list):
            t = time.perf_counter()
            verify.check(iid, final, kw)
            spent[iid] += time.perf_counter() - t
        for iid in verify.STABILITY_CHECKS:
            t = time.perf_counter()
            verify.check(iid, final, {})
            spent["stability " + iid] += time.perf_counter() - t
    return dict(spent), time.perf_counter() - t_all


def fasttext_cost(corpus: Path, pairs: int) -> tuple[float, int, int]:
    """(CPU seconds per call, calls, characters per call) of lid.176 on every final turn, the
    all-Thai shortcut bypassed: what language ID would cost if every pair asked the model."""
    from siamgpt_jax.corpus import langid
    from siamgpt_jax.corpus.script import strip_code_and_urls

    texts = [strip_code_and_urls(json.loads(raw)["messages"][-1]["content"]) for raw in corpus.read_bytes().splitlines()[:pairs]]
    detector = langid._detector()
    detector.detect(texts[0], model="lite", k=1)
    t = time.process_time()  # CPU time: the model call is all CPU, and the box may be shared
    for text in texts:
        detector.detect(text, model="lite", k=1)
    return (time.process_time() - t) / len(texts), len(texts), sum(map(len, texts)) // len(texts)


def crf_ratio(corpus: Path, lines: int = 300) -> tuple[float, float, int]:
    """Seconds for pythainlp crfcut.segment and crf_sentences.segment on the same Thai lines."""
    from pythainlp.tokenize import crfcut

    from siamgpt_jax.corpus import crf_sentences
    from siamgpt_jax.corpus.script import is_thai_text

    todo: list[str] = []
    for raw in corpus.read_text(encoding="utf-8").splitlines():
        todo += [ln.strip() for ln in json.loads(raw)["messages"][-1]["content"].splitlines() if ln.strip() and is_thai_text(ln)]
        if len(todo) >= lines:
            break
    crf_sentences.segment(todo[0]), crfcut.segment(todo[0])
    t = time.perf_counter()
    ref = [crfcut.segment(ln) for ln in todo]
    t_ref = time.perf_counter() - t
    t = time.perf_counter()
    new = [crf_sentences.segment(ln) for ln in todo]
    t_new = time.perf_counter() - t
    if new != ref:
        raise SystemExit("crf_sentences disagrees with crfcut on the benchmark corpus")
    return t_ref, t_new, len(todo)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--baseline", default=None, metavar="REF", help="git ref whose siamgpt_jax to time side by side")
    ap.add_argument("--repeat", type=int, default=1, help="1-worker runs of each tree, alternating; the fastest of each counts")
    args = ap.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = tmp / "synthetic_th.jsonl"
        make_corpus(corpus, args.pairs)
        old_tree = None
        if args.baseline:
            old_tree = tmp / "baseline"
            old_tree.mkdir()
            extract_package(args.baseline, old_tree)
        new_runs, old_runs = [], []
        for _ in range(max(1, args.repeat)):
            new_runs.append(timed(ROOT, corpus, tmp / "new", 1))
            if old_tree is not None:
                old_runs.append(timed(old_tree, corpus, tmp / "old", 1))
        if old_tree is not None:
            same = same_outputs(tmp / "old", tmp / "new")
        t_all, c_all = timed(ROOT, corpus, tmp / "all", args.workers)
        with_tokens = timed(ROOT, corpus, tmp / "tok", args.workers, tokens=True)
        spent, t_checks = per_check(corpus, min(args.pairs, 2000))
        t_crf_ref, t_crf_new, n_lines = crf_ratio(corpus)
        t_ft, n_ft, chars_ft = fasttext_cost(corpus, min(args.pairs, 2000))
    n = args.pairs
    t_new, c_new = min(r[0] for r in new_runs), min(r[1] for r in new_runs)
    print(f"pairs: {n}  cores used in the all-cores run: {args.workers}  1-worker runs per tree: {len(new_runs)} (fastest counts)")
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}  after: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"1 worker, this checkout : {t_new:7.2f} s wall {n / t_new:8.0f} pairs/s/core | {c_new:6.2f} s CPU {n / c_new:8.0f} pairs/CPU-s")
    if old_runs:
        t_old, c_old = min(r[0] for r in old_runs), min(r[1] for r in old_runs)
        print(f"1 worker, {args.baseline:<14}: {t_old:7.2f} s wall {n / t_old:8.0f} pairs/s/core | {c_old:6.2f} s CPU {n / c_old:8.0f} pairs/CPU-s")
        print(f"speed-up over {args.baseline}: x{t_old / t_new:.2f} wall, x{c_old / c_new:.2f} CPU; outputs identical: {same}")
    print(f"{args.workers} workers             : {t_all:7.2f} s  {n / t_all:8.0f} pairs/s       (scaling x{t_new / t_all:.2f} over 1 worker)")
    nt, ts, tc = with_tokens["tokens"], with_tokens["seconds"] - t_all, with_tokens["cpu_seconds"] - c_all
    print(f"{args.workers} workers + token stage: {with_tokens['seconds']:7.2f} s  {n / with_tokens['seconds']:8.0f} pairs/s       "
          f"(token stage ~{ts:.2f} s wall, ~{tc:.2f} CPU-s: {nt:,} Qwen3 tokens of the verified records, "
          f"{nt / max(tc, 1e-9):,.0f} tokens/CPU-s, {n / max(tc, 1e-9):,.0f} pairs/CPU-s)")
    print(f"crfcut vs crf_sentences on {n_lines} Thai lines: {1e3 * t_crf_ref / n_lines:.2f} vs {1e3 * t_crf_new / n_lines:.3f} ms/line (x{t_crf_ref / t_crf_new:.1f}), identical output")
    print(f"fastText lid.176 on every final turn, shortcut bypassed: {1e6 * t_ft:.0f} us CPU/call over {n_ft} turns of ~{chars_ft} chars;"
          f" one model call per pair would give {1 / (c_new / n + t_ft):.0f} pairs/CPU-s")
    print(f"where the time goes (in-process, first {min(n, 2000)} pairs, {t_checks:.2f} s):")
    for name, sec in sorted(spent.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {name:48s} {100 * sec / t_checks:5.1f}%")
    return 0 if not old_runs or same else 1


if __name__ == "__main__":
    sys.exit(main())
