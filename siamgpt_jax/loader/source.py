"""Random access over a JSONL corpus through a byte-offset index.

One pass over the file records where each kept line starts; `__getitem__` then reads a single line
with `os.pread`. That gives Grain the random access its global shuffle and per-process slicing need
without converting to ArrayRecord: for corpora of this size (tens to hundreds of MB) the index is a
few MB of int64 and building it costs one JSON parse per line. The same pass applies the `stream`
filter and the hash-based train/eval split, and rejects lines that are not JSON objects, naming
file:line.

A source path may also be a hub dataset id (siamgpt_jax.hub): `sources_for` resolves it to the
repo's local files and opens each with the same reader.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from siamgpt_jax.hub import resolve_dataset


def parse_record(raw: bytes | str, where: str) -> dict:
    """One JSONL line -> a dict; ValueError naming `where` (file:line) otherwise."""
    try:
        rec = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: invalid JSON: {e}") from None
    if not isinstance(rec, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    return rec


def split_hash(key: str) -> int:
    """A record's place in [0, 2**64) for the held-out split (stored by token counts, see below)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")


def split_key(rec: dict, path: str | os.PathLike, lineno: int) -> str:
    """What the held-out split hashes: the record's id, else file name and line."""
    return str(rec.get("id") or f"{Path(path).name}:{lineno}")


def in_eval_split(key: str, eval_fraction: float) -> bool:
    """Deterministic held-out split: the same key lands on the same side on every host and run."""
    if eval_fraction <= 0.0:
        return False
    return split_hash(key) / 2.0**64 < eval_fraction


class JsonlSource:
    """Grain-compatible random-access source: item i is (raw line bytes, "file:line")."""

    def __init__(self, path: str | os.PathLike, *, stream: str | None = None,
                 split: str = "train", eval_fraction: float = 0.0):
        if split not in ("train", "eval"):
            raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
        self.path = str(path)
        if not Path(self.path).is_file():
            raise FileNotFoundError(f"data source not found: {self.path}")
        self.stream = stream
        offsets, lengths, lines = [], [], []
        want_eval = split == "eval"
        must_parse = stream is not None or eval_fraction > 0.0
        with open(self.path, "rb") as f:
            pos = 0
            for lineno, line in enumerate(f, 1):
                start, pos = pos, pos + len(line)
                if not line.strip():
                    continue
                if must_parse:
                    rec = parse_record(line, f"{self.path}:{lineno}")
                    if stream is not None and rec.get("stream") != stream:
                        continue
                    key = split_key(rec, self.path, lineno)
                    if in_eval_split(key, eval_fraction) != want_eval:
                        continue
                elif want_eval:
                    continue  # eval_fraction == 0: the eval split is empty
                offsets.append(start)
                lengths.append(len(line))
                lines.append(lineno)
        self._offsets = np.asarray(offsets, dtype=np.int64)
        self._lengths = np.asarray(lengths, dtype=np.int64)
        self._lines = np.asarray(lines, dtype=np.int64)
        self._fd: int | None = None
        self._fd_pid: int | None = None

    def __len__(self) -> int:
        return len(self._offsets)

    def _file(self) -> int:
        # Opened lazily and per process: the source is pickled into Grain's worker processes.
        if self._fd is None or self._fd_pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDONLY)
            self._fd_pid = os.getpid()
        return self._fd

    def __getitem__(self, index: int) -> tuple[bytes, str]:
        index = int(index)
        raw = os.pread(self._file(), int(self._lengths[index]), int(self._offsets[index]))
        return raw, f"{self.path}:{int(self._lines[index])}"

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_fd"] = state["_fd_pid"] = None
        return state

    def __repr__(self) -> str:
        return f"JsonlSource({self.path!r}, stream={self.stream!r}, records={len(self)})"


def sources_for(spec: str | os.PathLike, *, stream: str | None = None, split: str = "train",
                eval_fraction: float = 0.0) -> list[JsonlSource]:
    """One JsonlSource per file `spec` names: a local file, or the files of a hub dataset id."""
    # no multi-host wait here: training pins (and downloads) its sources before building loaders
    files = resolve_dataset(spec, coordinate=False).files
    return [JsonlSource(f, stream=stream, split=split, eval_fraction=eval_fraction) for f in files]
