"""JaxBackend: chat prompts through the loader's ChatML renderer (Qwen3's thinking switch), stop
strings, finish reasons, logprobs, per-request errors, and loading an HF folder or a training run."""

import pytest

from siamgpt_jax.errors import UserError
from siamgpt_jax.generate.backend import Backend, GenerationRequest, SamplingParams
from siamgpt_jax.generate.jax_backend import JaxBackend
from siamgpt_jax.loader.chat import ChatFormatError, encode_generation_prompt
from tests.generate.helpers import byte_tokenizer, tiny_hf_folder

CHAT = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "สวัสดี"})


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    return tiny_hf_folder(tmp_path_factory.mktemp("gen") / "hf", seed=4)


@pytest.fixture(scope="module")
def backend(hf_dir):
    return JaxBackend.from_path(hf_dir, chunk=4, max_len=96)


def test_generation_prompt_renders_qwen3s_template():
    tok = byte_tokenizer()
    head = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nสวัสดี<|im_end|>\n<|im_start|>assistant\n"
    off = encode_generation_prompt(tok, list(CHAT), enable_thinking=False)
    on = encode_generation_prompt(tok, list(CHAT), enable_thinking=True)
    assert tok.decode(off) == head + "<think>\n\n</think>\n\n"  # Qwen3's add_generation_prompt, enable_thinking=False
    assert tok.decode(on) == head
    with pytest.raises(ChatFormatError, match="last message is an assistant turn"):
        encode_generation_prompt(tok, [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])


def test_saved_chat_template_takes_qwen3s_enable_thinking_switch(hf_dir):
    from transformers import AutoTokenizer

    hf_tok = AutoTokenizer.from_pretrained(hf_dir)
    ours = byte_tokenizer()
    for thinking in (False, True):
        ids = hf_tok.apply_chat_template(list(CHAT), add_generation_prompt=True, enable_thinking=thinking, tokenize=True)
        ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        assert list(ids) == encode_generation_prompt(ours, list(CHAT), enable_thinking=thinking)


def test_backend_answers_chat_and_text_requests(backend):
    assert isinstance(backend, Backend)
    reqs = [
        GenerationRequest(messages=CHAT, sampling=SamplingParams(max_new_tokens=9, logprobs=True)),
        GenerationRequest(prompt="abc", sampling=SamplingParams(max_new_tokens=5, temperature=0.8, top_p=0.9, seed=7)),
    ]
    chat, text = backend.generate(reqs)
    prompt = backend.prompt_ids(reqs[0])
    assert chat.prompt_tokens == len(prompt) and text.prompt_tokens == 3
    assert chat.finish_reason in ("stop", "length") and chat.completion_tokens <= 9
    assert len(chat.token_logprobs) == chat.completion_tokens == len(chat.tokens)
    assert "".join(chat.tokens) == chat.text or "\ufffd" in "".join(chat.tokens)  # byte pieces of a multibyte char
    assert text.token_logprobs is None
    # the same greedy request, through the sampler directly: the backend adds nothing of its own
    [direct] = backend.sampler.generate([prompt], [reqs[0].sampling])
    assert backend.tokenizer.decode(direct.tokens) == chat.text


def test_stop_strings_cut_the_text_and_finish_with_stop(backend):
    free = backend.generate([GenerationRequest(prompt="hello", sampling=SamplingParams(max_new_tokens=12))])[0]
    assert len(free.text) >= 4, "the fixture model should produce some text"
    stop = free.text[2:4]
    cut = backend.generate([GenerationRequest(prompt="hello", sampling=SamplingParams(max_new_tokens=12, stop=(stop,)))])[0]
    assert cut.finish_reason == "stop"
    assert cut.text == free.text[: free.text.find(stop)]


def test_bad_requests_come_back_as_errors_and_truncation_keeps_the_end(hf_dir, backend):
    long = GenerationRequest(prompt="x" * 200, sampling=SamplingParams(max_new_tokens=8))
    bad_chat = GenerationRequest(messages=({"role": "robot", "content": "hi"},))
    ok = GenerationRequest(prompt="hi", sampling=SamplingParams(max_new_tokens=2))
    g_long, g_bad, g_ok = backend.generate([long, bad_chat, ok])
    assert g_long.finish_reason == "error" and "200 tokens" in g_long.error and "96" in g_long.error
    assert g_bad.finish_reason == "error" and "robot" in g_bad.error
    assert g_ok.finish_reason in ("stop", "length")
    trunc = JaxBackend.from_path(hf_dir, chunk=4, max_len=96, truncate=True)
    [g] = trunc.generate([long])
    assert g.prompt_tokens == 96 - 8 and g.finish_reason in ("stop", "length")


def test_unknown_model_path_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such model folder"):
        JaxBackend.from_path(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a model"):
        JaxBackend.from_path(tmp_path / "empty")


def test_a_tokenizer_larger_than_the_model_vocabulary_is_an_error_per_request(tmp_path, hf_dir):
    small = tiny_hf_folder(tmp_path / "small", vocab_size=97)
    backend = JaxBackend.from_path(small, tokenizer=hf_dir, chunk=4, max_len=64)
    [g] = backend.generate([GenerationRequest(prompt="สวัสดี", sampling=SamplingParams(max_new_tokens=2))])
    assert g.finish_reason == "error" and "outside the model's vocabulary of 97" in g.error


def test_text_is_reported_as_it_grows_and_never_taken_back(backend):
    """on_text after each decode chunk (4 tokens here): every report is a prefix of the row's final
    text, and the reports grow."""
    reqs = [GenerationRequest(prompt="Once upon a time", sampling=SamplingParams(max_new_tokens=24, temperature=1.0,
                                                                                 seed=s)) for s in range(3)]
    heard: list[tuple[int, str]] = []
    gens = backend.generate(reqs, on_text=lambda i, text: heard.append((i, text)))
    assert gens == backend.generate(reqs)  # reporting changes nothing
    for i, g in enumerate(gens):
        texts = [t for j, t in heard if j == i]
        assert len(texts) >= 3 and all(g.text.startswith(t) for t in texts), (g.text, texts)
        assert all(len(a) <= len(b) for a, b in zip(texts, texts[1:]))


def test_settled_text_holds_back_half_characters_and_a_possible_stop_string():
    from siamgpt_jax.generate.jax_backend import settled_text

    tok = byte_tokenizer()
    thai = "สวัสดีครับ ยินดีต้อนรับ"
    ids = tok.encode(thai)
    assert len(ids) == len(thai.encode())  # one token per byte: a Thai character is three tokens
    for k in range(len(ids) + 1):  # every cut, mid-character included, settles on a prefix of the text
        settled = settled_text(tok.decode(ids[:k]), ())
        assert thai.startswith(settled) and "\ufffd" not in settled
    # the last len(stop) - 1 characters may be the start of a stop string: held back
    assert settled_text("hello wor", ["world", "!"]) == "hello"  # "world" can only begin after it
    assert settled_text("hello", []) == "hello"
