"""The verification pass: raw corpora -> verified.jsonl, rejected.jsonl, report.json.

Inputs are files or folders of shards, JSONL or Parquet (readers.py); the same file named twice
is read once (the report lists the repeat). Lines are read in input order, cut into chunks and
verified by a process pool (pythainlp is loaded once per worker). `imap` returns chunks in order
and deduplication happens in the parent, so the output order is the input order and a rerun writes
the same bytes. Every input line is accounted for: per file, lines = blank + verified + failed +
invalid + filtered + duplicates. Then, optionally, the token stage counts the verified records'
tokens with the training tokenizer (loader/token_counts.py).

Errors the user can fix (no such input, an unknown format, an --out that is a file or cannot be
written) are raised as UserError before the pass starts. Outputs are written to temporary names
and renamed; report.json, the completion marker, is removed when the pass starts and written last,
so a run that stops early (an error, --fail-on-invalid, Ctrl-C) never leaves a report that looks
like its own.
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
from typing import Any

from siamgpt_jax.corpus import thai_text, verify
from siamgpt_jax.corpus.readers import InputLine, read_shard, unique_files
from siamgpt_jax.corpus.records import AUTOIF, Limits, Record, RecordError, encode_str, line_json, parse_line
from siamgpt_jax.corpus.script import thai_share
from siamgpt_jax.corpus.selection import FILTERS, SelectionConfig, dedup_key, filter_failures
from siamgpt_jax.corpus.verify import STABILITY_CHECKS, lookup
from siamgpt_jax.errors import UserError
from siamgpt_jax.loader.token_counts import count_records, save_cached, summarize_streams
from siamgpt_jax.loader.tokenizer import load_tokenizer

CHUNK = 256
# Instruction ids whose presence means the prompt asked for a non-Thai answer.
_OTHER_LANGUAGE_IDS = ("language:response_language", "change_case:english_capital", "change_case:english_lowercase")


class InvalidInputError(UserError, RuntimeError):
    """Raised with --fail-on-invalid when any line is not a usable record."""


@dataclass
class Report:
    inputs: list[str]  # the shard files read, in order
    lines: int = 0  # every input line or Parquet row = blank_lines + total
    blank_lines: int = 0
    total: int = 0  # records (non-blank lines)
    verified: int = 0
    rejected: int = 0  # failed checks + invalid + filtered + duplicates (= lines of rejected.jsonl)
    invalid: int = 0
    filtered: int = 0
    duplicates: int = 0
    repeated_inputs: list[str] = field(default_factory=list)  # inputs naming a file already read (read once)
    per_stream: dict[str, dict[str, int]] = field(default_factory=dict)
    per_file: dict[str, dict[str, int]] = field(default_factory=dict)
    checks: dict[str, dict[str, float]] = field(default_factory=dict)  # id -> run, passed, pass_rate
    reject_reasons: dict[str, int] = field(default_factory=dict)  # check id -> records it rejected
    selection: dict[str, Any] = field(default_factory=dict)  # the selection config used
    filters: dict[str, int] = field(default_factory=dict)  # filter -> records it removed (a record can fail several)
    tokens: dict[str, Any] = field(default_factory=dict)  # per stream, over verified records (token stage)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2) + "\n"


# ---------------------------------------------------------------- worker side


def _init_worker() -> None:
    thai_text.count_words("อุ่นเครื่อง")  # loads newmm's dictionary now, not on the first record


def _init_pool_worker() -> None:
    _init_worker()
    # Everything that exists now (pythainlp's dictionary trie and the like: hundreds of thousands of
    # containers) lives as long as the worker: leave it out of the cyclic GC's full scans, which
    # the pass's allocations trigger (measured: 0.12 s of a 2.4 s pass, 0.01 s frozen).
    gc.freeze()


@functools.lru_cache(maxsize=4096)
def _stability_verdict(iid: str, text: str, prompt: str):
    """A stability check with default kwargs: once per distinct turn (turns repeat across a corpus)."""
    return verify.check(iid, text, {}, prompt=prompt)


def _prompt_before(messages: list[dict[str, str]], turn: int) -> str:
    """The system and user turns before `turn`: what the assistant turn answers (terms it may repeat)."""
    return "\n".join(m["content"] for m in messages[:turn] if m["role"] != "assistant")


def _verify_one(raw: bytes, limits: Limits, stability: tuple[str, ...], thai_min_share: float,
                selection: SelectionConfig = SelectionConfig()) -> dict[str, Any]:
    """Result dict: ok / stream / record or failures / per-check outcomes.

    A record that breaks a check in a way no validation foresaw becomes an invalid record naming
    the exception, so one odd line is reported and counted instead of ending a long pass.
    """
    try:
        return _verify_record(raw, limits, stability, thai_min_share, selection)
    except RecordError as e:
        return {"ok": False, "kind": "invalid", "stream": e.stream, "failures": [{"check": e.check, "reason": e.reason}], "runs": []}
    except Exception as e:  # noqa: BLE001 - reported per record, see the docstring
        reason = f"the verifier failed on this record: {type(e).__name__}: {e}"
        return {"ok": False, "kind": "invalid", "stream": None, "failures": [{"check": "verifier_error", "reason": reason}], "runs": []}


def _verify_record(raw: bytes, limits: Limits, stability: tuple[str, ...], thai_min_share: float,
                   selection: SelectionConfig) -> dict[str, Any]:
    rec = parse_line(raw, limits)
    failures: list[dict[str, Any]] = []
    runs: list[tuple[str, bool]] = []
    final = rec.messages[-1]["content"]
    final_prompt = _prompt_before(rec.messages, len(rec.messages) - 1)
    invalid = False
    for iid, kw in zip(rec.instruction_ids, rec.kwargs_list):
        try:
            v = verify.check(iid, final, kw, prompt=final_prompt)
        except verify.VerifierError as e:
            invalid = True
            failures.append({"check": "unknown_instruction" if isinstance(e, verify.UnknownInstructionError) else "invalid_kwargs", "reason": str(e)})
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
        prompt = final_prompt if last else _prompt_before(rec.messages, turn)
        for iid in stability:
            if last and iid in rec.instruction_ids:
                continue  # already run above as a constraint, with the record's own kwargs
            # checks that ignore the prompt get "" so their memo is shared across records
            v = _stability_verdict(iid, m["content"], prompt if verify.lookup(iid).uses_prompt else "")
            runs.append((iid, v.ok))
            if not v.ok:
                failures.append({"check": iid, "turn": turn, "reason": v.reason})
    out: dict[str, Any] = {"stream": rec.stream, "runs": runs, "failures": failures, "id": rec.content_id()}
    if not failures:  # selection only looks at records that passed every check
        failures += filter_failures(rec, selection)
        if failures:
            out["kind"] = "filtered"
        elif selection.dedup == "normalized":
            out["dedup"] = dedup_key(rec, "normalized")
    # The output line is written here, all but what only the parent knows (source, file, line), so
    # the parent neither encodes the record again nor keeps its parsed turns alive.
    if failures:
        kind = "invalid" if invalid else out.get("kind", "failed")
        record = _record_json({"messages": rec.messages, **rec.extra}, rec)
        tail = f',"stream":{encode_str(rec.stream)},"kind":{encode_str(kind)},"failures":{line_json(failures)},"record":{record}}}\n'
        out.update(ok=False, kind=kind, line_tail=tail)
    else:
        record = {"id": out["id"], "stream": rec.stream, "messages": rec.messages, **rec.extra}
        kept = _record_json({k: v for k, v in record.items() if k not in ("id", "stream", "source")}, rec)
        out.update(ok=True, line_tail="," + kept[1:] + "\n")  # the fields after "source"
    return out


def _verify_chunk(args: tuple[list[bytes], Limits, tuple[str, ...], float, SelectionConfig]) -> list[dict[str, Any]]:
    lines, limits, stability, share, selection = args
    return [_verify_one(raw, limits, stability, share, selection) for raw in lines]


# ---------------------------------------------------------------- parent side


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


def _rejected_line(res: dict[str, Any], source: str, path: str, line: int, loc_key: str = "line") -> str:
    """_dump({"source", "file", "line" (or "row"), "stream", "kind", "failures", "record"}) from the worker's tail."""
    return f'{{"source":{encode_str(source)},"file":{encode_str(path)},"{loc_key}":{line_json(line)}{res["line_tail"]}'


def _write_temp(path: Path, lines: list[str]) -> Path:
    """Write `lines` next to `path` under a hidden temporary name; the caller renames it."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(lines)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def _write_outputs(out_dir: Path, outputs: dict[str, list[str]]) -> None:
    """All outputs to temporary files first, then renamed in order (report.json last)."""
    temps: list[Path] = []
    try:
        for name, lines in outputs.items():
            temps.append(_write_temp(out_dir / name, lines))
        for name, tmp in zip(outputs, temps):
            os.replace(tmp, out_dir / name)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)  # only still there when a write failed


def check_out_dir(out_dir: Path) -> Path:
    """UserError unless `out_dir` is (or can be made) a folder this process can write into."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir}: is a file, not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UserError(f"--out {out_dir}: cannot write there ({e.strerror or e})") from None
    return out_dir


def check_chat_form(items: list[InputLine], path: Path, sample: int = 20) -> None:
    """UserError if none of a file's first `sample` lines is a JSON object with a conversation
    field: a file in another format or shape would otherwise become N invalid records and
    "0 verified". One usable record among them is enough (the rest are counted as invalid)."""
    seen = 0
    keys: list[str] = []
    first: bytes | None = None
    for it in items:
        if it.raw is None:
            continue
        seen += 1
        first = first if first is not None else it.raw
        try:
            obj = json.loads(it.raw)
        except (ValueError, RecursionError):
            obj = None
        if isinstance(obj, dict):
            if any(obj.get(k) is not None for k in ("messages", "conversations")) or ("prompt" in obj and "response" in obj):
                return
            keys = keys or sorted(obj)
        if seen >= sample:
            break
    if seen and keys:
        raise UserError(f"{path}: no conversation in its first {seen} records (need 'messages' or 'conversations', "
                        f"or 'prompt' + 'response'); the records have fields {keys}")
    if seen:
        raise UserError(f"{path}: not JSON lines: none of its first {seen} non-blank lines is a JSON object "
                        f"(the first starts {first[:40]!r})")


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
    selection: SelectionConfig = SelectionConfig(),
    tokens: Any = None,
    tokenizer: Any = None,
) -> Report:
    """Verify `inputs` (files or folders of JSONL/Parquet shards) into `out_dir`; returns the Report
    also written to report.json. `tokens`: a loader.pipeline.LoaderConfig whose tokenizer, seq_len
    and rendering the token stage uses (None: no token stage); `tokenizer` an already loaded one."""
    stability = STABILITY_CHECKS if stability_checks is None else tuple(stability_checks)
    for iid in stability:
        lookup(iid)  # fail fast on a misspelled id
    selection = selection.validate()
    files, repeats = unique_files(inputs)
    out_dir = check_out_dir(out_dir)
    if tokens is not None and tokenizer is None:
        try:  # before the pass: a bad tokenizer path fails now
            tokenizer = load_tokenizer(tokens.tokenizer)
        except (OSError, ValueError) as e:
            raise UserError(f"tokenizer for the token stage: {e}") from None
    items: list[InputLine] = []
    for f in files:
        shard = list(read_shard(f))
        check_chat_form(shard, f)
        items += shard
    # From here on the folder holds no report of an earlier run: a run that stops leaves none.
    (out_dir / "report.json").unlink(missing_ok=True)
    records = [it for it in items if it.raw is not None]
    chunks = [records[i : i + CHUNK] for i in range(0, len(records), CHUNK)]
    jobs = [([it.raw for it in c], limits, stability, thai_min_share, selection) for c in chunks]
    workers = workers or os.cpu_count() or 1

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(records), unit="rec", desc="verify", file=sys.stderr, dynamic_ncols=True)
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

    report = Report(inputs=[str(p) for p in files], repeated_inputs=repeats)
    report.selection = {f: getattr(selection, f) for f in ("streams", "dedup", *FILTERS)}
    report.selection["streams"] = list(selection.streams)
    report.filters = dict.fromkeys(selection.active(), 0)
    verified_lines: list[str] = []
    rejected_lines: list[str] = []
    seen: dict[str, str] = {}
    runs: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    reasons: Counter[str] = Counter()
    invalid_msgs: list[str] = []
    for f in files:
        report.per_file[str(f)] = _zero()
    results_iter = iter(results)
    for it in items:
        path, line = it.file, it.number
        file_stat = report.per_file[path]
        file_stat["lines"] += 1
        report.lines += 1
        if it.raw is None:
            file_stat["blank"] += 1
            report.blank_lines += 1
            continue
        res = next(results_iter)
        source = it.where
        stream = res.get("stream") or "unknown"
        report.per_stream.setdefault(stream, _zero(per_file=False))["total"] += 1
        file_stat["total"] += 1
        report.total += 1
        for iid, ok in res["runs"]:
            runs[iid][0] += 1
            runs[iid][1] += ok
        key = None
        if res["ok"] and selection.dedup != "none":
            key = res.get("dedup", res["id"])
            if key in seen:
                what = "exact" if selection.dedup == "exact" else "normalized"
                res = {"stream": res["stream"], "runs": res["runs"], "id": res["id"], "ok": False, "kind": "duplicate",
                       "failures": [{"check": "duplicate", "reason": f"{what} duplicate of {seen[key]}"}]}
        if res["ok"]:
            if key is not None:
                seen[key] = source
            verified_lines.append(_verified_line(res, stream, source))
            kind = "verified"
        else:
            kind = res["kind"]
            loc_key = "row" if it.is_row else "line"
            if "line_tail" in res:
                rejected_lines.append(_rejected_line(res, source, path, line, loc_key))
            else:
                rej = {"source": source, "file": path, loc_key: line, "stream": stream, "kind": kind, "failures": res["failures"]}
                if kind == "duplicate":  # rare: the record is parsed again rather than kept for every line
                    rec = parse_line(it.raw, limits)
                    rej["record"] = {"id": res["id"], "stream": rec.stream, "messages": rec.messages, **rec.extra}
                rejected_lines.append(_dump(rej))
            for check in dict.fromkeys(f["check"] for f in res["failures"]):
                reasons[check] += 1
                if kind == "filtered":
                    report.filters[check.removeprefix("filter:")] += 1
            if kind == "invalid":
                invalid_msgs.append(f"{source}: " + "; ".join(f["reason"] for f in res["failures"]))
        stat_key = {"duplicate": "duplicates"}.get(kind, kind)
        report.per_stream[stream][stat_key] += 1
        file_stat[stat_key] += 1
    report.verified = len(verified_lines)
    report.rejected = len(rejected_lines)
    for name in ("invalid", "filtered", "duplicates"):
        setattr(report, name, sum(s[name] for s in report.per_file.values()))
    report.checks = {iid: {"run": n, "passed": p, "pass_rate": round(p / n, 6)} for iid, (n, p) in sorted(runs.items())}
    report.reject_reasons = dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))
    if report.total == 0:
        raise UserError(f"no records in {', '.join(report.inputs)}: every line is blank")

    if fail_on_invalid and invalid_msgs:
        shown = "\n  ".join(invalid_msgs[:10])
        more = f"\n  ... and {len(invalid_msgs) - 10} more" if len(invalid_msgs) > 10 else ""
        raise InvalidInputError(f"{len(invalid_msgs)} invalid record(s):\n  {shown}{more}")
    counts = None
    if tokens is not None:
        counts, report.tokens = _token_stage(verified_lines, tokenizer, tokens, progress)
    _write_outputs(out_dir, {"verified.jsonl": verified_lines, "rejected.jsonl": rejected_lines,
                             "report.json": [report.to_json()]})
    if counts is not None:  # train --plan and the train start-up then read these instead of counting again
        save_cached(out_dir / "verified.jsonl", counts, tokenizer, tokens.train_on, tokens.empty_think)
    return report


def _token_stage(verified_lines: list[str], tokenizer, cfg, progress: bool):
    """Token counts of the verified records (as the loader will render them) and their summary
    (no timings in it: a rerun writes the same report)."""
    recs = ((r["id"], r) for r in map(json.loads, verified_lines))
    counts = count_records(recs, tokenizer, train_on=cfg.train_on, empty_think=cfg.empty_think,
                           total=len(verified_lines), progress=progress)
    summary = {"seq_len": cfg.seq_len, "train_on": cfg.train_on, "empty_think": cfg.empty_think,
               "per_stream": summarize_streams(counts, cfg.seq_len), "all": counts.summary(cfg.seq_len)}
    return counts, summary


def _zero(per_file: bool = True) -> dict[str, int]:
    head = {"lines": 0, "blank": 0} if per_file else {}
    return {**head, "total": 0, "verified": 0, "failed": 0, "invalid": 0, "filtered": 0, "duplicates": 0}
