"""An on-disk cache of LLM answers, keyed by everything that decides an answer.

The key is a hash of (model, messages or prompt, thinking switch, sampling parameters, seed), so a
rerun never asks the teacher the same question twice, and a run can be reproduced from its cache
alone (`replay`: a miss is answered with an error, never sent anywhere). Entries are appended to
one JSONL file, flushed per batch; a line cut short by a kill is skipped on the next load.
Failed generations (finish_reason "error") are never cached, so a rerun retries them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from siamgpt_jax.generate.backend import Backend, Generation, GenerationRequest

REPLAY_MISS = "not in the request cache (replay mode sends nothing to a model)"


def request_key(model: str, request: GenerationRequest) -> str:
    blob = json.dumps({
        "model": model,
        "messages": [dict(m) for m in request.messages] if request.messages is not None else None,
        "prompt": request.prompt,
        "thinking": request.enable_thinking,
        "sampling": dataclasses.asdict(request.sampling),
    }, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class RequestCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries: dict[str, Generation] = {}
        if self.path.exists():
            with self.path.open("rb") as f:
                for raw in f:
                    try:
                        rec = json.loads(raw)
                        gen = {k: tuple(v) if isinstance(v, list) else v for k, v in rec["generation"].items()}
                        self.entries[rec["key"]] = Generation(**gen)
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut short by a kill

    def get(self, key: str) -> Generation | None:
        return self.entries.get(key)

    def put(self, model: str, request: GenerationRequest, text: str, finish_reason: str = "stop") -> None:
        """Store one answer by hand (tests, or answers obtained elsewhere)."""
        self.put_many([(request_key(model, request), Generation(text, finish_reason))])

    def put_many(self, items: Sequence[tuple[str, Generation]]) -> None:
        lines = []
        for key, gen in items:
            if gen.finish_reason == "error" or key in self.entries:
                continue
            self.entries[key] = gen
            lines.append(json.dumps({"key": key, "generation": dataclasses.asdict(gen)}, ensure_ascii=False))
        if lines:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")


class CachedBackend:
    """A Backend that answers from the cache and asks `inner` only for misses (never, in replay)."""

    def __init__(self, inner: Backend | None, cache: RequestCache, model_name: str | None = None):
        if inner is None and model_name is None:
            raise ValueError("a replay-only CachedBackend needs the model name its cache was made with")
        self.inner = inner
        self.cache = cache
        self.model_name = model_name or inner.model_name
        self.hits = self.misses = 0
        self.missed: list[GenerationRequest] = []  # replay misses, in order (what a cache is missing)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        keys = [request_key(self.model_name, r) for r in requests]
        out: list[Generation | None] = [self.cache.get(k) for k in keys]
        todo = [i for i, g in enumerate(out) if g is None]
        self.hits += len(requests) - len(todo)
        self.misses += len(todo)
        if todo:
            if self.inner is None:
                for i in todo:
                    out[i] = Generation("", "error", error=REPLAY_MISS)
                    self.missed.append(requests[i])
            else:
                fresh = self.inner.generate([requests[i] for i in todo])
                for i, g in zip(todo, fresh):
                    out[i] = g
                self.cache.put_many([(keys[i], g) for i, g in zip(todo, fresh)])
        return out  # type: ignore[return-value]

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()
