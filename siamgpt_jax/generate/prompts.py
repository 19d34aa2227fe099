"""Requests -> prompt token ids: chat through the loader's ChatML renderer, raw text as it is."""

from __future__ import annotations

from siamgpt_jax.generate.backend import GenerationRequest
from siamgpt_jax.loader.chat import encode_generation_prompt


class PromptTooLongError(ValueError):
    """A prompt plus its max_new_tokens does not fit the cache the backend allows."""


def prompt_ids(tokenizer, request: GenerationRequest, where: str = "request") -> list[int]:
    if request.messages is not None:
        return encode_generation_prompt(tokenizer, list(request.messages), enable_thinking=request.enable_thinking, where=where)
    ids = tokenizer.encode(request.prompt)
    if not ids:
        raise ValueError(f"{where}: the prompt is empty")
    return ids


def fit_prompt(ids: list[int], max_new_tokens: int, max_len: int, *, truncate: bool, where: str = "request") -> list[int]:
    """The prompt if prompt + max_new_tokens fits in max_len slots; else its last tokens (truncate,
    which keeps the generation prompt at the end) or PromptTooLongError."""
    room = max_len - max_new_tokens
    if room < 1:
        raise PromptTooLongError(f"{where}: max_new_tokens={max_new_tokens} leaves no room for a prompt in {max_len} positions")
    if len(ids) <= room:
        return ids
    if truncate:
        return ids[-room:]
    raise PromptTooLongError(
        f"{where}: the prompt has {len(ids)} tokens; with max_new_tokens={max_new_tokens} at most {room} fit in "
        f"{max_len} positions (shorten it, lower max_new_tokens, or truncate)"
    )
