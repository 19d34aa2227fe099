"""Near-duplicate instructions: ROUGE-L F1 over Thai words (newmm), as self-instruct filters by ROUGE-L."""

from __future__ import annotations

from siamgpt_jax.corpus.thai_text import words


def tokens(text: str) -> tuple[str, ...]:
    return tuple(w for w in words(text.lower()) if w.strip())


def rouge_l(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """F1 of the longest common subsequence of two token sequences."""
    if not a or not b:
        return 0.0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    p, r = lcs / len(a), lcs / len(b)
    return 2 * p * r / (p + r)


class NearDuplicates:
    """Remembers kept texts; `similar(text)` is the highest ROUGE-L against them."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.kept: list[tuple[str, ...]] = []

    def check_and_add(self, text: str) -> float | None:
        """None (and remembered) when new enough, else the similarity that rejects it."""
        t = tokens(text)
        best = max((rouge_l(t, k) for k in self.kept), default=0.0)
        if best >= self.threshold:
            return best
        self.kept.append(t)
        return None
