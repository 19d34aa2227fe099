"""The OpenAI-compatible HTTP server behind `siamgpt-jax serve` (FastAPI on uvicorn).

Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health, GET /stats
(the batcher's counters: batches, batch sizes, tokens). With an API key, every /v1 route needs
`Authorization: Bearer KEY`; /health and /stats stay open for probes.

Every refusal is a 4xx in OpenAI's error shape ({"error": {"message", "type", "param", "code"}}):
bad JSON, wrong types, unknown roles, empty messages, max_tokens < 1, unsupported fields, a model
name this server does not serve, and, when the backend can render prompts up front (`prompt_ids`),
an unrenderable conversation or a prompt longer than its cache; a body over 32 MiB is a 413 and a
POST without Content-Length a 411, before the body is read. A backend exception answers its batch's requests with 500 and the server
goes on. Serving an endpoint (`--model URL`), its refusals keep their meaning: a 400, 404, 413 or
422 of the upstream is the request's fault and is passed on; its 429 after the retries is a 429; an
upstream that rejects this server's own key, or still fails after the retries, is a 502.

`stream: true` is answered with server-sent events in OpenAI's chunk format. With a backend that
tells its text as it goes (the JAX sampler, after each decode chunk) each choice's text comes as it
is generated, never taken back; a failure after the stream began ends it with an `error` event.
With logprobs, or a backend that cannot tell its text early (an endpoint), each choice's text
comes in one chunk once its batch is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from siamgpt_jax.generate.api_schema import (
    ChatCompletionRequest,
    CompletionRequest,
    RequestError,
    chat_response,
    completion_response,
    error_body,
    stream_chunks,
)
from siamgpt_jax.generate.backend import Backend, GenerationRequest
from siamgpt_jax.generate.batcher import Batcher, BatchFailed

log = logging.getLogger(__name__)


def _error(status: int, message: str, **kw) -> JSONResponse:
    return JSONResponse(error_body(message, **kw), status_code=status)


def gateway_status(refused: int | None) -> tuple[int, str]:
    """(status, OpenAI error type) to answer with when a generation failed with `refused`, the
    status that refused it upstream (None: not a refusal)."""
    if refused in (400, 404, 413, 422):
        return refused, "not_found_error" if refused == 404 else "invalid_request_error"
    if refused == 429:
        return 429, "rate_limit_error"
    if refused is None:
        return 500, "server_error"
    return 502, "server_error"  # the upstream rejected our key, or failed after the retries


def generation_failure(gens) -> tuple[int, str, str] | None:
    """(status, OpenAI error type, message) for the first failed generation, None if none failed."""
    failed = next((g for g in gens if g.finish_reason == "error"), None)
    if failed is None:
        return None
    status, kind = gateway_status(failed.error_status)
    return status, kind, f"generation failed: {failed.error or 'unknown error'}"


def _validation_error(exc: RequestValidationError) -> tuple[str, str | None]:
    """The first pydantic error as one line, 'messages.0.role: Input should be ...', and its field."""
    errors = exc.errors()
    if not errors:
        return "invalid request", None
    e = errors[0]
    if e.get("type") == "json_invalid":
        return f"request body is not valid JSON: {e.get('ctx', {}).get('error', e.get('msg'))}", None
    loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or None
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{loc or 'body'}: {e.get('msg')}{more}", loc


MAX_BODY_BYTES = 32 * 2**20  # far above any prompt a cache holds; keeps one request from exhausting memory


def create_app(backend: Backend, *, model_name: str | None = None, api_key: str | None = None,
               max_batch: int = 16, window_s: float = 0.01, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The app; its batching worker starts with the server and stops (closing the backend) with it."""
    model_name = model_name or backend.model_name
    created = int(time.time())
    # Optional backend hooks (JaxBackend has them): render a request's prompt, raising ValueError for
    # one it would refuse (unrenderable chat, a prompt too long for its cache), so that request gets
    # a 400 before it joins a batch; and the cache length, which bounds an unset max_tokens.
    prompt_ids: Callable[[GenerationRequest], list[int]] | None = getattr(backend, "prompt_ids", None)
    max_len: int | None = getattr(backend, "max_len", None)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.batcher = Batcher(backend, max_batch=max_batch, window_s=window_s)
        try:
            yield
        finally:
            app.state.batcher.close()
            backend.close()

    app = FastAPI(title="siamgpt-jax", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.middleware("http")
    async def check_key_and_size(request: Request, call_next):
        # A middleware, not a dependency, so that both are checked before the body is read.
        if api_key is not None and request.url.path.startswith("/v1"):
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                return _error(401, "missing or wrong API key (expected 'Authorization: Bearer KEY')",
                              kind="authentication_error", code="invalid_api_key")
        length = request.headers.get("content-length")
        if length is None and request.method == "POST":  # a chunked body could grow without bound
            return _error(411, "a POST needs a Content-Length header")
        if length is not None and (not length.isdigit() or int(length) > max_body_bytes):
            return _error(413, f"request body of {length} bytes is over the server's limit of {max_body_bytes}")
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError):
        message, param = _validation_error(exc)
        return _error(400, message, param=param)

    @app.exception_handler(RequestError)
    async def on_request_error(request: Request, exc: RequestError):
        return _error(exc.status, str(exc), kind=exc.kind, param=exc.param, code=exc.code)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return _error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", kind=kind)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return _error(500, f"internal error: {type(exc).__name__}: {exc}", kind="server_error")

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": model_name}

    @app.get("/stats")
    async def stats(request: Request):
        return request.app.state.batcher.snapshot()

    @app.get("/v1/models")
    async def models():
        return {"object": "list",
                "data": [{"id": model_name, "object": "model", "created": created, "owned_by": "siamgpt-jax"}]}

    async def complete(request: Request, body, to_requests, respond):
        if body.model is not None and body.model != model_name:
            raise RequestError(f"model {body.model!r} is not served here; this server serves {model_name!r}",
                               status=404, param="model", code="model_not_found", kind="not_found_error")
        try:
            requests = to_requests()
        except RequestError:
            raise
        except ValueError as e:  # SamplingParams' or GenerationRequest's own checks
            raise RequestError(str(e)) from None
        if len(requests) > max_batch:
            raise RequestError(f"this request asks for {len(requests)} sequences (prompts x n); the server's "
                               f"max batch is {max_batch}", param="n")
        if prompt_ids is not None:
            requests = _fit_to_cache(requests, body, prompt_ids, max_len)
        if body.stream and getattr(backend, "streams_text", False) and not any(r.sampling.logprobs for r in requests):
            events = _text_events(request.app.state.batcher, requests, body, respond, model_name)
            return StreamingResponse(events, media_type="text/event-stream")
        try:
            gens = await request.app.state.batcher.submit(requests)
        except BatchFailed as e:
            return _error(500, str(e), kind="server_error")
        failure = generation_failure(gens)
        if failure is not None:
            status, kind, message = failure
            return _error(status, message, kind=kind)
        out = respond(gens, model_name, body.n)
        if not body.stream:
            return out
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        events = [f"data: {json.dumps(c, ensure_ascii=False)}\n\n" for c in stream_chunks(out, include_usage)]
        return StreamingResponse(iter(events + ["data: [DONE]\n\n"]), media_type="text/event-stream")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request, body: ChatCompletionRequest):
        return await complete(request, body, body.to_requests, chat_response)

    @app.post("/v1/completions")
    async def completions(request: Request, body: CompletionRequest):
        return await complete(request, body, body.to_requests, completion_response)

    return app


def _event(obj: dict | str) -> str:
    return f"data: {obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)}\n\n"


async def _text_events(batcher: Batcher, requests: list[GenerationRequest], body, respond, model_name: str):
    """Server-sent events of a streamed request: each choice's text as the backend reports it, then
    any rest and its finish_reason, then usage (when asked) and [DONE]."""
    loop = asyncio.get_running_loop()
    updates: asyncio.Queue = asyncio.Queue()
    job = asyncio.ensure_future(batcher.submit(
        requests, lambda i, text: loop.call_soon_threadsafe(updates.put_nowait, (i, text))))
    chat = respond is chat_response
    base = {"id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": int(time.time()), "model": model_name}
    sent = [""] * len(requests)
    started = [False] * len(requests)

    def piece(i: int, text: str, finish: str | None = None) -> str:
        if chat:
            delta = {"content": text} if text or finish is None else {}
            if not started[i]:
                delta, started[i] = {"role": "assistant", **delta}, True
            choice = {"index": i, "delta": delta, "logprobs": None, "finish_reason": finish}
        else:
            choice = {"index": i, "text": text, "logprobs": None, "finish_reason": finish}
        return _event({**base, "choices": [choice]})

    def grown(i: int, text: str) -> str | None:
        if len(text) > len(sent[i]) and text.startswith(sent[i]):
            delta, sent[i] = text[len(sent[i]):], text
            return piece(i, delta)
        return None

    try:
        while True:
            getter = asyncio.ensure_future(updates.get())
            done, _ = await asyncio.wait({getter, job}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            if (out := grown(*getter.result())) is not None:
                yield out
        while not updates.empty():  # told before the job finished, delivered after
            if (out := grown(*updates.get_nowait())) is not None:
                yield out
        try:
            gens = job.result()
        except BatchFailed as e:
            yield _event(error_body(str(e), kind="server_error"))
            yield _event("[DONE]")
            return
        failure = generation_failure(gens)
        if failure is not None:
            _, kind, message = failure
            yield _event(error_body(message, kind=kind))
            yield _event("[DONE]")
            return
        whole = respond(gens, model_name, body.n)
        for i, g in enumerate(gens):
            if (out := grown(i, g.text)) is not None:
                yield out
            yield piece(i, "", finish=whole["choices"][i]["finish_reason"])
        if (body.stream_options or {}).get("include_usage"):
            yield _event({**base, "choices": [], "usage": whole["usage"]})
        yield _event("[DONE]")
    finally:
        if not job.done():  # the client went away: a job still queued is skipped
            job.cancel()


def _fit_to_cache(requests: list[GenerationRequest], body, prompt_ids, max_len: int | None) -> list[GenerationRequest]:
    """Check each prompt with the backend (RequestError if it refuses one). Without max_tokens, a
    request may use what the cache leaves after its prompt, up to SamplingParams' default, as
    OpenAI's API fills the context when max_tokens is unset."""
    param = "messages" if requests[0].messages is not None else "prompt"
    out = []
    for first in range(0, len(requests), body.n):  # n copies differ only in their seed
        group = requests[first:first + body.n]
        r = group[0]
        try:
            if body.requested_max_tokens() is not None or max_len is None:
                prompt_ids(r)
            else:
                ids = prompt_ids(dataclasses.replace(r, sampling=dataclasses.replace(r.sampling, max_new_tokens=1)))
                room = min(r.sampling.max_new_tokens, max_len - len(ids))
                group = [dataclasses.replace(g, sampling=dataclasses.replace(g.sampling, max_new_tokens=room))
                         for g in group]
        except ValueError as e:
            raise RequestError(str(e), param=param) from None
        out += group
    return out


def serve(backend: Backend, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info", **app_kw) -> None:
    """Run the app with uvicorn until interrupted (blocks)."""
    import uvicorn

    uvicorn.run(create_app(backend, **app_kw), host=host, port=port, log_level=log_level)
