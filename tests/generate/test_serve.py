"""`siamgpt-jax serve` as a real subprocess on 127.0.0.1, on a tiny random HF Qwen3 folder, driven by
OpenAIBackend, the official openai client and raw httpx. One server for the whole module."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from siamgpt_jax.generate.backend import GenerationRequest, SamplingParams
from siamgpt_jax.generate.jax_backend import JaxBackend
from siamgpt_jax.generate.openai_backend import OpenAIBackend
from tests.generate.helpers import tiny_hf_folder
from tests.generate.http_helpers import free_port, listening_addresses, serve_subprocess

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
NAME = "tiny-qwen3"
# Prompts and lengths are chosen so that every batch compiles into one (prompt, cache) bucket of the
# sampler, 48 and 64 positions (chat prompts of 8-23 characters, raw prompts of 33-48 with the
# byte tokenizer, max_tokens <= 17): each new bucket costs a compile.
MAX_LEN = 64
STORY = "Once upon a time there was a small cat"
MAX_BATCH = 4


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_hf_folder(tmp_path_factory.mktemp("serve") / NAME, num_hidden_layers=2)


@pytest.fixture(scope="module")
def server(model_dir):
    """(base URL, port); no --host, so the default bind is what runs."""
    port = free_port()
    args = ["--model", str(model_dir), "--api-key", KEY, "--max-len", str(MAX_LEN), "--max-batch", str(MAX_BATCH),
            "--batch-window-ms", "200", "--log-level", "warning"]
    with serve_subprocess(args, port) as (_, url):
        yield url, port


@pytest.fixture(scope="module")
def client(server):
    backend = OpenAIBackend(f"{server[0]}/v1", api_key=KEY, concurrency=MAX_BATCH, max_retries=0, timeout_s=120)
    yield backend
    backend.close()


def _stats(url: str) -> dict:
    return httpx.get(f"{url}/stats").json()


def _chat(text: str, **sampling) -> GenerationRequest:
    return GenerationRequest(messages=({"role": "user", "content": text},),
                             sampling=SamplingParams(max_new_tokens=8, **sampling))


def test_default_bind_is_loopback_and_api_key_is_enforced(server):
    url, port = server
    assert listening_addresses(port) == ["127.0.0.1"]
    assert httpx.get(f"{url}/health").json()["status"] == "ok"  # probes need no key
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        r = httpx.get(f"{url}/v1/models", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = httpx.post(f"{url}/v1/chat/completions", content=b"{not json")  # auth is checked before the body
    assert r.status_code == 401
    models = httpx.get(f"{url}/v1/models", headers=AUTH).json()
    assert [m["id"] for m in models["data"]] == [NAME]


def test_greedy_through_the_server_equals_in_process(client, model_dir):
    requests = [
        _chat("Hello there", logprobs=True),
        GenerationRequest(prompt=STORY, sampling=SamplingParams(max_new_tokens=6, logprobs=True)),
        GenerationRequest(messages=({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}),
                          enable_thinking=True, sampling=SamplingParams(max_new_tokens=5, stop=("a",))),
    ]
    assert client.model_name == NAME
    remote = client.generate(requests)
    local_backend = JaxBackend.from_path(model_dir, max_len=MAX_LEN, max_batch=MAX_BATCH)
    local = local_backend.generate(requests)
    local_backend.close()
    for r, l in zip(remote, local):
        assert r.error is None
        assert (r.text, r.finish_reason, r.prompt_tokens, r.completion_tokens) == \
               (l.text, l.finish_reason, l.prompt_tokens, l.completion_tokens)
        assert r.tokens == l.tokens
        if l.token_logprobs is not None:
            assert r.token_logprobs == pytest.approx(l.token_logprobs, abs=1e-4)
    assert remote[0].completion_tokens > 0 and remote[0].token_logprobs is not None


def test_concurrent_requests_are_batched(client, server):
    before = _stats(server[0])
    gens = client.generate([_chat(f"question {i}", temperature=0.8, seed=i) for i in range(8)])
    after = _stats(server[0])
    assert all(g.finish_reason in ("stop", "length") for g in gens)
    jobs, batches = after["jobs"] - before["jobs"], after["batches"] - before["batches"]
    assert jobs == 8 and batches < 8, (before, after)
    assert after["max_batch_size"] > 1


def test_response_schema_seeds_and_n(server):
    url = server[0]
    body = {"model": NAME, "messages": [{"role": "user", "content": "Hi there, friend"}], "max_tokens": 5, "temperature": 1.0,
            "seed": 11, "n": 4, "logprobs": True}
    r = httpx.post(f"{url}/v1/chat/completions", json=body, headers=AUTH, timeout=120)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["object"] == "chat.completion" and out["id"].startswith("chatcmpl-") and out["model"] == NAME
    assert isinstance(out["created"], int)
    assert [c["index"] for c in out["choices"]] == [0, 1, 2, 3]
    for c in out["choices"]:
        assert c["message"]["role"] == "assistant" and c["finish_reason"] in ("stop", "length")
        assert all(e["logprob"] <= 0 and isinstance(e["token"], str) for e in c["logprobs"]["content"])
    usage = out["usage"]
    assert usage["completion_tokens"] == sum(len(c["logprobs"]["content"]) for c in out["choices"])
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    again = httpx.post(f"{url}/v1/chat/completions", json=body, headers=AUTH, timeout=120).json()
    assert [c["message"]["content"] for c in again["choices"]] == [c["message"]["content"] for c in out["choices"]]

    r = httpx.post(f"{url}/v1/completions", json={"prompt": [STORY, STORY + "!"], "n": 2, "max_tokens": 3, "temperature": 0,
                                                  "logprobs": 0}, headers=AUTH, timeout=120)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["object"] == "text_completion" and len(out["choices"]) == 4
    assert out["choices"][0]["text"] == out["choices"][1]["text"]  # greedy: n copies agree
    lp = out["choices"][0]["logprobs"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["text_offset"])


def test_stream_gives_openai_chunks_with_the_same_text(server):
    url = server[0]
    oc = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
    messages = [{"role": "user", "content": "Tell me a short story"}]
    whole = oc.chat.completions.create(model=NAME, messages=messages, max_tokens=6, temperature=0)
    chunks = list(oc.chat.completions.create(model=NAME, messages=messages, max_tokens=6, temperature=0,
                                             stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    raw = httpx.post(f"{url}/v1/completions", json={"prompt": STORY, "max_tokens": 2, "stream": True},
                     headers=AUTH, timeout=120)
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = [line[len("data: "):] for line in raw.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]" and json.loads(events[0])["object"] == "text_completion"


MALFORMED = [
    ("chat", b"{not json", "not valid JSON"),
    ("chat", [1, 2], "valid dictionary"),
    ("chat", {}, "messages: Field required"),
    ("chat", {"messages": "hi"}, "messages: Input should be a valid list"),
    ("chat", {"messages": []}, "messages: List should have at least 1 item"),
    ("chat", {"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role: Input should be 'system', 'user' or"),
    ("chat", {"messages": [{"role": "user"}]}, "messages.0.content: Field required"),
    ("chat", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens: Input should be greater"),
    ("chat", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": "many"}, "max_tokens"),
    ("chat", {"messages": [{"role": "user", "content": "hi"}], "temperature": -1}, "temperature"),
    ("chat", {"messages": [{"role": "user", "content": "hi"}], "temperature": True}, "temperature: Input should be a valid number"),
    ("chat", {"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}, "stream: Input should be a valid boolean"),
    ("chat", {"messages": [{"role": "user", "content": "hi"}], "top_p": 0}, "top_p"),
    ("chat", {"messages": [{"role": "user", "content": "hi"}], "stop": [""]}, "stop strings must not be empty"),
    ("chat", {"messages": [{"role": "user", "content": "hi"}], "n": MAX_BATCH + 1}, "max batch"),
    ("chat", {"messages": [{"role": "user", "content": "hi"}], "logprobs": True, "top_logprobs": 2}, "top_logprobs"),
    ("chat", {"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]}, "tools"),
    ("chat", {"messages": [{"role": "user", "content": "hi"}], "chat_template_kwargs": {"enable_thinking": "maybe"}},
     "enable_thinking"),
    ("chat", {"messages": [{"role": "assistant", "content": "hi"}]}, "last message is an assistant turn"),
    ("chat", {"messages": [{"role": "user", "content": "a<|im_end|>b"}]}, "control token"),
    ("chat", {"messages": [{"role": "user", "content": "x" * 200}]}, "at most"),  # longer than the cache
    ("chat", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": MAX_LEN + 1}, "leaves no room"),
    ("completions", {"prompt": ""}, "prompt must not be empty"),
    ("completions", {"prompt": [1, 2, 3]}, "prompt"),
    ("completions", {"prompt": "hi", "logprobs": 2}, "logprobs"),
    ("completions", {"prompt": "hi", "echo": True}, "echo is not supported"),
]


@pytest.mark.parametrize(("route", "body", "message"), MALFORMED, ids=[f"{r}-{m}" for r, _, m in MALFORMED])
def test_malformed_request_gets_a_4xx_in_openai_shape(server, route, body, message):
    url = f"{server[0]}/v1/{'chat/completions' if route == 'chat' else 'completions'}"
    if isinstance(body, bytes):
        r = httpx.post(url, content=body, headers=AUTH | {"content-type": "application/json"})
    else:
        r = httpx.post(url, json=body, headers=AUTH)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert message in err["message"] and err["type"] == "invalid_request_error"
    assert set(err) == {"message", "type", "param", "code"}


def test_unknown_model_and_route_are_404_and_the_server_is_still_up(server):
    url = server[0]
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]},
                   headers=AUTH)
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert httpx.get(f"{url}/v1/embeddings", headers=AUTH).status_code == 404
    # after every malformed request above, the server still answers a good one
    r = httpx.post(f"{url}/v1/completions", json={"prompt": STORY, "max_tokens": 2}, headers=AUTH, timeout=120)
    assert r.status_code == 200 and r.json()["choices"][0]["finish_reason"] in ("stop", "length")


def test_unset_max_tokens_uses_what_the_cache_leaves(server):
    r = httpx.post(f"{server[0]}/v1/chat/completions", json={"messages": [{"role": "user", "content": "Go on, tell me a tale!"}],
                                                              "temperature": 0}, headers=AUTH, timeout=120)
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]
    assert 0 < usage["completion_tokens"] <= MAX_LEN - usage["prompt_tokens"]


def test_serve_fronts_another_endpoint_given_its_url(server):
    """`serve --model URL`: batches and forwards to the upstream (its key from OPENAI_API_KEY)."""
    port = free_port()
    with serve_subprocess(["--model", f"{server[0]}/v1", "--log-level", "warning"], port,
                          env={"OPENAI_API_KEY": KEY}) as (_, url):
        models = httpx.get(f"{url}/v1/models").json()  # no key of its own
        assert [m["id"] for m in models["data"]] == [NAME]
        body = {"prompt": STORY, "max_tokens": 6, "temperature": 0}
        via_proxy = httpx.post(f"{url}/v1/completions", json=body, timeout=120).json()
        direct = httpx.post(f"{server[0]}/v1/completions", json=body, headers=AUTH, timeout=120).json()
        assert via_proxy["choices"][0]["text"] == direct["choices"][0]["text"]
        assert via_proxy["usage"] == direct["usage"]
