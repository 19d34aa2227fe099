"""The thai: stability checks: pass/fail cases, kwargs variants and edge cases."""

import pytest

from siamgpt_jax.corpus.orthography import errors
from siamgpt_jax.corpus.verify import check

GOOD = "วันนี้อากาศดีมาก เราจึงไปเดินเล่นที่สวนสาธารณะกับครอบครัว แล้วกลับบ้านตอนเย็นครับ"


@pytest.mark.parametrize("text,kwargs,ok", [
    (GOOD, {}, True),
    ("ผมชอบกินข้าว 我喜欢吃饭 ครับ", {}, False),  # CJK
    ("ありがとう ขอบคุณครับ", {}, False),  # Kana
    ("안녕하세요 สวัสดีครับ", {}, False),  # Hangul
    ("नमस्ते สวัสดีครับ", {}, False),  # Devanagari
    ("привет สวัสดีครับ", {}, False),  # Cyrillic
    ("مرحبا สวัสดีครับ", {}, False),  # Arabic
    ("ใช้ภาษา Python เขียนโปรแกรมได้ง่าย", {}, True),  # one English term is fine
    ("เราต้องจำไว้เสมอว่าการพักผ่อนให้เพียงพอนั้นสำคัญมาก this is very important for you ครับ", {}, False),  # inserted English phrase
    ("เราต้องจำไว้เสมอว่าการพักผ่อนให้เพียงพอนั้นสำคัญมาก this is very important for you ครับ", {"policy": "lenient"}, True),
    ("เราต้องจำไว้เสมอว่าการพักผ่อนให้เพียงพอนั้นสำคัญมาก this is very important for you ครับ", {"max_latin_words": 8}, True),
    ("ใช้ Python เขียน", {"policy": "strict"}, False),
    ("ใช้ Python เขียน", {"policy": "strict", "allowed_terms": ["python"]}, True),
    ("Most of this answer is written in English words อยู่", {"policy": "lenient"}, False),  # Latin outweighs Thai
    ("ตัวอย่างโค้ด\n```python\nprint('你好 hello world program here')\n```\nจบ", {}, True),  # code block exempt
    ("ดูที่ `df.groupby('x').sum()` นะครับ", {}, True),  # inline code exempt
    ("อ่านต่อที่ https://example.com/this/is/a/very/long/english/path ครับ", {}, True),  # URL exempt
    ("สูตรคือ α + β = π ครับ", {}, True),  # Greek math symbols exempt
])
def test_no_code_switching(text, kwargs, ok):
    v = check("thai:no_code_switching", text, kwargs)
    assert v.ok is ok, v.reason


def test_response_language_threshold():
    assert check("thai:response_language", GOOD, {}).ok
    assert not check("thai:response_language", "This answer is in English.", {}).ok
    mixed = "ใช้คำสั่ง install package ก่อน"
    assert not check("thai:response_language", mixed, {"min_ratio": 0.9}).ok
    assert check("thai:response_language", mixed, {"min_ratio": 0.3}).ok
    assert not check("thai:response_language", "12345 !!!", {}).ok  # no letters at all


@pytest.mark.parametrize("text,ok", [
    (GOOD, True),
    ("สิทธิ์ ก้ำกึ่ง กี่ ปู่ เกาะ เก๊ะ ไม้ ฤๅษี น้ำ ก็ ครั้ง กั้น", True),
    ("่ก", False),  # tone mark without a consonant
    ("ก ิ", False),  # above vowel after a space
    ("ก่่", False),  # two tone marks
    ("ก่ี", False),  # tone before vowel: wrong canonical order
    ("เเม่", False),  # leading vowel doubled (fake แ)
    ("ไ ม่", False),  # leading vowel not followed by consonant
    ("กิี", False),  # two above vowels
    ("ทํา", False),  # nikhahit + sara aa instead of sara am
    ("า", False),  # following vowel alone
])
def test_orthography(text, ok):
    v = check("thai:orthography", text, {})
    assert v.ok is ok, v.reason
    assert bool(errors(text)) is not ok


def test_digits():
    assert check("thai:digits", "มี ๗ วัน", {"style": "thai"}).ok
    assert not check("thai:digits", "มี 7 วัน", {"style": "thai"}).ok
    assert check("thai:digits", "มี 7 วัน", {"style": "arabic"}).ok
    assert not check("thai:digits", "มี ๗ วัน", {"style": "arabic"}).ok
    assert check("thai:digits", "โรค COVID-19 ระบาดใน ๒๕๖๓ และ `x = 10`", {"style": "thai"}).ok  # names and code exempt
    assert not check("thai:digits", "ไม่มีตัวเลข", {"style": "thai", "min_count": 1}).ok
    assert check("thai:digits", "ไม่มีตัวเลข", {"style": "thai"}).ok


@pytest.mark.parametrize("text,kwargs,ok", [
    ("ขอบคุณมากครับ", {}, True),
    ("ยินดีค่ะ!!! 🙏", {}, True),
    ("ไปไหนมาคะ?", {}, True),
    ("ดีใจด้วยนะคะ **", {}, True),
    ("ขอบคุณมาก", {}, False),
    ("ขอบคุณครับ", {"gender": "female"}, False),
    ("ขอบคุณค่ะ", {"gender": "female"}, True),
    ("ขอบคุณจ้ะ", {"particles": ["ครับ"]}, False),
])
def test_polite_particle(text, kwargs, ok):
    assert check("thai:polite_particle", text, kwargs).ok is ok


@pytest.mark.parametrize("text,kwargs,ok", [
    ("ในปี พ.ศ. 2567 เศรษฐกิจฟื้นตัว", {}, True),
    ("ในปี ๒๕๖๗ เศรษฐกิจฟื้นตัว", {}, True),
    ("สถาปนาในปี พ.ศ. 2325", {}, True),  # labelled historic B.E. year
    ("ในปี 2024 เศรษฐกิจฟื้นตัว", {}, False),
    ("เมื่อ 1 มกราคม 2024", {}, False),
    ("ในปี ค.ศ. 2024", {}, False),
    ("ราคา 1990 บาท", {}, True),  # a price, not a year
    ("ไม่มีปีในข้อความ", {"min_count": 1}, False),
])
def test_buddhist_era(text, kwargs, ok):
    assert check("thai:buddhist_era", text, kwargs).ok is ok


def test_no_repetition():
    assert check("thai:no_repetition", GOOD * 2, {}).ok
    loop = " ".join(["หัวใจทำหน้าที่สูบฉีดเลือดไปทั่วร่างกาย"] * 6)
    assert not check("thai:no_repetition", loop, {}).ok
    assert check("thai:no_repetition", loop, {"max_ngram_repeats": 10}).ok
    lines = "\n".join(["- ข้อนี้ซ้ำกันทุกบรรทัดเลย"] * 3)
    assert not check("thai:no_repetition", lines, {}).ok
    assert not check("thai:no_repetition", "ฮ่า" * 12, {}).ok
    assert check("thai:no_repetition", "| a | b |\n|---|---|\n" + "-" * 60, {}).ok  # rules and tables are not loops
