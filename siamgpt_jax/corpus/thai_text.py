"""Thai-aware words and sentences, backed by pythainlp.

Words are newmm tokens. newmm never joins across whitespace, so text is segmented one
whitespace-delimited chunk at a time through a memo: chunks repeat a lot in real corpora (particles,
common phrases) and the memo is what makes word counting affordable at corpus scale.

Sentences come from pythainlp's CRF sentence cutter (crfcut) for Thai lines and a punctuation
splitter for other lines. crfcut itself costs ~10 ms per long line; `crf_sentences` computes its
exact output from the same model far cheaper, and threshold checks still go through
`count_sentences_until`, which cuts one line at a time and stops as soon as sound bounds settle the
answer, and results are memoised per line.
"""

from __future__ import annotations

import functools
import re

from siamgpt_jax.corpus.script import is_thai_text

_WORDLIKE_RE = re.compile(r"[^\W_ๆฯ]")  # a token is a word when it holds a letter or digit
_ASCII_TOKEN_RE = re.compile(r"[A-Za-z0-9]+(?:[.,'’-][A-Za-z0-9]+)*|[^\sA-Za-z0-9]")
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
    for chunk in text.split():  # the \S+ runs: \s and str.isspace agree on every character (tested)
        if chunk.isascii():  # no Thai: newmm would split letters/digits from punctuation the same way
            out.extend(t for t in _ASCII_TOKEN_RE.findall(chunk) if _WORDLIKE_RE.search(t))
        else:
            out.extend(t for t in _segment_chunk(chunk) if _WORDLIKE_RE.search(t))
    return out


@functools.lru_cache(maxsize=200_000)
def _chunk_word_count(chunk: str) -> int:
    if chunk.isascii():
        return sum(1 for t in _ASCII_TOKEN_RE.findall(chunk) if _WORDLIKE_RE.search(t))
    return sum(1 for t in _segment_chunk(chunk) if _WORDLIKE_RE.search(t))


def count_words(text: str) -> int:
    """len(words(text)), from a per-chunk count memo."""
    return sum(map(_chunk_word_count, text.split()))


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


def _crfcut():
    """crfcut.segment, computed exactly but far cheaper by crf_sentences (same model, same output)."""
    from siamgpt_jax.corpus import crf_sentences

    return crf_sentences.segment


def _lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def _latin_sentences(line: str) -> list[str]:
    return [s for s in _LATIN_SENT_RE.split(line) if s.strip()]


@functools.lru_cache(maxsize=50_000)
def _thai_line_sentences(line: str) -> int:
    """Sentence count of one Thai line (memoised: loose mode re-checks the same lines 8 times)."""
    from siamgpt_jax.corpus import crf_sentences

    return crf_sentences.count(line)


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

    Sound, not tight: crfcut gives every line at least one sentence and at most one per character
    (its CRF may cut after any token); non-Thai lines are counted exactly.
    """
    if "***" in text:
        n = len(sentences(text))
        return n, n
    lo = hi = 0
    for line in _lines(text):
        if is_thai_text(line):
            lo += 1
            hi += len(line)
        else:
            n = len(_latin_sentences(line))
            lo += n
            hi += n
    return lo, hi


def count_sentences_until(text: str, decided) -> int:
    """len(sentences(text)), but stops running the CRF once `decided(lo, hi)` says the bounds settle
    the caller's question; returns the exact count or a bound that settles it."""
    if "***" in text:
        return len(sentences(text))
    lines = _lines(text)
    thai = [is_thai_text(ln) for ln in lines]
    exact = sum(len(_latin_sentences(ln)) for ln, t in zip(lines, thai) if not t)
    pending = [ln for ln, t in zip(lines, thai) if t]
    lo, hi = exact + len(pending), exact + sum(map(len, pending))
    for ln in pending:
        if decided(lo, hi):
            return lo
        n = _thai_line_sentences(ln)
        lo += n - 1
        hi += n - len(ln)
    return lo
