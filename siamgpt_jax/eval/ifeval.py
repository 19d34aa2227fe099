"""IFEval-Th scoring: prompt- and instruction-level accuracy, strict and loose, behind SEA-HELM's
language gate, with a breakdown by instruction group.

Every check is the verifier registry's (`corpus.verify.check`), loose mode included (IFEval's
response variants). The gate is the registry's `language:response_language` on the whole answer: a
response not in the language the prompt asks for (Thai, or the one a language: instruction names)
scores 0 on every instruction. docs/EVAL.md lists where this differs from SEA-HELM on purpose.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from siamgpt_jax.corpus.verify import check
from siamgpt_jax.eval.answers import answer_text
from siamgpt_jax.eval.data import IFEvalItem

SCORING_VERSION = "siamgpt-ifeval-th/1: registry checks, strict+loose (lm-eval variants), language gate on every prompt, number_words scored"
# SEA-HELM drops this id for languages written without spaces; its comparable figure does too.
SEAHELM_SKIPPED_FOR_THAI = ("length_constraints:number_words",)
GATE_ID = "language:response_language"


def score_item(item: IFEvalItem, response: str | None) -> dict[str, Any]:
    """Verdicts for one prompt. `response` None means no generation (an error): everything fails."""
    answer = answer_text(response or "")
    n = len(item.instruction_ids)
    if not answer.strip():
        return {"id": item.id, "group": item.group, "language_ok": False, "language_reason": "empty response",
                "strict": [False] * n, "loose": [False] * n, "reasons": ["empty response"] * n}
    gate = check(GATE_ID, answer, {"language": item.language}, prompt=item.prompt)
    strict, loose, reasons = [], [], []
    for iid, kw in zip(item.instruction_ids, item.kwargs):
        s = check(iid, answer, kw, prompt=item.prompt)
        strict.append(s.ok)
        loose.append(s.ok or check(iid, answer, kw, loose=True, prompt=item.prompt).ok)
        reasons.append(s.reason)
    return {"id": item.id, "group": item.group, "language_ok": gate.ok, "language_reason": gate.reason,
            "strict": strict, "loose": loose, "reasons": reasons}


def _rates(scores: list[dict[str, Any]], gated: bool) -> dict[str, float]:
    out: dict[str, float] = {}
    for mode in ("strict", "loose"):
        prompts = insts = inst_total = 0
        for s in scores:
            verdicts = [v and (s["language_ok"] or not gated) for v in s[mode]]
            prompts += all(verdicts)
            insts += sum(verdicts)
            inst_total += len(verdicts)
        out[f"prompt_{mode}"] = prompts / len(scores) if scores else 0.0
        out[f"instruction_{mode}"] = insts / inst_total if inst_total else 0.0
    return out


def aggregate(items: list[IFEvalItem], scores: list[dict[str, Any]]) -> dict[str, Any]:
    """The report block. Headline figures are gated; `ungated` shows what the gate took away."""
    by_id = {it.id: it for it in items}
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in scores:
        groups[s["group"]].append(s)
    comparable = [s for s in scores if not set(by_id[s["id"]].instruction_ids) & set(SEAHELM_SKIPPED_FOR_THAI)]
    seahelm = _rates(comparable, gated=True)["prompt_strict"]
    return {
        "scoring_version": SCORING_VERSION,
        "prompts": len(scores),
        **_rates(scores, gated=True),
        "language_ok_rate": sum(s["language_ok"] for s in scores) / len(scores) if scores else 0.0,
        "ungated": _rates(scores, gated=False),
        "seahelm_comparable": {"prompts": len(comparable), "lang_normalized_accuracy": seahelm,
                               "note": f"prompt-level strict with the language gate, without {', '.join(SEAHELM_SKIPPED_FOR_THAI)}"},
        "by_group": {g: {"prompts": len(ss), **_rates(ss, gated=True)} for g, ss in sorted(groups.items())},
    }
