"""The AutoIF pipeline's keep/reject paths, for real, from a request cache pre-filled with hand-written
Thai answers (the pipeline runs in replay mode: every answer comes from the cache, nothing is invented
by the test at run time). Each stage's accounting is exact and the kept pairs are known in advance.
"""

import json
from pathlib import Path

import pytest

from siamgpt_jax import config as config_lib
from siamgpt_jax.autoif import prompts
from siamgpt_jax.autoif.cache import RequestCache
from siamgpt_jax.autoif.config import AutoIFConfig
from siamgpt_jax.autoif.pipeline import run_autoif
from siamgpt_jax.corpus.pipeline import run_verification
from siamgpt_jax.errors import UserError

MODEL = "hand-written-teacher"
S1 = "ตอบโดยมีคำว่า ประเทศไทย อย่างน้อยหนึ่งครั้ง"
S2 = "ตอบให้สั้นไม่เกินห้าสิบตัวอักษร"
A1 = "ใส่เครื่องหมายอัศเจรีย์ไว้ท้ายคำตอบเสมอ"
Q1, Q2 = "แนะนำอาหารไทยที่ชาวต่างชาติควรลอง", "เล่าประวัติของวันสงกรานต์สั้น ๆ"

GOOD_S1 = "def evaluate(response):\n    return 'ประเทศไทย' in response\n"
GOOD_S1_B = "def evaluate(response):\n    return response.count('ประเทศไทย') >= 1\n"
ALWAYS_TRUE = "def evaluate(response):\n    return True\n"
GOOD_A1 = "def evaluate(response):\n    return response.rstrip().endswith('!')\n"
LOOP = "def evaluate(response):\n    while True:\n        pass\n"
WIPER = ("import os\ndef evaluate(response):\n    for p in ('/usr/bin/python3', '/usr/lib/os-release'):\n"
         "        try:\n            os.remove(p)\n        except OSError:\n            pass\n"
         "    return not response.endswith('!')\n")
S1_CASES = [{"input": "ฉันรักประเทศไทย", "output": True}, {"input": "ฉันรักญี่ปุ่น", "output": False},
            {"input": "ประเทศไทยสวย", "output": True}, {"input": "ไทยแลนด์", "output": False}]
A1_CASES = [{"input": "สวัสดี!", "output": True}, {"input": "สวัสดี", "output": False},
            {"input": "ดีมาก!", "output": True}]

PASS_1 = "อาหารที่ควรลองในประเทศไทยมีทั้งต้มยำกุ้ง ผัดไทย และส้มตำ ซึ่งหาได้ทั่วไป"
PASS_2 = "สงกรานต์เป็นประเพณีปีใหม่ของประเทศไทยที่สืบทอดกันมายาวนาน"
NO_KEYWORD = "อาหารญี่ปุ่นอร่อยมาก ทั้งซูชิและราเมน"
CODE_SWITCH = ("สงกรานต์เป็นประเพณีปีใหม่ของประเทศไทยที่สืบทอดกันมายาวนาน ผู้คนจะรดน้ำขอพรผู้ใหญ่ "
               "and it is a very fun festival")


def answer(request) -> str:
    """The teacher's hand-written answers, chosen by what each prompt asks."""
    text = request.messages[-1]["content"]
    if "จงเขียนคำสั่งใหม่" in text:
        return (f"- {A1}\n- Write everything in English capital letters\n- {S1}\n- สั้น\n")
    if "ฟังก์ชัน Python ต่อไปนี้" in text:
        if GOOD_S1 in text:
            return "ตอบโดยต้องมีคำว่าประเทศไทย"
        if GOOD_S1_B in text:
            return "ตอบโดยใช้คำว่าประเทศไทยหนึ่งครั้งขึ้นไป"
        return "ตอบโดยลงท้ายด้วยเครื่องหมายอัศเจรีย์"
    if "evaluate(response)" in text:
        k = request.sampling.seed % 104729
        if S1 in text:
            funcs = [GOOD_S1, GOOD_S1_B, ALWAYS_TRUE]
            return "```json\n" + json.dumps({"func": funcs[k], "cases": S1_CASES}, ensure_ascii=False) + "\n```"
        if A1 in text:
            funcs = [GOOD_A1, LOOP, WIPER]
            return "```json\n" + json.dumps({"func": funcs[k], "cases": A1_CASES}, ensure_ascii=False) + "\n```"
        return "ขออภัย ฉันเขียนฟังก์ชันนี้ไม่ได้ {ไม่ใช่ JSON}"
    if "คำสั่งสองข้อนี้" in text:
        if "หนึ่งครั้งขึ้นไป" in text:
            return "สองคำสั่งนี้ต่างกัน [[ไม่ใช่]]"
        if "อัศเจรีย์" in text:
            return "ไม่แน่ใจ"
        return "เงื่อนไขเดียวกัน [[ใช่]]"
    if "ให้คะแนนคุณภาพ" in text:
        return "ตอบดีมาก\nคะแนน: 9" if PASS_1 in text else "พอใช้\nคะแนน: 5"
    k = request.sampling.seed % 1_000_003
    if Q1 in text:
        return [PASS_1, NO_KEYWORD, ""][k]
    return [PASS_2, CODE_SWITCH, PASS_2][k]


def write_inputs(tmp: Path) -> tuple[Path, Path]:
    seeds = tmp / "seeds.jsonl"
    seeds.write_text("\n".join([
        json.dumps({"id": "s1", "text": S1}, ensure_ascii=False),
        json.dumps({"id": "s2", "text": S2}, ensure_ascii=False),
        "{not json",
        json.dumps({"id": "en", "text": "Answer in exactly three sentences."}),
    ]) + "\n", encoding="utf-8")
    queries = tmp / "queries.jsonl"
    queries.write_text("\n".join([
        json.dumps({"id": "q1", "query": Q1, "topic": "อาหาร"}, ensure_ascii=False),
        json.dumps({"id": "q2", "query": Q2, "topic": "วัฒนธรรม"}, ensure_ascii=False),
        json.dumps({"id": "q3", "query": "What is the capital of France?"}),
        "[]",
    ]) + "\n", encoding="utf-8")
    return seeds, queries


def run_with_answer_book(cfg: AutoIFConfig):
    """Replay; store the answer book's answer to whatever the cache missed; again, until nothing misses.
    Each round gets one stage further, since later questions depend on earlier answers."""
    out = Path(cfg.out_dir)
    for _ in range(10):
        for p in out.glob("[0-9]*"):
            p.unlink()
        result = run_autoif(cfg, None, progress=False, log=lambda s: None)
        if not result.missed:
            return result
        cache = RequestCache(out / "request_cache.jsonl")
        for req in result.missed:
            cache.put(MODEL, req, answer(req))
    raise AssertionError("the answer book did not converge")


@pytest.fixture(scope="module")
def functions_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("autoif")
    seeds, queries = write_inputs(tmp)
    cfg = config_lib.from_dict(AutoIFConfig, {
        "out_dir": str(tmp / "out"), "seeds": str(seeds), "queries": str(queries), "mode": "functions",
        "model": MODEL, "replay": True, "augment_requests": 1, "functions_per_instruction": 3,
        "min_functions": 2, "min_test_cases": 3, "sandbox_seconds_per_function": 1.0,
        "queries_per_instruction": 2, "samples_per_prompt": 3, "quality_scoring": True})
    return cfg, run_with_answer_book(cfg)


def stage(report, name):
    return next(s for s in report["stages"] if s["stage"] == name)


def test_every_stage_accounts_for_every_item(functions_run):
    _, result = functions_run
    r = result.report
    for s in r["stages"]:
        assert s["judged"] == s["kept"] + sum(s["rejected"].values()), s
    assert stage(r, "seeds") | {"seconds": 0} == {"stage": "seeds", "judged": 4, "kept": 2, "seconds": 0,
                                                  "rejected": {"invalid_seed": 1, "not_thai": 1}}
    aug = stage(r, "augment")
    assert (aug["judged"], aug["kept"]) == (6, 3)
    assert aug["rejected"] == {"not_thai": 1, "near_duplicate": 1, "too_short": 1}
    fn = stage(r, "functions")
    assert (fn["kept"], fn["rejected"]) == (2, {"too_few_functions": 1})  # S2's answers are not JSON
    assert fn["function_answers"] == {"ok": 6, "invalid_json": 3}
    cv = stage(r, "cross_validate")
    assert (cv["kept"], cv["rejected"]) == (2, {})
    assert cv["execution_errors"] == {"timeout": 3}  # the loop; the wiper only lost its verdicts on /usr
    bt = stage(r, "backtranslate")
    assert (bt["kept"], bt["rejected"]) == (1, {"judge_unparseable": 1})  # A1's judge answer has no verdict
    assert bt["functions_judged"] == {"consistent": 1, "backtranslation_inconsistent": 1, "judge_unparseable": 1}
    q = stage(r, "queries")
    assert (q["kept"], q["rejected"]) == (2, {"not_thai": 1, "invalid_query_line": 1})
    resp = stage(r, "responses")
    assert resp["judged"] == 6 and resp["kept"] == 2
    assert resp["rejected"] == {"empty_response": 1, "duplicate_response": 1, "failed_functions": 1,
                                "stability:thai:no_code_switching": 1}
    assert stage(r, "quality")["rejected"] == {"low_quality": 1}
    assert r["pairs"] == 1 and r["sandbox"] == "bubblewrap"


def test_the_kept_pair_is_exactly_the_one_that_follows_everything(functions_run):
    cfg, result = functions_run
    (pair,) = result.pairs
    assert pair["messages"] == [{"role": "user", "content": prompts.user_turn(Q1, S1)},
                                {"role": "assistant", "content": PASS_1}]
    prov = pair["autoif"]
    assert prov["seed"] == "s1" and prov["instruction"] == S1 and prov["quality"] == 9.0
    assert prov["functions"] == [{"id": "s1/f0", "accuracy": 1.0}] and prov["function_pass_rate"] == 1.0
    assert (Path(cfg.out_dir) / "funnel.png").stat().st_size > 1000
    # the wrong function (always True) was dropped by cross-validation, with its accuracy recorded
    cv = [json.loads(line) for line in (Path(cfg.out_dir) / "04_cross_validate.jsonl").open()]
    s1 = next(it for it in cv if it["iid"] == "s1")
    assert [f["accuracy"] for f in s1["rejected_functions"]] == [0.5]


def test_verify_accepts_the_output_unchanged(functions_run, tmp_path):
    cfg, _ = functions_run
    report = run_verification([Path(cfg.out_dir) / "stream_b.jsonl"], tmp_path / "v", workers=1, progress=False)
    assert report.verified == 1, report.to_json()


def test_a_rerun_resumes_from_the_stage_files_and_asks_nothing(functions_run):
    cfg, first = functions_run
    again = run_autoif(cfg, None, progress=False, log=lambda s: None)
    assert again.pairs == first.pairs
    assert again.report["cache"]["misses"] == 0 and again.report["cache"]["hits"] == 0  # nothing re-run


def test_changed_settings_in_the_same_folder_are_refused(functions_run):
    cfg, _ = functions_run
    changed = config_lib.from_dict(AutoIFConfig, {**config_lib.to_dict(cfg), "min_function_accuracy": 0.5})
    with pytest.raises(UserError, match="different settings.*min_function_accuracy"):
        run_autoif(changed, None, progress=False, log=lambda s: None)


def test_registry_mode_checks_constraints_without_code(tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("\n".join(json.dumps(s, ensure_ascii=False) for s in [
        {"id": "kw", "text": "ตอบโดยมีคำว่า ทะเล", "instruction_id_list": ["keywords:existence"],
         "kwargs": [{"keywords": ["ทะเล"]}]},
        {"id": "end", "text": "ปิดท้ายคำตอบด้วยวลี ขอบคุณครับ", "instruction_id_list": ["startend:end_checker"],
         "kwargs": [{"end_phrase": "ขอบคุณครับ"}]},
    ]) + "\n", encoding="utf-8")
    queries = tmp_path / "queries.jsonl"
    queries.write_text(json.dumps({"id": "q", "query": "เล่าเรื่องวันหยุดพักผ่อนของคุณ"}, ensure_ascii=False) + "\n",
                       encoding="utf-8")
    cfg = config_lib.from_dict(AutoIFConfig, {
        "out_dir": str(tmp_path / "out"), "seeds": str(seeds), "queries": str(queries), "mode": "registry",
        "model": MODEL, "replay": True, "queries_per_instruction": 1, "samples_per_prompt": 1})
    cache = RequestCache(tmp_path / "out" / "request_cache.jsonl")
    texts = {"ตอบโดยมีคำว่า ทะเล": "วันหยุดที่แล้วฉันไปเที่ยวทะเลที่หัวหินกับครอบครัว",
             "ปิดท้ายคำตอบด้วยวลี ขอบคุณครับ": "วันหยุดนี้ผมพักผ่อนอยู่บ้าน",  # no end phrase
             "ตอบโดยมีคำว่า ทะเล และปิดท้ายคำตอบด้วยวลี ขอบคุณครับ":
                 "ผมไปเที่ยวทะเลมาครับ อากาศดีมาก ขอบคุณครับ"}
    from siamgpt_jax.generate.backend import GenerationRequest

    for ins, text in texts.items():
        req = GenerationRequest(messages=prompts.respond("เล่าเรื่องวันหยุดพักผ่อนของคุณ", ins),
                                sampling=cfg.generation.params(0))
        cache.put(MODEL, req, text)
    result = run_autoif(cfg, None, progress=False, log=lambda s: None)
    resp = stage(result.report, "responses")
    assert resp["rejected"] == {"failed_constraint:startend:end_checker": 1} and resp["kept"] == 2
    assert sorted(p["instruction_id_list"] for p in result.pairs) == [
        ["keywords:existence"], ["keywords:existence", "startend:end_checker"]]
    report = run_verification([Path(cfg.out_dir) / "stream_b.jsonl"], tmp_path / "v", workers=1, progress=False)
    assert report.verified == 2, report.to_json()
    assert result.report["sandbox"].startswith("not needed")


def test_the_shipped_query_set_is_thai_across_four_topics():
    from siamgpt_jax.autoif.stages import read_queries

    good, bad = read_queries("data/autoif/queries_th.jsonl")
    assert bad == [] and len(good) >= 200
    topics = {q["topic"] for q in good}
    assert topics == {"everyday", "technical", "creative", "formal"}
    assert len({q["query"] for q in good}) == len(good)


def test_the_cli_needs_a_teacher_or_replay(tmp_path):
    import argparse

    from siamgpt_jax.autoif import cli

    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    args = p.parse_args(["--config", "configs/autoif.yaml", f"out_dir={tmp_path}"])
    with pytest.raises(UserError, match="needs a teacher"):
        cli.run(args)
