"""High-complexity selection: each filter, its report line, deduplication modes, config and flags."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from siamgpt_jax.corpus.pipeline import run_verification
from siamgpt_jax.corpus.records import parse_line
from siamgpt_jax.corpus.selection import SelectionConfig, constraints_per_turn, count_constraints, filter_failures
from siamgpt_jax.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


def conv(system=None, rounds=(("q", "an answer"),)):
    msgs = [{"role": "system", "content": system}] if system else []
    for q, a in rounds:
        msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return {"messages": msgs}


@pytest.mark.parametrize("text, n", [
    ("Why is the sky blue?", 0),
    ("You are a tutor.", 0),
    ("You are a tutor. Always show each step. Never give the answer first.", 2),
    ("Keep answers under 200 words.", 1),
    ("Rules:\n- be polite\n- cite sources\n1. Answer in English.\n2) no emojis\n(a) short", 5),
    ("You must respond in JSON; do not add prose. Use at most 3 keys.", 3),
    ("ตอบเป็นภาษาไทยเท่านั้น ห้ามใช้ภาษาอังกฤษ", 1),
    ("Summarise the text. It is long.", 0),
])
def test_count_constraints(text, n):
    assert count_constraints(text) == n


def test_constraints_per_turn_counts_the_system_prompt_for_every_turn():
    msgs = conv("Always be brief. Never use lists.", [("Explain X. Use an example.", "a"), ("And Y?", "b")])["messages"]
    assert constraints_per_turn(msgs) == 2 + (1 + 0) / 2


def rec(obj):
    return parse_line(json.dumps(obj).encode())


def test_each_filter_and_its_reason():
    cfg = SelectionConfig(require_system=True, min_system_chars=20, min_rounds=2, min_constraints_per_turn=1, min_response_chars=5)
    fails = {f["check"]: f["reason"] for f in filter_failures(rec(conv(None, [("q", "abc")])), cfg)}
    assert set(fails) == {"filter:require_system", "filter:min_system_chars", "filter:min_rounds",
                          "filter:min_constraints_per_turn", "filter:min_response_chars"}
    assert fails["filter:min_rounds"] == "1 round(s) < 2"
    assert fails["filter:min_response_chars"] == "an assistant reply has 3 characters < 5"
    rich = conv("You are a strict editor. Always answer in two sentences.", [("Fix this. Keep it short.", "Done here."), ("More?", "Fine then.")])
    assert filter_failures(rec(rich), cfg) == []
    # stream B is selected by its verifiers, not by these filters (unless asked)
    autoif = {**conv(None, [("q", "abc")]), "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    assert filter_failures(rec(autoif), cfg) == []
    assert filter_failures(rec(autoif), SelectionConfig(streams=("autoif",), min_rounds=2))


def test_bad_selection_values_are_user_errors():
    for bad in (SelectionConfig(min_rounds=-1), SelectionConfig(streams=("stream-c",)), SelectionConfig(dedup="fuzzy")):
        with pytest.raises(UserError):
            bad.validate()


def corpus(tmp_path):
    rows = [
        conv("You are a strict editor. Always answer in two sentences. Never use lists.", [("Fix this. Keep it short.", "It is fixed now.")]),
        conv(None, [("Hello", "Hi there, how are you?")]),  # no system prompt
        conv("Be nice.", [("Hello", "Hi there, friend.")]),  # short system prompt, no constraint
        conv("You are a strict editor. Always answer in two sentences. Never use lists.", [("Fix this. Keep it short.", "Ok.")]),  # short reply
        conv("You are a strict editor. Always answer in two sentences. Never use lists.", [("fix THIS.  keep it short!", "It is fixed now")]),
    ]
    src = tmp_path / "a.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return src


def test_the_report_shows_what_each_filter_removed(tmp_path):
    sel = SelectionConfig(require_system=True, min_system_chars=20, min_constraints_per_turn=2, min_response_chars=10, dedup="normalized")
    report = run_verification([corpus(tmp_path)], tmp_path / "out", workers=1, progress=False, selection=sel)
    assert report.filters == {"require_system": 1, "min_system_chars": 2, "min_constraints_per_turn": 2, "min_response_chars": 1}
    assert report.filtered == 3 and report.duplicates == 1 and report.verified == 1
    assert report.per_stream["systemchat"]["filtered"] == 3
    kinds = [json.loads(l)["kind"] for l in (tmp_path / "out/rejected.jsonl").read_text().splitlines()]
    assert kinds == ["filtered", "filtered", "filtered", "duplicate"]
    saved = json.loads((tmp_path / "out/report.json").read_text())
    assert saved["selection"]["min_constraints_per_turn"] == 2 and saved["filters"] == report.filters


def test_dedup_modes(tmp_path):
    src = corpus(tmp_path)
    counts = {mode: run_verification([src], tmp_path / mode, workers=1, progress=False,
                                     selection=SelectionConfig(dedup=mode)).duplicates for mode in ("exact", "normalized", "none")}
    assert counts == {"exact": 0, "normalized": 1, "none": 0}
    src.write_text(src.read_text() + src.read_text().splitlines()[0] + "\n")
    assert run_verification([src], tmp_path / "n", workers=1, progress=False, selection=SelectionConfig(dedup="none")).verified == 6


def test_config_section_and_flags(tmp_path):
    cfg = tmp_path / "job.yaml"
    cfg.write_text("selection:\n  require_system: true\n  min_response_chars: 10\ndata:\n  seq_len: 64\n")
    cmd = [sys.executable, "-m", "siamgpt_jax.cli", "verify", str(corpus(tmp_path)), "--out", str(tmp_path / "o"),
           "--no-progress", "--no-tokens", "--config", str(cfg)]
    res = subprocess.run(cmd + ["--min-rounds", "1"], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    rep = json.loads((tmp_path / "o/report.json").read_text())
    assert rep["filters"] == {"require_system": 1, "min_rounds": 0, "min_response_chars": 1}
    cfg.write_text("selection:\n  min_rounds: 1\n  min_respons_chars: 3\n")
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 2 and "selection.min_respons_chars" in res.stderr and "min_response_chars" in res.stderr


def test_the_train_config_accepts_the_section():
    from siamgpt_jax.train.config import load_job_config

    cfg = load_job_config(ROOT / "configs/demo.yaml", ["selection.min_rounds=2", "selection.dedup=normalized"])
    assert cfg.selection == SelectionConfig(min_rounds=2, dedup="normalized")
