"""The commands read hub ids through the test's hub cache, offline: `verify` (SystemChat-2.0 as
published), `import-hf` and `export-hf --tokenizer-dir` (in fresh processes, with HF_HOME and
HF_HUB_OFFLINE=1 set for real), and a training config whose model.hf_path and data.sources are hub
ids: the commits are recorded in config.json, a resumed run keeps them after the branch moved, and
a repeated run from that config.json reads the same weights."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from siamgpt_jax import hub
from tests.hub.cache import SYSTEMCHAT_FILE, repo_folder
from tests.hub.conftest import MODEL, SYSTEMCHAT, SYSTEMCHAT_RECORDS, VERIFIED, read_json

REPO = Path(__file__).resolve().parents[2]


def _cli(args: list[str], hf_home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("HF_HUB_CACHE", None)
    return subprocess.run([sys.executable, "-m", "siamgpt_jax.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_verify_reads_systemchat_by_its_hub_id(hub_home, tmp_path):
    out = _cli(["verify", f"{SYSTEMCHAT}:train", "--out", str(tmp_path / "v"), "--workers", "1", "--no-progress"],
               hub_home.home)
    assert out.returncode == 0, out.stderr
    assert f"{SYSTEMCHAT}:train: 1 file(s) of {SYSTEMCHAT}@{hub_home.systemchat_commit}:train" in out.stderr
    assert f"verified {SYSTEMCHAT_RECORDS}/{SYSTEMCHAT_RECORDS} records" in out.stdout
    verified = [json.loads(line) for line in (tmp_path / "v" / "verified.jsonl").read_text().splitlines()]
    assert [m["role"] for m in verified[0]["messages"]] == ["system", "user", "assistant"]  # ShareGPT, normalised
    report = read_json(tmp_path / "v" / "report.json")
    assert report["inputs"] == [str(repo_folder(hub_home.home, "dataset", SYSTEMCHAT) / "snapshots"
                                    / hub_home.systemchat_commit / SYSTEMCHAT_FILE)]

    # not cached, offline: one line, exit 2
    out = _cli(["verify", "test-org/absent", "--out", str(tmp_path / "w"), "--no-progress"], hub_home.home)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "siamgpt-jax verify: error: test-org/absent: no local path 'test-org/absent' exists, and dataset "
        "test-org/absent@main is not in the local hub cache")
    assert lines[0].endswith("pre-download it with: hf download test-org/absent --repo-type dataset "
                             "--include '*.jsonl' --include '*.json' --include '*.parquet'")


def test_import_and_export_by_hub_id(hub_home, tmp_path):
    v2 = hub_home.model_commits[1]
    out = _cli(["import-hf", f"{MODEL}@v2", str(tmp_path / "ckpt"), "--dtype", "float32"], hub_home.home)
    assert out.returncode == 0, out.stderr
    assert f"from {MODEL}@{v2} (2 layers, float32)" in out.stdout

    from siamgpt_jax.convert.params_ckpt import load_params

    snapshot = repo_folder(hub_home.home, "model", MODEL) / "snapshots"
    model = load_params(tmp_path / "ckpt", dtype=np.float32)
    embed = np.asarray(model.embed[...])
    np.testing.assert_array_equal(embed, load_file(snapshot / v2 / "model.safetensors")["model.embed_tokens.weight"])
    main = load_file(snapshot / hub_home.model_commits[0] / "model.safetensors")["model.embed_tokens.weight"]
    assert not np.array_equal(embed, main)  # the branch asked for, not main

    from huggingface_hub import constants

    from siamgpt_jax.cli import main

    with pytest.MonkeyPatch.context() as mp:  # in this process: huggingface_hub read its variables at import
        mp.setattr(constants, "HF_HUB_CACHE", str(hub_home.cache))
        mp.setattr(constants, "HF_HUB_OFFLINE", True)
        assert main(["export-hf", str(tmp_path / "ckpt"), str(tmp_path / "hf"), "--tokenizer-dir", MODEL]) == 0
    assert (tmp_path / "hf" / "tokenizer.json").read_bytes() == (snapshot / hub_home.model_commits[0] / "tokenizer.json").read_bytes()

    out = _cli(["import-hf", "test-org/absent", str(tmp_path / "x")], hub_home.home)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert out.stderr.startswith("siamgpt-jax import-hf: error: test-org/absent: no local path")


def _overrides(run_dir: Path) -> list[str]:
    base = {
        "run_dir": str(run_dir),
        "model.hf_path": MODEL,
        "model.dtype": "float32",
        "model.remat": "none",
        "model.attention": "xla",
        "data.sources": f"[{{path: '{VERIFIED}:train', weight: 1.0}}]",
        "data.seq_len": 64,
        "data.tokenizer": MODEL,
        "train.steps": 0,  # no step: the start of a run is what reads hub ids (and steps take long here)
        "train.global_batch": 8,
        "train.loss_chunk": 32,
        "mesh.data": 1,
        "mesh.fsdp": -1,
    }
    return [f"{k}={v}" for k, v in base.items()]


def test_training_config_pins_hub_ids(hub_home, tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    from siamgpt_jax.parallel.mesh import make_mesh
    from siamgpt_jax.train.config import load_job_config
    from siamgpt_jax.train.loop import build_model, train

    # a cache of our own: this test moves the model's main branch
    home = tmp_path / "hf"
    shutil.copytree(hub_home.home, home, symlinks=True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    c1, c2 = hub_home.model_commits
    run_dir = tmp_path / "run"

    train(load_job_config(None, _overrides(run_dir)), progress=False)
    recorded = read_json(run_dir / "config.json")
    assert recorded["model"]["hf_path"] == f"{MODEL}@{c1}"
    assert recorded["data"]["sources"][0]["path"] == f"{VERIFIED}@{hub_home.verified_commit}:train"
    assert recorded["data"]["tokenizer"] == f"{MODEL}@{c1}"

    # main moves on; the resumed run keeps reading the commit it started from
    (repo_folder(home, "model", MODEL) / "refs" / "main").write_text(c2)
    assert hub.resolve_model(MODEL).commit == c2
    capsys.readouterr()
    train(load_job_config(None, _overrides(run_dir)), resume=True, progress=False)
    assert f"model.hf_path: {MODEL} read as {MODEL}@{c1}, the commit this run started from" in capsys.readouterr().out
    assert read_json(run_dir / "config.json")["model"]["hf_path"] == f"{MODEL}@{c1}"

    # a repeated run from the recorded config.json reads commit 1's weights, not main's
    again = load_job_config(run_dir / "config.json")
    model = build_model(again, make_mesh(again.mesh), dict(again.mesh.rules))
    snapshot = repo_folder(home, "model", MODEL) / "snapshots"
    np.testing.assert_array_equal(np.asarray(model.embed[...]),
                                  load_file(snapshot / c1 / "model.safetensors")["model.embed_tokens.weight"])

    # and its loader reads the dataset repo's train file through the JSONL reader
    from siamgpt_jax.loader.pipeline import make_loader
    from siamgpt_jax.loader.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(again.data.tokenizer)  # the tokenizer files of commit 1
    assert tokenizer.vocab_size == load_tokenizer().vocab_size
    loader = make_loader(again.data, tokenizer, batch_size=2, seed=0, process_index=0, process_count=1)
    batch = next(iter(loader))
    assert batch["inputs"].shape == (2, 64) and (batch["segment_ids"] > 0).sum() > 0
    train_file = hub.resolve_dataset(again.data.sources[0].path).files[0]
    assert [s.path for s in loader.sources] == [str(train_file)] and train_file.name.startswith("train-")


def test_generation_and_eval_take_a_model_by_hub_id(hub_home, monkeypatch):
    """JaxBackend (so generate, serve, eval and autoif) resolves ORG/NAME[@REV] through the cache;
    eval's model list keeps a hub id as one model."""
    from huggingface_hub import constants

    from siamgpt_jax.eval.models import expand
    from siamgpt_jax.generate.backend import GenerationRequest, SamplingParams
    from siamgpt_jax.generate.jax_backend import JaxBackend

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_home.home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    c1, _ = hub_home.model_commits
    by_id = JaxBackend.from_path(f"{MODEL}@{c1}", max_batch=1, max_len=64)
    by_path = JaxBackend.from_path(hub.resolve_model(f"{MODEL}@{c1}").path, max_batch=1, max_len=64)
    request = GenerationRequest(prompt="hello", sampling=SamplingParams(max_new_tokens=3))
    assert by_id.generate([request])[0].text == by_path.generate([request])[0].text
    assert [(e.label, e.spec) for e in expand([MODEL])] == [(MODEL, MODEL)]
