"""Stream A as users have it: JSONL or Parquet, OpenAI `messages` or ShareGPT `conversations`
(SystemChat-2.0's published form), single files or folders of shards; all read to the same records."""

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from siamgpt_jax.corpus.pipeline import run_verification
from siamgpt_jax.corpus.readers import InputLine, read_corpus
from siamgpt_jax.errors import UserError

CHATS = [
    ("You are a concise assistant. Answer in at most two sentences.", [("What is rain?", "Water that falls from clouds.")]),
    ("You are a math tutor.", [("Solve 2x = 6.", "Divide both sides by 2: x = 3."), ("And 3x = 12?", "x = 4.")]),
    (None, [("Name a colour.", "Blue.")]),
]
SHAREGPT_ROLE = {"system": "system", "user": "human", "assistant": "gpt"}


def openai_form(system, rounds):
    msgs = [{"role": "system", "content": system}] if system else []
    for q, a in rounds:
        msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return {"messages": msgs}


def sharegpt_form(system, rounds):
    return {"conversations": [{"from": SHAREGPT_ROLE[m["role"]], "value": m["content"]} for m in openai_form(system, rounds)["messages"]]}


FORMS = {"messages": openai_form, "conversations": sharegpt_form}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


WRITERS = {"jsonl": write_jsonl, "parquet": write_parquet}


def expected_messages():
    return [openai_form(s, r)["messages"] for s, r in CHATS]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
@pytest.mark.parametrize("form", ["messages", "conversations"])
@pytest.mark.parametrize("layout", ["file", "folder"])
def test_every_form_reads_to_the_same_records(tmp_path, fmt, form, layout):
    rows = [FORMS[form](s, r) for s, r in CHATS]
    if layout == "file":
        inp = WRITERS[fmt](tmp_path / f"systemchat.{fmt}", rows)
    else:  # the Hugging Face layout: data/train-0000i-of-0000n.EXT, plus files that are not shards
        inp = tmp_path / "SystemChat-2.0"
        WRITERS[fmt](inp / "data" / f"train-00000-of-00002.{fmt}", rows[:2])
        WRITERS[fmt](inp / "data" / f"train-00001-of-00002.{fmt}", rows[2:])
        (inp / "README.md").write_text("---\nlicense: apache-2.0\n---\n")
        write_jsonl(inp / ".cache" / "huggingface" / "stale.jsonl", [{"junk": 1}])
    report = run_verification([inp], tmp_path / "out", workers=1, progress=False)
    assert report.total == 3 and report.verified == 3 and report.blank_lines == 0
    got = [json.loads(l) for l in (tmp_path / "out/verified.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [g["messages"] for g in got] == expected_messages()
    assert {g["stream"] for g in got} == {"systemchat"}
    if fmt == "parquet":
        assert got[0]["source"].endswith("[0]") and got[-1]["source"].endswith("[0]" if layout == "folder" else "[2]")


def test_parquet_rejects_name_the_row(tmp_path):
    rows = [openai_form(*CHATS[0]), {"messages": [{"role": "user", "content": "q"}]}]
    src = write_parquet(tmp_path / "a.parquet", rows)
    run_verification([src], tmp_path / "out", workers=1, progress=False)
    (rej,) = [json.loads(l) for l in (tmp_path / "out/rejected.jsonl").read_text().splitlines()]
    assert rej["row"] == 1 and "line" not in rej and rej["source"] == f"{src}[1]"
    assert rej["failures"][0]["check"] == "structure:final_turn"


def test_parquet_nulls_and_extra_columns(tmp_path):
    """A merged schema: null columns are absent, extra columns are kept on the record."""
    rows = [{**openai_form(*CHATS[2]), "conversations": None, "source_id": 7},
            {"messages": None, **sharegpt_form(*CHATS[0]), "source_id": 8}]
    src = write_parquet(tmp_path / "mixed.parquet", rows)
    report = run_verification([src], tmp_path / "out", workers=1, progress=False)
    assert report.verified == 2
    got = [json.loads(l) for l in (tmp_path / "out/verified.jsonl").read_text().splitlines()]
    assert [g["source_id"] for g in got] == [7, 8] and "conversations" not in got[0] and "messages" in got[1]


def test_a_parquet_file_without_a_conversation_column_is_an_error(tmp_path):
    src = write_parquet(tmp_path / "alpaca.parquet", [{"instruction": "x", "output": "y"}])
    with pytest.raises(UserError, match=r"alpaca.parquet: no conversation column.*instruction"):
        run_verification([src], tmp_path / "out", workers=1, progress=False)


def test_a_broken_parquet_file_is_an_error(tmp_path):
    src = tmp_path / "broken.parquet"
    src.write_bytes(b"PAR1 not really")
    with pytest.raises(UserError, match="not a readable Parquet file"):
        run_verification([src], tmp_path / "out", workers=1, progress=False)


def test_sharegpt_with_a_top_level_system_prompt(tmp_path):
    row = {"system": "Be brief.", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}
    src = write_jsonl(tmp_path / "a.jsonl", [row])
    run_verification([src], tmp_path / "out", workers=1, progress=False)
    got = json.loads((tmp_path / "out/verified.jsonl").read_text())
    assert got["messages"][0] == {"role": "system", "content": "Be brief."} and "system" not in got


def test_gzipped_jsonl_and_sniffed_names(tmp_path):
    rows = [openai_form(*c) for c in CHATS]
    gz = tmp_path / "a.jsonl.gz"
    gz.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    noext = write_jsonl(tmp_path / "dump", rows)  # JSON lines under a name without a suffix
    pq_noext = write_parquet(tmp_path / "table.bin", rows)
    for p in (gz, noext, pq_noext):
        items = list(read_corpus(p))
        assert len(items) == 3 and all(isinstance(i, InputLine) and i.raw for i in items), p


def test_read_corpus_yields_locations_and_blank_lines(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n{"b": 2}\r\n')
    items = list(read_corpus(src))
    assert [(i.number, i.raw, i.where) for i in items] == [
        (1, b'{"a": 1}', f"{src}:1"), (2, None, f"{src}:2"), (3, b'{"b": 2}', f"{src}:3")]


def test_a_json_array_file_is_read_as_rows(tmp_path):
    """ShareGPT dumps are often one JSON array (ShareGPT_V3_*.json), pretty-printed."""
    rows = [sharegpt_form(*c) for c in CHATS] + [{"conversations": [{"from": "human", "value": "only a question"}]}]
    src = tmp_path / "sharegpt.json"
    src.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    report = run_verification([src], tmp_path / "out", workers=1, progress=False)
    assert report.lines == 4 and report.verified == 3 and report.invalid == 1
    got = [json.loads(l) for l in (tmp_path / "out/verified.jsonl").read_text().splitlines()]
    assert [g["messages"] for g in got] == expected_messages()
    (rej,) = [json.loads(l) for l in (tmp_path / "out/rejected.jsonl").read_text().splitlines()]
    assert rej["row"] == 3 and rej["source"] == f"{src}[3]"
    bad = tmp_path / "bad.json"
    bad.write_text('[{"messages": []},')
    with pytest.raises(UserError, match="bad.json: starts like a JSON array but is not valid JSON"):
        run_verification([bad], tmp_path / "out2", workers=1, progress=False)


def test_read_records_gives_parsed_records_or_reasons(tmp_path):
    from siamgpt_jax.corpus.readers import read_records
    from siamgpt_jax.corpus.records import Record, RecordError

    folder = tmp_path / "shards"
    write_parquet(folder / "a.parquet", [sharegpt_form(*CHATS[0])])
    (folder / "b.jsonl").write_text("\n" + json.dumps(openai_form(*CHATS[1])) + "\nnot json\n")
    got = list(read_records(folder))
    assert [w for w, _ in got] == [f"{folder / 'a.parquet'}[0]", f"{folder / 'b.jsonl'}:2", f"{folder / 'b.jsonl'}:3"]
    assert isinstance(got[0][1], Record) and got[0][1].messages == expected_messages()[0]
    assert isinstance(got[2][1], RecordError) and got[2][1].check == "invalid_json"


def test_the_same_conversations_in_both_forms_are_duplicates(tmp_path):
    """SystemChat-2.0's repository holds SystemChat_filtered.jsonl and SystemChat_filtered_sharegpt.jsonl:
    the same conversations in two forms. Read as one folder, the second copy is counted as duplicates."""
    folder = tmp_path / "SystemChat-2.0"
    write_jsonl(folder / "SystemChat_filtered.jsonl", [openai_form(*c) for c in CHATS])
    write_jsonl(folder / "SystemChat_filtered_sharegpt.jsonl", [sharegpt_form(*c) for c in CHATS])
    report = run_verification([folder], tmp_path / "out", workers=1, progress=False)
    assert report.verified == 3 and report.duplicates == 3
    assert report.per_file[str(folder / "SystemChat_filtered_sharegpt.jsonl")]["duplicates"] == 3
