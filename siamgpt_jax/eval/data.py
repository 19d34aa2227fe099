"""The eval prompt files, read into items; a bad line is a UserError naming the file and line.

Three kinds:
  * IFEval: SEA-HELM's shape ({"id", "prompts": [{"text"}], "metadata": {"subcategory"}, "kwargs"})
    or lm-evaluation-harness's ({"key", "prompt", "instruction_id_list", "kwargs"}).
  * stability: {"id", "topic", "messages" | "prompt", "allowed_terms"?}.
  * multi-turn: MT-Bench's shape as SEA-HELM stores it ({"question_id", "prompts": [{"text"}, {"text"}],
    "metadata": {"category"}, "references"?, "baselines"?: {model: [answer per turn]}}).
Instruction ids and kwargs are validated here, before any generation, against the verifier registry.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Iterator

from siamgpt_jax.corpus.pipeline import _prompt_before  # the one definition of "the prompt a turn answers"
from siamgpt_jax.corpus.verify import VerifierError, normalize_kwargs
from siamgpt_jax.errors import UserError

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "eval"
IFEVAL_TH = DATA_DIR / "th_sea_ifeval.jsonl"
STABILITY_TH = DATA_DIR / "th_code_switch_stress.jsonl"
MT_BENCH_TH = DATA_DIR / "th_mt_bench.jsonl"
MT_BENCH_CATEGORIES = ("writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities")


@dataclasses.dataclass(frozen=True)
class IFEvalItem:
    id: str
    prompt: str
    instruction_ids: tuple[str, ...]
    kwargs: tuple[dict[str, Any], ...]  # as in the file (None values dropped); validated on load
    group: str  # the instruction group SEA-HELM reports under ("detectable_format", ...)
    language: str  # the language the answer must be in: "th", or the one a language: instruction names


@dataclasses.dataclass(frozen=True)
class StabilityItem:
    id: str
    topic: str
    messages: tuple[dict[str, str], ...]
    allowed_terms: tuple[str, ...] = ()  # terms an answer may use besides the prompt's own (the check spares those)

    @property
    def prompt(self) -> str:
        """The user and system turns the answer answers, as the verification pass gives them to the checks."""
        return _prompt_before(list(self.messages), len(self.messages))


@dataclasses.dataclass(frozen=True)
class MultiTurnItem:
    id: str
    category: str
    turns: tuple[str, ...]
    references: tuple[str, ...] | None = None
    baselines: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; anything unreadable is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: prompt file not found")
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise UserError(f"{path}:{n}: invalid UTF-8 at byte {e.start}") from None
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{n}: invalid JSON at column {e.colno}: {e.msg}") from None
            if not isinstance(obj, dict):
                raise UserError(f"{path}:{n}: a record must be a JSON object, got {type(obj).__name__}")
            yield n, obj


def _text(obj: Any, where: str) -> str:
    if not isinstance(obj, str) or not obj.strip():
        raise UserError(f"{where}: must be a non-empty string")
    return obj


def _check_unique(items: list, path: Path) -> None:
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.id in seen:
            raise UserError(f"{path}: id {item.id!r} appears twice (records {seen[item.id] + 1} and {i + 1})")
        seen[item.id] = i
    if not items:
        raise UserError(f"{path}: no records")


def read_ifeval(path: str | Path = IFEVAL_TH, default_language: str = "th") -> list[IFEvalItem]:
    path = Path(path)
    items = []
    for n, obj in _lines(path):
        where = f"{path}:{n}"
        if "instruction_id_list" in obj:  # lm-evaluation-harness
            ids, kwargs = obj.get("instruction_id_list"), obj.get("kwargs")
            prompt = _text(obj.get("prompt"), f"{where}: 'prompt'")
            rid = obj.get("key", n)
        elif "prompts" in obj:  # SEA-HELM
            prompts, meta = obj.get("prompts"), obj.get("metadata")
            if not isinstance(prompts, list) or len(prompts) != 1 or not isinstance(prompts[0], dict):
                raise UserError(f"{where}: 'prompts' must be a list of one {{'text': ...}} object")
            if not isinstance(meta, dict) or not isinstance(meta.get("subcategory"), str):
                raise UserError(f"{where}: 'metadata.subcategory' (the instruction id) is missing")
            prompt = _text(prompts[0].get("text"), f"{where}: 'prompts[0].text'")
            ids, kwargs = [meta["subcategory"]], obj.get("kwargs")
            rid = obj.get("id", n)
        else:
            raise UserError(f"{where}: neither an IFEval record ('instruction_id_list') nor a SEA-IFEval one ('prompts')")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise UserError(f"{where}: instruction ids must be a non-empty list of strings")
        if not isinstance(kwargs, list) or len(kwargs) != len(ids):
            raise UserError(f"{where}: 'kwargs' must be a list of {len(ids)} objects, one per instruction id")
        language = default_language
        clean = []
        for iid, kw in zip(ids, kwargs):
            try:
                norm = normalize_kwargs(iid, kw)
            except VerifierError as e:
                raise UserError(f"{where}: {e}") from None
            clean.append({k: v for k, v in (kw or {}).items() if v is not None})
            if iid == "language:response_language":
                language = norm["language"]
        items.append(IFEvalItem(str(rid), prompt, tuple(ids), tuple(clean), ids[0].split(":")[0], language))
    _check_unique(items, path)
    return items


def read_stability(path: str | Path = STABILITY_TH) -> list[StabilityItem]:
    path = Path(path)
    items = []
    for n, obj in _lines(path):
        where = f"{path}:{n}"
        if isinstance(obj.get("messages"), list):
            msgs = obj["messages"]
            for i, m in enumerate(msgs):
                if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
                    raise UserError(f"{where}: messages[{i}] needs a role of system, user or assistant")
                _text(m.get("content"), f"{where}: messages[{i}].content")
            if not msgs or msgs[-1]["role"] != "user":
                raise UserError(f"{where}: the last message must be the user's")
            messages = tuple({"role": m["role"], "content": m["content"]} for m in msgs)
        elif "prompt" in obj:
            messages = ({"role": "user", "content": _text(obj["prompt"], f"{where}: 'prompt'")},)
        else:
            raise UserError(f"{where}: needs 'messages' or 'prompt'")
        extra = obj.get("allowed_terms", [])
        if not isinstance(extra, list) or not all(isinstance(t, str) for t in extra):
            raise UserError(f"{where}: 'allowed_terms' must be a list of strings")
        items.append(StabilityItem(str(obj.get("id", n)), str(obj.get("topic", "")), messages, tuple(extra)))
    _check_unique(items, path)
    return items


def read_multi_turn(path: str | Path = MT_BENCH_TH) -> list[MultiTurnItem]:
    path = Path(path)
    items = []
    for n, obj in _lines(path):
        where = f"{path}:{n}"
        prompts, meta = obj.get("prompts"), obj.get("metadata")
        if not isinstance(prompts, list) or len(prompts) < 1 or not all(isinstance(p, dict) for p in prompts):
            raise UserError(f"{where}: 'prompts' must be a list of {{'text': ...}} objects, one per turn")
        turns = tuple(_text(p.get("text"), f"{where}: prompts[{i}].text") for i, p in enumerate(prompts))
        if not isinstance(meta, dict) or not isinstance(meta.get("category"), str):
            raise UserError(f"{where}: 'metadata.category' is missing")
        refs = obj.get("references")
        if refs is not None:
            if not isinstance(refs, list) or len(refs) != len(turns) or not all(isinstance(r, str) for r in refs):
                raise UserError(f"{where}: 'references' must be a list of {len(turns)} strings, one per turn")
            refs = tuple(refs) if any(r.strip() for r in refs) else None
        baselines = obj.get("baselines") or {}
        if not isinstance(baselines, dict):
            raise UserError(f"{where}: 'baselines' must map a model name to its answers")
        for name, answers in baselines.items():
            if not isinstance(answers, list) or len(answers) != len(turns) or not all(isinstance(a, str) for a in answers):
                raise UserError(f"{where}: baselines[{name!r}] must be a list of {len(turns)} answers")
        rid = obj.get("question_id", obj.get("id", n))
        items.append(MultiTurnItem(str(rid), meta["category"], turns, refs, {k: tuple(v) for k, v in baselines.items()}))
    _check_unique(items, path)
    return items
