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


def test_mesh_plan_of_a_config_is_what_train_runs_and_the_32b_config_fits(tmp_path, capsys):
    from siamgpt_jax.layout.planner import GPU_MEMORY_FRACTION

    out_json = tmp_path / "plan.json"
    assert main(["mesh", "plan", "--config", "configs/qwen3-32b-sft.yaml", "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    data = json.loads(out_json.read_text())
    w = data["step"]
    # the config's own step spec, mesh and device count, not the command's defaults
    assert (w["seq_len"], w["global_batch"], w["micro_batches"]) == (4096, 128, 1)
    assert (w["remat"], w["attention"], w["loss_chunk"], w["param_dtype"], w["compute_dtype"]) == (
        "full", "auto", 1024, "float32", "bfloat16")
    assert (data["devices"], data["hosts"]) == (64, 8) and len(data["plans"]) == 1
    plan = data["plans"][0]
    assert (plan["mesh"]["data"], plan["mesh"]["fsdp"], plan["mesh"]["tensor"]) == (4, 8, 2)
    # the budget is the GPU's memory x the fraction `train` gives XLA; the shipped config keeps a margin
    budget = 80 * 2**30 * GPU_MEMORY_FRACTION
    assert data["hardware"]["memory_fraction"] == GPU_MEMORY_FRACTION == 0.92
    margin_gib = 4
    assert plan["fits"] and plan["memory_bytes"]["total"] <= budget - margin_gib * 2**30, plan["memory_bytes"]
    assert "margin" in text and "budget 73.6 GiB" in text


def test_one_list_of_attention_and_remat_names_for_every_command():
    import argparse
    import typing

    from siamgpt_jax.model.config import ATTENTION_NAMES, REMAT_NAMES, Attention, Kernels, Remat
    from siamgpt_jax.layout import cli as mesh_cli
    from siamgpt_jax.train.config import ModelConfig

    parser = argparse.ArgumentParser()
    mesh_cli.add_arguments(parser)
    for action in ("plan", "compile", "bench"):
        sub = parser._subparsers._group_actions[0].choices[action]
        opts = {a.dest: a for a in sub._actions}
        assert tuple(opts["attention"].choices) == ATTENTION_NAMES and tuple(opts["remat"].choices) == REMAT_NAMES
    hints = typing.get_type_hints(ModelConfig)
    assert hints["attention"] is Attention and hints["remat"] is Remat and hints["kernels"] is Kernels
    assert ATTENTION_NAMES == tuple(Attention) and REMAT_NAMES == tuple(Remat)


def test_every_step_choice_has_one_default_the_config_and_mesh_read():
    """train's config sections take their step defaults from StepSpec, and `mesh` plans a config's
    step spec field for field (flags win)."""
    from siamgpt_jax.layout import cli as mesh_cli
    from siamgpt_jax.train.config import JobConfig
    from siamgpt_jax.train.spec import StepSpec

    job = JobConfig()
    assert job.step_spec() == StepSpec(seq_len=job.data.seq_len, global_batch=job.train.global_batch)
    import argparse

    parser = argparse.ArgumentParser()
    mesh_cli.add_arguments(parser)
    args = parser.parse_args(["plan", "--config", "configs/qwen3-32b-sft.yaml", "--loss-chunk", "512",
                              "--remat", "dots"])
    mesh_cli._apply_config(args)
    from siamgpt_jax.train.config import load_job_config

    assert args.spec == load_job_config("configs/qwen3-32b-sft.yaml").step_spec().replace(loss_chunk=512, remat="dots")


def test_mesh_compile_and_bench_work_with_their_defaults(capsys):
    tiny = ["--model", "qwen3-tiny", "--model-override", "vocab_size=256", "--model-override", "num_hidden_layers=1",
            "--seq-len", "16", "--global-batch", "8", "--layout", "data=8"]
    assert main(["mesh", "compile", *tiny]) == 0, capsys.readouterr().err
    assert main(["mesh", "bench", *tiny, "--steps", "1", "--warmup", "0"]) == 0, capsys.readouterr().err
    assert "s/step" in capsys.readouterr().out
