"""Stability failure kinds and rates; judge parsing, both-order aggregation and error accounting."""

import pytest

from siamgpt_jax.eval import judge, stability
from siamgpt_jax.eval.data import StabilityItem

GOOD = "การเรียนรู้ของเครื่องเป็นสาขาหนึ่งของปัญญาประดิษฐ์ ที่ให้คอมพิวเตอร์เรียนรู้จากข้อมูลแทนการเขียนกฎทีละข้อ"


def _item(i, prompt="อธิบายการเรียนรู้ของเครื่อง"):
    return StabilityItem(f"s{i}", "technology", ({"role": "user", "content": prompt},))


CASES = [
    (GOOD, []),
    (GOOD + " 机器学习很重要", ["foreign_script"]),
    (GOOD + " this is very important for everyone today", ["english_phrase"]),
    ("Machine learning is a field of artificial intelligence that learns from data. การเรียนรู้", ["english_phrase", "wrong_language"]),
    (GOOD + " ่ก", ["orthography"]),
    (GOOD + "\n" + "\n".join(["ขอบคุณที่ถามคำถามนี้มากครับ"] * 5), ["repetition"]),
    ("", ["empty"]),
]


def test_each_failure_kind_and_exact_rates():
    scores = [stability.score_item(_item(i), resp, "stop") for i, (resp, _) in enumerate(CASES)]
    for s, (_, kinds) in zip(scores, CASES):
        assert s["kinds"] == sorted(kinds), s
    rep = stability.aggregate(scores, {s["id"]: r for s, (r, _) in zip(scores, CASES)})
    assert rep["pass_rate"] == pytest.approx(1 / 7)
    assert rep["failure_rates"]["english_phrase"] == pytest.approx(2 / 7)
    for kind in ("foreign_script", "orthography", "repetition", "wrong_language", "empty"):
        assert rep["failure_rates"][kind] == pytest.approx(1 / 7), kind
    assert rep["examples"]["foreign_script"][0]["id"] == "s1" and "机器" in rep["examples"]["foreign_script"][0]["response"]


def test_terms_the_prompt_uses_are_not_code_switching():
    # The registry's rule (docs/VERIFIERS.md) gets the prompt: words the user wrote may come back.
    prompt = "ช่วย explain หน่อยว่า machine learning model deployment pipeline ทำงานยังไง"
    answer = "machine learning model deployment pipeline คือขั้นตอนนำโมเดลที่ฝึกแล้วไปให้บริการจริง ตั้งแต่ทดสอบจนถึงเฝ้าดูผล"
    assert stability.score_item(_item(0, prompt), answer)["ok"]
    # the same answer to a prompt in Thai only: an inserted English phrase
    assert stability.score_item(_item(0, "ช่วยอธิบายขั้นตอนนำโมเดลไปใช้งานจริง"), answer)["kinds"] == ["english_phrase"]
    # an earlier English turn counts as the prompt too (all user and system turns before the answer)
    conv = StabilityItem("c", "mixed", ({"role": "user", "content": "What is a deployment pipeline in machine learning?"},
                                        {"role": "assistant", "content": "คือขั้นตอนนำโมเดลไปใช้งานครับ"},
                                        {"role": "user", "content": "อธิบายเพิ่มเป็นภาษาไทยหน่อย"}))
    assert "deployment pipeline" in conv.prompt and "คือขั้นตอน" not in conv.prompt


# ---------------------------------------------------------------- judge


@pytest.mark.parametrize("text,rating,error", [
    ("ดีมาก Rating: [[8]]", 8.0, False),
    ("[[7.5]]", 7.5, False),
    ("first [[6]] then again [[6]]", 6.0, False),
    ("[[6]] ... [[9]]", None, True),  # conflicting
    ("Rating: 8/10", None, True),  # no [[N]]
    ("[[0]]", None, True),
    ("[[11]]", None, True),
    ("", None, True),
])
def test_parse_rating(text, rating, error):
    value, why = judge.parse_rating(text)
    assert value == rating and bool(why) == error


@pytest.mark.parametrize("text,order,outcome", [
    ("A ดีกว่า [[A]]", judge.MODEL_FIRST, judge.WIN),
    ("A ดีกว่า [[A]]", judge.BASELINE_FIRST, judge.LOSE),
    ("[[B]]", judge.MODEL_FIRST, judge.LOSE),
    ("[[B]]", judge.BASELINE_FIRST, judge.WIN),
    ("[[C]]", judge.BASELINE_FIRST, judge.TIE),
    ("[[A]] final: [[A]]", judge.MODEL_FIRST, judge.WIN),
    ("[[A]] or [[B]]", judge.MODEL_FIRST, judge.ERROR),
    ("A is better", judge.MODEL_FIRST, judge.ERROR),
    ("", judge.BASELINE_FIRST, judge.ERROR),
])
def test_parse_pairwise_from_the_models_side(text, order, outcome):
    assert judge.parse_pairwise(text, order)[0] == outcome


def test_both_orders_cancel_position_bias_and_errors_never_win():
    W, L, T, E = judge.WIN, judge.LOSE, judge.TIE, judge.ERROR
    assert judge.combine_orders(W, W) == W and judge.combine_orders(L, L) == L
    assert judge.combine_orders(W, L) == T  # a judge that always picks A: the verdict flips with position
    assert judge.combine_orders(T, W) == T and judge.combine_orders(L, T) == T
    for other in (W, L, T, E):
        assert judge.combine_orders(E, other) == E and judge.combine_orders(other, E) == E
    # A judge that always answers [[A]]: every pair ties, never a win.
    always_a = [judge.combine_orders(judge.parse_pairwise("[[A]]", judge.MODEL_FIRST)[0],
                                     judge.parse_pairwise("[[A]]", judge.BASELINE_FIRST)[0]) for _ in range(4)]
    assert judge.win_rate(always_a)["win_rate"] == 0.5
    rows = [{"category": "math", "turn": 0, "outcome": W}, {"category": "math", "turn": 1, "outcome": E},
            {"category": "writing", "turn": 0, "outcome": L}, {"category": "writing", "turn": 1, "outcome": T}]
    agg = judge.aggregate_pairwise(rows)
    assert (agg["wins"], agg["losses"], agg["ties"], agg["errors"], agg["judged"]) == (1, 1, 1, 1, 3)
    assert agg["win_rate"] == pytest.approx(1.5 / 3)
    assert agg["by_category"]["math"]["win_rate"] == 1.0 and agg["by_category"]["writing"]["win_rate"] == 0.25
    assert agg["weighted_win_rate"] == pytest.approx((1.0 + 0.25) / 2)
    assert judge.win_rate([E, E])["win_rate"] is None  # nothing readable: no score, not zero, not a win


def test_single_aggregation_skips_unreadable_grades():
    rows = [{"category": "math", "turn": 0, "rating": 8.0}, {"category": "math", "turn": 1, "rating": None},
            {"category": "stem", "turn": 0, "rating": 4.0}]
    agg = judge.aggregate_single(rows)
    assert agg["score"] == 6.0 and agg["rated"] == 2 and agg["errors"] == 1
    assert agg["by_turn"]["2"] == {"score": None, "rated": 0, "errors": 1}
