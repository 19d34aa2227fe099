"""The `thai:` stability checks: script purity, Thai share, orthography, digits, politeness,
Buddhist-era years and runaway repetition. All are regex/table driven (no tokenizer), so the pass
can run them on every Thai assistant turn. Semantics are documented in docs/VERIFIERS.md.
"""

from __future__ import annotations

import re
from collections import Counter
from operator import itemgetter
from typing import Any

import numpy as np

from siamgpt_jax.corpus import code_switching, orthography
from siamgpt_jax.corpus.registry import Param, Verdict, at_least_one, nonempty_items, register, unit_interval
from siamgpt_jax.corpus.script import (
    ARABIC_DIGIT_RE,
    THAI_DIGIT_RE,
    byte_table,
    count_bytes_in,
    count_latin_letters,
    count_thai_letters,
    foreign_scripts,
    single_bytes,
    strip_code_and_urls,
    thai_share,
    to_arabic_digits,
)

THAI = "thai"


@register(
    "thai:no_code_switching", THAI,
    (
        Param("policy", str, required=False, default="default", choices=("default", "lenient", "strict")),
        Param("allowed_terms", list, required=False, default=(), rule=nonempty_items),
        Param("max_latin_words", int, required=False, default=3),
    ),
    th=lambda k: "ตอบเป็นภาษาไทยล้วน ห้ามปนอักษรหรือวลีภาษาอื่น"
    + (f" (ยกเว้นคำว่า {', '.join(k['allowed_terms'])})" if k["allowed_terms"] else ""),
    en=lambda k: "Answer in Thai only; do not mix in other scripts or inserted foreign phrases"
    + (f" (allowed terms: {', '.join(k['allowed_terms'])})" if k["allowed_terms"] else "") + ".",
    uses_prompt=True,
)
def no_code_switching(text: str, k: dict[str, Any], prompt: str = "") -> Verdict:
    """The rule is code_switching's: names, quotes, code and the prompt's own terms are not switching."""
    prose = strip_code_and_urls(text)
    if not count_latin_letters(prose) and not foreign_scripts(prose):
        return Verdict(True)  # the usual Thai turn: nothing to tell apart
    prose = code_switching.exempt_removed(text, prompt, k["allowed_terms"])
    scripts = foreign_scripts(prose)
    if scripts:
        return Verdict(False, "other script: " + "; ".join(f"{name} in {ex!r}" for name, ex in scripts.items()))
    if not count_latin_letters(prose):
        return Verdict(True)
    runs = code_switching.latin_runs(prose, prompt)
    if k["policy"] == "strict":  # names too: only the prompt's terms, allowed terms, quotes and code
        used = code_switching.prompt_terms(prompt)[0] if prompt else frozenset()
        for m, _ in runs:
            word = next((w for w in code_switching.latin_words(m.group()) if w.lower() not in used), None)
            if word:
                return Verdict(False, f"Latin text under strict policy: {word!r}")
    english = [m.group() for m, is_name in runs if not is_name]
    latin, thai = sum(map(count_latin_letters, english)), count_thai_letters(prose)
    if latin > thai:
        return Verdict(False, f"English text outweighs Thai ({latin} Latin vs {thai} Thai letters)")
    if k["policy"] == "default":
        n = k["max_latin_words"]
        for run in english:
            if len(code_switching.latin_words(run)) > n:
                return Verdict(False, f"English phrase of more than {n} words inserted: {run[:80]!r}")
    return Verdict(True)


@register(
    "thai:response_language", THAI,
    (Param("min_ratio", float, required=False, default=0.6, rule=unit_interval),),
    th=lambda k: f"ตอบเป็นภาษาไทย (ตัวอักษรไทยอย่างน้อย {k['min_ratio']:.0%} ของตัวอักษรทั้งหมด)",
    en=lambda k: f"Answer in Thai (at least {k['min_ratio']:.0%} of the letters Thai).",
    uses_prompt=True,
)
def response_language(text: str, k: dict[str, Any], prompt: str = "") -> Verdict:
    """Thai letters / all letters, over what code_switching counts as prose (names, quotes, code and
    the prompt's terms left out); an answer that is only JSON is measured on its string values."""
    if text.lstrip()[:1] in ("`", "{", "["):
        values = code_switching.json_values(text)
        if values is not None:
            text = values
    share = thai_share(strip_code_and_urls(text))
    if share < k["min_ratio"]:  # leaving out names and the like only removes non-Thai letters
        share = thai_share(code_switching.without_names(code_switching.exempt_removed(text, prompt), prompt))
    ok = share >= k["min_ratio"]
    return Verdict(ok, "" if ok else f"Thai letter share {share:.2f} below {k['min_ratio']:.2f} (names, quotes and code left out)")


@register(
    "thai:orthography", THAI, (),
    th=lambda k: "เขียนภาษาไทยให้ถูกหลักการประสมอักษร (ไม่มีสระหรือวรรณยุกต์ลอย ไม่ซ้อนวรรณยุกต์)",
    en=lambda k: "Write well-formed Thai (no floating vowels or tone marks, no stacked tone marks).",
)
def thai_orthography(text: str, k: dict[str, Any]) -> Verdict:
    errs = orthography.errors(strip_code_and_urls(text))
    return Verdict(not errs, "; ".join(f"{reason}: {ex!r}" for reason, ex in errs))


# Digits glued to Latin letters are part of names (COVID-19, H2O, 5G, MP3), not numbers to restyle.
_LATIN_ALNUM_RE = re.compile(r"[A-Za-z]+[-_]?\d[\w-]*|\d+[A-Za-z]\w*")
_ASCII_LETTER_BYTES = byte_table(re.compile(r"[A-Za-z]"))
_DIGIT_BYTES = {THAI_DIGIT_RE: byte_table(THAI_DIGIT_RE), ARABIC_DIGIT_RE: byte_table(ARABIC_DIGIT_RE)}


@register(
    "thai:digits", THAI,
    (Param("style", str, choices=("thai", "arabic")), Param("min_count", int, required=False, default=0)),
    th=lambda k: "เขียนตัวเลขทั้งหมดด้วย" + ("เลขไทย (๐-๙)" if k["style"] == "thai" else "เลขอารบิก (0-9)"),
    en=lambda k: "Write every number with " + ("Thai digits (๐-๙)." if k["style"] == "thai" else "Arabic digits (0-9)."),
)
def thai_digits(text: str, k: dict[str, Any]) -> Verdict:
    prose = strip_code_and_urls(text)
    want, avoid = (THAI_DIGIT_RE, ARABIC_DIGIT_RE) if k["style"] == "thai" else (ARABIC_DIGIT_RE, THAI_DIGIT_RE)
    data = single_bytes(prose)
    if data is not None and not count_bytes_in(data, _ASCII_LETTER_BYTES):
        # _LATIN_ALNUM_RE needs an ASCII letter, so the prose stays as it is; digits are counted in bytes
        bad = avoid.search(prose) if count_bytes_in(data, _DIGIT_BYTES[avoid]) else None
        n = count_bytes_in(data, _DIGIT_BYTES[want])
    else:
        prose = _LATIN_ALNUM_RE.sub(" ", prose)
        bad = avoid.search(prose)
        n = len(want.findall(prose))
    if bad:
        return Verdict(False, f"{'Arabic' if k['style'] == 'thai' else 'Thai'} digit in {prose[max(0, bad.start() - 10): bad.end() + 10]!r}")
    if n < k["min_count"]:
        return Verdict(False, f"{n} {k['style']} digits, need at least {k['min_count']}")
    return Verdict(True)


POLITE = {
    "male": ("ครับ", "ครับผม", "ขอรับ"),
    "female": ("ค่ะ", "คะ", "ค่า", "จ้ะ", "จ้า"),
}
POLITE["any"] = POLITE["male"] + POLITE["female"]
_NON_LETTER_RE = re.compile(r"[^\w\u0E31\u0E34-\u0E3A\u0E47-\u0E4E]")


def _strip_trailing_non_letters(s: str) -> str:
    """s without its trailing run of non-letters; walks back from the end instead of regex-scanning
    the whole text for a run that reaches it."""
    i = len(s)
    while i and _NON_LETTER_RE.match(s, i - 1):
        i -= 1
    return s[:i]


@register(
    "thai:polite_particle", THAI,
    (
        Param("gender", str, required=False, default="any", choices=("any", "male", "female")),
        Param("particles", list, required=False, default=(), rule=nonempty_items),
    ),
    th=lambda k: "ลงท้ายคำตอบด้วยคำลงท้ายสุภาพ เช่น " + " / ".join(k["particles"] or POLITE[k["gender"]][:2]),
    en=lambda k: "End the response with a polite particle such as " + " / ".join(k["particles"] or POLITE[k["gender"]][:2]) + ".",
)
def polite_particle(text: str, k: dict[str, Any]) -> Verdict:
    tail = _strip_trailing_non_letters(text.rstrip())  # punctuation, emoji and markup ignored
    particles = tuple(k["particles"]) or POLITE[k["gender"]]
    ok = tail.endswith(particles)
    return Verdict(ok, "" if ok else f"does not end with a polite particle ({'/'.join(particles)}): ...{tail[-20:]!r}")


_MONTHS = "มกราคม|กุมภาพันธ์|มีนาคม|เมษายน|พฤษภาคม|มิถุนายน|กรกฎาคม|สิงหาคม|กันยายน|ตุลาคม|พฤศจิกายน|ธันวาคม|ม\\.ค\\.|ก\\.พ\\.|มี\\.ค\\.|เม\\.ย\\.|พ\\.ค\\.|มิ\\.ย\\.|ก\\.ค\\.|ส\\.ค\\.|ก\\.ย\\.|ต\\.ค\\.|พ\\.ย\\.|ธ\\.ค\\."
_NUM = r"(\d{4})(?!\d)"
_GREGORIAN_MARK_RE = re.compile(rf"(?:ค\.\s?ศ\.?|คริสต์ศักราช|\bA\.?D\.?|\bC\.?E\.?)\s*{_NUM}|{_NUM}\s*(?:A\.?D\.?|C\.?E\.?)\b")
_BE_MARK_RE = re.compile(rf"(?:พ\.\s?ศ\.?|พุทธศักราช|B\.?E\.?)\s*{_NUM}")
_YEAR_CONTEXT_RE = re.compile(rf"(?:ปี|(?:{_MONTHS}))\s*(?:พ\.\s?ศ\.?\s*)?{_NUM}")
_DIGIT_RUN_RE = re.compile(r"\d{4,}")  # Unicode \d: Arabic, Thai and other digits
# What may stand (after whitespace) right before a year the patterns above read: the end of a
# Gregorian or B.E. mark, of the optional "พ.ศ." after ปี/a month, of ปี or of a month name.
_YEAR_HEADS = tuple(sorted(
    {"ศ", "ศ.", "คริสต์ศักราช", "พุทธศักราช", "D", "D.", "E", "E.", "ปี"} | {m.replace("\\.", ".") for m in _MONTHS.split("|")})
)
_LONGEST_HEAD = max(map(len, _YEAR_HEADS))
_DIGIT_MARKS = bytes.maketrans(bytes(range(256)), bytes(49 if b in byte_table(re.compile(r"\d")) else 48 for b in range(256)))  # '1' / '0'


def _mark_runs(marks: bytes):
    """Spans of the runs of 4+ b"1" in `marks` (one byte per character: the digits' spans)."""
    start = marks.find(b"1111")
    while start >= 0:  # the first "1111" at or after a "0" starts its run
        end = marks.find(b"0", start)
        end = len(marks) if end < 0 else end
        yield start, end
        start = marks.find(b"1111", end)


def _may_have_year(prose: str) -> bool:
    """False only when none of the year patterns can match (then buddhist_era finds no year at all).

    Every match holds a run of 4+ digits: one of exactly 4 right after a mark, ปี or a month (and
    whitespace), or one followed (after whitespace) by A.D./C.E. Looking at the few digit runs and
    their neighbours is much cheaper than running the four patterns over the whole text.
    """
    data = single_bytes(prose)
    runs = (m.span() for m in _DIGIT_RUN_RE.finditer(prose)) if data is None else _mark_runs(data.translate(_DIGIT_MARKS))
    for a, b in runs:
        head = prose[max(0, a - 64) : a].rstrip()
        if a > 64 and len(head) < _LONGEST_HEAD:
            head = prose[:a].rstrip()  # a long whitespace run: look further back
        if b - a == 4 and head.endswith(_YEAR_HEADS):
            return True
        tail = prose[b : b + 64].lstrip() or prose[b:].lstrip()
        if tail.startswith(("A", "C")):
            return True
    return False


@register(
    "thai:buddhist_era", THAI,
    (Param("min_year", int, required=False, default=2400), Param("min_count", int, required=False, default=0)),
    th=lambda k: "เขียนปีเป็นพุทธศักราช (พ.ศ.) ไม่ใช้คริสต์ศักราช",
    en=lambda k: "Write years in the Buddhist Era (B.E.), not as Gregorian years.",
)
def buddhist_era(text: str, k: dict[str, Any]) -> Verdict:
    prose = strip_code_and_urls(text)
    if not _may_have_year(prose):
        # No pattern can match (translating Thai digits keeps digit runs and everything else): no
        # year at all, the verdict years_verdict reaches.
        return Verdict(False, f"0 B.E. years written, need at least {k['min_count']}") if k["min_count"] > 0 else Verdict(True)
    return years_verdict(prose, k)


def years_verdict(prose: str, k: dict[str, Any]) -> Verdict:
    """buddhist_era's full scan of `prose` (code and URLs already stripped), without the fast reject."""
    prose = to_arabic_digits(prose)
    m = _GREGORIAN_MARK_RE.search(prose)
    if m:
        return Verdict(False, f"Gregorian year: {m.group().strip()!r}")
    # A year labelled พ.ศ. is B.E. by its label (historic ones such as พ.ศ. 2325 included); an
    # unlabelled year after ปี or a month name must be >= min_year to be read as B.E.
    years = [int(y) for y in _BE_MARK_RE.findall(prose)]
    for m in _YEAR_CONTEXT_RE.finditer(prose):
        if "ศ" in m.group():
            continue  # "ปี พ.ศ. 2325": already counted above
        year = int(m.group(1))
        if year < k["min_year"]:
            return Verdict(False, f"year {year} is not a Buddhist-era year (unlabelled B.E. years are >= {k['min_year']}; label older ones พ.ศ.)")
        years.append(year)
    if len(years) < k["min_count"]:
        return Verdict(False, f"{len(years)} B.E. years written, need at least {k['min_count']}")
    return Verdict(True)


SHORT_UNIT_MAX, SHORT_UNIT_REPEATS = 12, 8


_LOOP_RUNS = tuple(b"\x01" * ((SHORT_UNIT_REPEATS - 1) * u) for u in range(SHORT_UNIT_MAX + 1))


def _may_loop(text: str) -> bool:
    """False only when no unit of 1-12 characters repeats 8+ times in a row (then short_loop is None).

    Row u-1 of one numpy comparison, between the text and 12 shifted views of it, marks where
    text[k] == text[k + u]; each row's bytes are then searched for a run of 7u ones with bytes.find:
    microseconds, against find_loop, the exact search that also locates and reports the loop.
    """
    n = len(text)
    if n < SHORT_UNIT_REPEATS:
        return True  # tiny: decide exactly
    width = SHORT_UNIT_MAX
    data = single_bytes(text)
    if data is not None:  # one byte per character; 0xFF is no cp874 character, so it pads safely
        buf, dtype = data + b"\xff" * width, np.uint8
    else:  # one code point per uint32; 0xFFFFFFFF is no code point
        buf, dtype = text.encode("utf-32-le") + b"\xff\xff\xff\xff" * width, np.uint32
    size = np.dtype(dtype).itemsize
    shifted = np.ndarray((width, n), dtype=dtype, buffer=buf, offset=size, strides=(size, size))  # row u-1: text[u:u+n]
    flat = (shifted == np.ndarray((n,), dtype=dtype, buffer=buf)).tobytes()
    if flat.find(_LOOP_RUNS[1]) < 0:
        return False  # every unit needs 7u >= 7 equal pairs in a row: none anywhere (the usual case)
    return any(flat.find(_LOOP_RUNS[u], (u - 1) * n, u * n) >= 0 for u in range(1, width + 1))


def short_loop(text: str) -> str | None:
    """The first run of a unit of 1-12 characters repeated 8+ times in a row ("ฮ่าฮ่าฮ่า…"), or None."""
    return find_loop(text) if _may_loop(text) else None


def find_loop(text: str) -> str | None:
    """short_loop without the fast reject.

    A unit of length u repeated k times is a stretch where text[i] == text[i + u] for (k - 1) * u
    positions in a row. One vectorised comparison covers every u at once; cumulative sums then find
    stretches of the needed length; units are tried shortest first, and a unit needs a letter.
    """
    n = len(text)
    if n < SHORT_UNIT_REPEATS:
        return None
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    width = min(SHORT_UNIT_MAX, n - 1)
    padded = np.concatenate((codes, np.zeros(width, dtype=np.uint32)))
    win = np.lib.stride_tricks.sliding_window_view(padded, width + 1)[:n]
    same = np.zeros((n + 1, width), dtype=np.int32)
    np.cumsum(win[:, 1:] == win[:, :1], axis=0, out=same[1:])
    for u in range(1, width + 1):
        need = (SHORT_UNIT_REPEATS - 1) * u
        if need + u > n:
            break
        col = same[:, u - 1]
        for i in np.flatnonzero(col[need:] - col[:-need] == need)[:4]:
            if any(ch.isalpha() for ch in text[i : i + u]):  # "------" and "======" are rules, not loops
                return text[i : i + need + u]
    return None


def most_repeated_gram(words: list[str], n: int, more_than: int) -> tuple[str, int]:
    """The most frequent n-gram at a word start of " ".join(words) and its count (the first such
    n-gram on ties), as Counter(...).most_common(1) gives it, whenever that count is above
    `more_than`; otherwise some pair whose count is not above it.

    Two equal n-grams start with words that have the same first n characters (a shorter word is
    followed by the space in both), so only n-grams at words whose key is held by more than
    `more_than` words can repeat that often: the others are never cut out and counted.
    """
    keys = list(map(itemgetter(slice(0, n)), words))
    if len(keys) - len(set(keys)) < more_than:
        return "", 0  # too few duplicates for any key to have more_than + 1 copies
    hot = {key for key, c in Counter(keys).items() if c > more_than}
    if not hot:
        return "", 0
    flat = " ".join(words)
    grams: Counter[str] = Counter()
    start = 0
    for word, key in zip(words, keys):
        if key in hot and start + n <= len(flat):
            grams[flat[start : start + n]] += 1
        start += len(word) + 1
    return grams.most_common(1)[0] if grams else ("", 0)


@register(
    "thai:no_repetition", THAI,
    (
        Param("ngram_chars", int, required=False, default=30, rule=at_least_one),
        Param("max_ngram_repeats", int, required=False, default=3, rule=at_least_one),
        Param("max_line_repeats", int, required=False, default=2, rule=at_least_one),
        Param("min_line_chars", int, required=False, default=10),
    ),
    th=lambda k: "ห้ามพูดซ้ำวนเป็นวงจร (ห้ามมีวลีหรือบรรทัดเดิมซ้ำหลายครั้ง)",
    en=lambda k: "Do not loop: no phrase or line may repeat over and over.",
)
def no_repetition(text: str, k: dict[str, Any]) -> Verdict:
    lines = [ln for ln in map(str.strip, text.splitlines()) if len(ln) >= k["min_line_chars"]]
    if lines and len(lines) - len(set(lines)) >= k["max_line_repeats"]:  # else no line can repeat too often
        line, n = Counter(lines).most_common(1)[0]
        if n > k["max_line_repeats"]:
            return Verdict(False, f"line repeated {n} times: {line[:60]!r}")
    loop = short_loop(text)
    if loop:
        return Verdict(False, f"short unit repeated in a loop: {loop[:40]!r}")
    # Character n-grams starting at word starts: a loop repeats the same n characters from the same
    # word start again and again, while ordinary prose almost never does.
    words = text.split()
    n = k["ngram_chars"]
    if sum(map(len, words)) + max(len(words) - 1, 0) < n * (k["max_ngram_repeats"] + 1):  # len(" ".join(words))
        return Verdict(True)
    gram, count = most_repeated_gram(words, n, k["max_ngram_repeats"])
    if count > k["max_ngram_repeats"]:
        return Verdict(False, f"{n}-character phrase repeated {count} times: {gram!r}")
    return Verdict(True)
