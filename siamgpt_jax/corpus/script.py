"""Character-level script facts: which writing system a character belongs to, Thai letter shares,
and the spans (code, URLs) that script policies leave alone.

Everything here is regex or table driven and never tokenizes, so it is cheap enough to run on
every assistant turn of a corpus.
"""

from __future__ import annotations

import codecs
import encodings.cp874
import functools
import re
import unicodedata

THAI_LETTER_RE = re.compile(r"[\u0E01-\u0E4E]")  # consonants, vowels, tone marks, signs (no digits)
THAI_DIGIT_RE = re.compile(r"[\u0E50-\u0E59]")
ARABIC_DIGIT_RE = re.compile(r"[0-9]")
LATIN_LETTER_RE = re.compile(r"[A-Za-z\u00C0-\u024F\u1E00-\u1EFF]")
THAI_DIGITS = "๐๑๒๓๔๕๖๗๘๙"
TO_ARABIC_DIGITS = str.maketrans(THAI_DIGITS, "0123456789")


def to_arabic_digits(text: str) -> str:
    """text.translate(TO_ARABIC_DIGITS), by up to ten C-level replaces (translate walks a Thai text
    character by character through a dict, ~100 us for a long turn)."""
    for thai, arabic in zip(THAI_DIGITS, "0123456789"):
        if thai in text:
            text = text.replace(thai, arabic)
    return text

# Fenced blocks, inline code, URLs and e-mail addresses: exempt from script and digit policies.
_CODE_OR_URL_RE = re.compile(
    r"```.*?(?:```|\Z)"  # fenced block (an unterminated fence runs to the end)
    r"|`[^`\n]+`"  # inline code
    r"|\b(?:https?|ftp)://\S+"  # URL with scheme
    r"|\bwww\.\S+"
    r"|\b[\w.+-]+@[\w-]+\.[\w.-]+",
    re.DOTALL,
)

# Named scripts a Thai response must not contain. Ranges are from the Unicode blocks.
_SCRIPT_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x0370, 0x03FF, "Greek"),
    (0x0400, 0x052F, "Cyrillic"),
    (0x0530, 0x058F, "Armenian"),
    (0x0590, 0x05FF, "Hebrew"),
    (0x0600, 0x06FF, "Arabic"),
    (0x0750, 0x077F, "Arabic"),
    (0x0900, 0x097F, "Devanagari"),
    (0x0980, 0x09FF, "Bengali"),
    (0x0A00, 0x0A7F, "Gurmukhi"),
    (0x0A80, 0x0AFF, "Gujarati"),
    (0x0B00, 0x0B7F, "Oriya"),
    (0x0B80, 0x0BFF, "Tamil"),
    (0x0C00, 0x0C7F, "Telugu"),
    (0x0C80, 0x0CFF, "Kannada"),
    (0x0D00, 0x0D7F, "Malayalam"),
    (0x0D80, 0x0DFF, "Sinhala"),
    (0x0E80, 0x0EFF, "Lao"),
    (0x0F00, 0x0FFF, "Tibetan"),
    (0x1000, 0x109F, "Myanmar"),
    (0x10A0, 0x10FF, "Georgian"),
    (0x1100, 0x11FF, "Hangul"),
    (0x1200, 0x137F, "Ethiopic"),
    (0x1780, 0x17FF, "Khmer"),
    (0x3000, 0x303F, "CJK"),  # CJK punctuation: the telltale of Chinese slipping in
    (0x3040, 0x309F, "Kana"),
    (0x30A0, 0x30FF, "Kana"),
    (0x3130, 0x318F, "Hangul"),
    (0x3400, 0x4DBF, "CJK"),
    (0x4E00, 0x9FFF, "CJK"),
    (0xAC00, 0xD7AF, "Hangul"),
    (0xF900, 0xFAFF, "CJK"),
    (0xFF00, 0xFFEF, "CJK"),  # fullwidth forms
    (0x20000, 0x2FFFF, "CJK"),
)
# Fast pre-filter: any character outside ASCII, Latin-1/Extended, general punctuation and Thai.
_FOREIGN_CANDIDATE_RE = re.compile(r"[^\x00-\u024F\u1E00-\u1EFF\u2000-\u2BFF\u0E00-\u0E7F\uFE00-\uFE0F\U0001F000-\U0001FAFF]")


def script_of(ch: str) -> str | None:
    """The named script of `ch`, or None for Thai, Latin, digits, punctuation, symbols and emoji."""
    cp = ord(ch)
    if cp <= 0x024F or 0x0E00 <= cp <= 0x0E7F or 0x1E00 <= cp <= 0x1EFF:
        return None  # ASCII, Latin and Thai
    for lo, hi, name in _SCRIPT_RANGES:
        if lo <= cp <= hi:
            return name
    if unicodedata.category(ch).startswith("L"):
        return "Other"
    return None


def foreign_scripts(text: str, exempt: frozenset[str] = frozenset({"Greek"})) -> dict[str, str]:
    """{script name: first offending excerpt} for every non-Thai, non-Latin script in `text`."""
    found: dict[str, str] = {}
    data = single_bytes(text)
    if data is not None and (not _FOREIGN_CANDIDATE_BYTES or count_bytes_in(data, _FOREIGN_CANDIDATE_BYTES) == 0):
        return found  # no candidate character at all (the case for every cp874-only text)
    for m in _FOREIGN_CANDIDATE_RE.finditer(text):
        name = script_of(m.group())
        if name and name not in exempt and name not in found:
            found[name] = text[max(0, m.start() - 8) : m.end() + 8]
    return found


@functools.lru_cache(maxsize=256)  # the pass asks for the same turn's prose from several checks
def strip_code_and_urls(text: str) -> str:
    """`text` with code spans, fenced blocks, URLs and e-mail addresses replaced by a space."""
    if "`" not in text and "://" not in text and "www." not in text and "@" not in text:
        return text
    return _CODE_OR_URL_RE.sub(" ", text)


# Runs, not single characters: summing a few run lengths is far cheaper than listing every letter.
_THAI_RUN_RE = re.compile(r"[\u0E01-\u0E4E]+")
_LATIN_RUN_RE = re.compile(r"[A-Za-z\u00C0-\u024F\u1E00-\u1EFF]+")
_OTHER_LETTER_RUN_RE = re.compile(r"[^\W\d_\u0E00-\u0E7F]+")


# One byte per character. cp874 (TIS-620 plus ten Windows punctuation marks) maps ASCII, the Thai
# block and those ten characters one-to-one onto single bytes. For a text made only of them (nearly
# every Thai turn) "how many characters match this class" is "how many of its bytes are in the
# class's byte table", which bytes.translate counts in C; any other text takes the regex path.
_CODEC = "cp874"
_CP874_TABLE = encodings.cp874.encoding_table
_charmap_encode = codecs.charmap_encode


def _decoded(b: int) -> str | None:
    try:
        return bytes([b]).decode(_CODEC)
    except UnicodeDecodeError:
        return None


_BYTE_CHARS = {b: ch for b in range(256) if (ch := _decoded(b)) is not None}


def byte_table(char_re: re.Pattern) -> bytes:
    """The bytes whose cp874 character matches the one-character class `char_re` (a run regex works too)."""
    return bytes(b for b, ch in _BYTE_CHARS.items() if char_re.fullmatch(ch))


@functools.lru_cache(maxsize=256)
def single_bytes(text: str) -> bytes | None:
    """`text` in cp874 when every character has a byte there (then len(result) == len(text)), else None."""
    try:
        return _charmap_encode(text, "strict", _CP874_TABLE)[0]  # text.encode("cp874") minus the codec lookup
    except UnicodeEncodeError:
        return None


def count_bytes_in(data: bytes, table: bytes) -> int:
    return len(data) - len(data.translate(None, table))


_THAI_LETTER_BYTES = byte_table(_THAI_RUN_RE)
_LATIN_LETTER_BYTES = byte_table(_LATIN_RUN_RE)
_OTHER_LETTER_BYTES = byte_table(_OTHER_LETTER_RUN_RE)
_FOREIGN_CANDIDATE_BYTES = byte_table(_FOREIGN_CANDIDATE_RE)


def count_by_regex(run_re: re.Pattern, text: str) -> int:
    """Characters of `text` inside runs of `run_re` (the reference the byte tables stand in for)."""
    return sum(map(len, run_re.findall(text)))


def _count(run_re: re.Pattern, table: bytes, text: str) -> int:
    data = single_bytes(text)
    return count_by_regex(run_re, text) if data is None else count_bytes_in(data, table)


# Several checks and the pass ask about the same turn text: a small memo answers the repeats (the
# key is the str object itself, whose hash Python caches).
@functools.lru_cache(maxsize=256)
def count_thai_letters(text: str) -> int:
    return _count(_THAI_RUN_RE, _THAI_LETTER_BYTES, text)


@functools.lru_cache(maxsize=256)
def count_latin_letters(text: str) -> int:
    return _count(_LATIN_RUN_RE, _LATIN_LETTER_BYTES, text)


@functools.lru_cache(maxsize=256)
def thai_share(text: str) -> float:
    """Thai letters (incl. vowel and tone marks) / all letters; 0.0 when there are no letters."""
    thai = count_thai_letters(text)
    letters = thai + _count(_OTHER_LETTER_RUN_RE, _OTHER_LETTER_BYTES, text)
    return thai / letters if letters else 0.0


def is_thai_text(text: str, min_share: float = 0.5) -> bool:
    return thai_share(text) >= min_share
