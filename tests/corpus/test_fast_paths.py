"""The verification pass's fast paths give exactly the answers of the slow ones they stand in front of.

* crf_sentences.segment == pythainlp's crfcut.segment (and its tokens == word_tokenize), line by line;
* orthography.has_errors == bool(the class-string pass), exhaustively on short strings;
* thai_checks._may_loop is False only where the exact loop search finds nothing;
* the memoised word count, the B.E. four-digit shortcut and the polite-particle tail scan;
* language ID's all-Thai shortcut == lid.176's answer; the code-switching checks' shortcuts == their full rule.
"""

import itertools
import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
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


def test_sentence_count_matches_crfcut_non_blank_sentences():
    from pythainlp.tokenize import crfcut

    for line in TRICKY + _data_lines(60) + ["ก  ", "ครับ. ", "  ค่ะ", "ครับ.  ค่ะ"]:
        assert crf_sentences.count(line) == sum(1 for s in crfcut.segment(line) if s.strip()), line


def test_state_scores_equal_the_feature_sum_of_crfcut_features():
    from pythainlp.tokenize import crfcut

    cutter = crf_sentences.cutter()
    for line in TRICKY + _data_lines(30):
        toks = cutter.tokens(line)
        want = np.array([np.sum([cutter.m.weights(f) for f in feats], axis=0) for feats in crfcut._extract_features(toks)])
        np.testing.assert_allclose(cutter.state_scores(toks), want.reshape(-1, 2), rtol=0, atol=1e-9)


def _viterbi_reference(state, trans):
    """crf1dc_viterbi over (p0, p1) as the first version wrote it; None on a near tie."""
    (t00, t01), (t10, t11) = trans
    p0, p1 = state[0]
    back, margin = [], float("inf")
    for s0, s1 in state[1:]:
        a, b, c, d = p0 + t00, p1 + t10, p0 + t01, p1 + t11
        margin = min(margin, abs(a - b), abs(c - d))
        back.append((int(a < b), int(c < d)))
        p0, p1 = max(a, b) + s0, max(c, d) + s1
    if min(margin, abs(p0 - p1)) < crf_sentences._TIE_MARGIN:
        return None
    lab = int(p0 < p1)
    out = [lab]
    for pair in reversed(back):
        lab = pair[lab]
        out.append(lab)
    return out[::-1]


def test_viterbi_on_score_differences_equals_the_two_score_recursion():
    cutter = crf_sentences.cutter()
    rng = np.random.default_rng(10)
    ties = 0
    for _ in range(2000):
        # scores on a coarse grid hit exact ties (which both must hand to crfcut), the rest decide
        state = rng.normal(0, 3, size=(rng.integers(1, 40), 2)).round(rng.integers(0, 3))
        state += rng.choice([0.0, cutter.t00 - cutter.t10, cutter.t01 - cutter.t11], size=(len(state), 1)) * [0, 1]
        want = _viterbi_reference(state.tolist(), cutter.m.trans.tolist())
        assert cutter.viterbi(state) == want
        ties += want is None
    assert 20 < ties < 1900


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


# ---------------------------------------------------------------- one byte per character (script.py)

# Every cp874 character, plus characters outside it (Latin-1 letters, Lao, CJK, emoji, Cyrillic,
# an unassigned Thai code point) that send a text down the regex paths.
_CP874_CHARS = [ch for b in range(256) if (ch := bytes([b]).decode("cp874", errors="ignore"))]
_OTHER_CHARS = ["é", "ß", "ລ", "中", "😀", "я", "\u0e3b", "ǅ", "²", "\u2028"]


def _random_texts(count: int, seed: int, alphabet: list[str], max_len: int = 30) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, max_len))) for _ in range(count)]


def _nonblank_texts(rng: random.Random, parts: list[str], max_parts: int, tries: int = 4000):
    """Texts of 1..max_parts random parts, blank ones skipped, drawn lazily from `rng` (callers
    draw their kwargs from the same rng between texts)."""
    for _ in range(tries):
        text = "".join(rng.choice(parts) for _ in range(rng.randint(1, max_parts)))
        if text.strip():
            yield text


def test_byte_tables_match_their_regexes_for_every_cp874_character():
    from siamgpt_jax.corpus import script

    assert len(_CP874_CHARS) == 225  # one-to-one: every byte decodes to its own character
    for table, run_re in [
        (script._THAI_LETTER_BYTES, script._THAI_RUN_RE),
        (script._LATIN_LETTER_BYTES, script._LATIN_RUN_RE),
        (script._OTHER_LETTER_BYTES, script._OTHER_LETTER_RUN_RE),
        (script._FOREIGN_CANDIDATE_BYTES, script._FOREIGN_CANDIDATE_RE),
    ]:
        for ch in _CP874_CHARS:
            assert (ch.encode("cp874")[0] in table) == bool(run_re.fullmatch(ch)), (run_re.pattern, hex(ord(ch)))


def test_letter_counts_and_scripts_equal_the_regex_paths(monkeypatch):
    from siamgpt_jax.corpus import script

    texts = _random_texts(3000, 3, _CP874_CHARS) + _random_texts(1000, 4, _CP874_CHARS + _OTHER_CHARS)
    texts += TRICKY + _data_lines(40)
    slow_scripts = []
    with monkeypatch.context() as m:
        m.setattr(script, "single_bytes", lambda text: None)  # every text down the regex path
        for t in texts:
            slow_scripts.append(script.foreign_scripts(t))
    for t, slow in zip(texts, slow_scripts):
        assert script.count_thai_letters(t) == script.count_by_regex(script._THAI_RUN_RE, t)
        assert script.count_latin_letters(t) == script.count_by_regex(script._LATIN_RUN_RE, t)
        thai = script.count_by_regex(script._THAI_RUN_RE, t)
        letters = thai + script.count_by_regex(script._OTHER_LETTER_RUN_RE, t)
        assert script.thai_share(t) == (thai / letters if letters else 0.0)
        assert script.foreign_scripts(t) == slow
    assert sum(script.single_bytes(t) is None for t in texts) > 300  # both paths were exercised


def test_to_arabic_digits_equals_translate():
    from siamgpt_jax.corpus.script import TO_ARABIC_DIGITS, to_arabic_digits

    for t in _random_texts(2000, 5, list("๐๑๒๓๔๕๖๗๘๙0123456789 กa")) + ["", "๒๕๖๗", "ปี 2024"]:
        assert to_arabic_digits(t) == t.translate(TO_ARABIC_DIGITS)


def test_orthography_fast_reject_agrees_outside_cp874():
    for t in _random_texts(3000, 6, _ORTHO_ALPHABET + _OTHER_CHARS, max_len=8):
        assert orthography.has_errors(t) == bool(orthography.class_errors(t)), [hex(ord(c)) for c in t]


def test_loop_fast_reject_outside_cp874():
    # code points past cp874 go through the uint32 path (and NUL, which the old padding could match)
    rng = random.Random(7)
    for _ in range(1500):
        alphabet = rng.choice(["😀a", "中文", "é-", "\x00a", "ลາ"])
        t = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 50)))
        if rng.random() < 0.3:
            t = t[:5] + rng.choice(["😀ก", "中", "\x00b"]) * rng.randint(6, 10) + t[5:]
        exact = thai_checks.find_loop(t)
        if not thai_checks._may_loop(t):
            assert exact is None, t
        assert thai_checks.short_loop(t) == exact


# ---------------------------------------------------------------- no_repetition n-grams


def _no_repetition_reference(text: str, k: dict) -> tuple[bool, str]:
    """thai:no_repetition as first written: every line and every word-start n-gram counted."""
    import re
    from collections import Counter

    lines = Counter(ln.strip() for ln in text.splitlines() if len(ln.strip()) >= k["min_line_chars"])
    if lines:
        line, n = lines.most_common(1)[0]
        if n > k["max_line_repeats"]:
            return False, f"line repeated {n} times: {line[:60]!r}"
    loop = thai_checks.find_loop(text)
    if loop:
        return False, f"short unit repeated in a loop: {loop[:40]!r}"
    flat = " ".join(text.split())
    n = k["ngram_chars"]
    if len(flat) < n * (k["max_ngram_repeats"] + 1):
        return True, ""
    starts = [0] + [m.end() for m in re.finditer(r" ", flat)]
    grams = Counter(flat[i : i + n] for i in starts if i + n <= len(flat))
    gram, count = grams.most_common(1)[0] if grams else ("", 0)
    if count > k["max_ngram_repeats"]:
        return False, f"{n}-character phrase repeated {count} times: {gram!r}"
    return True, ""


def test_no_repetition_equals_counting_every_line_and_gram():
    rng = random.Random(8)
    vocab = ["ก", "ขอ", "สวัสดีครับ", "*", "การเดินทางไปเชียงใหม่ในฤดูหนาวปีนี้สนุกมาก", "ab", "a" * 12, "ค่ะ", "ขอบคุณมากครับ"]
    outcomes = Counter()
    for _ in range(4000):
        words = [rng.choice(vocab[: rng.randint(2, len(vocab))]) for _ in range(rng.randint(1, 40))]
        text = "".join(w + rng.choice([" ", "\n", "  ", " \n\n"]) for w in words)
        n, r = rng.choice([(30, 3), (5, 1), (10, 2), (1, 1), (2, 1)])  # 0 for either is invalid_kwargs
        kw = {"ngram_chars": n, "max_ngram_repeats": r, "max_line_repeats": rng.choice([1, 2, 5]), "min_line_chars": rng.choice([0, 3, 10])}
        want = _no_repetition_reference(text, kw)
        v = check("thai:no_repetition", text, kw)
        assert (v.ok, v.reason) == want, (text, kw)
        outcomes["pass" if want[0] else "phrase" if "phrase" in want[1] else want[1].split(" ")[0]] += 1
    assert len(outcomes) == 4 and min(outcomes.values()) > 200, outcomes  # pass, line, loop and phrase verdicts all seen


# ---------------------------------------------------------------- B.E. years prefilter

_YEAR_PARTS = ["ปี", "พ.ศ.", "พ. ศ", "ค.ศ.", "คริสต์ศักราช", "พุทธศักราช", "A.D.", "AD", "C.E.", "CE", "B.E.", "BE",
               "มกราคม", "ม.ค.", "ธ.ค.", "ที่", " ", "  ", "\n", " " * 70, "2567", "๒๕๖๗", "1999", "12345", "999",
               "20", "24", "ก", "A", "C", "D"]


def test_year_prefilter_never_hides_a_year():
    rng = random.Random(9)
    hits = 0
    for _ in range(6000):
        prose = "".join(rng.choice(_YEAR_PARTS) for _ in range(rng.randint(1, 8)))
        for kw in ({"min_year": 2400, "min_count": 0}, {"min_year": 2400, "min_count": 1}):
            fast = thai_checks.buddhist_era(prose, kw)
            slow = thai_checks.years_verdict(prose, kw)
            assert (fast.ok, fast.reason) == (slow.ok, slow.reason), prose
        hits += thai_checks._may_have_year(prose)
    assert 1000 < hits < 5000


# ---------------------------------------------------------------- thai:digits byte counts


def _digits_reference(text: str, k: dict) -> tuple[bool, str]:
    """thai:digits as first written: the Latin-name scrub and two regex scans on every text."""
    from siamgpt_jax.corpus.script import ARABIC_DIGIT_RE, THAI_DIGIT_RE, strip_code_and_urls

    prose = thai_checks._LATIN_ALNUM_RE.sub(" ", strip_code_and_urls(text))
    want, avoid = (THAI_DIGIT_RE, ARABIC_DIGIT_RE) if k["style"] == "thai" else (ARABIC_DIGIT_RE, THAI_DIGIT_RE)
    bad = avoid.search(prose)
    if bad:
        return False, f"{'Arabic' if k['style'] == 'thai' else 'Thai'} digit in {prose[max(0, bad.start() - 10): bad.end() + 10]!r}"
    n = len(want.findall(prose))
    if n < k["min_count"]:
        return False, f"{n} {k['style']} digits, need at least {k['min_count']}"
    return True, ""


def test_digits_byte_counts_equal_the_regex_scans():
    parts = ["ก", "ข้อ", " ", "๑", "๒๕", "3", "12", "COVID-19", "H2O", "5G", "a", "`x1`", "é", "😀", "\n"]
    rng = random.Random(11)
    verdicts = Counter()
    for text in _nonblank_texts(rng, parts, 12):
        kw = {"style": rng.choice(["thai", "arabic"]), "min_count": rng.choice([0, 1, 3])}
        want = _digits_reference(text, kw)
        v = check("thai:digits", text, kw)
        assert (v.ok, v.reason) == want, (text, kw)
        verdicts[want[0]] += 1
    assert min(verdicts.values()) > 500


def test_single_bytes_is_the_cp874_codec():
    from siamgpt_jax.corpus import script

    for t in _random_texts(500, 12, _CP874_CHARS + _OTHER_CHARS):
        try:
            want = t.encode("cp874")
        except UnicodeEncodeError:
            want = None
        assert script.single_bytes.__wrapped__(t) == want


# ---------------------------------------------------------------- check() with no kwargs


def test_check_with_no_kwargs_uses_the_defaults_unchanged():
    import copy

    from siamgpt_jax.corpus.verify import REGISTRY, KwargsError

    text = "สวัสดีครับ <<ชื่อเรื่อง>>\n* ข้อหนึ่ง ปี 2567 ค่ะ, ok\n\nป.ล. ขอบคุณ"
    with_defaults = [ins for ins in REGISTRY.values() if ins.defaults is not None]
    assert len(with_defaults) > 10
    for ins in with_defaults:
        before = copy.deepcopy(ins.defaults)
        assert ins.defaults == ins.normalize({})
        for kw in (None, {}):
            got, want = check(ins.id, text, kw), ins.fn(text, ins.normalize({}))
            assert (got.ok, got.reason) == (want.ok, want.reason), ins.id
        assert ins.defaults == before, ins.id  # no check function wrote into its kwargs
    for bad in ([], "", 0):
        with pytest.raises(KwargsError):
            check("thai:orthography", text, bad)
    assert not check("thai:orthography", " \n\t", {}).ok


# ---------------------------------------------------------------- JSON written from encoded turns


def _record_lines() -> list[bytes]:
    rng = random.Random(13)
    strings = ["สวัสดีครับ", 'quote " and \\ backslash', "tab\tnew\nline", "\x00\x1f ctl", "😀 emoji", "\u2028", "\x00turns\x00", ""]
    lines = []
    for i in range(300):
        turns = [{"role": r, "content": rng.choice(strings[:-1]) + str(i)} for r in ("user", "assistant")]
        if rng.random() < 0.3:
            turns = [{"from": {"user": "human", "assistant": "gpt"}[t["role"]], "value": t["content"]} for t in turns]
        rec = {rng.choice(["messages", "conversations"]): turns}
        for key in rng.sample(["id", "stream", "source", "meta", "x"], rng.randint(0, 4)):
            rec[key] = rng.choice([rng.choice(strings), 1.5, None, True, [1, "a"], {"b": [strings[1]], "a": 2}])
        if rng.random() < 0.5:
            rec["instruction_id_list"], rec["kwargs"] = ["thai:digits"], [{"style": "thai", "z": rng.choice(strings), "a": 1}]
        lines.append(json.dumps(rec, ensure_ascii=rng.random() < 0.5).encode())
    return lines


def test_content_id_and_messages_json_equal_json_dumps():
    import hashlib

    from siamgpt_jax.corpus.records import RecordError, parse_line

    checked = 0
    for raw in _record_lines():
        try:
            rec = parse_line(raw)
        except RecordError:
            continue
        key = {"messages": rec.messages, "instruction_id_list": rec.instruction_ids, "kwargs": rec.kwargs_list}
        blob = json.dumps(key, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        assert rec.content_id() == hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24]
        assert rec.messages_json() == json.dumps(rec.messages, ensure_ascii=False, separators=(",", ":"))
        checked += 1
    assert checked > 200


def test_output_lines_from_worker_tails_equal_dumps():
    from siamgpt_jax.corpus import pipeline
    from siamgpt_jax.corpus.records import RecordError, parse_line

    for raw in _record_lines():
        try:
            rec = parse_line(raw)
        except RecordError:
            continue
        assert pipeline._record_json({"messages": rec.messages, **rec.extra}, rec) == pipeline.line_json({"messages": rec.messages, **rec.extra})
        res = pipeline._verify_one(raw, pipeline.Limits(), (), 0.5)
        record = {"id": res["id"], "stream": rec.stream, "messages": rec.messages, **rec.extra}
        if res["ok"]:
            want = pipeline._dump({"id": res["id"], "stream": rec.stream, "source": "dir/a.jsonl:7",
                                   **{k: v for k, v in record.items() if k not in ("id", "stream", "source")}})
            assert pipeline._verified_line(res, rec.stream, "dir/a.jsonl:7") == want
        else:
            want = pipeline._dump({"source": "dir/a.jsonl:7", "file": "dir/a.jsonl", "line": 7, "stream": rec.stream, "kind": res["kind"],
                                   "failures": res["failures"], "record": {"messages": rec.messages, **rec.extra}})
            assert pipeline._rejected_line(res, "dir/a.jsonl:7", "dir/a.jsonl", 7) == want


def test_compact_json_equals_json_dumps():
    from siamgpt_jax.corpus.records import compact_json

    values = [{"b": [1, 2.5, None, True], "a": {"y": "ไทย\n\"", "x": -0.0}}, "😀\x00", 1e300, [], {}, [{"z": 1, "a": [float("inf")]}]]
    for sort_keys in (False, True):
        dump = compact_json(sort_keys)
        for v in values:
            assert dump(v) == json.dumps(v, ensure_ascii=False, sort_keys=sort_keys, separators=(",", ":"))


# ---------------------------------------------------------------- postscript and bullets shortcuts


def test_postscript_and_bullets_equal_the_full_patterns():
    import re

    from siamgpt_jax.corpus.ifeval_checks import _postscript_pattern

    parts = ["ป.ล.", "ป. ล.", "ป.ป.ล.", "P.S.", "p. s", "P.P.S", "\n", " ", "  ", "* ", "*", "**", "- ", "-", "ข้อ", "ok", "\t", "\u2028"]
    rng = random.Random(14)
    seen = Counter()
    for text in _nonblank_texts(rng, parts, 10):
        marker = rng.choice(["ป.ล.", "ป.ล", "ป.ป.ล.", "P.S.", "p.p.s", "หมายเหตุ"])  # "" is invalid_kwargs
        want = bool(re.search(_postscript_pattern(marker) + r".*$", text.lower(), flags=re.MULTILINE))
        assert check("detectable_content:postscript", text, {"postscript_marker": marker}).ok == want, (text, marker)
        # the reference: every line, one at a time
        bullets = sum(1 for line in re.split(r"\n", text) if re.fullmatch(r"[ \t]*[*-][ \t]+\S.*", line) and not re.fullmatch(r"[ \t]*([*_-])(?:[ \t]*\1){2,}[ \t]*", line))
        for n in (bullets, bullets + 1):
            v = check("detectable_format:number_bullet_lists", text, {"num_bullets": n})
            assert (v.ok, v.reason) == (n == bullets, "" if n == bullets else f"bullet points: found {bullets}, need exactly {n}")
        seen[want, min(bullets, 2)] += 1
    assert len(seen) == 6


def test_digit_runs_from_byte_marks_equal_the_regex():
    from siamgpt_jax.corpus import script

    rng = random.Random(15)
    for _ in range(5000):
        t = "".join(rng.choice(["1", "๒", "a", " ", "12345", "ก", "٣"]) for _ in range(rng.randint(0, 12)))
        data = script.single_bytes(t)
        if data is None:
            continue  # (Arabic-Indic digits are outside cp874: the regex path)
        want = [m.span() for m in thai_checks._DIGIT_RUN_RE.finditer(t)]
        assert list(thai_checks._mark_runs(data.translate(thai_checks._DIGIT_MARKS))) == want, t


def test_whitespace_chunks_are_str_split():
    import re
    import sys

    space = re.compile(r"\s")
    for cp in range(sys.maxunicode + 1):
        ch = chr(cp)
        assert bool(space.fullmatch(ch)) == ch.isspace(), hex(cp)
    for t in TRICKY + _random_texts(500, 16, [" ", "\t", "\n", "\u00a0", "\u2003", "\u200b", "ก", "a", "\x1c"]):
        assert re.findall(r"\S+", t) == t.split()  # what the word counters used before str.split()


def test_in_process_pass_hands_the_heap_back_to_the_collector(tmp_path):
    import gc

    from siamgpt_jax.corpus.pipeline import run_verification

    before = gc.get_freeze_count()
    run_verification([ROOT / "data/samples/autoif_th_sample.jsonl"], tmp_path, workers=1, progress=False)
    assert gc.get_freeze_count() == before


# ---------------------------------------------------------------- language ID and code-switching shortcuts


def test_all_thai_shortcut_agrees_with_lid176():
    """langid answers th without the model when every letter is Thai: the model says th too."""
    from siamgpt_jax.corpus import langid
    from siamgpt_jax.corpus.script import strip_code_and_urls, thai_share

    texts = [ln for ln in _data_lines(400) if thai_share(strip_code_and_urls(ln)) == 1.0]
    texts += ["ก", "ครับ", "๑๒๓ บาท", "สวัสดี!!! 555", "ไม่"]  # (a text of only ๆ and ฯ is th by its script; the model guesses)
    assert len(texts) > 100
    model = langid._detector()
    for text in texts:
        assert model.detect(strip_code_and_urls(text), model="lite", k=1)[0]["lang"] == "th", text


_MIX_PARTS = ["ผมใช้", " iPhone 15 Pro Max", " this is very important", ' "hello world"', " `code here`", " 你好",
              " The Lord of the Rings", "ครับ", " and", " ข้อความภาษาไทยยาว ๆ", " Python", "\n", " machine learning"]


def test_response_language_shortcut_equals_the_full_share():
    """A share already at the ratio stays there when names, quotes and prompt terms are left out."""
    from siamgpt_jax.corpus import code_switching
    from siamgpt_jax.corpus.script import strip_code_and_urls, thai_share

    rng = random.Random(21)
    seen = Counter()
    for _ in range(1500):
        text = "".join(rng.choice(_MIX_PARTS) for _ in range(rng.randint(1, 8)))
        if not text.strip():
            continue
        prompt = rng.choice(["", "อธิบาย machine learning", "คำว่า 你好 คืออะไร"])
        ratio = rng.choice([0.3, 0.6, 0.9])
        full = thai_share(code_switching.without_names(code_switching.exempt_removed(text, prompt), prompt))
        assert full >= thai_share(strip_code_and_urls(text)) - 1e-12, text
        v = check("thai:response_language", text, {"min_ratio": ratio}, prompt=prompt)
        assert v.ok == (full >= ratio), (text, prompt, ratio)
        seen[v.ok] += 1
    assert min(seen.values()) > 200


def test_no_code_switching_shortcut_only_skips_texts_with_nothing_to_judge():
    from siamgpt_jax.corpus import code_switching
    from siamgpt_jax.corpus.script import count_latin_letters, foreign_scripts, strip_code_and_urls

    rng = random.Random(22)
    for _ in range(1500):
        text = "".join(rng.choice(_MIX_PARTS) for _ in range(rng.randint(1, 8)))
        prose = strip_code_and_urls(text)
        if not text.strip() or count_latin_letters(prose) or foreign_scripts(prose):
            continue
        # the shortcut passes it: the full rule finds no other script and no Latin run either
        full = code_switching.exempt_removed(text)
        assert not foreign_scripts(full) and not code_switching.latin_runs(full), text
        assert check("thai:no_code_switching", text, {"policy": "strict"}).ok
