"""OpenAIBackend against real HTTP servers: retries with backoff on 429/5xx, no retry on 4xx,
timeouts, an endpoint that is down, and open_backend's URL handling. The flaky endpoint is a small
FastAPI app of this test's own, served by uvicorn on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from siamgpt_jax.errors import UserError
from siamgpt_jax.generate.backend import GenerationRequest, SamplingParams
from siamgpt_jax.generate.open_backend import open_backend, split_url
from siamgpt_jax.generate.openai_backend import OpenAIBackend
from tests.generate.http_helpers import closed_port, free_port, uvicorn_thread

FAST_RETRIES = dict(max_retries=3, retry_base_s=0.001, retry_max_s=0.01)


def flaky_app(failures: dict[str, list[int]]):
    """/v1/completions answers the statuses queued for the prompt in turn, then succeeds;
    /v1/chat/completions sleeps 1 s (timeout tests); every body is recorded."""
    app = FastAPI()
    app.state.calls = []

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": "teacher", "object": "model", "created": 0, "owned_by": "t"}]}

    app.state.in_flight = app.state.most_in_flight = 0

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await request.json()
        app.state.calls.append(body)
        if body["prompt"].startswith("slow"):
            app.state.in_flight += 1
            app.state.most_in_flight = max(app.state.most_in_flight, app.state.in_flight)
            await asyncio.sleep(0.5)
            app.state.in_flight -= 1
        queued = failures.get(body["prompt"], [])
        if queued:
            status = queued.pop(0)
            return JSONResponse({"error": {"message": f"induced {status}", "type": "x", "param": None, "code": None}},
                                status_code=status, headers={"retry-after": "0"} if status == 429 else {})
        return {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "text": f"echo:{body['prompt']}", "finish_reason": "length", "logprobs": None}],
                "usage": {"prompt_tokens": 3, "completion_tokens": body["max_tokens"],
                          "total_tokens": 3 + body["max_tokens"]}}

    @app.post("/v1/chat/completions")
    async def slow_chat(request: Request):
        app.state.calls.append(await request.json())
        await asyncio.sleep(1.0)
        return JSONResponse({"error": {"message": "too late"}}, status_code=500)

    return app


def _prompt(text: str, **sampling) -> GenerationRequest:
    return GenerationRequest(prompt=text, sampling=SamplingParams(max_new_tokens=4, **sampling))


def test_retries_429_and_5xx_then_succeeds_and_the_rest_of_the_batch_goes_on():
    failures = {"a": [429, 503, 500], "b": [502], "bad": [400], "hopeless": [503] * 10}
    app = flaky_app(failures)
    with uvicorn_thread(app, free_port()) as url:
        backend = OpenAIBackend(f"{url}/v1", "teacher", concurrency=4, **FAST_RETRIES)
        gens = backend.generate([_prompt("a", top_k=5, seed=7), _prompt("b"), _prompt("bad"), _prompt("hopeless"),
                                 _prompt("c")])
        backend.close()
    assert [g.text for g in gens[:2]] == ["echo:a", "echo:b"]
    assert gens[0].finish_reason == "length" and gens[0].prompt_tokens == 3 and gens[0].completion_tokens == 4
    prompts = [c["prompt"] for c in app.state.calls]
    assert prompts.count("a") == 4 and prompts.count("b") == 2  # 3 and 1 failures, then success
    # a 400 is the request's fault: not retried, one clear line
    assert prompts.count("bad") == 1
    assert gens[2].finish_reason == "error" and gens[2].error == f"{url}/v1: HTTP 400: induced 400"
    # still failing after max_retries: an error result, the batch goes on
    assert prompts.count("hopeless") == 1 + FAST_RETRIES["max_retries"]
    assert gens[3].finish_reason == "error" and "HTTP 503: induced 503" in gens[3].error
    assert gens[4].text == "echo:c"
    sent = next(c for c in app.state.calls if c["prompt"] == "a")
    assert sent["top_k"] == 5 and sent["seed"] == 7 and sent["temperature"] == 0.0 and sent["max_tokens"] == 4


def test_requests_run_concurrently_up_to_the_limit():
    app = flaky_app({})
    with uvicorn_thread(app, free_port()) as url:
        with OpenAIBackend(f"{url}/v1", "teacher", concurrency=3) as backend:
            gens = backend.generate([_prompt(f"slow {i}") for i in range(7)])
    assert [g.text for g in gens] == [f"echo:slow {i}" for i in range(7)]  # in request order
    assert app.state.most_in_flight == 3


def test_timeout_is_retried_then_reported():
    app = flaky_app({})
    with uvicorn_thread(app, free_port()) as url:
        backend = OpenAIBackend(f"{url}/v1", "teacher", timeout_s=0.2, max_retries=1, retry_base_s=0.001)
        t0 = time.monotonic()
        [gen] = backend.generate([GenerationRequest(messages=({"role": "user", "content": "hi"},))])
        backend.close()
    assert gen.finish_reason == "error" and gen.error.endswith("timed out")
    assert len(app.state.calls) == 2 and time.monotonic() - t0 < 5
    assert app.state.calls[0]["chat_template_kwargs"] == {"enable_thinking": False}


def test_model_is_discovered_and_checked():
    with uvicorn_thread(flaky_app({}), free_port()) as url:
        backend = open_backend(url)  # no /v1, no model: the endpoint's only model
        assert backend.base_url == f"{url}/v1" and backend.model_name == "teacher"
        backend.check()
        backend.close()
        wrong = OpenAIBackend(f"{url}/v1", "student", **FAST_RETRIES)
        with pytest.raises(UserError, match="does not serve model 'student'"):
            wrong.check()
        wrong.close()


def test_endpoint_down_gives_a_clear_error_after_the_retries():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    backend = OpenAIBackend(url, "m", **FAST_RETRIES)
    [gen] = backend.generate([_prompt("x")])
    assert gen.finish_reason == "error"
    assert gen.error.startswith(f"{url}: connection error") and "refused" in gen.error.lower()
    with pytest.raises(UserError, match=rf"cannot list models at {url} after 4 tries: connection error"):
        backend.check()
    backend.close()
    with pytest.raises(UserError, match="cannot list models"):
        open_backend(url, **FAST_RETRIES)  # no model named: found out at once


def test_split_url():
    assert split_url("http://h:8000") == ("http://h:8000/v1", None)
    assert split_url("https://h/v1/#Qwen3-32B") == ("https://h/v1", "Qwen3-32B")
    assert split_url("http://h:1/api/v1#m") == ("http://h:1/api/v1", "m")


def test_serving_an_endpoint_passes_its_refusals_on_with_their_meaning():
    """`serve --model URL`: an upstream 400 stays a 400 (the request's fault), a 429 after the
    retries a 429, and an upstream that keeps failing or rejects the server's own key a 502."""
    import httpx

    from siamgpt_jax.generate.server import create_app

    failures = {"bad": [400], "busy": [429] * 10, "down": [503] * 10, "key": [401]}
    upstream = flaky_app(failures)
    with uvicorn_thread(upstream, free_port()) as up_url:
        backend = OpenAIBackend(f"{up_url}/v1", "teacher", **FAST_RETRIES)
        with uvicorn_thread(create_app(backend, model_name="proxy"), free_port()) as url:
            def ask(prompt):
                return httpx.post(f"{url}/v1/completions", json={"prompt": prompt, "max_tokens": 2}, timeout=30)

            ok = ask("fine")
            assert ok.status_code == 200 and ok.json()["choices"][0]["text"] == "echo:fine"
            for prompt, status, kind in (("bad", 400, "invalid_request_error"), ("busy", 429, "rate_limit_error"),
                                         ("down", 502, "server_error"), ("key", 502, "server_error")):
                r = ask(prompt)
                assert r.status_code == status, (prompt, r.text)
                err = r.json()["error"]
                assert err["type"] == kind and "HTTP" in err["message"] and "induced" in err["message"], err


def test_serve_streams_text_as_the_sampler_makes_it(tmp_path):
    """With the JAX sampler behind it (4 tokens per decode chunk here), a streamed request gets its
    text in several pieces as it is generated, and they add up to what the same request gets whole."""
    import httpx

    from siamgpt_jax.generate.jax_backend import JaxBackend
    from siamgpt_jax.generate.server import create_app
    from tests.generate.helpers import tiny_hf_folder

    backend = JaxBackend.from_path(tiny_hf_folder(tmp_path / "m", num_hidden_layers=2), chunk=4, max_len=96)
    with uvicorn_thread(create_app(backend, model_name="tiny"), free_port()) as url:
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 24, "temperature": 1.0, "seed": 3}
        whole = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120).json()
        raw = httpx.post(f"{url}/v1/chat/completions", timeout=120,
                         json=body | {"stream": True, "stream_options": {"include_usage": True}})
    assert raw.status_code == 200 and raw.headers["content-type"].startswith("text/event-stream")
    events = [line[len("data: "):] for line in raw.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    pieces = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    pieces = [p for p in pieces if p]
    assert len(pieces) >= 3, pieces  # not one piece at the end
    assert "".join(pieces) == whole["choices"][0]["message"]["content"]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finish == [whole["choices"][0]["finish_reason"]]
    assert chunks[-1]["usage"] == whole["usage"] and chunks[-1]["object"] == "chat.completion.chunk"


def test_thinking_split_off_by_the_server_comes_back_as_a_think_block():
    """vLLM's reasoning parser returns Qwen3's thinking in `reasoning_content` (newer servers:
    `reasoning`); the backend puts it back in front, as the JAX sampler's text has it."""
    app = FastAPI()

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": "teacher", "object": "model", "created": 0, "owned_by": "t"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        which = body["messages"][0]["content"]
        message = {"role": "assistant", "content": "คำตอบ"}
        if which != "plain":
            message["reasoning_content" if which == "old" else "reasoning"] = "Let me think.\n"
        return {"id": "c", "object": "chat.completion", "created": 0, "model": "teacher",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    with uvicorn_thread(app, free_port()) as url:
        with OpenAIBackend(f"{url}/v1", "teacher", **FAST_RETRIES) as backend:
            gens = backend.generate([GenerationRequest(messages=({"role": "user", "content": w},), enable_thinking=True)
                                     for w in ("old", "new", "plain")])
    assert [g.text for g in gens] == ["<think>\nLet me think.\n</think>\n\nคำตอบ"] * 2 + ["คำตอบ"]
    from siamgpt_jax.eval.answers import answer_text

    assert answer_text(gens[0].text) == "คำตอบ"  # eval scores the answer alone, as for the JAX backend
