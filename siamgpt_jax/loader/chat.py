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
_MEMO_CAP = 200_000  # pieces remembered by encode_chat_lengths' memo (system prompts and user turns)
# Control tokens that would break the ChatML structure if they appeared inside a message.
_FORBIDDEN_IN_CONTENT = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")

# Same rendering as `encode_chat`, for transformers' `apply_chat_template` on saved tokenizers.
# `enable_thinking` is Qwen3's own switch: false (or undefined) gives the empty think block.
CHAT_TEMPLATE = (
    "{%- if empty_think is not defined -%}"
    "{%- set empty_think = not enable_thinking if enable_thinking is defined else true -%}"
    "{%- endif -%}"
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
    validate_turns(messages, where)
    if not any(m["role"] == "assistant" for m in messages):
        raise ChatFormatError(f"{where}: conversation has no assistant turn")


def validate_turns(messages: Any, where: str = "conversation") -> None:
    """The checks every rendering needs (roles, order, content); a training record also needs an assistant turn."""
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
    return _render(tokenizer, messages, train_on, empty_think)


def encode_generation_prompt(
    tokenizer, messages: Sequence[dict[str, str]], *, enable_thinking: bool = False, where: str = "conversation"
) -> list[int]:
    """The prompt for the next assistant turn, as Qwen3's template renders it with
    add_generation_prompt=True: the conversation, then `<|im_start|>assistant\\n`, then (with
    enable_thinking=False) the empty think block, which tells Qwen3 to answer without thinking."""
    validate_turns(messages, where)
    if messages[-1]["role"] == "assistant":
        raise ChatFormatError(f"{where}: the last message is an assistant turn; generation needs a user or system turn last")
    ids, _ = _render(tokenizer, messages, "all_assistant", empty_think=False)
    header = _role_header(tokenizer, "assistant")
    return ids + header + ([] if enable_thinking else tokenizer._chat_headers["think"])


def _render(tokenizer, messages, train_on, empty_think) -> tuple[list[int], list[int]]:
    last_assistant = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
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


def encode_chat_lengths(
    tokenizer,
    conversations: Sequence[Sequence[dict[str, str]]],
    *,
    train_on: Literal["all_assistant", "last_assistant"] = "all_assistant",
    empty_think: bool = True,
    where: Sequence[str] | None = None,
    memo: dict[str, int] | None = None,
) -> tuple[list[int], list[int]]:
    """(len(ids), sum(loss_mask)) of encode_chat for each conversation, from one batch encode.

    The same pieces as encode_chat are encoded (so the counts are exact), but the distinct pieces
    of all conversations go to the tokenizer in one `encode_batch` call, which runs on every core.
    `memo` (piece -> length, kept by the caller across calls) spares re-encoding system prompts
    and user turns that repeat across a corpus; it stops growing at _MEMO_CAP pieces.
    """
    if train_on not in TRAIN_ON:
        raise ValueError(f"train_on must be one of {list(TRAIN_ON)}, got {train_on!r}")
    memo = {} if memo is None else memo
    pieces: list[str] = []
    for n, messages in enumerate(conversations):
        validate_messages(messages, where[n] if where is not None else f"conversation {n}")
        for m in messages:
            pieces.append(m["content"] if m["role"] == "assistant" else f"{m['role']}\n{m['content']}")
    todo = [p for p in dict.fromkeys(pieces) if p not in memo]
    lengths = dict(zip(todo, (len(ids) for ids in tokenizer.encode_batch(todo))))
    if len(memo) < _MEMO_CAP:
        memo.update((p, k) for p, k in lengths.items() if p.startswith(("system\n", "user\n")))  # replies rarely repeat
    piece_lengths = iter([memo[p] if p in memo else lengths[p] for p in pieces])
    header = len(_role_header(tokenizer, "assistant"))
    cache = tokenizer._chat_headers
    think, end = len(cache["think"]), len(cache["end"])
    totals, trained = [], []
    for messages in conversations:
        last_assistant = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        total = mask = 0
        for i, m in enumerate(messages):
            body = next(piece_lengths)
            if m["role"] != "assistant":
                total += 1 + body + end  # <|im_start|> + "role\ncontent" + <|im_end|>\n
                continue
            total += header + (think if empty_think and i == len(messages) - 1 else 0) + body + end
            if train_on == "all_assistant" or i == last_assistant:
                mask += body + 1  # the content and its <|im_end|>
        totals.append(total)
        trained.append(mask)
    return totals, trained
