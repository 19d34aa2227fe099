"""The eval: generate what is missing, score, judge, and write one report for every model.

Per model, generations live in OUT/models/<label>/<task>.jsonl and judge verdicts next to them, so a
rerun skips finished work (resume) and `rescore` recomputes every figure without a model.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from siamgpt_jax.errors import UserError
from siamgpt_jax.eval import data, ifeval, judge, stability
from siamgpt_jax.eval import report as report_mod
from siamgpt_jax.eval.models import ModelEntry, slug
from siamgpt_jax.eval.store import JsonlStore, fingerprint, write_atomic
from siamgpt_jax.generate.backend import Backend, GenerationRequest, SamplingParams

TASKS = ("ifeval", "stability", "multi_turn")


@dataclasses.dataclass(frozen=True)
class JudgeSettings:
    base_url: str
    model: str
    max_new_tokens: int = 1024
    temperature: float = 0.0
    seed: int = 0

    @property
    def spec(self) -> str:
        return f"{self.base_url}#{self.model}"


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    tasks: tuple[str, ...] = TASKS
    ifeval_file: Path = data.IFEVAL_TH
    stability_file: Path = data.STABILITY_TH
    multi_turn_file: Path = data.MT_BENCH_TH
    sampling: SamplingParams = SamplingParams(max_new_tokens=1024)
    enable_thinking: bool = False
    batch_size: int = 16
    limit: int | None = None  # first N items of each set (smoke runs)
    rescore: bool = False  # never generate: score what is saved
    judge: JudgeSettings | None = None
    baseline: str | None = None  # a --model label, or a name in the multi-turn file's `baselines`

    def record(self) -> dict[str, Any]:
        """What the report states about how the numbers were made."""
        return {"tasks": list(self.tasks), "sampling": dataclasses.asdict(self.sampling), "enable_thinking": self.enable_thinking,
                "batch_size": self.batch_size, "limit": self.limit,
                "files": {t: str(p) for t, p in zip(TASKS, (self.ifeval_file, self.stability_file, self.multi_turn_file))},
                "judge": dataclasses.asdict(self.judge) if self.judge else None, "baseline": self.baseline}


class JudgeUnavailable(RuntimeError):
    """The judge endpoint failed after the backend's retries; verdicts already received are saved."""


@dataclasses.dataclass
class _Unit:
    key: str
    fp: str
    request: GenerationRequest
    meta: dict[str, Any]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class LazyBackend:
    """Opens the model only when something has to be generated (a resumed or rescored eval never loads it)."""

    def __init__(self, entry: ModelEntry, factory: Callable[[str], Backend]):
        self.entry, self.factory, self.backend = entry, factory, None

    def get(self) -> Backend:
        if self.backend is None:
            log(f"[eval] loading {self.entry.label} ({self.entry.spec})")
            self.backend = self.factory(self.entry.spec)
        return self.backend

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend = None


def _run_units(store: JsonlStore, units: list[_Unit], backend: LazyBackend | None, batch: int, desc: str) -> dict[str, Any]:
    """Generate every unit the store lacks; returns counts and this run's speed."""
    todo = [u for u in units if not _done(store.get(u.key, u.fp))]
    stats = {"items": len(units), "reused": len(units) - len(todo), "generated": 0, "errors": 0, "missing": 0,
             "wall_s": 0.0, "completion_tokens": 0, "tokens_per_s": None}
    if not todo:
        return stats
    if backend is None:  # rescoring: nothing is generated
        stats["missing"] = len(todo)
        return stats
    model = backend.get()
    t0 = time.perf_counter()
    with tqdm(total=len(todo), desc=desc, unit="prompt", file=sys.stderr, disable=None) as bar:
        for i in range(0, len(todo), batch):
            chunk = todo[i:i + batch]
            gens = model.generate([u.request for u in chunk])
            if len(gens) != len(chunk):
                raise RuntimeError(f"backend returned {len(gens)} generations for {len(chunk)} requests")
            rows = []
            for u, g in zip(chunk, gens):
                rows.append({"key": u.key, "fp": u.fp, **u.meta, "response": g.text, "finish_reason": g.finish_reason,
                             "prompt_tokens": g.prompt_tokens, "completion_tokens": g.completion_tokens, "error": g.error})
                stats["errors"] += g.finish_reason == "error"
                stats["completion_tokens"] += g.completion_tokens
            store.append(rows)
            stats["generated"] += len(chunk)
            elapsed = time.perf_counter() - t0
            bar.update(len(chunk))
            bar.set_postfix(tok_s=f"{stats['completion_tokens'] / max(elapsed, 1e-9):.1f}")
    stats["wall_s"] = time.perf_counter() - t0
    stats["tokens_per_s"] = stats["completion_tokens"] / stats["wall_s"] if stats["wall_s"] > 0 else None
    return stats


def _done(row: dict[str, Any] | None) -> bool:
    return row is not None and row.get("finish_reason") != "error"


def _request(messages, settings: EvalSettings) -> GenerationRequest:
    return GenerationRequest(messages=tuple(messages), sampling=settings.sampling, enable_thinking=settings.enable_thinking)


def _gen_fp(messages, settings: EvalSettings) -> str:
    return fingerprint({"messages": list(messages), "sampling": dataclasses.asdict(settings.sampling), "thinking": settings.enable_thinking})


def _response(row: dict[str, Any] | None) -> str | None:
    return row["response"] if _done(row) else None


class ModelEval:
    """One model's generations, scores and verdicts under OUT/models/<label>/."""

    def __init__(self, entry: ModelEntry, out: Path, settings: EvalSettings, factory: Callable[[str], Backend] | None):
        self.entry, self.settings = entry, settings
        self.dir = out / "models" / slug(entry.label)
        self.backend = None if settings.rescore or factory is None else LazyBackend(entry, factory)
        self.result: dict[str, Any] = {"label": entry.label, "spec": entry.spec, "step": entry.step, "generation": {}}
        if not settings.rescore:
            self._claim()

    def _claim(self) -> None:
        """Saved generations belong to one model: a label reused for another model is an error, not
        a silent mix of two models' answers."""
        meta = self.dir / "model.json"
        if meta.exists():
            saved = json.loads(meta.read_text(encoding="utf-8")).get("spec")
            if saved != self.entry.spec:
                raise UserError(f"{self.dir} holds generations of {saved}, not {self.entry.spec}: "
                                "give this model another LABEL= or use another --out")
        else:
            write_atomic(meta, json.dumps({"label": self.entry.label, "spec": self.entry.spec, "step": self.entry.step}) + "\n")

    def store(self, name: str) -> JsonlStore:
        s = JsonlStore(self.dir / f"{name}.jsonl")
        if s.dropped_partial:
            log(f"[eval] {s.path}: dropped a half-written last line (interrupted run); it is redone")
        return s

    # ---- IFEval-Th
    def run_ifeval(self, items: list[data.IFEvalItem]) -> None:
        store = self.store("ifeval")
        units = []
        for it in items:
            msgs = ({"role": "user", "content": it.prompt},)
            units.append(_Unit(f"{it.id}", _gen_fp(msgs, self.settings), _request(msgs, self.settings), {"id": it.id}))
        self.result["generation"]["ifeval"] = _run_units(store, units, self.backend, self.settings.batch_size, f"{self.entry.label} ifeval")
        scores = [ifeval.score_item(it, _response(store.get(u.key, u.fp))) for it, u in zip(items, units)]
        _write_jsonl(self.dir / "ifeval_scores.jsonl", scores)
        self.result["ifeval"] = ifeval.aggregate(items, scores)

    # ---- code-switching stability
    def run_stability(self, items: list[data.StabilityItem]) -> None:
        store = self.store("stability")
        units = [_Unit(it.id, _gen_fp(it.messages, self.settings), _request(it.messages, self.settings), {"id": it.id}) for it in items]
        self.result["generation"]["stability"] = _run_units(store, units, self.backend, self.settings.batch_size, f"{self.entry.label} stability")
        scores, responses = [], {}
        for it, u in zip(items, units):
            row = store.get(u.key, u.fp)
            responses[it.id] = _response(row) or ""
            scores.append(stability.score_item(it, _response(row), row and row.get("finish_reason")))
        _write_jsonl(self.dir / "stability_scores.jsonl", scores)
        self.result["stability"] = stability.aggregate(scores, responses)

    # ---- multi-turn answers (judging is separate: it needs every model's answers for pairwise)
    def run_multi_turn(self, items: list[data.MultiTurnItem]) -> None:
        store = self.store("multi_turn")
        n_turns = max(len(it.turns) for it in items)
        totals: dict[str, Any] = {}
        for turn in range(n_turns):
            units = []
            for it in items:
                if turn >= len(it.turns):
                    continue
                history = self.answers(store, it, turn)
                if history is None:  # an earlier turn has no answer: this one cannot be asked
                    continue
                msgs = []
                for t in range(turn):
                    msgs += [{"role": "user", "content": it.turns[t]}, {"role": "assistant", "content": history[t]}]
                msgs.append({"role": "user", "content": it.turns[turn]})
                units.append(_Unit(f"{it.id}#{turn}", _gen_fp(msgs, self.settings), _request(msgs, self.settings), {"id": it.id, "turn": turn}))
            stats = _run_units(store, units, self.backend, self.settings.batch_size, f"{self.entry.label} multi-turn {turn + 1}")
            for k, v in stats.items():
                totals[k] = (totals.get(k) or 0) + (v or 0) if k != "tokens_per_s" else None
        if totals.get("wall_s"):
            totals["tokens_per_s"] = totals["completion_tokens"] / totals["wall_s"]
        self.result["generation"]["multi_turn"] = totals
        self.mt_store = store

    def answers(self, store: JsonlStore, item: data.MultiTurnItem, upto: int) -> tuple[str, ...] | None:
        """The model's answers to turns 0..upto-1, each from the conversation as it was asked."""
        out: list[str] = []
        for t in range(upto):
            msgs = []
            for s in range(t):
                msgs += [{"role": "user", "content": item.turns[s]}, {"role": "assistant", "content": out[s]}]
            msgs.append({"role": "user", "content": item.turns[t]})
            text = _response(store.get(f"{item.id}#{t}", _gen_fp(msgs, self.settings)))
            if text is None:
                return None
            out.append(text)
        return tuple(out)

    def full_answers(self, items: list[data.MultiTurnItem]) -> dict[str, tuple[str, ...]]:
        store = getattr(self, "mt_store", None) or self.store("multi_turn")
        out = {}
        for it in items:
            a = self.answers(store, it, len(it.turns))
            if a is not None:
                out[it.id] = a
        return out

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


# ---------------------------------------------------------------- judging


class Judge:
    """Sends judge prompts through an OpenAI-compatible Backend; verdicts are saved as they come."""

    def __init__(self, settings: JudgeSettings, backend: Backend, batch: int):
        self.settings, self.backend, self.batch = settings, backend, batch
        self.sampling = SamplingParams(max_new_tokens=settings.max_new_tokens, temperature=settings.temperature, seed=settings.seed)

    def run(self, store: JsonlStore, jobs: list[tuple[str, list[dict[str, str]], dict[str, Any]]], desc: str) -> None:
        """jobs: (key, messages, meta). A request that fails after the backend's retries is saved as a
        judge error (scored as unreadable, asked again on the next run); a batch where every request
        fails means the endpoint is down: JudgeUnavailable, after saving whatever came back."""
        todo = []
        for key, msgs, meta in jobs:
            fp = fingerprint({"messages": msgs})
            row = store.get(key, fp)
            if row is None or row.get("judge_model") != self.settings.model or row.get("error"):
                todo.append((key, fp, msgs, meta))
        with tqdm(total=len(todo), desc=desc, unit="verdict", file=sys.stderr, disable=None if todo else True) as bar:
            for i in range(0, len(todo), self.batch):
                chunk = todo[i:i + self.batch]
                gens = self.backend.generate([GenerationRequest(messages=tuple(m), sampling=self.sampling) for _, _, m, _ in chunk])
                failed = [g for g in gens if g.finish_reason == "error"]
                down = len(failed) == len(chunk)
                store.append({"key": k, "fp": fp, **meta, "judge_model": self.settings.model, "output": g.text,
                              "error": g.error if g.finish_reason == "error" else None}
                             for (k, fp, _, meta), g in zip(chunk, gens) if not (down and g.finish_reason == "error"))
                bar.update(len(chunk))
                if down:
                    raise JudgeUnavailable(
                        f"judge {self.settings.model} at {self.settings.base_url} failed after retries: {failed[0].error}; "
                        f"verdicts so far are saved in {store.path}, rerun to continue")


def judge_model(me: ModelEval, items: list[data.MultiTurnItem], answers: dict[str, tuple[str, ...]],
                baseline: dict[str, tuple[str, ...]] | None, jd: Judge | None) -> dict[str, Any]:
    """Single-answer grades and (with a baseline) pairwise outcomes, from saved verdicts plus new ones."""
    single_store, pair_store = me.store("judge_single"), me.store("judge_pairwise")
    answered = [it for it in items if it.id in answers]
    single_jobs = [(f"{it.id}#{t}", judge.single_messages(it, answers[it.id], t), {"id": it.id, "turn": t})
                   for it in answered for t in range(len(it.turns))]
    pair_items = [it for it in answered if baseline is not None and it.id in baseline]
    pair_jobs = [(f"{it.id}#{t}#{o}", judge.pairwise_messages(it, answers[it.id], baseline[it.id], t, o), {"id": it.id, "turn": t, "order": o})
                 for it in pair_items for t in range(len(it.turns)) for o in judge.ORDERS]
    if jd is not None:
        jd.run(single_store, single_jobs, f"{me.entry.label} judge 1-10")
        if pair_jobs:
            jd.run(pair_store, pair_jobs, f"{me.entry.label} judge pairwise")
    cat = {it.id: it.category for it in items}

    def saved(store: JsonlStore, key: str, msgs) -> dict[str, Any] | None:
        row = store.get(key, fingerprint({"messages": msgs}))  # made from these very answers
        return row if row is not None and (jd is None or row.get("judge_model") == jd.settings.model) else None

    single_rows, pair_rows = [], []
    for key, msgs, meta in single_jobs:
        row = saved(single_store, key, msgs)
        if row is None:
            continue
        rating, why = judge.parse_rating(row["output"]) if not row.get("error") else (None, row["error"])
        single_rows.append({**meta, "category": cat[meta["id"]], "rating": rating, "parse_error": why or None})
    by_turn: dict[tuple[str, int], dict[str, str]] = {}
    for key, msgs, meta in pair_jobs:
        row = saved(pair_store, key, msgs)
        if row is not None:
            by_turn.setdefault((meta["id"], meta["turn"]), {})[meta["order"]] = row["output"]
    for (iid, turn), outs in sorted(by_turn.items()):
        if len(outs) < 2:
            continue
        verdicts = {o: judge.parse_pairwise(outs[o], o) for o in judge.ORDERS}  # an error row's output is "": unreadable
        pair_rows.append({"id": iid, "turn": turn, "category": cat[iid], "outcome": judge.combine_orders(*(verdicts[o][0] for o in judge.ORDERS)),
                          **{o: verdicts[o][0] for o in judge.ORDERS}})
    _write_jsonl(me.dir / "judge_scores.jsonl", single_rows + pair_rows)
    result: dict[str, Any] = {"conversations": len(items), "answered": len(answered),
                              "single": judge.aggregate_single(single_rows) if single_rows else None,
                              "pairwise": judge.aggregate_pairwise(pair_rows) if pair_rows else None}
    return result


# ---------------------------------------------------------------- the whole eval


def run_eval(models: list[ModelEntry], out: str | Path, settings: EvalSettings,
             backend_factory: Callable[[str], Backend] | None = None,
             judge_factory: Callable[[JudgeSettings], Backend] | None = None) -> dict[str, Any]:
    """Evaluate every model; returns the report (also written to OUT/report.{json,md} and OUT/scores.png)."""
    out = Path(out)
    unknown = sorted(set(settings.tasks) - set(TASKS))
    if unknown:
        raise UserError(f"--tasks: unknown task {unknown[0]!r}; choose from {', '.join(TASKS)}")
    if not models:
        raise UserError("no model to evaluate: give --model at least once")
    lim = (lambda xs: xs[: settings.limit]) if settings.limit else (lambda xs: xs)
    # Read every prompt file first: a bad line stops the eval before any model is loaded.
    sets: dict[str, list] = {}
    if "ifeval" in settings.tasks:
        sets["ifeval"] = lim(data.read_ifeval(settings.ifeval_file))
    if "stability" in settings.tasks:
        sets["stability"] = lim(data.read_stability(settings.stability_file))
    if "multi_turn" in settings.tasks:
        sets["multi_turn"] = lim(data.read_multi_turn(settings.multi_turn_file))
    if "multi_turn" in sets and settings.baseline is not None and settings.baseline not in {m.label for m in models} \
            and not any(settings.baseline in it.baselines for it in sets["multi_turn"]):
        raise UserError(f"--baseline {settings.baseline!r} is neither a --model label nor a baseline in {settings.multi_turn_file}")
    messages: list[str] = []
    evals = [ModelEval(m, out, settings, backend_factory) for m in models]
    for me in evals:
        try:
            if "ifeval" in sets:
                me.run_ifeval(sets["ifeval"])
            if "stability" in sets:
                me.run_stability(sets["stability"])
            if "multi_turn" in sets:
                me.run_multi_turn(sets["multi_turn"])
        finally:
            me.close()
        for task, st in me.result["generation"].items():
            if st.get("missing"):
                messages.append(f"{me.entry.label}: {st['missing']} {task} prompts have no saved generation (--rescore scores them as failed)")
            if st.get("errors"):
                messages.append(f"{me.entry.label}: {st['errors']} {task} generations failed (rerun to retry them)")
    failed_judge = False
    if "multi_turn" in sets:
        failed_judge = _judge_all(evals, sets["multi_turn"], settings, judge_factory, messages)
    for m in messages:
        log(f"[eval] {m}")
    report = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "scoring_versions": {"ifeval": ifeval.SCORING_VERSION, "stability": "siamgpt-stability/1: corpus.verify.STABILITY_CHECKS",
                                   "multi_turn": "siamgpt-mt-judge/1: 1-10 [[N]]; pairwise [[A]]/[[B]]/[[C]] both orders, errors excluded"},
              "settings": settings.record(), "models": [me.result for me in evals], "messages": messages,
              "judge_failed": failed_judge}
    report_mod.write_all(report, out)
    return report


def _judge_all(evals: list[ModelEval], items: list[data.MultiTurnItem], settings: EvalSettings,
               judge_factory: Callable[[JudgeSettings], Backend] | None, messages: list[str]) -> bool:
    """Judge every model's multi-turn answers; returns True if the judge endpoint failed."""
    answers = {me.entry.label: me.full_answers(items) for me in evals}
    baseline, base_label = None, settings.baseline
    if base_label is None and len(evals) > 1:
        base_label = evals[0].entry.label
    if base_label is not None:
        if base_label in answers:
            baseline = answers[base_label]
        elif any(base_label in it.baselines for it in items):
            baseline = {it.id: it.baselines[base_label] for it in items if base_label in it.baselines}
        else:
            raise UserError(f"--baseline {base_label!r} is neither a --model label nor a baseline in {settings.multi_turn_file}")
    jd = backend = None
    if settings.judge is None:
        messages.append("multi-turn: no judge given (--judge-base-url, --judge-model): answers are saved, judging skipped")
    failed = False
    if settings.judge is not None and judge_factory is not None:
        try:
            backend = judge_factory(settings.judge)
            jd = Judge(settings.judge, backend, settings.batch_size)
        except UserError as e:  # the endpoint refused at once: report the rest, judge nothing
            messages.append(f"judge: {e}")
            failed = True
    try:
        for me in evals:
            is_base = base_label == me.entry.label
            if failed:
                jd = None  # the endpoint is down: report what is saved, ask nothing more
            try:
                res = judge_model(me, items, answers[me.entry.label], None if is_base else baseline, jd)
            except JudgeUnavailable as e:
                failed = True
                messages.append(f"{me.entry.label}: {e}")
                res = judge_model(me, items, answers[me.entry.label], None if is_base else baseline, None)
            res["baseline"] = None if is_base else base_label
            res["judged"] = settings.judge is not None
            me.result["multi_turn"] = res
    finally:
        if backend is not None:
            backend.close()
    return failed
