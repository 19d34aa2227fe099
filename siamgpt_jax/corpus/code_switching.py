"""What in a Thai answer counts as switching language, for `thai:no_code_switching` and
`thai:response_language` (the rule is written out in docs/VERIFIERS.md).

Code-switching is English (or another language) standing in for Thai inside Thai prose: runs of
ordinary English words, and letters of other scripts (CJK, Devanagari, ...). These are not:
  * code and URLs (fenced blocks, inline code, links, e-mail addresses);
  * quoted phrases that hold no Thai ("Hello world", “carpe diem”, 「你好」);
  * terms the prompt itself uses: a non-Thai word of the prompt (any case) may be repeated;
  * names: a run of Latin words in which every word is capitalised, all capitals, holds a capital
    inside (iPhone) or a digit (15, GPT-4), or is a title connector (of, the, and, ...) between
    such words: "iPhone 15 Pro Max", "Bank of Thailand", "The Lord of the Rings".
A run of Latin words with any other lowercase word is English prose, all of it.
"""

from __future__ import annotations

import functools
import json
import re

from siamgpt_jax.corpus.script import count_latin_letters, strip_code_and_urls

_LATIN = r"A-Za-z\u00C0-\u024F\u1E00-\u1EFF"
# One Latin token: letters and digits with inner joiners (don't, GPT-4, v1.2, C++).
_TOKEN = rf"[{_LATIN}0-9](?:[{_LATIN}0-9'’.+-]*[{_LATIN}0-9+])?"
# Tokens joined only by spaces and light punctuation: one stretch of Latin text.
_RUN_RE = re.compile(rf"{_TOKEN}(?:[ \t]*[,;:&/]?[ \t]+{_TOKEN}|[ \t]*[,;:&/][ \t]*{_TOKEN})*")
_TOKEN_RE = re.compile(_TOKEN)
_HAS_LATIN_RE = re.compile(rf"[{_LATIN}]")
_NAME_TOKEN_RE = re.compile(r"[A-Z\u00C0-\u00DE0-9]")  # a capital or digit anywhere marks a name part
# Lowercase words that stay inside names and titles (Bank of Thailand, Harry Potter and the ...).
TITLE_CONNECTORS = frozenset("of the and a an in on at for to by with from de da del der van von la le du y".split())
# Quoted spans on one line; the ones that hold no Thai are exempt.
_QUOTE_RE = re.compile(r'"[^"\n]+"|“[^”\n]+”|«[^»\n]+»|「[^」\n]+」|『[^』\n]+』')
_THAI_RE = re.compile(r"[\u0E01-\u0E4E]")
# Letters of scripts other than Thai and Latin, as runs (a CJK phrase is one run).
_FOREIGN_RUN_RE = re.compile(r"[^\W\d_\u0000-\u024F\u0E00-\u0E7F\u1E00-\u1EFF]+")
_FENCE_RE = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)


@functools.lru_cache(maxsize=1024)  # the same prompt serves every turn and check of a record
def prompt_terms(prompt: str) -> tuple[frozenset[str], tuple[str, ...]]:
    """(lowercased Latin tokens, runs of other scripts, longest first) that `prompt` uses."""
    latin = frozenset(t.lower() for t in _TOKEN_RE.findall(prompt) if _HAS_LATIN_RE.search(t))
    foreign = tuple(sorted(set(_FOREIGN_RUN_RE.findall(prompt)), key=len, reverse=True))
    return latin, foreign


def _drop_quotes(text: str) -> str:
    if '"' not in text and not any(q in text for q in "“«「『"):
        return text
    return _QUOTE_RE.sub(lambda m: m.group() if _THAI_RE.search(m.group()) else " ", text)


def _drop_foreign_prompt_terms(text: str, foreign_terms: tuple[str, ...]) -> str:
    for term in foreign_terms:
        if term in text:
            text = text.replace(term, " ")
    return text


def remove_terms(text: str, terms: list[str]) -> str:
    """`text` without each of `terms` (case-insensitive), longest first: "Google Maps" before "Google"."""
    for term in sorted(terms, key=len, reverse=True):
        if term:
            text = re.sub(re.escape(term), " ", text, flags=re.IGNORECASE)
    return text


def exempt_removed(text: str, prompt: str = "", allowed_terms: tuple[str, ...] | list[str] = ()) -> str:
    """`text` without code, URLs, Thai-less quotes, `allowed_terms` and the prompt's non-Thai terms
    (each replaced by a space). Names are still there: `latin_runs` tells them apart."""
    prose = strip_code_and_urls(text)
    if allowed_terms:
        prose = remove_terms(prose, list(allowed_terms))
    prose = _drop_quotes(prose)
    if prompt:
        prose = _drop_foreign_prompt_terms(prose, prompt_terms(prompt)[1])
    return prose


def latin_runs(prose: str, prompt: str = "") -> list[tuple[re.Match, bool]]:
    """(match, is_name) for each stretch of Latin words in `prose`. A word the prompt uses counts
    as a name part; a run whose words are all name parts and title connectors is a name."""
    used = prompt_terms(prompt)[0] if prompt else frozenset()
    out = []
    for m in _RUN_RE.finditer(prose):
        tokens = _TOKEN_RE.findall(m.group())
        if not any(_HAS_LATIN_RE.search(t) for t in tokens):
            continue  # digits only: not Latin text
        kinds = {"name" if _NAME_TOKEN_RE.search(t) or t.lower() in used else "joiner" if t in TITLE_CONNECTORS else "word" for t in tokens}
        out.append((m, "word" not in kinds and "name" in kinds))
    return out


def latin_words(run: str) -> list[str]:
    """The tokens of a Latin run that hold a letter (numbers are not words here)."""
    return [t for t in _TOKEN_RE.findall(run) if _HAS_LATIN_RE.search(t)]


def without_names(prose: str, prompt: str = "") -> str:
    """`prose` with its name runs (prompt terms included) replaced by a space."""
    if not count_latin_letters(prose):
        return prose
    parts, last = [], 0
    for m, is_name in latin_runs(prose, prompt):
        if is_name:
            parts += [prose[last : m.start()], " "]
            last = m.end()
    return "".join(parts) + prose[last:] if parts else prose


def json_values(text: str) -> str | None:
    """The string values (not keys) of the JSON that makes up `text` (bare, or in ``` fences), one
    per line; None when `text` is not only JSON. A Thai answer asked for as JSON is its values."""
    body = text.strip()
    if body.startswith("```"):
        blocks = _FENCE_RE.findall(body)
        if _FENCE_RE.sub("", body).strip():
            return None  # prose around the fences: that prose is the answer
    elif body[:1] in "{[":
        blocks = [body]
    else:
        return None
    values: list[str] = []
    for block in blocks:
        try:
            _collect(json.loads(block), values)
        except (ValueError, RecursionError):
            return None
    return "\n".join(values)


def _collect(value, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            _collect(v, out)
    elif isinstance(value, list):
        for v in value:
            _collect(v, out)
