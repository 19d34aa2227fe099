"""The report three ways: JSON (everything), a markdown table (the headline figures, one row per model
or step) and a PNG chart of the same figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from siamgpt_jax.eval.store import write_atomic

# (column title, path into a model's result, scale): fractions shown as percentages, ratings as is
COLUMNS: tuple[tuple[str, tuple[str, ...], float], ...] = (
    ("IFEval-Th prompt strict", ("ifeval", "prompt_strict"), 100),
    ("prompt loose", ("ifeval", "prompt_loose"), 100),
    ("instr. strict", ("ifeval", "instruction_strict"), 100),
    ("instr. loose", ("ifeval", "instruction_loose"), 100),
    ("Thai answers", ("ifeval", "language_ok_rate"), 100),
    ("SEA-HELM comparable", ("ifeval", "seahelm_comparable", "lang_normalized_accuracy"), 100),
    ("stability pass", ("stability", "pass_rate"), 100),
    ("foreign script", ("stability", "failure_rates", "foreign_script"), 100),
    ("English phrases", ("stability", "failure_rates", "english_phrase"), 100),
    ("orthography", ("stability", "failure_rates", "orthography"), 100),
    ("repetition", ("stability", "failure_rates", "repetition"), 100),
    ("wrong language", ("stability", "failure_rates", "wrong_language"), 100),
    ("MT 1-10", ("multi_turn", "single", "score"), 1),
    ("MT win rate", ("multi_turn", "pairwise", "weighted_win_rate"), 100),
)
# What the chart draws: scores where higher is better, on one 0-100 axis (the 1-10 grade ×10).
CHART = (("IFEval-Th prompt strict", 100), ("instr. loose", 100), ("stability pass", 100), ("MT 1-10", 10), ("MT win rate", 100))


def value(result: dict[str, Any], path: tuple[str, ...]) -> float | None:
    cur: Any = result
    for key in path:
        if not isinstance(cur, dict) or cur.get(key) is None:
            return None
        cur = cur[key]
    return float(cur)


def markdown(report: dict[str, Any]) -> str:
    models = report["models"]
    cols = [c for c in COLUMNS if any(value(m, c[1]) is not None for m in models)]
    sampling = {k: v for k, v in report["settings"]["sampling"].items() if k not in ("stop", "logprobs")}
    lines = ["# siamgpt-jax eval", "", f"created {report['created']}; sampling " + ", ".join(f"{k}={v}" for k, v in sampling.items()), ""]
    lines.append("| model | " + " | ".join(c[0] for c in cols) + " |")
    lines.append("| --- |" + " ---: |" * len(cols))
    for m in models:
        cells = []
        for _, path, scale in cols:
            v = value(m, path)
            cells.append("—" if v is None else f"{v * scale:.1f}" if scale != 1 else f"{v:.2f}")
        lines.append(f"| {m['label']} | " + " | ".join(cells) + " |")
    groups = sorted({g for m in models for g in (m.get("ifeval") or {}).get("by_group", {})})
    if groups:
        lines += ["", "IFEval-Th by instruction group (prompt-level strict, language-gated, %)", "",
                  "| model | " + " | ".join(groups) + " |", "| --- |" + " ---: |" * len(groups)]
        for m in models:
            bg = (m.get("ifeval") or {}).get("by_group", {})
            lines.append(f"| {m['label']} | " + " | ".join(f"{bg[g]['prompt_strict'] * 100:.1f}" if g in bg else "—" for g in groups) + " |")
    for m in models:
        mt = m.get("multi_turn") or {}
        pw, sg = mt.get("pairwise"), mt.get("single")
        if pw:
            lines.append(f"\n{m['label']} vs {mt.get('baseline')}: {pw['wins']} wins, {pw['ties']} ties, {pw['losses']} losses, "
                         f"{pw['errors']} unreadable verdicts (not scored)")
        if sg and sg["errors"]:
            lines.append(f"\n{m['label']}: {sg['errors']} unreadable 1-10 grades (not scored)")
    if report.get("messages"):
        lines += ["", "Notes:", ""] + [f"- {msg}" for msg in report["messages"]]
    return "\n".join(lines) + "\n"


def chart(report: dict[str, Any], path: Path) -> bool:
    """Bars per model for each score, or lines over the step when every model is a step of one run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    models = report["models"]
    titles = {c[0]: c for c in COLUMNS}
    series = [(name, [value(m, titles[name][1]) for m in models], scale) for name, scale in CHART]
    series = [(n, [None if v is None else v * s for v in vals]) for n, vals, s in series if any(v is not None for v in vals)]
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(models) + 3), 4.2))
    steps = [m.get("step") for m in models]
    if len(models) > 1 and all(s is not None for s in steps):
        for name, vals in series:
            pts = [(s, v) for s, v in zip(steps, vals) if v is not None]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
        ax.set_xlabel("training step")
    else:
        x = np.arange(len(models))
        w = 0.8 / len(series)
        for i, (name, vals) in enumerate(series):
            bars = ax.bar(x + (i - (len(series) - 1) / 2) * w, [v if v is not None else 0 for v in vals], w, label=name)
            ax.bar_label(bars, labels=["—" if v is None else f"{v:.0f}" for v in vals], fontsize=7)
        ax.set_xticks(x, [m["label"] for m in models], rotation=20, ha="right")
    ax.set_ylim(0, 100)
    ax.set_ylabel("score (%; MT 1-10 grade ×10)")
    ax.set_title("siamgpt-jax eval")
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return True


def write_all(report: dict[str, Any], out: Path) -> None:
    out = Path(out)
    write_atomic(out / "report.json", json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    write_atomic(out / "report.md", markdown(report))
    chart(report, out / "scores.png")
