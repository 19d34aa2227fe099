import unicodedata

import pytest

from siamgpt_jax.loader.chat import CHAT_TEMPLATE, ChatFormatError, encode_chat

CONV = [
    {"role": "system", "content": "คุณเป็นผู้ช่วยที่ตอบเป็นภาษาไทยเสมอ"},
    {"role": "user", "content": "What is 2+2? ตอบสั้นๆ"},
    {"role": "assistant", "content": "สี่ (4) ครับ"},
    {"role": "user", "content": "Write code:\n```py\nprint(1)\n```"},
    {"role": "assistant", "content": "```python\nprint('สวัสดี')\n```\nเสร็จแล้ว"},
]


def rendered(messages, empty_think=True):
    out = ""
    for i, m in enumerate(messages):
        think = "<think>\n\n</think>\n\n" if empty_think and m["role"] == "assistant" and i == len(messages) - 1 else ""
        out += f"<|im_start|>{m['role']}\n{think}{m['content']}<|im_end|>\n"
    return out


def masked_spans(ids, mask):
    spans, cur = [], []
    for t, m in zip(ids, mask):
        if m:
            cur.append(t)
        elif cur:
            spans.append(cur)
            cur = []
    return spans + ([cur] if cur else [])


@pytest.mark.parametrize("train_on", ["all_assistant", "last_assistant"])
def test_masked_tokens_decode_to_assistant_texts(tok, train_on):
    ids, mask = encode_chat(tok, CONV, train_on=train_on)
    assert len(ids) == len(mask) and set(mask) <= {0, 1}
    answers = [m["content"] for m in CONV if m["role"] == "assistant"]
    if train_on == "last_assistant":
        answers = answers[-1:]
    spans = [tok.decode(s) for s in masked_spans(ids, mask)]
    assert spans == [unicodedata.normalize("NFC", a) + "<|im_end|>" for a in answers]


def test_renders_qwen3_chatml(tok):
    ids, _ = encode_chat(tok, CONV)
    assert tok.decode(ids) == rendered(CONV)
    # Same ids as tokenizing the whole rendered string (content does not start with whitespace).
    assert ids == tok.encode(rendered(CONV))
    assert ids[:1] == [151644] and ids[-2:] == [151645, tok.encode("\n")[0]]


def test_empty_think_is_configurable(tok):
    with_think, _ = encode_chat(tok, CONV, empty_think=True)
    without, _ = encode_chat(tok, CONV, empty_think=False)
    assert with_think.count(151667) == 1 and with_think.count(151668) == 1
    assert 151667 not in without and tok.decode(without) == rendered(CONV, empty_think=False)


def test_chat_template_matches_encode_chat(tok, tmp_path):
    from transformers import AutoTokenizer

    tok.save(tmp_path)
    hf = AutoTokenizer.from_pretrained(str(tmp_path))
    text = hf.apply_chat_template(CONV, tokenize=False)
    assert text == rendered(CONV) and hf.chat_template == CHAT_TEMPLATE
    assert tok.encode(text) == encode_chat(tok, CONV)[0]


@pytest.mark.parametrize(
    "messages, match",
    [
        ([{"role": "user", "content": "hi"}], "no assistant turn"),
        ([{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}], "unknown role 'bot'"),
        ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}], "empty content"),
        ([{"role": "user", "content": "hi"}, {"role": "system", "content": "s"},
          {"role": "assistant", "content": "a"}], "only the first message"),
        ([{"role": "user", "content": "a<|im_end|>b"}, {"role": "assistant", "content": "a"}], "control token"),
        ([], "non-empty list"),
    ],
)
def test_bad_conversations_name_the_record(tok, messages, match):
    with pytest.raises(ChatFormatError, match=match) as e:
        encode_chat(tok, messages, where="data.jsonl:7 (id=r7)")
    assert "data.jsonl:7 (id=r7)" in str(e.value)


def test_bad_train_on(tok):
    with pytest.raises(ValueError, match="train_on"):
        encode_chat(tok, CONV, train_on="everything")
