import json

import pytest

from siamgpt_jax.cli import main
from siamgpt_jax.layout.cli import parse_layout


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


def test_mesh_bench_times_the_real_train_step(tmp_path, capsys):
    out_json = tmp_path / "bench.json"
    rc = main(["mesh", "bench", "--model", "qwen3-tiny", "--model-override", "vocab_size=256",
               "--model-override", "num_hidden_layers=2", "--seq-len", "16", "--global-batch", "8",
               "--param-dtype", "float32", "--compute-dtype", "float32", "--attention", "xla", "--remat", "none",
               "--layout", "data=8", "--layout", "data=2,fsdp=4", "--steps", "1", "--warmup", "0",
               "--json", str(out_json)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "s/step" in text and "of fastest" in text
    rows = json.loads(out_json.read_text())
    assert [(r["mesh"]["data"], r["mesh"]["fsdp"]) for r in rows] == [(8, 1), (2, 4)]
    assert all(r["median_step_s"] > 0 for r in rows) and min(r["relative_to_fastest"] for r in rows) == 1.0
    # the SFT step's own metrics: a cross-entropy near ln(256) over all 8 x 16 tokens, on both layouts
    for r in rows:
        m = r["last_metrics"]
        assert m["loss_tokens"] == 8 * 16 and abs(m["loss"] - 5.545) < 0.5 and m["grad_norm"] > 0
    assert rows[0]["last_metrics"]["loss"] == pytest.approx(rows[1]["last_metrics"]["loss"], rel=1e-5)


def test_mesh_compile_prints_xla_and_planner_figures_and_the_cpu_bf16_caveat(capsys):
    common = ["mesh", "compile", "--model", "qwen3-tiny", "--model-override", "vocab_size=256",
              "--model-override", "num_hidden_layers=2", "--devices", "8", "--layout", "data=2,fsdp=4",
              "--seq-len", "16", "--global-batch", "8", "--param-dtype", "float32", "--attention", "xla"]
    assert main(common + ["--compute-dtype", "float32"]) == 0
    text = capsys.readouterr().out
    assert "XLA    : args" in text and "planner/XLA =" in text and "note: XLA:CPU" not in text
    assert main(common + ["--compute-dtype", "bfloat16"]) == 0
    assert "note: XLA:CPU keeps fp32 copies of bfloat16 activations" in capsys.readouterr().out
