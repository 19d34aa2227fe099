"""Thai-aware words and sentences, backed by pythainlp.

Words are newmm tokens in whitespace chunks that hold Thai, and Latin-style words elsewhere (runs
of letters and digits joined by an inner ' ’ . , or -: don't, COVID-19, 3.14 and e-mail are one
word each; newmm would cut don|'t and COVID-|19). newmm never joins across whitespace, so text is
segmented one whitespace-delimited chunk at a time through a memo: chunks repeat a lot in real
corpora (particles, common phrases) and the memo is what makes word counting affordable at corpus scale.

Sentences come from pythainlp's CRF sentence cutter (crfcut) for Thai lines and a punctuation
splitter for other lines. crfcut itself costs ~10 ms per long line; `crf_sentences` computes its
exact output from the same model far cheaper, and threshold checks still go through
`count_sentences_until`, which cuts one line at a time and stops as soon as sound bounds settle the
answer, and results are memoised per line.
"""

from __future__ import annotations

import functools
import re

from siamgpt_jax.corpus import crf_sentences
from siamgpt_jax.corpus.newmm import segment_chunk
from siamgpt_jax.corpus.script import is_thai_text

_WORDLIKE_RE = re.compile(r"[^\W_ๆฯ]")  # a token is a word when it holds a letter or digit
_NON_THAI_WORD_RE = re.compile(r"[^\W_]+(?:[.,'’-][^\W_]+)*")  # in chunks without Thai: letters/digits, inner joiners
_THAI_CHAR_RE = re.compile(r"[\u0E00-\u0E7F]")
_SECTION_SPLIT_RE = re.compile(r"\s*\*\*\*+\s*")
# Latin sentence ends: . ! ? (and full-width forms) followed by space; not after common abbreviations.
_LATIN_SENT_RE = re.compile(r"(?<!\bMr)(?<!\bMrs)(?<!\bDr)(?<!\bMs)(?<!\be\.g)(?<!\bi\.e)(?<!\bvs)(?<=[.!?。！？])\s+")


def words(text: str) -> list[str]:
    """The words of `text` (see the module docstring): no whitespace or pure punctuation tokens."""
    out: list[str] = []
    for chunk in text.split():  # the \S+ runs: \s and str.isspace agree on every character (tested)
        out.extend(_chunk_words(chunk))
    return out


def _chunk_words(chunk: str) -> list[str]:
    if chunk.isascii() or not _THAI_CHAR_RE.search(chunk):
        return _NON_THAI_WORD_RE.findall(chunk)
    return [t for t in segment_chunk(chunk) if _WORDLIKE_RE.search(t)]


@functools.lru_cache(maxsize=200_000)
def _chunk_word_count(chunk: str) -> int:
    return len(_chunk_words(chunk))


def count_words(text: str) -> int:
    """len(words(text)), from a per-chunk count memo."""
    return sum(map(_chunk_word_count, text.split()))


def first_word_matches(text: str, word: str) -> bool:
    """True when `text` begins with `word` on a word boundary that a Thai reader would accept.

    The boundary is decided from the word and what follows it, not from one segmentation of the
    whole text: a Latin word ends where no ASCII letter or digit follows; a Thai word ends where a
    non-Thai character follows, or else on a Thai character cluster boundary (pythainlp's TCC) that
    a best dictionary segmentation of the Thai run also cuts at (see `_thai_boundary_ok`).
    """
    head = text.lstrip(_LEADING_MARKUP)
    word = word.strip().lower()
    if not word:
        return False
    lowered = head[: len(word) + _LOOKAHEAD].lower()
    if not lowered.startswith(word):
        return False
    nxt = lowered[len(word) : len(word) + 1]
    if not nxt or not _THAI_WORD_CHAR_RE.match(nxt):
        # Latin: another ASCII letter or digit would continue the word (IFEval's reading); Thai
        # letters after a Latin word, spaces, punctuation, ๆ and ฯ all end it.
        return not (nxt.isascii() and nxt.isalnum())
    if not _THAI_WORD_CHAR_RE.match(word[-1]):
        return True  # "ป.ล." + Thai letter: the word's own punctuation closed it
    # The Thai run that the boundary cuts: from the word's last non-Thai character on.
    start = max((i + 1 for i, ch in enumerate(word) if not _THAI_WORD_CHAR_RE.match(ch)), default=0)
    run = _THAI_RUN_RE.match(lowered, start).group()
    return _thai_boundary_ok(run, len(word) - start)


_LEADING_MARKUP = " \t\r\n\"'“”‘’*#_-:>[("
_LOOKAHEAD = 60  # Thai characters after the word that the boundary decision looks at
_THAI_WORD_CHAR_RE = re.compile(r"[\u0E01-\u0E2E\u0E30-\u0E45\u0E47-\u0E4E]")  # Thai letters and marks, not ฯ or ๆ
_THAI_RUN_RE = re.compile(r"[\u0E01-\u0E2E\u0E30-\u0E45\u0E47-\u0E4E]*")


@functools.lru_cache(maxsize=1)
def _dictionary():
    from pythainlp.tokenize import word_dict_trie  # newmm's own dictionary (a Trie)

    return word_dict_trie()


@functools.lru_cache(maxsize=1)
def _attested() -> frozenset[str]:
    """Words that the Thai National Corpus or the Thai Textbook Corpus (pythainlp's word counts)
    tokenise as one word: lexicalised units such as มันฝรั่ง, ต้นไม้, การบ้าน, เชียงใหม่, as opposed to
    newmm dictionary entries that are free phrases (เป็นความ, ไม่มี, มันฝรั่งทอด)."""
    from pythainlp.corpus import tnc, ttc

    return frozenset(w for w, _ in tnc.word_freqs()) | frozenset(w for w, _ in ttc.word_freqs())


def _thai_boundary_ok(run: str, cut: int) -> bool:
    """May a word end at `cut` inside the Thai run `run` (which starts where the word's Thai part does)?

    Yes when `cut` is a Thai character cluster boundary (TCC: never between a consonant and its
    vowel or tone mark) and no longer dictionary word at the start of `run` spans it. A longer
    dictionary word (ending on a cluster boundary) spans the cut when it is one lexicalised word:
    attested as one token in TNC/TTC, or not the word plus another dictionary word, or the word is
    a bound noun-forming prefix (ความสุข, การเรียน: TNC splits those off). So มันฝรั่ง blocks มัน,
    ต้นไม้ blocks ต้น and การบ้าน blocks การ, while เป็นความ does not block เป็น and มันฝรั่งทอด
    does not block มันฝรั่ง.
    """
    from pythainlp.tokenize.tcc import tcc_pos

    ends = tcc_pos(run) | {len(run)}
    if cut not in ends:
        return False
    trie = _dictionary()
    bound = run[:cut] in _BOUND_PREFIXES
    for longer in trie.prefixes(run):
        if len(longer) > cut and len(longer) in ends:
            if bound or longer in _attested() or longer[cut:] not in trie:
                return False
    return True


_BOUND_PREFIXES = frozenset({"การ", "ความ", "นัก", "ผู้"})


def _crfcut():
    """crfcut.segment, computed exactly but far cheaper by crf_sentences (same model, same output)."""
    return crf_sentences.segment


def _lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def _latin_sentences(line: str) -> list[str]:
    return [s for s in _LATIN_SENT_RE.split(line) if s.strip()]


@functools.lru_cache(maxsize=50_000)
def _thai_line_sentences(line: str) -> int:
    """Sentence count of one Thai line (memoised: loose mode re-checks the same lines 8 times)."""
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
