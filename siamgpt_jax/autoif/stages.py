"""The AutoIF stages. Each takes the previous stage's items (JSON-able dicts) and returns a
`StageResult`: the items it keeps and, for every unit it judged, either a kept item or a rejection
with its reason, so `judged == kept + rejected` holds at every stage.

Stage order (pipeline.py runs them): seeds -> augment -> functions -> cross_validate ->
backtranslate -> queries -> responses -> quality. In `registry` mode the function stages are skipped:
constraints are registry ids with kwargs and are checked deterministically.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from siamgpt_jax.autoif import parse, prompts
from siamgpt_jax.autoif.config import AutoIFConfig
from siamgpt_jax.autoif.dedup import NearDuplicates
from siamgpt_jax.autoif.sandbox import FunctionJob, Sandbox
from siamgpt_jax.corpus import verify
from siamgpt_jax.errors import UserError
from siamgpt_jax.generate.backend import Backend, Generation, GenerationRequest

MIN_INSTRUCTION_CHARS = 8
# an instruction or query is Thai when Thai letters are most of its letters (names and numbers may be Latin)
THAI_INSTRUCTION_RATIO = 0.5


@dataclasses.dataclass
class StageResult:
    kept: list[dict[str, Any]]
    rejected: list[dict[str, Any]]  # each: {"reason": str, "item": ...}
    judged: int  # units judged: len(kept) + len(rejected)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # stage-specific counts

    def stats(self) -> dict[str, Any]:
        return {"judged": self.judged, "kept": len(self.kept),
                "rejected": dict(Counter(r["reason"] for r in self.rejected).most_common()), **self.extra}


@dataclasses.dataclass
class Context:
    cfg: AutoIFConfig
    backend: Backend | None
    sandbox: Sandbox | None
    progress: Callable[[str, int], Any]  # (description, total) -> a tqdm-like bar


def _is_thai(text: str) -> bool:
    return bool(verify.check("thai:response_language", text, {"min_ratio": THAI_INSTRUCTION_RATIO}))


def _generate(ctx: Context, requests: Sequence[GenerationRequest], desc: str) -> list[Generation]:
    """All requests through the backend in batches, with a progress bar."""
    out: list[Generation] = []
    bar = ctx.progress(desc, len(requests))
    for start in range(0, len(requests), ctx.cfg.request_batch):
        chunk = requests[start:start + ctx.cfg.request_batch]
        out.extend(ctx.backend.generate(chunk))
        bar.update(len(chunk))
    bar.close()
    return out


def _failure(gen: Generation) -> str | None:
    if gen.finish_reason == "error":
        return "backend_error"
    if not gen.text.strip():
        return "empty_answer"
    return None


# 1. seeds -------------------------------------------------------------------------------------------

def _thai_lines(path: str, what: str, field: str, invalid: str, check=None) -> tuple[list, list[dict]]:
    """A JSONL file of Thai texts in `field`: ([(line number, object, text)], rejected lines with their
    reason: blank_line, `invalid` (bad JSON, no text, or `check(obj)` raising), not_thai)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} file not found: {p}")
    good, bad = [], []
    for n, raw in enumerate(p.read_bytes().splitlines(), 1):
        where = f"{p}:{n}"
        if not raw.strip():
            bad.append({"reason": "blank_line", "item": {"where": where}})
            continue
        try:
            obj = json.loads(raw)
            text = obj[field].strip()
            if not text:
                raise ValueError(f"empty {field}")
            if check is not None:
                check(obj)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            bad.append({"reason": invalid, "item": {"where": where, "error": str(e)[:200]}})
            continue
        if not _is_thai(text):
            bad.append({"reason": "not_thai", "item": {"where": where, field: text}})
            continue
        good.append((n, obj, text))
    return good, bad


def _check_seed_constraints(obj: dict) -> None:
    for iid, kw in zip(obj.get("instruction_id_list", []), obj.get("kwargs", []), strict=True):
        verify.normalize_kwargs(iid, kw)


def seeds(ctx: Context, path: str) -> StageResult:
    """The seed instructions: {"id", "text", "instruction_id_list"?, "kwargs"?} per line."""
    good, rejected = _thai_lines(path, "seed", "text", "invalid_seed", _check_seed_constraints)
    kept = []
    for n, obj, text in good:
        sid = str(obj.get("id") or f"seed-{n}")
        constraints = [[i, k] for i, k in zip(obj.get("instruction_id_list", []), obj.get("kwargs", []))]
        kept.append({"iid": sid, "instruction": text, "seed": sid, "source": "seed", "constraints": constraints})
    return StageResult(kept, rejected, len(kept) + len(rejected))


# 2. augmentation ------------------------------------------------------------------------------------

def augment(ctx: Context, items: list[dict]) -> StageResult:
    """New instructions: by the LLM from the seeds (functions mode) or as pairs of seed constraints (registry)."""
    dup = NearDuplicates(ctx.cfg.max_similarity)
    for it in items:
        dup.check_and_add(it["instruction"])
    candidates, extra = (_augment_llm if ctx.cfg.mode == "functions" else _augment_registry)(ctx, items)
    kept, rejected = list(items), []
    for cand in candidates:
        text = cand["instruction"].strip()
        if len(text) < MIN_INSTRUCTION_CHARS:
            rejected.append({"reason": "too_short", "item": cand})
        elif not _is_thai(text):
            rejected.append({"reason": "not_thai", "item": cand})
        elif (sim := dup.check_and_add(text)) is not None:
            rejected.append({"reason": "near_duplicate", "item": {**cand, "rouge_l": round(sim, 3)}})
        else:
            kept.append(cand)
    extra["seeds_passed_through"] = len(items)
    return StageResult(kept, rejected, len(items) + len(candidates), extra)


def _augment_llm(ctx: Context, items: list[dict]) -> tuple[list[dict], dict]:
    cfg = ctx.cfg
    requests = []
    for r in range(cfg.augment_requests):
        rng = random.Random(cfg.seed * 7919 + r)
        shown = rng.sample(items, min(len(items), 10))
        requests.append(GenerationRequest(messages=prompts.augment([s["instruction"] for s in shown],
                                                                   cfg.instructions_per_request),
                                          sampling=cfg.generation.params(cfg.seed * 7919 + r)))
    answers = Counter()
    candidates = []
    for r, gen in enumerate(_generate(ctx, requests, "augment")):
        reason = _failure(gen)
        if reason is None:
            try:
                lines = parse.instruction_lines(gen.text)
            except parse.ParseError as e:
                reason = e.reason
        answers[reason or "ok"] += 1
        if reason is None:
            candidates += [{"iid": f"aug-{r}-{i}", "instruction": text, "seed": None, "source": "augmented",
                            "constraints": []} for i, text in enumerate(lines)]
    return candidates, {"augment_answers": dict(answers)}


def _augment_registry(ctx: Context, items: list[dict]) -> tuple[list[dict], dict]:
    """Pairs of seed constraints from different instruction groups, phrased as the two seeds' own words."""
    pairs = [(a, b) for i, a in enumerate(items) for b in items[i + 1:]
             if a["constraints"] and b["constraints"]
             and not {c[0].split(":")[0] for c in a["constraints"]} & {c[0].split(":")[0] for c in b["constraints"]}]
    random.Random(ctx.cfg.seed).shuffle(pairs)
    out = []
    for a, b in pairs[:ctx.cfg.registry_combinations]:
        out.append({"iid": f"{a['iid']}+{b['iid']}", "instruction": f"{a['instruction']} และ{b['instruction']}",
                    "seed": f"{a['seed']}+{b['seed']}", "source": "registry_pair",
                    "constraints": a["constraints"] + b["constraints"]})
    return out, {"registry_pairs_available": len(pairs)}


# 3. verification functions ----------------------------------------------------------------------------

def functions(ctx: Context, items: list[dict]) -> StageResult:
    cfg = ctx.cfg
    requests = [GenerationRequest(messages=prompts.functions(it["instruction"], cfg.min_test_cases),
                                  sampling=cfg.generation.params(cfg.seed * 104729 + k))
                for it in items for k in range(cfg.functions_per_instruction)]
    gens = _generate(ctx, requests, "functions")
    answers = Counter()
    kept, rejected = [], []
    for n, it in enumerate(items):
        funcs: list[str] = []
        cases: dict[str, bool] = {}
        for gen in gens[n * cfg.functions_per_instruction:(n + 1) * cfg.functions_per_instruction]:
            reason = _failure(gen)
            if reason is None:
                try:
                    code, new_cases = parse.function_answer(gen.text)
                    if code not in funcs:
                        funcs.append(code)
                    for inp, expected in new_cases:
                        cases.setdefault(inp, expected)
                except parse.ParseError as e:
                    reason = e.reason
            answers[reason or "ok"] += 1
        item = {**it, "functions": funcs, "cases": [[i, v] for i, v in cases.items()]}
        if len(funcs) < cfg.min_functions:
            rejected.append({"reason": "too_few_functions", "item": item})
        elif len(cases) < cfg.min_test_cases:
            rejected.append({"reason": "too_few_test_cases", "item": item})
        else:
            kept.append(item)
    return StageResult(kept, rejected, len(items), {"function_answers": dict(answers)})


# 4. cross-validation in the sandbox -------------------------------------------------------------------

def cross_validate(ctx: Context, items: list[dict]) -> StageResult:
    """Cases at least one function agrees with stay (AutoIF); functions need min_function_accuracy on them."""
    cfg = ctx.cfg
    jobs = [FunctionJob(code, tuple(c[0] for c in it["cases"])) for it in items for code in it["functions"]]
    bar = ctx.progress("cross-validate (sandbox)", len(jobs))
    results = []
    for start in range(0, len(jobs), 256):
        results += ctx.sandbox.run(jobs[start:start + 256])
        bar.update(min(256, len(jobs) - start))
    bar.close()
    errors = Counter(r.error.split(":")[0] for rs in results for r in rs if r.error)
    kept, rejected, at = [], [], 0
    for it in items:
        expected = [c[1] for c in it["cases"]]
        per_func = results[at:at + len(it["functions"])]
        at += len(it["functions"])
        agree = [any(rs[j].verdict is e for rs in per_func) for j, e in enumerate(expected)]
        good_cases = [j for j, ok in enumerate(agree) if ok]
        scored = []
        for code, rs in zip(it["functions"], per_func):
            acc = sum(rs[j].verdict is expected[j] for j in good_cases) / len(good_cases) if good_cases else 0.0
            scored.append({"code": code, "accuracy": round(acc, 4),
                           "errors": dict(Counter(r.error.split(":")[0] for r in rs if r.error))})
        valid = [f for f in scored if f["accuracy"] >= cfg.min_function_accuracy]
        item = {**it, "functions": [{"id": f"{it['iid']}/f{k}", **f} for k, f in enumerate(valid)],
                "rejected_functions": [f for f in scored if f not in valid],
                "cases": [it["cases"][j] for j in good_cases]}
        if not good_cases:
            rejected.append({"reason": "no_agreeing_cases", "item": item})
        elif not valid:
            rejected.append({"reason": "no_accurate_function", "item": item})
        else:
            kept.append(item)
    accuracies = [f["accuracy"] for it in kept for f in it["functions"]]
    return StageResult(kept, rejected, len(items),
                       {"executions": sum(len(j.cases) for j in jobs), "execution_errors": dict(errors),
                        "sandbox": ctx.sandbox.mode, "functions_kept": len(accuracies),
                        "kept_function_accuracy_mean": round(sum(accuracies) / len(accuracies), 4) if accuracies else None})


# 5. back-translation --------------------------------------------------------------------------------

def backtranslate(ctx: Context, items: list[dict]) -> StageResult:
    """Each kept function (up to a cap) back into an instruction; a judge keeps those consistent with the original."""
    cfg = ctx.cfg
    pairs = [(n, f) for n, it in enumerate(items) for f in it["functions"][:cfg.max_backtranslated_functions]]
    backs = _generate(ctx, [GenerationRequest(messages=prompts.backtranslate(f["code"]),
                                              sampling=cfg.judge.params(cfg.seed)) for _, f in pairs],
                      "back-translate")
    judge_requests, judged_pairs, verdicts = [], [], {}
    for (n, f), gen in zip(pairs, backs):
        reason = _failure(gen)
        if reason:
            verdicts[f["id"]] = reason
            continue
        f["backtranslation"] = gen.text.strip()
        judge_requests.append(GenerationRequest(messages=prompts.consistency(items[n]["instruction"], gen.text.strip()),
                                                sampling=cfg.judge.params(cfg.seed)))
        judged_pairs.append(f)
    for f, gen in zip(judged_pairs, _generate(ctx, judge_requests, "judge consistency")):
        reason = _failure(gen)
        if reason is None:
            try:
                reason = None if parse.judge_verdict(gen.text) else "backtranslation_inconsistent"
            except parse.ParseError as e:
                reason = e.reason
        verdicts[f["id"]] = reason
    kept, rejected = [], []
    for it in items:
        checked = it["functions"][:cfg.max_backtranslated_functions]
        good = [f for f in checked if verdicts.get(f["id"]) is None]
        if good:
            kept.append({**it, "functions": good})
        else:
            reasons = Counter(verdicts[f["id"]] for f in checked)
            rejected.append({"reason": reasons.most_common(1)[0][0], "item": it})
    return StageResult(kept, rejected, len(items), {"functions_judged": dict(Counter(
        "consistent" if v is None else v for v in verdicts.values()))})


# 6. queries -----------------------------------------------------------------------------------------

def read_queries(path: str) -> tuple[list[dict], list[dict]]:
    """(queries, rejected lines) from {"query": str, "topic"?: str} lines."""
    good, bad = _thai_lines(path, "query", "query", "invalid_query_line")
    return [{"qid": str(obj.get("id") or n), "query": q, "topic": obj.get("topic", "")} for n, obj, q in good], bad


def queries(ctx: Context, items: list[dict]) -> StageResult:
    good, bad = read_queries(ctx.cfg.queries)
    if not good:
        raise UserError(f"{ctx.cfg.queries}: no usable Thai queries ({len(bad)} lines rejected)")
    rng = random.Random(ctx.cfg.seed)
    prompts_ = []
    for it in items:
        for q in rng.sample(good, min(len(good), ctx.cfg.queries_per_instruction)):
            prompts_.append({**it, "pid": f"{it['iid']}|{q['qid']}", "query": q["query"], "topic": q["topic"]})
    return StageResult(prompts_, bad, len(prompts_) + len(bad), {"queries_usable": len(good)})


# 7. responses ---------------------------------------------------------------------------------------

def responses(ctx: Context, items: list[dict]) -> StageResult:
    cfg = ctx.cfg
    n = cfg.samples_per_prompt
    requests = [GenerationRequest(messages=prompts.respond(it["query"], it["instruction"]),
                                  sampling=cfg.generation.params(cfg.seed * 1_000_003 + k))
                for it in items for k in range(n)]
    gens = _generate(ctx, requests, "responses")
    candidates, rejected = [], []
    for i, it in enumerate(items):
        seen = set()
        for k, gen in enumerate(gens[i * n:(i + 1) * n]):
            cand = {**it, "sample": k, "response": gen.text}
            reason = "backend_error" if gen.finish_reason == "error" else None
            if reason is None and not gen.text.strip():
                reason = "empty_response"
            if reason is None and gen.finish_reason == "length":
                reason = "truncated_response"
            if reason is None and gen.text in seen:
                reason = "duplicate_response"
            seen.add(gen.text)
            if reason:
                rejected.append({"reason": reason, "item": cand})
            else:
                candidates.append(cand)
    kept, extra = [], {}
    if cfg.mode == "functions":
        _run_functions_on_responses(ctx, candidates)
        if candidates:
            extra["function_pass_rate_mean"] = round(
                sum(c["function_pass_rate"] for c in candidates) / len(candidates), 4)
    for c in candidates:
        reason = None
        prompt = prompts.user_turn(c["query"], c["instruction"])  # terms the prompt uses are not code-switching
        if cfg.mode == "functions":
            if c["function_pass_rate"] < cfg.min_response_pass_rate or not c["passed_functions"]:
                reason = "failed_functions"
        else:
            for iid, kw in c["constraints"]:
                if not verify.check(iid, c["response"], kw, prompt=prompt):
                    reason = f"failed_constraint:{iid}"
                    break
        if reason is None:
            for check_id in cfg.stability_checks:
                if not verify.check(check_id, c["response"], prompt=prompt):
                    reason = f"stability:{check_id}"
                    break
        if reason:
            rejected.append({"reason": reason, "item": c})
        else:
            kept.append(c)
    return StageResult(kept, rejected, len(requests), extra)


def _run_functions_on_responses(ctx: Context, candidates: list[dict]) -> None:
    """Sets function_pass_rate and passed_functions on each candidate: one sandbox job per function,
    with every response to that function's instruction as its cases."""
    by_instruction: dict[str, list[dict]] = {}
    for c in candidates:
        by_instruction.setdefault(c["iid"], []).append(c)
    jobs, owners = [], []
    for group in by_instruction.values():
        for f in group[0]["functions"]:
            jobs.append(FunctionJob(f["code"], tuple(c["response"] for c in group)))
            owners.append((f["id"], group))
    for c in candidates:
        c["passed_functions"] = []
    for (fid, group), results in zip(owners, ctx.sandbox.run(jobs) if jobs else []):
        for c, r in zip(group, results):
            if r.verdict is True:
                c["passed_functions"].append(fid)
    for c in candidates:
        c["function_pass_rate"] = round(len(c["passed_functions"]) / len(c["functions"]), 4)


# 8. quality scoring ---------------------------------------------------------------------------------

def quality(ctx: Context, items: list[dict]) -> StageResult:
    cfg = ctx.cfg
    gens = _generate(ctx, [GenerationRequest(messages=prompts.quality(it["query"], it["instruction"], it["response"]),
                                             sampling=cfg.judge.params(cfg.seed)) for it in items], "quality")
    kept, rejected = [], []
    for it, gen in zip(items, gens):
        reason = _failure(gen)
        if reason is None:
            try:
                it = {**it, "quality": parse.score(gen.text)}
                reason = None if it["quality"] >= cfg.min_quality else "low_quality"
            except parse.ParseError as e:
                reason = e.reason
        (rejected.append({"reason": reason, "item": it}) if reason else kept.append(it))
    return StageResult(kept, rejected, len(items))


def training_record(item: dict, mode: str, stability_checks: Sequence[str]) -> dict:
    """A Stream B pair as `verify` reads it: messages, deterministic constraints and provenance.

    The constraints are the registry ids the pair satisfies: its instruction's (registry mode), or,
    for an LLM-written function that no registry id expresses, the Thai stability checks it passed,
    so `verify` re-checks what can be re-checked without running generated code."""
    constraints = item["constraints"] if mode == "registry" else [[c, {}] for c in stability_checks]
    provenance = {"seed": item["seed"], "instruction": item["instruction"], "source": item["source"],
                  "query": item["query"], "topic": item["topic"], "sample": item["sample"], "mode": mode}
    if mode == "functions":
        provenance["functions"] = [{"id": f["id"], "accuracy": f["accuracy"]} for f in item["functions"]]
        provenance["function_pass_rate"] = item["function_pass_rate"]
    if "quality" in item:
        provenance["quality"] = item["quality"]
    return {"messages": [{"role": "user", "content": prompts.user_turn(item["query"], item["instruction"])},
                         {"role": "assistant", "content": item["response"]}],
            "instruction_id_list": [c[0] for c in constraints], "kwargs": [c[1] for c in constraints],
            "autoif": provenance}
