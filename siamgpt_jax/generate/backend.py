"""The one interface every caller that needs text from a model uses (generate, serve, autoif, eval).

A `Backend` takes a batch of `GenerationRequest`s and returns one `Generation` per request, in order.
Two engines implement it: the in-process JAX sampler on a run folder, checkpoint or HF folder, and
an OpenAI-compatible HTTP client (vLLM, SGLang, `siamgpt-jax serve`). A request that fails after the
backend's own retries comes back with `finish_reason="error"` and a one-line `error`, so a long
pass can count it and go on; nothing is raised for one bad request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Callable, Literal, Protocol, runtime_checkable

FinishReason = Literal["stop", "length", "error"]


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """How to draw tokens. temperature 0 is greedy; top_k 0 and top_p 1.0 are off."""

    max_new_tokens: int = 512
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    logprobs: bool = False

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        object.__setattr__(self, "stop", tuple(self.stop))


@dataclasses.dataclass(frozen=True)
class GenerationRequest:
    """Exactly one of `messages` (chat, rendered with the loader's ChatML template) or `prompt` (raw
    text, no template). `enable_thinking=False` renders Qwen3's empty think block, as its template does."""

    messages: tuple[Mapping[str, str], ...] | None = None
    prompt: str | None = None
    sampling: SamplingParams = SamplingParams()
    enable_thinking: bool = False

    def __post_init__(self):
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("a GenerationRequest needs exactly one of 'messages' or 'prompt'")
        if self.messages is not None:
            object.__setattr__(self, "messages", tuple(dict(m) for m in self.messages))


@dataclasses.dataclass(frozen=True)
class Generation:
    """One request's result. token_logprobs (and, where the backend knows them, tokens: each generated
    token's text, for OpenAI-style logprobs) are set when the request asked for logprobs."""

    text: str
    finish_reason: FinishReason
    prompt_tokens: int = 0
    completion_tokens: int = 0
    token_logprobs: tuple[float, ...] | None = None
    error: str | None = None
    tokens: tuple[str, ...] | None = None
    # With an error: the HTTP status that refused the request (an endpoint's, or 400 for a prompt
    # the backend itself cannot take); None for a failure that is not the request's doing.
    error_status: int | None = None


# Called as text is generated: (request index, its text so far). The text only grows and is never
# taken back: it is a prefix of that request's final Generation.text.
TextSoFar = Callable[[int, str], None]


@runtime_checkable
class Backend(Protocol):
    """Anything that turns requests into generations. `model_name` is what reports record.

    A backend that can tell text while it is generated (the JAX sampler: after each decode chunk)
    sets `streams_text = True` and takes `generate(requests, on_text=TextSoFar)`; `serve` streams
    that to clients."""

    model_name: str

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """One Generation per request, in order."""
        ...

    def close(self) -> None:
        """Release devices, threads or connections."""
        ...
