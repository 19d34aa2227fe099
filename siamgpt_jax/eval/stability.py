"""Code-switching and stability: the share of answers that pass every `thai:` stability check the
verification pass runs (`corpus.verify.STABILITY_CHECKS`), and how often each kind of failure occurs.

A failure kind is read off the check that failed; `thai:no_code_switching` fails for two kinds, told
apart by its reason (another script in the prose, or Latin-script English standing in for Thai).
The checks get the prompt, as in the pass: terms the prompt itself uses are not code-switching.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from siamgpt_jax.corpus.verify import STABILITY_CHECKS, check
from siamgpt_jax.eval.answers import answer_text
from siamgpt_jax.eval.data import StabilityItem

FAILURE_KINDS = ("foreign_script", "english_phrase", "orthography", "repetition", "wrong_language", "empty")
_KIND_OF_CHECK = {"thai:orthography": "orthography", "thai:no_repetition": "repetition", "thai:response_language": "wrong_language"}
MAX_EXAMPLES = 3


def failure_kind(check_id: str, reason: str) -> str:
    if check_id == "thai:no_code_switching":
        return "foreign_script" if reason.startswith("other script") else "english_phrase"
    return _KIND_OF_CHECK.get(check_id, check_id)


def score_item(item: StabilityItem, response: str | None, finish_reason: str | None = None) -> dict[str, Any]:
    answer = answer_text(response or "")
    failures: list[dict[str, str]] = []
    if not answer.strip():
        failures.append({"check": "", "kind": "empty", "reason": "empty response" if response is not None else "no generation"})
    else:
        for iid in STABILITY_CHECKS:
            kwargs = {"allowed_terms": list(item.allowed_terms)} if iid == "thai:no_code_switching" and item.allowed_terms else {}
            v = check(iid, answer, kwargs, prompt=item.prompt)
            if not v.ok:
                failures.append({"check": iid, "kind": failure_kind(iid, v.reason), "reason": v.reason})
    return {"id": item.id, "topic": item.topic, "ok": not failures, "kinds": sorted({f["kind"] for f in failures}),
            "failures": failures, "truncated": finish_reason == "length"}


def aggregate(scores: list[dict[str, Any]], responses: dict[str, str]) -> dict[str, Any]:
    n = len(scores)
    kinds = Counter(k for s in scores for k in s["kinds"])
    examples: dict[str, list[dict[str, str]]] = {}
    for s in scores:
        for f in s["failures"]:
            bucket = examples.setdefault(f["kind"], [])
            if len(bucket) < MAX_EXAMPLES and all(e["id"] != s["id"] for e in bucket):
                bucket.append({"id": s["id"], "reason": f["reason"], "response": (responses.get(s["id"]) or "")[:400]})
    topics: dict[str, list[bool]] = {}
    for s in scores:
        topics.setdefault(s["topic"] or "-", []).append(s["ok"])
    return {
        "checks": list(STABILITY_CHECKS),
        "prompts": n,
        "pass_rate": sum(s["ok"] for s in scores) / n if n else 0.0,
        "failure_rates": {k: kinds.get(k, 0) / n if n else 0.0 for k in dict.fromkeys([*FAILURE_KINDS, *kinds])},
        "truncated_rate": sum(s["truncated"] for s in scores) / n if n else 0.0,
        "by_topic": {t: {"prompts": len(v), "pass_rate": sum(v) / len(v)} for t, v in sorted(topics.items())},
        "examples": examples,
    }
