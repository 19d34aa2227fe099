"""Stream B synthesis, stage by stage, resumable.

Each stage writes `NN_name.jsonl` (what it kept), `NN_name.rejected.jsonl` (what it rejected, with
the reason) and, last, `NN_name.stats.json`; a stage whose stats file exists is read back instead
of run again, and every LLM answer sits in the request cache, so a killed run continues where it
stopped and asks the teacher nothing twice. The end products are `stream_b.jsonl` (messages with
provenance, which `siamgpt-jax verify` reads unchanged), `report.json` and `funnel.png`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from siamgpt_jax import config as config_lib
from siamgpt_jax.autoif import stages
from siamgpt_jax.autoif.cache import CachedBackend, RequestCache
from siamgpt_jax.autoif.config import AutoIFConfig
from siamgpt_jax.autoif.sandbox import Sandbox, SandboxLimits
from siamgpt_jax.errors import UserError
from siamgpt_jax.generate.backend import Backend

FUNCTION_STAGES = ("functions", "cross_validate", "backtranslate")


def stage_names(cfg: AutoIFConfig) -> list[str]:
    names = ["seeds", "augment", *FUNCTION_STAGES, "queries", "responses", "quality"]
    if cfg.mode == "registry":
        names = [n for n in names if n not in FUNCTION_STAGES]
    elif not cfg.backtranslation:
        names.remove("backtranslate")
    if not cfg.quality_scoring:
        names.remove("quality")
    return names


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _no_bar(desc: str, total: int):
    class _Bar:
        def update(self, n):
            pass

        def close(self):
            pass
    return _Bar()


def _tqdm_bar(desc: str, total: int):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="item", dynamic_ncols=True)


@dataclasses.dataclass
class AutoIFResult:
    out_dir: Path
    report: dict[str, Any]
    pairs: list[dict]
    missed: list = dataclasses.field(default_factory=list)  # replay: the requests the cache could not answer


def run_autoif(cfg: AutoIFConfig, backend: Backend | None, *, progress: bool = True,
               log: Callable[[str], Any] = print) -> AutoIFResult:
    """Run (or resume) every stage. `backend` may be None only with cfg.replay (answers from the cache)."""
    out = Path(cfg.out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"out_dir {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    _check_same_config(out, cfg)
    cache = RequestCache(out / "request_cache.jsonl")
    if backend is None and not cfg.replay:
        raise UserError("autoif needs a backend (an endpoint URL or a model path), or replay=true to answer from the cache")
    model = cfg.model or (backend.model_name if backend is not None else "")
    if not model:
        raise UserError("replay needs `model`: the model name the request cache was made with")
    cached = CachedBackend(None if cfg.replay else backend, cache, model)
    sandbox = None
    if cfg.mode == "functions":
        sandbox = Sandbox(SandboxLimits(seconds_per_function=cfg.sandbox_seconds_per_function),
                          unsafe_no_sandbox=cfg.unsafe_no_sandbox)
    ctx = stages.Context(cfg, cached, sandbox, _tqdm_bar if progress else _no_bar)

    report: dict[str, Any] = {"mode": cfg.mode, "model": model, "replay": cfg.replay,
                              "sandbox": sandbox.mode if sandbox else "not needed (registry mode)", "stages": []}
    items: list[dict] = []
    t_total = time.perf_counter()
    for n, name in enumerate(stage_names(cfg), 1):
        base = out / f"{n:02d}_{name}"
        stats_path = base.with_suffix(".stats.json")
        if stats_path.exists():
            items = _read_jsonl(base.with_suffix(".jsonl"))
            stats = json.loads(stats_path.read_text())
            log(f"[{name}] done before: {stats['kept']} kept of {stats['judged']} (resumed)")
        else:
            t = time.perf_counter()
            result = stages.seeds(ctx, cfg.seeds) if name == "seeds" else getattr(stages, name)(ctx, items)
            if result.judged != len(result.kept) + len(result.rejected):
                raise AssertionError(f"stage {name} lost items: {result.judged} judged, "
                                     f"{len(result.kept)} kept + {len(result.rejected)} rejected")
            stats = {"stage": name, **result.stats(), "seconds": round(time.perf_counter() - t, 3)}
            _write_jsonl(base.with_suffix(".jsonl"), result.kept)
            _write_jsonl(base.with_suffix(".rejected.jsonl"), result.rejected)
            stats_path.with_name(f".{stats_path.name}.tmp").write_text(json.dumps(stats, ensure_ascii=False, indent=1))
            os.replace(stats_path.with_name(f".{stats_path.name}.tmp"), stats_path)
            items = result.kept
            log(f"[{name}] kept {stats['kept']} of {stats['judged']}; rejected {stats['rejected'] or 'none'}")
        report["stages"].append(stats)

    pairs = [stages.training_record(it, cfg.mode, cfg.stability_checks) for it in items]
    _write_jsonl(out / "stream_b.jsonl", pairs)
    elapsed = time.perf_counter() - t_total
    llm_free = sum(s["seconds"] for s in report["stages"])
    report.update({
        "pairs": len(pairs),
        "cache": {"hits": cached.hits, "misses": cached.misses, "entries": len(cache.entries),
                  "replay_misses": len(cached.missed)},
        "seconds": round(elapsed, 3),
        "pairs_per_second": round(len(pairs) / elapsed, 3) if elapsed else None,
        "stage_seconds": round(llm_free, 3),
    })
    if sandbox is not None:
        report["sandbox_batches"] = sandbox.batches_run
    (out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1))
    funnel_plot(report, out / "funnel.png")
    log(f"{len(pairs)} training pairs -> {out / 'stream_b.jsonl'} (report.json, funnel.png beside it)")
    return AutoIFResult(out, report, pairs, list(cached.missed))


def _check_same_config(out: Path, cfg: AutoIFConfig) -> None:
    """A folder holds one run: resuming with changed settings would mix two runs' stages."""
    path = out / "config.json"
    current = config_lib.to_dict(cfg)
    volatile = ("backend", "replay", "request_batch", "concurrency", "unsafe_no_sandbox")
    if path.exists():
        before = json.loads(path.read_text())
        changed = sorted(k for k in current if k not in volatile and before.get(k) != current[k])
        if changed:
            raise UserError(f"{out} holds a run with different settings ({', '.join(changed)}); "
                            "use another out_dir, or remove the folder to start over")
    path.write_text(json.dumps(current, ensure_ascii=False, indent=1))


def funnel_plot(report: dict, path: Path) -> None:
    """Bars of what each stage judged and kept, top to bottom."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    st = report["stages"]
    names = [s["stage"] for s in st]
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(st) + 1.2))
    y = range(len(st))[::-1]
    ax.barh(list(y), [s["judged"] for s in st], color="#d9d9d9", label="judged")
    ax.barh(list(y), [s["kept"] for s in st], color="#2b8cbe", label="kept")
    for yi, s in zip(y, st):
        ax.text(s["judged"], yi, f" {s['kept']}/{s['judged']}", va="center", fontsize=8)
    ax.set_yticks(list(y), names)
    ax.set_xlabel("items")
    ax.set_title(f"AutoIF funnel ({report['mode']} mode): {report.get('pairs', 0)} training pairs")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
