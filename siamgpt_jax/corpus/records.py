"""Reading one raw JSONL line into a normalised chat record, or a precise reason why not.

Accepted shapes (all normalised to `messages: [{"role", "content"}]`):
  * SystemChat-2.0 / OpenAI chat: {"messages": [{"role": "system"|"user"|"assistant", "content"}]}
  * ShareGPT dumps: {"conversations" or "messages": [{"from": "system"|"human"|"gpt", "value"}]},
    optionally with the system prompt as a top-level "system" string (LLaMA-Factory's form)
  * IFEval response files: {"prompt": str, "response": str, "instruction_id_list", "kwargs"}
A record with `instruction_id_list` is stream B ("autoif"), otherwise stream A ("systemchat").
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from siamgpt_jax.errors import UserError

SYSTEMCHAT, AUTOIF = "systemchat", "autoif"
encode_str = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) writes for a str


def compact_json(sort_keys: bool):
    """json.dumps(obj, ensure_ascii=False, sort_keys=sort_keys, separators=(",", ":")), as a function
    that reuses one C encoder instead of building an encoder per call (values come from parsed
    JSON, so they hold no reference cycles to check for)."""
    encoder = json.JSONEncoder(ensure_ascii=False, sort_keys=sort_keys, separators=(",", ":"))
    if json.encoder.c_make_encoder is None:
        return encoder.encode
    chunks = json.encoder.c_make_encoder(None, encoder.default, encode_str, None, ":", ",", sort_keys, False, True)
    return lambda obj: "".join(chunks(obj, 0))


_id_json = compact_json(sort_keys=True)
line_json = compact_json(sort_keys=False)  # json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
_TURN_KEYS = ["role", "content"]
# A \uXXXX escape of a UTF-16 surrogate; json.loads turns a lone one into a str that cannot be UTF-8.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# Characters that show nothing: controls, format characters (zero-width space, BOM, bidi marks) and
# separators, plus the blank letters some fonts draw as nothing (Hangul fillers, Braille blank).
_INVISIBLE_CATEGORIES = frozenset(("Cc", "Cf", "Zs", "Zl", "Zp", "Cn", "Co", "Cs"))
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_ROLE_ALIASES = {"system": "system", "user": "user", "assistant": "assistant", "human": "user", "gpt": "assistant", "model": "assistant"}


@dataclass(frozen=True)
class Limits:
    """Structural caps; a record over any of them is rejected (runaway or mis-joined data)."""

    max_turns: int = 64
    max_turn_chars: int = 32_000
    max_total_chars: int = 128_000


class RecordError(UserError):
    """A line that is not a usable record. `check` names the failed structural rule."""

    def __init__(self, check: str, reason: str, stream: str | None = None):
        super().__init__(reason)
        self.check, self.reason, self.stream = check, reason, stream


@dataclass
class Record:
    stream: str
    messages: list[dict[str, str]]
    extra: dict[str, Any]  # every other original field, kept in its original order
    _turns_json: list[tuple[str, str]] | None = field(default=None, repr=False, compare=False)

    @property
    def instruction_ids(self) -> list[str]:
        return self.extra.get("instruction_id_list") or []

    @property
    def kwargs_list(self) -> list[dict[str, Any] | None]:
        return self.extra.get("kwargs") or []

    def content_id(self) -> str:
        """Stable hash of what the model trains on and what it was checked against: sha256 of
        json.dumps({"messages", "instruction_id_list", "kwargs"}, ensure_ascii=False,
        sort_keys=True, separators=(",", ":")), written out from the turns' encoded strings."""
        turns = self._encoded_turns()
        if turns is None:
            key = {"messages": self.messages, "instruction_id_list": self.instruction_ids, "kwargs": self.kwargs_list}
            blob = _id_json(key)
        else:
            messages = ",".join(f'{{"content":{c},"role":{r}}}' for r, c in turns)
            blob = f'{{"instruction_id_list":{_id_json(self.instruction_ids)},"kwargs":{_id_json(self.kwargs_list)},"messages":[{messages}]}}'
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24]

    def messages_json(self) -> str:
        """json.dumps(self.messages, ensure_ascii=False, separators=(",", ":"))."""
        turns = self._encoded_turns()
        if turns is None:
            return line_json(self.messages)
        return "[" + ",".join(f'{{"role":{r},"content":{c}}}' for r, c in turns) + "]"

    def _encoded_turns(self) -> list[tuple[str, str]] | None:
        """Each turn's role and content JSON-encoded, once for the content id and the output line;
        None unless every turn is {"role": str, "content": str} in that order (parse_line's shape)."""
        if self._turns_json is None:
            if not all(list(m) == _TURN_KEYS and type(m["role"]) is str and type(m["content"]) is str for m in self.messages):
                return None
            self._turns_json = [(encode_str(m["role"]), encode_str(m["content"])) for m in self.messages]
        return self._turns_json


def parse_line(raw: bytes, limits: Limits = Limits()) -> Record:
    """Decode, parse, normalise and structurally validate one line; raises RecordError."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RecordError("invalid_utf8", f"invalid UTF-8 at byte {e.start}: {raw[max(0, e.start - 8): e.end + 8]!r}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise RecordError("invalid_json", f"invalid JSON at column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise RecordError("invalid_json", "JSON nested too deeply") from None
    if _SURROGATE_ESCAPE.search(raw):  # paired escapes are one character; a lone one is not text
        try:
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as e:
            raise RecordError("invalid_unicode", f"a lone UTF-16 surrogate escape (\\u{ord(e.object[e.start]):04x}) is not text") from None
    if not isinstance(obj, dict):
        raise RecordError("invalid_json", f"a record must be a JSON object, got {type(obj).__name__}")
    stream = AUTOIF if "instruction_id_list" in obj else SYSTEMCHAT
    messages, extra = _messages(obj, stream)
    _validate_structure(messages, stream, limits)
    if stream == AUTOIF:
        _validate_autoif_fields(extra)
    elif extra.get("kwargs") not in (None, []):  # constraints without ids cannot be checked
        raise RecordError("invalid_kwargs", "'kwargs' is given without 'instruction_id_list'", SYSTEMCHAT)
    return Record(stream, messages, extra)


def _messages(obj: dict[str, Any], stream: str) -> tuple[list[dict[str, str]], dict[str, Any]]:
    if obj.get("messages") is not None or obj.get("conversations") is not None:
        key = "messages" if obj.get("messages") is not None else "conversations"
        turns = obj[key]
        if not isinstance(turns, list):
            raise RecordError("missing_field", f"'{key}' must be a list of turns", stream)
        messages = [_turn(t, i, stream) for i, t in enumerate(turns)]
        drop = (key,)
        system = obj.get("system")
        if isinstance(system, str) and system.strip() and not (messages and messages[0]["role"] == "system"):
            messages.insert(0, {"role": "system", "content": system})  # ShareGPT with a top-level system prompt
            drop = (key, "system")
        extra = {k: v for k, v in obj.items() if k not in drop}
        return messages, extra
    if isinstance(obj.get("prompt"), str) and isinstance(obj.get("response"), str):
        extra = {k: v for k, v in obj.items() if k not in ("prompt", "response")}
        return [{"role": "user", "content": obj["prompt"]}, {"role": "assistant", "content": obj["response"]}], extra
    raise RecordError("missing_field", "no 'messages' (or 'conversations', or 'prompt' + 'response') field", stream)


def _turn(t: Any, i: int, stream: str) -> dict[str, str]:
    if not isinstance(t, dict):
        raise RecordError("missing_field", f"turn {i} is not an object", stream)
    role = t.get("role")
    role = t.get("from") if role is None else role
    content = t.get("content")
    content = t.get("value") if content is None else content
    if role is None or content is None:
        raise RecordError("missing_field", f"turn {i} lacks 'role'/'content' (or 'from'/'value')", stream)
    if role not in _ROLE_ALIASES:
        raise RecordError("structure:role", f"turn {i} has unknown role {role!r}", stream)
    if not isinstance(content, str):
        raise RecordError("missing_field", f"turn {i} content must be a string, got {type(content).__name__}", stream)
    return {"role": _ROLE_ALIASES[role], "content": content}


def _validate_structure(messages: list[dict[str, str]], stream: str, limits: Limits) -> None:
    if not messages:
        raise RecordError("structure:empty", "no turns", stream)
    if len(messages) > limits.max_turns:
        raise RecordError("structure:length", f"{len(messages)} turns exceed the cap of {limits.max_turns}", stream)
    total = 0
    for i, m in enumerate(messages):
        if not has_visible_text(m["content"]):
            raise RecordError("structure:empty_turn", f"turn {i} ({m['role']}) is empty or shows nothing", stream)
        n = len(m["content"])
        total += n
        if n > limits.max_turn_chars:
            raise RecordError("structure:length", f"turn {i} has {n} characters, cap is {limits.max_turn_chars}", stream)
    if total > limits.max_total_chars:
        raise RecordError("structure:length", f"{total} characters in all, cap is {limits.max_total_chars}", stream)
    body = messages[1:] if messages[0]["role"] == "system" else messages
    for i, m in enumerate(body):
        want = "user" if i % 2 == 0 else "assistant"
        if m["role"] != want:
            at = i + (len(messages) - len(body))
            raise RecordError("structure:order", f"turn {at} is {m['role']!r}, expected {want!r} (system first, then user/assistant alternating)", stream)
    if not body or body[-1]["role"] != "assistant":
        raise RecordError("structure:final_turn", "the last turn must be the assistant's", stream)


def has_visible_text(text: str) -> bool:
    """True if some character of `text` shows on screen: not whitespace, a control, a zero-width or
    other format character (\\x00, \\ufeff, \\u200b ...), nor a blank letter."""
    for ch in text:  # stops at the first visible character: the first one for nearly all text
        if ch.isalnum() and ch.isascii():
            return True
        if not ch.isspace() and ch not in _BLANK_LETTERS and unicodedata.category(ch) not in _INVISIBLE_CATEGORIES:
            return True
    return False


def _validate_autoif_fields(extra: dict[str, Any]) -> None:
    ids, kwargs = extra.get("instruction_id_list"), extra.get("kwargs")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise RecordError("missing_field", "'instruction_id_list' must be a non-empty list of strings", AUTOIF)
    if kwargs is None:
        raise RecordError("missing_field", "'kwargs' is missing (one object per instruction id)", AUTOIF)
    if not isinstance(kwargs, list) or len(kwargs) != len(ids):
        n = len(kwargs) if isinstance(kwargs, list) else type(kwargs).__name__
        raise RecordError("invalid_kwargs", f"'kwargs' must be a list of {len(ids)} objects (one per id), got {n}", AUTOIF)
