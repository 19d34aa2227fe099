"""2 processes x 4 CPU devices (gloo) train like 1 process x 8 devices: same losses, one writer.

Both runs use the same job config (data across hosts, fsdp=4 inside each); the two processes run
the real CLI (`siamgpt-jax train`, started with JAX_* variables) and share one run directory, as
hosts on a shared file system do.
"""

import json
from pathlib import Path

import pytest

from siamgpt_jax.loader.synthetic import write_corpus
from tests.multiprocess import coordinator, start, wait_all, worker_env
from siamgpt_jax.train.config import load_job_config
from siamgpt_jax.train.loop import train

REPO = Path(__file__).resolve().parents[2]
STEPS = 3


def _overrides(run_dir: Path, corpus: Path) -> list[str]:
    base = {
        "run_dir": str(run_dir),
        "model.preset": "qwen3-tiny",
        # the real Qwen3 vocabulary (the tokenizer needs it) on a tiny body
        "model.overrides": "{hidden_size: 32, intermediate_size: 64, num_attention_heads: 4, "
                           "num_key_value_heads: 2, head_dim: 8}",
        "model.dtype": "float32",
        "model.remat": "none",
        "model.attention": "xla",
        "data.sources": f"[{{path: {corpus}, weight: 1.0}}]",
        "data.seq_len": 128,
        "data.packing_bins": 8,
        "optim.learning_rate": 3e-3,
        "optim.warmup_steps": 1,
        "train.steps": STEPS,
        "train.global_batch": 8,
        "train.loss_chunk": 32,
        "checkpoint.every": 100,
        "mesh.fsdp": 4,
        "mesh.dcn": "{data: -1}",
    }
    return [f"{k}={v}" for k, v in base.items()]


def _losses(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_processes_train_like_one(tmp_path):
    corpus = write_corpus(tmp_path / "verified.jsonl", 48, seed=1, scale=0.3)

    # 2 processes x 4 devices, through the CLI
    multi_dir = tmp_path / "multi"
    coord = coordinator()
    cmd = ["-m", "siamgpt_jax.cli", "train", "--config", str(REPO / "configs/demo.yaml"), "--no-progress",
           *_overrides(multi_dir, corpus)]
    procs = [start(cmd, worker_env(XLA_FLAGS="--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0",
                                   JAX_PLATFORMS="cpu", JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(pid),
                                   JAX_COORDINATOR_ADDRESS=coord))
             for pid in range(2)]

    # 1 process x 8 devices, in this process, while the pair runs
    single_dir = tmp_path / "single"
    single = train(load_job_config(REPO / "configs/demo.yaml", _overrides(single_dir, corpus)),
                   progress=False)

    outs = wait_all(procs, timeout=400)
    assert all(f"trained steps {STEPS}/{STEPS}" in o for o in outs)

    multi = _losses(multi_dir)
    ref = _losses(single_dir)
    assert [r["step"] for r in multi] == [1, 2, 3]  # the chief alone writes metrics
    assert [r["loss"] for r in ref] == pytest.approx(single.losses, rel=0)
    for a, b in zip(multi, ref):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
        assert a["tokens"] == b["tokens"] and a["loss_tokens"] == b["loss_tokens"]  # the same global batch
    assert all(r["loss_tokens"] > 0 for r in ref)

    # one checkpoint, written together; its data state holds the loader state of all 8 row blocks
    ckpt = multi_dir / "checkpoints" / str(STEPS)
    assert {p.name for p in ckpt.iterdir()} >= {"state", "data", "config"}
    data_state = json.loads((ckpt / "data" / "metadata").read_text())
    assert data_state["num_blocks"] == 8 and sorted(data_state["blocks"]) == [str(i) for i in range(8)]
