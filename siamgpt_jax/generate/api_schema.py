"""OpenAI's request and response bodies for `siamgpt-jax serve`, and their mapping onto the Backend types.

Requests are pydantic models, so a wrong type or an out-of-range value is refused before anything
reaches the model. Fields the server accepts but cannot honour (tools, penalties, echo, top
logprobs) are refused with a message rather than silently ignored; fields that change nothing here
(`user`, `stream_options` without streaming, ...) are ignored, as OpenAI-compatible servers do.

`n > 1` is served by sending the request n times with seeds `seed, seed+1, ...` (all n are equal
under greedy decoding, temperature 0). A request without a seed gets a random one, so two calls at
temperature > 0 differ, as they do on OpenAI's API. An unset max_tokens is SamplingParams' default,
which the server lowers to what the model's cache leaves after the prompt when it knows the cache.
The thinking switch is vLLM's `chat_template_kwargs: {"enable_thinking": bool}`; off by default, as
in the Backend interface (Qwen3's own template defaults to on).
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from siamgpt_jax.generate.backend import Generation, GenerationRequest, SamplingParams
from siamgpt_jax.loader.chat import ROLES


class RequestError(ValueError):
    """A request the server refuses; `status` is its HTTP code, `param` the offending field."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None,
                 code: str | None = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.param, self.code, self.kind = status, param, code, kind


def error_body(message: str, *, kind: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    """OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)  # e.g. "name": accepted, unused
    role: Literal[ROLES]  # the loader's ChatML roles: one list for training and serving
    content: str | list[TextPart]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class ChatTemplateKwargs(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    enable_thinking: bool = False


class _Common(BaseModel):
    """Fields shared by /v1/chat/completions and /v1/completions."""

    model_config = ConfigDict(extra="ignore", strict=True)  # "5" is not 5, true is not 1.0

    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)  # OpenAI's default
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=-1, lt=2**31)  # vLLM's extra; -1 and 0 both mean off
    seed: int | None = Field(None, ge=0, lt=2**63)
    stop: str | list[str] | None = None
    n: int = Field(1, ge=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[str, float] | None = None

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, v):
        stops = [v] if isinstance(v, str) else (v or [])
        if any(not s for s in stops):
            raise ValueError("stop strings must not be empty")
        return v

    def _refuse_unsupported(self) -> None:
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name):
                raise RequestError(f"{name} is not supported by this server", param=name)
        if self.logit_bias:
            raise RequestError("logit_bias is not supported by this server", param="logit_bias")

    def requested_max_tokens(self) -> int | None:
        return self.max_tokens

    def _sampling(self, max_tokens: int | None, logprobs: bool, seed: int) -> SamplingParams:
        stops = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        kw = {} if max_tokens is None else {"max_new_tokens": max_tokens}  # else SamplingParams' default
        return SamplingParams(temperature=self.temperature, top_k=max(self.top_k, 0), top_p=self.top_p,
                              seed=seed, stop=stops, logprobs=logprobs, **kw)

    def _seeds(self) -> list[int]:
        base = self.seed if self.seed is not None else secrets.randbelow(2**31)
        return [base + i for i in range(self.n)]


class ChatCompletionRequest(_Common):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    chat_template_kwargs: ChatTemplateKwargs = ChatTemplateKwargs()
    tools: list[Any] | None = None
    response_format: dict[str, Any] | None = None

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def to_requests(self) -> list[GenerationRequest]:
        """n GenerationRequests (seeds seed..seed+n-1), or RequestError."""
        self._refuse_unsupported()
        if self.tools:
            raise RequestError("tools are not supported by this server", param="tools")
        if self.response_format and self.response_format.get("type", "text") != "text":
            raise RequestError("response_format other than text is not supported", param="response_format")
        if self.top_logprobs:
            raise RequestError("top_logprobs > 0 is not supported (only the chosen tokens' logprobs)",
                               param="top_logprobs")
        messages = tuple({"role": m.role, "content": m.text()} for m in self.messages)
        max_tokens = self.requested_max_tokens()
        thinking = self.chat_template_kwargs.enable_thinking
        return [GenerationRequest(messages=messages, enable_thinking=thinking,
                                  sampling=self._sampling(max_tokens, self.logprobs, seed))
                for seed in self._seeds()]


class CompletionRequest(_Common):
    prompt: str | list[str]
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None

    def prompts(self) -> list[str]:
        prompts = [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)
        if not prompts:
            raise RequestError("prompt must not be an empty list", param="prompt")
        if any(not p for p in prompts):
            raise RequestError("prompt must not be empty", param="prompt")
        return prompts

    def to_requests(self) -> list[GenerationRequest]:
        """len(prompts) * n GenerationRequests, prompt-major (OpenAI's choice order), or RequestError."""
        self._refuse_unsupported()
        for name in ("echo", "suffix"):
            if getattr(self, name):
                raise RequestError(f"{name} is not supported by this server", param=name)
        if self.best_of not in (None, 1, self.n):
            raise RequestError("best_of other than n is not supported", param="best_of")
        if self.logprobs:
            raise RequestError("logprobs > 0 (top logprobs) is not supported; logprobs: 0 returns the chosen "
                               "tokens' logprobs", param="logprobs")
        seeds = self._seeds()
        return [GenerationRequest(prompt=p, sampling=self._sampling(self.max_tokens, self.logprobs is not None, s))
                for p in self.prompts() for s in seeds]


# ---- responses ---------------------------------------------------------------------------------


def _usage(gens: list[Generation], n: int) -> dict:
    # A prompt sampled n times is counted once, as OpenAI does.
    prompt = sum(g.prompt_tokens for g in gens[::n])
    completion = sum(g.completion_tokens for g in gens)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _chat_logprobs(g: Generation) -> dict | None:
    if g.token_logprobs is None:
        return None
    tokens = g.tokens if g.tokens is not None else ("",) * len(g.token_logprobs)
    return {"content": [{"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []}
                        for t, lp in zip(tokens, g.token_logprobs)]}


def _completion_logprobs(g: Generation) -> dict | None:
    if g.token_logprobs is None:
        return None
    tokens = list(g.tokens) if g.tokens is not None else [""] * len(g.token_logprobs)
    offsets, at = [], 0
    for t in tokens:
        offsets.append(at)
        at += len(t)
    return {"tokens": tokens, "token_logprobs": list(g.token_logprobs), "top_logprobs": None,
            "text_offset": offsets}


def chat_response(gens: list[Generation], model: str, n: int) -> dict:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": i, "message": {"role": "assistant", "content": g.text},
                     "logprobs": _chat_logprobs(g), "finish_reason": g.finish_reason}
                    for i, g in enumerate(gens)],
        "usage": _usage(gens, n),
    }


def completion_response(gens: list[Generation], model: str, n: int) -> dict:
    return {
        "id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": i, "text": g.text, "logprobs": _completion_logprobs(g),
                     "finish_reason": g.finish_reason}
                    for i, g in enumerate(gens)],
        "usage": _usage(gens, n),
    }


def stream_chunks(body: dict, include_usage: bool) -> list[dict]:
    """A finished response as OpenAI's stream chunks: per choice one chunk with all its text, then one
    with its finish_reason, then (when asked) a usage chunk. The server streams this way where the
    text cannot come as it is generated (with logprobs, or from an endpoint)."""
    chat = body["object"] == "chat.completion"
    base = {"id": body["id"], "object": "chat.completion.chunk" if chat else "text_completion",
            "created": body["created"], "model": body["model"]}
    chunks = []
    for c in body["choices"]:
        if chat:
            first = {"index": c["index"], "delta": {"role": "assistant", "content": c["message"]["content"]},
                     "logprobs": c["logprobs"], "finish_reason": None}
            last = {"index": c["index"], "delta": {}, "logprobs": None, "finish_reason": c["finish_reason"]}
        else:
            first = {"index": c["index"], "text": c["text"], "logprobs": c["logprobs"], "finish_reason": None}
            last = {"index": c["index"], "text": "", "logprobs": None, "finish_reason": c["finish_reason"]}
        chunks += [{**base, "choices": [first]}, {**base, "choices": [last]}]
    if include_usage:
        chunks.append({**base, "choices": [], "usage": body["usage"]})
    return chunks
