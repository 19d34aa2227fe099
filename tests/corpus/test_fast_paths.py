"""The verification pass's fast paths give exactly the answers of the slow ones they stand in front of.

* crf_sentences.segment == pythainlp's crfcut.segment (and its tokens == word_tokenize), line by line;
* orthography.has_errors == bool(the class-string pass), exhaustively on short strings;
* thai_checks._may_loop is False only where the exact loop search finds nothing;
* the memoised word count, the B.E. four-digit shortcut and the polite-particle tail scan.
"""

import itertools
import json
import random
from pathlib import Path

import pytest

from siamgpt_jax.corpus import crf_sentences, orthography, thai_checks, thai_text
from siamgpt_jax.corpus.script import is_thai_text
from siamgpt_jax.corpus.verify import check

ROOT = Path(__file__).resolve().parents[2]

# Lines that poke at the tokenizer split and crfcut's post-rules: dictionary words that contain a
# space (ราว ๆ, รัว ๆ), formatted numbers, tabs and double spaces, terminal punctuation, Latin, emoji.
TRICKY = [
    "เขามาราว ๆ สิบโมง แล้วก็รัว ๆ กลองไม่หยุด",
    "ราคา 1,234.50 บาท เวลา 10:30 น. ที่อยู่ IP 127.0.0.1 นะ",
    "ฉันไปตลาด\tซื้อผัก  แล้วกลับบ้าน   ตอนเย็น",
    "วันนี้ฝนตก! พรุ่งนี้จะตกไหม? ไม่รู้เหมือนกัน. แต่หวังว่าจะไม่ตก",
    "ใช้ Python 3.11 กับ JAX เพื่อฝึกโมเดล 😀 ได้ผลดีมาก",
    "ๆ ๆ ๆ",
    "ก",
    "สวัสดีครับ ผมชื่อสมชาย ยินดีที่ได้รู้จักครับ วันนี้จะมาเล่าเรื่องการเดินทางไปเชียงใหม่ให้ฟัง",
]


def _data_lines(limit: int = 150) -> list[str]:
    lines: list[str] = []
    for path in sorted((ROOT / "data").glob("**/*.jsonl")):
        for raw in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            turns = rec.get("messages") if isinstance(rec.get("messages"), list) else []
            texts = [t.get("content") for t in turns if isinstance(t, dict)] + [rec.get("prompt"), rec.get("response")]
            for text in texts:
                if isinstance(text, str):
                    lines += [ln.strip() for ln in text.splitlines() if ln.strip() and is_thai_text(ln)]
    lines = list(dict.fromkeys(lines))
    random.Random(0).shuffle(lines)
    return lines[:limit]


def test_crf_sentences_match_crfcut_on_shipped_data_and_tricky_lines():
    from pythainlp.tokenize import crfcut, word_tokenize

    lines = TRICKY + _data_lines()
    assert len(lines) > 100
    cutter = crf_sentences.cutter()
    before = crf_sentences.fallbacks
    for line in lines:
        assert cutter.tokens(line) == word_tokenize(line), line
        assert crf_sentences.segment(line) == crfcut.segment(line), line
    assert crf_sentences.fallbacks == before  # decided by the fast path, not handed back


def test_space_words_are_not_split():
    # "ราว ๆ" is one newmm token only when the tokenizer sees it whole.
    toks = crf_sentences.cutter().tokens("เขามาราว ๆ สิบโมง")
    assert "ราว ๆ" in toks


def test_near_tie_falls_back_to_crfcut(monkeypatch):
    from pythainlp.tokenize import crfcut

    monkeypatch.setattr(crf_sentences, "_TIE_MARGIN", float("inf"))  # every line counts as a tie
    before = crf_sentences.fallbacks
    line = TRICKY[3]
    assert crf_sentences.segment(line) == crfcut.segment(line)
    assert crf_sentences.fallbacks == before + 1


def test_crf_model_reader_rejects_other_files(tmp_path):
    bad = tmp_path / "x.model"
    bad.write_bytes(b"\0" * 64)
    with pytest.raises(ValueError, match="not a CRFsuite"):
        crf_sentences.CrfModel(bad)


def test_sentence_counts_unchanged_through_thai_text():
    from pythainlp.tokenize import crfcut

    text = "\n".join(TRICKY)
    want = sum(1 for ln in text.splitlines() if is_thai_text(ln.strip()) for s in crfcut.segment(ln.strip()) if s.strip())
    got = sum(thai_text._thai_line_sentences(ln.strip()) for ln in text.splitlines() if is_thai_text(ln.strip()))
    assert got == want


# ---------------------------------------------------------------- orthography

_ORTHO_ALPHABET = (
    [chr(c) for c in range(0x0E01, 0x0E4F)]  # every classified Thai character
    + ["ๆ", "ฯ", "๑", "\u0e5c", "a", " ", "\n", "€", "\u00a0", "😀"]  # unclassified and non-Thai
)


def test_orthography_fast_reject_agrees_exhaustively_on_pairs():
    for a, b in itertools.product(_ORTHO_ALPHABET, repeat=2):
        for t in (a + b, a, "ก" + a + b):
            assert orthography.has_errors(t) == bool(orthography.class_errors(t)), [hex(ord(c)) for c in t]


def test_orthography_fast_reject_agrees_on_random_strings():
    rng = random.Random(1)
    hits = 0
    for _ in range(5000):
        t = "".join(rng.choice(_ORTHO_ALPHABET) for _ in range(rng.randint(0, 8)))
        slow = orthography.class_errors(t)
        hits += bool(slow)
        assert orthography.has_errors(t) == bool(slow), [hex(ord(c)) for c in t]
        assert orthography.errors(t) == slow
    assert 0 < hits < 5000


# ---------------------------------------------------------------- repetition


def test_loop_fast_reject_never_hides_a_loop():
    rng = random.Random(2)
    found = 0
    for _ in range(3000):
        alphabet = rng.choice(["ab", "abc", "ฮ่า", "ab-", "กขคง ", "-="])
        t = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        if rng.random() < 0.3:
            t = t[:10] + rng.choice(["ฮ่า", "ab", "x", "นะ"]) * rng.randint(6, 10) + t[10:]
        exact = thai_checks.find_loop(t)
        found += exact is not None
        if not thai_checks._may_loop(t):
            assert exact is None, t
        assert thai_checks.short_loop(t) == exact
    assert found > 100


def test_loop_with_nul_characters_is_decided_exactly():
    t = "ab\x00" * 20
    assert thai_checks.short_loop(t) == thai_checks.find_loop(t)


# ---------------------------------------------------------------- small shortcuts


def test_count_words_equals_len_words():
    for text in TRICKY + _data_lines(40) + ["", "hello, world 3.14 ok", "COVID-19 ระบาด"]:
        assert thai_text.count_words(text) == len(thai_text.words(text))


@pytest.mark.parametrize("text,kwargs,ok,reason", [
    ("ไม่มีปีเลยสักปีครับ", {}, True, ""),
    ("ไม่มีปีเลยสักปีครับ", {"min_count": 2}, False, "0 B.E. years written, need at least 2"),
    ("ปี ๒๕๖๗ ฝนตกมาก", {"min_count": 1}, True, ""),  # Thai digits still reach the full scan
    ("ค.ศ. 2024 ฝนตกมาก", {}, False, "Gregorian year: 'ค.ศ. 2024'"),
])
def test_buddhist_era_four_digit_shortcut(text, kwargs, ok, reason):
    v = check("thai:buddhist_era", text, kwargs)
    assert (v.ok, v.reason) == (ok, reason)


@pytest.mark.parametrize("text,ok", [
    ("ขอบคุณครับ!!! 😀😀 ...", True),
    ("ขอบคุณค่ะ **", True),
    ("ขอบคุณนะ", False),
    ("!!!", False),
])
def test_polite_particle_tail(text, ok):
    v = check("thai:polite_particle", text, {})
    assert v.ok is ok, v.reason


def test_polite_particle_reason_shows_the_stripped_tail():
    v = check("thai:polite_particle", "ขอบคุณนะ?!", {})
    assert not v.ok and v.reason.endswith("...'ขอบคุณนะ'")
