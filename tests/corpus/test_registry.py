"""Registry behaviour: ids, kwargs validation, descriptions, seeds and the shipped eval data."""

import json
from pathlib import Path

import pytest

from siamgpt_jax.corpus.verify import (
    REGISTRY, KwargsError, UnknownInstructionError, check, check_all, describe, instruction_ids, normalize_kwargs,
)

ROOT = Path(__file__).resolve().parents[2]


def test_ids():
    ids = instruction_ids()
    assert len(ids) == 34 and ids == sorted(REGISTRY)
    assert {"startend:first_word", "keywords:number_frequency"} == set(instruction_ids("sea-ifeval"))
    assert {f"thai:{n}" for n in ("no_code_switching", "response_language", "orthography", "digits", "polite_particle", "buddhist_era", "no_repetition")} == set(instruction_ids("thai"))


def test_unknown_id_suggests_nearest():
    with pytest.raises(UnknownInstructionError, match="keywords:forbidden_words"):
        check("keywords:forbidden_word", "x", {})


@pytest.mark.parametrize("iid,kwargs,match", [
    ("keywords:existence", {}, "missing kwarg 'keywords'"),
    ("keywords:existence", {"keyword": ["a"]}, "did you mean 'keywords'"),
    ("length_constraints:number_words", {"num_words": "many", "relation": "at least"}, "must be int"),
    ("length_constraints:number_words", {"num_words": 3, "relation": "atleast"}, "did you mean 'at least'"),
    ("thai:digits", {"style": "roman"}, "not one of"),
    ("keywords:existence", {"keywords": [1, 2]}, "list of strings"),
    # a multi-letter "letter" is bad input, not a response that failed the count
    ("keywords:letter_frequency", {"letter": "ab", "let_frequency": 1, "let_relation": "at least"},
     "'letter'='ab' must be one character"),
])
def test_bad_kwargs(iid, kwargs, match):
    with pytest.raises(KwargsError, match=match):
        check(iid, "ข้อความ", kwargs)
    with pytest.raises(KwargsError, match=match):  # also when the response is empty
        check(iid, "", kwargs)


def test_kwargs_variants():
    # HF IFEval stores null for unused kwargs; SEA-IFEval spells two kwargs differently.
    assert normalize_kwargs("punctuation:no_comma", {"num_words": None, "relation": None}) == {}
    assert normalize_kwargs("language:response_language", {"response_language": "th"}) == {"language": "th"}
    assert normalize_kwargs("detectable_format:multiple_sections", {"section_title": "ส่วน", "num_sections": 3}) == {"section_spliter": "ส่วน", "num_sections": 3}
    assert normalize_kwargs("keywords:number_frequency", {"number": 3, "frequency": 2.0, "relation": "exactly"})["number"] == "3"
    with pytest.raises(KwargsError):
        check_all(["punctuation:no_comma"], "x", [])


def test_describe_both_languages_for_every_id():
    for iid in instruction_ids():
        kw = _example_kwargs(iid)
        th, en = describe(iid, kw, lang="th"), describe(iid, kw, lang="en")
        assert th and en and th != en
    with pytest.raises(ValueError):
        describe("punctuation:no_comma", {}, lang="fr")


def _example_kwargs(iid):
    ins = REGISTRY[iid]
    samples = {int: [3], float: [0.5], str: ["คำ", "ก", "th"], list: [["คำ"]], bool: [True]}  # "ก": one letter; "th": a language code

    def value(p):
        if p.choices:
            return p.choices[0]
        return next(v for v in samples[p.kind] if p.rule is None or not p.rule(v))

    return {p.name: value(p) for p in ins.params if p.required}


def test_seeds_are_registered_and_describable():
    seeds = [json.loads(l) for l in (ROOT / "data/autoif/seeds_th.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(seeds) == 39 and len({s["id"] for s in seeds}) == 39
    families = set()
    for s in seeds:
        assert any("\u0e01" <= ch <= "\u0e4e" for ch in s["text"]), s["id"]
        for iid, kw in zip(s["instruction_id_list"], s["kwargs"], strict=True):
            assert describe(iid, kw, lang="th")
            families.add(iid.split(":")[0])
    assert {"detectable_format", "length_constraints", "keywords", "thai", "language", "startend"} <= families


def test_sea_ifeval_th_every_record_is_recognised_and_checks_run():
    path = ROOT / "data/eval/th_sea_ifeval.jsonl"
    records = [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 105
    for r in records:
        iid = r["metadata"]["subcategory"]
        for kw in r["kwargs"]:
            normalize_kwargs(iid, kw)
            # Checks run: the prompt itself as a response gives a verdict (not an exception).
            v = check(iid, r["prompts"][0]["text"], kw)
            assert isinstance(v.ok, bool)
            assert describe(iid, kw, lang="th")


# Kwargs that make a check vacuous: always passed or never passable. Invalid input, not a constraint.
VACUOUS = [
    ("startend:end_checker", {"end_phrase": ""}),  # every response ends with ""
    ("startend:end_checker", {"end_phrase": "   "}),
    ("keywords:existence", {"keywords": []}),  # nothing to include
    ("keywords:existence", {"keywords": [""]}),
    ("keywords:existence", {"keywords": ["ช้าง", " "]}),
    ("combination:repeat_prompt", {"prompt_to_repeat": ""}),
    ("thai:response_language", {"min_ratio": -0.5}),  # every share is >= a negative ratio
    ("thai:response_language", {"min_ratio": 0}),
    ("thai:response_language", {"min_ratio": 1.5}),  # and none is >= 1.5
    ("keywords:forbidden_words", {"forbidden_words": [""]}),  # "" is in every response
    ("keywords:forbidden_words", {"forbidden_words": []}),
    ("language:response_language", {"language": ""}),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 0, "first_word": "ก"}),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "ก"}),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 1, "first_word": ""}),
    # more of the same kind across the registry
    ("keywords:frequency", {"keyword": "", "frequency": 2, "relation": "at least"}),
    ("keywords:frequency", {"keyword": "ช้าง", "frequency": 0, "relation": "at least"}),
    ("keywords:frequency", {"keyword": "ช้าง", "frequency": 0, "relation": "less than"}),
    ("keywords:letter_frequency", {"letter": "a", "let_frequency": 0, "let_relation": "at least"}),
    ("keywords:number_frequency", {"number": "", "frequency": 1, "relation": "exactly"}),
    ("length_constraints:number_words", {"num_words": 0, "relation": "at least"}),
    ("length_constraints:number_sentences", {"num_sentences": 0, "relation": "less than"}),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 0}),
    ("change_case:capital_word_frequency", {"capital_frequency": 0, "capital_relation": "at least"}),
    ("detectable_content:number_placeholders", {"num_placeholders": 0}),
    ("detectable_content:postscript", {"postscript_marker": ""}),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 0}),
    ("detectable_format:multiple_sections", {"section_spliter": "", "num_sections": 2}),
    ("detectable_format:multiple_sections", {"section_spliter": "ส่วน", "num_sections": 0}),
    ("startend:first_word", {"first_word": ""}),
    ("thai:no_code_switching", {"allowed_terms": [""]}),
    ("thai:polite_particle", {"particles": [""]}),  # every text ends with ""
    ("thai:no_repetition", {"ngram_chars": 0}),
    ("thai:no_repetition", {"max_line_repeats": 0}),
]


@pytest.mark.parametrize("iid,kwargs", VACUOUS, ids=[f"{i}-{n}" for n, (i, _) in enumerate(VACUOUS)])
def test_vacuous_kwargs_are_invalid(iid, kwargs):
    with pytest.raises(KwargsError, match=iid):
        check(iid, "ข้อความตัวอย่าง ครับ", kwargs)


@pytest.mark.parametrize("iid,kwargs", [
    ("keywords:frequency", {"keyword": "ช้าง", "frequency": 0, "relation": "at most"}),  # "never say ช้าง": meaningful
    ("keywords:frequency", {"keyword": "ช้าง", "frequency": 0, "relation": "exactly"}),
    ("detectable_format:number_bullet_lists", {"num_bullets": 0}),  # "no bullets": meaningful
    ("thai:no_code_switching", {"allowed_terms": []}),  # the default
    ("thai:no_code_switching", {"max_latin_words": 0}),
    ("thai:response_language", {"min_ratio": 1.0}),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "ก"}),
])
def test_boundary_kwargs_stay_valid(iid, kwargs):
    normalize_kwargs(iid, kwargs)
