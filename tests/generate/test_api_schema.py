"""OpenAI request bodies -> GenerationRequests: which field becomes which sampling setting."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from siamgpt_jax.generate.api_schema import (
    ChatCompletionRequest,
    CompletionRequest,
    RequestError,
    chat_response,
    stream_chunks,
)
from siamgpt_jax.generate.backend import Generation, SamplingParams

USER = [{"role": "user", "content": "hi"}]


def test_chat_fields_map_onto_sampling_params():
    body = ChatCompletionRequest.model_validate({
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "a"},
                                                                                      {"type": "text", "text": "b"}]}],
        "max_tokens": 9, "max_completion_tokens": 7, "temperature": 0.5, "top_p": 0.9, "top_k": -1, "seed": 5,
        "stop": "END", "logprobs": True, "n": 3, "chat_template_kwargs": {"enable_thinking": True}, "user": "ignored"})
    reqs = body.to_requests()
    assert [r.sampling.seed for r in reqs] == [5, 6, 7]
    assert reqs[0].messages == ({"role": "system", "content": "s"}, {"role": "user", "content": "ab"})
    assert reqs[0].enable_thinking is True
    assert reqs[0].sampling == SamplingParams(max_new_tokens=7, temperature=0.5, top_k=0, top_p=0.9, seed=5,
                                              stop=("END",), logprobs=True)


def test_defaults_follow_openai_and_the_backend():
    [r] = ChatCompletionRequest.model_validate({"messages": USER}).to_requests()
    d = SamplingParams()
    assert r.sampling.temperature == 1.0 and r.sampling.max_new_tokens == d.max_new_tokens and not r.enable_thinking
    seeds = {ChatCompletionRequest.model_validate({"messages": USER}).to_requests()[0].sampling.seed for _ in range(5)}
    assert len(seeds) > 1  # no seed: a random one per request


def test_completion_prompts_are_prompt_major():
    body = CompletionRequest.model_validate({"prompt": ["a", "b"], "n": 2, "seed": 0, "logprobs": 0, "stop": ["x", "y"]})
    reqs = body.to_requests()
    assert [(r.prompt, r.sampling.seed) for r in reqs] == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert reqs[0].sampling.logprobs and reqs[0].sampling.stop == ("x", "y")


@pytest.mark.parametrize("body", [{"prompt": "a", "frequency_penalty": 0.5}, {"prompt": "a", "logit_bias": {"1": 2}},
                                  {"prompt": "a", "best_of": 3}, {"prompt": "a", "suffix": "z"}])
def test_unsupported_fields_are_refused_not_ignored(body):
    with pytest.raises(RequestError):
        CompletionRequest.model_validate(body).to_requests()


def test_types_are_strict():
    for bad in ({"max_tokens": "5"}, {"temperature": True}, {"messages": [{"role": "user", "content": 5}]}):
        with pytest.raises(ValidationError):
            ChatCompletionRequest.model_validate({"messages": USER} | bad)


def test_stream_chunks_carry_text_then_finish_then_usage():
    gen = Generation(text="hello", finish_reason="length", prompt_tokens=2, completion_tokens=3)
    body = chat_response([gen], "m", 1)
    chunks = stream_chunks(body, include_usage=True)
    assert [c["object"] for c in chunks] == ["chat.completion.chunk"] * 3
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "hello"}
    assert chunks[1]["choices"][0]["finish_reason"] == "length" and chunks[2]["usage"]["total_tokens"] == 5
