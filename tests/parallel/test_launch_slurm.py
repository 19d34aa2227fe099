"""scripts/launch_multihost_slurm.sh, run for real under a fake `srun`: 2 local processes, CPU devices.

The fake srun (first on PATH) starts one copy of the command per task with the variables SLURM sets
(SLURM_PROCID, SLURM_NTASKS, SLURM_JOB_NODELIST, SLURM_JOB_ID), the node list naming this machine.
So `siamgpt_jax.parallel.distributed.initialize()` takes the SLURM path, both processes join one
job through gloo, and a tiny training run (configs/demo.yaml, small overrides) finishes on both.
"""

import json
import os
import shlex
import socket
import stat
import subprocess
import sys
from pathlib import Path

from siamgpt_jax.loader.synthetic import write_corpus

REPO = Path(__file__).resolve().parents[2]
STEPS = 2

# Starts $FAKE_SRUN_NTASKS copies of its command (srun's own --options are dropped), each with the
# SLURM variables of its task; exits with the first non-zero status, like --kill-on-bad-exit.
FAKE_SRUN = """#!/usr/bin/env bash
set -u
while [[ $# -gt 0 && $1 == --* ]]; do shift; done
n=${FAKE_SRUN_NTASKS:?}
pids=()
for ((i = 0; i < n; i++)); do
  SLURM_PROCID=$i SLURM_NTASKS=$n SLURM_JOB_NODELIST=127.0.0.1 SLURM_JOB_ID=4242 \\
    "$@" > "$FAKE_SRUN_LOGS/task$i.out" 2> "$FAKE_SRUN_LOGS/task$i.err" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || { status=$?; kill "${pids[@]}" 2>/dev/null; }
done
exit $status
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_slurm_launch_script_trains_on_two_processes(tmp_path):
    bin_dir, logs, run_dir = tmp_path / "bin", tmp_path / "logs", tmp_path / "run"
    bin_dir.mkdir()
    logs.mkdir()
    _executable(bin_dir / "srun", FAKE_SRUN)
    corpus = write_corpus(tmp_path / "verified.jsonl", 32, seed=3, scale=0.3)
    # the CLI entry point of this interpreter (the test may run from a venv that is not on PATH)
    _executable(bin_dir / "siamgpt-jax", f'#!/usr/bin/env bash\nexec {shlex.quote(sys.executable)} -m siamgpt_jax.cli "$@"\n')

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMPI_", "JAX_"))}
    env.update({
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
        "FAKE_SRUN_NTASKS": "2",
        "FAKE_SRUN_LOGS": str(logs),
        "SIAMGPT_COORDINATOR_PORT": str(_free_port()),
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=0",
        "PYTHAINLP_OFFLINE": "1",
        "CONFIG": str(REPO / "configs/demo.yaml"),
        # data spans the 2 "hosts", FSDP the 2 CPU devices inside each (the 8x8 layout in miniature)
        "MESH": "mesh.fsdp=2 mesh.dcn.data=-1",
        "TRAIN_FLAGS": "--no-progress",
    })
    overrides = {
        "run_dir": run_dir,
        # the real Qwen3 vocabulary (the tokenizer needs it) on a tiny body
        "model.overrides": "{hidden_size: 32, intermediate_size: 64, num_attention_heads: 4, "
                           "num_key_value_heads: 2, head_dim: 8, num_hidden_layers: 1}",
        "model.attention": "xla",
        # a verified-format corpus from the shipped generator (data/samples holds raw and broken
        # lines on purpose: they are the verifier's input)
        "data.sources": f"[{{path: {corpus}, weight: 1.0}}]",
        "data.seq_len": 128,
        "train.steps": STEPS,
        "train.global_batch": 4,
        "train.loss_chunk": 128,
        "train.eval_every": 0,
        "checkpoint.every": 100,
    }
    cmd = ["bash", str(REPO / "scripts/launch_multihost_slurm.sh"), *(f"{k}={v}" for k, v in overrides.items())]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=240)
    outs = [(logs / f"task{i}.out").read_text() for i in range(2)]
    errs = [(logs / f"task{i}.err").read_text() for i in range(2)]
    assert proc.returncode == 0, f"{proc.stderr[-2000:]}\n--- task0\n{errs[0][-3000:]}\n--- task1\n{errs[1][-3000:]}"

    # both processes finished the run; the chief alone wrote the metrics, for the 2-process job
    assert all(f"trained steps {STEPS}/{STEPS}" in o for o in outs), outs
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(1, STEPS + 1))
    assert all(m["loss_tokens"] > 0 and m["loss"] > 0 for m in metrics)
    # one job of 2 x 2 devices, not two lone processes of 2: the checkpoint's data state holds the
    # loader state of every row block of the 4-device mesh (data 2 x fsdp 2), gathered from both
    data_state = json.loads((run_dir / "checkpoints" / str(STEPS) / "data" / "metadata").read_text())
    assert data_state["num_blocks"] == 4 and sorted(data_state["blocks"]) == ["0", "1", "2", "3"]
    # the chief wrote the step's manifest, checksums of arrays sharded over both processes
    manifest = json.loads((run_dir / "checkpoints" / str(STEPS) / "manifest.json").read_text())
    assert manifest["step"] == STEPS and "params/embed" in manifest["arrays"]
