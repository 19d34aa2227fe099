"""Shared fixtures: the offline Qwen3 tokenizer (built once, cached) and tiny synthetic corpora."""

import json

import pytest

from siamgpt_jax.loader.chat import encode_chat
from siamgpt_jax.loader.synthetic import write_corpus
from siamgpt_jax.loader.tokenizer import load_tokenizer


@pytest.fixture(scope="session")
def tok():
    return load_tokenizer()


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """40 short records alternating systemchat/autoif (a few hundred tokens each)."""
    return write_corpus(tmp_path_factory.mktemp("corpus") / "verified.jsonl", 40, seed=3, scale=0.3)


def read_records(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="session")
def encoded(tok, corpus):
    """tuple(ids) -> (record, ids, mask) for every record of `corpus` (synthetic records are unique)."""
    table = {}
    for rec in read_records(corpus):
        ids, mask = encode_chat(tok, rec["messages"])
        table[tuple(ids)] = (rec, ids, mask)
    assert len(table) == 40
    return table
