"""A small deterministic language identifier for `language:response_language`.

IFEval asks whether a whole response is in one named language. Most languages it and SEA-IFEval
name have a script of their own, which decides exactly. Languages that share a script (Latin,
Arabic, Cyrillic, Devanagari) are told apart by letters only they use and by their most frequent
function words. Deterministic by construction (langdetect is random unless seeded, and lacks
Burmese, which SEA-IFEval asks for).
"""

from __future__ import annotations

import re
from collections import Counter

from siamgpt_jax.corpus.script import script_of, strip_code_and_urls

# Scripts that belong to exactly one of the languages we name.
_SCRIPT_LANG = {
    "Thai": "th", "Myanmar": "my", "Tamil": "ta", "Telugu": "te", "Kannada": "kn", "Malayalam": "ml",
    "Gujarati": "gu", "Gurmukhi": "pa", "Bengali": "bn", "Sinhala": "si", "Khmer": "km", "Lao": "lo",
    "Hangul": "ko", "Kana": "ja", "Greek": "el", "Hebrew": "he", "Armenian": "hy", "Georgian": "ka",
    "Ethiopic": "am", "Oriya": "or", "Tibetan": "bo",
}

# Frequent function words per language (lower case). Chosen to be common in that language and rare
# in the others of the same script.
_LATIN_WORDS = {
    "en": "the and of to is in that it for you with are this on be as have not your was can will".split(),
    "id": "yang dan di ini itu dengan untuk tidak dari dalam akan pada juga adalah saya ke bisa ada kami mereka".split(),
    "ms": "yang dan di ini itu dengan untuk tidak dari dalam akan pada juga ialah saya ke boleh ada kami mereka".split(),
    "tl": "ang ng mga sa na at ay ito hindi para ko mo siya niya kung din rin po ako ka".split(),
    "vi": "và của là có không một những được cho người các này trong đã với để khi như".split(),
    "fr": "le la les et des est une du que pas pour dans qui sur avec ce sont vous nous".split(),
    "es": "el la los las y es una del que para con por se lo como más pero sus está".split(),
    "pt": "o a os as e é um uma do da que para com não se por mais como está são".split(),
    "it": "il la e di che è un una per non sono del della con mi si gli anche più".split(),
    "de": "der die und das ist nicht ich es sie ein eine zu mit den von auf für sich auch".split(),
    "nl": "de het een en van is dat niet ik je op te zijn voor met die ook maar".split(),
    "fi": "ja on ei se että oli hän ovat mutta kun myös tai niin kuin tämä mitä".split(),
    "sw": "na ya wa kwa ni la za katika kuwa hii ili lakini pia yake au sana".split(),
    "tr": "ve bir bu da de için ile çok ne var daha olarak gibi ama en değil".split(),
    "pl": "i w nie na się że to jest z do jak co ale o tak jego przez".split(),
}
_LATIN_TABLE = {lang: set(ws) for lang, ws in _LATIN_WORDS.items()}
# Letters that single out a Latin-script language on their own.
_VI_LETTERS_RE = re.compile(r"[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ]", re.IGNORECASE)

_DEVANAGARI_WORDS = {
    "hi": "है और के की में से को का एक यह नहीं हैं भी पर था".split(),
    "mr": "आहे आणि या हे की ते आहेत होते त्या मी व नाही पण".split(),
    "ne": "छ र को मा गर्न पनि यो हो छन् भएको गरेको थियो".split(),
}
_CYRILLIC_HINTS = {"uk": re.compile(r"[іїєґ]", re.I), "bg": re.compile(r"ъ(?!\b)", re.I), "mk": re.compile(r"[ѓќѕљњџ]", re.I), "sr": re.compile(r"[ђћ]", re.I)}
_URDU_RE = re.compile(r"[ٹڈڑںےھ]")
_PERSIAN_RE = re.compile(r"[پچژگکی]")


def detect(text: str) -> str | None:
    """The ISO 639-1 code of the dominant language of `text`, or None when it has no letters."""
    text = strip_code_and_urls(text)
    scripts: Counter[str] = Counter()
    for ch in text:
        if ch.isalpha():
            name = script_of(ch)
            if name is None:
                name = "Thai" if "\u0e01" <= ch <= "\u0e4e" else "Latin"
            scripts[name] += 1
    if not scripts:
        return None
    top = scripts.most_common(1)[0][0]
    if top in _SCRIPT_LANG:
        return _SCRIPT_LANG[top]
    if top == "CJK":
        return "ja" if scripts.get("Kana", 0) * 10 >= scripts["CJK"] else "zh"
    if top == "Arabic":
        return "ur" if _URDU_RE.search(text) else "fa" if _PERSIAN_RE.search(text) else "ar"
    if top == "Cyrillic":
        for lang, pat in _CYRILLIC_HINTS.items():
            if pat.search(text):
                return lang
        return "ru"
    if top == "Devanagari":
        return _by_function_words(text, {k: set(v) for k, v in _DEVANAGARI_WORDS.items()}, default="hi")
    if _VI_LETTERS_RE.search(text) and len(_VI_LETTERS_RE.findall(text)) * 20 >= scripts["Latin"]:
        return "vi"
    return _by_function_words(text, _LATIN_TABLE, default="en")


def _by_function_words(text: str, table: dict[str, set[str]], default: str) -> str:
    tokens = re.findall(r"[^\W\d_]+", text.lower())
    scores = {lang: sum(1 for t in tokens if t in ws) for lang, ws in table.items()}
    best = max(scores.values(), default=0)
    if best == 0:
        return default
    # Ties are rare; break them by table order so the answer never depends on hashing.
    return next(lang for lang in table if scores[lang] == best)
