"""Reading what the LLM wrote at each stage. Every parser returns a value or raises ParseError with
a short reason that the stage records (never a crash, never a silent skip)."""

from __future__ import annotations

import json
import re

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)```", re.S)
_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d{1,3}[.)])\s+(.+?)\s*$")
_JUDGE = re.compile(r"\[\[\s*(ใช่|ไม่ใช่|yes|no|consistent|inconsistent)\s*\]\]", re.I)
_SCORE = re.compile(r"(?:\[\[\s*(\d+(?:\.\d+)?)\s*\]\]|(?:score|คะแนน)\s*[:：]\s*(\d+(?:\.\d+)?))", re.I)


class ParseError(ValueError):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def instruction_lines(text: str) -> list[str]:
    """The list items of an augmentation answer ("- ...", "* ...", "1. ..."), in order."""
    items = [m.group(1) for line in text.splitlines() if (m := _LIST_ITEM.match(line))]
    if not items:
        raise ParseError("no_list_items")
    return items


def _json_candidates(text: str) -> list[str]:
    fenced = [body for lang, body in _FENCE.findall(text) if lang.lower() in ("json", "")]
    if fenced:
        return fenced
    start, end = text.find("{"), text.rfind("}")
    return [text[start:end + 1]] if 0 <= start < end else []


def function_answer(text: str) -> tuple[str, list[tuple[str, bool]]]:
    """(code, [(input, expected verdict)]) from {"func": str, "cases": [{"input": str, "output": bool}]}."""
    candidates = _json_candidates(text)
    if not candidates:
        raise ParseError("no_json")
    obj = None
    for cand in candidates:
        try:
            obj = json.loads(cand)
            break
        except json.JSONDecodeError:
            continue
    if not isinstance(obj, dict):
        raise ParseError("invalid_json")
    code = obj.get("func")
    if not isinstance(code, str) or not code.strip():
        raise ParseError("missing_func")
    if "\n" not in code and "\\n" in code:  # written with literal \n, as AutoIF's prompt invites
        code = code.replace("\\n", "\n")
    cases = []
    for case in obj.get("cases") or []:
        if not isinstance(case, dict) or not isinstance(case.get("input"), str):
            continue
        expected = case.get("output")
        if isinstance(expected, str) and expected.strip().lower() in ("true", "false"):
            expected = expected.strip().lower() == "true"
        if isinstance(expected, bool):
            cases.append((case["input"], expected))
    return code, cases


def judge_verdict(text: str) -> bool:
    """[[ใช่]] / [[yes]] / [[consistent]] -> True; [[ไม่ใช่]] / [[no]] / [[inconsistent]] -> False."""
    found = _JUDGE.findall(text)
    if not found:
        raise ParseError("judge_unparseable")
    return found[-1].lower() in ("ใช่", "yes", "consistent")


def score(text: str, low: float = 1, high: float = 10) -> float:
    """The last "[[N]]", "Score: N" or "คะแนน: N" in the text, within [low, high]."""
    found = _SCORE.findall(text)
    if not found:
        raise ParseError("score_unparseable")
    value = float(next(v for v in found[-1] if v))
    if not low <= value <= high:
        raise ParseError("score_out_of_range")
    return value
