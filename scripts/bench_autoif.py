#!/usr/bin/env python3
"""AutoIF pipeline overhead per kept pair, with no LLM time: every answer comes from the request cache.

A synthetic teacher's answers (valid Thai instructions, verification functions with test cases,
consistent back-translations, passing Thai responses, good scores) are put in the cache first;
then the whole pipeline runs in replay mode and the wall time is divided by the pairs it kept.
That time is the project's own work: parsing, deduplication, sandboxed cross-validation and
response checks, the Thai stability checks, and the files it writes.

    python3 scripts/bench_autoif.py --seeds 39 --samples 2 --queries 4
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from siamgpt_jax import config as config_lib  # noqa: E402
from siamgpt_jax.autoif.cache import RequestCache  # noqa: E402
from siamgpt_jax.autoif.config import AutoIFConfig  # noqa: E402
from siamgpt_jax.autoif.pipeline import run_autoif  # noqa: E402

MODEL = "synthetic-teacher"
WORDS = ["แม่น้ำ", "ภูเขา", "ตลาด", "โรงเรียน", "ทะเล", "สวน", "ห้องสมุด", "สถานี", "วัด", "ร้านกาแฟ"]


def answer(request) -> str:
    text = request.messages[-1]["content"]
    if "จงเขียนคำสั่งใหม่" in text:
        s = request.sampling.seed
        return "\n".join(f"- ตอบโดยกล่าวถึง{WORDS[(s + i) % 10]}และ{WORDS[(s + 3 * i + 1) % 10]}ให้ชัดเจน"
                         for i in range(10))
    if "ฟังก์ชัน Python ต่อไปนี้" in text:
        return "ตอบโดยมีคำว่าไทยอยู่ในคำตอบ"
    if "evaluate(response)" in text:
        k = request.sampling.seed % 104729
        funcs = ["def evaluate(response):\n    return 'ไทย' in response\n",
                 "def evaluate(response):\n    return response.find('ไทย') >= 0\n",
                 "import re\ndef evaluate(response):\n    return re.search('ไทย', response) is not None\n"]
        cases = [{"input": f"ประเทศไทย {i}", "output": True} for i in range(5)]
        cases += [{"input": f"ประเทศลาว {i}", "output": False} for i in range(5)]
        return "```json\n" + json.dumps({"func": funcs[k % 3], "cases": cases}, ensure_ascii=False) + "\n```"
    if "คำสั่งสองข้อนี้" in text:
        return "สอดคล้องกัน [[ใช่]]"
    if "ให้คะแนนคุณภาพ" in text:
        return "ดีมาก\nคะแนน: 9"
    k = request.sampling.seed % 1_000_003
    return f"คำตอบนี้เขียนเป็นภาษาไทยล้วนเพื่อทดสอบระบบ ฉบับที่ {k} เล่าเรื่องประเทศไทยอย่างกระชับและชัดเจน"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=39, help="how many of the shipped seeds to start from")
    p.add_argument("--queries", type=int, default=4, help="queries per instruction")
    p.add_argument("--samples", type=int, default=2, help="responses per prompt")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        seeds = Path(tmp) / "seeds.jsonl"
        seeds.write_text("".join(Path("data/autoif/seeds_th.jsonl").read_text(encoding="utf-8")
                                 .splitlines(keepends=True)[:args.seeds]), encoding="utf-8")
        cfg = config_lib.from_dict(AutoIFConfig, {
            "out_dir": f"{tmp}/out", "seeds": str(seeds), "mode": "functions", "model": MODEL, "replay": True,
            "augment_requests": 2, "queries_per_instruction": args.queries, "samples_per_prompt": args.samples,
            "quality_scoring": True})
        out = Path(cfg.out_dir)
        for _ in range(10):  # fill the cache stage by stage (later questions depend on earlier answers)
            for f in out.glob("[0-9]*"):
                f.unlink()
            result = run_autoif(cfg, None, progress=False, log=lambda s: None)
            if not result.missed:
                break
            cache = RequestCache(out / "request_cache.jsonl")
            for req in result.missed:
                cache.put(MODEL, req, answer(req))
        for f in out.glob("[0-9]*"):
            f.unlink()
        t = time.perf_counter()
        result = run_autoif(cfg, None, progress=False, log=lambda s: None)
        dt = time.perf_counter() - t
    r = result.report
    row = {"pairs": r["pairs"], "seconds": round(dt, 2), "ms_per_kept_pair": round(1000 * dt / max(1, r["pairs"]), 1),
           "cache_hits": r["cache"]["hits"], "stage_seconds": {s["stage"]: s["seconds"] for s in r["stages"]}}
    print(json.dumps(row, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
