"""Impossible Thai character sequences.

Thai is written (and stored) in the order: leading vowel, consonant, above/below vowel, tone mark
or other upper sign, following vowel. Marks that float without a consonant, two tone marks on one
consonant, a tone mark typed before its vowel, or a leading vowel with no consonant after it are
what broken OCR, bad normalisation and degenerate generations produce.

Each character is mapped to a one-letter class with str.translate, and every rule is a set of
forbidden class bigrams found with plain substring search. In front of that, `has_errors` clears
clean text with byte-table lookups in numpy: no per-character Python or regex work, which matters
because the pass runs this on every Thai assistant turn.
"""

from __future__ import annotations

import re

import numpy as np

from siamgpt_jax.corpus.script import single_bytes

# Classes: c consonant, a above vowel, b below vowel, t tone mark, u maitaikhu/thanthakhat,
# n nikhahit/yamakkan, l leading vowel, f following vowel (ะ า ๅ), m sara am (ำ), x anything else.
_CLASSES = {
    "c": range(0x0E01, 0x0E2F),
    "a": [0x0E31, 0x0E34, 0x0E35, 0x0E36, 0x0E37],
    "b": [0x0E38, 0x0E39, 0x0E3A],
    "t": [0x0E48, 0x0E49, 0x0E4A, 0x0E4B],
    "u": [0x0E47, 0x0E4C],
    "n": [0x0E4D, 0x0E4E],
    "l": range(0x0E40, 0x0E45),
    "f": [0x0E30, 0x0E32, 0x0E45],
    "m": [0x0E33],
}
_TABLE = {cp: cls for cls, cps in _CLASSES.items() for cp in cps}
_MARKS = "abtun"


# Complete table for the Thai block and the space that stands in for everything else (see classes()),
# so translate() never falls back to Python code.
_TRANSLATE = {cp: _TABLE.get(cp, "x") for cp in range(0x0E00, 0x0E80)} | {0x20: "x"}
_NON_THAI_RUN_RE = re.compile(r"[^\u0E00-\u0E7F]+")

# (reason, forbidden class bigrams). The class string is padded with 'x' at both ends, so "start of
# text" and "end of text" are ordinary bigrams too.
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("vowel or tone mark without a base consonant", tuple(p + q for p in "xlfm" for q in _MARKS)),
    ("two tone marks (or tone + ็/์) on one consonant", ("tt", "tu", "ut", "uu")),
    ("tone mark written before an above/below vowel", ("ta", "tb", "ua", "ub")),
    ("two vowel marks on one consonant", ("aa", "ab", "ba", "bb")),
    ("leading vowel not followed by a consonant", tuple("l" + q for q in "xlfm" + _MARKS)),
    ("following vowel without a consonant", ("xf", "xm")),
    ("sara am combined with a vowel or written before a mark", ("am", "bm", "um") + tuple("m" + q for q in _MARKS)),
)
_NIKHAHIT_AA = "\u0e4d\u0e32"


def classes(text: str) -> str:
    """'x' + one class letter per character of `text` + 'x' (index i of the result is text[i-1]).

    Non-Thai runs are first replaced by as many spaces, keeping offsets, so the table stays small.
    """
    masked = _NON_THAI_RUN_RE.sub(lambda m: " " * len(m.group()), text)
    return "x" + masked.translate(_TRANSLATE) + "x"


# Fast reject. Thai has a single-byte code page (cp874/TIS-620: U+0E01-U+0E5B <-> 0xA1-0xFB, ASCII
# unchanged, anything else becomes '?'), so bytes.translate turns a text into its class ids in C,
# one numpy step makes every adjacent pair's code (10 * first + second), and a second translate
# deletes the allowed pair codes: anything left is a forbidden bigram of RULES. Clean text, the
# common case, is cleared by these few passes; text that trips one gets the exact pass below,
# which names rules and excerpts.
_CLASS_IDS = "cabtunlfmx"


def _byte_class(b: int) -> str:
    ch = bytes([b]).decode("cp874", errors="ignore")
    return _TABLE.get(ord(ch), "x") if ch else "x"


_BYTE_CLASS_ID = bytes(_CLASS_IDS.index(_byte_class(b)) for b in range(256))  # a bytes.translate table
_FORBIDDEN_PAIRS = {len(_CLASS_IDS) * _CLASS_IDS.index(p) + _CLASS_IDS.index(q) for _, bigrams in RULES for p, q in bigrams}
_ALLOWED_PAIR_CODES = bytes(code for code in range(len(_CLASS_IDS) ** 2) if code not in _FORBIDDEN_PAIRS)


def has_errors(text: str) -> bool:
    """bool(errors(text)), from table lookups only (see above; tests/corpus check they agree)."""
    if _NIKHAHIT_AA in text:
        return True
    data = single_bytes(text)
    if data is None:
        data = text.encode("cp874", errors="replace")
    ids = np.frombuffer((b" " + data + b" ").translate(_BYTE_CLASS_ID), dtype=np.uint8)  # ' ' is class x: the padding
    pairs = ids[:-1] * len(_CLASS_IDS) + ids[1:]
    return bool(pairs.tobytes().translate(None, _ALLOWED_PAIR_CODES))


def errors(text: str) -> list[tuple[str, str]]:
    """[(reason, excerpt)] for every rule `text` breaks (first occurrence of each)."""
    return class_errors(text) if has_errors(text) else []


def class_errors(text: str) -> list[tuple[str, str]]:
    """errors(text) without the fast reject: the class-string pass that names rules and excerpts."""
    cls = classes(text)
    out = []
    for reason, bigrams in RULES:
        hits = [i for i in (cls.find(b) for b in bigrams) if i >= 0]
        if hits:
            i = min(hits)  # cls[i] is text[i - 1]; the offending pair is text[i-1 : i+1]
            out.append((reason, text[max(0, i - 7) : i + 7]))
    if _NIKHAHIT_AA in text:
        i = text.index(_NIKHAHIT_AA)
        out.append(("nikhahit + sara aa (ํา) where sara am (ำ) is meant", text[max(0, i - 6) : i + 8]))
    return out
