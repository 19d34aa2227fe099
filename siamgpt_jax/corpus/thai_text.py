"""Thai-aware words and sentences, backed by pythainlp.

Words are newmm tokens. newmm never joins across whitespace, so text is segmented one
whitespace-delimited chunk at a time through a memo: chunks repeat a lot in real corpora (particles,
common phrases) and the memo is what makes word counting affordable at corpus scale.

Sentences come from pythainlp's CRF sentence cutter (crfcut) for Thai lines and a punctuation
splitter for other lines. crfcut is ~10 ms per paragraph, so callers that only need to compare a
count with a threshold use `sentence_count_bounds` first and run the cutter only when the bounds
cannot decide.
"""

from __future__ import annotations

import functools
import re

from siamgpt_jax.corpus.script import is_thai_text

_WS_CHUNK_RE = re.compile(r"\S+")
_WORDLIKE_RE = re.compile(r"[^\W_ๆฯ]")  # a token is a word when it holds a letter or digit
_SECTION_SPLIT_RE = re.compile(r"\s*\*\*\*+\s*")
# Latin sentence ends: . ! ? (and full-width forms) followed by space; not after common abbreviations.
_LATIN_SENT_RE = re.compile(r"(?<!\bMr)(?<!\bMrs)(?<!\bDr)(?<!\bMs)(?<!\be\.g)(?<!\bi\.e)(?<!\bvs)(?<=[.!?。！？])\s+")


@functools.lru_cache(maxsize=1)
def _newmm():
    from pythainlp.tokenize import newmm  # slow import: load once per process, only when needed

    return newmm.segment


@functools.lru_cache(maxsize=200_000)
def _segment_chunk(chunk: str) -> tuple[str, ...]:
    return tuple(_newmm()(chunk))


def words(text: str) -> list[str]:
    """newmm word tokens of `text`, without whitespace and pure punctuation tokens."""
    out: list[str] = []
    for chunk in _WS_CHUNK_RE.findall(text):
        if chunk.isascii():  # no Thai: newmm would split letters/digits from punctuation the same way
            out.extend(t for t in re.findall(r"[A-Za-z0-9]+(?:[.,'’-][A-Za-z0-9]+)*|[^\sA-Za-z0-9]", chunk) if _WORDLIKE_RE.search(t))
        else:
            out.extend(t for t in _segment_chunk(chunk) if _WORDLIKE_RE.search(t))
    return out


def count_words(text: str) -> int:
    return len(words(text))


def first_word_matches(text: str, word: str) -> bool:
    """True when `text` begins with `word` on a word boundary (newmm's, for Thai).

    A multi-token word passes when it equals the first k tokens, since newmm may split a name.
    """
    head = text.lstrip(" \t\r\n\"'“”‘’*#_-:>[(")
    word = word.strip().lower()
    if not word:
        return False
    lowered = head[: len(word) + 40].lower()
    if not lowered.startswith(word):
        return False
    if word.isascii():
        nxt = lowered[len(word) : len(word) + 1]
        return not (nxt.isalnum())
    joined = ""
    for tok in words(lowered):
        joined += tok
        if joined == word:
            return True
        if len(joined) >= len(word):
            return False
    return False


@functools.lru_cache(maxsize=1)
def _crfcut():
    from pythainlp.tokenize import crfcut

    return crfcut.segment


def _lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def _latin_sentences(line: str) -> list[str]:
    return [s for s in _LATIN_SENT_RE.split(line) if s.strip()]


def sentences(text: str) -> list[str]:
    """Sentences of `text`.

    SEA-IFEval convention: when the text uses `***` separators, each separated segment is one
    sentence. Otherwise each line is cut on its own: crfcut for Thai lines, punctuation for others.
    """
    if "***" in text:
        return [s.strip() for s in _SECTION_SPLIT_RE.split(text) if s.strip()]
    out: list[str] = []
    for line in _lines(text):
        if is_thai_text(line):
            out.extend(s.strip() for s in _crfcut()(line) if s.strip())
        else:
            out.extend(_latin_sentences(line))
    return out


def sentence_count_bounds(text: str) -> tuple[int, int]:
    """(lower, upper) bounds on len(sentences(text)) without running the CRF.

    A Thai line yields at least one sentence and at most one per space-separated chunk (crfcut only
    cuts at spaces); other lines are counted exactly.
    """
    if "***" in text:
        n = len(sentences(text))
        return n, n
    lo = hi = 0
    for line in _lines(text):
        if is_thai_text(line):
            lo += 1
            hi += len(line.split())
        else:
            n = len(_latin_sentences(line))
            lo += n
            hi += n
    return lo, hi
