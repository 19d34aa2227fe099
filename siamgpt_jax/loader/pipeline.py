"""The Grain pipeline from verified.jsonl files to packed training batches.

    per source: JsonlSource ─ [process_index::process_count] ─ shuffle(seed, new order per epoch) ─ repeat
    MapDataset.mix(sources, weights)          (eval: concatenate, one pass, no shuffle)
      ─ map(render + tokenize + truncate/drop)           ┐ in `num_workers` processes
      ─ to_iter_dataset ─ mp_prefetch                    ┘
      ─ count + drop (main process, exact stats)
      ─ FirstFitPackIterDataset(seq_len)                 → segment_ids (1.., 0 = pad), positions
      ─ batch(batch_size) ─ pad the last partial batch

Every batch is a dict of numpy arrays, each [batch_size, seq_len]: inputs/targets/segment_ids/
positions int32 and loss_mask float32. Targets are shifted inside each conversation before
packing, so no target ever crosses a segment boundary and the last token of a segment has target
0 with loss_mask 0. The iterator's state is JSON-serialisable; restoring it replays the exact
remaining batches.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

import grain
import numpy as np

from siamgpt_jax.config import from_dict
from siamgpt_jax.loader import BATCH_KEYS
from siamgpt_jax.loader.chat import ChatFormatError, encode_chat
from siamgpt_jax.loader.source import JsonlSource, parse_record, sources_for

log = logging.getLogger(__name__)

_OK, _TRUNCATED, _DROPPED = 0, 1, 2
_STATE_VERSION = 2  # 2: the record counts travel with the packer's parent state


@dataclass(frozen=True)
class SourceConfig:
    path: str
    weight: float = 1.0
    stream: str | None = None  # keep only records whose "stream" field equals this


@dataclass(frozen=True)
class LoaderConfig:
    """Section `data:` of the training YAML."""

    sources: tuple[SourceConfig, ...] = ()
    seq_len: int = 4096
    train_on: Literal["all_assistant", "last_assistant"] = "all_assistant"
    empty_think: bool = True
    too_long: Literal["truncate", "drop"] = "truncate"
    eval_fraction: float = 0.0  # deterministic hash-of-id held-out split
    num_workers: int = 0  # grain worker processes for render + tokenize (0 = in-process)
    read_threads: int = 1  # grain read threads per process
    packing_bins: int = 128  # rows packed at once by first-fit; more = less padding
    tokenizer: str | None = None  # HF tokenizer folder or hub model id; None = Qwen3 built offline


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray)):
        return {"__b64__": base64.b64encode(bytes(obj)).decode("ascii")}
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"loader state holds an unserialisable {type(obj).__name__}")


def _json_restore(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__b64__"}:
            return base64.b64decode(obj["__b64__"])
        return {k: _json_restore(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_restore(v) for v in obj]
    return obj


class RenderRecord:
    """Raw JSONL line -> one unpacked example with shifted targets (runs in the grain workers)."""

    def __init__(self, tokenizer, cfg: LoaderConfig):
        self.tokenizer = tokenizer
        self.seq_len = cfg.seq_len
        self.train_on = cfg.train_on
        self.empty_think = cfg.empty_think
        self.too_long = cfg.too_long

    def __call__(self, item: tuple[bytes, str]) -> dict[str, Any]:
        raw, where = item
        try:
            rec = parse_record(raw, where)
        except ValueError as e:
            raise ChatFormatError(str(e)) from None
        if "id" in rec:
            where = f"{where} (id={rec['id']})"
        if "messages" not in rec:
            raise ChatFormatError(f"{where}: record has no 'messages'")
        ids, mask = encode_chat(self.tokenizer, rec["messages"], train_on=self.train_on,
                                empty_think=self.empty_think, where=where)
        status = _OK
        if len(ids) > self.seq_len:
            if self.too_long == "drop":
                log.warning("%s: %d tokens > seq_len %d, dropped", where, len(ids), self.seq_len)
                empty = np.zeros(0, np.int32)
                return {"inputs": empty, "targets": empty, "loss_mask": empty.astype(np.float32),
                        "status": _DROPPED, "where": where}
            ids, mask = ids[: self.seq_len], mask[: self.seq_len]
            status = _TRUNCATED
        ids_arr = np.asarray(ids, dtype=np.int32)
        mask_arr = np.asarray(mask, dtype=np.float32)
        # Shift inside the conversation: token t predicts t+1; the last token predicts nothing.
        targets = np.zeros_like(ids_arr)
        targets[:-1] = ids_arr[1:]
        loss_mask = np.zeros_like(mask_arr)
        loss_mask[:-1] = mask_arr[1:]
        return {"inputs": ids_arr, "targets": targets, "loss_mask": loss_mask, "status": status, "where": where}


class LoaderStats:
    """Counts over what this iterator has consumed (records are counted when the packer reads them)."""

    FIELDS = ("records", "truncated", "dropped", "batches", "rows", "segments", "tokens", "loss_tokens", "slots")

    def __init__(self):
        self.counts = dict.fromkeys(self.FIELDS, 0)

    def as_dict(self) -> dict[str, float]:
        out: dict[str, float] = dict(self.counts)
        slots = self.counts["slots"]
        out["padding_fraction"] = 1.0 - self.counts["tokens"] / slots if slots else 0.0
        return out


class _CountAndDrop:
    """Main-process tap between the workers and the packer: exact record counts, drops removed."""

    RECORD_FIELDS = ("records", "truncated", "dropped")

    def __init__(self, stats: LoaderStats):
        self.stats = stats

    def __call__(self, ex: dict[str, Any]) -> bool:
        c = self.stats.counts
        c["records"] += 1
        if ex["status"] == _TRUNCATED:
            c["truncated"] += 1
        elif ex["status"] == _DROPPED:
            c["dropped"] += 1
            return False
        return True


class _CountingFilter(grain.IterDataset):
    """`filter(tap)` whose iterator state carries the tap's record counts.

    The packer saves its parent's state at the start of the batch it is filling and, on restore,
    replays the records read since then. Restoring the counts from that same moment means the
    replay counts those records once, not twice.
    """

    def __init__(self, parent: grain.IterDataset, tap: _CountAndDrop):
        super().__init__(parent)
        self._tap = tap

    def __iter__(self) -> "_CountingFilterIterator":
        return _CountingFilterIterator(self._parent.__iter__(), self._tap)


class _CountingFilterIterator(grain.DatasetIterator):
    def __init__(self, parent, tap: _CountAndDrop):
        super().__init__(parent)
        self._tap = tap

    def __next__(self):
        while True:
            value = next(self._parent)
            if self._tap(value):
                return value

    def get_state(self) -> dict[str, Any]:
        counts = self._tap.stats.counts
        return {"parent": self._parent.get_state(), "counts": {k: counts[k] for k in _CountAndDrop.RECORD_FIELDS}}

    def set_state(self, state: dict[str, Any]) -> None:
        self._parent.set_state(state["parent"])
        self._tap.stats.counts.update(state["counts"])


def _rename_packed(row: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {
        "inputs": row["inputs"].astype(np.int32),
        "targets": row["targets"].astype(np.int32),
        "loss_mask": row["loss_mask"].astype(np.float32),
        "segment_ids": row["inputs_segment_ids"].astype(np.int32),
        "positions": row["inputs_positions"].astype(np.int32),
    }


class LoaderIterator:
    """Wraps the grain iterator: fixed batch shapes, running stats, JSON-serialisable state."""

    def __init__(self, grain_iter, batch_size: int, seq_len: int, stats: LoaderStats):
        self._it = grain_iter
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.stats = stats

    def __iter__(self) -> "LoaderIterator":
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch = next(self._it)
        n = batch["inputs"].shape[0]
        if n < self.batch_size:  # last batch of a finite pass: pad with empty rows
            batch = {k: np.concatenate([v, np.zeros((self.batch_size - n, self.seq_len), v.dtype)])
                     for k, v in batch.items()}
        c = self.stats.counts
        seg = batch["segment_ids"]
        c["batches"] += 1
        c["rows"] += n
        c["tokens"] += int(np.count_nonzero(seg))
        c["slots"] += seg.size
        c["loss_tokens"] += int(np.count_nonzero(batch["loss_mask"]))
        c["segments"] += int(seg.max(axis=1).sum())
        return batch

    def get_state(self) -> dict[str, Any]:
        """JSON-serialisable; pass to set_state on a fresh iterator of the same loader to resume."""
        state = {"version": _STATE_VERSION, "grain": self._it.get_state(), "stats": dict(self.stats.counts)}
        return json.loads(json.dumps(state, default=_json_default))

    def set_state(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or state.get("version") != _STATE_VERSION:
            raise ValueError(f"not a loader state of version {_STATE_VERSION}: keys {sorted(state) if isinstance(state, dict) else type(state).__name__}")
        # batch counts first; the grain restore then sets the record counts to where its replay starts
        self.stats.counts.update(state.get("stats", {}))
        self._it.set_state(_json_restore(state["grain"]))

    def close(self) -> None:
        close = getattr(self._it, "close", None)
        if close is not None:
            close()


class Loader:
    """Iterable over batches; each `iter()` starts from the beginning (or from set_state)."""

    def __init__(self, dataset, batch_size: int, seq_len: int, sources: list[JsonlSource], tap: _CountAndDrop):
        self._dataset = dataset
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.sources = sources
        self._tap = tap
        self._stats = tap.stats

    def __iter__(self) -> LoaderIterator:
        # Fresh counters per iterator; the tap object inside the dataset is shared, so repoint it.
        self._stats = LoaderStats()
        self._tap.stats = self._stats
        return LoaderIterator(iter(self._dataset), self.batch_size, self.seq_len, self._stats)

    @property
    def stats(self) -> dict[str, float]:
        """Counts of the most recent iterator: records read/truncated/dropped, tokens, padding."""
        return self._stats.as_dict()


def _ensure_absl_flags_parsed() -> None:
    # Grain's worker processes read absl flags; outside an absl app nobody has parsed them.
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def make_loader(
    cfg: LoaderConfig,
    tokenizer,
    *,
    batch_size: int,
    seed: int,
    split: Literal["train", "eval"] = "train",
    process_index: int | None = None,
    process_count: int | None = None,
    num_epochs: int | None = None,
) -> Loader:
    """Build the loader for this process's shard. `batch_size` is per process.

    Train: sources are shuffled per epoch from `seed`, mixed by weight, repeated `num_epochs` times
    (None = forever; when finite, the mix stops with its first exhausted source). Eval: one pass
    over the held-out records of every source, in file order, unless `num_epochs` says otherwise.
    """
    if not cfg.sources:
        raise ValueError("data.sources is empty: name at least one verified.jsonl")
    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
    if batch_size <= 0 or cfg.seq_len <= 1:
        raise ValueError(f"batch_size ({batch_size}) and seq_len ({cfg.seq_len}) must be positive (seq_len > 1)")
    if not 0.0 <= cfg.eval_fraction < 1.0:
        raise ValueError(f"data.eval_fraction must be in [0, 1), got {cfg.eval_fraction}")
    if process_index is None or process_count is None:
        import jax

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")

    sources, shards = [], []
    for i, sc in enumerate(cfg.sources):
        if sc.weight <= 0:
            raise ValueError(f"data.sources[{i}] ({sc.path}): weight must be > 0, got {sc.weight}")
        files = sources_for(sc.path, stream=sc.stream, split=split, eval_fraction=cfg.eval_fraction)
        sources.extend(files)
        records = sum(len(f) for f in files)
        if records < process_count:
            raise ValueError(f"data.sources[{i}] ({sc.path}, stream={sc.stream}, split={split}) has "
                             f"{records} records, fewer than the {process_count} processes")
        # a hub dataset may be several files: one source of their records, in file order
        ds = grain.MapDataset.concatenate([grain.MapDataset.source(f) for f in files]) if len(files) > 1 \
            else grain.MapDataset.source(files[0])
        # Shard first so shards are disjoint and covering whatever the seed.
        ds = ds[process_index::process_count]
        if split == "train":
            # shuffle() draws a new permutation for every epoch that repeat() walks into.
            ds = ds.shuffle(seed=(seed * 1_000_003 + i) % 2**32).repeat(num_epochs)
        elif num_epochs is not None:
            ds = ds.repeat(num_epochs)
        shards.append(ds)

    if split == "train" and len(shards) > 1:
        mixed = grain.MapDataset.mix(shards, weights=[sc.weight for sc in cfg.sources])
    else:
        mixed = grain.MapDataset.concatenate(shards) if len(shards) > 1 else shards[0]

    ds = mixed.map(RenderRecord(tokenizer, cfg)).to_iter_dataset(
        grain.ReadOptions(num_threads=cfg.read_threads, prefetch_buffer_size=max(64, cfg.packing_bins)))
    if cfg.num_workers > 0:
        _ensure_absl_flags_parsed()
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=cfg.num_workers, per_worker_buffer_size=64))
    tap = _CountAndDrop(LoaderStats())
    ds = _CountingFilter(ds, tap)
    ds = grain.experimental.FirstFitPackIterDataset(
        ds,
        length_struct={"inputs": cfg.seq_len, "targets": cfg.seq_len, "loss_mask": cfg.seq_len},
        num_packing_bins=max(cfg.packing_bins, batch_size),
        seed=seed,
        shuffle_bins=split == "train",
    )
    ds = ds.map(_rename_packed).batch(batch_size, drop_remainder=False)
    return Loader(ds, batch_size, cfg.seq_len, sources, tap)


def loader_config_from_dict(data: dict[str, Any]) -> LoaderConfig:
    """Typed construction with the project's config errors (unknown keys name the dotted path)."""
    return from_dict(LoaderConfig, data, prefix="data")


__all__ = ["SourceConfig", "LoaderConfig", "Loader", "LoaderIterator", "make_loader", "BATCH_KEYS",
           "loader_config_from_dict"]
