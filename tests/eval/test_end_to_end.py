"""`siamgpt-jax eval` end to end on tiny random Qwen3s: generate, score, report, plot for two models;
resume after an interrupted write; rescore; a real `siamgpt-jax serve` of a tiny model as the judge
(its verdicts are noise, so the test recomputes every count from the saved judge outputs); a judge
endpoint that is down. Short prompt files keep every request in one or two compiled shapes."""

from __future__ import annotations

import json
import shutil

import pytest

from siamgpt_jax.cli import main
from siamgpt_jax.eval import judge
from tests.generate.helpers import tiny_hf_folder
from tests.generate.http_helpers import closed_port, free_port, serve_subprocess

N = 3  # prompts per set (conversations have two turns)
COMMON = ["--max-new-tokens", "6", "--max-len", "512", "--batch-size", "4"]


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval_sets")
    ifeval = _write(d / "ifeval.jsonl", [
        {"id": 1, "prompts": [{"text": "เขียนเรื่องแมวสั้น ๆ"}], "metadata": {"subcategory": "startend:first_word"}, "kwargs": [{"first_word": "แมว"}]},
        {"id": 2, "prompts": [{"text": "ตอบเป็นภาษาพม่า"}], "metadata": {"subcategory": "language:response_language"}, "kwargs": [{"response_language": "my"}]},
        {"key": 3, "prompt": "เขียนกลอนเรื่องฝน", "instruction_id_list": ["punctuation:no_comma", "keywords:existence"], "kwargs": [{}, {"keywords": ["ฝน"]}]},
    ])
    stab = _write(d / "stab.jsonl", [{"id": f"s{i}", "topic": t, "prompt": p} for i, (t, p) in enumerate(
        [("technology", "อธิบาย API สั้น ๆ"), ("finance", "หุ้นคืออะไร"), ("medicine", "ไข้หวัดรักษาอย่างไร")])])
    mt = _write(d / "mt.jsonl", [{"question_id": f"q{i}", "prompts": [{"text": a}, {"text": b}], "metadata": {"category": c},
                                  "baselines": {"ref": ["คำตอบแรก", "คำตอบที่สอง"]}}
                                 for i, (c, a, b) in enumerate([("writing", "เขียนกลอน", "สั้นลง"), ("math", "สองบวกสาม", "คูณสอง"),
                                                                ("stem", "ทำไมฟ้าสีฟ้า", "ตอนเย็นล่ะ")])])
    return ["--ifeval-file", str(ifeval), "--stability-file", str(stab), "--multi-turn-file", str(mt)]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_models")
    return [tiny_hf_folder(root / name, seed=seed, num_hidden_layers=2, max_position_embeddings=512)
            for name, seed in (("base", 0), ("tuned", 1))]


@pytest.fixture(scope="module")
def evaluated(models, sets, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval_run") / "ev"
    args = ["eval", "--model", str(models[0]), "--model", f"ft={models[1]}", "--out", str(out), *sets, *COMMON]
    assert main(args) == 0
    return out, args, json.loads((out / "report.json").read_text(encoding="utf-8"))


def _lines(path):
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]


def _copy(evaluated, tmp_path):
    out, args, rep = evaluated
    new = tmp_path / "ev"
    shutil.copytree(out, new)
    return new, [str(new) if a == str(out) else a for a in args], rep


def test_generate_score_report_plot(evaluated):
    out, _, rep = evaluated
    assert [m["label"] for m in rep["models"]] == ["base", "ft"]
    assert rep["settings"]["sampling"]["temperature"] == 0.0 and rep["settings"]["sampling"]["seed"] == 0
    for m in rep["models"]:
        assert m["ifeval"]["prompts"] == N and m["stability"]["prompts"] == N
        g = m["generation"]
        assert g["ifeval"]["generated"] == N and g["ifeval"]["completion_tokens"] > 0 and g["ifeval"]["tokens_per_s"] > 0
        assert g["multi_turn"]["generated"] == 2 * N
        assert m["multi_turn"]["answered"] == N and m["multi_turn"]["single"] is None  # no judge
        gens = _lines(out / "models" / m["label"] / "ifeval.jsonl")
        assert len(gens) == N and all(x["finish_reason"] in ("stop", "length") for x in gens)
        scores = _lines(out / "models" / m["label"] / "ifeval_scores.jsonl")
        assert [len(s["strict"]) for s in scores] == [1, 1, 2]
        assert len(_lines(out / "models" / m["label"] / "stability_scores.jsonl")) == N
    assert any("no judge given" in msg for msg in rep["messages"])
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "| base |" in md and "| ft |" in md and "IFEval-Th prompt strict" in md
    assert (out / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_after_interrupt_and_rescore(evaluated, tmp_path):
    out, args, rep = _copy(evaluated, tmp_path)
    before = (out / "models" / "base" / "ifeval.jsonl").read_bytes()
    path = out / "models" / "ft" / "stability.jsonl"
    data = path.read_bytes()
    cut = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: cut + 20])  # the last line half-written, as a kill mid-write leaves it
    assert main(args) == 0
    rep2 = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert rep2["models"][1]["generation"]["stability"]["generated"] == 1  # only the lost one
    assert rep2["models"][0]["generation"]["ifeval"] == {**rep2["models"][0]["generation"]["ifeval"], "generated": 0, "reused": N}
    assert (out / "models" / "base" / "ifeval.jsonl").read_bytes() == before
    assert rep2["models"][1]["stability"] == rep["models"][1]["stability"]  # greedy: the same answer again
    # --rescore never opens a model: it runs even when a model folder is gone
    gone = [a.replace(a.split("=", 1)[-1], str(tmp_path / "deleted")) if a.startswith("ft=") else a for a in args]
    assert main([*gone, "--rescore"]) == 0
    rep3 = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert [m["ifeval"] for m in rep3["models"]] == [m["ifeval"] for m in rep["models"]]


def test_pairwise_and_single_judging_against_a_real_serve(evaluated, models, tmp_path):
    out, args, _ = _copy(evaluated, tmp_path)
    port = free_port()
    with serve_subprocess(["--model", str(models[0]), "--max-len", "2048", "--max-batch", "4", "--log-level", "warning",
                           "--served-model-name", "judge"], port) as (_, url):
        jargs = [*args, "--rescore", "--tasks", "multi_turn", "--baseline", "ref", "--judge-base-url", f"{url}/v1",
                 "--judge-model", "judge", "--judge-max-tokens", "8"]
        assert main(jargs) == 0
    rep = json.loads((out / "report.json").read_text(encoding="utf-8"))
    for m in rep["models"]:
        assert m["multi_turn"]["baseline"] == "ref"  # the SEA-HELM file's baseline answers
        single = _lines(out / "models" / m["label"] / "judge_single.jsonl")
        pair = _lines(out / "models" / m["label"] / "judge_pairwise.jsonl")
        assert len(single) == 2 * N and len(pair) == 2 * 2 * N  # two turns; two orders each
        assert {r["judge_model"] for r in single + pair} == {"judge"}
        ratings = [judge.parse_rating(r["output"])[0] for r in single]
        sg = m["multi_turn"]["single"]
        assert (sg["rated"], sg["errors"]) == (sum(r is not None for r in ratings), sum(r is None for r in ratings))
        outcomes: dict = {}
        for r in pair:
            outcomes.setdefault((r["id"], r["turn"]), {})[r["order"]] = judge.parse_pairwise(r["output"], r["order"])[0]
        combined = [judge.combine_orders(o[judge.MODEL_FIRST], o[judge.BASELINE_FIRST]) for o in outcomes.values()]
        pw = m["multi_turn"]["pairwise"]
        assert (pw["wins"], pw["losses"], pw["ties"], pw["errors"]) == tuple(combined.count(k) for k in (judge.WIN, judge.LOSE, judge.TIE, judge.ERROR))
        assert pw["wins"] + pw["losses"] + pw["ties"] + pw["errors"] == 2 * N
    # the server is gone: a rerun reuses every saved verdict and asks nothing
    assert main([a for a in jargs if a not in ("--judge-base-url", f"{url}/v1", "--judge-model", "judge")]) == 0
    assert json.loads((out / "report.json").read_text(encoding="utf-8"))["models"][1]["multi_turn"] == rep["models"][1]["multi_turn"] | {"judged": False}


def test_judge_down_is_a_clear_error_and_scored_work_is_kept(evaluated, tmp_path):
    out, args, _ = _copy(evaluated, tmp_path)
    args = [*args, "--rescore", "--judge-base-url", f"http://127.0.0.1:{closed_port()}/v1", "--judge-model", "judge", "--judge-retries", "1"]
    assert main(args) == 1
    rep = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert rep["judge_failed"] and rep["models"][0]["ifeval"]["prompts"] == N and rep["models"][1]["stability"]["prompts"] == N
    assert any("failed after retries" in m for m in rep["messages"])
    assert len(_lines(out / "models" / "base" / "multi_turn.jsonl")) == 2 * N  # answers kept for the next try


def test_bad_prompt_file_is_one_line_error(models, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"key": 1, "prompt": "ก", "instruction_id_list": ["nope:x"], "kwargs": [{}]}\n', encoding="utf-8")
    assert main(["eval", "--model", str(models[0]), "--out", str(tmp_path / "o"), "--ifeval-file", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:1: unknown instruction id 'nope:x'" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # nothing generated, nothing loaded


def test_every_saved_step_of_a_run_folder(sets, tmp_path):
    """A run folder as the trainer writes it (its Checkpointer and config record; training itself is
    left out): one model per saved step, or the steps --steps names, charted over the step."""
    import dataclasses

    import jax.numpy as jnp

    from siamgpt_jax import config as config_lib
    from siamgpt_jax.model.qwen3 import init_model
    from siamgpt_jax.train.checkpoint import CheckpointConfig, Checkpointer
    from siamgpt_jax.train.config import load_job_config
    from siamgpt_jax.train.state import ModelDef, TrainState
    from tests.generate.helpers import TINY_VOCAB, byte_tokenizer

    run = tmp_path / "run"
    tok_dir = byte_tokenizer().save(tmp_path / "tok")
    cfg = load_job_config(None, [f"run_dir={run}", "model.preset=qwen3-tiny", "model.dtype=float32",
                                 f"model.overrides={{vocab_size: {TINY_VOCAB}, hidden_size: 32, intermediate_size: 64, head_dim: 8}}",
                                 f"data.tokenizer={tok_dir}"])
    arch = cfg.model.architecture()
    ckpt = Checkpointer(run / "checkpoints", CheckpointConfig(async_save=False))
    for step in (10, 20, 30):
        _, params = ModelDef.split(init_model(arch, seed=step, dtype=jnp.float32))
        ckpt.save(step, TrainState(step=jnp.int32(step), params=params, opt_state=()), {},
                  {"job": config_lib.to_dict(cfg), "architecture": dataclasses.asdict(arch)}, force=True)
    ckpt.close()
    out = tmp_path / "ev"
    assert main(["eval", "--model", str(run), "--steps", "10,30", "--out", str(out), "--tasks", "ifeval", *sets, *COMMON]) == 0
    rep = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert [(m["label"], m["step"]) for m in rep["models"]] == [("run@10", 10), ("run@30", 30)]
    assert all(m["ifeval"]["prompts"] == N for m in rep["models"])
    assert (out / "scores.png").stat().st_size > 0


def test_a_label_reused_for_another_model_is_an_error(evaluated, tmp_path, capsys):
    out, args, _ = _copy(evaluated, tmp_path)
    other = [a.replace(a.split("=", 1)[-1], str(tmp_path)) if a.startswith("ft=") else a for a in args]
    assert main(other) == 2
    assert "holds generations of" in capsys.readouterr().err
