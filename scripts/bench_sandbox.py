#!/usr/bin/env python3
"""Sandbox throughput: verification-function x test-case executions per second, on one core.

Typical AutoIF functions (keyword, length and format checks written as plain Python) run on Thai
test cases in bubblewrap, batch by batch, each function in its own forked child. The figure is
executions / wall second with the process pinned to one core, for a few batch sizes, beside the same
functions called in-process (no isolation at all) to show what the isolation costs.

    taskset -c 0 python3 scripts/bench_sandbox.py --functions 400 --cases 10
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from siamgpt_jax.autoif.sandbox import FunctionJob, Sandbox, SandboxLimits  # noqa: E402

TEMPLATES = [
    "def evaluate(response):\n    return {kw!r} in response\n",
    "def evaluate(response):\n    return len(response) <= {n}\n",
    "import re\ndef evaluate(response):\n    return len(re.findall(r'^\\s*[-*] ', response, re.M)) == {k}\n",
    "def evaluate(response):\n    return response.strip().endswith({kw!r})\n",
    "import json\ndef evaluate(response):\n    try:\n        json.loads(response)\n        return True\n"
    "    except ValueError:\n        return False\n",
]
CASES = ["ประเทศไทยมีจังหวัดทั้งหมด 77 จังหวัด", "- ข้อหนึ่ง\n- ข้อสอง\n- ข้อสาม", '{"คำตอบ": "ใช่"}',
         "ขอบคุณครับ", "การเดินทางไปเชียงใหม่ใช้เวลาประมาณสิบชั่วโมงโดยรถไฟ"]


def make_jobs(n: int, cases: int) -> list[FunctionJob]:
    return [FunctionJob(TEMPLATES[i % len(TEMPLATES)].format(kw="ครับ", n=20 + i % 50, k=i % 4),
                        tuple(CASES[(i + j) % len(CASES)] + str(j) for j in range(cases))) for i in range(n)]


def in_process(jobs) -> float:
    t = time.perf_counter()
    for job in jobs:
        ns: dict = {}
        exec(compile(job.code, "<bench>", "exec"), ns)  # noqa: S102 - the benchmark's own functions
        for case in job.cases:
            ns["evaluate"](case)
    return time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--functions", type=int, default=400)
    p.add_argument("--cases", type=int, default=10)
    p.add_argument("--batch-sizes", default="16,64,256")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    jobs = make_jobs(args.functions, args.cases)
    executions = args.functions * args.cases
    rows = []
    for size in (int(s) for s in args.batch_sizes.split(",")):
        sandbox = Sandbox(SandboxLimits(batch_size=size))
        t = time.perf_counter()
        results = sandbox.run(jobs)
        dt = time.perf_counter() - t
        errors = sum(r.error is not None for rs in results for r in rs)
        rows.append({"batch_size": size, "executions": executions, "seconds": round(dt, 3),
                     "executions_per_s": round(executions / dt), "errors": errors,
                     "sandbox_processes": sandbox.batches_run})
        print(json.dumps(rows[-1]), flush=True)
    dt = in_process(jobs)
    rows.append({"in_process_executions_per_s": round(executions / dt)})
    print(json.dumps(rows[-1]))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
