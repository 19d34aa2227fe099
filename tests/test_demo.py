"""The README's main command, end to end (shortened): verify -> train -> checkpoint -> export -> reload."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_demo_runs_end_to_end_and_the_loss_falls(tmp_path):
    run_dir = tmp_path / "demo"
    env = dict(os.environ, PYTHONPATH=str(REPO), XLA_FLAGS="--xla_force_host_platform_device_count=1")
    out = subprocess.run(
        [sys.executable, "-m", "siamgpt_jax.cli", "demo", "--no-progress", f"run_dir={run_dir}",
         "train.steps=24", "train.eval_every=12", "checkpoint.every=12"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "loss " in out.stdout and "WARNING" not in out.stdout
    report = json.loads((run_dir / "verified" / "report.json").read_text())
    assert report["verified"] > 50 and report["rejected"] > 0
    rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and rows[-1]["loss"] < 0.8 * rows[0]["loss"]
    assert (run_dir / "hf" / "config.json").exists() and (run_dir / "hf" / "tokenizer.json").exists()
    assert (run_dir / "loss.png").stat().st_size > 10_000
    assert (run_dir / "checkpoints" / "24").is_dir()
    assert "max |logit diff|" in out.stdout
    # the generation step answered from the trained run folder, and said its text is noise
    assert "the text below is noise" in out.stdout and "generation      2 prompts answered" in out.stdout
    assert out.stdout.count("  answer  ") == 2
