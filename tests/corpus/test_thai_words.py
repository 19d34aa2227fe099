"""Thai first words (startend:first_word, nth_paragraph_first_word) and word counts of Latin text."""

import pytest

from siamgpt_jax.corpus import thai_text
from siamgpt_jax.corpus.verify import check

# (text, first word asked for, does the text start with it?) — real words, as a Thai reader reads them.
FIRST_WORDS = [
    ("ต้นไม้เป็นสิ่งสำคัญต่อโลก", "ต้นไม้", True),  # newmm cuts ต้น|ไม้เป็น
    ("ต้นไม้เป็นสิ่งสำคัญต่อโลก", "ต้น", False),
    ("จิ๊บๆ นกร้องอยู่บนต้นไม้", "จิ๊บ", True),  # ๆ ends the word; newmm makes one token จิ๊บๆ
    ("จิ๊บ จิ๊บ นกร้อง", "จิ๊บ", True),
    ("มันฝรั่งทอดกรอบอร่อย", "มัน", False),
    ("มันฝรั่งทอดกรอบอร่อย", "มันฝรั่ง", True),  # the dictionary's มันฝรั่งทอด is a phrase
    ("มันเป็นวันที่ดีมาก", "มัน", True),
    ("เป็นความมหัศจรรย์ของธรรมชาติ", "เป็น", True),  # the dictionary's เป็นความ is a phrase
    ("การบ้านวันนี้เยอะมาก", "การ", False),
    ("การบ้านวันนี้เยอะมาก", "การบ้าน", True),
    ("การก่อสร้างใช้แรงงานจำนวนมาก", "การก", False),  # not a cluster boundary: ก่
    ("ความสุขคือการได้อยู่กับครอบครัว", "ความ", False),
    ("ความสุขคือการได้อยู่กับครอบครัว", "ความสุข", True),
    ("คนที่ออกกำลังกายตอนเช้า", "คน", True),
    ("ว่าวันนี้ควรพกร่มไหม", "ว่า", True),  # ว่าว would end inside the cluster วั
    ("ว่าวลอยอยู่บนฟ้า", "ว่า", False),
    ("ดังนั้นเราจึงต้องเตรียมตัว", "ดังนั้น", True),
    ("ดังนั้นเราจึงต้องเตรียมตัว", "ดัง", False),
    ("สวัสดีครับ ยินดีต้อนรับ", "สวัสดี", True),
    ("สวัสดีครับ ยินดีต้อนรับ", "สวัส", False),
    ("ขอบคุณมากครับ", "ขอบคุณ", True),
    ("ขอบคุณมากครับ", "ขอ", False),
    ("ไม่มีใครรู้คำตอบ", "ไม่", True),
    ("ขอลาพักร้อนหนึ่งวัน", "ขอ", True),
    ("มีเงินสำรองฉุกเฉินไว้เสมอ", "มี", True),
    ("ตั้งชื่อเรื่องไว้ในวงเล็บ", "ตั้ง", True),
    ("เชียงใหม่เป็นจังหวัดทางภาคเหนือ", "เชียง", False),
    ("เชียงใหม่เป็นจังหวัดทางภาคเหนือ", "เชียงใหม่", True),
    ("นักเรียนทุกคนต้องมาโรงเรียน", "นัก", False),
    ("นักเรียนทุกคนต้องมาโรงเรียน", "นักเรียน", True),
    ("โรงเรียนของเราอยู่ใกล้บ้าน", "โรง", False),
    ("โรงเรียนของเราอยู่ใกล้บ้าน", "โรงเรียน", True),
    ("รถยนต์ไฟฟ้ากำลังได้รับความนิยม", "รถ", False),
    ("รถยนต์ไฟฟ้ากำลังได้รับความนิยม", "รถยนต์", True),
    ("น้ำแข็งละลายเร็วในหน้าร้อน", "น้ำ", False),
    ("น้ำแข็งละลายเร็วในหน้าร้อน", "น้ำแข็ง", True),
    ("วันนี้อากาศดีมาก", "วันนี้", True),
    ("วันนี้อากาศดีมาก", "วัน", False),
    ("ฉันชอบกินผลไม้", "ฉัน", True),
    ("เขาไปโรงเรียนทุกวัน", "เขา", True),
    ("สุดท้ายนี้ขอให้ทุกคนโชคดี", "สุดท้าย", True),
    ("ประการแรกคือความปลอดภัย", "ประการ", True),
    ("อาหารไทยมีรสชาติจัดจ้าน", "อาหาร", True),
    ("กรุงเทพมหานครเป็นเมืองหลวง", "กรุงเทพมหานคร", True),
    ("สมชายไปตลาดตอนเช้า", "สมชาย", True),  # a name the dictionary lacks
    ("**ดังนั้น** เราจึงไป", "ดังนั้น", True),  # markdown before the word
    ("ป.ล. ขอบคุณที่อ่าน", "ป.ล.", True),
    ("iPhoneรุ่นใหม่ออกแล้ว", "iPhone", True),  # a Latin word ends where Thai begins
    ('"Hello, world"', "hello", True),
    ("Helloworld", "hello", False),
    ("COVID-19 ระบาดไปทั่วโลก", "COVID-19", True),
]


@pytest.mark.parametrize("text,word,ok", FIRST_WORDS, ids=[f"{w}@{t[:12]}" for t, w, _ in FIRST_WORDS])
def test_first_word(text, word, ok):
    assert thai_text.first_word_matches(text, word) is ok
    assert check("startend:first_word", text, {"first_word": word}).ok is ok


@pytest.mark.parametrize("text,word,ok", FIRST_WORDS[:12])
def test_nth_paragraph_first_word_reads_words_the_same_way(text, word, ok):
    response = "ย่อหน้าแรกเล่าเรื่องทั่วไป\n\n" + text
    v = check("length_constraints:nth_paragraph_first_word", response, {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": word})
    assert v.ok is ok, v.reason


def test_boundary_does_not_depend_on_the_text_far_after_the_word():
    # newmm's cut of the whole text moved with what came later; the boundary rule looks at the word
    # and the Thai run it sits in, so any continuation after a space keeps the verdict.
    for tail in ("", " แล้วก็ไป", " เป็นสิ่งสำคัญ", "\nบรรทัดใหม่"):
        assert thai_text.first_word_matches("ต้นไม้" + tail, "ต้นไม้")
        assert thai_text.first_word_matches("จิ๊บๆ" + tail, "จิ๊บ")
        assert not thai_text.first_word_matches("มันฝรั่ง" + tail, "มัน")


@pytest.mark.parametrize("text,n", [
    ("don't", 1),  # newmm: don|'t
    ("COVID-19", 1),  # newmm: COVID-|19
    ("U.S.", 1),
    ("it’s naïve", 2),  # curly apostrophe and Latin-1 letters: the same rule, not newmm
    ("3.14 1,000 e-mail", 3),
    ("(hello) 'quoted' x_y", 4),
    ("hello,world", 1),
    ("C++ $5 20%", 3),
    ("ผมใช้ COVID-19 don't", 4),  # ผม|ใช้ from newmm; the Latin chunks by the rule
])
def test_latin_word_count_is_the_documented_rule(text, n):
    assert thai_text.count_words(text) == n == len(thai_text.words(text))
