"""Impossible Thai character sequences.

Thai is written (and stored) in the order: leading vowel, consonant, above/below vowel, tone mark
or other upper sign, following vowel. Marks that float without a consonant, two tone marks on one
consonant, a tone mark typed before its vowel, or a leading vowel with no consonant after it are
what broken OCR, bad normalisation and degenerate generations produce.
"""

from __future__ import annotations

import re

C = "\u0e01-\u0e2e"  # consonants ก..ฮ (incl. ฤ ฦ)
ABOVE = "\u0e31\u0e34-\u0e37"  # ั ิ ี ึ ื
BELOW = "\u0e38-\u0e3a"  # ุ ู ฺ
TONE = "\u0e48-\u0e4b"  # ่ ้ ๊ ๋
UPPER_SIGN = "\u0e47\u0e4c-\u0e4e"  # ็ ์ ํ ๎
MARK = ABOVE + BELOW + TONE + UPPER_SIGN
LEADING = "\u0e40-\u0e44"  # เ แ โ ใ ไ
FOLLOWING = "\u0e30\u0e32\u0e33\u0e45"  # ะ า ำ ๅ

# (compiled pattern, reason). Order matters only for which reason is reported first.
RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"(?:^|[^{C}{MARK}])[{MARK}]"), "vowel or tone mark without a base consonant"),
    (re.compile(rf"[{TONE}\u0e47\u0e4c][{TONE}\u0e47\u0e4c]"), "two tone marks (or tone + ็/์) on one consonant"),
    (re.compile(rf"[{TONE}\u0e47\u0e4c][{ABOVE}{BELOW}]"), "tone mark written before an above/below vowel"),
    (re.compile(rf"[{ABOVE}][{ABOVE}{BELOW}]|[{BELOW}][{ABOVE}{BELOW}]"), "two vowel marks on one consonant"),
    (re.compile(rf"[{LEADING}](?![{C}])"), "leading vowel not followed by a consonant"),
    (re.compile(rf"(?:^|[^\u0e01-\u0e4e])[{FOLLOWING}]"), "following vowel without a consonant"),
    (re.compile(rf"[{ABOVE}{BELOW}\u0e47\u0e4c]\u0e33|\u0e33[{MARK}]"), "sara am combined with a vowel or written before a mark"),
    (re.compile(r"\u0e4d\u0e32"), "nikhahit + sara aa (ํา) where sara am (ำ) is meant"),
)

_ANY_THAI_MARK_RE = re.compile(rf"[{MARK}{LEADING}{FOLLOWING}]")


def errors(text: str) -> list[tuple[str, str]]:
    """[(reason, excerpt)] for every rule `text` breaks (first occurrence of each)."""
    if not _ANY_THAI_MARK_RE.search(text):
        return []
    out = []
    for pattern, reason in RULES:
        m = pattern.search(text)
        if m:
            out.append((reason, text[max(0, m.start() - 6) : m.end() + 6]))
    return out
