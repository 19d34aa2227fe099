"""IFEval's 25 instructions (lm-evaluation-harness registry) and SEA-IFEval's two additions.

Semantics follow IFEval's `check_following`, made Thai-aware where IFEval assumes English:
words are newmm tokens, sentences come from crfcut (or SEA-IFEval's `***` separators), Thai
keywords match without word boundaries, ป.ล. is a postscript marker, Thai first words are newmm
tokens, and Thai answer phrases count for constrained responses. See docs/VERIFIERS.md.
"""

from __future__ import annotations

import json
import re
from typing import Any

from siamgpt_jax.corpus import langid, thai_text
from siamgpt_jax.corpus.registry import (
    RELATION_TH,
    RELATIONS,
    Param,
    Verdict,
    at_least_one,
    compare,
    counted,
    nonempty,
    nonempty_list,
    register,
    satisfiable,
)
from siamgpt_jax.corpus.script import THAI_LETTER_RE, to_arabic_digits

IFEVAL, SEA = "ifeval", "sea-ifeval"
REL = Param("relation", str, choices=RELATIONS)


def _has_thai(s: str) -> bool:
    return bool(THAI_LETTER_RE.search(s))


def _q(items: list[str]) -> str:
    return ", ".join(f'"{w}"' for w in items)


# ---------------------------------------------------------------- keywords


def keyword_count(text: str, keyword: str) -> int:
    """Case-insensitive occurrences of `keyword`; substring match, as IFEval does (Thai too)."""
    return len(re.findall(re.escape(keyword), text, flags=re.IGNORECASE))


@register(
    "keywords:existence", IFEVAL, (Param("keywords", list, rule=nonempty_list),),
    th=lambda k: f"ใส่คำสำคัญต่อไปนี้ในคำตอบ: {_q(k['keywords'])}",
    en=lambda k: f"Include keywords {_q(k['keywords'])} in the response.",
)
def _existence(text: str, k: dict[str, Any]) -> Verdict:
    missing = [w for w in k["keywords"] if not keyword_count(text, w)]
    return Verdict(not missing, f"missing keywords: {_q(missing)}" if missing else "")


@register(
    "keywords:frequency", IFEVAL, (Param("keyword", str, rule=nonempty), Param("frequency", int), REL),
    validate=satisfiable("frequency", "relation"),
    th=lambda k: f'ใช้คำว่า "{k["keyword"]}" {RELATION_TH[k["relation"]]} {k["frequency"]} ครั้ง',
    en=lambda k: f'In your response, the word "{k["keyword"]}" should appear {k["relation"]} {k["frequency"]} times.',
)
def _frequency(text: str, k: dict[str, Any]) -> Verdict:
    return counted(f'occurrences of "{k["keyword"]}"', keyword_count(text, k["keyword"]), k["relation"], k["frequency"])


@register(
    "keywords:forbidden_words", IFEVAL, (Param("forbidden_words", list, rule=nonempty_list),),
    th=lambda k: f"ห้ามใช้คำต่อไปนี้ในคำตอบ: {_q(k['forbidden_words'])}",
    en=lambda k: f"Do not include keywords {_q(k['forbidden_words'])} in the response.",
)
def _forbidden(text: str, k: dict[str, Any]) -> Verdict:
    found = []
    for w in k["forbidden_words"]:
        # Latin words need word boundaries (IFEval); Thai has none between words, so substring.
        pattern = re.escape(w) if _has_thai(w) else r"\b" + re.escape(w) + r"\b"
        if re.search(pattern, text, flags=re.IGNORECASE):
            found.append(w)
    return Verdict(not found, f"forbidden words used: {_q(found)}" if found else "")


@register(
    "keywords:letter_frequency", IFEVAL,
    (Param("letter", str, rule=lambda v: None if len(v) == 1 else "must be one character"),
     Param("let_frequency", int), Param("let_relation", str, choices=RELATIONS)),
    validate=satisfiable("let_frequency", "let_relation"),
    th=lambda k: f'ใช้ตัวอักษร "{k["letter"]}" {RELATION_TH[k["let_relation"]]} {k["let_frequency"]} ครั้ง',
    en=lambda k: f'In your response, the letter {k["letter"]} should appear {k["let_relation"]} {k["let_frequency"]} times.',
)
def _letter_frequency(text: str, k: dict[str, Any]) -> Verdict:
    letter = k["letter"].lower()
    return counted(f'letter "{letter}"', text.lower().count(letter), k["let_relation"], k["let_frequency"])


@register(
    "keywords:number_frequency", SEA, (Param("number", str, rule=nonempty), Param("frequency", int), REL),
    validate=satisfiable("frequency", "relation"),
    th=lambda k: f'ให้ตัวเลข {k["number"]} ปรากฏ{RELATION_TH[k["relation"]]} {k["frequency"]} ครั้ง',
    en=lambda k: f'The number {k["number"]} should appear {k["relation"]} {k["frequency"]} times.',
)
def _number_frequency(text: str, k: dict[str, Any]) -> Verdict:
    number = to_arabic_digits(k["number"].strip())
    # A standalone number: not part of a longer number (Thai digits count as their values).
    pattern = r"(?<![\d.,])" + re.escape(number) + r"(?!\d|[.,]\d)"
    n = len(re.findall(pattern, to_arabic_digits(text)))
    return counted(f"occurrences of the number {number}", n, k["relation"], k["frequency"])


# ---------------------------------------------------------------- language


@register(
    "language:response_language", IFEVAL, (Param("language", str, aliases=("response_language",), rule=langid.language_code_problem),),
    th=lambda k: f"ตอบเป็นภาษา {k['language']} เท่านั้น ห้ามใช้ภาษาอื่น",
    en=lambda k: f"Your ENTIRE response should be in {k['language']} language, no other language is allowed.",
)
def _response_language(text: str, k: dict[str, Any]) -> Verdict:
    got = langid.detect(text)
    ok = langid.same_language(got, k["language"])
    return Verdict(ok, "" if ok else f"response language is {got}, expected {k['language']}")


# ---------------------------------------------------------------- length


@register(
    "length_constraints:number_sentences", IFEVAL, (Param("num_sentences", int), REL),
    validate=satisfiable("num_sentences", "relation"),
    th=lambda k: f"ตอบ{RELATION_TH[k['relation']]} {k['num_sentences']} ประโยค",
    en=lambda k: f"Your response should contain {k['relation']} {k['num_sentences']} sentences.",
)
def _num_sentences(text: str, k: dict[str, Any]) -> Verdict:
    rel, n = k["relation"], k["num_sentences"]

    def decided(lo: int, hi: int) -> bool:
        # Relations other than "exactly" are monotone in the count: equal answers at both bounds
        # settle them without running the CRF on the remaining lines.
        if rel == "exactly":
            return lo == hi or not lo <= n <= hi
        return compare(lo, rel, n) == compare(hi, rel, n)

    count = thai_text.count_sentences_until(text, decided)
    return counted("sentences", count, rel, n)


def ifeval_paragraphs(text: str) -> list[str] | None:
    """Paragraphs split by `***` markdown dividers; None when an inner paragraph is empty."""
    parts = re.split(r"\s?\*\*\*\s?", text)
    out = []
    for i, p in enumerate(parts):
        if not p.strip():
            if i in (0, len(parts) - 1):
                continue
            return None
        out.append(p)
    return out


@register(
    "length_constraints:number_paragraphs", IFEVAL, (Param("num_paragraphs", int, rule=at_least_one),),
    th=lambda k: f"ตอบเป็น {k['num_paragraphs']} ย่อหน้าพอดี โดยคั่นแต่ละย่อหน้าด้วยเส้นแบ่ง markdown: ***",
    en=lambda k: f"There should be {k['num_paragraphs']} paragraphs. Paragraphs are separated with the markdown divider: ***",
)
def _num_paragraphs(text: str, k: dict[str, Any]) -> Verdict:
    paras = ifeval_paragraphs(text)
    if paras is None:
        return Verdict(False, "empty paragraph between *** dividers")
    return counted("paragraphs (*** separated)", len(paras), "exactly", k["num_paragraphs"])


@register(
    "length_constraints:number_words", IFEVAL, (Param("num_words", int), REL),
    validate=satisfiable("num_words", "relation"),
    th=lambda k: f"ตอบ{RELATION_TH[k['relation']]} {k['num_words']} คำ",
    en=lambda k: f"Answer with {k['relation']} {k['num_words']} words.",
)
def _num_words(text: str, k: dict[str, Any]) -> Verdict:
    return counted("words (newmm)", thai_text.count_words(text), k["relation"], k["num_words"])


@register(
    "length_constraints:nth_paragraph_first_word", IFEVAL,
    (Param("num_paragraphs", int, rule=at_least_one), Param("nth_paragraph", int, rule=at_least_one), Param("first_word", str, rule=nonempty)),
    validate=lambda k: None if k["nth_paragraph"] <= k["num_paragraphs"] else f"nth_paragraph {k['nth_paragraph']} > num_paragraphs {k['num_paragraphs']}: no response can pass",
    th=lambda k: (
        f"ตอบเป็น {k['num_paragraphs']} ย่อหน้า คั่นด้วยบรรทัดว่าง และย่อหน้าที่ {k['nth_paragraph']} "
        f'ต้องขึ้นต้นด้วยคำว่า "{k["first_word"]}"'
    ),
    en=lambda k: (
        f"There should be {k['num_paragraphs']} paragraphs. Paragraphs and only paragraphs are separated with each other by "
        f"two new lines. The {k['nth_paragraph']}-th paragraph must start with word {k['first_word']}."
    ),
)
def _nth_first_word(text: str, k: dict[str, Any]) -> Verdict:
    paras = text.split("\n\n")
    n = sum(1 for p in paras if p.strip())
    nth = k["nth_paragraph"]
    if not 1 <= nth <= n or not paras[nth - 1].strip():
        return Verdict(False, f"no paragraph {nth} (found {n} non-empty paragraphs)")
    if n != k["num_paragraphs"]:
        return Verdict(False, f"paragraphs (blank-line separated): found {n}, need exactly {k['num_paragraphs']}")
    if not thai_text.first_word_matches(paras[nth - 1], k["first_word"]):
        return Verdict(False, f'paragraph {nth} does not start with "{k["first_word"]}"')
    return Verdict(True)


# ---------------------------------------------------------------- detectable content


@register(
    "detectable_content:number_placeholders", IFEVAL, (Param("num_placeholders", int, rule=at_least_one),),
    th=lambda k: f"ใส่ช่องว่างสำหรับเติมข้อมูลในวงเล็บเหลี่ยมอย่างน้อย {k['num_placeholders']} ช่อง เช่น [ที่อยู่]",
    en=lambda k: f"The response must contain at least {k['num_placeholders']} placeholders represented by square brackets, such as [address].",
)
def _placeholders(text: str, k: dict[str, Any]) -> Verdict:
    # SEA-HELM's reading: "[]" or "[ ]" holds nothing to fill in, so it is no placeholder.
    n = sum(1 for p in re.findall(r"\[(.*?)\]", text) if p.strip()) if "[" in text else 0
    return counted("non-empty [placeholders]", n, "at least", k["num_placeholders"])


def _postscript_pattern(marker: str) -> str:
    """Spacing-tolerant pattern for P.S./P.P.S. and their Thai forms ป.ล./ป.ป.ล."""
    m = marker.strip().lower()
    if m.rstrip(".") in ("p.p.s", "ป.ป.ล"):
        a, b = ("p", "s") if m.startswith("p") else ("ป", "ล")
        return rf"\s*{a}\.\s?{a}\.\s?{b}" + (r"\." if m.endswith(".") else "")
    if m.rstrip(".") in ("p.s", "ป.ล"):
        a, b = ("p", "s") if m.startswith("p") else ("ป", "ล")
        return rf"\s*{a}\.\s?{b}" + (r"\." if m.endswith(".") else "")
    return r"\s*" + re.escape(m)


@register(
    "detectable_content:postscript", IFEVAL, (Param("postscript_marker", str, rule=nonempty),),
    th=lambda k: f"ท้ายคำตอบ ให้เพิ่มปัจฉิมลิขิตที่ขึ้นต้นด้วย {k['postscript_marker']}",
    en=lambda k: f"At the end of your response, please explicitly add a postscript starting with {k['postscript_marker']}",
)
def _postscript(text: str, k: dict[str, Any]) -> Verdict:
    # IFEval searches marker_pattern + ".*$" (MULTILINE). The pattern opens with \s*, which may
    # match nothing, and ".*$" always matches the rest of the line, so the marker's core alone is
    # found exactly when the whole is; without the leading \s* the search skips ahead by literal.
    core = _postscript_pattern(k["postscript_marker"]).removeprefix(r"\s*")
    ok = bool(re.search(core, text.lower()))
    return Verdict(ok, "" if ok else f"no postscript marker {k['postscript_marker']}")


# ---------------------------------------------------------------- detectable format


@register(
    "detectable_format:number_bullet_lists", IFEVAL, (Param("num_bullets", int),),
    th=lambda k: f"ตอบเป็นรายการหัวข้อย่อย markdown จำนวน {k['num_bullets']} ข้อพอดี เช่น\n* ข้อแรก\n* ข้อสอง",
    en=lambda k: f"Your answer must contain exactly {k['num_bullets']} bullet points. Use the markdown bullet points such as:\n* This is point 1.\n* This is point 2",
)
def _bullets(text: str, k: dict[str, Any]) -> Verdict:
    return counted("bullet points", count_bullets(text), "exactly", k["num_bullets"])


# A markdown bullet: "*" or "-", then a space, then content (SEA-HELM's reading). Unlike IFEval's
# patterns this leaves out "*italic*" and "**bold**" lines, "---" rules and a bare "-".
BULLET_RE = re.compile(r"^[ \t]*[*-][ \t]+\S.*$", re.MULTILINE)
# A thematic break ("* * *", "- - -"): three or more of one marker and nothing else.
_RULE_RE = re.compile(r"[ \t]*([*_-])(?:[ \t]*\1){2,}[ \t]*")


def count_bullets(text: str) -> int:
    if "*" not in text and "-" not in text:
        return 0
    return sum(1 for m in BULLET_RE.finditer(text) if not _RULE_RE.fullmatch(m.group()))


CONSTRAINED_OPTIONS = (
    "My answer is yes.", "My answer is no.", "My answer is maybe.",
    "คำตอบของฉันคือใช่", "คำตอบของฉันคือไม่", "คำตอบของฉันคืออาจจะ",
)


@register(
    "detectable_format:constrained_response", IFEVAL, (),
    th=lambda k: 'ตอบด้วยวลีใดวลีหนึ่งต่อไปนี้: "คำตอบของฉันคือใช่", "คำตอบของฉันคือไม่", "คำตอบของฉันคืออาจจะ"',
    en=lambda k: "Answer with one of the following options: ('My answer is yes.', 'My answer is no.', 'My answer is maybe.')",
)
def _constrained(text: str, k: dict[str, Any]) -> Verdict:
    ok = any(opt in text.strip() for opt in CONSTRAINED_OPTIONS)
    return Verdict(ok, "" if ok else "none of the allowed answer phrases appears")


@register(
    "detectable_format:number_highlighted_sections", IFEVAL, (Param("num_highlights", int, rule=at_least_one),),
    th=lambda k: f"เน้นข้อความอย่างน้อย {k['num_highlights']} ส่วนด้วย markdown เช่น *ส่วนที่เน้น*",
    en=lambda k: f"Highlight at least {k['num_highlights']} sections in your answer with markdown, i.e. *highlighted section*.",
)
def _highlights(text: str, k: dict[str, Any]) -> Verdict:
    single = [h for h in re.findall(r"\*[^\n\*]*\*", text) if h.strip("*").strip()]
    double = [h for h in re.findall(r"\*\*[^\n\*]*\*\*", text) if h.removeprefix("**").removesuffix("**").strip()]
    return counted("highlighted sections", len(single) + len(double), "at least", k["num_highlights"])


@register(
    "detectable_format:multiple_sections", IFEVAL,
    (Param("section_spliter", str, aliases=("section_title", "section_splitter"), rule=nonempty), Param("num_sections", int, rule=at_least_one)),
    th=lambda k: f"แบ่งคำตอบเป็น {k['num_sections']} ส่วน โดยขึ้นต้นแต่ละส่วนด้วย {k['section_spliter']} X เช่น {k['section_spliter']} 1",
    en=lambda k: f"Your response must have {k['num_sections']} sections. Mark the beginning of each section with {k['section_spliter']} X, such as: {k['section_spliter']} 1",
)
def _sections(text: str, k: dict[str, Any]) -> Verdict:
    # Any run of spaces (no line break) between marker and number: IFEval's single optional
    # space missed "ส่วน  1", which a reader sees as a section mark.
    n = len(re.findall(re.escape(k["section_spliter"].strip()) + r"[^\S\n]*\d+", text))
    return counted(f"sections marked '{k['section_spliter']} N'", n, "at least", k["num_sections"])


@register(
    "detectable_format:json_format", IFEVAL, (),
    th=lambda k: "ตอบทั้งหมดในรูปแบบ JSON คุณอาจใช้ markdown ``` ครอบได้",
    en=lambda k: "Entire output should be wrapped in JSON format. You can use markdown ticks such as ```.",
)
def _json(text: str, k: dict[str, Any]) -> Verdict:
    value = text.strip()
    for prefix in ("```json", "```Json", "```JSON", "```"):
        value = value.removeprefix(prefix)
    value = value.removesuffix("```").strip()
    try:
        json.loads(value)
    except ValueError as e:
        return Verdict(False, f"not valid JSON: {e}")
    return Verdict(True)


@register(
    "detectable_format:title", IFEVAL, (),
    th=lambda k: "ใส่ชื่อเรื่องในวงเล็บมุมคู่ เช่น <<บทกวีแห่งความสุข>>",
    en=lambda k: "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>.",
)
def _title(text: str, k: dict[str, Any]) -> Verdict:
    ok = any(t.lstrip("<").rstrip(">").strip() for t in re.findall(r"<<[^\n]+>>", text))
    return Verdict(ok, "" if ok else "no <<title>>")


# ---------------------------------------------------------------- combination


@register(
    "combination:two_responses", IFEVAL, (),
    th=lambda k: "ให้คำตอบสองแบบที่แตกต่างกัน คั่นด้วยเครื่องหมายดอกจัน 6 ตัว: ******",
    en=lambda k: "Give two different responses. Responses and only responses should be separated by 6 asterisk symbols: ******.",
)
def _two_responses(text: str, k: dict[str, Any]) -> Verdict:
    parts = text.split("******")
    valid = []
    for i, p in enumerate(parts):
        if not p.strip():
            if i not in (0, len(parts) - 1):
                return Verdict(False, "empty response between ****** separators")
        else:
            valid.append(p)
    if len(valid) != 2:
        return Verdict(False, f"found {len(valid)} responses, need 2 separated by ******")
    if valid[0].strip() == valid[1].strip():
        return Verdict(False, "the two responses are identical")
    return Verdict(True)


@register(
    "combination:repeat_prompt", IFEVAL, (Param("prompt_to_repeat", str, rule=nonempty),),
    th=lambda k: f"ทวนคำขอต่อไปนี้ก่อนโดยไม่เปลี่ยนแปลง แล้วจึงตอบ (ห้ามพูดอะไรก่อนทวน): {k['prompt_to_repeat']}",
    en=lambda k: f"First repeat the request word for word without change, then give your answer (do not say anything before repeating the request): {k['prompt_to_repeat']}",
)
def _repeat_prompt(text: str, k: dict[str, Any]) -> Verdict:
    body, request = text.strip().lower(), k["prompt_to_repeat"].strip().lower()
    if not body.startswith(request):
        return Verdict(False, "response does not begin with the request repeated verbatim")
    # SEA-HELM's reading: the instruction is to repeat the request *then answer it*.
    if not body[len(request) :].strip():
        return Verdict(False, "response only repeats the request and gives no answer")
    return Verdict(True)


# ---------------------------------------------------------------- start / end


@register(
    "startend:end_checker", IFEVAL, (Param("end_phrase", str, rule=nonempty),),
    th=lambda k: f'จบคำตอบด้วยวลี "{k["end_phrase"]}" ห้ามมีข้อความอื่นต่อท้าย',
    en=lambda k: f"Finish your response with this exact phrase {k['end_phrase']}. No other words should follow this phrase.",
)
def _end_checker(text: str, k: dict[str, Any]) -> Verdict:
    ok = text.strip().strip('"“”').strip().lower().endswith(k["end_phrase"].strip().lower())
    return Verdict(ok, "" if ok else f'response does not end with "{k["end_phrase"]}"')


@register(
    "startend:first_word", SEA, (Param("first_word", str, rule=nonempty),),
    th=lambda k: f'เริ่มคำตอบด้วยคำว่า "{k["first_word"]}"',
    en=lambda k: f'Start your response with the word "{k["first_word"]}".',
)
def _first_word(text: str, k: dict[str, Any]) -> Verdict:
    ok = thai_text.first_word_matches(text, k["first_word"])
    return Verdict(ok, "" if ok else f'first word is not "{k["first_word"]}"')


@register(
    "startend:quotation", IFEVAL, (),
    th=lambda k: "ครอบคำตอบทั้งหมดด้วยเครื่องหมายอัญประกาศ (ฟันหนู)",
    en=lambda k: "Wrap your entire response with double quotation marks.",
)
def _quotation(text: str, k: dict[str, Any]) -> Verdict:
    v = text.strip()
    ok = len(v) > 1 and ((v[0] == '"' and v[-1] == '"') or (v[0] == "“" and v[-1] == "”"))
    if ok and not v[1:-1].strip():
        return Verdict(False, "nothing inside the quotation marks")  # SEA-HELM's reading: "" quotes nothing
    return Verdict(ok, "" if ok else "response is not wrapped in double quotation marks")


# ---------------------------------------------------------------- case and punctuation


@register(
    "change_case:capital_word_frequency", IFEVAL,
    (Param("capital_frequency", int), Param("capital_relation", str, choices=RELATIONS)),
    validate=satisfiable("capital_frequency", "capital_relation"),
    th=lambda k: f"ใช้คำภาษาอังกฤษที่เป็นตัวพิมพ์ใหญ่ทั้งคำ{RELATION_TH[k['capital_relation']]} {k['capital_frequency']} คำ",
    en=lambda k: f"In your response, words with all capital letters should appear {k['capital_relation']} {k['capital_frequency']} times.",
)
def _capital_words(text: str, k: dict[str, Any]) -> Verdict:
    n = sum(1 for w in re.findall(r"\w+", text) if w.isupper())
    return counted("all-capital words", n, k["capital_relation"], k["capital_frequency"])


@register(
    "change_case:english_capital", IFEVAL, (),
    th=lambda k: "ตอบเป็นภาษาอังกฤษด้วยตัวพิมพ์ใหญ่ทั้งหมด",
    en=lambda k: "Your entire response should be in English, and in all capital letters.",
)
def _english_capital(text: str, k: dict[str, Any]) -> Verdict:
    if not text.isupper():
        return Verdict(False, "response is not all capital letters")
    lang = langid.detect(text)
    return Verdict(lang == "en", "" if lang == "en" else f"response language is {lang}, expected en")


@register(
    "change_case:english_lowercase", IFEVAL, (),
    th=lambda k: "ตอบเป็นภาษาอังกฤษด้วยตัวพิมพ์เล็กทั้งหมด ห้ามใช้ตัวพิมพ์ใหญ่",
    en=lambda k: "Your entire response should be in English, and in all lowercase letters. No capital letters are allowed.",
)
def _english_lowercase(text: str, k: dict[str, Any]) -> Verdict:
    if not text.islower():
        return Verdict(False, "response is not all lowercase letters")
    lang = langid.detect(text)
    return Verdict(lang == "en", "" if lang == "en" else f"response language is {lang}, expected en")


@register(
    "punctuation:no_comma", IFEVAL, (),
    th=lambda k: "ห้ามใช้เครื่องหมายจุลภาค (,) ในคำตอบ",
    en=lambda k: "In your entire response, refrain from the use of any commas.",
)
def _no_comma(text: str, k: dict[str, Any]) -> Verdict:
    ok = "," not in text
    return Verdict(ok, "" if ok else "response contains a comma")
