"""Synthetic verified.jsonl corpora for tests and the loader benchmark.

Mixed Thai/English/code conversations in the verified-record format, with SystemChat-like shapes:
a system prompt, one to three user/assistant exchanges, lengths roughly log-normal (hundreds to a
few thousand tokens). Deterministic from the seed, so tests and benchmarks are reproducible.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

_THAI = (
    "สวัสดีครับ", "ประเทศไทย", "ภาษาไทย", "การเรียนรู้ของเครื่อง", "ข้อมูล", "คำตอบ", "คำถาม",
    "โปรดอธิบาย", "อย่างละเอียด", "ตัวอย่างเช่น", "นักเรียน", "โรงเรียน", "กรุงเทพมหานคร",
    "อาหารไทย", "ต้มยำกุ้ง", "ความปลอดภัย", "ระบบ", "ผู้ใช้", "ขั้นตอน", "สรุป", "และ", "หรือ",
    "ไม่", "ได้", "ที่", "ของ", "ใน", "เป็น", "มี", "ให้", "กับ", "จะ", "ว่า", "๑๒๓", "ค่ะ", "นะคะ",
)
_ENGLISH = (
    "the", "model", "answer", "question", "system", "please", "explain", "data", "Thai",
    "language", "example", "step", "result", "always", "never", "format", "JSON", "list",
    "respond", "concise", "detail", "user", "assistant", "because", "with", "and", "of", "to",
)
_CODE = ("def f(x):\n    return x * 2\n", "for i in range(10):\n    print(i)\n", "`pip install grain`",
         "SELECT * FROM users WHERE id = 1;", "{\"key\": [1, 2, 3]}")


def _text(rng: np.random.Generator, n_words: int) -> str:
    thai_share = rng.uniform(0.2, 0.9)
    words = []
    for _ in range(max(1, n_words)):
        r = rng.random()
        if r < 0.02:
            words.append("\n" + str(rng.choice(_CODE)))
        elif r < 0.02 + thai_share:
            words.append(str(rng.choice(_THAI)))
        else:
            words.append(str(rng.choice(_ENGLISH)))
        if rng.random() < 0.06:
            words[-1] += rng.choice([".", ",", "?", "!", "\n"])
    return " ".join(words).strip()


def make_record(rng: np.random.Generator, index: int, stream: str, scale: float = 1.0) -> dict:
    """One verified record; `scale` multiplies the typical length (1.0 ~ SystemChat)."""

    def length(mean: float) -> int:
        return int(max(3, rng.lognormal(np.log(mean * scale), 0.6)))

    messages = []
    if stream == "systemchat" or rng.random() < 0.5:
        messages.append({"role": "system", "content": _text(rng, length(40))})
    for _ in range(int(rng.integers(1, 4))):
        messages.append({"role": "user", "content": _text(rng, length(50))})
        messages.append({"role": "assistant", "content": _text(rng, length(90))})
    return {"id": f"{stream}-{index:06d}", "stream": stream, "source": f"synthetic:{index + 1}",
            "messages": messages}


def write_corpus(path: str | os.PathLike, n: int, *, seed: int = 0, streams=("systemchat", "autoif"),
                 scale: float = 1.0) -> Path:
    """Write `n` records (streams alternate) to `path` atomically; return the path."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for i in range(n):
            rec = make_record(rng, i, streams[i % len(streams)], scale)
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path
