"""Accounting and I/O of the verification pass: every line counted, odd input is invalid input,
inputs read once, user errors before the pass, no stale report (issue 19, item 5)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from siamgpt_jax.corpus import pipeline
from siamgpt_jax.corpus.pipeline import InvalidInputError, run_verification
from siamgpt_jax.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]}


def chat(answer: str, question: str = "hi") -> str:
    return json.dumps({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})


def verify(inputs, out, **kw):
    return run_verification(inputs if isinstance(inputs, list) else [inputs], out, workers=1, progress=False, **kw)


def rejected(out: Path) -> list[dict]:
    return [json.loads(l) for l in (out / "rejected.jsonl").read_text(encoding="utf-8").splitlines()]


def assert_every_line_accounted(report):
    for path, st in report.per_file.items():
        assert st["lines"] == st["blank"] + st["verified"] + st["failed"] + st["invalid"] + st["filtered"] + st["duplicates"], path
    assert report.lines == report.blank_lines + report.total
    assert report.total == report.verified + report.rejected


def test_blank_lines_are_counted(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(f"\n{chat('one')}\n   \n\r\n{chat('two')}\n\t\n", encoding="utf-8")
    report = verify(src, tmp_path / "out")
    assert report.lines == 6 and report.blank_lines == 4 and report.total == 2 and report.verified == 2
    assert report.per_file[str(src)]["blank"] == 4
    assert_every_line_accounted(report)
    sources = [json.loads(l)["source"] for l in (tmp_path / "out/verified.jsonl").read_text().splitlines()]
    assert sources == [f"{src}:2", f"{src}:5"]  # line numbers count the blank lines


def test_a_utf8_bom_is_not_part_of_line_one(tmp_path):
    src = tmp_path / "bom.jsonl"
    src.write_bytes(b"\xef\xbb\xbf" + chat("first").encode() + b"\r\n" + chat("second").encode() + b"\r\n")
    report = verify(src, tmp_path / "out")
    assert report.verified == 2 and report.invalid == 0


@pytest.mark.parametrize("escape", [r"\ud800", r"\udfff", r"abc\uDC00", r"\ud83d x"])
def test_a_lone_surrogate_is_invalid_input(tmp_path, escape):
    src = tmp_path / "s.jsonl"
    src.write_text(chat(f"hello {escape} there").replace("\\\\", "\\") + "\n", encoding="utf-8")
    report = verify(src, tmp_path / "out")
    (rej,) = rejected(tmp_path / "out")
    assert report.invalid == 1 and rej["kind"] == "invalid" and rej["failures"][0]["check"] == "invalid_unicode"
    assert "surrogate" in rej["failures"][0]["reason"]


def test_a_surrogate_pair_escape_is_one_character(tmp_path):
    src = tmp_path / "s.jsonl"
    src.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok \\ud83d\\ude00"}]}\n')
    report = verify(src, tmp_path / "out")
    assert report.verified == 1
    assert json.loads((tmp_path / "out/verified.jsonl").read_text())["messages"][1]["content"] == "ok \U0001F600"


@pytest.mark.parametrize("where", ["record", "extra"])
def test_json_nested_5000_deep_is_invalid_json(tmp_path, where):
    deep = "[" * 5000 + "]" * 5000
    line = deep if where == "record" else chat("fine")[:-1] + f', "meta": {deep}}}'
    src = tmp_path / "deep.jsonl"
    src.write_text(line + "\n" + chat("fine") + "\n")
    report = verify(src, tmp_path / "out")
    (rej,) = rejected(tmp_path / "out")
    assert report.invalid == 1 and report.verified == 1
    assert rej["failures"][0]["check"] == "invalid_json" and "nested too deeply" in rej["failures"][0]["reason"]


@pytest.mark.parametrize("answer", ["\x00", "\ufeff", "\u200b", "\u200b\u200c\u200d\u2060", " \x00 \n\ufeff", "\u3164", "\u00a0\u3000"])
def test_invisible_final_turns_are_empty(tmp_path, answer):
    src = tmp_path / "inv.jsonl"
    src.write_text(chat(answer) + "\n")
    verify(src, tmp_path / "out")
    (rej,) = rejected(tmp_path / "out")
    assert rej["kind"] == "invalid" and rej["failures"][0]["check"] == "structure:empty_turn"


def test_visible_text_after_invisible_characters_is_kept(tmp_path):
    src = tmp_path / "vis.jsonl"
    src.write_text(chat("\u200bhello") + "\n" + chat("\ufeffสวัสดีครับ", "ทักทายหน่อย") + "\n")
    assert verify(src, tmp_path / "out").verified == 2


def test_the_same_file_twice_is_read_once(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_text(chat("fine") + "\nnot json\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(src)
    report = verify([src, src, link, tmp_path], tmp_path / "out")  # the folder holds a.jsonl and the link too
    assert report.inputs == [str(src)] and report.total == 2 and report.rejected == 1
    assert len(report.repeated_inputs) == 4 and all("same file as" in r for r in report.repeated_inputs)
    assert len(rejected(tmp_path / "out")) == 1


def test_a_folder_without_shards_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/README.md").write_text("# nothing here")
    for folder in ("empty", "docs"):
        with pytest.raises(UserError, match="folder with no corpus shards") as e:
            verify(tmp_path / folder, tmp_path / "out")
        assert "not found" not in str(e.value)
    with pytest.raises(UserError, match="not found"):
        verify(tmp_path / "missing.jsonl", tmp_path / "out")


def test_unknown_formats_are_errors_not_zero_verified(tmp_path):
    csv = tmp_path / "data.csv"
    csv.write_text("prompt,response\nhi,hello\n")
    with pytest.raises(UserError, match="unknown corpus format"):
        verify(csv, tmp_path / "out")
    alpaca = tmp_path / "alpaca.jsonl"
    alpaca.write_text(json.dumps({"instruction": "Say hi", "input": "", "output": "hi"}) + "\n")
    with pytest.raises(UserError, match=r"no conversation .*\['input', 'instruction', 'output'\]"):
        verify(alpaca, tmp_path / "out")
    text = tmp_path / "notes.jsonl"  # a .jsonl name, but not JSON
    text.write_text("prompt,response\nhi,hello\n")
    with pytest.raises(UserError, match=r"notes.jsonl: not JSON lines: none of its first 2 non-blank lines is a JSON object"):
        verify(text, tmp_path / "out")
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n\n")
    with pytest.raises(UserError, match="no records"):
        verify(blank, tmp_path / "out")
    assert not (tmp_path / "out/report.json").exists()


def test_out_errors_come_before_the_pass(tmp_path, monkeypatch):
    src = tmp_path / "in.jsonl"
    src.write_text(chat("fine") + "\n")

    def no_pass(job):
        raise AssertionError("the pass started")

    monkeypatch.setattr(pipeline, "_verify_chunk", no_pass)
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    with pytest.raises(UserError, match=r"--out .*taken: is a file, not a folder"):
        verify(src, a_file)
    with pytest.raises(UserError, match=r"--out .*taken/sub: cannot write there"):
        verify(src, a_file / "sub")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_out_folder_fails_before_the_pass(tmp_path, monkeypatch):
    src = tmp_path / "in.jsonl"
    src.write_text(chat("fine") + "\n")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    monkeypatch.setattr(pipeline, "_verify_chunk", lambda job: (_ for _ in ()).throw(AssertionError("the pass started")))
    with pytest.raises(UserError, match="cannot write there"):
        verify(src, ro)


def test_cli_user_errors_are_one_line(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(chat("fine") + "\n")
    (tmp_path / "taken").write_text("x")
    (tmp_path / "empty").mkdir()
    for args in ([str(src), "--out", str(tmp_path / "taken"), "--no-tokens"],
                 [str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--no-tokens"],
                 [str(src), "--out", str(tmp_path / "o"), "--tokenizer", str(tmp_path / "empty")]):
        res = subprocess.run([sys.executable, "-m", "siamgpt_jax.cli", "verify", *args, "--no-progress"],
                             capture_output=True, text=True, cwd=ROOT)
        assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert res.stderr.startswith("siamgpt-jax verify: error:") and "Traceback" not in res.stderr


def test_an_aborted_run_leaves_no_stale_report(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(chat("fine") + "\n")
    out = tmp_path / "out"
    verify(src, out)
    assert (out / "report.json").is_file()
    src.write_text(chat("fine") + "\nnot json\n")
    with pytest.raises(InvalidInputError):
        verify(src, out, fail_on_invalid=True)
    assert not (out / "report.json").exists()  # the earlier run's report would look current
    assert not list(out.glob(".*tmp*"))


def test_report_lists_every_file_even_without_records(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(chat("fine") + "\n")
    b.write_text("\n")
    report = verify([a, b], tmp_path / "out")
    assert report.per_file[str(b)] == {"lines": 1, "blank": 1, "total": 0, "verified": 0, "failed": 0, "invalid": 0,
                                       "filtered": 0, "duplicates": 0}
    assert_every_line_accounted(report)


def test_fuzzed_lines_are_all_accounted(tmp_path):
    import random

    rng = random.Random(0)
    pieces = [chat("fine"), chat("other answer"), "", "  ", "{", "[]", "null", '{"messages": 3}', chat("\u200b"),
              chat("x")[:-1] + ', "system": "be brief"}', '{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}']
    src = tmp_path / "fuzz.jsonl"
    src.write_text("\n".join(rng.choice(pieces) for _ in range(400)) + "\n")
    report = verify(src, tmp_path / "out")
    assert report.lines == 400 and report.verified == 4  # the four distinct good records, once each
    assert_every_line_accounted(report)
    assert "verifier_error" not in report.reject_reasons
