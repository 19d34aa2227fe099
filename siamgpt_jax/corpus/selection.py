"""High-complexity selection: filters on records that passed verification, and deduplication.

The paper keeps the high-complexity part of SystemChat-2.0 (stream A). What "complex" means is a
choice, so each measure is a filter with a threshold, all off by default, set in the `selection:`
section of a job config or by `siamgpt-jax verify` flags:

  require_system            the conversation has a system prompt
  min_system_chars          ... of at least this many characters
  min_rounds                at least this many rounds (a round = a user turn and the reply to it)
  min_constraints_per_turn  constraints per turn (below) of at least this
  min_response_chars        every assistant reply has at least this many characters
  dedup                     "exact" (same turns, ids and kwargs), "normalized" (the same after NFKC,
                            case folding and dropping everything but letters and digits), or "none"

The filters apply to the streams in `streams` (default: stream A only; Thai AutoIF records are
selected by their verifiers); deduplication applies to every stream. A record a filter removes is
written to rejected.jsonl with kind "filtered" and one failure per filter it failed
(`filter:min_rounds`, ...); report.json counts the records each filter removed.

Constraints per turn (a heuristic for "how many requirements does the assistant have to meet"):
the constraints of the system prompt plus the mean over user turns of the constraints of each. The
constraints of a text are its list items (lines starting with `-`, `*`, `•`, `1.`, `2)`, `(a)` ...)
plus its other sentences that contain an imperative or limiting marker (must, should, do not,
never, always, only, avoid, ensure, at least, at most, no more than, exactly, limit, keep, include,
use, respond, format, ... and the Thai ต้อง, ห้าม, ควร, อย่า, ไม่เกิน, อย่างน้อย, เท่านั้น). A list
item counts once whether or not it has a marker. The system prompt counts toward every turn because
it binds every reply.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal

from siamgpt_jax.corpus.records import AUTOIF, SYSTEMCHAT, Record
from siamgpt_jax.errors import UserError

DEDUP_MODES = ("exact", "normalized", "none")
FILTERS = ("require_system", "min_system_chars", "min_rounds", "min_constraints_per_turn", "min_response_chars")

_LIST_ITEM = re.compile(r"^\s*(?:[-*•·‣▪]|\d{1,3}[.)]|\(?[a-zA-Z][.)]|\([ivx]+\)|[๐-๙]{1,3}[.)])\s+\S")
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n+")
_MARKER = re.compile(
    r"\b(?:must|should|shall|need to|has to|have to|do not|don't|never|always|only|avoid|ensure|make sure|"
    r"at least|at most|no more than|no fewer than|fewer than|less than|more than|exactly|limit|keep|include|"
    r"use|respond|reply|answer in|format|write in|refrain|mention|end with|start with|begin with|"
    r"under \d+|within \d+|maximum|minimum)\b"
    r"|ต้อง|ห้าม|ควร|อย่า|ไม่เกิน|อย่างน้อย|เท่านั้น|ไม่ต่ำกว่า|ห้ามใช้",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class SelectionConfig:
    """Section `selection:` of a job config (docs in this module's docstring)."""

    streams: tuple[str, ...] = (SYSTEMCHAT,)
    require_system: bool = False
    min_system_chars: int = 0
    min_rounds: int = 0
    min_constraints_per_turn: float = 0.0
    min_response_chars: int = 0
    dedup: Literal["exact", "normalized", "none"] = "exact"

    def validate(self) -> "SelectionConfig":
        for name in ("min_system_chars", "min_rounds", "min_constraints_per_turn", "min_response_chars"):
            if getattr(self, name) < 0:
                raise UserError(f"selection.{name} must be >= 0, got {getattr(self, name)}")
        unknown = [s for s in self.streams if s not in (SYSTEMCHAT, AUTOIF)]
        if unknown:
            raise UserError(f"selection.streams: unknown stream(s) {unknown}; streams are {[SYSTEMCHAT, AUTOIF]}")
        if self.dedup not in DEDUP_MODES:
            raise UserError(f"selection.dedup must be one of {list(DEDUP_MODES)}, got {self.dedup!r}")
        return self

    def active(self) -> dict[str, Any]:
        """The filters that can remove something, with their thresholds."""
        return {f: getattr(self, f) for f in FILTERS if getattr(self, f)}


def count_constraints(text: str) -> int:
    """List items plus other sentences with a constraint marker (see the module docstring)."""
    n = 0
    for line in text.splitlines():
        if _LIST_ITEM.match(line):
            n += 1
            continue
        n += sum(1 for sentence in _SENTENCE_END.split(line) if _MARKER.search(sentence))
    return n


def constraints_per_turn(messages: list[dict[str, str]]) -> float:
    system = sum(count_constraints(m["content"]) for m in messages if m["role"] == "system")
    users = [count_constraints(m["content"]) for m in messages if m["role"] == "user"]
    return system + (sum(users) / len(users) if users else 0.0)


def filter_failures(rec: Record, cfg: SelectionConfig) -> list[dict[str, str]]:
    """One {"check": "filter:NAME", "reason"} per filter the record fails; [] when it is kept."""
    if rec.stream not in cfg.streams:
        return []
    out = []
    msgs = rec.messages
    system = msgs[0]["content"] if msgs[0]["role"] == "system" else None
    if cfg.require_system and system is None:
        out.append({"check": "filter:require_system", "reason": "no system prompt"})
    if cfg.min_system_chars and len(system or "") < cfg.min_system_chars:
        out.append({"check": "filter:min_system_chars", "reason": f"system prompt has {len(system or '')} characters < {cfg.min_system_chars}"})
    if cfg.min_rounds:
        rounds = sum(1 for m in msgs if m["role"] == "user")
        if rounds < cfg.min_rounds:
            out.append({"check": "filter:min_rounds", "reason": f"{rounds} round(s) < {cfg.min_rounds}"})
    if cfg.min_constraints_per_turn:
        c = constraints_per_turn(msgs)
        if c < cfg.min_constraints_per_turn:
            out.append({"check": "filter:min_constraints_per_turn", "reason": f"{c:.2f} constraints per turn < {cfg.min_constraints_per_turn}"})
    if cfg.min_response_chars:
        shortest = min(len(m["content"]) for m in msgs if m["role"] == "assistant")
        if shortest < cfg.min_response_chars:
            out.append({"check": "filter:min_response_chars", "reason": f"an assistant reply has {shortest} characters < {cfg.min_response_chars}"})
    return out


def _normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join("".join(ch if ch.isalnum() else " " for ch in text).split())


def dedup_key(rec: Record, mode: str) -> str | None:
    """The key two records share when they are duplicates under `mode`; None for "none"."""
    if mode == "exact":
        return rec.content_id()
    if mode == "normalized":
        parts = [f"{m['role']}\x1f{_normalize(m['content'])}" for m in rec.messages]
        parts.append(json.dumps([rec.instruction_ids, rec.kwargs_list], sort_keys=True, ensure_ascii=False))
        return "n:" + hashlib.sha256("\x1e".join(parts).encode("utf-8")).hexdigest()[:24]
    return None
