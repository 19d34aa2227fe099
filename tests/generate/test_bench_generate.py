"""The generation benchmark and the GPU check's decode step run on CPU at a tiny size (fresh
interpreters, as a user runs them). No timing is asserted: only that they work and report."""

import pytest

from tests.train.test_bench_scripts import NOT_ON_THE_GPU_MACHINE, _json_lines, _run


@pytest.mark.slow
def test_bench_generate_runs_and_reports_ratios():
    proc = _run(["scripts/bench/cpu/bench_generate.py", "--layers", "1", "--hidden", "32", "--intermediate", "64", "--heads", "4",
                 "--kv-heads", "2", "--head-dim", "8", "--vocab", "97", "--batch", "2", "--prompt", "8", "--new", "6",
                 "--chunk", "4", "--reps", "1"], xla_flags=None, timeout=300)
    (row,) = _json_lines(proc.stdout)
    assert row["prefill_ours_over_hf"] > 0 and row["decode_ours_over_hf"] > 0
    assert row["greedy_tokens_agreeing_per_row"] == [6, 6]  # same weights, same greedy tokens
    assert "decode" in proc.stdout.splitlines()[-1]


@pytest.mark.slow
def test_gpu_check_decode_runs_on_cpu_at_tiny_size_without_the_data_packages(tmp_path):
    proc = _run(["scripts/gpu_check.py", "--decode", "--preset", "qwen3-tiny", "--batch", "2", "--prompt-len", "16",
                 "--new-tokens", "8", "--steps", "1", "--dtype", "float32", "--decode-chunk", "4",
                 "--peak-hbm-gbs", "100", "--json", str(tmp_path / "decode.jsonl")],
                xla_flags=None, timeout=300, hide=NOT_ON_THE_GPU_MACHINE, tmp_path=tmp_path)
    (out,) = _json_lines(proc.stdout)
    assert "error" not in out, out.get("error")
    assert out["decode_tokens_per_s"] > 0 and out["prefill_tokens_per_s"] > 0
    assert 0 < out["hbm_fraction"] and out["bytes_per_step_gb"] > 0
    assert (tmp_path / "decode.jsonl").read_text().strip() == proc.stdout.strip().splitlines()[-1]


def test_gpu_check_decode_reports_a_failure_and_exits_cleanly(tmp_path):
    proc = _run(["scripts/gpu_check.py", "--decode", "--preset", "no-such-model"], xla_flags=None, timeout=120)
    (out,) = _json_lines(proc.stdout)
    assert out["check"] == "decode" and "no-such-model" in out["error"]
