"""One hub cache for the hub tests, built once, and a fixture pointing huggingface_hub at it.

    models--test-org--tiny-qwen3     main -> COMMIT 1 (seed 0), branch v2 -> COMMIT 2 (seed 1): a tiny
                                     random Qwen3 saved by transformers (real vocabulary, so training
                                     can use the offline Qwen3 tokenizer), plus the tokenizer files
    datasets--cognitivecomputations--SystemChat-2.0   SystemChat_filtered_sharegpt.jsonl as published
                                     (ShareGPT `conversations`), README.md and .gitattributes
    datasets--test-org--verified-chat  verified records (`messages`), data/{train,test}-00000-of-00001.jsonl
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hub.cache import SYSTEMCHAT_FILE, add_commit, folder_files, systemchat_lines

MODEL = "test-org/tiny-qwen3"
SYSTEMCHAT = "cognitivecomputations/SystemChat-2.0"
VERIFIED = "test-org/verified-chat"
SYSTEMCHAT_RECORDS = 6


@dataclass(frozen=True)
class HubHome:
    home: Path  # HF_HOME
    model_commits: tuple[str, str]  # main, v2
    systemchat_commit: str
    verified_commit: str

    @property
    def cache(self) -> Path:
        return self.home / "hub"


def _tiny_qwen3_files(tmp: Path, seed: int) -> dict[str, bytes]:
    from siamgpt_jax.testing import make_hf_model
    from siamgpt_jax.loader.tokenizer import load_tokenizer

    model = make_hf_model(seed=seed, vocab_size=151936, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, head_dim=8, tie_word_embeddings=True)
    folder = tmp / f"model{seed}"
    model.save_pretrained(folder)
    load_tokenizer().save(folder)
    return folder_files(folder)


def build_hub_home(home: Path, tmp: Path) -> HubHome:
    from siamgpt_jax.loader.synthetic import write_corpus

    c1 = add_commit(home, MODEL, _tiny_qwen3_files(tmp, 0), refs=("main",))
    c2 = add_commit(home, MODEL, _tiny_qwen3_files(tmp, 1), refs=("v2",))
    sc = add_commit(home, SYSTEMCHAT, {SYSTEMCHAT_FILE: systemchat_lines(SYSTEMCHAT_RECORDS),
                                       "README.md": b"# SystemChat 2.0\n", ".gitattributes": b"*.jsonl filter=lfs\n"},
                    kind="dataset")
    train = write_corpus(tmp / "train.jsonl", 24, seed=0, scale=0.3).read_bytes()
    test = write_corpus(tmp / "test.jsonl", 8, seed=1, scale=0.3).read_bytes()
    vc = add_commit(home, VERIFIED, {"data/train-00000-of-00001.jsonl": train,
                                     "data/test-00000-of-00001.jsonl": test}, kind="dataset")
    return HubHome(home, (c1, c2), sc, vc)


@pytest.fixture(scope="session")
def hub_home(tmp_path_factory) -> HubHome:
    return build_hub_home(tmp_path_factory.mktemp("hf_home"), tmp_path_factory.mktemp("hub_build"))


@pytest.fixture
def offline_hub(hub_home, monkeypatch) -> HubHome:
    """huggingface_hub reads HF_HOME and HF_HUB_OFFLINE once, at import: point its constants at the
    test cache for this test (the CLI tests set the real variables in a fresh process instead)."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(hub_home.home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_home.cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return hub_home


def read_json(path: Path):
    return json.loads(Path(path).read_text())
