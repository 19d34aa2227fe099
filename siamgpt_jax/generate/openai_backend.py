"""`OpenAIBackend`: the Backend interface over any OpenAI-compatible endpoint, with the official `openai` client.

Meant for vLLM, SGLang and `siamgpt-jax serve` (a large teacher model for AutoIF, or a model under
evaluation). Chat requests go to /v1/chat/completions (with vLLM's `chat_template_kwargs` carrying
Qwen3's thinking switch, and `top_k` as an extra field when set); prompt requests go to
/v1/completions.

- Many requests are in flight at once: a thread pool of `concurrency` workers shares one client
  (its HTTP connection pool is thread-safe).
- Each HTTP call has `timeout_s`. A connection error, timeout, 408/409/429 or 5xx is retried up to
  `max_retries` times, waiting `retry_base_s * 2**attempt` (capped at `retry_max_s`, jittered, or
  the server's Retry-After when it sends one). The openai client's own retries are off, so these
  are the only ones.
- A request that still fails comes back as `Generation(finish_reason="error", error=...)` with a
  one-line reason; the rest of the batch goes on. `check()` lists /v1/models and raises UserError
  naming the URL when the endpoint cannot be reached, rejects the key, or does not serve the model.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import openai

from siamgpt_jax.errors import UserError
from siamgpt_jax.generate.backend import Generation, GenerationRequest

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_STATUS = (408, 409, 429)  # and every 5xx


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIConnectionError):  # includes timeouts
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in RETRY_STATUS or exc.status_code >= 500
    return False


def with_reasoning(message) -> str:
    """The message's text as the model wrote it: a server that splits the thinking off (vLLM's and
    SGLang's reasoning parsers: `reasoning_content`, or `reasoning`) gets it back in front as Qwen3's
    <think> block, so an endpoint's text has the shape the JAX sampler's has (eval strips it alike)."""
    content = message.content or ""
    extra = getattr(message, "model_extra", None) or {}
    reasoning = extra.get("reasoning_content") or extra.get("reasoning")
    if not isinstance(reasoning, str) or not reasoning or content.lstrip().startswith("<think>"):
        return content
    return f"<think>\n{reasoning.strip()}\n</think>\n\n{content}"


def describe(exc: BaseException) -> str:
    """One line: 'HTTP 400: messages.0.role: ...' or 'connection error: ...'."""
    if isinstance(exc, openai.APIStatusError):
        body = exc.body
        if isinstance(body, dict):
            body = body.get("error", body)
        message = body.get("message") if isinstance(body, dict) else None
        return f"HTTP {exc.status_code}: {message or exc.message}"
    if isinstance(exc, openai.APITimeoutError):
        return "timed out"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        return f"connection error: {cause or exc}".splitlines()[0]
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


class OpenAIBackend:
    def __init__(self, base_url: str, model: str | None = None, *, api_key: str | None = None,
                 concurrency: int = 16, timeout_s: float = 600.0, max_retries: int = 5,
                 retry_base_s: float = 1.0, retry_max_s: float = 30.0):
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.base_url = base_url
        self.max_retries, self.retry_base_s, self.retry_max_s = max_retries, retry_base_s, retry_max_s
        # Local servers take any key; the client insists on one.
        key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self._client = openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout_s, max_retries=0)
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="openai-backend")
        self.model_name = model if model is not None else self._only_model()

    # ---- endpoint checks ----

    def _list_models(self) -> list[str]:
        try:
            page = self._with_retries(self._client.models.list, what="GET /models")
        except openai.AuthenticationError as e:
            raise UserError(f"{self.base_url}: the endpoint rejected the API key ({describe(e)})") from None
        except openai.OpenAIError as e:
            raise UserError(f"cannot list models at {self.base_url} after {self.max_retries + 1} tries: "
                            f"{describe(e)}") from None
        return [m.id for m in page.data]

    def _only_model(self) -> str:
        models = self._list_models()
        if len(models) != 1:
            raise UserError(f"{self.base_url} serves {len(models)} models {models}; name one as URL#MODEL")
        return models[0]

    def check(self) -> None:
        """Raise UserError unless the endpoint answers and serves `model_name`."""
        models = self._list_models()
        if self.model_name not in models:
            raise UserError(f"{self.base_url} does not serve model {self.model_name!r}; it serves {models}")

    # ---- generation ----

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        return list(self._pool.map(self._one, requests))

    def _one(self, request: GenerationRequest) -> Generation:
        try:
            return self._with_retries(lambda: self._send(request), what="generation")
        except Exception as e:  # one failed request never stops the batch
            status = e.status_code if isinstance(e, openai.APIStatusError) else None
            return Generation(text="", finish_reason="error", error=f"{self.base_url}: {describe(e)}",
                              error_status=status)

    def _send(self, request: GenerationRequest) -> Generation:
        sp = request.sampling
        kw: dict = dict(model=self.model_name, max_tokens=sp.max_new_tokens, temperature=sp.temperature,
                        top_p=sp.top_p, seed=sp.seed)
        if sp.stop:
            kw["stop"] = list(sp.stop)
        extra: dict = {"top_k": sp.top_k} if sp.top_k else {}
        if request.messages is not None:
            extra["chat_template_kwargs"] = {"enable_thinking": request.enable_thinking}
            if sp.logprobs:
                kw["logprobs"] = True
            resp = self._client.chat.completions.create(messages=list(request.messages), extra_body=extra, **kw)
            choice = resp.choices[0]
            text = with_reasoning(choice.message)
            entries = choice.logprobs.content if sp.logprobs and choice.logprobs else None
            tokens = tuple(c.token for c in entries) if entries is not None else None
            logprobs = tuple(c.logprob for c in entries) if entries is not None else None
        else:
            if sp.logprobs:
                kw["logprobs"] = 0  # the chosen tokens' logprobs, no alternatives
            resp = self._client.completions.create(prompt=request.prompt, extra_body=extra, **kw)
            choice = resp.choices[0]
            text = choice.text or ""
            lp = choice.logprobs if sp.logprobs else None
            tokens = tuple(lp.tokens) if lp is not None and lp.tokens is not None else None
            logprobs = tuple(lp.token_logprobs) if lp is not None and lp.token_logprobs is not None else None
        usage = resp.usage
        return Generation(
            text=text,
            finish_reason="length" if choice.finish_reason == "length" else "stop",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            token_logprobs=logprobs,
            tokens=tokens,
        )

    def _with_retries(self, call: Callable[[], T], *, what: str) -> T:
        for attempt in range(self.max_retries + 1):
            try:
                return call()
            except openai.OpenAIError as e:
                if attempt == self.max_retries or not is_retryable(e):
                    raise
                delay = self._delay(attempt, e)
                log.warning("%s at %s failed (%s); retry %d/%d in %.2fs", what, self.base_url, describe(e),
                            attempt + 1, self.max_retries, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, exc: BaseException) -> float:
        retry_after = None
        if isinstance(exc, openai.APIStatusError):
            try:
                retry_after = float(exc.response.headers.get("retry-after", ""))
            except ValueError:
                pass
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_max_s)
        capped = min(self.retry_base_s * 2**attempt, self.retry_max_s)
        return capped * (0.5 + 0.5 * random.random())  # jitter: many workers don't retry in lockstep

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
