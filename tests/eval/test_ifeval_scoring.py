"""IFEval-Th scoring: hand-written answers that follow every instruction score 100%; answers broken
in known ways score exactly the expected fractions; loose differs from strict exactly where IFEval's
response variants say it does."""

import json
from pathlib import Path

import pytest

from siamgpt_jax.eval import data, ifeval

HERE = Path(__file__).parent
GOOD = {r["id"]: r["response"] for r in map(json.loads, (HERE / "data/ifeval_good.jsonl").read_text(encoding="utf-8").splitlines())}


@pytest.fixture(scope="module")
def items():
    return {it.id: it for it in data.read_ifeval()}


def _score(items, responses):
    scores = [ifeval.score_item(items[i], r) for i, r in responses.items()]
    return ifeval.aggregate([items[i] for i in responses], scores)


def test_good_answers_score_100_percent_on_every_instruction_type(items):
    assert len(GOOD) == 21
    assert {items[i].instruction_ids[0] for i in GOOD} == {it.instruction_ids[0] for it in items.values()}  # one per type
    rep = _score(items, GOOD)
    for key in ("prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose", "language_ok_rate"):
        assert rep[key] == 1.0, key
    assert all(g["prompt_strict"] == 1.0 for g in rep["by_group"].values())
    assert rep["seahelm_comparable"] == {**rep["seahelm_comparable"], "prompts": 20, "lang_normalized_accuracy": 1.0}
    assert rep["scoring_version"] == ifeval.SCORING_VERSION


def _broken():
    r = dict(GOOD)
    r["3073"] = "แน่นอนค่ะ นี่คือเรื่องสั้นที่ขอมา\n" + GOOD["3073"]  # intro line: loose recovers it
    r["1220"] = GOOD["1220"] + "\n(จบบทกวี)"  # sign-off line after the end phrase: loose recovers it
    r["2532"] = "**" + GOOD["2532"] + "**"  # markdown bold around the quotes: loose strips the asterisks
    r["2811"] = "รายงานเรื่องโลกร้อน\n\n" + GOOD["2811"].split("\n\n", 1)[1] + " ซึ่งกระทบทั้งโลก"  # forbidden word in every variant
    r["1154"] = "ตารางประเมินทักษะทางเทคนิคของวิศวกรซอฟต์แวร์ มีหัวข้อการเขียนโค้ด การแก้ปัญหา และการทำงานเป็นทีม"  # Thai, not Filipino
    r["2314"] = "* Domino\n* Oreo\n* Panda"  # follows the bullet count, but in English: only the gate fails it
    r["1258"] = "เก็บเหรียญไว้ในกระปุกออมสินครับ"  # far below 300 words (and SEA-HELM skips this id)
    return r


def test_broken_answers_score_exactly_the_expected_fractions(items):
    rep = _score(items, _broken())
    # 7 of 21 broken; loose recovers 3 (first line, last line, asterisks); the gate takes 2.
    assert rep["prompt_strict"] == pytest.approx(14 / 21) and rep["instruction_strict"] == pytest.approx(14 / 21)
    assert rep["prompt_loose"] == pytest.approx(17 / 21) and rep["instruction_loose"] == pytest.approx(17 / 21)
    assert rep["language_ok_rate"] == pytest.approx(19 / 21)
    assert rep["ungated"]["prompt_strict"] == pytest.approx(15 / 21)  # the English bullets follow their instruction
    assert rep["ungated"]["prompt_loose"] == pytest.approx(18 / 21)
    assert rep["seahelm_comparable"]["prompts"] == 20
    assert rep["seahelm_comparable"]["lang_normalized_accuracy"] == pytest.approx(14 / 20)
    assert rep["by_group"]["startend"]["prompt_strict"] == 0.0  # all three startend answers were broken
    assert rep["by_group"]["startend"]["prompt_loose"] == 1.0
    assert rep["by_group"]["language"]["prompt_loose"] == 0.0


@pytest.mark.parametrize("iid,kwargs,response,strict,loose", [
    # first line removed
    ("startend:first_word", {"first_word": "แมว"}, "ได้เลยค่ะ\nแมวเป็นสัตว์เลี้ยงที่น่ารัก", False, True),
    # last line removed
    ("startend:end_checker", {"end_phrase": "ขอบคุณค่ะ"}, "แมวเป็นสัตว์เลี้ยงที่น่ารัก ขอบคุณค่ะ\nหวังว่าจะมีประโยชน์", False, True),
    # first and last lines removed together
    ("detectable_format:json_format", {}, "นี่คือ JSON\n{\"ชื่อ\": \"แมว\"}\nหวังว่าจะช่วยได้", False, True),
    # asterisks stripped
    ("startend:quotation", {}, "**\"แมวเป็นสัตว์เลี้ยงที่น่ารัก\"**", False, True),
    # a violation in the middle: no variant removes it
    ("keywords:forbidden_words", {"forbidden_words": ["หมา"]}, "แมวน่ารัก\nหมาก็น่ารัก\nทั้งคู่เป็นเพื่อนเรา", False, False),
    # already strict: loose agrees
    ("startend:first_word", {"first_word": "แมว"}, "แมวเป็นสัตว์เลี้ยงที่น่ารัก", True, True),
])
def test_loose_differs_from_strict_exactly_where_ifeval_says(iid, kwargs, response, strict, loose):
    item = data.IFEvalItem("x", "p", (iid,), (kwargs,), iid.split(":")[0], "th")
    s = ifeval.score_item(item, response)
    assert (s["strict"][0], s["loose"][0]) == (strict, loose)


def test_instruction_level_counts_each_instruction(tmp_path):
    # lm-evaluation-harness's shape, two instructions in one prompt: one followed, one not.
    path = tmp_path / "two.jsonl"
    path.write_text(json.dumps({"key": 1, "prompt": "เขียนเรื่องแมว", "instruction_id_list": ["startend:first_word", "punctuation:no_comma"],
                                "kwargs": [{"first_word": "แมว"}, {}]}, ensure_ascii=False) + "\n", encoding="utf-8")
    items = data.read_ifeval(path)
    rep = ifeval.aggregate(items, [ifeval.score_item(items[0], "แมวเป็นสัตว์ที่น่ารัก, ขี้อ้อน และซน")])
    assert rep["prompt_strict"] == 0.0 and rep["instruction_strict"] == 0.5


def test_missing_or_thinking_only_response_fails_everything(items):
    it = items["3073"]
    assert ifeval.score_item(it, None)["strict"] == [False]
    assert ifeval.score_item(it, "<think>ยังคิดอยู่")["strict"] == [False]
    assert ifeval.score_item(it, "<think>คิดก่อน</think>\n\n" + GOOD["3073"])["strict"] == [True]
