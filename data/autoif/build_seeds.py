"""Writes seeds_th.jsonl: the 39 Thai AutoIF seed instructions (text + the ids/kwargs that verify
them). Run from the repo root: python3 data/autoif/build_seeds.py"""

import json
from pathlib import Path

S = [
    # format
    ("fmt-bullets-3", "ตอบเป็นรายการหัวข้อย่อย 3 ข้อพอดี โดยใช้เครื่องหมาย * นำหน้าแต่ละข้อ", [("detectable_format:number_bullet_lists", {"num_bullets": 3})]),
    ("fmt-bullets-5", "สรุปเนื้อหาเป็นข้อ ๆ จำนวน 5 ข้อ ใช้เครื่องหมาย - นำหน้าทุกข้อ", [("detectable_format:number_bullet_lists", {"num_bullets": 5})]),
    ("fmt-title", "ตั้งชื่อเรื่องให้คำตอบ และใส่ชื่อเรื่องไว้ในวงเล็บมุมคู่ เช่น <<ชื่อเรื่อง>>", [("detectable_format:title", {})]),
    ("fmt-json", "ตอบกลับทั้งหมดในรูปแบบ JSON ที่ถูกต้อง ห้ามมีข้อความอื่นนอก JSON", [("detectable_format:json_format", {})]),
    ("fmt-highlight-2", "เน้นข้อความสำคัญอย่างน้อย 2 ส่วนด้วยเครื่องหมายดอกจัน เช่น *ข้อความสำคัญ*", [("detectable_format:number_highlighted_sections", {"num_highlights": 2})]),
    ("fmt-sections-3", "แบ่งคำตอบเป็น 3 ส่วน ขึ้นต้นแต่ละส่วนด้วย ส่วนที่ 1, ส่วนที่ 2 และ ส่วนที่ 3", [("detectable_format:multiple_sections", {"section_title": "ส่วนที่", "num_sections": 3})]),
    ("fmt-two-responses", "ให้คำตอบสองแบบที่ต่างกัน แล้วคั่นระหว่างคำตอบด้วยดอกจัน 6 ตัว ******", [("combination:two_responses", {})]),
    ("fmt-quotation", "ครอบคำตอบทั้งหมดไว้ในเครื่องหมายอัญประกาศ", [("startend:quotation", {})]),
    ("fmt-constrained", "ตอบด้วยประโยค คำตอบของฉันคือใช่ หรือ คำตอบของฉันคือไม่ หรือ คำตอบของฉันคืออาจจะ แล้วจึงอธิบายเหตุผลสั้น ๆ", [("detectable_format:constrained_response", {})]),
    ("fmt-placeholders", "เขียนแบบฟอร์มที่มีช่องให้เติมข้อมูลในวงเล็บเหลี่ยมอย่างน้อย 3 ช่อง เช่น [ชื่อ-นามสกุล]", [("detectable_content:number_placeholders", {"num_placeholders": 3})]),
    ("fmt-postscript", "ปิดท้ายคำตอบด้วยปัจฉิมลิขิตที่ขึ้นต้นด้วย ป.ล.", [("detectable_content:postscript", {"postscript_marker": "ป.ล."})]),
    ("fmt-no-comma", "ห้ามใช้เครื่องหมายจุลภาคในคำตอบ", [("punctuation:no_comma", {})]),
    # length
    ("len-words-min-80", "ตอบอย่างละเอียด ความยาวอย่างน้อย 80 คำ", [("length_constraints:number_words", {"num_words": 80, "relation": "at least"})]),
    ("len-words-max-60", "ตอบสั้น ๆ ไม่เกิน 60 คำ", [("length_constraints:number_words", {"num_words": 61, "relation": "less than"})]),
    ("len-sentences-max-7", "ตอบน้อยกว่าแปดประโยค", [("length_constraints:number_sentences", {"num_sentences": 8, "relation": "less than"})]),
    ("len-sentences-min-6", "อธิบายอย่างน้อย 6 ประโยค", [("length_constraints:number_sentences", {"num_sentences": 6, "relation": "at least"})]),
    ("len-paragraphs-3", "เขียน 3 ย่อหน้า และคั่นแต่ละย่อหน้าด้วยเส้นแบ่ง ***", [("length_constraints:number_paragraphs", {"num_paragraphs": 3})]),
    ("len-nth-para", "เขียน 2 ย่อหน้าคั่นด้วยบรรทัดว่าง และเริ่มย่อหน้าที่สองด้วยคำว่า ดังนั้น", [("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "ดังนั้น"})]),
    # keywords / start / end
    ("kw-include", "ต้องมีคำว่า ความปลอดภัย และ การวางแผน อยู่ในคำตอบ", [("keywords:existence", {"keywords": ["ความปลอดภัย", "การวางแผน"]})]),
    ("kw-forbidden", "ห้ามใช้คำว่า ง่าย และ แน่นอน ในคำตอบ", [("keywords:forbidden_words", {"forbidden_words": ["ง่าย", "แน่นอน"]})]),
    ("kw-frequency", "ใช้คำว่า ชุมชน อย่างน้อย 3 ครั้ง", [("keywords:frequency", {"keyword": "ชุมชน", "frequency": 3, "relation": "at least"})]),
    ("kw-number-frequency", "ให้ตัวเลข 5 ปรากฏในคำตอบอย่างน้อย 2 ครั้ง", [("keywords:number_frequency", {"number": "5", "frequency": 2, "relation": "at least"})]),
    ("start-first-word", "เริ่มคำตอบด้วยคำว่า สวัสดี", [("startend:first_word", {"first_word": "สวัสดี"})]),
    ("end-phrase", "จบคำตอบด้วยประโยค หวังว่าข้อมูลนี้จะเป็นประโยชน์ โดยไม่มีข้อความอื่นต่อท้าย", [("startend:end_checker", {"end_phrase": "หวังว่าข้อมูลนี้จะเป็นประโยชน์"})]),
    ("repeat-prompt", "ทวนคำถามต่อไปนี้ก่อนตอบโดยไม่เปลี่ยนแปลง: ทำไมท้องฟ้าจึงเป็นสีฟ้า", [("combination:repeat_prompt", {"prompt_to_repeat": "ทำไมท้องฟ้าจึงเป็นสีฟ้า"})]),
    # language / script
    ("lang-thai-only", "ตอบเป็นภาษาไทยเท่านั้น", [("thai:response_language", {})]),
    ("lang-thai-strict", "ตอบเป็นภาษาไทยล้วน ห้ามใช้ตัวอักษรภาษาอังกฤษเลย", [("thai:no_code_switching", {"policy": "strict"})]),
    ("lang-no-switch", "ตอบเป็นภาษาไทย ห้ามปนอักษรภาษาอื่น ยกเว้นคำว่า Python", [("thai:no_code_switching", {"allowed_terms": ["Python"]})]),
    ("lang-ratio-90", "ตอบเป็นภาษาไทย โดยใช้คำภาษาอังกฤษให้น้อยที่สุด", [("thai:response_language", {"min_ratio": 0.9})]),
    ("lang-english", "ตอบเป็นภาษาอังกฤษทั้งหมด", [("language:response_language", {"language": "en"})]),
    ("lang-english-lower", "ตอบเป็นภาษาอังกฤษด้วยตัวพิมพ์เล็กทั้งหมด", [("change_case:english_lowercase", {})]),
    # orthography
    ("orth-clean", "เขียนคำตอบด้วยภาษาไทยที่สะกดและประสมอักษรถูกต้อง", [("thai:orthography", {}), ("thai:response_language", {})]),
    ("orth-no-loop", "ตอบโดยไม่พูดวนซ้ำ และเขียนภาษาไทยให้ถูกหลัก", [("thai:no_repetition", {}), ("thai:orthography", {})]),
    # digits / years
    ("digits-thai", "เขียนตัวเลขทั้งหมดด้วยเลขไทย", [("thai:digits", {"style": "thai", "min_count": 1})]),
    ("digits-arabic", "เขียนตัวเลขทั้งหมดด้วยเลขอารบิก", [("thai:digits", {"style": "arabic", "min_count": 1})]),
    ("year-be", "ระบุปีเป็นพุทธศักราชเท่านั้น", [("thai:buddhist_era", {"min_count": 1})]),
    # politeness
    ("polite-any", "ตอบอย่างสุภาพและลงท้ายด้วยคำลงท้ายสุภาพ", [("thai:polite_particle", {})]),
    ("polite-male", "ตอบในฐานะผู้ช่วยชาย และลงท้ายด้วย ครับ", [("thai:polite_particle", {"gender": "male"})]),
    ("polite-female-thai-digits", "ตอบในฐานะผู้ช่วยหญิง ลงท้ายด้วย ค่ะ และเขียนตัวเลขเป็นเลขไทย", [("thai:polite_particle", {"gender": "female"}), ("thai:digits", {"style": "thai"})]),
]

out = Path(__file__).with_name("seeds_th.jsonl")
with open(out, "w", encoding="utf-8") as f:
    for sid, text, checks in S:
        rec = {"id": sid, "text": text, "instruction_id_list": [c[0] for c in checks], "kwargs": [c[1] for c in checks]}
        f.write(json.dumps(rec, ensure_ascii=False) + "\n")
print(f"{len(S)} seeds -> {out}")
