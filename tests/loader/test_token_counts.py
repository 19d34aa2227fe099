"""Token accounting (exact, with the real Qwen3 tokenizer) and epochs per source from the mix."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from siamgpt_jax.loader import token_counts
from siamgpt_jax.loader.chat import encode_chat, encode_chat_lengths
from siamgpt_jax.loader.epochs import SourceStats, format_plan, plan_epochs, plan_for_config, source_stats
from siamgpt_jax.loader.pipeline import LoaderConfig, SourceConfig
from siamgpt_jax.loader.source import JsonlSource
from siamgpt_jax.loader.token_counts import TokenCounts, count_file, count_records

from .conftest import read_records

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def private_count_cache(tmp_path, monkeypatch):
    """Counts cached in this test's folder, not the user's cache."""
    monkeypatch.setattr(token_counts, "cache_dir", lambda: tmp_path / "cache")


@pytest.mark.parametrize("train_on, empty_think", [("all_assistant", True), ("last_assistant", True), ("all_assistant", False)])
def test_lengths_equal_encode_chat(tok, corpus, train_on, empty_think):
    recs = read_records(corpus)
    totals, trained = encode_chat_lengths(tok, [r["messages"] for r in recs], train_on=train_on, empty_think=empty_think)
    for r, t, m in zip(recs, totals, trained):
        ids, mask = encode_chat(tok, r["messages"], train_on=train_on, empty_think=empty_think)
        assert (t, m) == (len(ids), sum(mask))


def test_repeated_pieces_and_the_memo_give_the_same_counts(tok, corpus):
    recs = read_records(corpus)
    convs = [r["messages"] for r in recs] * 2  # every system prompt and user turn repeats
    memo = {}
    first = encode_chat_lengths(tok, convs[:50], memo=memo)
    second = encode_chat_lengths(tok, convs[50:], memo=memo)
    assert memo and all(p.startswith(("system\n", "user\n")) for p in memo)
    want = [(len(ids), sum(mask)) for ids, mask in (encode_chat(tok, c) for c in convs)]
    assert list(zip(first[0] + second[0], first[1] + second[1])) == want
    assert tok.encode_batch(["สวัสดีครับ", "hello world", ""]) == [tok.encode("สวัสดีครับ"), tok.encode("hello world"), []]


def test_exact_counts_on_a_small_fixture(tok):
    """Hand-checkable: Qwen3 ChatML pieces of one two-turn conversation."""
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    (total,), (trainable,) = encode_chat_lengths(tok, [msgs])
    n = lambda s: len(tok.encode(s))  # noqa: E731
    # <|im_start|>system\nBe brief.<|im_end|>\n  <|im_start|>user\nhi<|im_end|>\n
    # <|im_start|>assistant\n<think>\n\n</think>\n\nhello<|im_end|>\n
    expect = (1 + n("system\nBe brief.") + 1 + n("\n")) + (1 + n("user\nhi") + 1 + n("\n")) \
        + (1 + n("assistant\n") + n("<think>\n\n</think>\n\n") + n("hello") + 1 + n("\n"))
    assert total == expect and trainable == n("hello") + 1
    ids, mask = encode_chat(tok, msgs)
    assert tok.decode(ids).count("<|im_start|>") == 3 and sum(mask) == trainable


def test_invalid_conversations_name_the_record(tok):
    with pytest.raises(ValueError, match="a.jsonl:3"):
        encode_chat_lengths(tok, [[{"role": "user", "content": "hi"}]], where=["a.jsonl:3"])


def test_verify_reports_tokens_per_stream(tmp_path, tok):
    from siamgpt_jax.corpus.pipeline import run_verification

    samples = [ROOT / "data/samples/systemchat_sample.jsonl", ROOT / "data/samples/autoif_th_sample.jsonl"]
    cfg = LoaderConfig(seq_len=256)
    report = run_verification(samples, tmp_path, workers=1, progress=False, tokens=cfg, tokenizer=tok)
    verified = read_records(tmp_path / "verified.jsonl")
    for stream in ("systemchat", "autoif"):
        encoded = [encode_chat(tok, r["messages"]) for r in verified if r["stream"] == stream]
        lengths = np.asarray([len(ids) for ids, _ in encoded])
        st = report.tokens["per_stream"][stream]
        assert st["records"] == len(encoded) > 0
        assert st["tokens"] == lengths.sum() and st["trainable_tokens"] == sum(sum(m) for _, m in encoded)
        assert st["over_seq_len"] == (lengths > 256).sum() > 0 and st["tokens_cut"] == (lengths[lengths > 256] - 256).sum()
        assert sum(st["length_histogram"].values()) == st["records"] and st["length"]["max"] == lengths.max()
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["tokens"]["per_stream"] == report.tokens["per_stream"] and saved["tokens"]["seq_len"] == 256

    # verify seeded the cache for the file it wrote: train --plan reads it without tokenizing
    def no_counting(*a, **k):
        raise AssertionError("counted again")

    real = token_counts.count_records
    token_counts.count_records = no_counting
    try:
        cached = count_file(tmp_path / "verified.jsonl", tok, cfg, progress=False)
    finally:
        token_counts.count_records = real
    assert cached.total.sum() == report.tokens["all"]["tokens"] and len(cached) == report.verified


def test_count_file_matches_the_loader_split(tok, corpus):
    """The held-out split the counts apply is the one JsonlSource applies, record for record."""
    cfg = LoaderConfig(eval_fraction=0.3)
    counts = count_file(corpus, tok, cfg, progress=False)
    for stream in ("systemchat", "autoif", None):
        for split in ("train", "eval"):
            src = JsonlSource(corpus, stream=stream, split=split, eval_fraction=0.3)
            keep = counts.select(stream, split, 0.3)
            assert keep.sum() == len(src), (stream, split)
            recs = [json.loads(src[i][0]) for i in range(len(src))]
            assert counts.total[keep].sum() == sum(len(encode_chat(tok, r["messages"])[0]) for r in recs)


def test_bad_records_name_their_line(tmp_path, tok):
    path = tmp_path / "v.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n\n{"prompt": "x"}\n')
    with pytest.raises(ValueError, match=r"v.jsonl:3: record has no 'messages'"):
        count_file(path, tok, LoaderConfig(), progress=False)
    path.write_text("not json\n")
    with pytest.raises(ValueError, match=r"v.jsonl:1: invalid JSON"):
        count_file(path, tok, LoaderConfig(), progress=False)


def test_files_read_one_after_another(tmp_path, tok, corpus):
    """A hub dataset's files count as the loader concatenates them; streams are matched by name."""
    lines = Path(corpus).read_text().splitlines(keepends=True)
    parts = []
    for name, chunk in (("a", lines[:1]), ("b", lines[1:25]), ("c", lines[25:])):
        (tmp_path / f"{name}.jsonl").write_text("".join(chunk))
        parts.append(count_file(tmp_path / f"{name}.jsonl", tok, LoaderConfig(), progress=False))
    whole = count_file(corpus, tok, LoaderConfig(), progress=False)
    joined = TokenCounts.concatenate(parts)
    assert parts[0].streams != whole.streams or len(parts[0].streams) == 1
    for stream in whole.streams:
        assert (joined.total[joined.select(stream)] == whole.total[whole.select(stream)]).all()
    assert (joined.split_hash == whole.split_hash).all()
    assert (token_counts.count_source(corpus, tok, LoaderConfig(), progress=False).total == whole.total).all()


def test_a_changed_file_is_counted_again(tmp_path, tok, corpus):
    path = tmp_path / "v.jsonl"
    lines = Path(corpus).read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:10]))
    assert len(count_file(path, tok, LoaderConfig(), progress=False)) == 10
    path.write_text("".join(lines[:12]))
    assert len(count_file(path, tok, LoaderConfig(), progress=False)) == 12


def synthetic(n: int, mean: int, stream: str = "s") -> TokenCounts:
    total = np.full(n, mean, np.int64)
    return TokenCounts([stream], np.zeros(n, np.int32), total, total // 2, np.arange(n, dtype=np.uint64) * 2**40)


def test_epochs_with_the_papers_numbers():
    """4,096 steps x 128 rows x 4,096 tokens against ~320k pairs (160k per stream, 1,000 tokens each)."""
    cfg = LoaderConfig(seq_len=4096)
    a, b = source_stats(synthetic(160_000, 1000), cfg, None), source_stats(synthetic(160_000, 1000), cfg, None)
    plans = plan_epochs([("a", "systemchat", 0.5, a), ("b", "autoif", 0.5, b)], steps=4096, global_batch=128, seq_len=4096)
    budget = 4096 * 128 * 4096
    assert budget == 4096 * 524_288
    for p in plans:
        assert p.share == 0.5 and p.records_drawn == pytest.approx(budget / 1000 / 2)
        assert p.epochs == pytest.approx(budget / 1000 / 2 / 160_000) and 6.7 < p.epochs < 6.72
    text = format_plan(plans, steps=4096, global_batch=128, seq_len=4096)
    assert "2,147,483,648 token slots" in text and "6.71" in text


def test_epochs_follow_weights_and_lengths():
    cfg = LoaderConfig(seq_len=4096)
    long = source_stats(synthetic(1000, 3000), cfg, None)
    short = source_stats(synthetic(4000, 500), cfg, None)
    plans = plan_epochs([("l", None, 3.0, long), ("s", None, 1.0, short)], steps=10, global_batch=4, seq_len=4096)
    drawn = 10 * 4 * 4096 / (0.75 * 3000 + 0.25 * 500)  # records per run: mixed by record, not by token
    assert [p.records_drawn for p in plans] == pytest.approx([0.75 * drawn, 0.25 * drawn])
    assert [p.epochs for p in plans] == pytest.approx([0.75 * drawn / 1000, 0.25 * drawn / 4000])
    assert sum(p.tokens_drawn for p in plans) == pytest.approx(10 * 4 * 4096)


def test_cut_and_dropped_records():
    counts = TokenCounts(["s"], np.zeros(4, np.int32), np.asarray([100, 200, 5000, 9000]), np.asarray([50, 100, 4000, 8000]),
                         np.zeros(4, np.uint64))
    cut = source_stats(counts, LoaderConfig(seq_len=4096), "s")
    assert (cut.records, cut.tokens) == (4, 100 + 200 + 4096 + 4096)
    dropped = source_stats(counts, LoaderConfig(seq_len=4096, too_long="drop"), "s")
    assert (dropped.records, dropped.tokens, dropped.trainable) == (2, 300, 150)
    with pytest.raises(ValueError, match="no training records"):
        plan_epochs([("x", "s", 1.0, source_stats(counts, LoaderConfig(), "other"))], steps=1, global_batch=1, seq_len=8)


def test_train_plan_prints_epochs_without_training(tmp_path, tok, corpus):
    cfg_path = tmp_path / "job.yaml"
    cfg_path.write_text(
        f"run_dir: {tmp_path / 'run'}\n"
        "data:\n  sources:\n"
        f"    - {{path: {corpus}, stream: systemchat, weight: 3}}\n"
        f"    - {{path: {corpus}, stream: autoif, weight: 1}}\n"
        "  seq_len: 512\n  eval_fraction: 0.1\n"
        "train:\n  steps: 50\n  global_batch: 8\n")
    res = subprocess.run([sys.executable, "-m", "siamgpt_jax.cli", "train", "--config", str(cfg_path), "--plan", "--no-progress"],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    data = LoaderConfig(sources=(SourceConfig(str(corpus), 3.0, "systemchat"), SourceConfig(str(corpus), 1.0, "autoif")),
                        seq_len=512, eval_fraction=0.1)
    plans = plan_for_config(data, tok, steps=50, global_batch=8, progress=False)
    assert res.stdout.strip() == format_plan(plans, steps=50, global_batch=8, seq_len=512)
    assert [round(p.share, 2) for p in plans] == [0.75, 0.25] and all(p.epochs > 0 for p in plans)
    assert not (tmp_path / "run").exists()  # nothing trained, no run folder


def test_a_rerun_with_tokens_writes_the_same_report(tmp_path, tok):
    from siamgpt_jax.corpus.pipeline import run_verification

    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a " * i}]}) + "\n"
                           for i in range(1, 30)))
    for out in ("a", "b"):
        run_verification([src], tmp_path / out, workers=1, progress=False, tokens=LoaderConfig(seq_len=16), tokenizer=tok)
    assert (tmp_path / "a/report.json").read_bytes() == (tmp_path / "b/report.json").read_bytes()
    assert json.loads((tmp_path / "a/report.json").read_text())["tokens"]["per_stream"]["systemchat"]["over_seq_len"] > 0
