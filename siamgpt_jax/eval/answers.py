"""What of a generation is scored: the answer, without a Qwen3 think block."""

from __future__ import annotations

import re

_THINK_RE = re.compile(r"^\s*<think>.*?</think>\s*", re.DOTALL)


def answer_text(response: str) -> str:
    """The response without a leading <think>...</think> block (an endpoint that thinks returns it
    inline); an unclosed think block is all thinking and leaves no answer."""
    if response.lstrip().startswith("<think>") and "</think>" not in response:
        return ""
    return _THINK_RE.sub("", response, count=1)
