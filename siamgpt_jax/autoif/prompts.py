"""The Thai prompts of each AutoIF stage (written for this project). Each builder returns chat messages."""

from __future__ import annotations

from collections.abc import Sequence


def _user(text: str) -> tuple[dict[str, str], ...]:
    return ({"role": "user", "content": text},)


def augment(seed_instructions: Sequence[str], count: int) -> tuple[dict[str, str], ...]:
    examples = "\n".join(f"- {s}" for s in seed_instructions)
    return _user(
        f"คุณเป็นผู้เชี่ยวชาญด้านการเขียนคำสั่งกำกับรูปแบบคำตอบภาษาไทย จงเขียนคำสั่งใหม่ {count} ข้อที่แตกต่างกัน โดย\n"
        "- คำสั่งต้องกำหนดรูปแบบ ความยาว คำสำคัญ หรือโครงสร้างของคำตอบ ไม่ใช่ลีลาการเขียน\n"
        "- ต้องตรวจได้แน่นอนด้วยฟังก์ชันภาษา Python สั้น ๆ\n"
        "- เขียนเป็นภาษาไทยล้วน\n"
        f"ตัวอย่างคำสั่งที่ต้องการ:\n{examples}\n"
        "ห้ามเขียนคำสั่งเกี่ยวกับการแปล การใช้อุปมา หรือการสวมบทบาท\n"
        "ตอบหนึ่งคำสั่งต่อบรรทัด และขึ้นต้นทุกบรรทัดด้วย '- '")


def functions(instruction: str, min_cases: int) -> tuple[dict[str, str], ...]:
    return _user(
        "คุณเป็นผู้เชี่ยวชาญด้านการเขียนฟังก์ชัน Python เพื่อตรวจว่าคำตอบทำตามคำสั่งอย่างเคร่งครัดหรือไม่\n"
        f"คำสั่ง: {instruction}\n"
        "จงเขียนฟังก์ชันชื่อ evaluate(response) ที่รับข้อความคำตอบ (str) แล้วคืนค่า True เมื่อทำตามคำสั่ง และ False เมื่อไม่ทำตาม "
        "ใช้ได้เฉพาะไลบรารีมาตรฐานของ Python ห้ามอ่านเขียนไฟล์หรือใช้เครือข่าย\n"
        f"พร้อมกรณีทดสอบอย่างน้อย {min_cases} กรณี ทั้งที่ควรผ่านและไม่ควรผ่าน\n"
        'ตอบเป็น JSON ในบล็อก ```json เท่านั้น รูปแบบ {"func": "<โค้ด>", "cases": [{"input": "<คำตอบ>", "output": true}]}')


def backtranslate(code: str) -> tuple[dict[str, str], ...]:
    return _user(
        "ฟังก์ชัน Python ต่อไปนี้ตรวจว่าคำตอบทำตามคำสั่งข้อหนึ่งหรือไม่ จงเขียนคำสั่งนั้นเป็นภาษาไทยหนึ่งประโยค "
        "โดยไม่อธิบายโค้ด\n"
        f"```python\n{code}\n```")


def consistency(original: str, back: str) -> tuple[dict[str, str], ...]:
    return _user(
        "จงพิจารณาว่าคำสั่งสองข้อนี้กำหนดเงื่อนไขเดียวกันหรือไม่ (ถ้อยคำต่างกันได้ แต่เงื่อนไขต้องไม่ขัดกัน)\n"
        f"คำสั่งที่ 1: {original}\nคำสั่งที่ 2: {back}\n"
        "ให้เหตุผลสั้น ๆ แล้วปิดท้ายด้วย [[ใช่]] ถ้าสอดคล้องกัน หรือ [[ไม่ใช่]] ถ้าไม่สอดคล้อง")


def user_turn(query: str, instruction: str) -> str:
    """The training pair's user message: the query, then the constraint."""
    return f"{query.strip()}\n\n{instruction.strip()}"


def respond(query: str, instruction: str) -> tuple[dict[str, str], ...]:
    return _user(user_turn(query, instruction))


def quality(query: str, instruction: str, response: str) -> tuple[dict[str, str], ...]:
    return _user(
        "จงให้คะแนนคุณภาพของคำตอบต่อไปนี้จาก 1 ถึง 10 โดยพิจารณาความถูกต้อง ความเป็นประโยชน์ "
        "ความเป็นธรรมชาติของภาษาไทย และการทำตามคำสั่ง\n"
        f"[คำถาม]\n{user_turn(query, instruction)}\n[คำตอบ]\n{response}\n"
        "ให้เหตุผลสั้น ๆ แล้วปิดท้ายด้วยบรรทัด 'คะแนน: N'")
