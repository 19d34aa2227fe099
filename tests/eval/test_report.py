"""The report writers: the markdown table's cells and the chart's two layouts (bars per model, lines
over the steps of one run)."""

import matplotlib.image

from siamgpt_jax.eval import report


def _model(label, step, strict, stab, win):
    return {"label": label, "step": step, "ifeval": {"prompt_strict": strict, "prompt_loose": strict, "instruction_strict": strict,
                                                     "instruction_loose": strict, "language_ok_rate": 1.0,
                                                     "seahelm_comparable": {"lang_normalized_accuracy": strict},
                                                     "by_group": {"keywords": {"prompt_strict": strict}}},
            "stability": {"pass_rate": stab, "failure_rates": {"foreign_script": 0.1}},
            "multi_turn": {"single": {"score": 6.5, "errors": 1}, "baseline": "base" if win is not None else None,
                           "pairwise": None if win is None else {"weighted_win_rate": win, "wins": 3, "ties": 1, "losses": 2, "errors": 1}}}


def _report(models):
    return {"created": "2026-12-06T00:00:00Z", "settings": {"sampling": {"temperature": 0.0, "seed": 0}}, "models": models, "messages": ["a note"]}


def test_markdown_table():
    md = report.markdown(_report([_model("base", None, 0.5, 0.8, None), _model("ft", None, 0.75, 0.9, 0.6)]))
    assert "| base | 50.0 | 50.0 | 50.0 | 50.0 | 100.0 | 50.0 | 80.0 | 10.0 | 6.50 | — |" in md
    assert "| ft | 75.0 |" in md and md.rstrip().endswith("- a note")
    assert "ft vs base: 3 wins, 1 ties, 2 losses, 1 unreadable verdicts (not scored)" in md
    assert "| keywords |" in md  # the by-group table


def test_chart_bars_and_step_lines(tmp_path):
    for name, models in (("bars", [_model("base", None, 0.5, 0.8, None), _model("ft", None, 0.7, 0.9, 0.6)]),
                         ("steps", [_model(f"run@{s}", s, 0.3 + s / 1000, 0.8, None) for s in (100, 200, 300)])):
        path = tmp_path / f"{name}.png"
        assert report.chart(_report(models), path)
        assert matplotlib.image.imread(path).shape[0] > 100
    assert not report.chart(_report([{"label": "x", "step": None}]), tmp_path / "none.png")  # nothing to draw
