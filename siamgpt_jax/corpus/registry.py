"""The one table of instructions: id -> parameters, check function and descriptions.

`ifeval_checks` and `thai_checks` add entries with `register`; `verify` is the public face.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Any, Callable

from siamgpt_jax.errors import UserError


class VerifierError(UserError):
    """An instruction id or kwargs set that cannot be checked (bad input, not a failed check)."""


class UnknownInstructionError(VerifierError):
    pass


class KwargsError(VerifierError):
    pass


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class Param:
    """One keyword argument. `kind` is int, float, str, bool or list (of str)."""

    name: str
    kind: type
    required: bool = True
    default: Any = None
    choices: tuple[Any, ...] | None = None
    aliases: tuple[str, ...] = ()  # other spellings accepted on input (SEA-IFEval's names)
    # a rule beyond the type: value -> None if fine, else what is wrong ("must be one character")
    rule: Callable[[Any], str | None] | None = None


@dataclass(frozen=True)
class Instruction:
    id: str
    family: str  # "ifeval" | "sea-ifeval" | "thai"
    params: tuple[Param, ...]
    fn: Callable[[str, dict[str, Any]], Verdict]
    describe_th: Callable[[dict[str, Any]], str]
    describe_en: Callable[[dict[str, Any]], str]
    alias_map: dict[str, str] = field(default_factory=dict, compare=False)
    by_name: dict[str, Param] = field(default_factory=dict, compare=False)
    # normalize({}) once, for check() to pass to `fn` when no kwargs are given; None when a
    # kwarg is required. Shared between calls: check functions only read their kwargs.
    defaults: dict[str, Any] | None = field(default=None, compare=False)
    # `fn` takes the prompt as a third argument (terms the prompt uses are fair to repeat)
    uses_prompt: bool = False
    # a rule across kwargs: normalised kwargs -> None if fine, else what is wrong
    validate: Callable[[dict[str, Any]], str | None] | None = field(default=None, compare=False)

    def normalize(self, kwargs: dict[str, Any] | None) -> dict[str, Any]:
        """Validated kwargs with aliases resolved and defaults filled.

        None values are dropped first: IFEval's Hugging Face copy stores every kwarg of every
        instruction with null for the unused ones.
        """
        if kwargs is None:
            kwargs = {}
        if not isinstance(kwargs, dict):
            raise KwargsError(f"{self.id}: kwargs must be an object, got {type(kwargs).__name__}")
        by_name = self.by_name
        out: dict[str, Any] = {}
        for key, value in kwargs.items():
            if value is None:
                continue
            name = self.alias_map.get(key, key)
            if name not in by_name:
                hint = difflib.get_close_matches(key, list(by_name) + list(self.alias_map), n=1)
                expected = ", ".join(by_name) or "none"
                raise KwargsError(
                    f"{self.id}: unknown kwarg {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "") + f"; expected: {expected}"
                )
            out[name] = _coerce(self.id, by_name[name], value)
        for p in self.params:
            if p.name not in out:
                if p.required:
                    raise KwargsError(f"{self.id}: missing kwarg {p.name!r}")
                out[p.name] = list(p.default) if isinstance(p.default, (list, tuple)) else p.default
        if self.validate is not None and (problem := self.validate(out)):
            raise KwargsError(f"{self.id}: {problem}")
        return out


def _coerce(iid: str, p: Param, value: Any) -> Any:
    bad = KwargsError(f"{iid}: kwarg {p.name!r} must be {p.kind.__name__}, got {value!r}")
    if p.kind is int:
        # IFEval's JSON has ints; some dumps carry integral floats or digit strings.
        if isinstance(value, bool):
            raise bad
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        elif isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if not isinstance(value, int):
            raise bad
        if value < 0:
            raise KwargsError(f"{iid}: kwarg {p.name!r} must be >= 0, got {value}")
    elif p.kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        value = float(value)
    elif p.kind is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # SEA-IFEval writes numbers as strings, others may not
        if not isinstance(value, str):
            raise bad
    elif p.kind is bool:
        if not isinstance(value, bool):
            raise bad
    elif p.kind is list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise KwargsError(f"{iid}: kwarg {p.name!r} must be a list of strings, got {value!r}")
    if p.choices is not None and value not in p.choices:
        hint = difflib.get_close_matches(str(value), [str(c) for c in p.choices], n=1)
        raise KwargsError(
            f"{iid}: kwarg {p.name!r}={value!r} is not one of {list(p.choices)}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        )
    if p.rule is not None and (problem := p.rule(value)):
        raise KwargsError(f"{iid}: kwarg {p.name!r}={value!r} {problem}")
    return value


# Rules for kwargs that would make a check vacuous: always passed (an empty end phrase, no
# keywords, "at least 0") or never passable (an empty forbidden word, paragraph 0). Such kwargs
# are invalid input, like a wrong type, not a constraint a response can follow.
def nonempty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def nonempty_items(values: list[str]) -> str | None:
    """For optional lists: [] is the default, but every given item must say something."""
    return "must not hold an empty string" if any(not v.strip() for v in values) else None


def nonempty_list(values: list[str]) -> str | None:
    return "must not be empty" if not values else nonempty_items(values)


def at_least_one(value: int) -> str | None:
    return None if value >= 1 else "must be >= 1"


def unit_interval(value: float) -> str | None:
    return None if 0 < value <= 1 else "must be in (0, 1]: 0 or less passes every response, more than 1 none"


def satisfiable(count: str, relation: str) -> Callable[[dict[str, Any]], str | None]:
    """A cross-kwarg rule for (count, relation) pairs: counts are >= 0, so "at least 0" holds for
    every response and "less than 0" for none."""

    def rule(k: dict[str, Any]) -> str | None:
        if k[count] == 0 and k[relation] in ("at least", "less than"):
            return f"{relation} 0 {'holds for every' if k[relation] == 'at least' else 'holds for no'} response"
        return None

    return rule


REGISTRY: dict[str, Instruction] = {}


def register(
    iid: str,
    family: str,
    params: tuple[Param, ...],
    th: Callable[[dict[str, Any]], str],
    en: Callable[[dict[str, Any]], str],
    uses_prompt: bool = False,
    validate: Callable[[dict[str, Any]], str | None] | None = None,
) -> Callable[[Callable[..., Verdict]], Callable[..., Verdict]]:
    def deco(fn: Callable[..., Verdict]) -> Callable[..., Verdict]:
        if iid in REGISTRY:
            raise RuntimeError(f"instruction {iid!r} registered twice")
        alias_map = {a: p.name for p in params for a in p.aliases}
        ins = Instruction(iid, family, params, fn, th, en, alias_map, {p.name: p for p in params}, uses_prompt=uses_prompt, validate=validate)
        if not any(p.required for p in params):
            ins = dataclasses.replace(ins, defaults=ins.normalize({}))
        REGISTRY[iid] = ins
        return fn

    return deco


def lookup(iid: str) -> Instruction:
    try:
        return REGISTRY[iid]
    except KeyError:
        hint = difflib.get_close_matches(str(iid), list(REGISTRY), n=1)
        raise UnknownInstructionError(
            f"unknown instruction id {iid!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        ) from None


RELATIONS = ("less than", "at least", "exactly", "at most", "more than")
RELATION_TH = {"less than": "น้อยกว่า", "at least": "อย่างน้อย", "exactly": "พอดี", "at most": "ไม่เกิน", "more than": "มากกว่า"}


def compare(actual: int, relation: str, target: int) -> bool:
    if relation == "less than":
        return actual < target
    if relation == "at least":
        return actual >= target
    if relation == "exactly":
        return actual == target
    if relation == "at most":
        return actual <= target
    if relation == "more than":
        return actual > target
    raise ValueError(relation)


def counted(what: str, actual: int, relation: str, target: int) -> Verdict:
    ok = compare(actual, relation, target)
    return Verdict(ok, "" if ok else f"{what}: found {actual}, need {relation} {target}")
