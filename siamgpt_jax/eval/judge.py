"""LLM-as-judge for the multi-turn set: the prompts, reading the verdicts, and adding them up.

Two protocols:
  * single-answer grading (MT-Bench's): the judge rates one answer 1-10 and writes "[[N]]";
  * pairwise against a baseline (SEA-HELM's): the judge picks "[[A]]", "[[B]]" or "[[C]]" (tie), and
    every pair is judged twice with the answers swapped, so a judge that favours a position cancels.
A verdict that cannot be read is an `error` and stays one: it is counted and reported, and it never
becomes a win, a tie or a rating. The prompts are this project's own wording.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any, Literal

from siamgpt_jax.eval.data import MultiTurnItem

WIN, LOSE, TIE, ERROR = "win", "lose", "tie", "error"
Outcome = Literal["win", "lose", "tie", "error"]
MODEL_FIRST, BASELINE_FIRST = "model-first", "baseline-first"  # who is shown as assistant A
ORDERS = (MODEL_FIRST, BASELINE_FIRST)
LABELS = {"A": "[[A]]", "B": "[[B]]", "C": "[[C]]"}
# Categories where a reference answer, when the file has one, is shown to the judge (MT-Bench's choice).
REFERENCE_CATEGORIES = ("math", "reasoning", "coding")

_SINGLE_SYSTEM = (
    "You are grading an AI assistant's reply for quality. Judge whether it does what the user asked, "
    "and how helpful, correct, relevant, thorough and clear it is. The user writes in Thai; a reply in "
    "another language than the user's, or one that drifts into other languages, is a worse reply. "
    "{focus}{reference}Explain your judgement in a few sentences, then give a score from 1 (useless) "
    "to 10 (excellent) on the last line, written exactly as [[score]], for example: Score: [[6]]"
)
_PAIR_SYSTEM = (
    "You are comparing the replies of two AI assistants, A and B, to the same user. Decide which one "
    "does what the user asked better, weighing helpfulness, correctness, relevance, depth and clarity. "
    "The user writes in Thai; replying in another language, or drifting into other languages, makes a "
    "reply worse. {focus}{reference}The order in which the replies appear, their length and the "
    "assistants' names must not sway you. Explain briefly, then end with exactly one verdict: [[A]] if "
    "A is better, [[B]] if B is better, [[C]] for a tie."
)
_FOCUS_TURN2 = "Judge only the assistant's reply to the user's second message, in the light of the whole conversation. "
_REF_NOTE = "A reference answer is given; use it to check correctness. "


def _transcript(item: MultiTurnItem, answers: tuple[str, ...], upto: int, who: str) -> str:
    parts = []
    for t in range(upto + 1):
        parts.append(f"### User:\n{item.turns[t]}\n\n### {who}:\n{answers[t]}")
    return "\n\n".join(parts)


def _reference_block(item: MultiTurnItem, turn: int) -> str:
    if not _uses_reference(item):
        return ""
    refs = "\n\n".join(f"### User:\n{item.turns[t]}\n\n### Reference answer:\n{item.references[t]}" for t in range(turn + 1))
    return f"[Reference]\n{refs}\n[End of reference]\n\n"


def _uses_reference(item: MultiTurnItem) -> bool:
    return item.references is not None and item.category in REFERENCE_CATEGORIES


def single_messages(item: MultiTurnItem, answers: tuple[str, ...], turn: int) -> list[dict[str, str]]:
    system = _SINGLE_SYSTEM.format(focus=_FOCUS_TURN2 if turn else "", reference=_REF_NOTE if _uses_reference(item) else "")
    user = _reference_block(item, turn) + f"[Conversation]\n{_transcript(item, answers, turn, 'Assistant')}\n[End of conversation]"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def pairwise_messages(item: MultiTurnItem, model: tuple[str, ...], baseline: tuple[str, ...], turn: int, order: str) -> list[dict[str, str]]:
    a, b = (model, baseline) if order == MODEL_FIRST else (baseline, model)
    system = _PAIR_SYSTEM.format(focus=_FOCUS_TURN2 if turn else "", reference=_REF_NOTE if _uses_reference(item) else "")
    user = (_reference_block(item, turn)
            + f"[Conversation with assistant A]\n{_transcript(item, a, turn, 'Assistant A')}\n[End of conversation with assistant A]\n\n"
            + f"[Conversation with assistant B]\n{_transcript(item, b, turn, 'Assistant B')}\n[End of conversation with assistant B]")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


_RATING_RE = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")


def parse_rating(text: str) -> tuple[float | None, str]:
    """(rating, "") or (None, why it cannot be read). Every [[N]] in the text must agree, 1 <= N <= 10."""
    found = {float(m) for m in _RATING_RE.findall(text or "")}
    if not found:
        return None, "no [[rating]] in the judge's reply"
    if len(found) > 1:
        return None, f"conflicting ratings {sorted(found)}"
    value = found.pop()
    if not 1 <= value <= 10:
        return None, f"rating {value:g} outside 1-10"
    return value, ""


def parse_pairwise(text: str, order: str) -> tuple[Outcome, str]:
    """The outcome for the evaluated model, given which position it was shown in. Exactly one kind of
    label must appear (repeats of the same one are fine); none or several is an error."""
    present = [k for k, label in LABELS.items() if label in (text or "")]
    if len(present) != 1:
        return ERROR, "no verdict label in the judge's reply" if not present else f"conflicting verdicts {present}"
    label = present[0]
    if label == "C":
        return TIE, ""
    model_label = "A" if order == MODEL_FIRST else "B"
    return (WIN if label == model_label else LOSE), ""


def combine_orders(first: Outcome, second: Outcome) -> Outcome:
    """One outcome from the two orders: an error in either stays an error; agreement stands;
    any disagreement (including one tie) is a tie, as a verdict that flips with position says nothing."""
    if ERROR in (first, second):
        return ERROR
    return first if first == second else TIE


def win_rate(outcomes: list[Outcome]) -> dict[str, Any]:
    """Wins + half the ties over the judged (non-error) outcomes; errors are reported, not scored."""
    c = Counter(outcomes)
    judged = c[WIN] + c[LOSE] + c[TIE]
    return {"win_rate": (c[WIN] + 0.5 * c[TIE]) / judged if judged else None, "wins": c[WIN], "losses": c[LOSE],
            "ties": c[TIE], "errors": c[ERROR], "judged": judged}


def aggregate_pairwise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """rows: {"category", "turn", "outcome"} per conversation turn (orders already combined).
    `weighted_win_rate` is SEA-HELM's headline: the mean of the per-category win rates."""
    by_cat: dict[str, list[Outcome]] = defaultdict(list)
    for r in rows:
        by_cat[r["category"]].append(r["outcome"])
    cats = {c: win_rate(v) for c, v in sorted(by_cat.items())}
    rated = [v["win_rate"] for v in cats.values() if v["win_rate"] is not None]
    return {**win_rate([r["outcome"] for r in rows]), "weighted_win_rate": sum(rated) / len(rated) if rated else None,
            "by_turn": {str(t + 1): win_rate([r["outcome"] for r in rows if r["turn"] == t]) for t in sorted({r["turn"] for r in rows})},
            "by_category": cats}


def aggregate_single(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """rows: {"category", "turn", "rating" (None when unreadable)}; means over the readable ones."""
    def mean(rs):
        vals = [r["rating"] for r in rs if r["rating"] is not None]
        return {"score": sum(vals) / len(vals) if vals else None, "rated": len(vals), "errors": len(rs) - len(vals)}

    by_cat: dict[str, list] = defaultdict(list)
    for r in rows:
        by_cat[r["category"]].append(r)
    return {**mean(rows), "by_turn": {str(t + 1): mean([r for r in rows if r["turn"] == t]) for t in sorted({r["turn"] for r in rows})},
            "by_category": {c: mean(v) for c, v in sorted(by_cat.items())}}
