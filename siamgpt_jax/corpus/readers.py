"""Reading corpora as users have them: JSONL or Parquet files, or folders of such shards.

    for item in read_corpus("data/SystemChat-2.0"):      # a file or a folder of shards
        item.file, item.line_or_row, item.raw               # raw is None for a blank line

    for where, rec in read_records("data/x.parquet"):    # parsed: a Record, or the RecordError why not
        ...

One entry point, `read_corpus(path)`, yields every input line (blank ones too, so they can be
counted) or Parquet row, each with its source location for error messages:
  * JSONL (`.jsonl`, `.ndjson`, `.json` holding one object per line, and their `.gz` forms):
    `raw` is the line's bytes without its line ending; a UTF-8 byte order mark at the start of a
    line (Windows editors write one at the start of the file) is dropped.
  * Parquet (`.parquet`, read with pyarrow in row batches): `raw` is the row as one JSON object
    (null columns left out), so both forms go through the same record parser.
  * A JSON array of records (a `.json` file starting with `[`, as many ShareGPT dumps are): each
    element is a row, numbered from 0.
A folder is read as its shards in sorted path order, recursively, skipping hidden entries (`.git`,
`.cache`); a folder with no shard, a file of another format, or a Parquet file whose columns hold
no conversation is a `UserError` before any work starts.
"""

from __future__ import annotations

import datetime
import decimal
import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from siamgpt_jax.corpus.records import Limits, Record, RecordError, parse_line
from siamgpt_jax.errors import UserError

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet",)
SHARD_SUFFIXES = JSONL_SUFFIXES + tuple(s + ".gz" for s in JSONL_SUFFIXES) + PARQUET_SUFFIXES
# Top-level fields one of which a record needs (records.parse_line); a Parquet schema is checked for them.
CHAT_FIELDS = ("messages", "conversations")
PROMPT_RESPONSE = ("prompt", "response")
_BOM = b"\xef\xbb\xbf"
_PARQUET_MAGIC = b"PAR1"
_ROW_BATCH = 1024


@dataclass(frozen=True)
class InputLine:
    """One line of a JSONL file or one row of a Parquet file."""

    file: str
    number: int  # 1-based line number (JSONL) or 0-based row index (Parquet), as each tool counts
    raw: bytes | None  # None: a blank line
    is_row: bool = False

    @property
    def where(self) -> str:
        """file:line, or file[row] for a Parquet row."""
        return f"{self.file}[{self.number}]" if self.is_row else f"{self.file}:{self.number}"


def shard_format(path: Path) -> str:
    """'jsonl', 'jsonl.gz', 'json-array' or 'parquet' from the name and the first bytes; UserError otherwise."""
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(tuple(s + ".gz" for s in JSONL_SUFFIXES)):
        return "jsonl.gz"
    with open(path, "rb") as f:
        head = f.read(4096)
    first = head.removeprefix(_BOM).lstrip()
    if first.startswith(b"[") and not name.endswith((".jsonl", ".ndjson")):  # .json, or a name without a suffix
        return "json-array"
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if head.startswith(_PARQUET_MAGIC):
        return "parquet"
    if first.startswith(b"{") or (not first and path.stat().st_size == len(head)):
        return "jsonl"  # JSON objects, one a line, under another name (or an empty file)
    raise UserError(f"{path}: unknown corpus format (expected JSONL or Parquet: {', '.join(SHARD_SUFFIXES)})")


def corpus_files(path: str | os.PathLike) -> list[Path]:
    """The shard files `path` stands for: itself, or a folder's shards in sorted order."""
    path = Path(path)
    if path.is_file():
        shard_format(path)  # an unknown format fails here, before the pass
        return [path]
    if path.is_dir():
        found = []
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found += [Path(dirpath) / f for f in filenames if not f.startswith(".") and f.lower().endswith(SHARD_SUFFIXES)]
        if not found:
            raise UserError(f"{path}: a folder with no corpus shards in it (looked for {', '.join(SHARD_SUFFIXES)})")
        return sorted(found)
    if path.exists():
        raise UserError(f"{path}: neither a file nor a folder")
    raise UserError(f"input corpus not found: {path}")


def read_corpus(path: str | os.PathLike) -> Iterator[InputLine]:
    """Every line (blank lines as raw=None) or row of the corpus at `path`: a file or a folder of shards."""
    for file in corpus_files(path):
        yield from read_shard(file)


def read_records(path: str | os.PathLike, limits: Limits = Limits()) -> Iterator[tuple[str, Record | RecordError]]:
    """(location, parsed record or the RecordError saying why it is not one) for every non-blank
    line or row of the corpus at `path`; the location is "file:line" or "file[row]"."""
    for item in read_corpus(path):
        if item.raw is None:
            continue
        try:
            yield item.where, parse_line(item.raw, limits)
        except RecordError as e:
            yield item.where, e


def read_shard(path: Path) -> Iterator[InputLine]:
    fmt = shard_format(path)
    if fmt == "parquet":
        yield from _parquet_rows(path)
        return
    if fmt == "json-array":
        yield from _json_array_rows(path)
        return
    opener = gzip.open if fmt == "jsonl.gz" else open
    name = str(path)
    with opener(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            raw = raw.rstrip(b"\r\n")
            if raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            yield InputLine(name, n, raw if raw.strip() else None)


def _parquet_rows(path: Path) -> Iterator[InputLine]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise UserError(f"{path}: not a readable Parquet file: {e}") from None
    columns = pf.schema_arrow.names
    if not any(c in columns for c in CHAT_FIELDS) and not all(c in columns for c in PROMPT_RESPONSE):
        raise UserError(f"{path}: no conversation column ({' or '.join(CHAT_FIELDS)}, or prompt + response); columns: {columns}")
    name, row = str(path), 0
    for batch in pf.iter_batches(batch_size=_ROW_BATCH):
        for obj in batch.to_pylist():
            yield InputLine(name, row, row_json(obj).encode("utf-8"), is_row=True)
            row += 1


def _json_array_rows(path: Path) -> Iterator[InputLine]:
    try:
        data = json.loads(path.read_bytes().removeprefix(_BOM))
    except (ValueError, RecursionError) as e:
        raise UserError(f"{path}: starts like a JSON array but is not valid JSON ({e})") from None
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON array of records, got {type(data).__name__}")
    name = str(path)
    for row, obj in enumerate(data):
        yield InputLine(name, row, json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"), is_row=True)


def row_json(obj: dict) -> str:
    """A Parquet row as one compact JSON object; null columns are absent fields, not nulls."""
    obj = {k: v for k, v in obj.items() if v is not None}
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=_jsonable)


def _jsonable(v):
    if isinstance(v, (datetime.date, datetime.time, datetime.datetime)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, (bytes, bytearray)):
        return v.decode("utf-8", errors="replace")
    raise TypeError(f"a {type(v).__name__} value cannot be written as JSON")


def unique_files(paths: list[str | os.PathLike]) -> tuple[list[Path], list[str]]:
    """All shard files of `paths`, each once (by device and inode, so links count as one);
    also the inputs that repeated an earlier one, for the report."""
    files: list[Path] = []
    repeats: list[str] = []
    seen: dict[tuple[int, int], Path] = {}
    for p in paths:
        for f in corpus_files(p):
            st = f.stat()
            key = (st.st_dev, st.st_ino)
            if key in seen:
                repeats.append(f"{f} (same file as {seen[key]})")
                continue
            seen[key] = f
            files.append(f)
    return files, repeats
