"""Public face of the verifier registry.

    check("keywords:existence", response, {"keywords": ["ช้าง"]}) -> Verdict(ok, reason)
    describe("thai:digits", {"style": "thai"}, lang="th") -> "เขียนตัวเลขทั้งหมดด้วยเลขไทย (๐-๙)"

Ids and kwargs are IFEval's (lm-evaluation-harness's 25), SEA-IFEval's two additions and kwarg
spellings, and the `thai:` stability checks. Unknown ids and bad kwargs raise `VerifierError`
(subclasses `UnknownInstructionError`, `KwargsError`): they are bad input, not failed checks.
"""

from __future__ import annotations

import functools
from typing import Any

from siamgpt_jax.corpus import ifeval_checks, thai_checks  # noqa: F401  (populate REGISTRY)
from siamgpt_jax.corpus.registry import (
    REGISTRY,
    Instruction,
    KwargsError,
    UnknownInstructionError,
    Verdict,
    VerifierError,
    lookup,
)

__all__ = [
    "REGISTRY", "Instruction", "KwargsError", "UnknownInstructionError", "Verdict", "VerifierError",
    "check", "check_all", "describe", "instruction_ids", "loose_variants", "normalize_kwargs",
]

# The default stability set the pass runs on every Thai assistant turn. Politeness, digits and
# B.E. years are constraints a prompt asks for, not properties of all good Thai, so they are not here.
STABILITY_CHECKS: tuple[str, ...] = ("thai:response_language", "thai:no_code_switching", "thai:orthography", "thai:no_repetition")


def instruction_ids(family: str | None = None) -> list[str]:
    """All registered ids, sorted; `family` in {"ifeval", "sea-ifeval", "thai"} filters."""
    return sorted(i for i, ins in REGISTRY.items() if family is None or ins.family == family)


def normalize_kwargs(instruction_id: str, kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """Validated kwargs (aliases resolved, None dropped, defaults filled); raises VerifierError."""
    return lookup(instruction_id).normalize(kwargs)


def loose_variants(response: str) -> list[str]:
    """IFEval's loose mode: the response, without its first and/or last line, and without `*`."""
    lines = response.split("\n")
    base = [
        response,
        "\n".join(lines[1:]).strip(),
        "\n".join(lines[:-1]).strip(),
        "\n".join(lines[1:-1]).strip(),
    ]
    return base + [v.replace("*", "") for v in base]


def check(
    instruction_id: str, response: str, kwargs: dict[str, Any] | None = None, *, loose: bool = False, prompt: str = ""
) -> Verdict:
    """Does `response` follow the instruction? Strict by default; `loose` as IFEval defines it.

    `prompt` (the user and system turns the response answers) reaches the checks that read it
    (`Instruction.uses_prompt`: terms the prompt uses are not code-switching). An empty or
    whitespace-only response never follows an instruction (IFEval's rule).
    """
    ins = lookup(instruction_id)
    empty = kwargs is None or (isinstance(kwargs, dict) and not kwargs)
    kw = ins.defaults if empty and ins.defaults is not None else ins.normalize(kwargs)
    if not isinstance(response, str):
        raise VerifierError(f"{instruction_id}: response must be a string, got {type(response).__name__}")
    if not response or response.isspace():  # not response.strip(), without copying the response
        return Verdict(False, "empty response")
    fn = functools.partial(ins.fn, prompt=prompt) if ins.uses_prompt else ins.fn
    if not loose:
        return fn(response, kw)
    first = None
    for variant in loose_variants(response):
        if variant.strip():
            verdict = fn(variant, kw)
            if verdict.ok:
                return verdict
            first = first or verdict
    return first or Verdict(False, "empty response")


def check_all(
    instruction_ids_: list[str], response: str, kwargs_list: list[dict[str, Any] | None], *, loose: bool = False, prompt: str = ""
) -> list[tuple[str, Verdict]]:
    """check() for each (id, kwargs) pair of an IFEval record; lengths must match."""
    if len(instruction_ids_) != len(kwargs_list):
        raise KwargsError(f"{len(instruction_ids_)} instruction ids but {len(kwargs_list)} kwargs sets")
    return [(iid, check(iid, response, kw, loose=loose, prompt=prompt)) for iid, kw in zip(instruction_ids_, kwargs_list)]


def describe(instruction_id: str, kwargs: dict[str, Any] | None = None, lang: str = "th") -> str:
    """The instruction as text, in Thai ("th") or English ("en"), for AutoIF prompt phrasing."""
    ins = lookup(instruction_id)
    kw = ins.normalize(kwargs)
    if lang == "th":
        return ins.describe_th(kw)
    if lang == "en":
        return ins.describe_en(kw)
    raise ValueError(f"describe: lang must be 'th' or 'en', got {lang!r}")
