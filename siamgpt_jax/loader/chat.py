"""Qwen3 ChatML rendering with an assistant-only loss mask.

A conversation renders as `<|im_start|>{role}\\n{content}<|im_end|>\\n` per message. Like Qwen3's
own template in non-thinking mode, the final assistant turn starts with an empty think block
`<think>\\n\\n</think>\\n\\n` (`empty_think=True`); earlier assistant turns are rendered as history,
without one. The think block is prompt, never trained: at inference the generation prompt supplies it.

The loss mask is aligned with the ids: mask[i] == 1 means token i is a training *target* (the
loader shifts it onto the token before). It covers each trained assistant content and its
`<|im_end|>`, nothing else. Assistant content is tokenized on its own, so the masked tokens decode
to exactly the (NFC) assistant text; for content that does not start with whitespace this is the
same tokenization as encoding the whole rendered string.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

from siamgpt_jax.errors import UserError

ROLES = ("system", "user", "assistant")
TRAIN_ON = ("all_assistant", "last_assistant")
EMPTY_THINK = "<think>\n\n</think>\n\n"
# Control tokens that would break the ChatML structure if they appeared inside a message.
_FORBIDDEN_IN_CONTENT = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")

# Same rendering as `encode_chat`, for transformers' `apply_chat_template` on saved tokenizers.
CHAT_TEMPLATE = (
    "{%- set empty_think = empty_think if empty_think is defined else true -%}"
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['role'] == 'assistant' and loop.last and empty_think -%}"
    "{{- '<think>\\n\\n</think>\\n\\n' -}}"
    "{%- endif -%}"
    "{{- message['content'] + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if empty_think -%}{{- '<think>\\n\\n</think>\\n\\n' -}}{%- endif -%}"
    "{%- endif -%}"
)


class ChatFormatError(UserError):
    """A conversation cannot be rendered. The message names the record when one was given."""


def validate_messages(messages: Any, where: str = "conversation") -> None:
    """Raise ChatFormatError for anything encode_chat cannot render faithfully."""
    if not isinstance(messages, (list, tuple)) or not messages:
        raise ChatFormatError(f"{where}: 'messages' must be a non-empty list, got {type(messages).__name__}")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ChatFormatError(f"{where}: message {i} must be an object with 'role' and 'content'")
        role, content = m["role"], m["content"]
        if role not in ROLES:
            raise ChatFormatError(f"{where}: message {i} has unknown role {role!r} (expected one of {list(ROLES)})")
        if role == "system" and i != 0:
            raise ChatFormatError(f"{where}: message {i} is a system message; only the first message may be")
        if not isinstance(content, str) or not content.strip():
            raise ChatFormatError(f"{where}: message {i} ({role}) has empty content")
        for tok in _FORBIDDEN_IN_CONTENT:
            if tok in content:
                raise ChatFormatError(f"{where}: message {i} ({role}) contains the control token {tok}")
    if not any(m["role"] == "assistant" for m in messages):
        raise ChatFormatError(f"{where}: conversation has no assistant turn")


def _role_header(tokenizer, role: str) -> list[int]:
    # Cached per tokenizer object: the header is encoded for every message.
    cache = tokenizer.__dict__.setdefault("_chat_headers", {})
    if role not in cache:
        cache[role] = [tokenizer.im_start_id] + tokenizer.encode(f"{role}\n")
        cache["think"] = tokenizer.encode(EMPTY_THINK)
        cache["end"] = [tokenizer.im_end_id] + tokenizer.encode("\n")
    return cache[role]


def encode_chat(
    tokenizer,
    messages: Sequence[dict[str, str]],
    *,
    train_on: Literal["all_assistant", "last_assistant"] = "all_assistant",
    empty_think: bool = True,
    where: str = "conversation",
) -> tuple[list[int], list[int]]:
    """Render `messages` as Qwen3 ChatML; return (ids, loss_mask) of equal length.

    `where` names the record in errors (e.g. "verified.jsonl:17 (id=abc)").
    """
    if train_on not in TRAIN_ON:
        raise ValueError(f"train_on must be one of {list(TRAIN_ON)}, got {train_on!r}")
    validate_messages(messages, where)
    last_assistant = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    ids: list[int] = []
    mask: list[int] = []
    for i, m in enumerate(messages):
        role, content = m["role"], m["content"]
        header = _role_header(tokenizer, role)
        cache = tokenizer._chat_headers
        end = cache["end"]
        if role != "assistant":
            # Header and content as one string: exactly how Qwen's template text tokenizes.
            piece = [tokenizer.im_start_id] + tokenizer.encode(f"{role}\n{content}") + end
            ids += piece
            mask += [0] * len(piece)
            continue
        trained = train_on == "all_assistant" or i == last_assistant
        prompt = header + (cache["think"] if empty_think and i == len(messages) - 1 else [])
        body = tokenizer.encode(content)
        ids += prompt + body + end
        flag = 1 if trained else 0
        # content + <|im_end|> are targets; the trailing "\n" after <|im_end|> is not.
        mask += [0] * len(prompt) + [flag] * (len(body) + 1) + [0] * (len(end) - 1)
    return ids, mask
