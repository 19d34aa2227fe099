"""`siamgpt-jax eval` end to end on a tiny random Qwen3: generate, score, report, plot; resume and
rescore; a real `siamgpt-jax serve` of the same tiny model as the judge (its verdicts are noise, so
the test recomputes every count from the saved judge outputs); a judge endpoint that is down."""

from __future__ import annotations

import json

import pytest

from siamgpt_jax.cli import main
from siamgpt_jax.eval import judge
from tests.generate.helpers import tiny_hf_folder
from tests.generate.http_helpers import closed_port, free_port, serve_subprocess

LIMIT = 3  # prompts per set: IFEval, stability and conversations (two turns each)
COMMON = ["--limit", str(LIMIT), "--max-new-tokens", "6", "--max-len", "2048", "--batch-size", "4"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_models")
    return [tiny_hf_folder(root / name, seed=seed, num_hidden_layers=2, max_position_embeddings=2048)
            for name, seed in (("base", 0), ("tuned", 1))]


def _lines(path):
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]


def test_generate_score_report_plot_resume_rescore(models, tmp_path, capsys):
    out = tmp_path / "ev"
    args = ["eval", "--model", str(models[0]), "--model", f"ft={models[1]}", "--out", str(out), *COMMON]
    assert main(args) == 0
    rep = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert [m["label"] for m in rep["models"]] == ["base", "ft"]
    assert rep["settings"]["sampling"]["temperature"] == 0.0 and rep["settings"]["sampling"]["seed"] == 0
    for m in rep["models"]:
        assert m["ifeval"]["prompts"] == LIMIT and m["stability"]["prompts"] == LIMIT
        assert m["generation"]["ifeval"]["generated"] == LIMIT and m["generation"]["ifeval"]["completion_tokens"] > 0
        assert m["generation"]["multi_turn"]["generated"] == 2 * LIMIT
        assert m["multi_turn"]["answered"] == LIMIT and m["multi_turn"]["single"] is None  # no judge
        gens = _lines(out / "models" / m["label"] / "ifeval.jsonl")
        assert len(gens) == LIMIT and all(g["finish_reason"] in ("stop", "length") for g in gens)
        assert len(_lines(out / "models" / m["label"] / "stability_scores.jsonl")) == LIMIT
    assert any("no judge given" in msg for msg in rep["messages"])
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "| base |" in md and "| ft |" in md and "IFEval-Th prompt strict" in md
    assert (out / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    before = (out / "models" / "base" / "ifeval.jsonl").read_bytes()

    # interrupted run: the last line of one file half-written; a rerun redoes only that prompt
    path = out / "models" / "ft" / "stability.jsonl"
    data = path.read_bytes()
    path.write_bytes(data[: data.rstrip(b"\n").rfind(b"\n") + 1] + data[data.rstrip(b"\n").rfind(b"\n") + 1:][:20])
    assert main(args) == 0
    rep2 = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert rep2["models"][1]["generation"]["stability"]["generated"] == 1
    assert rep2["models"][0]["generation"]["ifeval"]["generated"] == 0 and rep2["models"][0]["generation"]["ifeval"]["reused"] == LIMIT
    assert (out / "models" / "base" / "ifeval.jsonl").read_bytes() == before
    # greedy: the redone generation is the same text, so every score is unchanged
    assert rep2["models"][1]["stability"] == rep["models"][1]["stability"]

    # --rescore never opens a model (a path that no longer exists would fail to load)
    assert main([*args, "--rescore"]) == 0
    rep3 = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert [m["ifeval"] for m in rep3["models"]] == [m["ifeval"] for m in rep["models"]]


def test_pairwise_and_single_judging_against_a_real_serve(models, tmp_path):
    port = free_port()
    with serve_subprocess(["--model", str(models[0]), "--max-len", "2048", "--log-level", "warning", "--served-model-name", "judge"], port) as (_, url):
        out = tmp_path / "ev"
        args = ["eval", "--model", f"base={models[0]}", "--model", f"ft={models[1]}", "--out", str(out), "--tasks", "multi_turn",
                "--judge-base-url", f"{url}/v1", "--judge-model", "judge", "--judge-max-tokens", "8", *COMMON]
        assert main(args) == 0
    rep = json.loads((out / "report.json").read_text(encoding="utf-8"))
    base, ft = rep["models"]
    assert base["multi_turn"]["baseline"] is None and base["multi_turn"]["pairwise"] is None  # the first model is the baseline
    assert ft["multi_turn"]["baseline"] == "base"
    # Every count follows from the saved judge outputs by the documented rules.
    single = _lines(out / "models" / "ft" / "judge_single.jsonl")
    pair = _lines(out / "models" / "ft" / "judge_pairwise.jsonl")
    assert len(single) == 2 * LIMIT and len(pair) == 2 * 2 * LIMIT  # two turns; two orders each
    ratings = [judge.parse_rating(r["output"])[0] for r in single]
    sg = ft["multi_turn"]["single"]
    assert sg["errors"] == sum(r is None for r in ratings) and sg["rated"] == sum(r is not None for r in ratings)
    outcomes = {}
    for r in pair:
        outcomes.setdefault((r["id"], r["turn"]), {})[r["order"]] = judge.parse_pairwise(r["output"], r["order"])[0]
    combined = [judge.combine_orders(o[judge.MODEL_FIRST], o[judge.BASELINE_FIRST]) for o in outcomes.values()]
    pw = ft["multi_turn"]["pairwise"]
    assert (pw["wins"], pw["losses"], pw["ties"], pw["errors"]) == tuple(combined.count(k) for k in (judge.WIN, judge.LOSE, judge.TIE, judge.ERROR))
    assert pw["wins"] + pw["losses"] + pw["ties"] + pw["errors"] == 2 * LIMIT
    # rerun: every verdict is reused, none asked again (the server is gone now)
    assert main([*args, "--rescore"]) == 0
    assert json.loads((out / "report.json").read_text(encoding="utf-8"))["models"][1]["multi_turn"]["pairwise"] == pw


def test_judge_down_is_a_clear_error_and_scored_work_is_kept(models, tmp_path, capsys):
    out = tmp_path / "ev"
    args = ["eval", "--model", str(models[0]), "--out", str(out), "--tasks", "ifeval,multi_turn",
            "--judge-base-url", f"http://127.0.0.1:{closed_port()}/v1", "--judge-model", "judge", "--judge-retries", "1", *COMMON]
    assert main(args) == 1
    rep = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert rep["judge_failed"] and rep["models"][0]["ifeval"]["prompts"] == LIMIT
    assert any("failed after retries" in m and "connection" in m for m in rep["messages"])
    assert len(_lines(out / "models" / "base" / "multi_turn.jsonl")) == 2 * LIMIT  # answers kept for the next try


def test_bad_prompt_file_is_one_line_error(models, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"key": 1, "prompt": "ก", "instruction_id_list": ["nope:x"], "kwargs": [{}]}\n', encoding="utf-8")
    assert main(["eval", "--model", str(models[0]), "--out", str(tmp_path / "o"), "--ifeval-file", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:1: unknown instruction id 'nope:x'" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # nothing generated, nothing loaded
