"""export on a mesh spanning 2 processes: both take part in the per-layer gathers, process 0 writes."""

from pathlib import Path

import pytest
import safetensors.numpy as stn

from siamgpt_jax.testing import TINY_HF as TINY, make_hf_model, save_hf_model
from tests.multiprocess import coordinator, last_json, start, wait_all



def _weights(folder):
    out = {}
    for f in folder.glob("*.safetensors"):
        out.update(stn.load_file(str(f)))
    return out


@pytest.mark.slow
def test_two_process_export_gathers_each_tensor_and_process_0_writes(tmp_path):
    save_hf_model(make_hf_model(seed=12, **TINY["gqa4_untied"]), tmp_path / "hf")
    coord = coordinator()
    worker = str(Path(__file__).with_name("two_process_export_worker.py"))
    procs = [start([worker, coord, str(i), str(tmp_path / "hf"), str(tmp_path / "out")]) for i in range(2)]
    results = last_json(wait_all(procs, timeout=240))
    assert [r["process_index"] for r in results] == [0, 1]
    assert not any(r["fully_addressable"] for r in results)  # params really were split across processes
    a, b = _weights(tmp_path / "hf"), _weights(tmp_path / "out")
    assert sorted(a) == sorted(b) and all(a[k].tobytes() == b[k].tobytes() for k in a)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "out"]  # one writer, no stray temp folders
