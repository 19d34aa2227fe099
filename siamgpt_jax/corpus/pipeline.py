"""The verification pass: raw JSONL corpora -> verified.jsonl, rejected.jsonl, report.json.

Lines are read in input order, cut into chunks and verified by a process pool (pythainlp is loaded
once per worker). `imap` returns chunks in order and deduplication happens in the parent, so the
output order is the input order and a rerun writes the same bytes. Outputs are written to temporary
names and renamed, so an interrupted run never leaves a file that looks complete.
"""

from __future__ import annotations

import functools
import gc
import json
import multiprocessing as mp
import os
import sys
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from siamgpt_jax.corpus import verify
from siamgpt_jax.errors import UserError
from siamgpt_jax.corpus.records import AUTOIF, Limits, Record, RecordError, encode_str, line_json, parse_line
from siamgpt_jax.corpus.script import thai_share

CHUNK = 256
# Instruction ids whose presence means the prompt asked for a non-Thai answer.
_OTHER_LANGUAGE_IDS = ("language:response_language", "change_case:english_capital", "change_case:english_lowercase")


class InvalidInputError(UserError, RuntimeError):
    """Raised with --fail-on-invalid when any line is not a usable record."""


@dataclass
class Report:
    inputs: list[str]
    total: int = 0
    verified: int = 0
    rejected: int = 0  # failed checks + invalid + duplicates (= lines of rejected.jsonl)
    invalid: int = 0
    duplicates: int = 0
    per_stream: dict[str, dict[str, int]] = field(default_factory=dict)
    per_file: dict[str, dict[str, int]] = field(default_factory=dict)
    checks: dict[str, dict[str, float]] = field(default_factory=dict)  # id -> run, passed, pass_rate
    reject_reasons: dict[str, int] = field(default_factory=dict)  # check id -> records it rejected

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2) + "\n"


# ---------------------------------------------------------------- worker side


def _init_worker() -> None:
    from siamgpt_jax.corpus import thai_text

    thai_text.count_words("อุ่นเครื่อง")  # loads newmm's dictionary now, not on the first record


def _init_pool_worker() -> None:
    _init_worker()
    # Everything that exists now (pythainlp's dictionary trie and the like: hundreds of thousands of
    # containers) lives as long as the worker: leave it out of the cyclic GC's full scans, which
    # the pass's allocations trigger (measured: 0.12 s of a 2.4 s pass, 0.01 s frozen).
    gc.freeze()


@functools.lru_cache(maxsize=4096)
def _stability_verdict(iid: str, text: str):
    """A stability check with default kwargs: once per distinct turn text (turns repeat across a corpus)."""
    return verify.check(iid, text, {})


def _verify_one(raw: bytes, limits: Limits, stability: tuple[str, ...], thai_min_share: float) -> dict[str, Any]:
    """Result dict: ok / stream / record or failures / per-check outcomes.

    A record that breaks a check in a way no validation foresaw becomes an invalid record naming
    the exception, so one odd line is reported and counted instead of ending a long pass.
    """
    try:
        return _verify_record(raw, limits, stability, thai_min_share)
    except RecordError as e:
        return {"ok": False, "kind": "invalid", "stream": e.stream, "failures": [{"check": e.check, "reason": e.reason}], "runs": []}
    except Exception as e:  # noqa: BLE001 - reported per record, see the docstring
        reason = f"the verifier failed on this record: {type(e).__name__}: {e}"
        return {"ok": False, "kind": "invalid", "stream": None, "failures": [{"check": "verifier_error", "reason": reason}], "runs": []}


def _verify_record(raw: bytes, limits: Limits, stability: tuple[str, ...], thai_min_share: float) -> dict[str, Any]:
    rec = parse_line(raw, limits)
    failures: list[dict[str, Any]] = []
    runs: list[tuple[str, bool]] = []
    final = rec.messages[-1]["content"]
    invalid = False
    for iid, kw in zip(rec.instruction_ids, rec.kwargs_list):
        try:
            v = verify.check(iid, final, kw)
        except verify.VerifierError as e:
            invalid = True
            failures.append({"check": "unknown_instruction" if isinstance(e, verify.UnknownInstructionError) else "bad_kwargs", "reason": str(e)})
            continue
        runs.append((iid, v.ok))
        if not v.ok:
            failures.append({"check": iid, "reason": v.reason})
    asks_other_language = any(i in _OTHER_LANGUAGE_IDS for i in rec.instruction_ids)
    for turn, m in enumerate(rec.messages):
        if m["role"] != "assistant":
            continue
        # A Thai turn: Thai by its letters, or any assistant turn of a Thai AutoIF record whose
        # prompt did not ask for another language (so an all-English answer is caught, not skipped).
        if not (thai_share(m["content"]) >= thai_min_share or (rec.stream == AUTOIF and not asks_other_language)):
            continue
        last = turn == len(rec.messages) - 1
        for iid in stability:
            if last and iid in rec.instruction_ids:
                continue  # already run above as a constraint, with the record's own kwargs
            v = _stability_verdict(iid, m["content"])
            runs.append((iid, v.ok))
            if not v.ok:
                failures.append({"check": iid, "turn": turn, "reason": v.reason})
    out: dict[str, Any] = {"stream": rec.stream, "runs": runs, "failures": failures, "id": rec.content_id()}
    # The output line is written here, all but what only the parent knows (source, file, line), so
    # the parent neither encodes the record again nor keeps its parsed turns alive.
    if failures:
        kind = "invalid" if invalid else "failed"
        record = _record_json({"messages": rec.messages, **rec.extra}, rec)
        tail = f',"stream":{encode_str(rec.stream)},"kind":{encode_str(kind)},"failures":{line_json(failures)},"record":{record}}}\n'
        out.update(ok=False, kind=kind, line_tail=tail)
    else:
        record = {"id": out["id"], "stream": rec.stream, "messages": rec.messages, **rec.extra}
        kept = _record_json({k: v for k, v in record.items() if k not in ("id", "stream", "source")}, rec)
        out.update(ok=True, line_tail="," + kept[1:] + "\n")  # the fields after "source"
    return out


def _verify_chunk(args: tuple[list[bytes], Limits, tuple[str, ...], float]) -> list[dict[str, Any]]:
    lines, limits, stability, share = args
    return [_verify_one(raw, limits, stability, share) for raw in lines]


# ---------------------------------------------------------------- parent side


def _read_lines(paths: list[Path]) -> Iterator[tuple[str, int, bytes]]:
    for path in paths:
        with open(path, "rb") as f:
            for n, raw in enumerate(f, start=1):
                raw = raw.rstrip(b"\r\n")
                if raw.strip():
                    yield str(path), n, raw


def _dump(obj: dict[str, Any]) -> str:
    return line_json(obj) + "\n"


# The worker has already JSON-encoded each record's turns (for its content id); an output line
# is encoded with this stand-in for the turns, which are then put in its place.
_TURNS_STAND_IN = "\x00turns\x00"
_TURNS_STAND_IN_JSON = encode_str(_TURNS_STAND_IN)


def _record_json(record: dict[str, Any], rec: Record) -> str:
    """line_json(record), where record["messages"] is rec.messages, whose JSON rec already has."""
    line = line_json({**record, "messages": _TURNS_STAND_IN})
    if line.count(_TURNS_STAND_IN_JSON) != 1:  # the stand-in text occurs in the data too
        return line_json(record)
    return line.replace(_TURNS_STAND_IN_JSON, rec.messages_json())


def _verified_line(res: dict[str, Any], stream: str, source: str) -> str:
    """_dump({"id", "stream", "source", then the record's other fields}) from the worker's tail."""
    return f'{{"id":{encode_str(res["id"])},"stream":{encode_str(stream)},"source":{encode_str(source)}{res["line_tail"]}'


def _rejected_line(res: dict[str, Any], source: str, path: str, line: int) -> str:
    """_dump({"source", "file", "line", "stream", "kind", "failures", "record"}) from the worker's tail."""
    return f'{{"source":{encode_str(source)},"file":{encode_str(path)},"line":{line_json(line)}{res["line_tail"]}'


def _write_atomic(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(lines)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only still there when the write failed


def run_verification(
    inputs: list[Path],
    out_dir: Path,
    *,
    workers: int | None = None,
    fail_on_invalid: bool = False,
    progress: bool = True,
    limits: Limits = Limits(),
    stability_checks: tuple[str, ...] | None = None,
    thai_min_share: float = 0.3,
) -> Report:
    """Verify `inputs` (JSONL files) into `out_dir`; returns the Report also written to report.json."""
    from siamgpt_jax.corpus.verify import STABILITY_CHECKS, lookup

    stability = STABILITY_CHECKS if stability_checks is None else tuple(stability_checks)
    for iid in stability:
        lookup(iid)  # fail fast on a misspelled id
    inputs = [Path(p) for p in inputs]
    for p in inputs:
        if not p.is_file():
            raise FileNotFoundError(f"input corpus not found: {p}")
    items = list(_read_lines(inputs))
    chunks = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
    jobs = [([raw for _, _, raw in c], limits, stability, thai_min_share) for c in chunks]
    workers = workers or os.cpu_count() or 1

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), unit="rec", desc="verify", file=sys.stderr, dynamic_ncols=True)
    results: list[dict[str, Any]] = []
    if workers <= 1 or len(chunks) <= 1:
        _init_worker()
        gc.freeze()  # as in a pool worker (see _init_pool_worker); handed back to the collector after the pass
        try:
            for job in jobs:
                results.extend(_verify_chunk(job))
                if bar:
                    bar.update(len(job[0]))
        finally:
            gc.unfreeze()
    else:
        # fork is cheap and inherits the imported modules; spawn elsewhere (macOS, Windows).
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with ctx.Pool(min(workers, len(chunks)), initializer=_init_pool_worker) as pool:
            for res in pool.imap(_verify_chunk, jobs, chunksize=1):
                results.extend(res)
                if bar:
                    bar.update(len(res))
    if bar:
        bar.close()

    report = Report(inputs=[str(p) for p in inputs])
    verified_lines: list[str] = []
    rejected_lines: list[str] = []
    seen: dict[str, str] = {}
    runs: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    reasons: Counter[str] = Counter()
    invalid_msgs: list[str] = []
    for (path, line, raw), res in zip(items, results):
        source = f"{path}:{line}"
        stream = res.get("stream") or "unknown"
        for stat in (report.per_stream.setdefault(stream, _zero()), report.per_file.setdefault(path, _zero())):
            stat["total"] += 1
        report.total += 1
        for iid, ok in res["runs"]:
            runs[iid][0] += 1
            runs[iid][1] += ok
        if res["ok"] and res["id"] in seen:
            res = {"stream": res["stream"], "runs": res["runs"], "id": res["id"], "ok": False, "kind": "duplicate",
                   "failures": [{"check": "duplicate", "reason": f"exact duplicate of {seen[res['id']]}"}]}
        if res["ok"]:
            seen[res["id"]] = source
            verified_lines.append(_verified_line(res, stream, source))
            key = "verified"
        else:
            key = res["kind"]
            if "line_tail" in res:
                rejected_lines.append(_rejected_line(res, source, path, line))
            else:
                rej = {"source": source, "file": path, "line": line, "stream": stream, "kind": key, "failures": res["failures"]}
                if key == "duplicate":  # rare: the record is parsed again rather than kept for every line
                    rec = parse_line(raw, limits)
                    rej["record"] = {"id": res["id"], "stream": rec.stream, "messages": rec.messages, **rec.extra}
                rejected_lines.append(_dump(rej))
            for check in dict.fromkeys(f["check"] for f in res["failures"]):
                reasons[check] += 1
            if key == "invalid":
                invalid_msgs.append(f"{source}: " + "; ".join(f["reason"] for f in res["failures"]))
        stat_key = {"verified": "verified", "failed": "failed", "invalid": "invalid", "duplicate": "duplicates"}[key]
        for stat in (report.per_stream[stream], report.per_file[path]):
            stat[stat_key] += 1
    report.verified = len(verified_lines)
    report.rejected = len(rejected_lines)
    report.invalid = sum(s.get("invalid", 0) for s in report.per_file.values())
    report.duplicates = sum(s.get("duplicates", 0) for s in report.per_file.values())
    report.checks = {iid: {"run": n, "passed": p, "pass_rate": round(p / n, 6)} for iid, (n, p) in sorted(runs.items())}
    report.reject_reasons = dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))

    if fail_on_invalid and invalid_msgs:
        shown = "\n  ".join(invalid_msgs[:10])
        more = f"\n  ... and {len(invalid_msgs) - 10} more" if len(invalid_msgs) > 10 else ""
        raise InvalidInputError(f"{len(invalid_msgs)} invalid record(s):\n  {shown}{more}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # report.json is the completion marker: an earlier run's is removed first and the new one is
    # written last, so a pass interrupted between files never leaves a folder that looks complete.
    (out_dir / "report.json").unlink(missing_ok=True)
    _write_atomic(out_dir / "verified.jsonl", verified_lines)
    _write_atomic(out_dir / "rejected.jsonl", rejected_lines)
    _write_atomic(out_dir / "report.json", [report.to_json()])
    return report


def _zero() -> dict[str, int]:
    return {"total": 0, "verified": 0, "failed": 0, "invalid": 0, "duplicates": 0}
