"""Token accounting: how many tokens each conversation of a corpus renders to, and what that means.

Counts are exact: the same ChatML rendering and tokenizer the loader uses (chat.encode_chat_lengths),
so `total` is the length of a record's ids and `trainable` the number of its loss-mask targets.
Per record we keep (stream, total, trainable, split hash), so any stream filter, held-out fraction
and seq_len can be summarised later without tokenizing again. Counting a file is cached under
`$SIAMGPT_CACHE/token_counts/` keyed by the file's path, size and mtime and by the tokenizer and
rendering settings; `siamgpt-jax verify` seeds that cache for the verified.jsonl it writes, so
`siamgpt-jax train --plan` and the train start-up read the counts instead of tokenizing again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from siamgpt_jax.hub import resolve_dataset
from siamgpt_jax.loader.chat import encode_chat_lengths
from siamgpt_jax.loader.source import parse_record, split_hash, split_key
from siamgpt_jax.loader.tokenizer import cache_dir

if TYPE_CHECKING:  # only its fields are read; importing the pipeline would import Grain
    from siamgpt_jax.loader.pipeline import LoaderConfig

_BATCH = 512  # conversations per encode_batch call
_CACHE_VERSION = "1"
PERCENTILES = (50, 90, 99)


@dataclass
class TokenCounts:
    """Per-record counts of one corpus, in its order."""

    streams: list[str]  # the distinct `stream` values; index -1 = a record without one
    stream: np.ndarray  # int32 index into `streams`
    total: np.ndarray  # int64 rendered tokens
    trainable: np.ndarray  # int64 loss-mask targets
    split_hash: np.ndarray  # uint64, source.split_hash of the record's split key

    @classmethod
    def empty(cls) -> "TokenCounts":
        z = np.zeros(0, np.int64)
        return cls([], np.zeros(0, np.int32), z, z.copy(), np.zeros(0, np.uint64))

    def __len__(self) -> int:
        return len(self.total)

    @classmethod
    def concatenate(cls, parts: list["TokenCounts"]) -> "TokenCounts":
        """The counts of files read one after another (as the loader concatenates a hub dataset's files)."""
        if len(parts) == 1:
            return parts[0]
        streams: list[str] = []
        for p in parts:
            streams += [s for s in p.streams if s not in streams]
        remapped = [np.asarray([streams.index(s) for s in p.streams] + [-1], np.int32)[p.stream] for p in parts]
        return cls(streams, np.concatenate(remapped) if parts else np.zeros(0, np.int32),
                   *(np.concatenate([getattr(p, f) for p in parts]) for f in ("total", "trainable", "split_hash")))

    def select(self, stream: str | None = None, split: str = "all", eval_fraction: float = 0.0) -> np.ndarray:
        """Boolean mask of the records a loader source with this `stream` filter and split reads."""
        keep = np.ones(len(self), bool)
        if stream is not None:
            keep &= self.stream == (self.streams.index(stream) if stream in self.streams else -2)
        if split != "all" and eval_fraction > 0.0:
            in_eval = self.split_hash.astype(np.float64) / 2.0**64 < eval_fraction
            keep &= in_eval if split == "eval" else ~in_eval
        elif split == "eval":
            keep[:] = False
        return keep

    def summary(self, seq_len: int, keep: np.ndarray | None = None) -> dict:
        """records, tokens, trainable tokens, length distribution, and what seq_len would cut."""
        total = self.total if keep is None else self.total[keep]
        trainable = self.trainable if keep is None else self.trainable[keep]
        n = len(total)
        over = total > seq_len
        out = {
            "records": int(n),
            "tokens": int(total.sum()),
            "trainable_tokens": int(trainable.sum()),
            "seq_len": int(seq_len),
            "over_seq_len": int(over.sum()),
            "tokens_cut": int((total[over] - seq_len).sum()),
        }
        if n:
            out["length"] = {
                "min": int(total.min()), "mean": round(float(total.mean()), 1), "max": int(total.max()),
                **{f"p{p}": int(np.percentile(total, p, method="nearest")) for p in PERCENTILES},
            }
            out["length_histogram"] = length_histogram(total, seq_len)
        return out


def length_histogram(total: np.ndarray, seq_len: int) -> dict[str, int]:
    """Records per length bucket: powers of two up to seq_len, then everything longer."""
    edges = [e for e in (2 ** k for k in range(6, 20)) if e < seq_len] + [seq_len]
    hist, lo = {}, 0
    for e in edges:
        hist[f"{lo + 1}-{e}"] = int(((total > lo) & (total <= e)).sum())
        lo = e
    hist[f">{seq_len}"] = int((total > seq_len).sum())
    return hist


def count_records(
    records: Iterable[tuple[str, dict]], tokenizer, *, train_on: str = "all_assistant", empty_think: bool = True,
    total: int | None = None, progress: bool = False, desc: str = "tokens",
) -> TokenCounts:
    """Counts for (split key, record) pairs; each record has "messages" and maybe "stream"."""
    streams: list[str] = []
    index: dict[str, int] = {}
    cols: dict[str, list] = {"stream": [], "total": [], "trainable": [], "split_hash": []}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="rec", desc=desc, file=sys.stderr, dynamic_ncols=True)
    batch: list[tuple[str, dict]] = []
    memo: dict[str, int] = {}  # repeated system prompts and user turns are encoded once

    def flush():
        totals, trained = encode_chat_lengths(
            tokenizer, [r["messages"] for _, r in batch], train_on=train_on, empty_think=empty_think,
            where=[k for k, _ in batch], memo=memo)
        for (key, rec), t, m in zip(batch, totals, trained):
            s = rec.get("stream")
            if isinstance(s, str) and s not in index:
                index[s] = len(streams)
                streams.append(s)
            cols["stream"].append(index.get(s, -1) if isinstance(s, str) else -1)
            cols["total"].append(t)
            cols["trainable"].append(m)
            cols["split_hash"].append(split_hash(key))
        if bar is not None:
            bar.update(len(batch))
        batch.clear()

    try:
        for item in records:
            batch.append(item)
            if len(batch) == _BATCH:
                flush()
        if batch:
            flush()
    finally:
        if bar is not None:
            bar.close()
    return TokenCounts(streams, np.asarray(cols["stream"], np.int32), np.asarray(cols["total"], np.int64),
                       np.asarray(cols["trainable"], np.int64), np.asarray(cols["split_hash"], np.uint64))


def _file_records(path: Path) -> Iterable[tuple[str, dict]]:
    """(split key, record) per non-blank line, with the loader's split key and error messages."""
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                where = f"{path}:{lineno}"
                rec = parse_record(line, where)
                if "messages" not in rec:  # as the loader says it (pipeline.RenderRecord)
                    raise ValueError(f"{where}: record has no 'messages'")
                yield split_key(rec, path, lineno), rec


def tokenizer_fingerprint(tokenizer) -> str:
    fp = tokenizer.__dict__.get("_fingerprint")
    if fp is None:
        fp = tokenizer.__dict__["_fingerprint"] = hashlib.sha256(tokenizer.backend.to_str().encode("utf-8")).hexdigest()[:16]
    return fp


def _cache_path(path: Path, tokenizer, train_on: str, empty_think: bool) -> Path:
    st = path.stat()
    key = json.dumps([str(path.resolve()), st.st_size, st.st_mtime_ns, tokenizer_fingerprint(tokenizer),
                      train_on, empty_think, _CACHE_VERSION])
    return cache_dir() / "token_counts" / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".npz")


def save_cached(path: Path, counts: TokenCounts, tokenizer, train_on: str, empty_think: bool) -> None:
    """Store `counts` as the counts of the file at `path` as it is now (best effort: a cache)."""
    target = _cache_path(Path(path), tokenizer, train_on, empty_think)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp.npz")
        np.savez(tmp, streams=np.asarray(counts.streams, dtype=str), stream=counts.stream, total=counts.total,
                 trainable=counts.trainable, split_hash=counts.split_hash)
        os.replace(tmp, target)
    except OSError:
        pass  # a read-only cache only costs the recount


def _load_cached(target: Path) -> TokenCounts | None:
    try:
        with np.load(target) as z:
            return TokenCounts([str(s) for s in z["streams"]], z["stream"], z["total"], z["trainable"], z["split_hash"])
    except (OSError, KeyError, ValueError):
        return None


def count_source(spec: str | os.PathLike, tokenizer, cfg: "LoaderConfig", *, progress: bool = True) -> TokenCounts:
    """Counts of a data source as the loader reads it: a local JSONL file, or a hub dataset id's
    files one after another (loader/source.sources_for)."""
    files = resolve_dataset(spec, coordinate=False).files  # training has pinned and fetched it already
    return TokenCounts.concatenate([count_file(f, tokenizer, cfg, progress=progress) for f in files])


def count_file(path: str | os.PathLike, tokenizer, cfg: "LoaderConfig", *, progress: bool = True) -> TokenCounts:
    """Counts of every record of a JSONL corpus (cached; see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data source not found: {path}")
    target = _cache_path(path, tokenizer, cfg.train_on, cfg.empty_think)
    counts = _load_cached(target) if target.exists() else None
    if counts is None:
        counts = count_records(_file_records(path), tokenizer, train_on=cfg.train_on, empty_think=cfg.empty_think,
                               progress=progress, desc=f"tokens {path.name}")
        save_cached(path, counts, tokenizer, cfg.train_on, cfg.empty_think)
    return counts


def summarize_streams(counts: TokenCounts, seq_len: int) -> dict[str, dict]:
    """summary() per stream (records without a stream under "unknown")."""
    out = {}
    for i, name in enumerate(counts.streams):
        out[name] = counts.summary(seq_len, counts.stream == i)
    if (counts.stream == -1).any():
        out["unknown"] = counts.summary(seq_len, counts.stream == -1)
    return out


__all__ = ["TokenCounts", "count_records", "count_file", "count_source", "save_cached", "summarize_streams", "length_histogram"]
