"""Kill the trainer with SIGKILL at random points, resume each time, and end bit-identical to a run
that was never interrupted: the same final state (every array, bit for bit), the same data-loader
state and the same metrics.jsonl rows (timings aside, which no two runs share).

The kill points are drawn from a seeded generator: the step after which to kill, then a delay of up
to a step's time, so kills land inside steps, async checkpoint writes and manifest writes alike.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests.train.test_loop import REPO, _overrides, corpus  # noqa: F401 (corpus is a fixture)

STEPS = 8
KILLS = 3
TIMING_KEYS = {"step_time_s", "tokens_per_s", "mfu"}


def _command(run_dir: Path, corpus: Path, *flags: str) -> list[str]:
    overrides = _overrides(run_dir, corpus, **{"train.steps": STEPS, "checkpoint.every": 1, "checkpoint.keep": 3})
    return [sys.executable, "-m", "siamgpt_jax.cli", "train", "--config", str(REPO / "configs" / "demo.yaml"),
            "--no-progress", *overrides, *flags]


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), XLA_FLAGS="--xla_force_host_platform_device_count=1")


def _logged_step(run_dir: Path) -> int:
    try:
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    steps = [json.loads(line)["step"] for line in lines if line.endswith("}")]
    return max(steps, default=0)


def _final(run_dir: Path):
    step_dir = run_dir / "checkpoints" / str(STEPS)
    manifest = json.loads((step_dir / "manifest.json").read_text())
    with ocp.StandardCheckpointer() as ckptr:
        state = ckptr.restore(step_dir / "state")
    rows = [{k: v for k, v in json.loads(line).items() if k not in TIMING_KEYS}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    data = json.loads((step_dir / "data" / "metadata").read_text()) if (step_dir / "data" / "metadata").is_file() else None
    return manifest, state, rows, data


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_is_bit_identical(tmp_path, corpus):
    straight = subprocess.run(_command(tmp_path / "straight", corpus), env=_env(), capture_output=True, text=True,
                              timeout=600)
    assert straight.returncode == 0, straight.stderr[-3000:]

    rng = random.Random(20261206)
    run_dir = tmp_path / "killed"
    kills = 0
    for attempt in range(KILLS):
        flags = ("--resume",) if attempt else ()
        proc = subprocess.Popen(_command(run_dir, corpus, *flags), env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        after = _logged_step(run_dir) + rng.randint(1, 2)  # the step whose row must appear first
        delay = rng.uniform(0.0, 0.4)
        deadline = time.time() + 300
        while proc.poll() is None and _logged_step(run_dir) < after and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        _, err = proc.communicate(timeout=60)
        assert proc.returncode in (0, -signal.SIGKILL), err[-3000:]
    resumed = subprocess.run(_command(run_dir, corpus, "--resume"), env=_env(), capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert kills >= 2  # the test really interrupted the run

    want_manifest, want_state, want_rows, want_data = _final(tmp_path / "straight")
    got_manifest, got_state, got_rows, got_data = _final(run_dir)
    assert got_manifest["arrays"] == want_manifest["arrays"]
    assert got_manifest["data_sha256"] == want_manifest["data_sha256"]  # loader position and record counts
    assert got_data == want_data
    flat_want = dict(_flatten(want_state))
    flat_got = dict(_flatten(got_state))
    assert flat_want.keys() == flat_got.keys() and flat_want
    for key, want in flat_want.items():
        np.testing.assert_array_equal(np.asarray(flat_got[key]), np.asarray(want), err_msg=key)
    assert [r["step"] for r in got_rows] == list(range(1, STEPS + 1))
    assert got_rows == want_rows


def _flatten(tree, prefix=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _flatten(v, f"{prefix}/{k}")
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from _flatten(v, f"{prefix}/{i}")
    else:
        yield prefix, tree
