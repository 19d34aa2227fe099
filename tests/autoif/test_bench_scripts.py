"""The AutoIF benchmarks run end to end at a tiny size (their figures live in the README)."""

import json
import subprocess
import sys


def _run(*args):
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_bench_sandbox_counts_every_execution():
    rows = _run("scripts/bench_sandbox.py", "--functions", "20", "--cases", "3", "--batch-sizes", "8")
    assert rows[0]["executions"] == 60 and rows[0]["errors"] == 0 and rows[0]["sandbox_processes"] == 3
    assert rows[1]["in_process_executions_per_s"] > 0


def test_bench_autoif_keeps_every_synthetic_pair_from_the_cache():
    (row,) = _run("scripts/bench_autoif.py", "--seeds", "3", "--queries", "1", "--samples", "1")
    assert row["pairs"] > 0 and row["ms_per_kept_pair"] > 0 and row["cache_hits"] > 0
