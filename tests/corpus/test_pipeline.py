"""The verification pass end to end on the shipped samples and on bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from siamgpt_jax.corpus.pipeline import InvalidInputError, run_verification
from siamgpt_jax.corpus.records import RecordError, parse_line

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = [ROOT / "data/samples/systemchat_sample.jsonl", ROOT / "data/samples/autoif_th_sample.jsonl"]


@pytest.fixture(scope="module")
def verified(tmp_path_factory):
    out = tmp_path_factory.mktemp("verified")
    report = run_verification(SAMPLES, out, workers=2, progress=False)
    return out, report


def test_samples_split_as_intended(verified):
    out, report = verified
    good = [json.loads(l) for l in (out / "verified.jsonl").read_text(encoding="utf-8").splitlines()]
    bad = [json.loads(l) for l in (out / "rejected.jsonl").read_text(encoding="utf-8").splitlines()]
    assert report.verified == len(good) >= 60 and report.rejected == len(bad)
    # Every stream-B record says what it should do; the pass must agree with every one.
    assert all(r.get("expect", "pass") == "pass" for r in good)
    assert all(r.get("record", {}).get("expect", "reject") == "reject" for r in bad)
    assert {r["stream"] for r in good} == {"systemchat", "autoif"}
    assert report.duplicates == 1 and report.invalid >= 5
    for r in good:
        assert set(r) >= {"id", "stream", "source", "messages"}
        assert r["messages"][-1]["role"] == "assistant"
        if r["stream"] == "autoif":
            assert r["instruction_id_list"] and len(r["kwargs"]) == len(r["instruction_id_list"])
    for r in bad:
        assert r["file"] and r["line"] >= 1 and r["failures"] and all(f["reason"] for f in r["failures"])
    reasons = report.reject_reasons
    for key in ("thai:no_code_switching", "invalid_json", "structure:order", "structure:final_turn", "duplicate", "unknown_instruction", "invalid_kwargs"):
        assert reasons.get(key), key
    rep = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert rep["per_stream"]["autoif"]["verified"] == 27 and rep["checks"]["thai:orthography"]["pass_rate"] < 1


def test_rerun_is_byte_identical_and_worker_count_independent(verified, tmp_path):
    out, _ = verified
    run_verification(SAMPLES, tmp_path, workers=1, progress=False)
    for name in ("verified.jsonl", "rejected.jsonl", "report.json"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


def test_bad_input_never_crashes(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_bytes(
        b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]}\n'
        b"\xff\xfe not utf8\n"
        b"[1, 2]\n"
        b'{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], "instruction_id_list": ["punctuation:no_comma"]}\n'
        b'{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "   "}]}\n'
        b'{"messages": [{"role": "wizard", "content": "x"}]}\n'
    )
    report = run_verification([src], tmp_path / "out", workers=1, progress=False)
    assert report.total == 6 and report.verified == 1 and report.invalid == 5
    rejected = [json.loads(l) for l in (tmp_path / "out/rejected.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in rejected] == [2, 3, 4, 5, 6]
    assert [r["failures"][0]["check"] for r in rejected] == ["invalid_utf8", "invalid_json", "missing_field", "structure:empty_turn", "structure:role"]
    with pytest.raises(InvalidInputError, match="bad.jsonl:2"):
        run_verification([src], tmp_path / "out2", workers=1, progress=False, fail_on_invalid=True)
    assert not (tmp_path / "out2" / "verified.jsonl").exists()


def test_wrongly_typed_kwargs_and_verifier_bugs_become_reported_records(tmp_path, monkeypatch):
    from siamgpt_jax.corpus import verify

    ok = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]}\n'
    src = tmp_path / "odd.jsonl"
    src.write_bytes(
        ok
        + b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"}], "kwargs": 1.5}\n'
        + b'{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], '
        b'"instruction_id_list": ["punctuation:no_comma"], "kwargs": 1.5}\n'
        + b'{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "z, z"}], '
        b'"instruction_id_list": ["punctuation:no_comma"], "kwargs": [null]}\n'
    )
    real_check = verify.check

    def buggy_check(iid, response, kwargs, **kw):  # a verifier bug on one record only
        if response == "z, z":
            raise ZeroDivisionError("boom")
        return real_check(iid, response, kwargs, **kw)

    monkeypatch.setattr(verify, "check", buggy_check)
    report = run_verification([src], tmp_path / "out", workers=1, progress=False)
    assert report.total == 4 and report.verified == 1 and report.invalid == 3
    rejected = [json.loads(l) for l in (tmp_path / "out/rejected.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["line"], r["failures"][0]["check"]) for r in rejected] == [(2, "invalid_kwargs"), (3, "invalid_kwargs"), (4, "verifier_error")]
    assert "given without 'instruction_id_list'" in rejected[0]["failures"][0]["reason"]
    assert rejected[2]["failures"][0]["reason"] == "the verifier failed on this record: ZeroDivisionError: boom"


def test_an_interrupted_rerun_leaves_no_report(tmp_path, monkeypatch):
    from siamgpt_jax.corpus import pipeline

    src = tmp_path / "one.jsonl"
    src.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n')
    run_verification([src], tmp_path / "out", workers=1, progress=False)
    assert (tmp_path / "out/report.json").is_file()
    real = pipeline._write_temp

    def dies_on_rejected(path, lines):
        if path.name == "rejected.jsonl":
            raise KeyboardInterrupt
        return real(path, lines)

    monkeypatch.setattr(pipeline, "_write_temp", dies_on_rejected)
    with pytest.raises(KeyboardInterrupt):
        run_verification([src], tmp_path / "out", workers=1, progress=False)
    assert not (tmp_path / "out/report.json").exists()  # the folder does not look complete
    assert not list((tmp_path / "out").glob(".*tmp*"))


def test_length_caps_and_prompt_response_form():
    from siamgpt_jax.corpus.records import Limits

    with pytest.raises(RecordError, match="cap"):
        parse_line(json.dumps({"messages": [{"role": "user", "content": "x" * 50}, {"role": "assistant", "content": "y"}]}).encode(), Limits(max_turn_chars=10))
    rec = parse_line(json.dumps({"prompt": "p", "response": "r", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}).encode())
    assert rec.stream == "autoif" and [m["role"] for m in rec.messages] == ["user", "assistant"]


def test_cli_exit_codes(tmp_path):
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\nnot json\n')
    env_cmd = [sys.executable, "-m", "siamgpt_jax.cli", "verify", str(bad), "--out", str(tmp_path / "o"), "--no-progress", "--no-tokens"]
    ok = subprocess.run(env_cmd, capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0 and "verified 1/2" in ok.stdout
    fail = subprocess.run(env_cmd + ["--fail-on-invalid"], capture_output=True, text=True, cwd=ROOT)
    assert fail.returncode == 1 and "b.jsonl:2" in fail.stderr



def test_a_multi_letter_letter_frequency_is_invalid_kwargs(tmp_path):
    """Bad kwargs are bad input: the record is invalid (invalid_kwargs), not a response that failed."""
    src = tmp_path / "in.jsonl"
    src.write_text(
        '{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "abab"}], '
        '"instruction_id_list": ["keywords:letter_frequency"], '
        '"kwargs": [{"letter": "ab", "let_frequency": 1, "let_relation": "at least"}]}\n',
        encoding="utf-8",
    )
    report = run_verification([src], tmp_path / "out", workers=1, progress=False)
    assert report.total == 1 and report.invalid == 1 and report.verified == 0
    (rejected,) = [json.loads(l) for l in (tmp_path / "out/rejected.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rejected["failures"][0] == {
        "check": "invalid_kwargs", "reason": "keywords:letter_frequency: kwarg 'letter'='ab' must be one character"}


def test_vacuous_kwargs_are_invalid_kwargs_records(tmp_path):
    """The issue's vacuous kwargs, through the pass: each record is invalid with reason invalid_kwargs."""
    vacuous = [
        ("startend:end_checker", {"end_phrase": ""}),
        ("keywords:existence", {"keywords": []}),
        ("keywords:existence", {"keywords": [""]}),
        ("combination:repeat_prompt", {"prompt_to_repeat": ""}),
        ("thai:response_language", {"min_ratio": -1.0}),
        ("keywords:forbidden_words", {"forbidden_words": [""]}),
        ("language:response_language", {"language": ""}),
        ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 1, "nth_paragraph": 0, "first_word": "ก"}),
    ]
    src = tmp_path / "in.jsonl"
    with open(src, "w", encoding="utf-8") as f:
        for n, (iid, kw) in enumerate(vacuous):
            rec = {"messages": [{"role": "user", "content": "เขียนอะไรก็ได้"}, {"role": "assistant", "content": f"คำตอบที่ {n} ครับ"}],
                   "instruction_id_list": [iid], "kwargs": [kw]}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    report = run_verification([src], tmp_path / "out", workers=1, progress=False)
    assert report.total == report.invalid == len(vacuous) and report.verified == 0
    assert report.reject_reasons == {"invalid_kwargs": len(vacuous)}
    for line in (tmp_path / "out/rejected.jsonl").read_text(encoding="utf-8").splitlines():
        (failure,) = json.loads(line)["failures"]
        assert failure["check"] == "invalid_kwargs" and failure["reason"]
