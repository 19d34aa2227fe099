"""Each IFEval / SEA-IFEval instruction: a passing and a failing case (Thai and English where the
semantics differ), plus kwargs variants."""

import pytest

from siamgpt_jax.corpus.verify import check, instruction_ids

TH_TEXT = "การเรียนภาษาไทยต้องฝึกฝนทุกวัน ผู้เรียนควรอ่านหนังสือและเขียนเรียงความ"

CASES = [
    # (id, kwargs, passing response, failing response)
    ("keywords:existence", {"keywords": ["ช้าง", "ป่า"]}, "ช้างเดินเข้าป่า", "ช้างเดินเข้าเมือง"),
    ("keywords:existence", {"keywords": ["Cat"]}, "the cat sat", "the dog sat"),
    ("keywords:frequency", {"keyword": "ช้าง", "frequency": 2, "relation": "at least"}, "ช้างหนึ่งตัวกับช้างอีกตัว", "ช้างตัวเดียว"),
    ("keywords:frequency", {"keyword": "เช้า", "frequency": 2, "relation": "less than"}, "ตอนเช้าอากาศดี", "เช้านี้และเช้าพรุ่งนี้"),
    ("keywords:forbidden_words", {"forbidden_words": ["สวย"]}, "ดอกไม้บานสะพรั่ง", "ดอกไม้สวยมาก"),
    ("keywords:forbidden_words", {"forbidden_words": ["cat"]}, "concatenate the catalogue", "a cat"),
    ("keywords:letter_frequency", {"letter": "a", "let_frequency": 3, "let_relation": "at least"}, "banana", "bob"),
    ("keywords:number_frequency", {"relation": "exactly", "number": "3", "frequency": 2}, "มี 3 ข้อ และ ๓ ตัวเลือก ราคา 30 บาท", "มี 3 ข้อ ราคา 33 บาท"),
    ("language:response_language", {"language": "th"}, TH_TEXT, "This is English text for sure."),
    ("language:response_language", {"response_language": "vi"}, "Tôi là một sinh viên và tôi thích học tiếng Anh.", "I am a student."),
    ("language:response_language", {"response_language": "id"}, "Saya tidak tahu apakah dia akan datang ke rumah kami.", "Ako ay hindi pupunta sa bahay ng kaibigan ko."),
    ("language:response_language", {"response_language": "tl"}, "Ako ay hindi pupunta sa bahay ng kaibigan ko.", "Saya tidak tahu apakah dia akan datang."),
    ("language:response_language", {"response_language": "my"}, "မင်္ဂလာပါ ကျွန်တော် ကျောင်းသား ဖြစ်ပါတယ်", TH_TEXT),
    ("language:response_language", {"response_language": "ta"}, "வணக்கம் நான் ஒரு மாணவன்", TH_TEXT),
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "at least"}, "One. Two. Three.", "Only one sentence here."),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "less than"}, "ประโยคแรก *** ประโยคที่สอง", "หนึ่ง *** สอง *** สาม"),
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "exactly"}, "แมวนอน\nหมาวิ่ง", "แมวนอน\nหมาวิ่ง\nนกบิน"),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "ย่อหน้าแรก\n***\nย่อหน้าสอง", "ย่อหน้าเดียว"),
    ("length_constraints:number_words", {"num_words": 10, "relation": "at least"}, TH_TEXT, "สั้นมาก"),
    ("length_constraints:number_words", {"num_words": 5, "relation": "less than"}, "two words", TH_TEXT),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "ดังนั้น"}, "เหตุผลแรก\n\nดังนั้นเราจึงไป", "เหตุผลแรก\n\nเราจึงไป"),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 1, "first_word": "hello"}, '"Hello, world"\n\nbye', "Hi\n\nbye"),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "เรียน [ชื่อ] ที่อยู่ [ที่อยู่]", "เรียน [ชื่อ]"),
    ("detectable_content:postscript", {"postscript_marker": "ป.ล."}, "เนื้อหา\nป. ล. อย่าลืมนะ", "เนื้อหาไม่มีปัจฉิมลิขิต"),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Body\nP.S. see you", "Body only"),
    ("detectable_content:postscript", {"postscript_marker": "ป.ป.ล."}, "เนื้อหา\nป.ล. หนึ่ง\nป.ป.ล. สอง", "เนื้อหา\nป.ล. หนึ่ง"),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* หนึ่ง\n- สอง", "* หนึ่ง"),
    ("detectable_format:constrained_response", {}, "คำตอบของฉันคือใช่ เพราะว่า...", "ใช่"),
    ("detectable_format:constrained_response", {}, "My answer is no.", "No."),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*หนึ่ง* และ **สอง**", "*หนึ่ง* เท่านั้น"),
    ("detectable_format:multiple_sections", {"section_title": "ส่วน", "num_sections": 2}, "ส่วน 1\nก\nส่วน ๒\nข", "ส่วน 1\nก"),
    ("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 2}, "SECTION 1 a SECTION 2 b", "SECTION 1 a"),
    ("detectable_format:json_format", {}, '```json\n{"ชื่อ": "แมว"}\n```', "{ไม่ใช่ json"),
    ("detectable_format:title", {}, "<<ชื่อเรื่อง>>\nเนื้อหา", "<<>> เนื้อหา"),
    ("combination:two_responses", {}, "คำตอบแรก\n******\nคำตอบที่สอง", "คำตอบเดียว\n******\nคำตอบเดียว"),
    ("combination:repeat_prompt", {"prompt_to_repeat": "ทำไมฟ้าสีฟ้า"}, "ทำไมฟ้าสีฟ้า เพราะการกระเจิงของแสง", "เพราะการกระเจิงของแสง"),
    ("startend:end_checker", {"end_phrase": "ขอบคุณค่ะ"}, 'ข้อความ ขอบคุณค่ะ"', "ขอบคุณค่ะ แล้วพบกันใหม่"),
    ("startend:first_word", {"first_word": "จิ๊บ"}, "จิ๊บ จิ๊บ นกร้อง", "นกร้อง จิ๊บ"),
    ("startend:first_word", {"first_word": "มัน"}, "มันเป็นวันที่ดี", "มันฝรั่งทอดอร่อย"),
    ("startend:quotation", {}, "“อีเมลทั้งฉบับ”", "อีเมลไม่มีอัญประกาศ"),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"}, "THIS is VERY good", "This is good"),
    ("change_case:english_capital", {}, "THIS IS ALL CAPITAL ENGLISH TEXT", "This is not."),
    ("change_case:english_lowercase", {}, "this is all lowercase english text", "This is not."),
    ("punctuation:no_comma", {}, "ไม่มีจุลภาคเลย", "มี, จุลภาค"),
]


@pytest.mark.parametrize("iid,kwargs,good,bad", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_pass_and_fail(iid, kwargs, good, bad):
    assert check(iid, good, kwargs).ok, check(iid, good, kwargs).reason
    verdict = check(iid, bad, kwargs)
    assert not verdict.ok and verdict.reason


def test_every_ifeval_and_sea_id_has_cases():
    covered = {c[0] for c in CASES}
    assert set(instruction_ids("ifeval")) | set(instruction_ids("sea-ifeval")) <= covered
    assert len(instruction_ids("ifeval")) == 25 and len(instruction_ids("sea-ifeval")) == 2


@pytest.mark.parametrize("iid,kwargs", [(c[0], c[1]) for c in CASES])
def test_empty_or_whitespace_response_fails(iid, kwargs):
    for empty in ("", "   \n\t "):
        assert not check(iid, empty, kwargs).ok
        assert not check(iid, empty, kwargs, loose=True).ok


def test_loose_mode_follows_ifeval():
    # A stray intro line breaks strict repeat_prompt; loose drops the first line.
    text = "Sure, here it is:\nทำไมฟ้าสีฟ้า เพราะแสงกระเจิง"
    kw = {"prompt_to_repeat": "ทำไมฟ้าสีฟ้า"}
    assert not check("combination:repeat_prompt", text, kw).ok
    assert check("combination:repeat_prompt", text, kw, loose=True).ok
    # Loose also strips '*': a bolded quote still counts as wrapped.
    assert check("startend:quotation", '**"ข้อความ"**', {}, loose=True).ok
    assert not check("startend:quotation", '**"ข้อความ"**', {}).ok


def test_thai_words_are_newmm_not_whitespace():
    # One whitespace chunk, several Thai words.
    assert check("length_constraints:number_words", "ฉันชอบกินข้าวผัดกะเพรา", {"num_words": 4, "relation": "at least"}).ok
    assert not check("length_constraints:number_words", "ฉันชอบกินข้าวผัดกะเพรา", {"num_words": 2, "relation": "less than"}).ok


def test_thai_sentences_use_crfcut_when_bounds_cannot_decide():
    text = "วันนี้อากาศดีมาก เราจึงไปเดินเล่นที่สวนสาธารณะ แล้วกลับบ้านตอนเย็น"
    from siamgpt_jax.corpus import thai_text

    n = len(thai_text.sentences(text))
    lo, hi = thai_text.sentence_count_bounds(text)
    assert lo <= n <= hi and lo < hi
    assert check("length_constraints:number_sentences", text, {"num_sentences": n, "relation": "exactly"}).ok
    assert not check("length_constraints:number_sentences", text, {"num_sentences": n + 1, "relation": "at least"}).ok


def test_thai_digits_count_as_numbers():
    assert check("keywords:number_frequency", "๕ คน และ 5 คน", {"number": "5", "frequency": 2, "relation": "at least"}).ok


# SEA-HELM's readings, adopted for a training corpus (docs/VERIFIERS.md says why each).
@pytest.mark.parametrize("iid,kwargs,text,ok", [
    # repeat_prompt: the request, then an answer; the request alone is no answer
    ("combination:repeat_prompt", {"prompt_to_repeat": "ทำไมฟ้าสีฟ้า"}, "ทำไมฟ้าสีฟ้า", False),
    ("combination:repeat_prompt", {"prompt_to_repeat": "ทำไมฟ้าสีฟ้า"}, "  ทำไมฟ้าสีฟ้า  \n ", False),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Why is the sky blue?"}, "why is the sky blue? Rayleigh scattering.", True),
    # quotation: "" and “ ” quote nothing
    ("startend:quotation", {}, '""', False),
    ("startend:quotation", {}, "“  ”", False),
    ("startend:quotation", {}, '"ก"', True),
    # placeholders: [] and [ ] hold nothing to fill in
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "เรียน [] ที่อยู่ [ ]", False),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "เรียน [ชื่อ] ที่อยู่ [] โทร [เบอร์]", True),
    # bullets: "* " or "- " then content; rules, italics, bold lines and bare markers are not bullets
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* หนึ่ง\n---\n- สอง", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* หนึ่ง\n*ตัวเอียง*\n- สอง", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* หนึ่ง\n**ตัวหนา** ต่อ\n- สอง\n* * *\n-\n-ติดกัน", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 3}, "* หนึ่ง\n  - ย่อย\n* **สาม**: ตัวหนาในข้อ", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 1}, "---\n*ตัวเอียง*\n- - -", False),
    # sections: any run of spaces between the marker and its number
    ("detectable_format:multiple_sections", {"section_spliter": "ส่วน", "num_sections": 2}, "ส่วน  1\nก\nส่วน\t2\nข", True),
    ("detectable_format:multiple_sections", {"section_spliter": "ส่วน", "num_sections": 2}, "ส่วน1\nก\nส่วน ๒\nข", True),
    ("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 2}, "SECTION   1 a\nSECTION\n2 b", False),  # no line break
])
def test_sea_helm_readings(iid, kwargs, text, ok):
    v = check(iid, text, kwargs)
    assert v.ok is ok, v.reason
