"""`train` prints the epochs each data source gets before it loads the model."""

import pytest

from siamgpt_jax.loader.synthetic import write_corpus
from siamgpt_jax.train import loop
from siamgpt_jax.train.config import load_job_config


class _Stop(Exception):
    pass


def test_train_logs_the_data_plan_before_the_model(tmp_path, monkeypatch, capsys):
    corpus = write_corpus(tmp_path / "verified.jsonl", 30, seed=1, scale=0.3)
    cfg = load_job_config(None, [
        f"run_dir={tmp_path / 'run'}", "model.preset=qwen3-tiny", "train.steps=4096", "train.global_batch=128",
        f"data.sources=[{{path: {corpus}, stream: systemchat, weight: 1}}, {{path: {corpus}, stream: autoif, weight: 1}}]",
        "data.seq_len=4096",
    ])

    def model_not_reached(*a, **k):
        raise _Stop

    monkeypatch.setattr(loop, "make_mesh", model_not_reached)
    with pytest.raises(_Stop):
        loop.train(cfg, progress=False)
    out = capsys.readouterr().out
    assert "4,096 steps x 128 rows x 4,096 tokens = 2,147,483,648 token slots" in out
    rows = [l.split() for l in out.splitlines() if "verified.jsonl" in l]
    assert [r[1] for r in rows] == ["systemchat", "autoif"] and all(float(r[-1]) > 100 for r in rows)  # many epochs of a tiny corpus
