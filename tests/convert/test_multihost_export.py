"""export on a mesh spanning 2 processes: both take part in the per-layer gathers, process 0 writes."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.numpy as stn

from siamgpt_jax.testing import TINY_HF as TINY, make_hf_model, save_hf_model

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _weights(folder):
    out = {}
    for f in folder.glob("*.safetensors"):
        out.update(stn.load_file(str(f)))
    return out


@pytest.mark.slow
def test_two_process_export_gathers_each_tensor_and_process_0_writes(tmp_path):
    save_hf_model(make_hf_model(seed=12, **TINY["gqa4_untied"]), tmp_path / "hf")
    coord = f"127.0.0.1:{_free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMPI_"))}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    worker = Path(__file__).with_name("two_process_export_worker.py")
    procs = [subprocess.Popen([sys.executable, str(worker), coord, str(i), str(tmp_path / "hf"), str(tmp_path / "out")],
                              env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    results = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert [r["process_index"] for r in results] == [0, 1]
    assert not any(r["fully_addressable"] for r in results)  # params really were split across processes
    a, b = _weights(tmp_path / "hf"), _weights(tmp_path / "out")
    assert sorted(a) == sorted(b) and all(a[k].tobytes() == b[k].tobytes() for k in a)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "out"]  # one writer, no stray temp folders
