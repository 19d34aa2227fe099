import json

import pytest

from siamgpt_jax.cli import main
from siamgpt_jax.parallel.cli import parse_layout


def test_mesh_plan_writes_table_json_and_png(tmp_path, capsys):
    out_json, out_png = tmp_path / "plan.json", tmp_path / "plan.png"
    rc = main(["mesh", "plan", "--model", "qwen3-0.6b", "--devices", "16", "--hosts", "2",
               "--device-memory", "24GiB", "--seq-len", "2048", "--global-batch", "32",
               "--json", str(out_json), "--plot", str(out_png), "--top", "5"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "layout" in text and "all-gather" in text and "more (--top" in text
    data = json.loads(out_json.read_text())
    assert data["devices"] == 16 and len(data["plans"]) > 5
    first = data["plans"][0]
    assert set(first["memory_bytes"]) >= {"params", "grads", "optimizer", "activations", "logits", "total"}
    assert set(first["collective_bytes_by_kind"]) == {"all-gather", "reduce-scatter", "all-reduce", "collective-permute"}
    png = out_png.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert not list(tmp_path.glob("*.tmp*"))


def test_mesh_plan_single_layout_and_errors(capsys):
    assert main(["mesh", "plan", "--model", "qwen3-0.6b", "--devices", "8", "--seq-len", "128",
                 "--global-batch", "8", "--layout", "data=2,fsdp=4"]) == 0
    assert "d2 f4" in capsys.readouterr().out
    assert main(["mesh", "plan", "--model", "qwen3-0.6b", "--devices", "8", "--layout", "data=3"]) == 2
    assert "multiply to 3" in capsys.readouterr().err
    assert main(["mesh", "plan", "--model", "qwen3-32", "--devices", "8"]) == 2
    assert "did you mean" in capsys.readouterr().err


def test_parse_layout():
    cfg = parse_layout("fsdp=8,dcn.data=-1")
    assert (cfg.data, cfg.fsdp, cfg.dcn) == (-1, 8, {"data": -1})
    with pytest.raises(SystemExit, match="did you mean 'fsdp'"):
        parse_layout("fsdq=8")
