"""Append-only JSONL stores for generations and judgments, so an eval resumes and rescores.

Each line is one finished unit (a generation or a judge verdict) keyed by `key`; the last line for a
key wins. Lines are appended and flushed a batch at a time. A line cut short by an interrupt has no
newline or does not parse: it is dropped on the next open (the file is truncated back to the last
whole line), so a half-written result never counts as done.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

from siamgpt_jax.errors import UserError


def fingerprint(obj: Any) -> str:
    """A short stable hash of what produced a result (the prompt's messages, the judge's input)."""
    return hashlib.sha256(json.dumps(obj, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()[:16]


class JsonlStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rows: dict[str, dict[str, Any]] = {}
        self.dropped_partial = 0
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        good_end = 0
        pos = 0
        while pos < len(data):
            nl = data.find(b"\n", pos)
            if nl < 0:  # no newline: the write was cut short
                self.dropped_partial += 1
                break
            line = data[pos:nl]
            if line.strip():
                try:
                    row = json.loads(line)
                    self.rows[row["key"]] = row
                except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
                    if data[nl + 1:].strip():  # not the last line: damage, not an interrupt
                        lineno = data.count(b"\n", 0, pos) + 1
                        raise UserError(f"{self.path}:{lineno}: not a saved result; move the file away or pick another --out") from None
                    self.dropped_partial += 1
                    break
            pos = nl + 1
            good_end = pos
        if good_end < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(good_end)

    def get(self, key: str, fp: str | None = None) -> dict[str, Any] | None:
        """The saved row for `key`, if there is one made from the same input (`fp`)."""
        row = self.rows.get(key)
        if row is None or (fp is not None and row.get("fp") != fp):
            return None
        return row

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            f.flush()
            os.fsync(f.fileno())
        for r in rows:
            self.rows[r["key"]] = r


def write_atomic(path: str | Path, text: str | bytes) -> None:
    """Write to a temporary name and rename, so a reader never sees half a report."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(text, bytes):
        tmp.write_bytes(text)
    else:
        tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
