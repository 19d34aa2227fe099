"""Prompt files: the shipped sets, SEA-HELM's MT-Bench-Th shape, and errors that name file and line;
the JSONL stores that make an eval resumable."""

import json

import pytest

from siamgpt_jax.corpus.script import thai_share
from siamgpt_jax.eval import data
from siamgpt_jax.eval.models import expand
from siamgpt_jax.eval.store import JsonlStore
from siamgpt_jax.errors import UserError


def test_shipped_sets():
    assert len(data.read_ifeval()) == 105
    stress = data.read_stability()
    assert len(stress) >= 150
    topics = {it.topic for it in stress}
    assert {"technology", "brands", "science", "code", "finance", "medicine", "translation", "mixed"} <= topics
    assert any(len(it.messages) > 1 for it in stress)  # conversations with earlier (English or mixed) turns
    shares = [thai_share(it.messages[-1]["content"]) for it in stress]
    assert min(shares) > 0.1  # every last user turn asks in Thai, some with English mixed in or quoted
    assert sum(s > 0.6 for s in shares) > len(stress) / 2
    mt = data.read_multi_turn()
    for cat in data.MT_BENCH_CATEGORIES:
        convs = [it for it in mt if it.category == cat]
        assert len(convs) >= 10 and all(len(it.turns) == 2 for it in convs), cat
    assert all(it.references is not None for it in mt if it.category in ("math", "reasoning"))


def test_reads_seahelm_mt_bench_format(tmp_path):
    row = {"question_id": 81, "prompts": [{"text": "เขียนบล็อก"}, {"text": "เขียนใหม่"}], "metadata": {"category": "writing", "language": "th"},
           "baselines": {"gpt-4.1-2025-04-14": ["คำตอบหนึ่ง", "คำตอบสอง"]}, "references": ["", ""]}
    p = tmp_path / "mt.jsonl"
    p.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    (it,) = data.read_multi_turn(p)
    assert it.id == "81" and it.turns == ("เขียนบล็อก", "เขียนใหม่") and it.references is None
    assert it.baselines == {"gpt-4.1-2025-04-14": ("คำตอบหนึ่ง", "คำตอบสอง")}


@pytest.mark.parametrize("reader,line,match", [
    (data.read_ifeval, '{"id": 1, "prompts": [{"text": "x"}], "metadata": {"subcategory": "keywords:no_such"}, "kwargs": [{}]}',
     r"bad\.jsonl:2: unknown instruction id 'keywords:no_such'"),
    (data.read_ifeval, '{"id": 1, "prompts": [{"text": "x"}], "metadata": {"subcategory": "keywords:existence"}, "kwargs": [{"keyword": ["a"]}]}',
     r"bad\.jsonl:2: keywords:existence: unknown kwarg 'keyword'"),
    (data.read_ifeval, '{"id": 1, "prompts": [{"text": "x"}]', r"bad\.jsonl:2: invalid JSON"),
    (data.read_ifeval, '{"id": 1}', r"bad\.jsonl:2: neither an IFEval record"),
    (data.read_stability, '{"id": "a", "messages": [{"role": "assistant", "content": "x"}]}', r"bad\.jsonl:2: the last message must be the user's"),
    (data.read_multi_turn, '{"question_id": 1, "prompts": [{"text": "x"}, {"text": ""}], "metadata": {"category": "math"}}',
     r"bad\.jsonl:2: prompts\[1\]\.text"),
])
def test_malformed_files_name_file_and_line(tmp_path, reader, line, match):
    first = {data.read_ifeval: '{"key": 0, "prompt": "ก", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}',
             data.read_stability: '{"id": "z", "prompt": "สวัสดี"}',
             data.read_multi_turn: '{"question_id": 0, "prompts": [{"text": "ก"}], "metadata": {"category": "math"}}'}[reader]
    p = tmp_path / "bad.jsonl"
    p.write_text(first + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=match):
        reader(p)


def test_store_drops_a_half_written_line_and_resumes(tmp_path):
    p = tmp_path / "g.jsonl"
    s = JsonlStore(p)
    s.append([{"key": "a", "fp": "1", "response": "ก"}, {"key": "b", "fp": "1", "response": "ข"}])
    with open(p, "a", encoding="utf-8") as f:
        f.write('{"key": "c", "fp": "1", "resp')  # killed mid-write
    s2 = JsonlStore(p)
    assert set(s2.rows) == {"a", "b"} and s2.dropped_partial == 1
    assert s2.get("a", "1")["response"] == "ก" and s2.get("a", "2") is None  # other input: not reused
    s2.append([{"key": "c", "fp": "1", "response": "ค"}])
    assert [json.loads(l)["key"] for l in p.read_text(encoding="utf-8").splitlines()] == ["a", "b", "c"]
    p.write_text('{"key": "a"}\nnot json\n{"key": "b"}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"g\.jsonl:2"):
        JsonlStore(p)


def test_model_specs(tmp_path):
    run = tmp_path / "run"
    for step in (20, 40):
        (run / "checkpoints" / str(step) / "state").mkdir(parents=True)
    (run / "checkpoints" / "60.orbax-checkpoint-tmp-1").mkdir()  # an unfinished save is not a step
    hf = tmp_path / "hf"
    hf.mkdir()
    entries = expand([str(run), f"base={hf}", "http://127.0.0.1:8000/v1#judge"])
    assert [(e.label, e.step) for e in entries] == [("run@20", 20), ("run@40", 40), ("base", None), ("http://127.0.0.1:8000/v1#judge", None)]
    assert [e.label for e in expand([str(run)], steps=[40])] == ["run@40"]
    with pytest.raises(UserError, match=r"no saved step \[30\]"):
        expand([str(run)], steps=[30])
    with pytest.raises(UserError, match="labelled 'hf'"):
        expand([str(hf), str(hf)])
    with pytest.raises(UserError, match="no such folder"):
        expand([str(tmp_path / "nope")])
